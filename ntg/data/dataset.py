"""A prepared dataset on disk: ``DIR/flows.parquet`` + ``DIR/meta.json``, read back as split views."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ntg.data.schema import SCHEMA_VERSION, FlowTable
from ntg.errors import NtgError
from ntg.utils.io import read_json

FLOWS_FILE = "flows.parquet"
META_FILE = "meta.json"
SPLITS = ("train", "val", "test")


@dataclass
class PreparedDataset:
    """All flows of a prepared dataset with its metadata; ``.train`` / ``.val`` / ``.test`` are views."""

    root: Path
    flows: FlowTable
    meta: dict[str, Any]

    @classmethod
    def load(cls, root: str | Path) -> PreparedDataset:
        root = Path(root)
        meta_path, flows_path = root / META_FILE, root / FLOWS_FILE
        if not meta_path.exists() or not flows_path.exists():
            raise NtgError(
                f"{root}: not a prepared dataset (needs {FLOWS_FILE} and {META_FILE}); "
                f"create one with `ntg data prepare SOURCE --out {root}`"
            )
        meta = read_json(meta_path)
        version = meta.get("schema_version")
        if version != SCHEMA_VERSION:
            raise NtgError(
                f"{meta_path}: schema version {version} but this ntg reads {SCHEMA_VERSION}; "
                "re-run `ntg data prepare` to rebuild it"
            )
        return cls(root=root, flows=FlowTable.read(flows_path), meta=meta)

    @property
    def classes(self) -> list[str]:
        """Class names in a fixed order (the order of ``meta.json``)."""
        return [c["name"] for c in self.meta["classes"]]

    def split(self, name: str) -> FlowTable:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return self.flows.where(split=name)

    @cached_property
    def train(self) -> FlowTable:
        return self.split("train")

    @cached_property
    def val(self) -> FlowTable:
        return self.split("val")

    @cached_property
    def test(self) -> FlowTable:
        return self.split("test")
