"""The fast evaluation profile: the few numbers a search needs from every trial, in seconds.

A sweep scores each trial on the **validation** split (the test split is kept for the final reports and the
zoo cards), so :func:`fast_scores` computes, with the same definitions as the full report:

==========================  =====================================================================================
``fidelity``                the fidelity score (:func:`~ntg.evaluation.fidelity.fidelity_report`, per class,
                            lower is better) of synthetic flows with the class counts of the ``split`` flows
``tstr_f1``                 macro-F1 on the ``split`` flows of the Random Forest trained on synthetic flows with
                            the class counts of the training split (one seed)
``trtr_f1``                 the same Random Forest trained on the real training split (the reference)
``copy_rate``               share of those synthetic flows that exactly copy a training flow
``natural_copy_rate``       share of the real ``split`` flows that exactly copy a training flow
``dcr_synth_median``        median distance to the closest training record of the synthetic flows
``dcr_holdout_median``      the same for the real ``split`` flows (held out from training)
``eval_seconds``            wall time of the call
``privacy_ok``              bool: ``copy_rate ≤ natural_copy_rate + margin`` and
                            ``dcr_synth_median ≥ DCR_FRACTION · dcr_holdout_median``
==========================  =====================================================================================

The copy margin is the one of the full privacy axis (:func:`~ntg.evaluation.privacy.memorisation_threshold`:
``max(0.05, 3·SE)``), so ``privacy_ok`` is False exactly where the report flags memorisation, or where the
synthetic flows sit much closer to the training flows than fresh real flows do. The bootstrap (copy rate 1)
always fails it.

Everything that depends on the real data only (the training flows' exact-copy signatures and nearest-neighbour
index, the hold-out's DCR and natural copy rate; the TRTR fit through :func:`~ntg.evaluation.tstr.fit_predict`'s
cache) is computed once per process and dataset and reused by later calls: a search evaluates many generators
against the same data.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.neighbors import NearestNeighbors

from ntg.data.dataset import PreparedDataset
from ntg.data.schema import FlowTable
from ntg.errors import NtgError
from ntg.evaluation.axes import FIDELITY_SEED_OFFSET
from ntg.evaluation.fidelity import fidelity_report
from ntg.evaluation.joint import feature_scaler, raw_flow_features
from ntg.evaluation.privacy import IAT_RESOLUTION, flow_signatures, memorisation_threshold
from ntg.evaluation.sources import packet_window
from ntg.evaluation.tstr import synthetic_like, train_and_score
from ntg.models.base import Generator

DCR_FRACTION = 0.5  # synthetic flows may sit at most twice as close to training flows as held-out real flows
FAST_SPLITS = ("val", "test")
SCORE_KEYS = ("fidelity", "tstr_f1", "trtr_f1", "copy_rate", "natural_copy_rate", "dcr_synth_median",
              "dcr_holdout_median", "eval_seconds")


@dataclass
class _RealReference:
    """What the fast profile derives from the real flows alone (cached per dataset, split and window)."""

    train: FlowTable
    holdout: FlowTable
    train_signatures: frozenset
    mean: np.ndarray
    std: np.ndarray
    index: NearestNeighbors
    natural_copy_rate: float
    dcr_holdout_median: float

    def dcr(self, flows: FlowTable) -> np.ndarray:
        """Distance of each flow to its closest training flow (standardised features, Euclidean)."""
        distances, _ = self.index.kneighbors((raw_flow_features(flows) - self.mean) / self.std)
        return distances[:, 0]

    def copy_rate(self, flows: FlowTable) -> float:
        """Share of ``flows`` that exactly copy a training flow (:func:`~ntg.evaluation.privacy.copy_mask`)."""
        signatures = flow_signatures(flows, IAT_RESOLUTION)
        return float(np.mean([s in self.train_signatures for s in signatures])) if len(signatures) else 0.0


_REFERENCES: dict[tuple, _RealReference] = {}


def _reference(dataset: PreparedDataset, split: str, n: int) -> _RealReference:
    key = (str(dataset.root.resolve()), split, n, len(dataset.flows))
    if key not in _REFERENCES:
        train, holdout = dataset.train.first(n), dataset.split(split).first(n)
        mean, std = feature_scaler(train)
        index = NearestNeighbors(n_neighbors=1).fit((raw_flow_features(train) - mean) / std)
        ref = _RealReference(train, holdout, frozenset(flow_signatures(train, IAT_RESOLUTION)), mean, std,
                             index, 0.0, 0.0)
        ref.natural_copy_rate = ref.copy_rate(holdout)
        ref.dcr_holdout_median = float(np.median(ref.dcr(holdout)))
        _REFERENCES.clear()  # one dataset at a time: a search never switches
        _REFERENCES[key] = ref
    return _REFERENCES[key]


def privacy_gate(privacy: Mapping[str, Any]) -> bool:
    """The search's privacy constraint on :func:`~ntg.evaluation.privacy.privacy_report`'s figures: memorisation
    not flagged (``copy_rate ≤ natural_copy_rate + copy_threshold``) and ``dcr_median ≥ DCR_FRACTION ·
    dcr_test_median``."""
    return bool(privacy["copy_rate"] <= privacy["natural_copy_rate"] + privacy["copy_threshold"]
                and privacy["dcr_median"] >= DCR_FRACTION * privacy["dcr_test_median"])


def fast_scores(
    gen_or_synth: Generator | FlowTable,
    dataset: PreparedDataset,
    *,
    split: str = "val",
    seed: int = 0,
    n_packets: int | None = None,
    classifier_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The fast profile's scores of a generator (or a table of synthetic flows) against ``dataset``.

    Keys and definitions are in the module docstring; every number is a finite float (NtgError otherwise,
    naming the key, so that a search fails the trial instead of reporting NaN). ``classifier_options`` are
    Random Forest constructor options (``n_estimators``, ``n_jobs``).
    """
    started = time.perf_counter()
    if split not in FAST_SPLITS:
        raise NtgError(f"the fast profile scores on split 'val' or 'test', not {split!r}")
    if len(dataset.split(split)) == 0 or len(dataset.train) == 0:
        raise NtgError(f"{dataset.root}: the train and {split} splits need flows for the fast profile; "
                       "re-prepare the dataset with non-empty splits")
    n = packet_window(dataset, gen_or_synth, n_packets)
    ref = _reference(dataset, split, n)
    options = dict(classifier_options or {})

    synth = _first(synthetic_like(gen_or_synth, ref.train, seed=seed), n)
    synth_holdout = _first(synthetic_like(gen_or_synth, ref.holdout, seed=seed + FIDELITY_SEED_OFFSET), n)
    fidelity = fidelity_report(ref.holdout, synth_holdout, per_class=True, seed=0)["score"]
    tstr = train_and_score(synth, ref.holdout, "rf", n, seed, dataset.classes, options)["macro_f1"]
    copy_rate = ref.copy_rate(synth)
    dcr_synth = float(np.median(ref.dcr(synth)))
    scores: dict[str, Any] = {
        "fidelity": fidelity,
        "tstr_f1": tstr,
        "trtr_f1": train_and_score(ref.train, ref.holdout, "rf", n, seed, dataset.classes, options)["macro_f1"],
        "copy_rate": copy_rate,
        "natural_copy_rate": ref.natural_copy_rate,
        "dcr_synth_median": dcr_synth,
        "dcr_holdout_median": ref.dcr_holdout_median,
    }
    margin = memorisation_threshold(copy_rate, ref.natural_copy_rate, len(synth), len(ref.holdout))
    scores["privacy_ok"] = privacy_gate({"copy_rate": copy_rate, "natural_copy_rate": ref.natural_copy_rate,
                                         "copy_threshold": margin, "dcr_median": dcr_synth,
                                         "dcr_test_median": ref.dcr_holdout_median})
    scores["eval_seconds"] = time.perf_counter() - started
    for key in SCORE_KEYS:
        value = float(scores[key])
        if not math.isfinite(value):
            raise NtgError(f"fast evaluation: {key} is {value} (too few flows per class in the {split} split?); "
                           "prepare the dataset with more flows per class or evaluate another split")
        scores[key] = value
    return scores


def _first(flows: FlowTable, n: int) -> FlowTable:
    return flows.first(n) if flows.max_packets > n else flows
