"""The one list of search objectives and their directions.

The sweep reports these names, Optuna is told these directions and ``ntg pareto`` reads them back: keeping the
list in one place means a new objective cannot be minimised by one part and maximised by another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ntg.errors import NtgError

OBJECTIVES: dict[str, str] = {
    "fidelity": "min",
    "tstr_f1": "max",
    "flops_per_flow": "min",
    "parameters": "min",
    "sample_flows_per_s": "max",
    "train_seconds": "min",
}
DEFAULT_OBJECTIVES = ("fidelity", "flops_per_flow")

# Units for tables and plot axes (an objective without one is unitless).
UNITS: dict[str, str] = {
    "fidelity": "score, lower is better",
    "tstr_f1": "macro-F1",
    "flops_per_flow": "FLOPs per flow",
    "parameters": "count",
    "sample_flows_per_s": "flows/s",
    "train_seconds": "s",
}


@dataclass(frozen=True)
class Objective:
    """One objective of a sweep: its name and whether smaller ("min") or larger ("max") is better."""

    name: str
    direction: str  # "min" | "max"

    @property
    def label(self) -> str:
        """Axis label with unit and direction, e.g. ``flops_per_flow (FLOPs per flow, min)``."""
        unit = UNITS.get(self.name)
        return f"{self.name} ({unit}, {self.direction})" if unit else f"{self.name} ({self.direction})"


def _choices() -> str:
    return ", ".join(f"{name}:{direction}" for name, direction in OBJECTIVES.items())


def parse_objectives(text: str | Sequence[str] | None) -> tuple[Objective, ...]:
    """Parse ``"fidelity:min,flops_per_flow:min"`` / ``"fidelity,tstr_f1"`` / a list; None gives the defaults.

    A stated direction must be the objective's own: ``fidelity:max`` is a typo, not a wish, and silently
    optimising the wrong way would waste a whole sweep.
    """
    if text is None:
        items: list[str] = list(DEFAULT_OBJECTIVES)
    elif isinstance(text, str):
        items = [part.strip() for part in text.split(",")]
    else:
        items = [str(part).strip() for part in text]
    items = [item for item in items if item]
    if not items:
        raise NtgError(f"no objectives given; choose one or more of {_choices()} (comma-separated)")
    result: list[Objective] = []
    for item in items:
        name, _, direction = item.partition(":")
        name, direction = name.strip(), direction.strip().lower()
        if name not in OBJECTIVES:
            raise NtgError(f"unknown objective {name!r}; choose from {_choices()}")
        own = OBJECTIVES[name]
        if direction and direction != own:
            raise NtgError(f"objective {name!r} is always {own!r}, not {direction!r}; write {name}:{own} or {name}")
        if any(obj.name == name for obj in result):
            raise NtgError(f"objective {name!r} is given twice; list each objective once")
        result.append(Objective(name, own))
    return tuple(result)
