"""The one training loop of every neural generator: in-process, in a Ray Tune trial, or as a DDP worker.

:func:`train_generator` trains ``gen.module`` (whose ``forward(**batch)`` returns the loss) with AdamW,
linear warm-up + cosine decay, gradient clipping and early stopping on the validation loss, writing a
checkpoint after every epoch and resuming from it when one is present. Where it runs is the
:class:`Reporter`'s business: it chooses the device, wraps the module (DDP), shards batches by rank,
all-reduces losses and publishes per-epoch metrics (no-op in-process, ``tune.report`` in a Tune trial,
``ray.train.report`` in a Ray Train worker; see :mod:`ntg.training.tune_trainable` and
:mod:`ntg.training.ray_train`).

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
from ntg.training.config import TrainConfig
from ntg.utils.io import atomic_path

if TYPE_CHECKING:
    from ntg.models.neural import NeuralGenerator

__all__ = [
    "CHECKPOINT_FILE",
    "EpochStats",
    "Reporter",
    "TrainConfig",
    "TrainResult",
    "generator_from_checkpoint",
    "train_generator",
]

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_VERSION = 1
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


# ---------------------------------------------------------------------------------------------- optimiser
def parameter_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay matrices of linear/conv layers; not norms, biases or embeddings."""
    decay, no_decay, seen = [], [], set()
    for sub in module.modules():
        for param in sub.parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if param.ndim < 2 or isinstance(sub, nn.Embedding | nn.EmbeddingBag):
                no_decay.append(param)
            else:
                decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


