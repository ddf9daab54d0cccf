"""Defaults that follow the data: what a fit does with the settings a user leaves unset.

``TrainConfig.epochs``, ``batch_size`` and ``selection`` default to "decide from the training set";
:func:`resolve_train_config` applies these rules at the start of every fit (after the hold-out is taken), writes
the decision into the run's notes, and a user who sets a value gets exactly that value:

=====================  ==========================================  ===========================================
                       large training set (≥ ``SMALL_DATA_FLOWS``)  small training set
=====================  ==========================================  ===========================================
``batch_size``         256                                         the largest power of two giving at least
                                                                   ``MIN_STEPS_PER_EPOCH`` steps per epoch
                                                                   (16..256)
``epochs``             20 (diffusion: 120)                         12 (diffusion: 60)
``selection``          ``val_loss``: keep the weights of the best  ``last``: keep the last epoch's weights; the
                       validation loss, stop after ``patience``    validation loss is logged, not used
                       epochs without improvement (diffusion:
                       ``last``)
=====================  ==========================================  ===========================================

Why (measured with ``benchmarks/bench_quality.py``; the numbers are in ``benchmarks/quality_findings.md``): on a few
thousand flows from a few dozen captures, the capture-level validation split holds captures whose flows the model
never saw the like of, and its loss is lowest after a few dozen optimiser steps, long before the network has learnt
the classes (the transformer stopped at epoch 4–9 with a validation loss of 7 against a training loss of 4, sampled
flows three times farther from any real flow than held-out flows are, and scored TSTR/TRTR 0.68 on ndpi-pcaps
against the Markov chain's 0.91). Trained for a fixed budget instead, the same network goes from blurred (too few
steps) through realistic (12 passes: TSTR/TRTR 0.98, distance to the closest training flow at the level of held-out
flows, copy rate within the privacy margin) to memorised (24+ passes: TSTR/TRTR 1.03 but copy rate above the margin
and distances a tenth of held-out ones). Large sets keep the validation criterion: there the split has many captures
per class and its loss tracks sample quality, except for diffusion: its loss is a mean over noise levels that
flattens long before the samples stop improving, and with patience 5 it stopped a 120-epoch run at epoch 62 while
the learning rate was still at half its peak (iot-sentinel, split seed 1: TSTR/TRTR 0.758, fidelity 0.119, against
0.733 and 0.089 after 60 epochs), so the family trains its whole budget. Batch 256 on a thousand flows would leave
four optimiser steps per epoch; the batch rule keeps the number of updates per pass comparable across sizes.

Sampling (transformer, SSM): ``class_support`` left unset (None) is decided in ``prepare`` by
:func:`class_support_rule`: each class draws only the packet tokens and iat bins it used in training when at least
``RECURRENT_SHARE`` of the training flows recur, as the same token sequence of the same class, in another capture.
Why: where traffic repeats itself across captures (iot-sentinel 0.46–0.47 of the flows, requet 0.43), new real
flows are made of tokens already seen, held-out real flows sit as close to the training flows as a confined
generator does, and the mask removes the off-class draws that cost fidelity (requet: 1 % of the transformer's DNS
responses were over 1,000 bytes, which no training DNS flow has). Where almost every flow is new to other captures
(ndpi-pcaps: 0.015–0.028, although a third of its flows repeat within their own capture), the off-class draws are
what keeps the networks' flows as far from the training flows as real ones are: confined, the SSM's median DCR fell
from 1.21 to 0.27–0.35 against 0.82–1.15 for held-out flows. Figures: ``benchmarks/quality_findings.md``, item 9.
Whatever the share, a class with fewer than ``RARE_CLASS_FLOWS`` training flows is confined: a class embedding
trained on a handful of flows leaves the heads near the other classes' distributions (ndpi-pcaps split seed 3: 6
LLMNR flows, a third to half of the networks' LLMNR flows carried other classes' sizes, TSTR/TRTR 0.60 / 0.65
against the chain's 0.86; confined, 0.65 / 0.90 with fidelity 0.305 / 0.314 → 0.275 / 0.260 and privacy kept;
item 10). A table without a ``capture`` column confines only its rare classes.

Training (every neural family): ``capture_balance`` left unset is decided in ``prepare`` by
:func:`capture_balance_rule` from the same share. Where flows do not recur across captures (share below
``RECURRENT_SHARE``), every capture is an environment of its own, and the flows the generator is judged against come
from captures it never saw; the training split, though, is dominated per class by one or two large captures
(ndpi-pcaps split seed 0: 66 of the 229 DNS flows come from one of 15 captures, 86 of 88 WhatsApp flows from one).
Each epoch then draws the class's flows with replacement, a flow of a capture holding ``n`` flows of its class with
weight ``n ** -CAPTURE_BALANCE`` (each class keeps its number of draws): the network learns the class across its
captures rather than its largest capture. Exponent 1 (every capture equal; measured with the split resampled once by
the weights) lifted the transformer's TSTR/TRTR further but repeated the flows of one-flow captures so often that the
copy rate crossed the privacy margin on 8 of 10 splits; 0.5 keeps it (ndpi-pcaps, 10 split seeds × 3 draws; figures
in ``benchmarks/quality_findings.md``, item 12). Where flows recur
(iot-sentinel, requet) the training split already covers what new captures hold, and every flow is drawn once per
epoch as before. A table without captures, or whose classes' captures all hold as many flows, is drawn as before.

Training (transformer, SSM): ``context_noise`` left unset is decided in ``prepare`` by :func:`context_noise_rule`
from the same share. Where flows do not recur across captures, each input packet of a training flow is replaced,
with the family's ``default_context_noise`` (transformer 0.2, SSM 0.3), by the packet another flow of the batch has
at that position (:func:`ntg.models.autoregressive.noise_context`; targets untouched). This is data noising as
smoothing (Xie et al., ICLR 2017): a network that must predict the next packet from partly wrong context leans on
the class and the few packets before, as a back-off Markov chain does, instead of on the exact sequence of one
training flow. Why: the networks' TSTR/TRTR on such sets rose with more passes only as they began to replay
training flows (privacy failed on some splits; ``benchmarks/quality_findings.md``, items 7, 12, 13). With the noise
(ndpi-pcaps, 10 split seeds × 3 draws, paired with the same code without it), split seeds 0–9: transformer
TSTR/TRTR 0.902 → 0.916, fidelity 0.209 → 0.201, privacy ok on 9 → 10 of 10; SSM 0.940 → 0.961, 0.206 → 0.205, 10
of 10. Split seeds 10–19, measured after the rates were chosen on seeds 0–9: transformer 0.897 → 0.949, 0.228 →
0.222, 9 → 10 of 10; SSM 0.930 → 0.940, 0.232 → 0.233, 9 → 10 of 10 (the chain 0.921, 0.241, 0 of 10). The SSM,
which fits its training flows faster, takes more noise: at 0.2 it scored 0.945, the transformer at 0.3 0.892
(item 14). Where flows recur (requet) the noise did not help (transformer at 0.2: 0.996 against 0.997; SSM at 0.3:
−0.001 ± 0.001, fidelity 0.002 worse), so the rule leaves those sets alone.

Sampling (diffusion): ``guidance_scale`` left unset is decided in ``prepare`` by :func:`guidance_rule` from the same
share. Where flows do not recur across captures the generator samples its plain conditional model (guidance
``UNGUIDED``, 1: one network pass per DDIM step); elsewhere, and on tables without captures, with the family's
``default_guidance`` of 1.5. Why: classifier-free guidance extrapolates away from the unconditional prediction and
pulls each class towards its training modes. Where new captures hold what the training captures hold, that is what
the classifier tells the classes by, and 1 against 1.5 trades TSTR/TRTR against fidelity inside the split noise
(iot-sentinel, 29 classes, split seeds 0–4: −0.016 ± 0.025 on TSTR/TRTR, fidelity 0.008 ± 0.005 better; requet,
10 split seeds × 3 draws: +0.003 ± 0.002, fidelity 0.007 ± 0.006 worse); where each capture is new, it brings the
flows onto training flows. ndpi-pcaps, the bench's fits sampled both ways, split seeds 0–9 × 3 draws: at 1 against
1.5 TSTR/TRTR 0.919 against 0.923 (−0.004 ± 0.050), fidelity 0.195 against 0.201, copy rate 0.040 against 0.050,
privacy ok on 10 against 9 of 10. Split seeds 10–19, fitted and measured after the rule was chosen: 0.919 against
0.909 (+0.010 ± 0.040), fidelity 0.217 against 0.224 (better on 8 of 10), copy rate 0.038 against 0.047, privacy ok
on 10 against 8 of 10 (the chain there: 0.921, 0.241, 0 of 10). Sampling also takes half the time. Figures:
``benchmarks/quality_findings.md``, item 24.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import numpy as np

from ntg.models.settings import TrainConfig

SMALL_DATA_FLOWS = 4096  # training flows below which the small-data rules apply
LARGE_EPOCHS, SMALL_EPOCHS = 20, 12
LARGE_SELECTION, SMALL_SELECTION = "val_loss", "last"
LARGE_BATCH, MIN_BATCH = 256, 16
MIN_STEPS_PER_EPOCH = 16
RECURRENT_SHARE = 0.1  # flows recurring in another capture above which each class is confined to its own tokens
RARE_CLASS_FLOWS = 16  # training flows below which a class is confined to its own tokens whatever the share
CAPTURE_BALANCE = 0.5  # exponent of the per-capture weights where flows do not recur across captures
UNGUIDED = 1.0  # diffusion's guidance where flows do not recur across captures: the conditional model as learnt


def _recurring(share: float) -> str:
    """How a rule's note names the share of recurring flows it was decided from."""
    return f"{share:.3f} of the training flows recur in another capture"


