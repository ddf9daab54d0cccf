"""Every knob of every family, and of the training loop, declared once: type, default, range, help.

A family's settings are its constructor's keyword arguments: the **type and default come from the typed
signature**, the range, choices and help from the class's ``SETTINGS`` table (:func:`spec`), inherited and
extended down the class tree. :class:`TrainConfig`'s fields are declared the same way (``dataclass`` field
type and default, :func:`train_field` metadata). The one declaration serves

* the constructors (``Generator._init_settings`` validates, coerces and stores the arguments),
* ``--set`` / run configs / trial configs (:func:`check_settings`),
* ``ntg train --family F --help`` (:func:`settings_help`),
* the search spaces' checks (:func:`family_settings`, :func:`train_settings`).

Cross-field constraints (heads divide the width) stay in the constructors.
"""

from __future__ import annotations

import functools
import math
import numbers
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from ntg.errors import NtgError

__all__ = [
    "Setting",
    "TrainConfig",
    "check_settings",
    "family_settings",
    "settings_help",
    "spec",
    "train_field",
    "train_settings",
]

KINDS = (int, float, str, bool)


@dataclass(frozen=True)
class Setting:
    """One knob. ``low``/``high`` are inclusive bounds (None: unbounded) unless ``open_low``/``open_high``
    say the bound itself is excluded (``lr > 0``); ``optional``: None is allowed too."""

    name: str
    kind: type
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    optional: bool = False
    help: str = ""
    open_low: bool = False
    open_high: bool = False

    def range_text(self) -> str:
        """``1..32``, ``(0, 1]``, ``>= 0``, ``one of [...]`` or ``any``."""
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        if self.low is not None and self.high is not None:
            if not (self.open_low or self.open_high) and self.kind is int:
                return f"{_num(self.low)}..{_num(self.high)}"
            return f"{'(' if self.open_low else '['}{_num(self.low)}, {_num(self.high)}{')' if self.open_high else ']'}"
        if self.low is not None:
            return f"{'>' if self.open_low else '>='} {_num(self.low)}"
        if self.high is not None:
            return f"{'<' if self.open_high else '<='} {_num(self.high)}"
        return "any"

    def check(self, value: Any, where: str) -> Any:
        """``value`` coerced to ``kind`` (an integral float to int, an int to float), or an NtgError naming
        ``where`` (``model.d_model``), the value and what is allowed."""
        if value is None and self.optional:
            return None
        coerced = _coerce(value, self.kind)
        if coerced is None or not self._in_range(coerced):
            kind = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[self.kind]
            allowed = f"{kind}, {self.range_text()}" + (", or null" if self.optional else "")
            raise NtgError(f"{where}={value!r} is not allowed: expected {allowed}")
        return coerced

    def _in_range(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        if self.kind in (int, float):
            if self.low is not None and (value < self.low or (self.open_low and value == self.low)):
                return False
            if self.high is not None and (value > self.high or (self.open_high and value == self.high)):
                return False
        return True


def _num(x: float) -> str:
    return f"{x:g}"


def _coerce(value: Any, kind: type) -> Any:
    """``value`` as ``kind`` or None when it is not one (bools are not numbers; floats must be finite)."""
    if kind is bool:
        return value if isinstance(value, bool) else None
    if kind is str:
        return value if isinstance(value, str) else None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if not math.isfinite(float(value)):
        return None
    if kind is int:
        if isinstance(value, numbers.Integral):
            return int(value)
        return int(value) if float(value).is_integer() else None
    return float(value)


@dataclass(frozen=True)
class _Spec:
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""
    open_low: bool = False
    open_high: bool = False


def spec(help: str, low: float | None = None, high: float | None = None, *, choices: Any = None,
         open_low: bool = False, open_high: bool = False) -> _Spec:
    """A constructor argument's range and help, for a class's ``SETTINGS`` table (type and default come from
    the constructor's signature)."""
    return _Spec(low, high, tuple(choices) if choices is not None else None, help, open_low, open_high)


def _kind(annotation: Any, where: str) -> tuple[type, bool]:
    """The setting kind of a type hint and whether None is allowed (``int | None``)."""
    optional = False
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        annotation = args[0] if len(args) == 1 else annotation
    if annotation not in KINDS:
        raise TypeError(f"{where}: type {annotation!r} is not a setting type; use one of {KINDS}")
    return annotation, optional


@functools.cache
def class_settings(cls: type) -> dict[str, Setting]:
    """The settings of a generator class: constructor arguments over the class tree, the class's own first."""
    import inspect

    tables: dict[str, _Spec] = {}
    for klass in reversed(cls.__mro__):
        tables.update(vars(klass).get("SETTINGS", {}))
    settings: dict[str, Setting] = {}
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        hints = typing.get_type_hints(klass.__init__)
        for p in inspect.signature(klass.__init__).parameters.values():
            if p.name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in settings:
                continue
            kind, optional = _kind(hints.get(p.name, type(p.default)), f"{cls.__name__}({p.name})")
            declared = tables.get(p.name, _Spec())
            settings[p.name] = Setting(p.name, kind, p.default, declared.low, declared.high, declared.choices,
                                       optional, declared.help, declared.open_low, declared.open_high)
    return settings


def family_settings(family: str) -> dict[str, Setting]:
    """Every constructor argument of ``family`` as a :class:`Setting`, in signature order."""
    from ntg.models.base import generator_class

    return class_settings(generator_class(family))


# ---------------------------------------------------------------------------------------------- training
def train_field(default: Any, help: str, low: float | None = None, high: float | None = None, *,
                choices: Any = None, open_low: bool = False, open_high: bool = False) -> Any:
    """A :class:`TrainConfig` field with its declared range and help."""
    return field(default=default, metadata={"spec": spec(help, low, high, choices=choices, open_low=open_low,
                                                         open_high=open_high)})


@dataclass
class TrainConfig:
    """Hyperparameters of the one training loop (JSON-serialisable, all with defaults, validated on creation)."""

    epochs: int | None = train_field(None, "passes over the training flows (default: by family and training-set "
                                     "size, see ntg/models/data_rules.py)", 1)
    batch_size: int | None = train_field(None, "flows per optimiser step (default: 256, or smaller on small "
                                         "training sets; ntg/models/data_rules.py)", 1)
    lr: float = train_field(1e-3, "peak AdamW learning rate", 0, open_low=True)
    weight_decay: float = train_field(0.01, "AdamW weight decay of matrices (not norms, biases, embeddings)", 0)
    warmup: float = train_field(0.05, "share of all steps spent warming the learning rate up", 0, 1,
                                open_high=True)
    grad_clip: float = train_field(1.0, "max global gradient norm; 0 disables clipping", 0)
    patience: int = train_field(5, "epochs without a min_delta improvement of val_loss before stopping", 1)
    min_delta: float = train_field(0.0, "smallest val_loss decrease that counts as an improvement", 0)
    device: str = train_field("auto", "auto (CUDA when available), cpu, cuda, cuda:1, ...")
    bf16: bool = train_field(True, "bf16 autocast on GPUs (ignored on CPU)")
    seed: int = train_field(0, "seeds weights, shuffling and the hold-out", 0)
    max_train_flows: int | None = train_field(None, "train on a stratified seeded subset of this many flows", 1)
    val_fraction: float = train_field(0.1, "stratified share of train held out when there is no validation "
                                      "split; 0: no early stopping", 0, 1, open_high=True)
    selection: str = train_field("auto", "weights kept: val_loss (best validation loss, early stopping), last "
                                 "(last epoch), auto (val_loss on large training sets, last on small ones)",
                                 choices=("auto", "val_loss", "last"))
    ema_decay: float = train_field(0.0, "> 0: validate and keep an exponential moving average of the weights",
                                   0, 1, open_high=True)

    def __post_init__(self) -> None:
        for name, value in check_settings("train", "", asdict(self)).items():
            setattr(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> TrainConfig:
        """Build from a dict; unknown keys, wrong types and out-of-range values are an :class:`NtgError`."""
        return cls(**check_settings("train", "", dict(values or {})))


@functools.cache
def train_settings() -> dict[str, Setting]:
    """:class:`TrainConfig`'s fields as :class:`Setting` objects."""
    hints = typing.get_type_hints(TrainConfig)
    settings = {}
    for f in fields(TrainConfig):
        kind, optional = _kind(hints[f.name], f"TrainConfig.{f.name}")
        declared = f.metadata["spec"]
        default = f.default if f.default is not MISSING else None
        settings[f.name] = Setting(f.name, kind, default, declared.low, declared.high, declared.choices,
                                   optional, declared.help, declared.open_low, declared.open_high)
    return settings


# ---------------------------------------------------------------------------------------------- checks
def check_settings(
    section: str, family: str, values: Mapping[str, Any], settings: Mapping[str, Setting] | None = None
) -> dict[str, Any]:
    """``values`` (a run config section: ``"model"`` of ``family``, or ``"train"``) coerced and range-checked;
    an unknown key, a wrong type or a value out of range is an :class:`NtgError` naming ``section.KEY=VALUE``,
    what is allowed and where the whole list is. ``settings`` (a class's, for its constructor) replaces the
    look-up by family name."""
    if section not in ("model", "train"):
        raise ValueError(f"section {section!r}: use 'model' or 'train'")
    if settings is None:
        settings = family_settings(family) if section == "model" else train_settings()
    where = f"see `ntg train --family {family or 'FAMILY'} --help`"
    if not isinstance(values, Mapping):
        raise NtgError(f"the {section} settings must be an object of KEY: VALUE, got {values!r}; {where}")
    unknown = sorted(str(k) for k in values if k not in settings)
    if unknown:
        owner = f"{family} " if section == "model" and family else ""
        raise NtgError(f"unknown {owner}{section} setting(s) {unknown}; known: {list(settings)}; {where}")
    checked = {}
    for name, value in values.items():
        try:
            checked[name] = settings[name].check(value, f"{section}.{name}")
        except NtgError as err:
            raise NtgError(f"{err}; {where}") from None
    return checked


def settings_help(family: str) -> str:
    """A plain-text table of ``family``'s model settings and the train settings: name, type, default,
    range or choices, help."""
    lines = []
    for section, settings in (("model", family_settings(family)), ("train", train_settings())):
        title = f"{section} settings" + (f" of {family}" if section == "model" else "") + " (--set SECTION.NAME=VALUE)"
        lines += ["", title] if lines else [title]
        rows = [(f"{section}.{s.name}", s.kind.__name__ + ("|null" if s.optional else ""), repr(s.default),
                 s.range_text(), s.help) for s in settings.values()]
        widths = [max(len(r[i]) for r in [("name", "type", "default", "allowed", ""), *rows]) for i in range(4)]
        for row in [("name", "type", "default", "allowed", "help"), *rows]:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
    return "\n".join(lines) + "\n"
