"""One sweep trial as a Ray Tune function trainable: glue over the training loop and the fast evaluation.

:func:`run_trial` builds the generator of a :class:`~ntg.search.space.TrialConfig`, checks the parameter budget
before any training step, trains it with the one loop (reporting ``val_loss`` to Tune every epoch, with the
loop's checkpoint, so ASHA can stop it and a restored trial resumes), scores it on the **validation** split
with :func:`~ntg.evaluation.fast.fast_scores` and reports, once, every objective of
:data:`~ntg.search.objectives.OBJECTIVES` as a finite float with a checkpoint holding the generator
(``generator/``: config.json + model.safetensors). The driver turns that last result into the trial record.

Every objective is always a finite number: an over-budget configuration reports its measured parameter count
and :data:`PENALTY` values for the rest (it is infeasible, so they never reach a front); a non-finite measured
value makes the trial raise, so Tune marks it ERROR and Optuna FAIL instead of leaving it RUNNING.

:func:`evaluate_config` is the same trial without Ray (the benchmark's sequential reference).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ntg.errors import NtgError
from ntg.models.fitting import CHECKPOINT_FILE, Reporter
from ntg.search.objectives import OBJECTIVES
from ntg.search.records import iso_ms
from ntg.training.scratch import trial_scratch
from ntg.training.tune_trainable import TuneReporter, load_dataset_cached

GENERATOR_DIR = "generator"
RESULT_KEY = "ntg"  # the final result's nested record fields (family, metrics, feasibility, ...)
DONE_KEY = "ntg_done"  # 1.0 in the final result only: per-epoch results lack the objectives
#: what an infeasible trial reports for objectives it never measured (finite: Optuna rejects NaN/inf)
PENALTY = {"min": 1e18, "max": 0.0}
SAMPLING_FLOWS = 512


def evaluate_config(
    family: str,
    model: Mapping[str, Any],
    train: Mapping[str, Any],
    settings: Mapping[str, Any],
    *,
    work_dir: Path,
    reporter: Reporter | None = None,
    log_epochs: Callable[[], None] | None = None,
    fit: Callable[[str, dict[str, Any], Any], Any] | None = None,
) -> dict[str, Any]:
    """Budget check, training, fast evaluation and saving of one configuration; returns the result dict.

    ``settings``: ``data_dir``, ``max_parameters``, ``max_epochs`` (cap on ``train.epochs``, or None).
    ``fit(family, model, train_config)``, when given, trains a neural generator elsewhere (Ray Train workers)
    and returns it trained; the budget check before and the evaluation after stay here, once.
    The generator is saved to ``work_dir/generator`` when the trial trained; ``work_dir/checkpoint.pt`` is
    the loop's checkpoint (resumed when present).
    """
    import torch

    from ntg.evaluation.cost import measure_sampling
    from ntg.evaluation.fast import fast_scores
    from ntg.models.base import create_generator
    from ntg.models.data_rules import LARGE_EPOCHS
    from ntg.models.neural import NeuralGenerator
    from ntg.models.settings import TrainConfig
    from ntg.training.runs import train_inputs

    train = dict(train)
    if settings.get("max_epochs"):
        train["epochs"] = min(int(train.get("epochs") or LARGE_EPOCHS), int(settings["max_epochs"]))
    train_config = TrainConfig.from_dict(train)
    dataset = load_dataset_cached(settings["data_dir"])
    gen = create_generator(family, **dict(model))
    train_flows, val_flows = train_inputs(dataset, gen.n_packets)
    started = time.perf_counter()  # the trial's own time: the dataset is read once per worker process
    cpu_started = time.process_time()  # beside the wall time: a trial waiting for a busy core shows here
    budget = int(settings["max_parameters"])
    device, precision = "cpu", "float32"
    if isinstance(gen, NeuralGenerator):  # count the network's parameters before any training step
        torch.manual_seed(train_config.seed)
        gen.prepare(train_flows)
        if gen.num_parameters() > budget:
            return _over_budget(gen.num_parameters(), budget, train_config, started)
    if fit is not None and isinstance(gen, NeuralGenerator):
        gen = fit(family, dict(model), train_config)
    else:
        gen.fit(train_flows, val_flows, train_config=train_config, checkpoint_dir=work_dir, reporter=reporter)
    if isinstance(gen, NeuralGenerator):
        device = str(gen.device)  # sampled and scored where it trained (a GPU trial samples on its GPU)
        precision = gen.resolved_sample_precision()  # bf16 where the device multiplies it natively
    parameters = gen.num_parameters()
    if parameters > budget:  # a baseline's table size is known only once fitted (fitting it takes seconds)
        return _over_budget(parameters, budget, train_config, started)
    scores = fast_scores(gen, dataset, split="val", seed=train_config.seed)
    log = dict(getattr(gen, "fit_log_", None) or {})
    objectives = {
        "fidelity": scores["fidelity"],
        "tstr_f1": scores["tstr_f1"],
        "flops_per_flow": float(gen.flops_per_flow()),
        "parameters": float(parameters),
        "sample_flows_per_s": float(measure_sampling(gen, SAMPLING_FLOWS)["sampling_flows_per_s"] or 0.0),
        "train_seconds": float(log.get("wall_s", 0.0)),
    }
    bad = {k: v for k, v in objectives.items() if not math.isfinite(v)}
    if bad:
        raise NtgError(f"trial objectives {bad} are not finite; the trial fails instead of reporting them")
    reason = None if scores["privacy_ok"] else _privacy_reason(scores)
    gen.save_pretrained(work_dir / GENERATOR_DIR)
    history = log.get("history") or []
    metrics = {k: v for k, v in scores.items() if k not in ("fidelity", "tstr_f1", "privacy_ok")}
    metrics.update(cpu_s=time.process_time() - cpu_started, epochs=len(history), best_epoch=log.get("best_epoch"),
                   resumed_from_epoch=log.get("resumed_from_epoch", 0),
                   val_loss=_best_val_loss(history), num_train_flows=log.get("num_train_flows"),
                   world_size=log.get("world_size", 1))
    metrics["sample_precision"] = precision
    return _result(objectives, metrics, reason, train_config, device, started, trained=True)


def _best_val_loss(history: list[Mapping[str, Any]]) -> float | None:
    losses = [h["val_loss"] for h in history if isinstance(h.get("val_loss"), int | float)]
    return float(min(losses)) if losses else None


def _privacy_reason(scores: Mapping[str, Any]) -> str:
    """Why the privacy gate failed, in the record's one-line form."""
    from ntg.evaluation.fast import DCR_FRACTION

    if scores["dcr_synth_median"] < DCR_FRACTION * scores["dcr_holdout_median"]:
        return (f"privacy: DCR median {scores['dcr_synth_median']:.3g} < {DCR_FRACTION} × hold-out "
                f"{scores['dcr_holdout_median']:.3g}")
    return f"privacy: copy rate {scores['copy_rate']:.2f} > natural {scores['natural_copy_rate']:.2f} + margin"


