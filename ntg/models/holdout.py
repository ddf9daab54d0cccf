"""Stratified hold-outs and subsamples: every class of the training table keeps training flows.

A random, unstratified validation share can take all the flows of a rare class out of training; the fitted
generator then does not know that class, and asking it for one fails (``label 'SmarterCoffee' was not in the
training data``) after minutes of work. Here each class gives up a share in proportion to its size (largest
remainders get the rounding), never its last flow, so ``classes_`` always equals the classes of ``train``.
"""

from __future__ import annotations

import numpy as np

from ntg.data.schema import FlowTable


def stratified_take(labels: np.ndarray, n_take: int, seed: int) -> np.ndarray:
    """A seeded boolean mask choosing about ``n_take`` rows, proportionally per class, never a class's last
    row (a class of one row is never taken); fewer when the classes cannot spare that many."""
    labels = labels.astype(str)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    capacity = counts - 1
    quota = n_take * counts / counts.sum()
    take = np.minimum(np.floor(quota).astype(np.int64), capacity)
    while (spare := n_take - int(take.sum())) > 0 and (take < capacity).any():
        # hand the rounding to the largest remainders among the classes that can still give (several rounds
        # when capped classes leave more to hand out than there are classes)
        remainder = np.where(take < capacity, quota - take, -np.inf)
        givers = np.argsort(-remainder, kind="stable")[: min(spare, int((take < capacity).sum()))]
        take[givers] += 1
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for c in range(len(classes)):
        rows = np.flatnonzero(inverse == c)
        mask[rng.permutation(rows)[: take[c]]] = True
    return mask


def split_train_val(
    train: FlowTable, val: FlowTable | None, val_fraction: float, max_train_flows: int | None, seed: int
) -> tuple[FlowTable, FlowTable | None, list[str]]:
    """Training and validation tables for the loop, and notes on what was decided.

    ``val`` None (or empty) holds out a stratified ``val_fraction`` of ``train``; when no class can spare a
    flow there is no hold-out (and a note says so). ``max_train_flows`` then subsamples the training share,
    stratified, keeping at least one flow of every class (so a few more than asked when there are more
    classes than that).
    """
    notes: list[str] = []
    if val is None or len(val) == 0:
        val = None
        if val_fraction > 0 and len(train) >= 2:
            held = stratified_take(train.labels, max(1, int(round(val_fraction * len(train)))), seed)
            if held.any():
                val, train = train.take(np.flatnonzero(held)), train.take(np.flatnonzero(~held))
            else:
                notes.append(f"no validation hold-out: no class of the {len(train)} training flows can spare "
                             "one; trained without early stopping")
    if max_train_flows is not None and len(train) > max_train_flows:
        dropped = stratified_take(train.labels, len(train) - max_train_flows, seed + 1)
        train = train.take(np.flatnonzero(~dropped))
        if len(train) > max_train_flows:
            notes.append(f"max_train_flows={max_train_flows}: kept {len(train)} flows, one or more per class")
    return train, val, notes
