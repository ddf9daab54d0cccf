"""The family and training settings as the search space sees them (names, kinds, ranges, checks).

They come from ``ntg.models.settings`` (one declaration per family, shared with ``--set`` and ``--help``).
Until that module is present, names and kinds are read from the constructors' signatures and TrainConfig's
fields, and only the training section is range-checked.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

from ntg.errors import NtgError

_KINDS: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}


@dataclass(frozen=True)
class SettingView:
    """What the space needs of one setting: its kind and inclusive bounds (None = unbounded)."""

    name: str
    kind: type
    low: float | None = None
    high: float | None = None
    open_low: bool = False  # the bound itself is excluded (lr > 0)
    open_high: bool = False
    choices: tuple | None = None


def _declared() -> Any:
    """``ntg.models.settings`` when it is importable and complete, else None (signatures are the fallback)."""
    try:
        from ntg.models import settings as declared

        declared.family_settings("markov")
    except (ImportError, AttributeError):
        return None
    return declared


def _kind(value: Any) -> type:
    if isinstance(value, type):
        return value
    text = str(value).replace("None", "").replace("|", " ").split()
    return _KINDS.get(text[0] if text else "", str)


@cache
def settings_for(section: str, family: str) -> dict[str, SettingView]:
    """Every setting of ``section`` ("model" or "train") of ``family``, by name."""
    declared = _declared()
    if declared is not None:
        table = declared.family_settings(family) if section == "model" else declared.train_settings()
        return {name: SettingView(name, _kind(s.kind), s.low, s.high, getattr(s, "open_low", False),
                                  getattr(s, "open_high", False), getattr(s, "choices", None))
                for name, s in table.items()}
    if section == "train":
        from ntg.training.config import TrainConfig

        return {f.name: SettingView(f.name, _kind(f.type)) for f in fields(TrainConfig)}
    from ntg.models.base import GENERATORS

    params = inspect.signature(GENERATORS[family].__init__).parameters
    return {name: SettingView(name, _kind(p.annotation)) for name, p in params.items() if name != "self"}


def check_values(section: str, family: str, values: Mapping[str, Any], where: str,
                 context: Mapping[str, Any] | None = None) -> None:
    """Raise a one-line :class:`NtgError` prefixed with ``where`` when the family rejects ``values``."""
    try:
        _check(section, family, values)
    except NtgError as err:
        at = f" (with {dict(context)})" if context else ""
        raise NtgError(f"{where}: {err}{at}") from None


def _check(section: str, family: str, values: Mapping[str, Any]) -> None:
    declared = _declared()
    if declared is not None:
        declared.check_settings(section, family, values)
        return
    known = settings_for(section, family)
    for name, value in values.items():
        kind = known[name].kind if name in known else None
        ok = kind is None or value is None or (isinstance(value, kind) and not (kind is int and isinstance(
            value, bool))) or (kind is float and isinstance(value, int) and not isinstance(value, bool))
        if not ok:
            raise NtgError(f"{section}.{name}={value!r} must be a {kind.__name__}; "
                           f"see `ntg train --family {family} --help`")
    if section == "train":
        from ntg.training.config import TrainConfig

        TrainConfig.from_dict(values)
