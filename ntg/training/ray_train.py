"""Data-parallel training with Ray Train: the same loop as a ``train_loop_per_worker`` under DDP.

:func:`train_distributed` starts a :class:`ray.train.torch.TorchTrainer` whose workers each load the
prepared dataset, build the generator and run :func:`ntg.models.fitting.train_generator` with a
:class:`RayTrainReporter`: the module is wrapped by ``ray.train.torch.prepare_model`` (DDP, gloo on CPU,
NCCL on GPU), every epoch is a seeded permutation sharded by world rank (DistributedSampler-style), losses
are all-reduced so every worker takes the same early-stopping decision, and ``ray.train.report`` is called
by every worker each epoch with rank 0 alone attaching the checkpoint. At the end rank 0 reports the final
generator in the Hugging Face layout; the driver writes it, with ``run.json``, ``train_log.json`` and the
loss curve, to ``out_dir`` exactly as :func:`ntg.training.runs.train_run` does, and keeps the training
checkpoint in ``out_dir/checkpoints`` so calling it again resumes.

Ray must be initialised (``ray.init(address=...)``) or it starts a local instance; set
``RAY_AUTH_MODE=disabled`` for local clusters.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from ntg.errors import NtgError
from ntg.models.fitting import CHECKPOINT_FILE, Reporter, TrainConfig
from ntg.training.config import split_config

MODEL_SUBDIR = "model"
LOG_FILE = "train_log.json"


class RayTrainReporter(Reporter):
    """Runs the loop as one Ray Train worker: DDP module, rank sharding, all-reduced losses, reports."""

    def __init__(self) -> None:
        import ray.train

        context = ray.train.get_context()
        self.rank = context.get_world_rank()
        self.world_size = context.get_world_size()
        self._device: torch.device | None = None

    def device(self, requested: str) -> torch.device:
        import ray.train.torch

        self._device = ray.train.torch.get_device()  # CPU, or this worker's GPU when use_gpu=True
        return self._device

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        import ray.train.torch

        return ray.train.torch.prepare_model(module, move_to_device=self._device or True)

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        if self.world_size == 1 or not dist.is_initialized():
            return values
        device = self._device if dist.get_backend() == "nccl" else torch.device("cpu")
        reduced = values.to(device)
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        return reduced.cpu()

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        report_folder(metrics, checkpoint_dir)


def report_folder(metrics: dict[str, Any], folder: Path | None) -> None:
    """``ray.train.report`` with a copy of ``folder`` as the checkpoint (None: metrics only)."""
    import ray.train

    metrics = {k: (float("inf") if v is None else v) for k, v in metrics.items()}
    if folder is None:
        ray.train.report(metrics, checkpoint=None)
        return
    with tempfile.TemporaryDirectory(prefix="ntg-report-") as tmp:
        shutil.copytree(folder, tmp, dirs_exist_ok=True)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: the one training loop on this worker's shard, then rank 0 reports the model."""
    import ray.train

    from ntg.data.dataset import PreparedDataset
    from ntg.models.base import create_generator
    from ntg.training.runs import train_inputs

    for module in config.get("imports", ()):
        importlib.import_module(module)
    torch.set_num_threads(int(config.get("threads", 1)))
    gen = create_generator(config["family"], **config["model"])
    train, val = train_inputs(PreparedDataset.load(config["data_dir"]), gen.n_packets)
    train_config = TrainConfig.from_dict(config["train"])
    reporter = RayTrainReporter()

    with tempfile.TemporaryDirectory(prefix="ntg-worker-") as work:
        checkpoint_dir = Path(work) / "checkpoint"
        checkpoint_dir.mkdir()
        restored = ray.train.get_checkpoint()  # Ray Train's own restoration of a failed run
        if restored is not None:
            with restored.as_directory() as folder:
                if (Path(folder) / CHECKPOINT_FILE).exists():
                    shutil.copy2(Path(folder) / CHECKPOINT_FILE, checkpoint_dir / CHECKPOINT_FILE)
        elif config.get("resume_from") and Path(config["resume_from"]).is_file():
            shutil.copy2(config["resume_from"], checkpoint_dir / CHECKPOINT_FILE)
        gen.fit(train, val, train_config=train_config, checkpoint_dir=checkpoint_dir, reporter=reporter)
        result = gen.training_result_

        final = None
        if reporter.is_chief:
            from ntg.utils.io import write_json

            gen.save_pretrained(checkpoint_dir / MODEL_SUBDIR)
            log = dict(gen.fit_log_)
            log["num_parameters"] = gen.num_parameters()
            write_json(checkpoint_dir / LOG_FILE, log)
            final = checkpoint_dir
        report_folder({"final": True, "epoch": len(result.history), "best_epoch": result.best_epoch,
                       "best_val_loss": result.best_val_loss}, final)


