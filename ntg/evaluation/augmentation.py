"""Low-data augmentation: does synthetic data help a classifier that sees only a few real flows?

For each fraction (1, 5, 10, 25 % by default) and seed, a seeded stratified subset of the real training split
is kept (at least one flow per class) and a classifier is trained on

* ``real_only``               the subset alone;
* ``real+synthetic_full``     the subset + flows of the given generator (trained on the full training split)
                              or drawn from the given synthetic file;
* ``real+synthetic_fraction`` the subset + flows of a fresh generator of the same family trained on the
                              subset alone (with its meta columns, so its data rules see the captures);
* ``real+smote``              the subset + SMOTE interpolations in feature space (imbalanced-learn;
                              ``k = min(5, n_c - 1)`` per class, plain copies for a class of one flow);
* ``real+handcrafted``        the subset + transformed copies of its flows: inter-arrival scaling by a
                              log-uniform factor in [0.5, 2] (another RTT), time shift of one packet between
                              its neighbours, or drop of one packet (its gap merges into the next);
* ``real_100``                the whole training split (the ceiling; the same for every fraction).

**Synthetic amounts.** Every augmenting method brings each class up to the same target count
``T = max(min_target, largest class count in the subset)``, i.e. it adds ``T - n_c`` flows to class ``c``,
so the augmented set is class-balanced and all methods add the same number of flows.

Scores are macro-F1 on the real test split; ``gain`` is ``(F1_method - F1_real_only) / F1_real_only`` per
seed. Both come as mean ± std over the seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ntg.data.schema import PACKET_FIELDS, FlowTable
from ntg.evaluation.features import flat_features, flows_from_flat
from ntg.evaluation.options import FRACTIONS
from ntg.evaluation.tstr import classification_scores, mean_std, synthetic_for_counts
from ntg.models.base import Generator

METHODS = (
    "real_only",
    "real+synthetic_full",
    "real+synthetic_fraction",
    "real+smote",
    "real+handcrafted",
    "real_100",
)
MIN_TARGET = 20
HANDCRAFTED_TRANSFORMS = ("iat_scale", "time_shift", "packet_drop")

GeneratorFactory = Callable[[FlowTable, int], Generator]


# ---------------------------------------------------------------------------------------------- subsets
def stratified_fraction(train: FlowTable, fraction: float, seed: int = 0) -> FlowTable:
    """A seeded subset with ``max(1, round(fraction * n_c))`` flows of every class ``c``."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    labels = train.labels.astype(str)
    keep = []
    for c in sorted(set(labels.tolist())):
        members = np.flatnonzero(labels == c)
        k = max(1, int(round(fraction * len(members))))
        keep.append(rng.choice(members, size=k, replace=False))
    return train.take(np.sort(np.concatenate(keep)))


def augmentation_targets(subset: FlowTable, min_target: int = MIN_TARGET) -> dict[str, int]:
    """How many flows each class is missing to reach ``T = max(min_target, largest class count)``."""
    labels, counts = np.unique(subset.labels.astype(str), return_counts=True)
    target = max(min_target, int(counts.max()))
    return {str(c): int(target - n) for c, n in zip(labels, counts, strict=True) if n < target}


# ---------------------------------------------------------------------------------------------- augmenters
def smote_augment(subset: FlowTable, missing: dict[str, int], n_packets: int, seed: int = 0) -> FlowTable:
    """New flows from SMOTE per class (``k = min(5, n_c - 1)``); copies for classes with a single flow."""
    from imblearn.over_sampling import SMOTE

    x = flat_features(subset, n_packets)
    y = subset.labels.astype(str)
    rng = np.random.default_rng(seed)
    new_x, new_y = [], []
    for c, extra in missing.items():
        members = np.flatnonzero(y == c)
        if extra <= 0:
            continue
        if len(members) < 2:
            new_x.append(x[rng.choice(members, size=extra, replace=True)])
        else:
            # SMOTE wants a second class; it only interpolates within class ``c``, so one dummy row will do.
            idx = np.concatenate([members, members[:1]])
            y_bin = np.array([c] * len(members) + ["__other__"], dtype=object)
            smote = SMOTE(
                sampling_strategy={c: len(members) + extra},
                k_neighbors=min(5, len(members) - 1),
                random_state=int(rng.integers(2**31 - 1)),
            )
            x_res, _ = smote.fit_resample(x[idx], y_bin)
            new_x.append(x_res[len(idx) :])
        new_y.extend([c] * extra)
    if not new_x:
        return FlowTable.empty(n_packets)
    return flows_from_flat(np.concatenate(new_x), np.array(new_y, dtype=object), n_packets)


