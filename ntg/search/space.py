"""Declarative search spaces: ``search_spaces/*.yaml`` → Optuna suggestions → :class:`TrialConfig`.

A space file is data (documented in ``search_spaces/README.md``). Each value of a family's ``model:`` or
``train:`` section is a constant, a distribution (``{type: int|float|categorical, ...}``) or, for a numeric
setting or a ``_helper``, an arithmetic expression over the other values (``d_model: "n_heads * _head_dim"``).
Everything is validated when the file is loaded, against the family's declared settings, so a typo costs a
one-line error naming the file and key instead of a sweep of failed trials.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ntg.errors import NtgError
from ntg.search.expr import SECTIONS, ExpressionError, evaluate, parse_expression, referenced_names
from ntg.search.settings_view import check_values, settings_for

DEFAULT_MAX_PARAMETERS = 2_000_000
_TOP_KEYS = {"max_parameters", "families", "description"}
_DIST_KEYS = {"int": {"type", "low", "high", "step", "log"}, "float": {"type", "low", "high", "step", "log"},
              "categorical": {"type", "choices"}}
_MAX_CORNERS = 256


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-4`` and ``2e6`` as strings; a space file means numbers (YAML 1.2's reading)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+|\.[0-9_]+)$"),
    list("-+0123456789."),
)


@dataclass(frozen=True)
class TrialConfig:
    """One proposed configuration: the family and the keyword arguments of its model and TrainConfig."""

    family: str
    model: dict
    train: dict

    def key(self) -> str:
        """Stable sha256 of (family, model, train), so identical configurations are trained once."""
        text = json.dumps({"family": self.family, "model": self.model, "train": self.train}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def __hash__(self) -> int:
        return hash(self.key())


@dataclass(frozen=True)
class Param:
    """One value of a space: a constant, a distribution or a derived expression."""

    section: str
    name: str
    kind: str  # "constant" | "int" | "float" | "categorical" | "derived"
    value: Any = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple = ()
    expr: str | None = None

    @property
    def sampled(self) -> bool:
        return self.kind in ("int", "float", "categorical")

    def suggest(self, trial: Any, name: str) -> Any:
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        if self.kind == "float":
            return trial.suggest_float(name, float(self.low), float(self.high), step=self.step, log=self.log)
        return trial.suggest_categorical(name, list(self.choices))

    def extremes(self) -> list[Any]:
        """The values at the corners of this parameter's range (every choice for a categorical)."""
        if self.kind == "categorical":
            return list(self.choices)
        high = self.high
        if self.step:  # the largest value on the grid
            high = self.low + (self.high - self.low) // self.step * self.step
        return [self.low, high] if high != self.low else [self.low]

    def to_dict(self) -> Any:
        """The normalised YAML form of this value (round-trips through the loader)."""
        if self.kind == "constant":
            return self.value
        if self.kind == "derived":
            return self.expr
        if self.kind == "categorical":
            return {"type": "categorical", "choices": list(self.choices)}
        out = {"type": self.kind, "low": self.low, "high": self.high, "log": self.log}
        if self.step is not None:
            out["step"] = self.step
        return out


@dataclass(frozen=True)
class FamilySpace:
    """The space of one family: its parameters in suggestion order, derived values in dependency order."""

    family: str
    params: tuple[Param, ...]
    source: str

    def suggest(self, trial: Any) -> TrialConfig:
        """Suggest this family's values, derive the rest, and coerce them as the family declares them.

        A derived value the family rejects (a combination the load-time corner check missed) raises an
        NtgError naming the file and the suggested values, rather than training a configuration nobody asked for.
        """
        values: dict[tuple[str, str], Any] = {}
        suggested: dict[str, Any] = {}
        for param in self.params:
            key = (param.section, param.name)
            if param.sampled:
                name = f"{self.family}.{param.section}.{param.name}"
                values[key] = suggested[name] = param.suggest(trial, name)
            elif param.kind == "constant":
                values[key] = param.value
            else:
                values[key] = self._derive(param, values)
        sections = {section: check_values(section, self.family, {
            name: value for (sec, name), value in values.items() if sec == section and not name.startswith("_")},
            f"{self.source}: {self.family}", suggested) for section in SECTIONS}
        return TrialConfig(self.family, sections["model"], sections["train"])

    def _derive(self, param: Param, values: Mapping[tuple[str, str], Any]) -> Any:
        try:
            value = evaluate(parse_expression(param.expr or ""), param.section, values)
        except (ExpressionError, TypeError, ValueError, OverflowError) as err:
            raise NtgError(f"{self.source}: {self.family}.{param.section}.{param.name}: {err}") from None
        return value


