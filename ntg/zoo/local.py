"""The local zoo: one git repository per model in the layout a Hub mirror serves offline (olah's
``<zoo>/models/<namespace>/<name>/``, committed on ``main``), and ``<zoo>/index.json`` naming the repos for
servers without a listing API.

Git, not a copy, because the mirror serves commits: a re-publish is a new commit of the same repository, so a
client's cache sees a new revision and the old one stays addressable. Commits carry a fixed author
(``ntg``), never the user's name or host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from ntg.errors import NtgError
from ntg.utils.io import read_json, write_json

BRANCH = "main"
INDEX_FILE = "index.json"
_GIT_ENV = {"GIT_AUTHOR_NAME": "ntg", "GIT_AUTHOR_EMAIL": "ntg@localhost", "GIT_COMMITTER_NAME": "ntg",
            "GIT_COMMITTER_EMAIL": "ntg@localhost", "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}


def default_zoo_dir() -> Path:
    """``$NTG_ZOO`` or ``zoo/local``."""
    return Path(os.environ.get("NTG_ZOO") or "zoo/local")


def repo_dir(zoo_dir: str | Path, repo_id: str) -> Path:
    return Path(zoo_dir) / "models" / repo_id


def _git(folder: Path, *args: str) -> str:
    env = {**os.environ, **_GIT_ENV, "HOME": str(folder)}  # no global config: no user name, no signing
    if shutil.which("git") is None:
        raise NtgError("git is not installed; the local zoo keeps one git repository per model — install git "
                       "(apt-get install git) or publish with --endpoint URL")
    done = subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null", *args],
                          cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise NtgError(f"{folder}: git {args[0]} failed: {' '.join(done.stderr.split())[:300]}; check that the "
                       "zoo folder is writable and not a damaged repository (delete it to start over)")
    return done.stdout.strip()


def commit_folder(zoo_dir: str | Path, repo_id: str, staged: Path, message: str) -> str:
    """Make ``staged``'s files the new contents of ``repo_id``'s repository (created on first use) in one new
    commit on ``main``; return its id."""
    folder = repo_dir(zoo_dir, repo_id)
    if not (folder / ".git").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        _git(folder, "init", "-q", "-b", BRANCH)
    for old in folder.iterdir():
        if old.name != ".git":
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    for item in staged.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, folder / item.name)
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "--allow-empty", "-m", message)
    return _git(folder, "rev-parse", "HEAD")


def read_index(zoo_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(zoo_dir) / INDEX_FILE
    if not path.is_file():
        return []
    try:
        return list(read_json(path).get("repos") or [])
    except (ValueError, AttributeError) as err:
        raise NtgError(f"{path}: unreadable zoo index ({err}); delete it and publish again") from None


def update_index(zoo_dir: str | Path, entries: list[dict[str, Any]]) -> Path:
    """Add or replace (by ``repo_id``) the entries in ``<zoo>/index.json``, written atomically."""
    repos = {e["repo_id"]: e for e in read_index(zoo_dir)}
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for entry in entries:
        repos[entry["repo_id"]] = {"repo_id": entry["repo_id"], "family": entry["family"],
                                   "dataset": entry["dataset"], "sweep": entry["sweep"], "published": stamp}
    path = Path(zoo_dir) / INDEX_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_json(path, {"repos": [repos[k] for k in sorted(repos)]})


__all__ = ["commit_folder", "default_zoo_dir", "read_index", "repo_dir", "update_index"]
