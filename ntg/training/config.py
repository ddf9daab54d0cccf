"""Training configuration: :class:`TrainConfig` and the ``{"model": ..., "train": ...}`` run config layout.

A run config is a JSON object with two sections::

    {"model": {"d_model": 128, ...},   # keyword arguments of the generator family
     "train": {"epochs": 30, ...}}     # fields of TrainConfig

``--set`` style overrides (``model.d_model=128``, ``train.epochs=3``) are applied on top of it; values are
parsed as JSON, falling back to the raw string (``train.device=cuda``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from ntg.errors import NtgError

SECTIONS = ("model", "train")


@dataclass
class TrainConfig:
    """Hyperparameters of the one training loop (JSON-serialisable, all with defaults)."""

    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of all optimiser steps spent warming the learning rate up linearly
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    patience: int = 5  # epochs without a val_loss improvement of min_delta before stopping
    min_delta: float = 0.0
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
    bf16: bool = True  # bf16 autocast (GPU only; ignored on CPU)
    seed: int = 0
    max_train_flows: int | None = None  # train on a seeded random subset of at most this many flows
    val_fraction: float = 0.1  # held out of train for early stopping when no validation table is given
    ema_decay: float = 0.0  # > 0: keep an exponential moving average of the weights, validate and keep it

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "warmup": 0 <= self.warmup < 1,
            "grad_clip": self.grad_clip >= 0,
            "patience": self.patience >= 1,
            "min_delta": self.min_delta >= 0,
            "max_train_flows": self.max_train_flows is None or self.max_train_flows >= 1,
            "val_fraction": 0 <= self.val_fraction < 1,
            "ema_decay": 0 <= self.ema_decay < 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            name = bad[0]
            raise NtgError(f"train.{name}={getattr(self, name)!r} is out of range; see TrainConfig's docs")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> TrainConfig:
        """Build from a dict; unknown keys are an :class:`NtgError` naming them and the known ones."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise NtgError(f"unknown train setting(s) {unknown}; known: {sorted(known)}")
        try:
            return cls(**values)
        except TypeError as err:
            raise NtgError(f"train settings {values}: {err}") from None


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON when it parses (``3``, ``1e-3``, ``true``, ``[1, 2]``), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(config: Mapping[str, Any] | None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """A copy of ``config`` (``{"model": {...}, "train": {...}}``) with ``section.key=value`` overrides."""
    result: dict[str, Any] = {s: {} for s in SECTIONS}
    for section, values in (config or {}).items():
        if section not in SECTIONS:
            raise NtgError(f"unknown config section {section!r}; a run config has only {list(SECTIONS)}")
        if not isinstance(values, Mapping):
            raise NtgError(f"config section {section!r} must be an object, got {values!r}")
        result[section] = copy.deepcopy(dict(values))
    for item in overrides:
        key, sep, text = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name or section not in SECTIONS:
            raise NtgError(f"override {item!r}: expected model.KEY=VALUE or train.KEY=VALUE")
        result[section][name] = parse_value(text.strip())
    return result


def split_config(
    config: Mapping[str, Any] | None, overrides: Iterable[str] = ()
) -> tuple[dict[str, Any], TrainConfig]:
    """Model hyperparameters and a validated :class:`TrainConfig` from a run config plus overrides."""
    merged = apply_overrides(config, overrides)
    return merged["model"], TrainConfig.from_dict(merged["train"])
