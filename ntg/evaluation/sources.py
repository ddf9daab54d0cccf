"""What ``evaluate`` judges: a generator (folder, checkpoint, Hub repo or object) or a table of synthetic flows,
and whether it belongs to the dataset it is judged on.

A generator fitted on other data is not an error (a zoo model may be tried on a user's captures), but its
scores mean something else, so :func:`provenance_warnings` names both datasets in the report and on the
terminal. Classes are handled per class: a class of the data that the source does not know gets no synthetic
flows (its TSTR F1 is 0, fidelity skips it, augmentation adds none to it) and is named in a warning; a source
that knows none of the data's classes is refused with one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ntg.data.dataset import PreparedDataset
from ntg.data.schema import DEFAULT_N, FlowTable
from ntg.errors import NtgError
from ntg.models.base import Generator

FitLike = Callable[[FlowTable, FlowTable | None, int], Generator]


@dataclass
class Source:
    """The thing being judged; exactly one of ``generator`` and ``table`` is set."""

    generator: Generator | None
    table: FlowTable | None
    record: dict[str, Any]  # the report's ``source`` entry
    run_dir: Path | None = None
    run: dict[str, Any] = field(default_factory=dict)  # run.json, when the folder has one

    @property
    def sampler(self) -> Generator | FlowTable:
        return self.generator if self.generator is not None else self.table

    @property
    def classes(self) -> list[str]:
        if self.generator is not None:
            return [str(c) for c in (self.generator.classes_ or [])]
        return sorted(set(self.table.labels.astype(str).tolist()))


def load_source(generator: Generator | str | Path | None, synthetic: FlowTable | str | Path | None) -> Source:
    """Load what ``--generator`` or ``--synthetic`` names (exactly one of them)."""
    if (generator is None) == (synthetic is None):
        raise NtgError("give exactly one of --generator RUN_DIR and --synthetic FILE to evaluate")
    if generator is not None:
        return _generator_source(generator)
    if isinstance(synthetic, FlowTable):
        table, path = synthetic, None
    else:
        path = Path(synthetic)
        if not path.is_file():
            raise NtgError(f"{path}: no such synthetic flow file; pass a .parquet or .csv file from `ntg sample`")
        try:
            table = FlowTable.read(path)
        except (FileNotFoundError, ValueError, OSError, KeyError) as err:
            raise NtgError(f"{path}: unreadable as flows ({err}); pass a .parquet or .csv file from `ntg sample`") \
                from None
    if "label" not in table.meta.columns or len(table) == 0:
        raise NtgError(f"{path}: synthetic flows need rows and a 'label' column; see `ntg sample`")
    family = table.meta["family"].iloc[0] if "family" in table.meta.columns else None
    record = {"kind": "synthetic", "path": str(path) if path else None, "family": family,
              "is_bootstrap": family == "bootstrap", "hparams": None}
    return Source(None, table, record)


def _generator_source(generator: Generator | str | Path) -> Source:
    from ntg.models.base import load_generator, resolve_model_dir

    if isinstance(generator, Generator):
        gen, path = generator, None
    else:
        gen = load_generator(generator)
        local = Path(generator).expanduser()
        path = (local if local.is_dir() else local.parent) if local.exists() else resolve_model_dir(generator)
    record = {"kind": "generator", "path": str(path) if path else None, "family": gen.family,
              "is_bootstrap": gen.family == "bootstrap", "hparams": gen.get_config()}
    return Source(gen, None, record, path, read_run(path))


def read_run(path: Path | None) -> dict[str, Any]:
    """The run folder's ``run.json`` (its dataset record, hyperparameters, train settings), or ``{}``."""
    from ntg.utils.io import read_json

    if path is None or not (Path(path) / "run.json").exists():
        return {}
    try:
        return read_json(Path(path) / "run.json")
    except ValueError as err:
        raise NtgError(f"{path}/run.json: not valid JSON ({err}); re-run `ntg train`") from None


