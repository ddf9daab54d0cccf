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


def notices(meta: dict[str, Any]) -> list[str]:
    """What a user must know about a prepared dataset: dropped classes and why, truncated captures, one class."""
    by_reason: dict[str, list[dict[str, Any]]] = {}
    for d in meta.get("dropped_classes", []):
        by_reason.setdefault(d["reason"], []).append(d)
    lines = []
    for reason, items in by_reason.items():  # one line per reason, so nDPI's long tail stays readable
        items = sorted(items, key=lambda d: -d["flows"])
        names = ", ".join(f"{d['name']} ({d['flows']} flows)" for d in items[:8])
        more = f" and {len(items) - 8} more (`ntg data info --json`)" if len(items) > 8 else ""
        lines.append(f"dropped class{'es' if len(items) > 1 else ''} {names}{more}: {reason}")
    truncated = meta.get("parsing", {}).get("truncated_captures") or []
    if truncated:
        shown = ", ".join(map(str, truncated[:5])) + (f" and {len(truncated) - 5} more" if len(truncated) > 5 else "")
        lines.append(f"warning: {len(truncated)} truncated capture(s), read up to the cut: {shown}")
    if len(meta.get("classes", [])) == 1:
        lines.append(f"warning: one class only ({meta['classes'][0]['name']}): nothing to classify, so TSTR and "
                     "augmentation scores are meaningless; lower --min-flows-per-class or add captures")
    return lines
