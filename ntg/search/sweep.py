"""``ntg sweep``: a multi-objective search run by Ray Tune, proposed by Optuna, persisted and resumable.

The sweep folder holds ``sweep.json`` (space, objectives, settings), ``trials/<id>.json`` + the generators
(written by the driver as each trial finishes), the Optuna study (``study.db``, SQLite, by default) and Ray
Tune's experiment folders (``tune/run-<k>``, one per session of the sweep).

Resuming (``--resume`` or the same command again) does not un-pickle Tune's experiment state: the trial
records are the ground truth. A new Tune run is started for the trials still missing, with the same Optuna
study (so the sampler learns from every finished trial); Optuna trials that a killed driver left RUNNING are
told from their record when one was written, else marked FAIL and their configuration is enqueued so it is
trained again first (from scratch). Tune's own snapshot could be up to ten seconds stale and would retrain
trials finished after it; the records cannot be.

On a cluster (``--address``, or as a ``ray job``) ``--out`` must be storage every node reaches: a path every
node mounts (or ``file://``), where Tune's storage, the records and the generators all go; or an object
store (``s3://``, ``gs://``), which the driver mirrors locally (:mod:`ntg.search.storage`) while Tune writes
the trial checkpoints straight to ``<URI>/tune``; the study is then a journal file uploaded with the records.
Otherwise the study stays SQLite only on a local file system; on a network file system (NFS, EFS, a
FUSE-mounted bucket) the default is Optuna's journal file, made for shared file systems (SQLite's locks are
not safe there), and an explicit SQLite there is refused.
"""

from __future__ import annotations

import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ntg.errors import NtgError
from ntg.search.objectives import Objective, parse_objectives
from ntg.search.records import check_or_write_sweep, is_network_fs, load_trial_records, now_iso, resolve_sweep_dir
from ntg.search.storage import SweepStore, is_object_uri, upload_callback
from ntg.utils.io import claim_output_dir

STUDY_NAME = "ntg-sweep"
DEFAULT_STORAGE = "study.db"
SHARED_STORAGE = "journal:study.journal"
SAMPLERS = ("tpe", "nsga2", "random")
SCHEDULERS = ("fifo", "asha")
OBJECT_STORE_BYTES = 500 * 1024 * 1024


@dataclass
class SweepOptions:
    """Everything ``ntg sweep`` takes (see ``ntg sweep --help``)."""

    spaces: Sequence[str | Path]
    data_dir: str | Path
    n_trials: int
    out: str | Path
    objectives: str | Sequence[str] | None = None
    sampler: str = "tpe"
    seed: int = 0
    concurrency: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_epochs: int | None = None
    time_budget_s: float | None = None
    max_parameters: int | None = None
    scheduler: str = "fifo"
    study_storage: str | None = None
    address: str | None = None
    resume: bool = False
    force: bool = False
    workers_per_trial: int = 1
    allow_autoscale: bool = False
    max_failures: int = 2


def parse_duration(text: str | None) -> float | None:
    """``90``, ``90s``, ``30m``, ``2h``, ``1h30m`` → seconds."""
    if text is None:
        return None
    parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not parts or not any(parts.groups()):
        raise NtgError(f"--time-budget {text!r}: write seconds or a duration such as 90s, 30m, 2h or 1h30m")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in parts.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise NtgError(f"--time-budget {text!r} must be positive")
    return total