def _share_note(share: float) -> str:
    """:func:`_recurring` with the threshold it was compared with."""
    return f"{_recurring(share)}; threshold {RECURRENT_SHARE}, see ntg/models/data_rules.py"


def small_data(n_train: int) -> bool:
    return n_train < SMALL_DATA_FLOWS


def default_batch_size(n_train: int) -> int:
    """256 for large sets; else the largest power of two ≤ ``n_train / MIN_STEPS_PER_EPOCH``, within 16..256."""
    if not small_data(n_train):
        return LARGE_BATCH
    batch = MIN_BATCH
    while batch * 2 <= min(LARGE_BATCH, n_train / MIN_STEPS_PER_EPOCH):
        batch *= 2
    return batch


def resolve_train_config(config: TrainConfig, n_train: int, epochs: tuple[int, int] = (LARGE_EPOCHS, SMALL_EPOCHS),
                         selection: tuple[str, str] = (LARGE_SELECTION, SMALL_SELECTION)
                         ) -> tuple[TrainConfig, list[str]]:
    """``config`` with ``epochs``, ``batch_size`` and ``selection`` decided for ``n_train`` training flows where
    the user left them unset, and a note naming what was decided (empty when nothing was). ``epochs`` and
    ``selection`` are the family's ``(large, small)`` defaults (``NeuralGenerator.default_epochs`` and
    ``default_selection``)."""
    small = small_data(n_train)
    decided = {}
    if config.epochs is None:
        decided["epochs"] = epochs[1] if small else epochs[0]
    if config.batch_size is None:
        decided["batch_size"] = default_batch_size(n_train)
    if config.selection == "auto":
        decided["selection"] = selection[1] if small else selection[0]
    if not decided:
        return config, []
    size = f"{n_train} training flows ({'<' if small else '≥'} {SMALL_DATA_FLOWS})"
    chosen = ", ".join(f"{k}={v}" for k, v in decided.items())
    return replace(config, **decided), [f"data rules for {size}: {chosen} (see ntg/models/data_rules.py)"]


