"""Training defaults that follow the data: what the loop does with the settings a user leaves unset.

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

Why (measured with ``benchmarks/bench_quality.py``; its docstring has the numbers): on a few thousand flows from a
few dozen captures, the capture-level validation split holds captures whose flows the model never saw the like of,
and its loss is lowest after a few dozen optimiser steps, long before the network has learnt the classes (the
transformer stopped at epoch 4–9 with a validation loss of 7 against a training loss of 4, sampled flows three times
farther from any real flow than held-out flows are, and scored TSTR/TRTR 0.68 on ndpi-pcaps against the Markov
chain's 0.91). Trained for a fixed budget instead, the same network goes from blurred (too few steps) through
realistic (12 passes: TSTR/TRTR 0.98, distance to the closest training flow at the level of held-out flows, copy
rate within the privacy margin) to memorised (24+ passes: TSTR/TRTR 1.03 but copy rate above the margin and
distances a tenth of held-out ones). Large sets keep the validation criterion: there the split has many captures per
class and its loss tracks sample quality, except for diffusion: its loss is a mean over noise levels that flattens
long before the samples stop improving, and with patience 5 it stopped a 120-epoch run at epoch 62 while the
learning rate was still at half its peak (iot-sentinel, split seed 1: TSTR/TRTR 0.758, fidelity 0.119, against 0.733
and 0.089 after 60 epochs), so the family trains its whole budget. Batch 256 on a thousand flows would leave four
optimiser steps per epoch; the batch rule keeps the number of updates per pass comparable across sizes.
"""

from __future__ import annotations

from dataclasses import replace

from ntg.models.settings import TrainConfig

SMALL_DATA_FLOWS = 4096  # training flows below which the small-data rules apply
LARGE_EPOCHS, SMALL_EPOCHS = 20, 12
LARGE_SELECTION, SMALL_SELECTION = "val_loss", "last"
LARGE_BATCH, MIN_BATCH = 256, 16
MIN_STEPS_PER_EPOCH = 16


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