def _shift_left(row: dict[str, np.ndarray], j: int) -> None:
    for arr in row.values():
        arr[j:-1] = arr[j + 1 :].copy()
        arr[-1] = 0


def handcrafted_augment(
    subset: FlowTable, missing: dict[str, int], n_packets: int, seed: int = 0
) -> FlowTable:
    """Transformed copies of random flows of each class (one random transform each, see module docstring)."""
    rng = np.random.default_rng(seed)
    window = subset.pad_to(n_packets)
    labels = window.labels.astype(str)
    picks = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), size=n, replace=True) for c, n in missing.items() if n > 0]
        or [np.zeros(0, dtype=np.int64)]
    )
    out = window.take(picks)
    out.meta = out.meta[["label"]].copy()
    lengths = out.length.copy()
    for i in range(len(out)):
        transform = HANDCRAFTED_TRANSFORMS[rng.integers(len(HANDCRAFTED_TRANSFORMS))]
        n = int(lengths[i])
        if transform == "iat_scale" or n < 2:
            out.iat[i] *= float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
        elif transform == "time_shift":
            j = int(rng.integers(1, n))
            gap_after = out.iat[i, j + 1] if j + 1 < n else out.iat[i, j]
            new_gap = rng.uniform(0.0, out.iat[i, j] + gap_after)
            if j + 1 < n:
                out.iat[i, j + 1] = out.iat[i, j] + out.iat[i, j + 1] - new_gap
            out.iat[i, j] = new_gap
        else:  # packet_drop
            j = int(rng.integers(1, n))
            if j + 1 < n:
                out.iat[i, j + 1] += out.iat[i, j]
            row = {name: getattr(out, name)[i] for name in ("payload", "direction", "iat", "flags", "window")}
            _shift_left(row, j)
            out.n_packets[i] -= 1
            lengths[i] = n - 1
    out.iat[:] = np.clip(out.iat, 0.0, None)
    return out


def synthetic_augment(source: Generator | FlowTable, missing: dict[str, int], seed: int = 0) -> FlowTable:
    """``missing[c]`` new flows of each class ``c`` from a generator or a synthetic table."""
    if sum(missing.values()) == 0:
        return FlowTable.empty()
    return synthetic_for_counts(source, missing, seed)


class SyntheticPool:
    """Flows of one generator for one seed, sampled once per class and reused across fractions.

    The low-data fractions of one seed all draw from the same full-split generator; sampling each class's
    largest need once (and growing the pool when a larger need comes) instead of once per fraction keeps
    slow samplers (diffusion on a CPU) affordable. A synthetic *table* source needs no pool.
    """

    def __init__(self, source: Generator | FlowTable, seed: int) -> None:
        self.source, self.seed, self.rounds = source, seed, 0
        self.flows: dict[str, FlowTable] = {}

    def take(self, missing: dict[str, int]) -> FlowTable:
        if not isinstance(self.source, Generator):
            return synthetic_augment(self.source, missing, self.seed)
        known = set(self.source.classes_ or [])
        need = {c: n - len(self.flows.get(c, ())) for c, n in missing.items() if c in known}
        need = {c: n for c, n in need.items() if n > 0}
        if need:
            fresh = synthetic_for_counts(self.source, need, seed=self.seed + 7919 * self.rounds)
            self.rounds += 1
            for c in need:
                part = fresh.take(fresh.labels.astype(str) == c)
                self.flows[c] = FlowTable.concat([self.flows[c], part]) if c in self.flows else part
        parts = [self.flows[c].take(np.arange(n)) for c, n in missing.items() if n > 0 and c in self.flows]
        return FlowTable.concat(parts) if parts else FlowTable.empty()


# ---------------------------------------------------------------------------------------------- experiment
def _score(
    train: FlowTable, test: FlowTable, classifier: str, n_packets: int, seed: int, options: dict[str, Any]
) -> float:
    from ntg.evaluation.tstr import fit_predict

    predicted = fit_predict(train, test, classifier, n_packets, seed, options)
    return classification_scores(test.labels, predicted)["macro_f1"]


def _keep_columns(table: FlowTable, n_packets: int) -> FlowTable:
    """The first ``n_packets`` with the label as the only meta column (what the classifier sees)."""
    table = table.pad_to(n_packets)
    return FlowTable(n_packets=table.n_packets, **{name: getattr(table, name) for name in PACKET_FIELDS},
                     meta=table.meta[["label"]].copy())