def recurrent_share(sequences: np.ndarray, class_ids: np.ndarray, captures: np.ndarray) -> float:
    """Share of flows whose row of ``sequences`` (their tokens), with the same class, occurs in another capture."""
    keys = [(int(c), row.tobytes()) for c, row in zip(class_ids, np.ascontiguousarray(sequences), strict=True)]
    seen: defaultdict[tuple, set] = defaultdict(set)
    for key, capture in zip(keys, captures, strict=True):
        seen[key].add(capture)
    return float(np.mean([len(seen[k]) > 1 for k in keys])) if keys else 0.0


def capture_share(sequences: np.ndarray, class_ids: np.ndarray, captures: np.ndarray | None) -> float | None:
    """:func:`recurrent_share` where the table names captures, else None (what the class-support and capture-balance
    rules read)."""
    return None if captures is None else recurrent_share(sequences, class_ids, captures)


def class_support_rule(share: float | None, class_ids: np.ndarray, n_classes: int) -> tuple[np.ndarray, str]:
    """Which classes sampling confines to the tokens they used in training, as a bool per class index (module
    docstring: all of them where flows recur across captures, ``share`` ≥ ``RECURRENT_SHARE``, else the rare
    ones), and a note."""
    rare = np.bincount(class_ids, minlength=n_classes) < RARE_CLASS_FLOWS
    rare_note = f"{int(rare.sum())} of {n_classes} classes have fewer than {RARE_CLASS_FLOWS} training flows"
    if share is None:
        return rare, (f"data rules: class_support for the rare classes only (the training table names no "
                      f"captures; {rare_note}; see ntg/models/data_rules.py)")
    every = share >= RECURRENT_SHARE
    confined = np.ones(n_classes, dtype=bool) if every else rare
    scope = "every class" if every else f"the rare classes only ({rare_note})"
    return confined, f"data rules: class_support for {scope}: {_share_note(share)}"


