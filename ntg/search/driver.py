"""What the sweep's driver plugs into Ray Tune: the Optuna searcher, the per-family ASHA scheduler and the
callback that writes trial records and prints one line per finished trial.

* :class:`SweepSearcher` is Ray's ``OptunaSearch`` (multi-objective, define-by-run) that also (1) stamps each
  suggestion with its Optuna trial number and configuration key, (2) turns a configuration that already
  finished in this sweep into a ``reuse`` suggestion (reported at once, never trained twice), and (3) tells
  Optuna the feasibility as constraints (``trial.set_constraint``: parameters over budget, privacy gate) and
  user attributes before ``tell``, and tells a trial without objectives (stopped by ASHA) as PRUNED instead
  of the base class's ``tell`` with ``None`` values, which Optuna rejects and which would leave it RUNNING.
* :class:`FamilyASHA` runs one ``AsyncHyperBandScheduler`` per family: validation losses of different
  families are not comparable, so successive halving only ranks trials of the same family.
* :class:`RecordCallback` writes ``trials/<id>.json`` (and copies the generator out of the trial's final
  checkpoint) the moment a trial finishes, then prints its line and the front so far.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ray import tune
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch

from ntg.errors import NtgError
from ntg.search.objectives import Objective
from ntg.search.records import reuse_payload, trial_id_for, write_trial_record
from ntg.search.trial import DONE_KEY, GENERATOR_DIR, RESULT_KEY


class SweepState:
    """What the searcher and the callback share in the driver: finished records by configuration key."""

    def __init__(self, records: Sequence[Mapping[str, Any]], total: int, sweep_dir: Path) -> None:
        self.sweep_dir = sweep_dir
        self.records: list[dict[str, Any]] = [dict(r) for r in records]
        self.by_key = {r["config_key"]: r for r in self.records if r.get("status") in ("complete", "infeasible")}
        self.total = total
        self.started = time.monotonic()
        self.pruned: set[str] = set()  # Tune trial ids that ASHA stopped (others stopped early were cut off)


class SweepSearcher(OptunaSearch):
    """OptunaSearch with configuration reuse, feasibility constraints and a safe tell (see module docs)."""

    def __init__(self, *args: Any, state: SweepState, max_parameters: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state = state
        self._max_parameters = max_parameters

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        if config is None:
            return None
        ot_trial = self._ot_trials[trial_id]
        config["trial_number"] = ot_trial.number
        resume = ot_trial.user_attrs.get("resume_checkpoint")
        if resume:  # a configuration cut mid-way by a killed driver continues from its last epoch
            config["resume_checkpoint"] = str(self._state.sweep_dir / resume)
        earlier = self._state.by_key.get(config.get("config_key"))
        if earlier is not None:
            config["reuse"] = reuse_payload(earlier)
        return config

    def save(self, checkpoint_path: str) -> None:
        """Nothing to pickle: the Optuna study and the trial records are the sweep's state (module docs)."""
        Path(checkpoint_path).write_text("ntg sweep: the state is the Optuna study and SWEEP_DIR/trials\n")

    def restore(self, checkpoint_path: str) -> None:
        raise RuntimeError("an ntg sweep resumes with `ntg sweep ... --resume`, not Tuner.restore")

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        import optuna

        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        values = [(result or {}).get(name) for name in self._metric]
        if not error and result and result.get(DONE_KEY) and all(_finite(v) for v in values):
            mark_feasibility(ot_trial, result, self._max_parameters)
            self._ot_study.tell(ot_trial, [float(v) for v in values])
        else:
            state = optuna.trial.TrialState.FAIL if error else optuna.trial.TrialState.PRUNED
            self._ot_study.tell(ot_trial, state=state)
        self._completed_trials.add(trial_id)


def mark_feasibility(ot_trial: Any, result: Mapping[str, Any], max_parameters: int) -> None:
    """Constraints (≤ 0 feasible) and user attributes of a finished trial, set before ``tell``.

    ``result`` is Tune's flattened result (``ntg/feasible``) or a trial record (``feasible``).
    """
    feasible = bool(result.get(f"{RESULT_KEY}/feasible", result.get("feasible", False)))
    reason = result.get(f"{RESULT_KEY}/infeasible_reason", result.get("infeasible_reason"))
    parameters = float(result.get("parameters", (result.get("objectives") or {}).get("parameters", 0.0)))
    ot_trial.set_constraint("parameters", parameters - max_parameters)
    ot_trial.set_constraint("privacy", 0.0 if feasible or str(reason).startswith("parameters") else 1.0)
    ot_trial.set_user_attr("feasible", feasible)
    ot_trial.set_user_attr("infeasible_reason", reason)
    family = result.get("config/family", result.get("family"))
    if family:
        ot_trial.set_user_attr("family", family)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


