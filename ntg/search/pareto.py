"""Pareto fronts and hypervolume of a sweep, read from its trial records (works mid-sweep and on a copy).

Which trials compete: feasible, complete trials with every chosen objective finite, the first of each
configuration (``config_key``) only. The front is the non-dominated set (numpy); the hypervolume (moocore)
is computed on **normalised** objectives so that FLOPs and a fidelity score weigh alike:

1. objectives that span orders of magnitude (:data:`LOG_SCALED`) are replaced by ``log10(1 + value)``;
2. each objective is mapped to [0, 1] by min–max over the competing trials (0 = best seen, 1 = worst seen;
   maximised objectives are flipped), or over the fixed ``bounds`` given;
3. the reference point is 1.1 in every normalised objective (:data:`REFERENCE`), so the worst trial of each
   objective still adds volume; the hypervolume then lies in [0, 1.1^m] for m objectives.

The bounds and reference are stored in ``front.json``; the history (hypervolume after each finished trial)
and the per-family hypervolumes use the same bounds, so they can be compared with each other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ntg.errors import NtgError
from ntg.search.objectives import OBJECTIVES, Objective, parse_objectives

LOG_SCALED = frozenset({"flops_per_flow", "parameters", "sample_flows_per_s", "train_seconds"})
REFERENCE = 1.1
NORMALISATION = ("log10(1+x) for " + ", ".join(sorted(LOG_SCALED)) + "; min-max over the competing trials "
                 "(0 = best, 1 = worst; maximised objectives flipped); reference point 1.1 per objective")


def pareto_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """True for the rows no other row dominates (at least as good everywhere, better somewhere).

    Identical rows do not dominate each other, so both stay; rows with a non-finite value are never on the front.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(directions):
        raise ValueError(f"values of shape {values.shape} do not match {len(directions)} directions")
    costs = values * _signs(directions)
    finite = np.isfinite(costs).all(axis=1)
    mask = finite.copy()
    rows = np.flatnonzero(finite)
    sub = costs[rows]
    for i, row in zip(rows, sub, strict=True):
        dominated = (sub <= row).all(axis=1) & (sub < row).any(axis=1)
        mask[i] = not dominated.any()
    return mask


def _signs(directions: Sequence[str]) -> np.ndarray:
    bad = [d for d in directions if d not in ("min", "max")]
    if bad:
        raise ValueError(f"directions must be 'min' or 'max', not {bad}")
    return np.array([1.0 if d == "min" else -1.0 for d in directions])