def capture_weights(class_ids: np.ndarray, captures: np.ndarray) -> np.ndarray:
    """Per flow, ``n ** -CAPTURE_BALANCE`` where ``n`` counts the flows of its class in its capture, scaled so that
    every class keeps its number of draws per epoch (the mean weight in each class is 1)."""
    weights = np.ones(len(class_ids), dtype=np.float64)
    for c in np.unique(class_ids):
        rows = np.flatnonzero(class_ids == c)
        _, inverse, counts = np.unique(np.asarray(captures)[rows].astype(str), return_inverse=True,
                                       return_counts=True)
        w = counts[inverse].astype(np.float64) ** -CAPTURE_BALANCE
        weights[rows] = w * len(rows) / w.sum()
    return weights


def capture_balance_rule(share: float | None, class_ids: np.ndarray, captures: np.ndarray | None,
                         setting: bool | None = None) -> tuple[np.ndarray | None, str]:
    """The chance weight of each training flow in an epoch's draw (None: every flow once per epoch) and a note:
    :func:`capture_weights` where the user asked for it (``setting`` True) or, left unset, where the flows do not
    recur across captures (``share`` < ``RECURRENT_SHARE``); never without captures or with ``setting`` False."""
    if captures is None or setting is False:
        why = "the training table names no captures" if captures is None else "capture_balance=False"
        return None, f"data rules: no capture balance ({why})"
    if setting is None and share is not None and share >= RECURRENT_SHARE:
        return None, f"data rules: no capture balance: {_share_note(share)}"
    weights = capture_weights(class_ids, captures)
    if np.allclose(weights, 1.0):
        return None, "data rules: no capture balance (each class's captures hold as many flows as each other)"
    n_captures = len(set(np.asarray(captures).astype(str).tolist()))
    why = "capture_balance=True" if setting else _recurring(share)
    return weights, (
        f"data rules: capture balance ({why}): each epoch draws a class's flows with weight n^-{CAPTURE_BALANCE} for "
        f"n flows of that class in the same capture ({n_captures} captures); see ntg/models/data_rules.py")


def context_noise_rule(share: float | None, rate: float, setting: float | None = None) -> tuple[float, str]:
    """The share of input packets an autoregressive network's training noises (its ``context_noise``), and a
    note: ``setting`` where the user set it; left unset, the family's ``rate`` where the flows do not recur across
    captures (``share`` < ``RECURRENT_SHARE``), else 0 (also without captures, ``share`` None)."""
    if setting is not None:
        return setting, f"data rules: context noise {setting:g} (set by the user)"
    if share is None:
        return 0.0, "data rules: no context noise (the training table names no captures)"
    if share >= RECURRENT_SHARE:
        return 0.0, f"data rules: no context noise: {_share_note(share)}"
    return rate, (f"data rules: context noise {rate:g} ({_recurring(share)}): training replaces that share of the "
                  "input packets by another flow's; see ntg/models/data_rules.py")


def guidance_rule(share: float | None, scale: float, setting: float | None = None) -> tuple[float, str]:
    """The classifier-free guidance a diffusion generator samples with, and a note: ``setting`` where the user set
    it; left unset, the family's ``scale`` where the flows recur across captures or the table names none
    (``share`` ≥ ``RECURRENT_SHARE`` or None), else ``UNGUIDED`` (the plain conditional model)."""
    if setting is not None:
        return setting, f"data rules: guidance {setting:g} (set by the user)"
    if share is None:
        return scale, f"data rules: guidance {scale:g} (the training table names no captures)"
    if share >= RECURRENT_SHARE:
        return scale, f"data rules: guidance {scale:g}: {_share_note(share)}"
    return UNGUIDED, (f"data rules: guidance {UNGUIDED:g} ({_recurring(share)}): sampling runs the plain "
                      "conditional model; see ntg/models/data_rules.py")
