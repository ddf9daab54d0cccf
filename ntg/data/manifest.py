"""File manifests (relative path → size and sha256) that pin a dataset's exact bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ntg.utils.io import read_json, write_json

CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def build_manifest(root: str | Path, relative_to: str | Path | None = None) -> dict[str, dict]:
    """Every file below ``root``: path relative to ``relative_to`` (default ``root``) → size, sha256."""
    root = Path(root)
    base = Path(relative_to) if relative_to else root
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {
        p.relative_to(base).as_posix(): {"size": p.stat().st_size, "sha256": sha256_file(p)} for p in files
    }


def write_manifest(path: str | Path, manifest: dict[str, dict]) -> Path:
    return write_json(path, {"files": manifest})


def read_manifest(path: str | Path) -> dict[str, dict]:
    return read_json(path)["files"]
