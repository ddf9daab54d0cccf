"""The repos the test hub (``tests/hub_server.py``) serves: files with the ids git and LFS give them, a repo's
commit id and ``list_repo_tree`` entries, and the Hub's model-card metadata check."""

from __future__ import annotations

import hashlib
from pathlib import Path

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".npy", ".npz", ".onnx", ".parquet")
LFS_MIN_SIZE = 10 * 1024 * 1024  # the Hub stores files above 10 MB in LFS whatever their name
BRANCH = "main"


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


class RepoFile:
    """One file of a served repo, with the ids git and LFS would give it."""

    def __init__(self, path: str, data: bytes) -> None:
        self.path = path
        self.size = len(data)
        self.lfs = path.endswith(LFS_SUFFIXES) or self.size >= LFS_MIN_SIZE
        self.sha256 = hashlib.sha256(data).hexdigest()
        pointer = lfs_pointer(self.sha256, self.size)
        self.pointer_size = len(pointer)
        # in git, an LFS file is its pointer; the Hub reports the pointer's blob id as ``oid``
        self.blob_id = git_blob_sha1(pointer if self.lfs else data)

    def tree_entry(self) -> dict:
        entry = {"type": "file", "oid": self.blob_id, "size": self.size, "path": self.path}
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": self.pointer_size}
        return entry

    def sibling(self, blobs: bool) -> dict:
        if not blobs:
            return {"rfilename": self.path}
        lfs = {"sha256": self.sha256, "size": self.size, "pointerSize": self.pointer_size} if self.lfs else None
        return {"rfilename": self.path, "size": self.size, "blobId": self.blob_id, "lfs": lfs}


class Repo:
    """A snapshot of ``ROOT/<owner>/<name>``, read when a request comes in."""

    def __init__(self, repo_id: str, folder: Path, commits: int = 0) -> None:
        self.repo_id = repo_id
        self.folder = folder
        self.files = {
            p.relative_to(folder).as_posix(): RepoFile(p.relative_to(folder).as_posix(), p.read_bytes())
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
        digest = hashlib.sha1(repo_id.encode() + (b"#%d" % commits if commits else b""))
        for path, f in self.files.items():
            digest.update(f"{path}\0{f.blob_id}\n".encode())
        self.sha = digest.hexdigest()

    def has_revision(self, revision: str) -> bool:
        return revision in (BRANCH, self.sha)

    def tree(self, prefix: str, recursive: bool) -> list[dict] | None:
        """``list_repo_tree`` entries under ``prefix`` ("" for the root); None if ``prefix`` is no folder."""
        base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        if base and not any(p.startswith(base) for p in self.files):
            return None
        entries: dict[str, dict] = {}
        for path, f in self.files.items():
            if not path.startswith(base):
                continue
            parts = path[len(base) :].split("/")
            for depth in range(1, len(parts)):
                folder = base + "/".join(parts[:depth])
                if folder not in entries and (recursive or depth == 1):
                    entries[folder] = {"type": "directory", "oid": git_blob_sha1(folder.encode()), "path": folder}
            if recursive or len(parts) == 1:
                entries[path] = f.tree_entry()
        return [entries[k] for k in sorted(entries)]


def model_card_errors(readme: str) -> list[str]:
    """What the Hub's metadata check would refuse in a README.md: bad YAML, or a model-index without the fields
    the Hub needs (``name``; per result ``task.type``, ``dataset.name`` / ``type``, metrics' ``type`` / ``value``)."""
    import yaml

    if not readme.startswith("---\n"):
        return []
    try:
        meta = yaml.safe_load(readme.split("---\n", 2)[1])
    except (yaml.YAMLError, IndexError) as err:
        return [f"invalid YAML: {err}"]
    if not isinstance(meta, dict):
        return ["metadata must be a YAML mapping"]
    errors = []
    for entry in meta.get("model-index") or []:
        if not entry.get("name"):
            errors.append('"model-index[0].name" is required')
        for result in entry.get("results") or []:
            if not (result.get("task") or {}).get("type"):
                errors.append('"model-index[0].results[].task.type" is required')
            dataset = result.get("dataset") or {}
            if not (dataset.get("name") and dataset.get("type")):
                errors.append('"model-index[0].results[].dataset" needs name and type')
            if any("type" not in m or "value" not in m for m in result.get("metrics") or []):
                errors.append('"model-index[0].results[].metrics[]" need type and value')
    return errors