def open_storage(spec: str | None, sweep_dir: Path) -> tuple[Any, str, str]:
    """The Optuna storage object, its form for sweep.json (relative to the sweep folder when inside it) and
    the ``optuna-dashboard`` argument that opens it."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    spec = spec or (SHARED_STORAGE if is_network_fs(sweep_dir) else DEFAULT_STORAGE)
    if spec.startswith("journal:"):
        path = Path(spec[len("journal:"):]).expanduser()
        path = path if path.is_absolute() else sweep_dir / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path))), "journal:" + _relative(path, sweep_dir), str(path)
    if spec.startswith("sqlite:///") and is_network_fs(Path(spec[len("sqlite:///"):]).parent):
        raise NtgError(f"--study-storage {spec}: SQLite on a network file system is not safe; use "
                       f"{SHARED_STORAGE} (Optuna's journal file) or an RDB URL such as postgresql://...")
    if "://" in spec:
        try:
            return RDBStorage(spec), spec, spec
        except (ImportError, ValueError, optuna.exceptions.OptunaError) as err:
            raise NtgError(f"--study-storage {spec!r}: {err}; give an SQLAlchemy URL or journal:PATH") from None
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else sweep_dir / path
    if is_network_fs(path.parent):
        raise NtgError(f"--study-storage {spec}: SQLite on a network file system is not safe; use "
                       f"{SHARED_STORAGE} (Optuna's journal file) or an RDB URL such as postgresql://...")
    url = f"sqlite:///{path.resolve()}"
    return RDBStorage(url), _relative(path, sweep_dir), url


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path.resolve())


def make_sampler(name: str, seed: int, concurrency: int) -> Any:
    """Optuna's TPE (seeded; a constant liar when trials run in parallel), NSGA-II or random sampler.

    Feasibility reaches them as trial constraints (``trial.set_constraint``), which Optuna 5's samplers and
    ``study.best_trials`` read.
    """
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                          constant_liar=concurrency > 1)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, 2 * concurrency))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise NtgError(f"--sampler {name!r}: choose one of {', '.join(SAMPLERS)}")


def last_checkpoint(sweep_dir: Path, number: int) -> Path | None:
    """The newest whole epoch checkpoint that the Tune trial of Optuna trial ``number`` left (None if none).

    A driver killed while Tune copied the newest one into the trial folder leaves it cut short; the one
    before it (Tune deletes it only once the new one is registered) is where the trial resumes then.
    """
    from ntg.models.checkpoints import CHECKPOINT_FILE, readable_checkpoint
    from ntg.utils.io import read_json

    for params in sorted((sweep_dir / "tune").glob("run-*/trial_*/params.json"), reverse=True):
        try:
            if read_json(params).get("trial_number") != number:
                continue
        except ValueError:  # cut while being written
            continue
        found = sorted(params.parent.glob(f"checkpoint_*/{CHECKPOINT_FILE}"), reverse=True)
        return next((path for path in found if readable_checkpoint(path)), None)
    return None


def repair_study(study: Any, records: Sequence[dict[str, Any]], sweep_dir: Path, max_parameters: int) -> int:
    """Finish Optuna trials a killed driver left RUNNING; returns how many were repaired.

    A trial with a record is told its recorded objectives (the record was written, the tell was not); one
    without is marked FAIL and its configuration enqueued, so the next trial trains it again, from the last
    epoch checkpoint it left in the Tune folder when there is one (user attribute ``resume_checkpoint``).
    """
    import optuna

    from ntg.search.driver import mark_feasibility

    by_number = {r.get("number"): r for r in records}
    names = [name for name in study.user_attrs.get("objectives", [])]
    repaired = 0
    for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        record = by_number.get(frozen.number)
        trial = optuna.trial.Trial(study, frozen._trial_id)
        if record is not None and record.get("status") in ("complete", "infeasible") and names:
            mark_feasibility(trial, record, max_parameters)
            study.tell(trial, [float(record["objectives"][n]) for n in names])
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            if record is None:  # cut mid-way: train it again first (WAITING trials are asked first)
                found = last_checkpoint(sweep_dir, frozen.number)
                attrs = {"resume_checkpoint": _relative(found, sweep_dir)} if found else None
                study.enqueue_trial(dict(frozen.params), user_attrs=attrs, skip_if_exists=False)
        repaired += 1
    return repaired


def run_sweep(options: SweepOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or continue) the sweep to ``options.n_trials`` trials in all; returns a summary.

    An object-store ``--out`` is downloaded into its local mirror first and uploaded as trials finish; the
    last upload happens even when the sweep is stopped, so what finished is never only on this machine.
    """
    objectives = parse_objectives(options.objectives)
    _check_options(options)
    store = SweepStore(str(options.out)) if is_object_uri(options.out) else None
    if store is None:
        return _run_sweep(options, objectives, resolve_sweep_dir(options.out), None, log)
    store.pull(log=log)
    try:
        return _run_sweep(options, objectives, store.local, store, log)
    finally:
        store.push()