class FamilyASHA(FIFOScheduler):
    """Successive halving on ``val_loss`` within each family (one ``AsyncHyperBandScheduler`` per family)."""

    def __init__(self, state: SweepState, max_t: int, grace_period: int = 1, reduction_factor: float = 3) -> None:
        super().__init__()
        self._state = state
        self._options = {"time_attr": "training_iteration", "metric": "val_loss", "mode": "min",
                         "max_t": max(max_t, grace_period), "grace_period": grace_period,
                         "reduction_factor": reduction_factor, "stop_last_trials": False}
        self._by_family: dict[str, AsyncHyperBandScheduler] = {}

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True  # its own metric: the searcher's objectives are not what ASHA compares

    def _scheduler(self, trial: Any) -> AsyncHyperBandScheduler:
        family = str(trial.config.get("family"))
        if family not in self._by_family:
            self._by_family[family] = AsyncHyperBandScheduler(**self._options)
        return self._by_family[family]

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._scheduler(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if result.get(DONE_KEY):  # the final report carries the objectives, not an epoch
            return TrialScheduler.CONTINUE
        action = self._scheduler(trial).on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP:
            self._state.pruned.add(trial.trial_id)
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        scheduler = self._scheduler(trial)
        if trial.trial_id in scheduler._trial_info:
            scheduler.on_trial_remove(tune_controller, trial)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self.on_trial_complete(tune_controller, trial, {})

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self.on_trial_complete(tune_controller, trial, {})


class RecordCallback(tune.Callback):
    """Writes each finished trial's record into the sweep folder and prints its progress line."""

    def __init__(self, sweep_dir: Path, state: SweepState, objectives: Sequence[Objective],
                 log: Callable[[str], None]) -> None:
        self._dir = sweep_dir
        self._state = state
        self._objectives = tuple(objectives)
        self._log = log

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        status = None if result.get(DONE_KEY) else "pruned"
        if status == "pruned" and trial.trial_id not in self._state.pruned:
            # cut off by the time budget or a stop request: no record, so a resumed sweep proposes again
            self._log(f"trial {trial.config.get('trial_number')} ({trial.config.get('family')}) was stopped "
                      "before it finished; not recorded")
            return
        if status == "pruned":
            result = {RESULT_KEY: {"metrics": {"epochs": result.get("training_iteration", 0),
                                               "val_loss": result.get("val_loss")}}}
        self._write(trial, result, status, None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(trial, {}, "error", _error_text(trial))

    def _write(self, trial: Any, result: Mapping[str, Any], status: str | None, error: str | None) -> None:
        config = trial.config
        number = config.get("trial_number")
        trial_id = trial_id_for(number, str(config.get("family")), trial.trial_id)
        source = None
        checkpoint = trial.checkpoint if status is None else None
        wall = float((result.get(RESULT_KEY) or {}).get("trial_wall_s", 0.0))
        if checkpoint is not None:
            with checkpoint.as_directory() as folder:
                source = Path(folder) / GENERATOR_DIR
                record = write_trial_record(self._dir, trial_id=trial_id, number=number, config=config,
                                            result=result, generator_source=source, status=status,
                                            error=error, wall_s=wall)
        else:
            record = write_trial_record(self._dir, trial_id=trial_id, number=number, config=config,
                                        result=result, generator_source=None, status=status, error=error,
                                        wall_s=wall)
        self._state.records.append(record)
        if record["status"] in ("complete", "infeasible"):
            self._state.by_key.setdefault(record["config_key"], record)
        self._log(progress_line(record, self._state, self._objectives))


def _error_text(trial: Any) -> str:
    """The last line of the trial's error (Tune keeps the traceback in ``error.txt``)."""
    path = getattr(trial, "error_file", None)
    try:
        lines = [line for line in Path(path).read_text().splitlines() if line.strip()] if path else []
    except OSError:
        lines = []
    return lines[-1].strip()[:300] if lines else "trial failed (see the Tune folder's error.txt)"


def front_ids(records: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]) -> list[str]:
    """Trial ids on the front so far: feasible, complete trials, non-dominated over ``objectives``, each
    configuration once (its first trial)."""
    from ntg.search.pareto import pareto_mask

    done, seen = [], set()
    for r in records:  # a configuration trained twice (or reused) counts once
        if (r.get("status") == "complete" and r.get("feasible") and r.get("config_key") not in seen
                and all(_finite(r["objectives"].get(o.name)) for o in objectives)):
            seen.add(r.get("config_key"))
            done.append(r)
    if not done:
        return []
    values = np.array([[r["objectives"][o.name] for o in objectives] for r in done], dtype=np.float64)
    mask = pareto_mask(values, [o.direction for o in objectives])
    return [r["trial_id"] for r, keep in zip(done, mask, strict=True) if keep]


def progress_line(record: Mapping[str, Any], state: SweepState, objectives: Sequence[Objective]) -> str:
    """``[3/8] 0002-transformer n_layers=2 d_model=64 lr=0.001 | fidelity 0.121 flops_per_flow 1.2e+06 | ok``."""
    shown = [*list(record["model"].items())[:4],
             *[(k, record["train"][k]) for k in ("lr", "epochs")
               if record["metrics"].get("epochs") and k in (record.get("train") or {})]]  # neural only
    settings = " ".join(f"{k}={_fmt(v)}" for k, v in shown)
    if record.get("status") in ("complete", "infeasible") and record.get("generator_dir"):  # measured
        scores = " ".join(f"{o.name} {_fmt(record['objectives'].get(o.name))}" for o in objectives)
    else:
        scores = "-"
    verdict = "feasible" if record.get("feasible") else (record.get("infeasible_reason") or record["status"])
    if record["metrics"].get("reused_from"):
        verdict += f" (reused {record['metrics']['reused_from']})"
    front = front_ids(state.records, objectives)
    elapsed = time.monotonic() - state.started
    return (f"[{len(state.records)}/{state.total}] {record['trial_id']} {settings} | {scores} | {verdict} "
            f"| front {len(front)}: {', '.join(front[:6])}{' …' if len(front) > 6 else ''} | {elapsed:.0f} s")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


class ray_session:
    """Ray for the sweep: the running one (a job on a cluster, a test), ``address``, or a local instance
    capped to this machine that the sweep starts and stops. Yields the cluster's CPU count once
    :func:`check_cluster_fits` has said a trial fits on some node."""

    def __init__(self, address: str | None, threads: int, cpus_per_trial: float, gpus_per_trial: float,
                 allow_autoscale: bool = False, workers: int = 1) -> None:
        self._address = address
        self._workers = workers
        self._threads = threads
        self._need = (cpus_per_trial, gpus_per_trial)
        self._allow_autoscale = allow_autoscale
        self._owned = False

    def __enter__(self) -> float:
        import os

        import ray

        from ntg.search.sweep import OBJECT_STORE_BYTES

        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        env = {"RAY_AUTH_MODE": os.environ["RAY_AUTH_MODE"], "OMP_NUM_THREADS": str(self._threads)}
        if not ray.is_initialized():
            self._owned = True
            common = {"log_to_driver": False, "runtime_env": {"env_vars": env}, "logging_level": "WARNING"}
            if self._address:
                ray.init(address=self._address, **common)
            else:
                ray.init(num_cpus=os.cpu_count() or 1, object_store_memory=OBJECT_STORE_BYTES,
                         include_dashboard=False, **common)
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        check_cluster_fits(nodes, *self._need, workers=self._workers, allow_autoscale=self._allow_autoscale)
        return float(ray.cluster_resources().get("CPU", 0))

    def __exit__(self, *exc: Any) -> None:
        import ray

        if self._owned and ray.is_initialized():
            ray.shutdown()


def check_cluster_fits(nodes: Sequence[Mapping[str, float]], cpus: float, gpus: float, workers: int = 1,
                       allow_autoscale: bool = False) -> None:
    """Fail in one line, before the first trial, when no node offers one trial's (or one Ray Train
    worker's) CPUs and GPUs: Tune would otherwise leave every trial PENDING forever.

    ``nodes``: each alive node's resources (``ray.nodes()``). With ``allow_autoscale`` the check is skipped:
    pending trials are what makes an autoscaler add the nodes that fit them.
    """
    if allow_autoscale:
        return
    fits = [n for n in nodes if float(n.get("CPU", 0)) >= cpus and float(n.get("GPU", 0)) >= gpus]
    if len(fits) >= 1 and (workers == 1 or sum(_slots(n, cpus, gpus) for n in fits) >= workers):
        return
    offer = ", ".join(f"{float(n.get('CPU', 0)):g} CPU/{float(n.get('GPU', 0)):g} GPU" for n in nodes) or "none"
    unit = "each Ray Train worker" if workers > 1 else "a trial"
    fix = ("use --gpus-per-trial 0 or a cluster with GPU nodes" if gpus and not any(n.get("GPU") for n in nodes)
           else "ask for fewer, or add --allow-autoscale if an autoscaler adds bigger nodes")
    raise NtgError(f"{unit} asks for {cpus:g} CPU and {gpus:g} GPU"
                   + (f" (× {workers} workers)" if workers > 1 else "")
                   + f" but no alive Ray node offers that (nodes: {offer}); {fix}")


def _slots(node: Mapping[str, float], cpus: float, gpus: float) -> int:
    """How many bundles of ``cpus`` CPUs and ``gpus`` GPUs fit on ``node``."""
    by_cpu = int(float(node.get("CPU", 0)) // cpus) if cpus else 1 << 30
    by_gpu = int(float(node.get("GPU", 0)) // gpus) if gpus else 1 << 30
    return min(by_cpu, by_gpu)
