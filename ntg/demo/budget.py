"""The demo's budgets: which search spaces, how many trials, how long each may train.

Two sweeps, so that ``ntg zoo compare`` has two fronts to compare: ``baseline`` (the Markov chain, seconds per
trial) and ``neural`` (transformer, SSM, diffusion). In one sweep the Markov chain (0 FLOPs, fidelity 0.08)
dominates every neural generator a CPU demo budget trains (fidelity 0.12–0.26 after 6 epochs: measured in a
16-trial mixed sweep at 12:13 on 2026-12-02), and the front, the zoo and the comparison would hold Markov
chains only.

Derivation (2 shared CPU cores, one torch thread per trial, two trials at a time; measured 2026-12-02 with
``ntg.search.trial.evaluate_config`` and with ``make demo`` on iot-sentinel, load 4–7 from other users):

* a Markov trial takes 7–8 s of CPU (fit under 0.1 s; the fast validation evaluation is the rest): the
  baseline sweep's 6 trials took 71 s with Ray's start;
* a neural trial of 6 epochs on 4,000 training flows with 0.4–0.7 M parameters takes 25 s (transformer),
  40 s (SSM), 44 s (diffusion) of CPU, of which 17, 35 and 10 s of training, the rest the fast evaluation and
  sampling; 12 such trials took 313 s of wall time. That left two thirds of the 30 minutes unused, so the
  neural sweep runs 16 trials of 8 epochs on 6,000 flows (twice the training per trial: about 10 minutes),
  and it stops starting trials after :attr:`DemoBudget.sweep_seconds` (a loaded machine gets fewer trials,
  never a longer demo; running the demo again continues the sweep);
* publishing evaluates each front member on the test split (one split seed, Random Forest, 2 augmentation
  seeds): 136 s for 1 Markov chain and 3 SSMs; prepare, fronts, serve, download, sample and compare take
  seconds. ``make demo`` with 12 neural trials of 6 epochs on 4,000 flows took 8 min 49 s in all; with these
  budgets 10 min 27 s (neural sweep 452 s, publish 140 s for 1 Markov chain, 2 SSMs and a transformer),
  at a 1-minute load of 1.1–6.0 (median 4.2, sampled every 30 s) from other users.

``--quick`` keeps every step with three one-epoch trials per sweep on 800 flows, and cards whose augmentation
axis has one seed at the 1 % fraction (the axis is most of a card's time: ``ntg.zoo.publish``); a few minutes in
all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ntg.families import NEURAL_FAMILIES

#: the demo's sweeps and their families: the Markov baseline, and the three neural families
SWEEPS: dict[str, tuple[str, ...]] = {"baseline": ("markov",), "neural": NEURAL_FAMILIES}
SWEEP_FAMILIES = tuple(family for families in SWEEPS.values() for family in families)


@dataclass(frozen=True)
class DemoBudget:
    """What one demo run may spend; :data:`FULL` and :data:`QUICK` are the two shipped budgets."""

    trials: dict[str, int]  # per sweep
    epochs: int
    max_train_flows: int
    sweep_seconds: dict[str, float]  # per sweep: no trial starts after this
    split_seeds: int = 1
    sample_flows: int = 2000
    sizes: dict[str, Any] = field(default_factory=dict)
    card_augmentation_seeds: int | None = None  # the cards' low-data augmentation; None: ``zoo publish``'s
    card_fractions: tuple[float, ...] | None = None


FULL = DemoBudget(trials={"baseline": 6, "neural": 16}, epochs=8, max_train_flows=6000,
                  sweep_seconds={"baseline": 180, "neural": 14 * 60})
QUICK = DemoBudget(trials={"baseline": 3, "neural": 3}, epochs=1, max_train_flows=800,
                   sweep_seconds={"baseline": 90, "neural": 150}, sample_flows=500, sizes={"quick": True},
                   card_augmentation_seeds=1, card_fractions=(0.01,))


def _train(budget: DemoBudget) -> dict[str, Any]:
    return {"lr": {"type": "float", "low": 1.0e-3, "high": 4.0e-3, "log": True}, "epochs": budget.epochs,
            "batch_size": 256, "patience": 2, "max_train_flows": budget.max_train_flows}


def space_document(budget: DemoBudget, families: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """A demo sweep's search space (written to ``WORKDIR/sweeps/space-NAME.yaml``): the shipped spaces
    narrowed to small models.

    Small widths and depths keep every neural trial under about a minute on one core; the shipped
    ``search_spaces/*.yaml`` are for real sweeps.
    """
    quick = bool(budget.sizes.get("quick"))
    train = _train(budget)
    spaces: dict[str, dict[str, Any]] = {
        "transformer": {"model": {
            "n_layers": 2 if quick else {"type": "int", "low": 2, "high": 3},
            "n_heads": 4,
            "_head_dim": 16 if quick else {"type": "int", "low": 16, "high": 32, "step": 8},
            "d_model": "n_heads * _head_dim",
            "_mlp_ratio": 2 if quick else {"type": "categorical", "choices": [2, 3]},
            "mlp_hidden": "_mlp_ratio * d_model"}, "train": train},
        "ssm": {"model": {
            "d_model": 64 if quick else {"type": "int", "low": 64, "high": 128, "step": 32},
            "n_layers": 2 if quick else {"type": "int", "low": 2, "high": 3},
            "d_state": 8}, "train": train},
        "diffusion": {"model": {
            "n_heads": 2,
            "_head_dim": 32 if quick else {"type": "int", "low": 32, "high": 48, "step": 16},
            "d_model": "n_heads * _head_dim",
            "n_layers": 2 if quick else {"type": "int", "low": 2, "high": 3},
            "sampling_steps": 8 if quick else 10,
            # search_spaces/diffusion.yaml's range: guidance above ~2.5 cost TSTR on every set measured
            "guidance_scale": {"type": "float", "low": 1.0, "high": 2.5}}, "train": train},
        "markov": {"model": {
            "order": {"type": "categorical", "choices": [1, 2]},
            "payload_bins": {"type": "int", "low": 8, "high": 32, "step": 8},
            "iat_bins": {"type": "int", "low": 4, "high": 16, "step": 4}}},
    }
    return {"max_parameters": 2_000_000,
            "description": "ntg demo: small models of the three neural families and the Markov baseline",
            "families": {name: spaces[name] for name in families}}
