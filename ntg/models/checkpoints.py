"""Training checkpoints: what the loop writes after every epoch, resumes from, and loads generators from.

A checkpoint (``checkpoint.pt``, a ``torch.save`` dict) holds the generator's family, hyperparameters and
learnt metadata, the module, optimiser, scheduler and EMA states, the best weights so far, the RNG states
and the :class:`~ntg.models.fitting.TrainResult` so far. :func:`generator_from_checkpoint` is what
:func:`ntg.models.base.load_generator` calls for a checkpoint folder or file.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ntg.errors import NtgError
from ntg.models.settings import TrainConfig
from ntg.utils.io import atomic_path

if TYPE_CHECKING:
    from ntg.models.neural import NeuralGenerator

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_VERSION = 1


def rng_states() -> dict[str, Any]:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def comparable(config: TrainConfig) -> dict[str, Any]:
    """Settings that must match for a checkpoint to be resumed (the device may change)."""
    return {k: v for k, v in config.to_dict().items() if k not in ("device", "bf16")}


def jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(values, default=str))


def save_checkpoint(path: Path, gen: NeuralGenerator, config: TrainConfig, training: dict[str, Any]) -> None:
    """Write ``training`` (epoch, states, best weights, result...) with the generator's identity, atomically."""
    state = {
        "version": CHECKPOINT_VERSION,
        "family": gen.family,
        "hparams": jsonable(gen.get_config()),
        "learnt": gen.learnt_metadata(),
        "headers": gen.headers_.to_arrays() if gen.headers_ is not None else None,
        "config": comparable(config),
        "rng": rng_states(),
        **training,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _read(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a corrupt or foreign file
        raise NtgError(f"{path}: unreadable training checkpoint ({err}); delete it to start afresh") from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        version = state.get("version") if isinstance(state, dict) else None
        raise NtgError(f"{path}: checkpoint format {version}; delete it to start afresh")
    return state


def readable_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a whole checkpoint of this format: one cut while being copied (Tune persists a
    trial's checkpoint folder by a plain copy, not a rename) is not."""
    try:
        _read(path)
    except NtgError:
        return False
    return True


def load_checkpoint(path: Path, config: TrainConfig, gen: NeuralGenerator) -> dict[str, Any]:
    """The checkpoint at ``path``, refused unless it was written for this generator and these settings."""
    state = _read(path)
    stored = type(gen).settings_as_saved(state.get("hparams") or {})
    if state.get("family") != gen.family or stored != jsonable(gen.get_config()):
        raise NtgError(
            f"{path}: checkpoint of a {state.get('family')} generator with other hyperparameters; "
            "use another output folder or delete the checkpoint"
        )
    saved = {**comparable(TrainConfig()), **state["config"]}  # settings added since: their defaults
    if saved != comparable(config):
        changed = sorted(k for k, v in comparable(config).items() if saved.get(k) != v)
        raise NtgError(
            f"{path}: checkpoint was written with other train settings ({', '.join(changed)}); "
            "use the same settings to resume, another output folder, or delete the checkpoint"
        )
    return state


def checkpoint_path(source: str | Path) -> Path | None:
    """``source`` as a checkpoint file when it is one (``checkpoint.pt``) or a folder holding one, else None."""
    path = Path(source)
    if path.is_dir() and (path / CHECKPOINT_FILE).is_file():
        return path / CHECKPOINT_FILE
    return path if path.is_file() and path.name == CHECKPOINT_FILE else None


def generator_from_checkpoint(path: Path, best: bool = True) -> NeuralGenerator:
    """The generator saved in the checkpoint file ``path``, with its best weights (or, ``best=False``, those of
    the last finished epoch), on CPU and in eval mode."""
    from ntg.models.base import generator_from_saved
    from ntg.models.headers import HeaderModel

    state = _read(path)
    gen = generator_from_saved(state.get("family"), state["hparams"], where=str(path))
    gen.set_learnt_metadata(state["learnt"])
    weights = state["best_state"] if best and state["best_state"] is not None else state["module"]
    gen.load_state_arrays({k: v.numpy() for k, v in weights.items()})
    if state.get("headers") is not None:
        gen.headers_ = HeaderModel.from_arrays(state["headers"])
    return gen