@dataclass(frozen=True)
class SearchSpace:
    """Several families' spaces and the parameter budget every trial is checked against before training."""

    families: tuple[FamilySpace, ...]
    max_parameters: int
    sources: tuple[str, ...]

    @property
    def family_names(self) -> list[str]:
        return [space.family for space in self.families]

    def suggest(self, trial: Any) -> TrialConfig:
        """Define-by-run: pick the family (when there are several), then suggest only that family's values."""
        names = self.family_names
        family = names[0] if len(names) == 1 else trial.suggest_categorical("family", names)
        return self.families[names.index(family)].suggest(trial)

    def from_params(self, params: Mapping[str, Any]) -> TrialConfig:
        """Rebuild the configuration from a trial's flat parameters (``trial.params`` or a Tune config)."""
        import optuna

        try:
            return self.suggest(optuna.trial.FixedTrial(dict(params)))
        except ValueError as err:
            raise NtgError(f"parameters {dict(params)} do not fit the search space: {err}") from None

    def to_dict(self) -> dict:
        """JSON form, stored in the sweep folder so a resumed sweep can check that the space is unchanged."""
        families = {}
        for space in self.families:
            entry: dict[str, Any] = {section: {} for section in SECTIONS}
            for param in space.params:
                entry[param.section][param.name] = param.to_dict()
            families[space.family] = entry
        return {"max_parameters": self.max_parameters, "sources": list(self.sources), "families": families}


def load_spaces(paths: str | Path | Sequence[str | Path], max_parameters: int | None = None) -> SearchSpace:
    """Load and validate one or more space files; families must not repeat; the CLI budget wins.

    Without ``max_parameters``, the smallest budget stated by a file applies (default 2,000,000).
    """
    path_list = [paths] if isinstance(paths, str | Path) else list(paths)
    if not path_list:
        raise NtgError("no search space given; pass one or more files such as search_spaces/transformer.yaml")
    families: list[FamilySpace] = []
    budgets: list[int] = []
    for path in path_list:
        file_families, budget = _load_file(Path(path))
        for space in file_families:
            clash = next((f for f in families if f.family == space.family), None)
            if clash is not None:
                raise NtgError(f"{path}: family {space.family!r} is also in {clash.source}; keep it in one file")
            families.append(space)
        if budget is not None:
            budgets.append(budget)
    if max_parameters is not None:
        budget = _check_budget(max_parameters, "--max-parameters")
    else:
        budget = min(budgets, default=DEFAULT_MAX_PARAMETERS)
    return SearchSpace(tuple(families), budget, tuple(str(p) for p in path_list))