def train_distributed(
    family: str,
    data_dir: str | Path,
    out_dir: str | Path,
    config: Mapping[str, Any] | None = None,
    num_workers: int = 2,
    use_gpu: bool = False,
    overrides: Iterable[str] = (),
    imports: Iterable[str] = (),
    threads_per_worker: int = 1,
    gpus_per_worker: float = 0.0,
) -> Path:
    """Train ``family`` with ``num_workers`` DDP workers on Ray; write the run folder ``out_dir``.

    ``config`` is a run config (``{"model": {...}, "train": {...}}``, ``train.batch_size`` per worker);
    ``imports`` are modules the workers import first (to register extra families). A rerun with
    ``out_dir/checkpoints/checkpoint.pt`` present resumes from it (the workers read that file, so
    ``out_dir`` must be on a filesystem they share, as on a single machine or a shared mount).
    """
    import ntg
    from ntg.data.dataset import PreparedDataset
    from ntg.models.base import create_generator, load_generator
    from ntg.training.runs import CHECKPOINT_DIR, dataset_record, train_inputs, write_run_files

    if num_workers < 1:
        raise NtgError(f"--workers {num_workers}: need at least one worker")
    use_gpu = use_gpu or gpus_per_worker > 0
    imports, overrides = list(imports), list(overrides)
    for module in imports:
        importlib.import_module(module)
    model_hparams, train_config = split_config(config, overrides)
    data_dir, out_dir = Path(data_dir).resolve(), Path(out_dir).resolve()
    dataset = PreparedDataset.load(data_dir)
    probe = create_generator(family, **model_hparams)  # fail fast, on the driver, on bad settings
    train_inputs(dataset, probe.n_packets)

    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    check_workers_fit(num_workers, threads_per_worker, gpus_per_worker or float(use_gpu))
    previous, storage = out_dir / CHECKPOINT_DIR, out_dir / "ray_results"
    resume = str(previous / CHECKPOINT_FILE) if (previous / CHECKPOINT_FILE).exists() else None
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"family": family, "data_dir": str(data_dir), "model": model_hparams,
                           "train": train_config.to_dict(), "imports": imports, "threads": threads_per_worker,
                           "resume_from": resume},
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": threads_per_worker,
                                                           **({"GPU": gpus_per_worker or 1.0} if use_gpu else {})}),
        run_config=RunConfig(name=f"ntg-{family}-{int(time.time())}", storage_path=str(storage)),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise NtgError(f"Ray Train run for {family} finished without a checkpoint; see its logs in {storage}")

    with result.checkpoint.as_directory() as folder:
        folder = Path(folder)
        gen = load_generator(folder / MODEL_SUBDIR)
        from ntg.utils.io import read_json

        log = read_json(folder / LOG_FILE)
        previous.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / CHECKPOINT_FILE, previous / CHECKPOINT_FILE)
    log["flops_per_flow"] = gen.flops_per_flow()
    run = {
        "family": family,
        "hparams": gen.get_config(),
        "train": train_config.to_dict(),
        "overrides": overrides,
        "distributed": {"num_workers": num_workers, "use_gpu": use_gpu, "gpus_per_worker": gpus_per_worker,
                        "backend": "ray-train-ddp", "device": log.get("device")},
        "dataset": dataset_record(dataset),
        "ntg_version": ntg.__version__,
        "torch_version": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    gen.save_pretrained(out_dir)
    write_run_files(out_dir, run, log)
    return out_dir


def connect(address: str | None, object_store_bytes: int = 500 * 1024 * 1024) -> bool:
    """Connect to the Ray cluster at ``address`` (``auto`` inside a job), or start a local instance capped to
    this machine; returns whether this call started Ray (and so should shut it down)."""
    import os

    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    common = {"log_to_driver": False, "logging_level": "WARNING",
              "runtime_env": {"env_vars": {"RAY_AUTH_MODE": os.environ["RAY_AUTH_MODE"]}}}
    if address:
        ray.init(address=address, **common)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, object_store_memory=object_store_bytes, include_dashboard=False,
                 **common)
    return True