def _over_budget(parameters: int, budget: int, train_config: Any, started: float) -> dict[str, Any]:
    objectives = {name: PENALTY[direction] for name, direction in OBJECTIVES.items()}
    objectives["parameters"] = float(parameters)
    reason = f"parameters {parameters:,} > budget {budget:,}"
    return _result(objectives, {"epochs": 0}, reason, train_config, "cpu", started, trained=False)


def _result(objectives: dict[str, float], metrics: dict[str, Any], reason: str | None, train_config: Any,
            device: str, started: float, trained: bool) -> dict[str, Any]:
    elapsed = time.perf_counter() - started
    return {
        **objectives,
        DONE_KEY: 1.0,
        RESULT_KEY: {
            "objectives": objectives,
            "metrics": metrics,
            "train": train_config.to_dict(),
            "feasible": reason is None,
            "infeasible_reason": reason,
            "trained": trained,
            "device": device,
            **where(),
            "trial_wall_s": elapsed,
            "started": iso_ms(time.time() - elapsed),  # on the trial's node
        },
    }


def where() -> dict[str, Any]:
    """The Ray node this trial ran on (id and IP; empty outside Ray): a record says where it trained."""
    try:
        import ray

        if not ray.is_initialized():
            return {}
        return {"node_id": ray.get_runtime_context().get_node_id(), "node_ip": ray.util.get_node_ip_address()}
    except Exception:  # noqa: BLE001  (where is informative only: never fail a trial over it)
        return {}


def _restore_checkpoint(config: Mapping[str, Any], work_dir: Path) -> None:
    """Put the loop's checkpoint into ``work_dir``: Tune's (a restored trial) or the one a killed sweep left
    (``resume_checkpoint``); one that does not load (cut while being copied) is ignored: the trial restarts."""
    from ray import tune

    from ntg.models.checkpoints import readable_checkpoint

    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as folder:
            if (Path(folder) / CHECKPOINT_FILE).exists():
                shutil.copy2(Path(folder) / CHECKPOINT_FILE, work_dir / CHECKPOINT_FILE)
        return
    source = Path(config.get("resume_checkpoint") or "")
    if source.is_file() and readable_checkpoint(source):
        shutil.copy2(source, work_dir / CHECKPOINT_FILE)


def _ddp_fit(settings: Mapping[str, Any]) -> Callable[[str, dict[str, Any], Any], Any]:
    """``--workers-per-trial W``: train with a TorchTrainer of W DDP workers started from this trial function,
    its rank-0 epoch metrics forwarded to Tune; the Train run is named after the Tune trial, so a retried
    trial resumes it from its last checkpoint."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from ntg.training.ray_train import fit_with_workers

    name = f"ddp-{tune.get_context().get_trial_id()}"

    def fit(family: str, model: dict[str, Any], train_config: Any) -> Any:
        return fit_with_workers(family, model, train_config.to_dict(), settings["data_dir"],
                                num_workers=int(settings["workers"]), name=name,
                                storage_path=settings["train_storage"],
                                cpus_per_worker=max(1, int(settings.get("threads", 1))),
                                gpus_per_worker=float(settings.get("gpus", 0.0)),
                                callbacks=[TuneReportCallback()])

    return fit


def run_trial(config: dict[str, Any]) -> None:
    """The Tune function trainable: ``config`` = the searcher's suggestion + ``{"sweep": settings}``.

    A suggestion marked ``reuse`` (a configuration already finished in this sweep) reports the earlier
    result at once instead of training again.
    """
    import torch
    from ray import tune

    settings = config["sweep"]
    torch.set_num_threads(max(1, int(settings.get("threads", 1))))
    if config.get("reuse"):
        tune.report({**config["reuse"]["objectives"], DONE_KEY: 1.0, RESULT_KEY: config["reuse"]})
        return
    with trial_scratch() as work_dir:
        _restore_checkpoint(config, work_dir)
        result = evaluate_config(config["family"], config.get("model") or {}, config.get("train") or {},
                                 settings, work_dir=work_dir, reporter=TuneReporter(),
                                 fit=_ddp_fit(settings) if int(settings.get("workers", 1)) > 1 else None)
        (work_dir / CHECKPOINT_FILE).unlink(missing_ok=True)  # the final checkpoint keeps the generator only
        tune.report(result, checkpoint=tune.Checkpoint.from_directory(str(work_dir)))
