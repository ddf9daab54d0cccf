"""The ``{"model": ..., "train": ...}`` run config layout and its ``--set`` overrides.

The settings themselves (types, defaults, ranges) are declared in :mod:`ntg.models.settings`;
:class:`~ntg.models.fitting.TrainConfig` validates the train section, ``create_generator`` the model one.

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
from typing import Any

from ntg.errors import NtgError
from ntg.models.fitting import TrainConfig

SECTIONS = ("model", "train")


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON when it parses (``3``, ``1e-3``, ``true``, ``[1, 2]``), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(config: Mapping[str, Any] | None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """A copy of ``config`` (``{"model": {...}, "train": {...}}``) with ``section.key=value`` overrides."""
    result: dict[str, Any] = {s: {} for s in SECTIONS}
    if config is not None and not isinstance(config, Mapping):
        raise NtgError(f"a run config must be an object with 'model' and 'train' sections, got {config!r}")
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