def _additions(
    drawn: FlowTable, subset: FlowTable, missing: dict[str, int], n_packets: int, seed: int,
    pool: SyntheticPool | None, fraction_generator: GeneratorFactory | None,
) -> dict[str, FlowTable | None]:
    """The flows each method adds to ``subset`` (None for real-only; methods without a source left out).
    ``drawn`` is ``subset`` with all its meta columns: the refit gets the captures its data rules read."""
    extra: dict[str, FlowTable | None] = {
        "real_only": None,
        "real+smote": smote_augment(subset, missing, n_packets, seed),
        "real+handcrafted": handcrafted_augment(subset, missing, n_packets, seed),
    }
    if pool is not None:
        extra["real+synthetic_full"] = pool.take(missing)
    if fraction_generator is not None:
        extra["real+synthetic_fraction"] = synthetic_augment(fraction_generator(drawn, seed), missing, seed)
    return extra


def _row(fraction: float, method: str, scores: dict, sizes: dict) -> dict[str, Any]:
    """One row of the table: a method's macro-F1 and gain over real-only at a fraction, over the seeds."""
    values, n_flows, base = scores[(fraction, method)], sizes[(fraction, method)], scores[(fraction, "real_only")]
    gains = [(v - b) / b if v is not None and b else None for v, b in zip(values, base, strict=True)]
    return {"fraction": float(fraction), "method": method, "macro_f1": mean_std(values), "gain": mean_std(gains),
            "per_seed": values, "train_flows": float(np.mean(n_flows)) if n_flows else None}


def run_augmentation(
    train: FlowTable,
    test: FlowTable,
    synthetic_source: Generator | FlowTable | None = None,
    fraction_generator: GeneratorFactory | None = None,
    fractions: Sequence[float] = FRACTIONS,
    seeds: Sequence[int] = (0, 1, 2),
    classifier: str = "rf",
    n_packets: int = 10,
    min_target: int = MIN_TARGET,
    progress: bool = False,
    classifier_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Macro-F1 of every method at every fraction, mean ± std over ``seeds`` (see module docstring).

    ``synthetic_source`` is the generator trained on the full training split (or a synthetic table);
    ``fraction_generator(subset, seed)`` returns a generator fitted on ``subset``, which keeps its meta columns
    (e.g. ``capture``). A method whose source is missing still gets its rows, with ``None`` scores and the reason
    in ``skipped``.
    ``classifier_options`` go to the classifier's constructor (e.g. ``{"n_estimators": 50}``).
    """
    options = dict(classifier_options or {})
    from tqdm.auto import tqdm

    skipped: dict[str, str] = {}
    if synthetic_source is None:
        skipped["real+synthetic_full"] = "no generator or synthetic file given"
    if fraction_generator is None:
        skipped["real+synthetic_fraction"] = "needs a generator (family + hyperparameters) to retrain"
    scores: dict[tuple[float, str], list[float | None]] = {(f, m): [] for f in fractions for m in METHODS}
    sizes: dict[tuple[float, str], list[int]] = {(f, m): [] for f in fractions for m in METHODS}
    full = _keep_columns(train, n_packets)
    steps = [(seed, f) for seed in seeds for f in fractions]
    bar = tqdm(total=len(steps), desc="augmentation", disable=not progress, file=None)
    ceiling: dict[int, float] = {}
    pools: dict[int, SyntheticPool] = {}
    for seed, fraction in steps:
        if seed not in ceiling:
            ceiling[seed] = _score(full, test, classifier, n_packets, seed, options)
        drawn = stratified_fraction(train, fraction, seed).pad_to(n_packets)
        subset = _keep_columns(drawn, n_packets)
        pool = pools.setdefault(seed, SyntheticPool(synthetic_source, seed)) if synthetic_source is not None else None
        missing = augmentation_targets(subset, min_target)
        extra = _additions(drawn, subset, missing, n_packets, seed, pool, fraction_generator)
        for method in METHODS:
            key = (fraction, method)
            if method == "real_100":
                scores[key].append(ceiling[seed])
                sizes[key].append(len(full))
            elif method not in extra:
                scores[key].append(None)
            else:
                added = extra[method]
                data = subset if added is None or len(added) == 0 else FlowTable.concat(
                    [subset, _keep_columns(added, n_packets)]
                )
                scores[key].append(_score(data, test, classifier, n_packets, seed, options))
                sizes[key].append(len(data))
        bar.update(1)
    bar.close()
    rows = [_row(fraction, method, scores, sizes) for fraction in fractions for method in METHODS]
    return {
        "classifier": classifier,
        "fractions": [float(f) for f in fractions],
        "methods": list(METHODS),
        "seeds": list(seeds),
        "min_target": min_target,
        "target_rule": "each class brought up to max(min_target, largest class count in the subset)",
        "rows": rows,
        "skipped": skipped,
    }
