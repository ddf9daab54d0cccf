"""Capture-level train/validation/test splits that keep every class evaluable.

Flows of one capture are strongly correlated, so a capture is never split. Plain group splitters often leave
rare classes out of the test split; :func:`split_captures` instead searches (seeded random restarts + local
moves) for an assignment of captures to splits that

1. puts every class in train and in test (and in validation where the class has enough captures), and
2. keeps each class's flow shares near the targets (default 70 / 10 / 20 %).

A class whose flows all come from one capture cannot be both trained on and evaluated: it is reported and
dropped (:func:`unsplittable_classes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ntg.data.dataset import PreparedDataset

SPLIT_NAMES = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)
_MISSING_REQUIRED = 1000.0  # cost of a class absent from train or test
_MISSING_VAL = 5.0  # cost of a class absent from val although it has 3+ captures


@dataclass(frozen=True)
class SplitResult:
    """Split name per capture plus how close the result came to the targets."""

    assignment: dict[str, str]  # capture -> split name
    cost: float
    class_shares: pd.DataFrame  # rows: classes; columns: flow share per split

    def split_of(self, captures: pd.Series) -> np.ndarray:
        return captures.map(self.assignment).to_numpy(dtype=object)


def unsplittable_classes(labels: pd.Series, captures: pd.Series) -> list[str]:
    """Classes whose flows all come from a single capture (they cannot be in train and test)."""
    per_class = pd.DataFrame({"label": labels, "capture": captures}).groupby("label")["capture"].nunique()
    return sorted(per_class[per_class < 2].index.tolist())


def split_captures(
    labels: pd.Series,
    captures: pd.Series,
    seed: int = 0,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    restarts: int = 8,
    sweeps: int = 30,
) -> SplitResult:
    """Assign whole captures to train/val/test; deterministic for ``seed``."""
    if len(labels) != len(captures):
        raise ValueError("labels and captures must have the same length")
    if len(labels) == 0:
        raise ValueError("no flows to split")
    target = np.asarray(fractions, dtype=np.float64)
    if target.shape != (3,) or np.any(target < 0) or not np.isclose(target.sum(), 1.0):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")

    table = pd.crosstab(captures, labels)  # captures x classes flow counts
    counts = table.to_numpy(dtype=np.float64)
    class_totals = counts.sum(axis=0)
    n_captures_per_class = (counts > 0).sum(axis=0)
    rng = np.random.default_rng(seed)

    best_assign, best_cost = None, np.inf
    for _ in range(restarts):
        assign = _greedy_start(counts, target, rng)
        assign, cost = _local_search(assign, counts, class_totals, n_captures_per_class, target, rng, sweeps)
        if cost < best_cost - 1e-12:
            best_assign, best_cost = assign, cost
    assert best_assign is not None
    split_totals = np.stack([counts[best_assign == s].sum(axis=0) for s in range(3)], axis=1)
    shares = pd.DataFrame(
        split_totals / np.maximum(class_totals[:, None], 1), index=table.columns, columns=list(SPLIT_NAMES)
    )
    assignment = {str(c): SPLIT_NAMES[s] for c, s in zip(table.index, best_assign, strict=True)}
    return SplitResult(assignment=assignment, cost=float(best_cost), class_shares=shares)


def _greedy_start(counts: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Captures in random order, each to the split whose per-class deficit it fills best."""
    n_captures, _ = counts.shape
    class_totals = counts.sum(axis=0)
    have = np.zeros((3, counts.shape[1]))
    assign = np.zeros(n_captures, dtype=np.int64)
    for g in rng.permutation(n_captures):
        want = target[:, None] * class_totals[None, :] - have  # (3, K) remaining need
        gain = (np.minimum(want, counts[g][None, :]).clip(min=0)).sum(axis=1)
        gain += 1e-9 * rng.random(3)  # seeded tie-break
        s = int(np.argmax(gain))
        assign[g] = s
        have[s] += counts[g]
    return assign


def _cost(
    split_totals: np.ndarray, class_totals: np.ndarray, n_captures_per_class: np.ndarray, target: np.ndarray
) -> float:
    shares = split_totals / np.maximum(class_totals[None, :], 1)  # (3, K)
    cost = float(((shares - target[:, None]) ** 2).sum())
    present = split_totals > 0
    cost += _MISSING_REQUIRED * float((~present[0]).sum() + (~present[2]).sum())
    needs_val = (n_captures_per_class >= 3) & (target[1] > 0)
    cost += _MISSING_VAL * float((~present[1] & needs_val).sum())
    overall = split_totals.sum(axis=1) / max(class_totals.sum(), 1)
    cost += float(((overall - target) ** 2).sum()) * len(class_totals)
    return cost


def _local_search(
    assign: np.ndarray,
    counts: np.ndarray,
    class_totals: np.ndarray,
    n_captures_per_class: np.ndarray,
    target: np.ndarray,
    rng: np.random.Generator,
    sweeps: int,
) -> tuple[np.ndarray, float]:
    """First-improvement moves of single captures between splits until no move helps."""
    assign = assign.copy()
    split_totals = np.stack([counts[assign == s].sum(axis=0) for s in range(3)])
    cost = _cost(split_totals, class_totals, n_captures_per_class, target)
    for _ in range(sweeps):
        improved = False
        for g in rng.permutation(len(assign)):
            current = assign[g]
            for s in (0, 1, 2):
                if s == current:
                    continue
                split_totals[current] -= counts[g]
                split_totals[s] += counts[g]
                new_cost = _cost(split_totals, class_totals, n_captures_per_class, target)
                if new_cost < cost - 1e-12:
                    assign[g], cost, current, improved = s, new_cost, s, True
                else:
                    split_totals[s] -= counts[g]
                    split_totals[current] += counts[g]
        if not improved:
            break
    return assign, cost


def class_counts(labels: pd.Series, splits: pd.Series, classes: list[str]) -> list[dict]:
    """``meta.json`` class table: name plus flow counts per split, in ``classes`` order."""
    table = pd.crosstab(labels, splits).reindex(index=classes, columns=list(SPLIT_NAMES), fill_value=0)
    return [
        {"name": str(name), "counts": {s: int(table.loc[name, s]) for s in SPLIT_NAMES}} for name in classes
    ]


def resplit(dataset: PreparedDataset, seed: int) -> PreparedDataset:
    """The same flows split again with another seed (for utility figures over several split seeds)."""
    from ntg.data.dataset import PreparedDataset

    if seed == dataset.meta.get("split_seed"):
        return dataset
    flows = dataset.flows
    fractions = tuple(dataset.meta.get("params", {}).get("split_fractions", DEFAULT_FRACTIONS))
    result = split_captures(flows.meta["label"], flows.meta["capture"], seed=seed, fractions=fractions)
    new_meta = flows.meta.copy()
    new_meta["split"] = result.split_of(new_meta["capture"])
    new_flows = type(flows)(
        n_packets=flows.n_packets,
        payload=flows.payload,
        direction=flows.direction,
        iat=flows.iat,
        flags=flows.flags,
        window=flows.window,
        meta=new_meta,
    )
    meta = dict(dataset.meta)
    meta["split_seed"] = seed
    meta["classes"] = class_counts(new_meta["label"], new_meta["split"], dataset.classes)
    return PreparedDataset(root=dataset.root, flows=new_flows, meta=meta)