def _check_budget(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 1 or float(value) != int(value):
        raise NtgError(f"{where}: max_parameters must be a positive whole number such as 2000000, not {value!r}")
    return int(value)


def _load_file(path: Path) -> tuple[list[FamilySpace], int | None]:
    try:
        data = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506
    except OSError as err:
        raise NtgError(f"{path}: cannot read the search space ({err.strerror}); check the path") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise NtgError(f"{path}: not valid YAML{where}; see search_spaces/README.md for the format") from None
    if not isinstance(data, dict):
        raise NtgError(f"{path}: a search space is a mapping with 'families:' (and 'max_parameters:')")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise NtgError(f"{path}: unknown top-level key(s) {unknown}; allowed: {sorted(_TOP_KEYS)}")
    budget = _check_budget(data["max_parameters"], f"{path}") if "max_parameters" in data else None
    fams = data.get("families")
    if not isinstance(fams, dict) or not fams:
        raise NtgError(f"{path}: 'families:' must map at least one family name to its model:/train: sections")
    return [_load_family(path, str(family), body) for family, body in fams.items()], budget


def _load_family(path: Path, family: str, body: Any) -> FamilySpace:
    from ntg.models.base import GENERATORS

    if family not in GENERATORS:
        raise NtgError(f"{path}: families.{family}: unknown family; choose from {sorted(GENERATORS)}")
    body = {} if body is None else body
    if not isinstance(body, dict) or set(body) - set(SECTIONS):
        raise NtgError(f"{path}: families.{family}: expected only the sections 'model:' and 'train:'")
    params: list[Param] = []
    for section in SECTIONS:
        entries = body.get(section) or {}
        if not isinstance(entries, dict):
            raise NtgError(f"{path}: {family}.{section}: expected a mapping of setting name to value")
        known = settings_for(section, family)
        for name, raw in entries.items():
            where = f"{path}: {family}.{section}.{name}"
            name = str(name)
            if not name.startswith("_") and name not in known:
                raise NtgError(f"{where}: unknown {section} setting of {family}; known: {sorted(known)} "
                               f"(see `ntg train --family {family} --help`)")
            params.append(_parse_param(where, section, name, raw, known.get(name), family))
    space = FamilySpace(family, tuple(_order(path, family, params)), str(path))
    _check_corners(space)
    return space


def _parse_param(where: str, section: str, name: str, raw: Any, setting: Any, family: str) -> Param:
    kind = None if setting is None else setting.kind
    if isinstance(raw, str) and kind is not str:  # numeric setting or helper: an expression
        try:
            parse_expression(raw)
        except ExpressionError as err:
            raise NtgError(f"{where}: {err} in {raw!r}") from None
        return Param(section, name, "derived", expr=raw)
    if not isinstance(raw, dict):
        if setting is not None:
            check_values(section, family, {name: raw}, where)
        return Param(section, name, "constant", value=raw)
    dist = raw.get("type")
    if dist not in _DIST_KEYS:
        raise NtgError(f"{where}: 'type' must be one of {sorted(_DIST_KEYS)}, not {dist!r}")
    unknown = sorted(set(raw) - _DIST_KEYS[dist])
    if unknown:
        raise NtgError(f"{where}: unknown key(s) {unknown} for type {dist}; allowed: {sorted(_DIST_KEYS[dist])}")
    if dist == "categorical":
        return _parse_categorical(where, section, name, raw, setting, family)
    return _parse_range(where, section, name, raw, setting, dist)


def _parse_categorical(where: str, section: str, name: str, raw: dict, setting: Any, family: str) -> Param:
    choices = raw.get("choices")
    if not isinstance(choices, list) or not choices:
        raise NtgError(f"{where}: 'choices' must be a non-empty list, such as [2, 4, 8]")
    for choice in choices:
        if choice is not None and not isinstance(choice, bool | int | float | str):
            raise NtgError(f"{where}: choice {choice!r} is not a number, string, boolean or null")
        if setting is not None:
            check_values(section, family, {name: choice}, where)
    if len(set(map(repr, choices))) != len(choices):
        raise NtgError(f"{where}: 'choices' repeats a value; list each choice once")
    return Param(section, name, "categorical", choices=tuple(choices))


def _parse_range(where: str, section: str, name: str, raw: dict, setting: Any, dist: str) -> Param:
    if "low" not in raw or "high" not in raw:
        raise NtgError(f"{where}: type {dist} needs 'low' and 'high'")
    low, high, step, log = raw["low"], raw["high"], raw.get("step"), raw.get("log", False)
    if dist == "int":  # 1e3 is a whole number too
        low, high, step = (int(v) if isinstance(v, float) and v.is_integer() else v for v in (low, high, step))
    numbers = (int,) if dist == "int" else (int, float)
    for key, value in (("low", low), ("high", high), ("step", step)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers)):
            raise NtgError(f"{where}: {key} must be {'a whole number' if dist == 'int' else 'a number'}, "
                           f"not {value!r}")
    if not isinstance(log, bool):
        raise NtgError(f"{where}: 'log' must be true or false, not {log!r}")
    if low > high:
        raise NtgError(f"{where}: low {low} > high {high}; swap them")
    if log and low <= 0:
        raise NtgError(f"{where}: log scale needs low > 0, not {low}")
    if step is not None and step <= 0:
        raise NtgError(f"{where}: step must be > 0, not {step}")
    if log and step not in (None, 1):
        raise NtgError(f"{where}: log scale and step cannot be combined (Optuna); drop one")
    if setting is not None:
        if dist == "float" and setting.kind is int:
            raise NtgError(f"{where}: {name} is a whole number; use type: int")
        if setting.choices is not None:
            raise NtgError(f"{where}: {name} is one of {list(setting.choices)}; use type: categorical")
        if setting.kind not in (int, float):
            raise NtgError(f"{where}: {name} is a {setting.kind.__name__}; use a constant or type: categorical")
        _check_bounds(where, setting, low, high)
    return Param(section, name, dist, low=low, high=high, step=step if dist == "float" or step else None,
                 log=log)


