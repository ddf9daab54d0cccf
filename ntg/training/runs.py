"""Train and sample runs: what ``ntg train`` and ``ntg sample`` call.

A run folder holds

* ``config.json`` + ``model.safetensors`` — the generator (:meth:`Generator.save_pretrained` layout);
* ``run.json`` — family, hyperparameters, train settings, the dataset (folder, source, checksums), versions;
* ``train_log.json`` — per-epoch losses, wall time, parameters, FLOPs per generated flow;
* ``loss_curve.png`` — train/validation loss per epoch (neural families);
* ``checkpoints/`` — the training checkpoint, so re-running the same command resumes an interrupted run.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ntg.data.dataset import META_FILE, PreparedDataset
from ntg.data.schema import FlowTable
from ntg.errors import NtgError
from ntg.models.base import LabelRequest, create_generator, load_generator
from ntg.training.config import split_config
from ntg.utils.io import claim_output_dir, read_json, write_json
from ntg.utils.plots import pyplot, save_png

RUN_FILE = "run.json"
TRAIN_LOG_FILE = "train_log.json"
LOSS_CURVE_FILE = "loss_curve.png"
CHECKPOINT_DIR = "checkpoints"
SAMPLE_SUFFIXES = (".parquet", ".csv")


def load_run_config(path: str | Path) -> dict[str, Any]:
    """A run config file (JSON: ``{"model": {...}, "train": {...}}``)."""
    path = Path(path)
    if not path.is_file():
        raise NtgError(f"{path}: no such config file; pass a JSON file with 'model' and 'train' sections")
    try:
        config = read_json(path)
    except ValueError as err:
        raise NtgError(f"{path}: not valid JSON ({err}); fix the file") from None
    if not isinstance(config, dict):
        raise NtgError(f"{path}: expected a JSON object with 'model' and 'train' sections")
    return config


def train_inputs(dataset: PreparedDataset, n_packets: int) -> tuple[FlowTable, FlowTable | None]:
    """The training and validation splits cut to the generator's first ``n_packets`` packets."""
    train, val = dataset.train, dataset.val
    if len(train) == 0:
        raise NtgError(f"{dataset.root}: empty train split; re-run `ntg data prepare` with more captures")
    if not 1 <= n_packets <= train.max_packets:
        raise NtgError(f"n_packets={n_packets} is outside 1..{train.max_packets}; set model.n_packets")
    known = set(train.labels.astype(str).tolist())
    val = val.take(val.meta["label"].astype(str).isin(known).to_numpy())  # classes the model can know
    return train.first(n_packets), (val.first(n_packets) if len(val) else None)


def dataset_record(dataset: PreparedDataset) -> dict[str, Any]:
    """Where the training data came from: folder, source, checksums (for run.json)."""
    meta = dataset.meta
    source = meta.get("source")
    checksum = source.get("checksum") if isinstance(source, dict) else meta.get("checksum")
    return {
        "dir": str(Path(dataset.root).resolve()),
        "source": source,
        "checksum": checksum,
        "cache_key": meta.get("cache_key"),
        "meta_sha256": hashlib.sha256((Path(dataset.root) / META_FILE).read_bytes()).hexdigest(),
        "classes": dataset.classes,
        "splits": {"train": len(dataset.train), "val": len(dataset.val)},
    }


def train_run(
    family: str,
    data_dir: str | Path,
    out_dir: str | Path,
    config: Mapping[str, Any] | str | Path | None = None,
    overrides: Iterable[str] = (),
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Train ``family`` on a prepared dataset and write the run folder ``out_dir``; returns it.

    ``config`` is a run config dict (or the path of its JSON file); ``overrides`` are ``section.key=value``
    strings applied on top. Re-running with the same arguments resumes from ``out_dir/checkpoints``.
    ``out_dir`` must be new, empty or an earlier run folder, unless ``force`` (:func:`claim_output_dir`).
    """
    claim_output_dir(out_dir, "run", force=force, mark=False)
    import ntg

    if isinstance(config, str | Path):
        config = load_run_config(config)
    overrides = list(overrides)
    model_hparams, train_config = split_config(config, overrides)
    dataset = PreparedDataset.load(data_dir)
    gen = create_generator(family, **model_hparams)
    train, val = train_inputs(dataset, gen.n_packets)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NtgError(f"{out_dir}: exists and is not a folder; choose another --out")

    gen.fit(train, val, train_config=train_config, progress=progress, checkpoint_dir=out_dir / CHECKPOINT_DIR)
    log = dict(gen.fit_log_ or {})
    for note in log.get("notes", []):
        print(f"ntg: note: {note}", file=sys.stderr)
    log["num_parameters"] = gen.num_parameters()
    log["flops_per_flow"] = gen.flops_per_flow()
    run = {
        "family": family,
        "hparams": gen.get_config(),
        "train": train_config.to_dict(),
        "overrides": overrides,
        "dataset": dataset_record(dataset),
        "ntg_version": ntg.__version__,
        "torch_version": _torch_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    gen.save_pretrained(out_dir)
    write_run_files(out_dir, run, log)
    return out_dir


def write_run_files(out_dir: Path, run: dict[str, Any], log: dict[str, Any]) -> None:
    """``run.json``, ``train_log.json`` and, when there is a history, ``loss_curve.png``."""
    write_json(out_dir / RUN_FILE, run)
    write_json(out_dir / TRAIN_LOG_FILE, log)
    if log.get("history"):
        dataset = Path((run.get("dataset") or {}).get("dir") or "").name
        plot_loss_curve(log["history"], out_dir / LOSS_CURVE_FILE, title=run.get("family", ""), dataset=dataset)


def plot_loss_curve(history: list[dict[str, Any]], path: Path, title: str = "", dataset: str = "") -> Path:
    """Train and validation loss per epoch as a PNG (matplotlib, Agg backend); ``title`` names the generator
    and ``dataset`` the data, so the figure still says what it shows outside its run folder."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(5.5, 3.5), dpi=100)
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    if any(h.get("val_loss") is not None for h in history):
        ax.plot(epochs, [h.get("val_loss") for h in history], marker="o", label="validation")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    heading = " on ".join(part for part in (title, dataset) if part)
    ax.set(xlabel="epoch", ylabel="loss (the family's training objective)",
           title=f"{heading}: loss per epoch" if heading else "loss per epoch")
    ax.legend(title="split")
    fig.tight_layout()
    return save_png(fig, path)


def sample_run(
    run_dir: str | Path,
    n: int,
    label: LabelRequest = None,
    seed: int = 0,
    out: str | Path = "synthetic.parquet",
) -> Path:
    """Sample ``n`` flows (of class ``label``, or the training mix) from a trained run; write ``out``."""
    out = Path(out)
    if out.suffix not in SAMPLE_SUFFIXES:
        raise NtgError(f"{out}: unsupported output type {out.suffix or '(none)'}; use .parquet or .csv")
    if n < 1:
        raise NtgError(f"n={n}: ask for at least one flow")
    gen = load_generator(run_dir)
    return gen.sample(n, label=label, seed=seed).write(out)


def _torch_version() -> str:
    import torch

    return torch.__version__
