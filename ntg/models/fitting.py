"""The one training loop of every neural generator: in-process, in a Ray Tune trial, or as a DDP worker.

It lives with the models (``NeuralGenerator.fit`` calls it) so that ``ntg.models`` never imports
``ntg.training``; ``ntg.training`` builds runs, Tune trials and Ray Train on top of it.

:func:`train_generator` trains ``gen.module`` (whose ``forward(**batch)`` returns the loss) with AdamW,
linear warm-up + cosine decay, gradient clipping and early stopping on the validation loss, writing a
checkpoint after every epoch and resuming from it when one is present. Where it runs is the
:class:`Reporter`'s business: it chooses the device, wraps the module (DDP), shards batches by rank,
all-reduces losses and publishes per-epoch metrics (no-op in-process, ``tune.report`` in a Tune trial,
``ray.train.report`` in a Ray Train worker; see :mod:`ntg.training.tune_trainable` and
:mod:`ntg.training.ray_train`).

Hold-outs are stratified (:mod:`ntg.models.holdout`): every class of ``train`` keeps training flows, so the
fitted generator can be asked for every class it was given.

Determinism: the loop seeds torch with ``config.seed`` before building the module, shuffles each epoch with
a generator seeded by ``(seed, epoch)`` and evaluates under a forked, fixed RNG, so a run interrupted after
any epoch and resumed from its checkpoint ends with the same weights as an uninterrupted run (on CPU).

At the end the best weights (lowest validation loss) are restored and the module is left **on the device
it trained on, in eval mode** (``gen.to("cpu")`` moves it).

With ``ema_decay > 0`` the loop also keeps an exponential moving average of the weights (decay warmed up as
``min(decay, (1 + step) / (10 + step))``); validation, early stopping and the kept weights are then those of
the average, the usual practice for diffusion models. The average is part of the checkpoint.
"""

from __future__ import annotations

import copy
import math
import random
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ntg.data.schema import FlowTable
from ntg.errors import NtgError
from ntg.models.checkpoints import CHECKPOINT_FILE, cpu_state, load_checkpoint, save_checkpoint, set_rng_states
from ntg.models.data_rules import resolve_train_config
from ntg.models.epoch_data import batches, encode_rows, epoch_order
from ntg.models.holdout import split_train_val
from ntg.models.optim import WarmupCosine, parameter_groups, update_ema
from ntg.models.settings import TrainConfig

if TYPE_CHECKING:
    from ntg.models.neural import NeuralGenerator

__all__ = ["CHECKPOINT_FILE", "EpochStats", "Reporter", "TrainConfig", "TrainResult", "train_generator"]

_VAL_SEED_OFFSET = 1_000_003


# ---------------------------------------------------------------------------------------------- results
@dataclass
class EpochStats:
    epoch: int  # 1-based
    train_loss: float
    val_loss: float | None
    lr: float  # learning rate after the epoch's last step
    wall_s: float
    flows_per_s: float  # training flows per second (all workers together)


@dataclass
class TrainResult:
    """What a training run did; JSON-serialisable through :meth:`to_dict`."""

    history: list[EpochStats] = field(default_factory=list)
    best_epoch: int = 0  # 1-based epoch whose weights were kept (0: none finished)
    best_val_loss: float | None = None
    stopped_early: bool = False
    wall_s: float = 0.0  # total, over resumed sessions too
    resumed_from_epoch: int = 0  # last finished epoch found in the checkpoint (0: fresh start)
    device: str = "cpu"
    world_size: int = 1
    num_train_flows: int = 0
    num_val_flows: int = 0
    notes: list[str] = field(default_factory=list)  # what the loop decided for the user (no hold-out...)
    train_config: dict[str, Any] = field(default_factory=dict)  # the settings used, data rules applied

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainResult:
        values = dict(values)
        values["history"] = [EpochStats(**h) for h in values.get("history", [])]
        return cls(**values)

    @property
    def epochs_run(self) -> int:
        return len(self.history)


# ---------------------------------------------------------------------------------------------- reporter
class Reporter:
    """Where the loop runs. This base class is the in-process, single-device, no-op variant."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_chief(self) -> bool:
        """Only the chief (rank 0) writes checkpoints and shows a progress bar."""
        return self.rank == 0

    def device(self, requested: str) -> torch.device:
        return resolve_device(requested)

    def wrap(self, module: nn.Module) -> nn.Module:
        """The module to call for training (DDP wrapper in distributed runs); already on ``device``."""
        return module

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum a small float64 tensor over workers (identity for one worker)."""
        return values

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        """Called after every epoch with that epoch's metrics and the folder holding the new checkpoint
        (None on workers that do not write it, or when checkpointing is off)."""


