"""Train-synthetic-test-real (TSTR) against train-real-test-real (TRTR).

A classifier is trained on synthetic flows whose class counts match the real training split and tested on
the real test split; the same classifier trained on the real training split gives the TRTR reference. The
generator only ever saw the real training split, and no classifier ever trains on a test flow.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ntg.data.schema import FlowTable
from ntg.errors import NtgError
from ntg.evaluation.classifiers import make_classifier
from ntg.evaluation.features import flat_features
from ntg.models.base import Generator

MIN_SUPPORT = 10  # classes with at least this many test flows enter ``macro_f1_supported``
CACHE_SIZE = 256  # predictions kept by :func:`fit_predict` (a few kB each)
_PREDICTIONS: OrderedDict[str, np.ndarray] = OrderedDict()


def classification_scores(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: Sequence[str] | None = None,
    min_support: int = MIN_SUPPORT,
) -> dict[str, Any]:
    """Macro-F1 (over the classes present in ``y_true``), accuracy, per-class F1, confusion matrix.

    ``macro_f1_supported`` averages F1 over classes with at least ``min_support`` true flows (None if none).
    ``confusion`` rows are true classes, columns predicted, both in the order of ``classes``.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    y_true, y_pred = np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str)
    if len(y_true) == 0:
        raise NtgError("the real test split has no flows; re-prepare the dataset with a non-empty test split")
    present, support = np.unique(y_true, return_counts=True)
    classes = sorted(set(present) | set(y_pred)) if classes is None else [str(c) for c in classes]
    per_class = f1_score(y_true, y_pred, labels=present, average=None, zero_division=0)
    supported = present[support >= min_support]
    return {
        "macro_f1": float(np.mean(per_class)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1_supported": float(np.mean(per_class[support >= min_support])) if len(supported) else None,
        "supported_classes": [str(c) for c in supported],
        "per_class_f1": {str(c): float(f) for c, f in zip(present, per_class, strict=True)},
        "support": {str(c): int(s) for c, s in zip(present, support, strict=True)},
        "confusion_labels": list(classes),
        "confusion": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
    }


def class_counts(flows: FlowTable) -> dict[str, int]:
    labels, counts = np.unique(flows.labels.astype(str), return_counts=True)
    return {str(c): int(n) for c, n in zip(labels, counts, strict=True)}


def synthetic_like(source: Generator | FlowTable, reference: FlowTable, seed: int = 0) -> FlowTable:
    """Synthetic flows with the class counts of ``reference`` (see :func:`synthetic_for_counts`)."""
    return synthetic_for_counts(source, class_counts(reference), seed)


def synthetic_for_counts(source: Generator | FlowTable, counts: dict[str, int], seed: int = 0) -> FlowTable:
    """``counts[c]`` synthetic flows of every class ``c``.

    From a generator: sampled with per-row labels (classes it does not know are left out).
    From a table of synthetic flows: per class, drawn without replacement when there are enough flows, with
    replacement otherwise; classes absent from the table are left out.
    """
    counts = {c: n for c, n in counts.items() if n > 0}
    if isinstance(source, Generator):
        known = set(source.classes_ or [])
        labels = np.array([c for c, n in counts.items() if c in known for _ in range(n)], dtype=object)
        if len(labels) == 0:
            raise NtgError(f"the generator knows none of the classes {sorted(counts)}; wrong dataset?")
        return source.sample(len(labels), label=labels, seed=seed)
    rng = np.random.default_rng(seed)
    pool_labels = source.labels.astype(str)
    picks = []
    for c, n in counts.items():
        members = np.flatnonzero(pool_labels == c)
        if len(members):
            picks.append(rng.choice(members, size=n, replace=len(members) < n))
    if not picks:
        raise NtgError(f"the synthetic flows hold none of the classes {sorted(counts)}; check their labels")
    return source.take(np.concatenate(picks))


def fit_predict(
    train: FlowTable,
    test: FlowTable,
    classifier: str = "rf",
    n_packets: int = 10,
    seed: int = 0,
    options: dict[str, Any] | None = None,
) -> np.ndarray:
    """Labels predicted for ``test`` by ``classifier`` fitted on ``train``.

    The last :data:`CACHE_SIZE` results are kept, keyed by the classifier's inputs (the flows' feature rows and
    labels, classifier, window, seed, options), because evaluations repeat the same fit: TRTR is the same for
    every generator judged on a dataset, augmentation's ceiling is the stored split's TRTR, and its real-only,
    SMOTE and hand-crafted rows are the same for every generator (the demo judges seven in one process). Seeded fits are
    deterministic, so a cached prediction is the one a new fit would make.
    """
    options = dict(options or {})
    key = _fingerprint(flat_features(train, n_packets), train.labels.astype(str), flat_features(test, n_packets),
                       repr((classifier, n_packets, seed, sorted((k, v) for k, v in options.items()
                                                              if k != "n_jobs"))))
    if key in _PREDICTIONS:
        _PREDICTIONS.move_to_end(key)
        return _PREDICTIONS[key]
    model = make_classifier(classifier, n_packets=n_packets, seed=seed, **options).fit(train)
    _PREDICTIONS[key] = model.predict(test)
    while len(_PREDICTIONS) > CACHE_SIZE:
        _PREDICTIONS.popitem(last=False)
    return _PREDICTIONS[key]


def _fingerprint(*parts: Any) -> str:
    digest = hashlib.blake2b(digest_size=20)
    for part in parts:
        arr = np.asarray(part)
        digest.update(repr((arr.dtype.str, arr.shape)).encode())
        digest.update(arr.tobytes() if arr.dtype != object else "\x1f".join(map(str, arr.ravel())).encode())
    return digest.hexdigest()


def train_and_score(
    train: FlowTable,
    test: FlowTable,
    classifier: str = "rf",
    n_packets: int = 10,
    seed: int = 0,
    classes: Sequence[str] | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit ``classifier`` (constructor ``options``, e.g. ``n_estimators``) on ``train``; score on ``test``."""
    return classification_scores(test.labels, fit_predict(train, test, classifier, n_packets, seed, options), classes)


def tstr_trtr(
    real_train: FlowTable,
    real_test: FlowTable,
    synthetic: FlowTable,
    classifier: str = "rf",
    n_packets: int = 10,
    seed: int = 0,
    classes: Sequence[str] | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Scores of the same classifier trained on ``synthetic`` (TSTR) and on ``real_train`` (TRTR).

    ``ratio`` is TSTR macro-F1 / TRTR macro-F1 (None when TRTR is 0).
    """
    trtr = train_and_score(real_train, real_test, classifier, n_packets, seed, classes, options)
    tstr = train_and_score(synthetic, real_test, classifier, n_packets, seed, classes, options)
    return {
        "tstr": tstr,
        "trtr": trtr,
        "ratio": tstr["macro_f1"] / trtr["macro_f1"] if trtr["macro_f1"] > 0 else None,
        "n_synthetic": len(synthetic),
        "n_train": len(real_train),
        "n_test": len(real_test),
    }


def mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    """``{"mean", "std", "n"}`` over the non-None values (population std; None when there are none)."""
    xs = np.array([v for v in values if v is not None], dtype=np.float64)
    if len(xs) == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(xs.mean()), "std": float(xs.std()), "n": int(len(xs))}