def normalise(values: np.ndarray, directions: Sequence[str], bounds: np.ndarray | None = None,
              log_scale: Sequence[bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Normalised costs (0 = best, 1 = worst) and the ``(2, m)`` bounds used, in the (log-)scaled units."""
    values = np.asarray(values, dtype=float)
    scaled = values.copy()
    for j, log in enumerate(log_scale or [False] * values.shape[1]):
        if log:
            scaled[:, j] = np.log10(1.0 + np.clip(values[:, j], 0.0, None))
    if bounds is None:
        bounds = np.vstack([scaled.min(axis=0), scaled.max(axis=0)]) if len(scaled) else np.zeros((2, 0))
    bounds = np.asarray(bounds, dtype=float)
    span = np.where(bounds[1] > bounds[0], bounds[1] - bounds[0], 1.0)  # a constant objective maps to 0
    minimise = _signs(directions) > 0
    unit = np.where(minimise, scaled - bounds[0], bounds[1] - scaled) / span
    return unit, bounds


def hypervolume(values: np.ndarray, directions: Sequence[str], reference: Sequence[float] | float | None = None,
                bounds: np.ndarray | None = None, log_scale: Sequence[bool] | None = None) -> float:
    """Hypervolume of ``values`` after :func:`normalise`, against ``reference`` (default 1.1 per objective).

    ``bounds`` (the scaled minimum and maximum of each objective) default to the rows' own; pass fixed ones to
    compare sets (the history, the families). Rows beyond the reference add nothing.
    """
    import moocore

    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return 0.0
    unit, _ = normalise(values, directions, bounds, log_scale)
    ref = np.full(values.shape[1], REFERENCE) if reference is None else np.broadcast_to(
        np.asarray(reference, dtype=float), (values.shape[1],))
    unit = unit[np.isfinite(unit).all(axis=1) & (unit < ref).all(axis=1)]
    return float(moocore.hypervolume(unit, ref=ref)) if len(unit) else 0.0


# ---------------------------------------------------------------------------------------------- records
def load_records(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per ``trials/*.json``: ids, family, ``model.*``/``train.*`` settings, objectives by name,
    ``metric.*``, status and feasibility. Works while the sweep still writes (records are written atomically)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise NtgError(f"{sweep_dir}: no such sweep folder; give the --out folder of `ntg sweep`")
    rows = []
    for path in sorted((sweep_dir / "trials").glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise NtgError(f"{path}: unreadable trial record ({err}); delete it to ignore the trial") from None
        rows.append(_flatten(record, path))
    if not rows:
        raise NtgError(f"{sweep_dir}: no trial records in {sweep_dir / 'trials'} yet; wait for the first "
                       f"trial of `ntg sweep --out {sweep_dir}` to finish")
    frame = pd.DataFrame(rows)
    frame["finished_order"] = _finish_order(frame)
    return frame.sort_values("finished_order", kind="stable").reset_index(drop=True)


def _flatten(record: dict, path: Path) -> dict[str, Any]:
    if not isinstance(record, dict) or "family" not in record:
        raise NtgError(f"{path}: not a trial record (no 'family'); delete it to ignore it")
    row: dict[str, Any] = {
        "trial_id": str(record.get("trial_id") or path.stem),
        "number": record.get("number"),
        "family": record["family"],
        "status": record.get("status", "complete"),
        "feasible": bool(record.get("feasible", False)),
        "infeasible_reason": record.get("infeasible_reason"),
        "config_key": record.get("config_key") or path.stem,
        "generator_dir": record.get("generator_dir"),
        "device": record.get("device"),
        "wall_s": record.get("wall_s"),
        "finished": record.get("finished"),
    }
    for section in ("model", "train"):
        for name, value in sorted((record.get(section) or {}).items()):
            row[f"{section}.{name}"] = json.dumps(value) if isinstance(value, list | dict) else value
    for name, value in (record.get("objectives") or {}).items():
        row[name] = _number(value)
    for name, value in (record.get("metrics") or {}).items():
        row[f"metric.{name}"] = _number(value) if not isinstance(value, str) else value
    return row


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _finish_order(frame: pd.DataFrame) -> np.ndarray:
    """Rank by finishing time (ISO strings), then Optuna number, then id: the x axis of the history."""
    finished = pd.to_datetime(frame["finished"], errors="coerce", utc=True, format="ISO8601")
    keys = pd.DataFrame({"finished": finished,
                         "number": pd.to_numeric(frame["number"], errors="coerce"), "id": frame["trial_id"]})
    order = keys.sort_values(["finished", "number", "id"], na_position="last", kind="stable").index
    ranks = np.empty(len(frame), dtype=int)
    ranks[np.asarray(order)] = np.arange(1, len(frame) + 1)
    return ranks


def sweep_objectives(sweep_dir: str | Path) -> tuple[Objective, ...]:
    """The objectives stored in ``sweep.json``, or the defaults when there is none."""
    path = Path(sweep_dir) / "sweep.json"
    if not path.is_file():
        return parse_objectives(None)
    stored = json.loads(path.read_text()).get("objectives") or None
    names = [item["name"] if isinstance(item, dict) else str(item) for item in stored] if stored else None
    return parse_objectives(names)


# ---------------------------------------------------------------------------------------------- fronts
@dataclass
class FrontResult:
    """Every trial with its front flags, and the hypervolumes with what they were computed against."""

    sweep_dir: Path
    objectives: tuple[Objective, ...]
    trials: pd.DataFrame  # + columns competing, duplicate, on_front, on_family_front
    hypervolume: float
    family_hypervolume: dict[str, float]
    history: pd.DataFrame  # finished_order, trial_id, family, feasible, hypervolume
    bounds: list[list[float]]  # [[low, high] per objective], scaled units
    log_scale: list[bool]
    reference: list[float] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.objectives]

    @property
    def front(self) -> pd.DataFrame:
        return self.trials[self.trials["on_front"]].sort_values(self.names[0])


def compute_front(sweep_dir: str | Path, objectives: str | Sequence[str] | None = None) -> FrontResult:
    """The front over all families and per family, hypervolumes and their growth, from the records so far."""
    sweep_dir = Path(sweep_dir)
    objs = parse_objectives(objectives) if objectives is not None else sweep_objectives(sweep_dir)
    names, directions = [o.name for o in objs], [o.direction for o in objs]
    trials = load_records(sweep_dir)
    for name in names:
        if name not in trials:
            trials[name] = np.nan
    values = trials[names].to_numpy(dtype=float)
    usable = trials["feasible"].to_numpy() & (trials["status"] == "complete").to_numpy() & np.isfinite(
        values).all(axis=1)
    trials["duplicate"] = _dup_of_usable(trials, usable)
    competing = usable & ~trials["duplicate"].to_numpy()
    trials["competing"] = competing
    if not competing.any():
        counts = trials["status"].value_counts().to_dict()
        measured = [n for n in OBJECTIVES if n in trials and trials[n].notna().any()]
        raise NtgError(f"{sweep_dir}: no feasible trial with finite {', '.join(names)} among {len(trials)} "
                       f"record(s) {counts}; objectives measured: {measured}; choose among them with "
                       f"--objectives, loosen the budget or wait for more trials")
    log_scale = [name in LOG_SCALED for name in names]
    _, bounds = normalise(values[competing], directions, None, log_scale)
    on_front = np.zeros(len(trials), dtype=bool)
    on_front[competing] = pareto_mask(values[competing], directions)
    trials["on_front"] = on_front
    on_family = np.zeros(len(trials), dtype=bool)
    family_hv: dict[str, float] = {}
    for family in sorted(trials.loc[competing, "family"].unique()):
        rows = competing & (trials["family"] == family).to_numpy()
        on_family[rows] = pareto_mask(values[rows], directions)
        family_hv[family] = hypervolume(values[rows], directions, None, bounds, log_scale)
    trials["on_family_front"] = on_family
    history = []
    for k in range(len(trials)):  # records are sorted by finished_order
        seen = competing[: k + 1]
        history.append(hypervolume(values[: k + 1][seen], directions, None, bounds, log_scale))
    hist = trials[["finished_order", "trial_id", "family", "feasible"]].copy()
    hist["hypervolume"] = history
    return FrontResult(sweep_dir, objs, trials, history[-1], family_hv, hist, bounds.T.tolist(), log_scale,
                       [REFERENCE] * len(names))


def _dup_of_usable(trials: pd.DataFrame, usable: np.ndarray) -> np.ndarray:
    """True where an earlier usable row has the same configuration (the first one keeps competing)."""
    seen: set[str] = set()
    dup = np.zeros(len(trials), dtype=bool)
    for i, key in enumerate(trials["config_key"]):
        if usable[i]:
            dup[i] = key in seen
            seen.add(key)
    return dup


def write_front(result: FrontResult, out_dir: str | Path) -> dict[str, Path]:
    """front.csv, front.json and the plots (front.png, front.html, hypervolume.png) into ``out_dir``."""
    from ntg.search.pareto_plots import plot_front_html, plot_front_png, plot_hypervolume_png
    from ntg.utils.io import atomic_path, write_json

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = [c for c in result.trials.columns if c not in ("competing",)]
    paths = {"csv": out_dir / "front.csv", "json": out_dir / "front.json"}
    with atomic_path(paths["csv"]) as tmp:
        result.trials[columns].to_csv(tmp, index=False)
    write_json(paths["json"], front_json(result))
    paths["png"] = plot_front_png(result, out_dir / "front.png")
    paths["html"] = plot_front_html(result, out_dir / "front.html")
    paths["hypervolume_png"] = plot_hypervolume_png(result, out_dir / "hypervolume.png")
    return paths


def front_json(result: FrontResult) -> dict[str, Any]:
    """The JSON document: objectives, normalisation, hypervolumes, history and every trial."""
    trials = result.trials.drop(columns=["competing"]).astype(object).where(result.trials.notna(), None)
    return {
        "sweep_dir": ".",  # generator_dir paths are relative to the sweep folder
        "objectives": [{"name": o.name, "direction": o.direction} for o in result.objectives],
        "normalisation": {"method": NORMALISATION, "bounds": result.bounds, "log_scale": result.log_scale,
                          "reference": result.reference},
        "hypervolume": result.hypervolume,
        "family_hypervolume": result.family_hypervolume,
        "history": result.history.astype(object).to_dict(orient="records"),
        "front": result.front["trial_id"].tolist(),
        "trials": trials.to_dict(orient="records"),
    }


def format_table(result: FrontResult, max_rows: int = 30) -> str:
    """The front as a terminal table: one line per trial, best first objective first."""
    front = result.front.head(max_rows)
    settings = [c for c in front.columns if c.startswith("model.") or c in _TABLE_TRAIN]
    lines = []
    for _, row in front.iterrows():
        trained = row.get("metric.epochs", 1) != 0  # baselines have no training loop: their train.* is noise
        knobs = " ".join(f"{c.split('.', 1)[1]}={_short(row[c])}" for c in settings
                         if pd.notna(row[c]) and (trained or c.startswith("model.")))
        lines.append([row["trial_id"], row["family"], *(_short(row[n]) for n in result.names), knobs])
    header = ["trial", "family", *result.names, "settings"]
    widths = [max(len(str(r[i])) for r in [header, *lines]) for i in range(len(header) - 1)]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + str(r[-1])
           for r in [header, *lines]]
    n_competing = int(result.trials["competing"].sum())
    families = ", ".join(f"{f} {hv:.4f}" for f, hv in result.family_hypervolume.items())
    out.append(f"{len(result.front)} on the front of {n_competing} feasible trial(s) ({len(result.trials)} "
               f"records); hypervolume {result.hypervolume:.4f} (per family: {families})")
    return "\n".join(out)


_TABLE_TRAIN = ("train.lr", "train.epochs", "train.batch_size")


def _short(value: Any) -> str:
    if isinstance(value, float | np.floating) and np.isfinite(value):
        return str(int(value)) if float(value).is_integer() and abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


__all__ = ["OBJECTIVES", "FrontResult", "compute_front", "format_table", "front_json", "hypervolume",
           "load_records", "normalise", "pareto_mask", "sweep_objectives", "write_front"]