def _run_sweep(options: SweepOptions, objectives: Sequence[Objective], sweep_dir: Path, store: SweepStore | None,
               log: Callable[[str], None]) -> dict[str, Any]:
    import ntg
    from ntg.search.space import load_spaces

    space = load_spaces(list(options.spaces), options.max_parameters)
    where = store.uri if store else str(sweep_dir)
    data_dir = Path(options.data_dir).expanduser().resolve()
    if not (data_dir / "meta.json").exists():
        raise NtgError(f"{data_dir}: not a prepared dataset (no meta.json); run `ntg data prepare` first")
    if options.resume and not (sweep_dir / "sweep.json").exists():
        raise NtgError(f"{where}: no sweep.json to resume; drop --resume to start a new sweep there")
    claim_output_dir(sweep_dir, "sweep", force=options.force)  # never into a dataset or a run folder
    stored_storage = _stored(sweep_dir, "study_storage")
    spec = options.study_storage or stored_storage or (SHARED_STORAGE if store else None)
    if store is not None:
        _check_store_study(spec, store)
    storage, storage_text, dashboard = open_storage(spec, sweep_dir)
    meta = {
        "objectives": [{"name": o.name, "direction": o.direction} for o in objectives],
        "space": space.to_dict(), "n_trials": options.n_trials, "seed": options.seed,
        "sampler": options.sampler, "data_dir": str(data_dir), "created": now_iso(),
        "ntg_version": ntg.__version__, "study_name": STUDY_NAME, "study_storage": storage_text,
        "max_parameters": space.max_parameters, "scheduler": options.scheduler,
        "max_epochs": options.max_epochs,
    }
    check_or_write_sweep(sweep_dir, meta, options.resume)
    records = load_trial_records(sweep_dir)
    study = _open_study(storage, objectives)
    repaired = repair_study(study, records, sweep_dir, space.max_parameters)
    if repaired:
        log(f"resume: {repaired} Optuna trial(s) left unfinished by an interrupted driver were closed")
    remaining = options.n_trials - len(records)
    if remaining > 0:
        log(f"sweep {where}: {len(records)} of {options.n_trials} trials done, running {remaining} more")
        started = time.monotonic()
        _run_tune(options, sweep_dir, data_dir, space, objectives, storage, records, log, store)
        records = load_trial_records(sweep_dir)
        repair_study(study, records, sweep_dir, space.max_parameters)  # trials cut by the budget or a stop
        if len(records) < options.n_trials:
            budget_spent = options.time_budget_s is not None and time.monotonic() - started >= options.time_budget_s
            _summary(where, records, objectives, dashboard, log)
            if not budget_spent:  # Tune ends early only when stopped (Ctrl-C, SIGTERM)
                raise KeyboardInterrupt
            log(f"time budget spent: {len(records)} of {options.n_trials} trials; run the same command to go on")
            return _summary(where, records, objectives, dashboard, lambda line: None)
    records = load_trial_records(sweep_dir)
    return _summary(where, records, objectives, dashboard, log)


def _check_store_study(spec: str, store: SweepStore) -> None:
    """With an object-store ``--out`` the study is a journal file in the mirror (uploaded as it grows) or an
    RDB URL; an SQLite file would be uploaded while it is written, so it is refused."""
    if spec.startswith("journal:") or ("://" in spec and not spec.startswith("sqlite:")):
        return
    raise NtgError(f"--study-storage {spec}: an SQLite study cannot live in {store.uri}; use {SHARED_STORAGE} "
                   "(the default there) or an RDB URL such as postgresql://...")


def _check_options(options: SweepOptions) -> None:
    if options.n_trials < 1:
        raise NtgError(f"--trials {options.n_trials}: run at least one trial")
    if options.sampler not in SAMPLERS:
        raise NtgError(f"--sampler {options.sampler!r}: choose one of {', '.join(SAMPLERS)}")
    if options.scheduler not in SCHEDULERS:
        raise NtgError(f"--scheduler {options.scheduler!r}: choose one of {', '.join(SCHEDULERS)}")
    if options.cpus_per_trial <= 0 or options.gpus_per_trial < 0:
        raise NtgError("--cpus-per-trial must be > 0 and --gpus-per-trial ≥ 0")
    if options.concurrency is not None and options.concurrency < 1:
        raise NtgError(f"--concurrency {options.concurrency}: run at least one trial at a time")
    if options.max_epochs is not None and options.max_epochs < 1:
        raise NtgError(f"--max-epochs {options.max_epochs}: allow at least one epoch")
    if options.workers_per_trial < 1:
        raise NtgError(f"--workers-per-trial {options.workers_per_trial}: give 1 (in the trial) or more (Ray Train)")
    if options.max_failures < 0:
        raise NtgError(f"--max-failures {options.max_failures}: give 0 (no retry) or more")


def _stored(sweep_dir: Path, key: str) -> Any:
    from ntg.utils.io import read_json

    path = sweep_dir / "sweep.json"
    return read_json(path).get(key) if path.exists() else None


def _open_study(storage: Any, objectives: Sequence[Objective]) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    directions = ["minimize" if o.direction == "min" else "maximize" for o in objectives]
    study = optuna.create_study(storage=storage, study_name=STUDY_NAME, directions=directions,
                                load_if_exists=True)
    study.set_user_attr("objectives", [o.name for o in objectives])
    study.set_metric_names([o.name for o in objectives])
    return study