def resolve_device(requested: str) -> torch.device:
    """``auto`` → CUDA when available else CPU; anything else as given (CUDA requested but absent → error)."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise NtgError(f"train.device={requested!r} is not a torch device; use auto, cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NtgError(f"train.device={requested!r} but CUDA is not available here; use train.device=cpu")
    return device


# ---------------------------------------------------------------------------------------------- the loop
@dataclass
class _Run:
    """Everything one training run carries from epoch to epoch (and through its checkpoint)."""

    gen: NeuralGenerator
    config: TrainConfig
    reporter: Reporter
    device: torch.device
    module: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    ema: nn.Module | None
    result: TrainResult
    use_bf16: bool
    steps_per_epoch: int
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0
    start_epoch: int = 0
    previous_wall: float = 0.0

    @property
    def kept(self) -> nn.Module:
        """The weights that are validated and kept: the average when there is one."""
        return self.ema if self.ema is not None else self.module


def train_generator(
    gen: NeuralGenerator,
    train: FlowTable,
    val: FlowTable | None = None,
    config: TrainConfig | None = None,
    *,
    progress: bool = False,
    checkpoint_dir: str | Path | None = None,
    reporter: Reporter | None = None,
) -> TrainResult:
    """Train ``gen.module`` on ``train`` with early stopping on ``val``; resume from ``checkpoint_dir``.

    ``val`` None (or empty) holds out a stratified ``config.val_fraction`` of ``train``; with
    ``val_fraction=0`` too (or too few flows to spare), there is no early stopping and the last epoch's
    weights are kept. Settings left unset are decided from the training set's size
    (:mod:`ntg.models.data_rules`); on small sets the last epoch's weights are kept and ``val`` is only logged.
    """
    config = config or TrainConfig()
    reporter = reporter or Reporter()
    started = time.perf_counter()
    train, val, notes = split_train_val(train, val, config.val_fraction, config.max_train_flows, config.seed)
    if len(train) == 0:
        raise NtgError("no training flows: the training table is empty")
    config, decided = resolve_train_config(config, len(train), gen.default_epochs, gen.default_selection)
    notes = [*notes, *decided]
    run = _start(gen, train, val, config, reporter)
    notes = [*notes, *gen.data_notes()]
    train_data = encode_rows(gen, train, "training")
    val_data = encode_rows(gen, val, "validation") if val is not None else None
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir is not None else None
    if ckpt_path is not None and ckpt_path.exists():
        _resume(run, ckpt_path)
    run.result.notes, run.result.train_config = notes, config.to_dict()

    train_module = reporter.wrap(run.module)
    finished = run.result.stopped_early or run.start_epoch >= config.epochs
    for epoch in range(run.start_epoch + 1, config.epochs + 1):
        if finished:
            break
        t0 = time.perf_counter()
        train_loss, n_seen = _train_epoch(run, train_module, train_data, epoch, progress and reporter.is_chief)
        val_loss = _evaluate(run.kept, val_data, config, reporter, run.device, run.use_bf16) if val_data else None
        stats = _end_epoch(run, epoch, train_loss, val_loss, n_seen, time.perf_counter() - t0)
        run.result.wall_s = run.previous_wall + time.perf_counter() - started
        if progress and reporter.is_chief:
            val_text = "-" if val_loss is None else f"{val_loss:.4f}"
            print(f"epoch {epoch}: train_loss {train_loss:.4f} val_loss {val_text}", file=sys.stderr)
        written = None
        if ckpt_path is not None and reporter.is_chief:
            save_checkpoint(ckpt_path, gen, config, _training_state(run, epoch))
            written = ckpt_path.parent
        metrics = {**asdict(stats), "best_epoch": run.result.best_epoch, "best_val_loss": run.result.best_val_loss,
                   "total_wall_s": run.result.wall_s, "num_parameters": gen.num_parameters()}
        reporter.report(metrics, written)
        if run.result.stopped_early:
            break

    if run.best_state is not None:
        run.module.load_state_dict(run.best_state)
    run.module.eval()
    run.result.wall_s = run.previous_wall + time.perf_counter() - started
    return run.result


def _start(gen: NeuralGenerator, train: FlowTable, val: FlowTable | None, config: TrainConfig,
           reporter: Reporter) -> _Run:
    """Seed, build the module (learning the data metadata), the optimiser and the schedule."""
    torch.manual_seed(config.seed)
    np.random.seed(config.seed % 2**32)
    random.seed(config.seed)
    if gen.module is None:
        gen.prepare(train)
    if gen.module is None:
        raise NtgError(f"{gen.family}.prepare did not build a module")
    device = reporter.device(config.device)
    module = gen.module.to(device)
    steps_per_epoch = math.ceil(math.ceil(len(train) / reporter.world_size) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    optimizer = torch.optim.AdamW(
        parameter_groups(module, config.weight_decay), lr=config.lr, betas=(0.9, 0.95), eps=1e-8
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupCosine(math.ceil(config.warmup * total_steps), total_steps)
    )
    result = TrainResult(device=str(device), world_size=reporter.world_size, num_train_flows=len(train),
                         num_val_flows=0 if val is None else len(val))
    return _Run(
        gen=gen, config=config, reporter=reporter, device=device, module=module, optimizer=optimizer,
        scheduler=scheduler, ema=copy.deepcopy(module).eval().requires_grad_(False) if config.ema_decay > 0 else None,
        result=result, use_bf16=config.bf16 and device.type == "cuda" and torch.cuda.is_bf16_supported(),
        steps_per_epoch=steps_per_epoch,
    )


def _resume(run: _Run, path: Path) -> None:
    """Restore the states of the last finished epoch from the checkpoint at ``path``."""
    state = load_checkpoint(path, run.config, run.gen)
    run.module.load_state_dict(state["module"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    if run.ema is not None:
        run.ema.load_state_dict(state["ema"])
    set_rng_states(state["rng"])
    run.best_state, run.bad_epochs, run.start_epoch = state["best_state"], state["bad_epochs"], state["epoch"]
    run.previous_wall = state["result"]["wall_s"]
    run.result = TrainResult.from_dict({**state["result"], "device": str(run.device)})
    run.result.resumed_from_epoch = run.start_epoch


def _training_state(run: _Run, epoch: int) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "module": cpu_state(run.module),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "best_state": run.best_state,
        "ema": cpu_state(run.ema) if run.ema is not None else None,
        "bad_epochs": run.bad_epochs,
        "result": run.result.to_dict(),
    }


def _train_epoch(run: _Run, train_module: nn.Module, data: dict[str, torch.Tensor], epoch: int,
                 show: bool) -> tuple[float, float]:
    """One pass over this worker's shard; the mean training loss over all workers and the flows seen."""
    config = run.config
    train_module.train()
    n = len(next(iter(data.values())))
    order = epoch_order(n, epoch, config.seed, run.reporter.rank, run.reporter.world_size,
                        weights=run.gen.flow_weights_)
    sums = torch.zeros(2, dtype=torch.float64)
    bar = _progress_bar(show, run.steps_per_epoch, f"epoch {epoch}/{config.epochs}")
    for size, batch in batches(data, order, config.batch_size, run.device):
        with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.use_bf16):
            loss = train_module(**batch)
        if not torch.isfinite(loss):
            raise NtgError(
                f"{run.gen.family}: training loss became {loss.item()} at epoch {epoch}; "
                f"lower train.lr (now {config.lr}) or set train.grad_clip"
            )
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(run.module.parameters(), config.grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        if run.ema is not None:
            update_ema(run.ema, run.module, config.ema_decay, run.scheduler.last_epoch)
        sums += torch.tensor([loss.item() * size, size], dtype=torch.float64)
        if bar is not None:
            bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            bar.update()
    if bar is not None:
        bar.close()
    sums = run.reporter.all_reduce_sum(sums)
    return float(sums[0] / sums[1]), float(sums[1])


def _end_epoch(run: _Run, epoch: int, train_loss: float, val_loss: float | None, n_seen: float,
               wall: float) -> EpochStats:
    """Keep the best weights, count epochs without improvement, decide on early stopping, log the epoch."""
    result, config = run.result, run.config
    best = result.best_val_loss
    if config.selection == "last" or val_loss is None or best is None or val_loss < best - config.min_delta:
        run.best_state, run.bad_epochs = cpu_state(run.kept), 0
        result.best_epoch, result.best_val_loss = epoch, val_loss
    else:
        run.bad_epochs += 1
    out_of_patience = config.selection == "val_loss" and val_loss is not None and run.bad_epochs >= config.patience
    result.stopped_early = out_of_patience and epoch < config.epochs
    stats = EpochStats(epoch, train_loss, val_loss, run.scheduler.get_last_lr()[0], wall, n_seen / wall)
    result.history.append(stats)
    return stats


def _evaluate(
    module: nn.Module,
    data: dict[str, torch.Tensor],
    config: TrainConfig,
    reporter: Reporter,
    device: torch.device,
    use_bf16: bool,
) -> float:
    """Mean validation loss (per flow) under a fixed RNG, without touching the training RNG streams."""
    module.eval()
    n = len(next(iter(data.values())))
    order = torch.arange(reporter.rank, n, reporter.world_size)  # every row once over all workers
    sums = torch.zeros(2, dtype=torch.float64)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(config.seed + _VAL_SEED_OFFSET)
        for size, batch in batches(data, order, config.batch_size, device):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = module(**batch)
            sums += torch.tensor([loss.item() * size, size], dtype=torch.float64)
    sums = reporter.all_reduce_sum(sums)
    return float(sums[0] / sums[1])


def _progress_bar(show: bool, total: int, desc: str) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)