def check_workers_fit(num_workers: int, cpus: float, gpus: float) -> None:
    """One line instead of a run that waits forever: the workers' CPUs/GPUs must fit on the alive nodes."""
    import ray

    if not ray.is_initialized():
        return
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    slots = sum(min(int(float(n.get("CPU", 0)) // cpus) if cpus else num_workers,
                    int(float(n.get("GPU", 0)) // gpus) if gpus else num_workers) for n in nodes)
    if slots < num_workers:
        offer = ", ".join(f"{float(n.get('CPU', 0)):g} CPU/{float(n.get('GPU', 0)):g} GPU" for n in nodes)
        fix = "drop --gpus-per-worker or use a cluster with GPUs" if gpus and not any(
            n.get("GPU") for n in nodes) else "use fewer --workers"
        raise NtgError(f"--workers {num_workers} × ({cpus:g} CPU, {gpus:g} GPU) do not fit on the Ray cluster "
                       f"(nodes: {offer or 'none'}); {fix}")


def fit_with_workers(
    family: str,
    model: Mapping[str, Any],
    train: Mapping[str, Any],
    data_dir: str | Path,
    *,
    num_workers: int,
    name: str,
    storage_path: str | Path,
    cpus_per_worker: int = 1,
    gpus_per_worker: float = 0.0,
    callbacks: Iterable[Any] = (),
) -> Any:
    """Train one generator with ``num_workers`` DDP workers from inside a caller such as a Tune trial (Ray 2.x
    runs Ray Train inside a trial function, not ``Tuner(trainer)``); returns rank 0's trained generator with
    its ``fit_log_``.

    ``name`` must be deterministic (the Tune trial id): a retried trial finds the Train run of that name in
    ``storage_path`` and its workers resume from its last epoch checkpoint (``ray.train.get_checkpoint``).
    ``callbacks``: e.g. ``ray.tune.integration.ray_train.TuneReportCallback()`` to report every epoch to Tune.
    """
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from ntg.models.base import load_generator
    from ntg.utils.io import read_json

    use_gpu = gpus_per_worker > 0
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"family": family, "data_dir": str(data_dir), "model": dict(model), "train": dict(train),
                           "imports": [], "threads": cpus_per_worker, "resume_from": None},
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": cpus_per_worker,
                                                           **({"GPU": gpus_per_worker} if use_gpu else {})}),
        run_config=RunConfig(name=name, storage_path=str(storage_path), callbacks=list(callbacks)),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise NtgError(f"Ray Train run {name} finished without a checkpoint; see its logs in {storage_path}")
    with result.checkpoint.as_directory() as folder:
        gen = load_generator(Path(folder) / MODEL_SUBDIR)
        gen.fit_log_ = read_json(Path(folder) / LOG_FILE)
    return gen