def packet_window(dataset: PreparedDataset, sampler: Generator | FlowTable, n_packets: int | None) -> int:
    """Packets per flow to judge: ``n_packets`` or the generator's, capped by what the data and a table store."""
    if isinstance(sampler, Generator):
        n = int(n_packets or sampler.n_packets)
        if n > sampler.n_packets:
            raise NtgError(f"--n-packets {n} exceeds the generator's n_packets={sampler.n_packets}; pass fewer")
    else:
        n = min(int(n_packets or dataset.meta.get("n_packets", DEFAULT_N)), sampler.max_packets)
    if n < 1:
        raise NtgError(f"--n-packets must be at least 1, not {n}")
    return min(n, dataset.flows.max_packets)


def dataset_name(meta: dict[str, Any] | None, folder: str | Path | None) -> str:
    """A dataset's registry name (or source path), with its folder: how warnings name it."""
    source = (meta or {}).get("source") if isinstance(meta, dict) else None
    name = source.get("name") or source.get("local_path") if isinstance(source, dict) else None
    return f"{name} ({folder})" if name else str(folder)


def provenance_warnings(source: Source, dataset: PreparedDataset) -> list[str]:
    """Warnings when the source was fitted on other data or lacks some of the data's classes (see the module
    docstring); NtgError when it knows none of them."""
    warnings = []
    trained_on = source.run.get("dataset") or {}
    here = dataset_name(dataset.meta, dataset.root)
    meta_source = dataset.meta.get("source")
    checksum = meta_source.get("checksum") if isinstance(meta_source, dict) else dataset.meta.get("checksum")
    theirs = trained_on.get("checksum")
    if theirs and checksum and theirs != checksum:
        there = dataset_name({"source": trained_on.get("source")}, trained_on.get("dir"))
        warnings.append(f"the generator was fitted on {there}, not on {here}: its scores judge it on data it "
                        "was not trained on")
    elif trained_on.get("cache_key") and dataset.meta.get("cache_key") and \
            trained_on["cache_key"] != dataset.meta["cache_key"]:
        warnings.append(f"the generator was fitted on the same captures prepared differently "
                        f"({trained_on.get('dir')}, not {dataset.root}): with other splits the held-out flows may "
                        "include flows it was trained on")
    known = set(source.classes)
    unknown = [c for c in dataset.classes if c not in known]
    if len(unknown) == len(dataset.classes):
        what = "generator" if source.generator is not None else "synthetic file"
        raise NtgError(f"the {what} knows none of the classes of {here} (it knows {sorted(known)[:5]}...); "
                       "evaluate it on the dataset it was fitted on")
    if unknown:
        warnings.append(f"the source has no flows of {len(unknown)} class(es) of {here}: {unknown}; they get no "
                        "synthetic flows (TSTR F1 0 for them, fidelity skips them, augmentation adds none)")
    return warnings


def generator_factory(source: Source) -> FitLike | None:
    """``fit(train, val, seed)``: a fresh generator like the source's (family, hyperparameters, train config);
    None for a synthetic table, which cannot be re-fitted."""
    gen = source.generator
    if gen is None:
        return None
    from ntg.models.base import create_generator

    hparams = dict(source.run.get("hparams") or source.run.get("model") or gen.get_config())
    train_config = source.run.get("train")

    def fit(train: FlowTable, val: FlowTable | None, seed: int) -> Generator:
        params = dict(hparams)
        if "seed" in params:
            params["seed"] = int(params["seed"]) + seed
        fresh = create_generator(gen.family, **params)
        n = fresh.n_packets
        train = train.first(n) if train.max_packets > n else train
        if val is not None and len(val):
            known = np.isin(val.labels.astype(str), train.labels.astype(str))
            val = val.take(np.flatnonzero(known))
        val = (val.first(n) if val.max_packets > n else val) if val is not None and len(val) else None
        return fresh.fit(train, val, train_config=train_config, progress=False)

    return fit
