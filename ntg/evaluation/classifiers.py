"""Traffic classifiers used to judge synthetic data: the paper's Random Forest and a small 1-D CNN.

Both share one scikit-learn-like interface on :class:`~ntg.data.schema.FlowTable` inputs::

    clf = make_classifier("rf", n_packets=10, seed=0).fit(train_flows)
    predicted = clf.predict(test_flows)  # array of class-name strings

Classes are learnt from the training labels; a class absent from training can never be predicted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import numpy as np

from ntg.data.schema import DEFAULT_N, FlowTable
from ntg.errors import NtgError
from ntg.evaluation.features import flat_features, series_features
from ntg.evaluation.options import CLASSIFIER_NAMES


class FlowClassifier(Protocol):
    """What TSTR and augmentation need from a classifier."""

    name: str

    def fit(self, flows: FlowTable) -> FlowClassifier: ...

    def predict(self, flows: FlowTable) -> np.ndarray: ...


def _check_training_set(flows: FlowTable) -> np.ndarray:
    if len(flows) == 0:
        raise NtgError("cannot train a classifier on 0 flows; check the training or synthetic set")
    return flows.labels.astype(str)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block on ``n`` torch intra-op threads, then restore the caller's setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def default_jobs() -> int:
    """Threads a classifier may use: ``OMP_NUM_THREADS`` where set (Ray Tune trials and the benchmarks cap it
    there), else every core this process may run on. A seeded forest is the same for any number of jobs."""
    import os

    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class RandomForestFlowClassifier:
    """scikit-learn Random Forest on :func:`~ntg.evaluation.features.flat_features` (200 trees, seeded; trees
    built on :func:`default_jobs` threads unless ``n_jobs`` is given)."""

    name = "rf"

    def __init__(self, n_packets: int = DEFAULT_N, n_estimators: int = 200, n_jobs: int | None = None,
                 seed: int = 0):
        self.n_packets = n_packets
        self.n_estimators = n_estimators
        self.n_jobs = n_jobs if n_jobs is not None else default_jobs()
        self.seed = seed

    def fit(self, flows: FlowTable) -> RandomForestFlowClassifier:
        from sklearn.ensemble import RandomForestClassifier

        labels = _check_training_set(flows)
        self.model_ = RandomForestClassifier(
            n_estimators=self.n_estimators, n_jobs=self.n_jobs, random_state=self.seed
        )
        self.model_.fit(flat_features(flows, self.n_packets), labels)
        self.classes_ = [str(c) for c in self.model_.classes_]
        return self

    def predict(self, flows: FlowTable) -> np.ndarray:
        return self.model_.predict(flat_features(flows, self.n_packets)).astype(object)


class CNNFlowClassifier:
    """A 1-D CNN over the per-packet series, trained with class weights ``(n / (K n_c)) ** class_weight_power``
    (1: fully balanced; the default 0.5 scored best on iot-sentinel, where full balancing over-predicts rare
    classes).

    Three conv layers; the head sees max- and mean-pooled features plus a narrow per-position projection
    (packet order matters in the first N packets).

    Early stopping keeps the weights of the epoch with the best macro-F1 on a stratified validation slice
    (``val_fraction`` of the training flows, only from classes with 2+ flows; none when fewer than 20 flows).

    Fits and predicts on ``threads`` torch threads (default 1): with two threads the same seed gave another
    model (accuracy 0.615 instead of 0.626 on iot-sentinel: parallel reductions sum in another order), and on
    a loaded 2-core machine the threads' spin-waiting made the default evaluation 2.7× slower in CPU time
    (benchmarks/bench_evaluate.py, 2026-12-02); on a quiet machine two threads fit 1.8× faster.
    """

    name = "cnn"

    def __init__(
        self,
        n_packets: int = DEFAULT_N,
        width: int = 64,
        epochs: int = 40,
        batch_size: int = 128,
        lr: float = 3e-3,
        patience: int = 6,
        val_fraction: float = 0.15,
        class_weight_power: float = 0.5,
        seed: int = 0,
        device: str = "cpu",
        threads: int = 1,
    ):
        self.n_packets = n_packets
        self.width = width
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.patience = patience
        self.val_fraction = val_fraction
        self.class_weight_power = class_weight_power
        self.seed = seed
        self.device = device
        self.threads = threads

    def _build(self, n_classes: int):
        import torch
        from torch import nn

        w = self.width

        n = self.n_packets

        class SeriesCNN(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.convs = nn.Sequential(
                    nn.Conv1d(4, w // 2, 3, padding=1), nn.ReLU(),
                    nn.Conv1d(w // 2, w, 3, padding=1), nn.ReLU(),
                    nn.Conv1d(w, w, 3, padding=1), nn.ReLU(),
                )
                self.squeeze = nn.Conv1d(w, 8, 1)  # keeps per-position detail for the head
                self.head = nn.Sequential(
                    nn.Linear(2 * w + 8 * n, 2 * w), nn.ReLU(), nn.Dropout(0.1), nn.Linear(2 * w, n_classes)
                )

            def forward(self, x):
                h = self.convs(x)
                pooled = torch.cat([h.amax(dim=2), h.mean(dim=2), self.squeeze(h).flatten(1)], dim=1)
                return self.head(pooled)

        return SeriesCNN()

    def _validation_split(self, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        idx = np.arange(len(y))
        if len(y) < 20 or self.val_fraction <= 0:
            return idx, idx[:0]
        val = []
        for c in np.unique(y):
            members = rng.permutation(idx[y == c])
            if len(members) >= 2:
                val.extend(members[: max(1, int(round(self.val_fraction * len(members))))].tolist())
        val_idx = np.array(sorted(val), dtype=np.int64)
        return np.setdiff1d(idx, val_idx), val_idx

    def fit(self, flows: FlowTable) -> CNNFlowClassifier:
        with torch_threads(self.threads):
            return self._fit(flows)

    def _fit(self, flows: FlowTable) -> CNNFlowClassifier:
        import torch
        from sklearn.metrics import f1_score

        labels = _check_training_set(flows)
        self.classes_ = sorted(set(labels.tolist()))
        lookup = {c: i for i, c in enumerate(self.classes_)}
        y = np.array([lookup[c] for c in labels], dtype=np.int64)
        x = torch.from_numpy(series_features(flows, self.n_packets))
        rng = np.random.default_rng(self.seed)
        train_idx, val_idx = self._validation_split(y, rng)
        torch.manual_seed(self.seed)
        module = self._build(len(self.classes_)).to(self.device)
        counts = np.bincount(y[train_idx], minlength=len(self.classes_)).astype(np.float64)
        weights = np.where(counts > 0, len(train_idx) / (len(self.classes_) * np.maximum(counts, 1)), 0.0)
        weights = weights**self.class_weight_power
        class_weights = torch.tensor(weights, dtype=torch.float32, device=self.device)
        loss_fn = torch.nn.CrossEntropyLoss(weight=class_weights)
        opt = torch.optim.AdamW(module.parameters(), lr=self.lr, weight_decay=1e-4)
        x_dev, y_dev = x.to(self.device), torch.from_numpy(y).to(self.device)
        best_score, best_state, stale = -1.0, None, 0
        batch_size = int(min(self.batch_size, max(16, len(train_idx) // 8)))
        for _ in range(self.epochs):
            module.train()
            train_idx = rng.permutation(train_idx)
            for start in range(0, len(train_idx), batch_size):
                batch = torch.from_numpy(train_idx[start : start + batch_size]).to(self.device)
                opt.zero_grad()
                loss_fn(module(x_dev[batch]), y_dev[batch]).backward()
                opt.step()
            if len(val_idx) == 0:
                continue
            module.eval()
            with torch.no_grad():
                pred = module(x_dev[val_idx]).argmax(dim=1).cpu().numpy()
            score = f1_score(y[val_idx], pred, average="macro", zero_division=0)
            if score > best_score + 1e-6:
                best_score, stale = score, 0
                best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            else:
                stale += 1
                if stale >= self.patience:
                    break
        if best_state is not None:
            module.load_state_dict(best_state)
        module.eval()
        self.module_ = module
        self.best_val_macro_f1_ = best_score if len(val_idx) else None
        return self

    def predict(self, flows: FlowTable) -> np.ndarray:
        import torch

        x = torch.from_numpy(series_features(flows, self.n_packets)).to(self.device)
        out = []
        with torch.no_grad(), torch_threads(self.threads):
            for start in range(0, len(x), 4096):
                out.append(self.module_(x[start : start + 4096]).argmax(dim=1).cpu().numpy())
        ids = np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
        return np.asarray(self.classes_, dtype=object)[ids]


CLASSIFIERS = dict(zip(CLASSIFIER_NAMES, (RandomForestFlowClassifier, CNNFlowClassifier), strict=True))


def make_classifier(name: str, n_packets: int = DEFAULT_N, seed: int = 0, **kwargs) -> FlowClassifier:
    """A fresh classifier by name (``"rf"`` or ``"cnn"``)."""
    if name not in CLASSIFIERS:
        raise NtgError(f"unknown classifier {name!r}; choose one of {sorted(CLASSIFIERS)}")
    return CLASSIFIERS[name](n_packets=n_packets, seed=seed, **kwargs)