class WarmupCosine:
    """LR multiplier: linear warm-up over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""

    def __init__(self, warmup_steps: int, total_steps: int) -> None:
        self.warmup_steps = warmup_steps
        self.total_steps = max(total_steps, 1)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))


# ---------------------------------------------------------------------------------------------- data
def _encode(gen: NeuralGenerator, flows: FlowTable, what: str) -> dict[str, torch.Tensor]:
    batch = gen.encode(flows)
    if not batch:
        raise NtgError(f"{gen.family}.encode returned no tensors for the {what} flows")
    lengths = {name: len(t) for name, t in batch.items()}
    if set(lengths.values()) != {len(flows)}:
        raise ValueError(f"{gen.family}.encode: need one row per flow ({len(flows)}), got {lengths}")
    return batch


def _split_train_val(
    train: FlowTable, val: FlowTable | None, config: TrainConfig
) -> tuple[FlowTable, FlowTable | None]:
    rng = np.random.default_rng(config.seed)
    if val is None or len(val) == 0:
        val = None
        if config.val_fraction > 0 and len(train) >= 2:
            order = rng.permutation(len(train))
            n_val = max(1, int(round(config.val_fraction * len(train))))
            val, train = train.take(np.sort(order[:n_val])), train.take(np.sort(order[n_val:]))
    if config.max_train_flows is not None and len(train) > config.max_train_flows:
        train = train.take(np.sort(rng.permutation(len(train))[: config.max_train_flows]))
    return train, val


def _shard(n: int, epoch: int, config: TrainConfig, rank: int, world: int, shuffle: bool) -> torch.Tensor:
    """This worker's row order for an epoch: a seeded permutation, padded (like DistributedSampler) to a
    multiple of ``world`` so every worker runs the same number of steps, then strided by rank."""
    if shuffle:
        g = torch.Generator().manual_seed(config.seed * 10_007 + epoch)
        order = torch.randperm(n, generator=g)
    else:
        order = torch.arange(n)
    if world > 1:
        padded = math.ceil(n / world) * world
        order = torch.cat([order, order[: padded - n]]) if padded > n else order
        order = order[rank::world]
    return order


def _batches(data: dict[str, torch.Tensor], order: torch.Tensor, batch_size: int, device: torch.device):
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield len(idx), {k: v[idx].to(device, non_blocking=True) for k, v in data.items()}


# ---------------------------------------------------------------------------------------------- checkpoints
def _rng_states() -> dict[str, Any]:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _comparable(config: TrainConfig) -> dict[str, Any]:
    """Settings that must match for a checkpoint to be resumed (the device may change)."""
    return {k: v for k, v in config.to_dict().items() if k not in ("device", "bf16")}


def _load_checkpoint(path: Path, config: TrainConfig, gen: NeuralGenerator) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a corrupt or foreign file
        raise NtgError(f"{path}: unreadable training checkpoint ({err}); delete it to start afresh") from None
    if state.get("version") != CHECKPOINT_VERSION:
        raise NtgError(f"{path}: checkpoint format {state.get('version')}; delete it to start afresh")
    if state.get("family") != gen.family or state.get("hparams") != _jsonable(gen.get_config()):
        raise NtgError(
            f"{path}: checkpoint of a {state.get('family')} generator with other hyperparameters; "
            "use another output folder or delete the checkpoint"
        )
    saved = {**_comparable(TrainConfig()), **state["config"]}  # settings added since: their defaults
    if saved != _comparable(config):
        changed = sorted(k for k, v in _comparable(config).items() if saved.get(k) != v)
        raise NtgError(
            f"{path}: checkpoint was written with other train settings ({', '.join(changed)}); "
            "use the same settings to resume, another output folder, or delete the checkpoint"
        )
    return state


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(values, default=str))


# ---------------------------------------------------------------------------------------------- the loop
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

    ``val`` None (or empty) holds out ``config.val_fraction`` of ``train``; with ``val_fraction=0`` too,
    there is no early stopping and the last epoch's weights are kept.
    """
    config = config or TrainConfig()
    reporter = reporter or Reporter()
    started = time.perf_counter()
    train, val = _split_train_val(train, val, config)
    if len(train) == 0:
        raise NtgError("no training flows: the training table is empty")

    torch.manual_seed(config.seed)
    np.random.seed(config.seed % 2**32)
    random.seed(config.seed)
    if gen.module is None:
        gen.prepare(train)
    if gen.module is None:
        raise NtgError(f"{gen.family}.prepare did not build a module")
    device = reporter.device(config.device)
    module = gen.module.to(device)
    use_bf16 = config.bf16 and device.type == "cuda" and torch.cuda.is_bf16_supported()

    train_data = _encode(gen, train, "training")
    val_data = _encode(gen, val, "validation") if val is not None else None
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
    best_state: dict[str, torch.Tensor] | None = None
    ema = copy.deepcopy(module).eval().requires_grad_(False) if config.ema_decay > 0 else None
    kept = ema if ema is not None else module  # the weights that are validated and kept
    bad_epochs, start_epoch, previous_wall = 0, 0, 0.0
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir is not None else None
    if ckpt_path is not None and ckpt_path.exists():
        state = _load_checkpoint(ckpt_path, config, gen)
        module.load_state_dict(state["module"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        _set_rng_states(state["rng"])
        best_state, bad_epochs, start_epoch = state["best_state"], state["bad_epochs"], state["epoch"]
        previous_wall = state["result"]["wall_s"]
        result = TrainResult.from_dict({**state["result"], "device": str(device)})
        result.resumed_from_epoch = start_epoch

    train_module = reporter.wrap(module)
    show = progress and reporter.is_chief
    finished = result.stopped_early or start_epoch >= config.epochs
    for epoch in range(start_epoch + 1, config.epochs + 1):
        if finished:
            break
        t0 = time.perf_counter()
        train_module.train()
        order = _shard(len(train), epoch, config, reporter.rank, reporter.world_size, shuffle=True)
        sums = torch.zeros(2, dtype=torch.float64)
        bar = _progress_bar(show, steps_per_epoch, f"epoch {epoch}/{config.epochs}")
        for size, batch in _batches(train_data, order, config.batch_size, device):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = train_module(**batch)
            if not torch.isfinite(loss):
                raise NtgError(
                    f"{gen.family}: training loss became {loss.item()} at epoch {epoch}; "
                    f"lower train.lr (now {config.lr}) or set train.grad_clip"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            if ema is not None:
                _update_ema(ema, module, config.ema_decay, scheduler.last_epoch)
            sums += torch.tensor([loss.item() * size, size], dtype=torch.float64)
            if bar is not None:
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
                bar.update()
        if bar is not None:
            bar.close()
        sums = reporter.all_reduce_sum(sums)
        train_loss = float(sums[0] / sums[1])
        val_loss = _evaluate(kept, val_data, config, reporter, device, use_bf16) if val_data else None

        best = result.best_val_loss
        improved = val_loss is None or best is None or val_loss < best - config.min_delta
        if improved:
            best_state, bad_epochs = _cpu_state(kept), 0
            result.best_epoch, result.best_val_loss = epoch, val_loss
        else:
            bad_epochs += 1
        out_of_patience = val_loss is not None and bad_epochs >= config.patience
        result.stopped_early = out_of_patience and epoch < config.epochs
        wall = time.perf_counter() - t0
        lr = scheduler.get_last_lr()[0]
        stats = EpochStats(epoch, train_loss, val_loss, lr, wall, float(sums[1]) / wall)
        result.history.append(stats)
        result.wall_s = previous_wall + time.perf_counter() - started
        if show:
            val_text = "-" if val_loss is None else f"{val_loss:.4f}"
            print(f"epoch {epoch}: train_loss {train_loss:.4f} val_loss {val_text}", file=sys.stderr)

        written = None
        if ckpt_path is not None and reporter.is_chief:
            _save_checkpoint(ckpt_path, gen, module, optimizer, scheduler, config, epoch, best_state,
                             bad_epochs, result, ema)
            written = ckpt_path.parent
        metrics = {**asdict(stats), "best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
                   "total_wall_s": result.wall_s, "num_parameters": gen.num_parameters()}
        reporter.report(metrics, written)
        if result.stopped_early:
            break

    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    result.wall_s = previous_wall + time.perf_counter() - started
    return result


def generator_from_checkpoint(path: str | Path, best: bool = True) -> NeuralGenerator:
    """The generator saved in a training checkpoint (a ``checkpoint.pt`` file or its folder), with its best
    weights (or, ``best=False``, those of the last finished epoch), on CPU and in eval mode."""
    import ntg.models  # noqa: F401  (registers every family)
    from ntg.models.base import GENERATORS

    path = Path(path)
    path = path / CHECKPOINT_FILE if path.is_dir() else path
    if not path.is_file():
        raise NtgError(f"{path}: no training checkpoint here; train with a checkpoint_dir first")
    state = torch.load(path, map_location="cpu", weights_only=False)
    family = state.get("family")
    if family not in GENERATORS:
        raise NtgError(f"{path}: unknown family {family!r}; known: {sorted(GENERATORS)}")
    gen = GENERATORS[family](**state["hparams"])
    gen.set_learnt_metadata(state["learnt"])
    weights = state["best_state"] if best and state["best_state"] is not None else state["module"]
    gen.load_state_arrays({k: v.numpy() for k, v in weights.items()})
    if state.get("headers") is not None:
        from ntg.models.headers import HeaderModel

        gen.headers_ = HeaderModel.from_arrays(state["headers"])
    return gen


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
        for size, batch in _batches(data, order, config.batch_size, device):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = module(**batch)
            sums += torch.tensor([loss.item() * size, size], dtype=torch.float64)
    sums = reporter.all_reduce_sum(sums)
    return float(sums[0] / sums[1])


@torch.no_grad()
def _update_ema(ema: nn.Module, module: nn.Module, decay: float, step: int) -> None:
    """``ema ← d·ema + (1 − d)·weights`` with ``d = min(decay, (1 + step) / (10 + step))``; buffers copied."""
    d = min(decay, (1 + step) / (10 + step))
    torch._foreach_lerp_(list(ema.parameters()), list(module.parameters()), 1.0 - d)
    for target, source in zip(ema.buffers(), module.buffers(), strict=True):
        target.copy_(source)


def _save_checkpoint(path, gen, module, optimizer, scheduler, config, epoch, best_state, bad_epochs, result,
                     ema=None):
    state = {
        "version": CHECKPOINT_VERSION,
        "family": gen.family,
        "hparams": _jsonable(gen.get_config()),
        "learnt": gen.learnt_metadata(),
        "headers": gen.headers_.to_arrays() if gen.headers_ is not None else None,
        "config": _comparable(config),
        "epoch": epoch,
        "module": _cpu_state(module),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "best_state": best_state,
        "ema": _cpu_state(ema) if ema is not None else None,
        "bad_epochs": bad_epochs,
        "rng": _rng_states(),
        "result": result.to_dict(),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _progress_bar(show: bool, total: int, desc: str):
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)
