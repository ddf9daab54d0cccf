"""A Ray Tune function trainable running the one training loop, one trial per call.

``tune_trainable(config)`` expects a JSON-like trial config::

    {"family": "transformer",
     "data_dir": "/abs/path/to/prepared",          # a PreparedDataset folder every worker can read
     "model": {"d_model": 128, ...},                 # generator hyperparameters
     "train": {"epochs": 10, ...},                   # TrainConfig fields
     "model.n_layers": 3, "train.lr": 1e-3,          # optional dotted keys (flat search spaces) win
     "imports": ["my_plugin"],                       # optional: modules that register extra families
     "threads": 1}                                   # torch threads per trial (default 1)

Each epoch it calls ``ray.tune.report`` with ``epoch``, ``train_loss``, ``val_loss``, ``lr``, ``wall_s``,
``total_wall_s``, ``flows_per_s``, ``best_epoch``, ``best_val_loss`` and ``num_parameters``, plus a
checkpoint folder holding ``checkpoint.pt`` (restored from ``tune.get_checkpoint()`` when Tune resumes a
trial). :func:`ntg.models.base.load_generator` turns a trial's checkpoint folder into a generator.

Use it with ``tune.with_resources(tune_trainable, {"cpu": 1})`` and ``TuneConfig(reuse_actors=True)``;
prepared datasets are cached per worker process so reused actors do not re-read them.
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from ntg.data.dataset import PreparedDataset
from ntg.errors import NtgError
from ntg.models.fitting import CHECKPOINT_FILE, Reporter, TrainConfig
from ntg.training.config import SECTIONS
from ntg.training.scratch import trial_scratch

TRIAL_KEYS = ("family", "data_dir", "imports", "threads", *SECTIONS)


class TuneReporter(Reporter):
    """Reports each epoch to Ray Tune, with the loop's checkpoint folder as a Tune checkpoint."""

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        from ray import tune

        checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        tune.report(_finite(metrics), checkpoint=checkpoint)


def trial_settings(config: Mapping[str, Any]) -> tuple[str, str, dict[str, Any], TrainConfig]:
    """Family, dataset folder, model hyperparameters and TrainConfig of a trial config (dotted keys win)."""
    unknown = sorted(k for k in config if k not in TRIAL_KEYS and k.partition(".")[0] not in SECTIONS)
    if unknown:
        raise NtgError(f"unknown trial config key(s) {unknown}; use {list(TRIAL_KEYS)} or model.X / train.X")
    for key in ("family", "data_dir"):
        if key not in config:
            raise NtgError(f"trial config lacks {key!r}; give the generator family and the prepared dataset")
    sections = {s: dict(config.get(s) or {}) for s in SECTIONS}
    for key, value in config.items():
        section, dot, name = key.partition(".")
        if dot and section in SECTIONS:
            sections[section][name] = value
    train_config = TrainConfig.from_dict(sections["train"])
    return str(config["family"]), str(config["data_dir"]), sections["model"], train_config


@lru_cache(maxsize=2)
def _dataset(data_dir: str, stamp: float) -> PreparedDataset:
    del stamp  # part of the cache key only: a rebuilt dataset is read again
    return PreparedDataset.load(data_dir)


def load_dataset_cached(data_dir: str | Path) -> PreparedDataset:
    """The prepared dataset at ``data_dir``, read once per process (until its meta.json changes)."""
    meta = Path(data_dir) / "meta.json"
    stamp = meta.stat().st_mtime if meta.exists() else 0.0
    return _dataset(str(data_dir), stamp)


def tune_trainable(config: dict[str, Any]) -> None:
    """Train one trial's generator, reporting to Ray Tune every epoch (see the module docs)."""
    import torch
    from ray import tune

    from ntg.models.base import create_generator
    from ntg.training.runs import train_inputs

    for module in config.get("imports", ()):
        importlib.import_module(module)
    torch.set_num_threads(int(config.get("threads", 1)))
    family, data_dir, model_hparams, train_config = trial_settings(config)
    gen = create_generator(family, **model_hparams)
    train, val = train_inputs(load_dataset_cached(data_dir), gen.n_packets)

    with trial_scratch() as checkpoint_dir:
        restored = tune.get_checkpoint()
        if restored is not None:
            with restored.as_directory() as folder:
                if (Path(folder) / CHECKPOINT_FILE).exists():
                    shutil.copy2(Path(folder) / CHECKPOINT_FILE, checkpoint_dir / CHECKPOINT_FILE)
        gen.fit(train, val, train_config=train_config, checkpoint_dir=checkpoint_dir, reporter=TuneReporter())


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    """Tune schedulers compare numbers: a missing validation loss is reported as +inf, not None."""
    return {k: (float("inf") if v is None else v) for k, v in metrics.items()}
