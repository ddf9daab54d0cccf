"""The family and training settings as a search space checks them: ``ntg.models.settings`` (one declaration per
family, shared with ``--set`` and ``--help``), with errors prefixed by the space file and key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ntg.errors import NtgError
from ntg.models.settings import Setting, check_settings, family_settings, train_settings


def settings_for(section: str, family: str) -> dict[str, Setting]:
    """Every setting of ``section`` ("model" or "train") of ``family``, by name."""
    return family_settings(family) if section == "model" else train_settings()


def check_values(section: str, family: str, values: Mapping[str, Any], where: str,
                 context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``values`` coerced as declared; a one-line :class:`NtgError` prefixed with ``where`` if the family
    rejects them (``context``: the suggested values that led there)."""
    try:
        return check_settings(section, family, values)
    except NtgError as err:
        at = f" (with {dict(context)})" if context else ""
        raise NtgError(f"{where}: {err}{at}") from None