def _run_tune(options: SweepOptions, sweep_dir: Path, data_dir: Path, space: Any,
              objectives: Sequence[Objective], storage: Any, records: list[dict[str, Any]],
              log: Callable[[str], None], store: SweepStore | None = None) -> None:
    from ray import tune

    from ntg.search.driver import FamilyASHA, RecordCallback, SweepSearcher, SweepState, ray_session
    from ntg.search.trial import run_trial

    threads = max(1, int(options.cpus_per_trial))
    # epoch reports carry val_loss only; the objectives come once, in the final report (driver.py)
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    # quiet: our one line per trial replaces Tune's tables, boxes and snapshot warnings
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    workers = options.workers_per_trial
    with ray_session(options.address, threads, options.cpus_per_trial, options.gpus_per_trial,
                     options.allow_autoscale, workers) as cluster_cpus:
        concurrency = max(1, int(cluster_cpus // (options.cpus_per_trial * workers)))
        if options.concurrency:
            concurrency = min(concurrency, options.concurrency)
        state = SweepState(records, options.n_trials, sweep_dir)

        def define(trial: Any) -> dict[str, Any]:
            config = space.suggest(trial)
            return {"family": config.family, "model": dict(config.model), "train": dict(config.train),
                    "config_key": config.key()}

        searcher = SweepSearcher(
            space=define, metric=[o.name for o in objectives], mode=[o.direction for o in objectives],
            sampler=make_sampler(options.sampler, options.seed, concurrency), study_name=STUDY_NAME,
            storage=storage, state=state, max_parameters=space.max_parameters,
        )
        settings = {"data_dir": str(data_dir), "max_parameters": space.max_parameters,
                    "max_epochs": options.max_epochs, "threads": threads, "workers": workers,
                    "gpus": options.gpus_per_trial,
                    "train_storage": store.uri_of("tune/train") if store else str(sweep_dir / "tune" / "train")}
        scheduler = FamilyASHA(state, max_t=options.max_epochs or 100) if options.scheduler == "asha" else None
        # with Ray Train workers the trial function only drives them: the workers hold the CPUs and GPUs (Tune
        # refuses an empty bundle, so the driver holds 1 MiB of Ray's memory resource instead of a CPU)
        per_trial = ({"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial} if workers == 1
                     else {"cpu": 0, "memory": 1 << 20})
        trainable = tune.with_resources(run_trial, per_trial)
        tune_dir = sweep_dir / "tune"
        run_name = f"run-{len(list(tune_dir.glob('run-*'))) + 1 if tune_dir.is_dir() else 1}"
        tuner = tune.Tuner(
            trainable,
            param_space={"sweep": settings},
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                        num_samples=options.n_trials - len(records),
                                        max_concurrent_trials=concurrency, reuse_actors=True,
                                        time_budget_s=options.time_budget_s,
                                        trial_dirname_creator=trial_dirname),
            run_config=tune.RunConfig(
                name=run_name, verbose=0,
                # an object store: every node writes its checkpoints there; the mirror holds only what was pulled
                storage_path=store.tune_path if store else str(tune_dir),
                storage_filesystem=store.fs if store else None,
                callbacks=[RecordCallback(sweep_dir, state, objectives, log)]
                + ([upload_callback(store, log)] if store else []),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                # a trial whose node dies (or whose worker is killed) runs again from its last checkpoint
                failure_config=tune.FailureConfig(max_failures=options.max_failures),
            ),
        )
        each = f" × {workers} Ray Train workers" if workers > 1 else ""
        log(f"{concurrency} trial(s) at a time, {options.cpus_per_trial:g} CPU and "
            f"{options.gpus_per_trial:g} GPU each{each}; Tune folder "
            f"{store.uri_of('tune/' + run_name) if store else tune_dir / run_name}")
        # Tune's own hint on Ctrl-C ("resume with Tuner.restore") is not how a sweep resumes: see run_sweep
        logging.getLogger("ray.tune.tune").setLevel(logging.ERROR)
        tuner.fit()


def trial_dirname(trial: Any) -> str:
    """Short Tune trial folders (the default spells out the whole configuration)."""
    return f"trial_{trial.trial_id}"


def _summary(where: str, records: list[dict[str, Any]], objectives: Sequence[Objective], dashboard: str,
             log: Callable[[str], None]) -> dict[str, Any]:
    from ntg.search.driver import front_ids

    counts = {s: sum(r.get("status") == s for r in records) for s in ("complete", "infeasible", "pruned", "error")}
    front = front_ids(records, objectives)
    log(f"{len(records)} trials" + "".join(f", {n} {s}" for s, n in counts.items() if n)
        + f"; front ({', '.join(o.name for o in objectives)}): {len(front)} trial(s) {', '.join(front)}")
    log(f"next: ntg pareto {where}    study: optuna-dashboard {dashboard}")
    return {"sweep_dir": where, "trials": len(records), "counts": counts, "front": front,
            "dashboard": f"optuna-dashboard {dashboard}"}


__all__ = ["SweepOptions", "parse_duration", "run_sweep"]
