"""The demo's budgets: which search space, how many trials, how long each may train.

Derivation (2 shared CPU cores, one torch thread per trial, two trials at a time; measured 2026-12-02 with
``ntg.search.trial.evaluate_config`` on iot-sentinel prepared by the demo, load 1.5–2.5 from other users):

* a Markov trial takes about 8 s (fit under 0.1 s; the fast validation evaluation is the rest);
* a neural trial of 2 epochs on 3,000 flows with a 0.3 M-parameter model takes 10 s (transformer), 15 s (SSM),
  16 s (diffusion): 2.4–6 s of training, about 8 s of fast evaluation and sampling;
* with 0.3–0.7 M parameters, 4,000 training flows and 6 epochs (early stop at patience 2): transformer
  TF_S, SSM SSM_S, diffusion DIFF_S.

So a mixed trial averages about AVG_S s of one core; 16 trials on 2 cores are about 16 × AVG_S / 2 ≈ SWEEP_MIN
minutes, and the sweep also stops starting trials after :attr:`DemoBudget.sweep_seconds` (a loaded machine
gets fewer trials, never a longer demo; running the demo again continues the sweep to 16). Publishing
re-evaluates each front member on the test split with one split seed (about a minute or two each, a front of
3–6), and the rest (prepare, front, serve, download, sample, compare) takes under a minute: about 25 minutes.
``--quick`` keeps every step with a handful of one-epoch trials on 800 flows (a few minutes in all).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: the families of the demo's sweep: the three neural families and the Markov baseline
SWEEP_FAMILIES = ("transformer", "ssm", "diffusion", "markov")


@dataclass(frozen=True)
class DemoBudget:
    """What one demo run may spend; :data:`FULL` and :data:`QUICK` are the two shipped budgets."""

    trials: int
    epochs: int
    max_train_flows: int
    sweep_seconds: float
    split_seeds: int = 1
    sample_flows: int = 2000
    sizes: dict[str, Any] = field(default_factory=dict)


FULL = DemoBudget(trials=16, epochs=6, max_train_flows=4000, sweep_seconds=13 * 60)
QUICK = DemoBudget(trials=5, epochs=1, max_train_flows=800, sweep_seconds=150, sample_flows=500,
                   sizes={"quick": True})


def _train(budget: DemoBudget) -> dict[str, Any]:
    return {"lr": {"type": "float", "low": 1.0e-3, "high": 4.0e-3, "log": True}, "epochs": budget.epochs,
            "batch_size": 256, "patience": 2, "max_train_flows": budget.max_train_flows}


def space_document(budget: DemoBudget, families: list[str] | tuple[str, ...] = SWEEP_FAMILIES) -> dict[str, Any]:
    """The demo's search space (written to ``WORKDIR/space.yaml``): the shipped spaces narrowed to small models.

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
            "guidance_scale": {"type": "float", "low": 1.0, "high": 3.0}}, "train": train},
        "markov": {"model": {
            "order": {"type": "categorical", "choices": [1, 2]},
            "payload_bins": {"type": "int", "low": 8, "high": 32, "step": 8},
            "iat_bins": {"type": "int", "low": 4, "high": 16, "step": 4}}},
    }
    return {"max_parameters": 2_000_000,
            "description": "ntg demo: small models of the three neural families and the Markov baseline",
            "families": {name: spaces[name] for name in families}}