def _check_bounds(where: str, setting: Any, low: float, high: float) -> None:
    parts = [f"{'>' if setting.open_low else '>='} {setting.low:g}" if setting.low is not None else "",
             f"{'<' if setting.open_high else '<='} {setting.high:g}" if setting.high is not None else ""]
    allowed = "allowed: " + " and ".join(part for part in parts if part)
    if setting.low is not None and (low < setting.low or (setting.open_low and low == setting.low)):
        raise NtgError(f"{where}: low {low} is below the setting's minimum ({allowed})")
    if setting.high is not None and (high > setting.high or (setting.open_high and high == setting.high)):
        raise NtgError(f"{where}: high {high} is above the setting's maximum ({allowed})")



def _order(path: Path, family: str, params: list[Param]) -> list[Param]:
    """Sampled and constant values first (file order), then derived ones so each follows what it reads."""
    defined = {(p.section, p.name) for p in params}
    derived = {(p.section, p.name): p for p in params if p.kind == "derived"}
    needs: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for key, param in derived.items():
        refs = referenced_names(parse_expression(param.expr or ""), param.section)
        missing = sorted(".".join(ref) for ref in refs - defined)
        if missing:
            raise NtgError(f"{path}: {family}.{'.'.join(key)}: {param.expr!r} reads {missing}, which the space "
                           f"does not define; define them (a _helper is sampled but not passed to the family)")
        needs[key] = refs & set(derived)
    ordered = [p for p in params if p.kind != "derived"]
    done: set[tuple[str, str]] = set()
    while len(done) < len(derived):
        ready = [key for key in derived if key not in done and needs[key] <= done]
        if not ready:
            cycle = sorted(".".join(key) for key in derived if key not in done)
            raise NtgError(f"{path}: {family}: derived values {cycle} depend on each other in a cycle")
        for key in ready:
            ordered.append(derived[key])
            done.add(key)
    return ordered


def _check_corners(space: FamilySpace) -> None:
    """Check that the family accepts the settings at the corners of the box (every choice, each range's ends).

    Derived values are arithmetic, so a value out of range shows at a corner for the usual monotone
    expressions; a larger box is checked on a seeded sample of its corners.
    """
    import optuna

    sampled = [p for p in space.params if p.sampled]
    names = [f"{space.family}.{p.section}.{p.name}" for p in sampled]
    grids = [p.extremes() for p in sampled]
    total = 1
    for grid in grids:
        total *= len(grid)
    if total <= _MAX_CORNERS:
        corners = list(itertools.product(*grids))
    else:
        rng = random.Random(0)
        corners = [tuple(rng.choice(grid) for grid in grids) for _ in range(_MAX_CORNERS)]
    for corner in corners:  # suggest checks what it builds
        space.suggest(optuna.trial.FixedTrial(dict(zip(names, corner, strict=True))))
