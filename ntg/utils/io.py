"""Safe writes for results: atomic, readable by others, and never over something ntg did not write.

* :func:`atomic_path` / :func:`atomic_dir` — a crash never leaves a half-written result behind. Their temporary
  files and folders get the ordinary permissions of the umask (``mkstemp`` makes 0600, ``mkdtemp`` 0700, which
  would hide results from the other users of a shared machine).
* :func:`claim_output_dir` — an ntg command only replaces what it recognises as its own earlier output of the
  same kind (the marker file :data:`MARKER_FILE` it wrote, or the files that kind always has); anything else
  (a folder of unrelated files, the home folder, a plain file) is refused with one line naming the path.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ntg.errors import NtgError

MARKER_FILE = ".ntg-output.json"

#: Files that identify an output kind written before markers existed (all must be present).
OUTPUT_SIGNATURES: dict[str, tuple[tuple[str, ...], ...]] = {
    "dataset": (("meta.json", "flows.parquet"),),
    "run": (("run.json",), ("config.json", "model.safetensors"), ("checkpoints",)),
    "report": (("report.json",),),
    "demo": (("comparison.md",), ("data", "runs"), ("data", "reports")),
    "sweep": (("sweep.json",), ("trials", "study.db")),
}


def current_umask() -> int:
    """The process umask, read without changing it where the platform allows (``os.umask`` is racy)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _ordinary_mode(path: Path, is_dir: bool) -> None:
    os.chmod(path, (0o777 if is_dir else 0o666) & ~current_umask())


def _readable_tree(folder: Path) -> None:
    """Add the read (and folder search) bits the umask allows to everything under ``folder``: libraries that
    write through their own temporary files (safetensors) leave 0600 behind."""
    allowed = ~current_umask()
    for item in [folder, *folder.rglob("*")]:
        if item.is_symlink():
            continue
        mode = stat.S_IMODE(item.stat().st_mode)
        os.chmod(item, mode | ((0o555 if item.is_dir() else 0o444) & allowed))


@contextmanager
def _writable(path: Path) -> Iterator[None]:
    """OS errors while creating temporaries name the user's path, not the hidden temporary's."""
    try:
        yield
    except OSError as err:
        raise NtgError(f"{path}: cannot write here ({err.strerror or err}); choose a folder you can write to "
                       "or fix its permissions") from None


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    if path.is_dir():
        raise NtgError(f"{path}: is a folder; give a file name (or another path)")
    with _writable(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists() and not tmp_path.is_dir():
            _ordinary_mode(tmp_path, is_dir=False)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_dir(path: str | Path, kind: str | None = None, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole.

    With ``kind``, ``path`` is first claimed (:func:`claim_output_dir`) and the new folder carries the marker
    of that kind. Without it, a marker already in ``path`` is carried over, so callers that predate markers
    keep the claim made at their start.
    """
    path = Path(path)
    if kind is not None:
        claim_output_dir(path, kind, force=force, mark=False)
    elif path.exists() and not path.is_dir():
        raise NtgError(f"{path}: is a file, not a folder; choose another path")
    elif path.is_dir() and _protected(path):
        raise NtgError(f"{path}: is your home, working or a top-level folder, which ntg never replaces; "
                       "choose a new sub-folder")
    with _writable(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    _ordinary_mode(tmp, is_dir=True)
    try:
        yield tmp
        _readable_tree(tmp)
        if kind is not None:
            _write_marker(tmp, kind)
        elif (path / MARKER_FILE).is_file() and not (tmp / MARKER_FILE).exists():
            shutil.copy2(path / MARKER_FILE, tmp / MARKER_FILE)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def output_kind(path: str | Path) -> str | None:
    """The kind of ntg output ``path`` holds (its marker, else its signature files), or None."""
    path = Path(path)
    marker = path / MARKER_FILE
    if marker.is_file():
        try:
            kind = json.loads(marker.read_text()).get("kind")
            if isinstance(kind, str):
                return kind
        except (ValueError, OSError, AttributeError):
            pass
    for kind, signatures in OUTPUT_SIGNATURES.items():
        if any(all((path / name).exists() for name in files) for files in signatures):
            return kind
    return None


def _protected(path: Path) -> bool:
    """Folders no command ever replaces: the home folder, the file-system root, the working folder and above."""
    resolved = path.resolve()
    home = Path(os.environ.get("HOME") or Path.home()).resolve()
    cwd = Path.cwd().resolve()
    return resolved in (home, Path(resolved.anchor)) or resolved == cwd or resolved in cwd.parents


def claim_output_dir(
    path: str | Path, kind: str, *, force: bool = False, mark: bool = True, option: str = "--out"
) -> Path:
    """Check that ``path`` may be (re)written as an output folder of ``kind``; with ``mark``, create it and mark it.

    Allowed: a missing or empty folder, or one holding an earlier ntg output of the same kind; with ``force``,
    any other folder too. Never: a plain file, the home folder, the file-system root, the working folder or a
    folder above it. Raises :class:`NtgError` naming the path and what to do.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NtgError(f"{option} {path}: is a file, not a folder; choose another path (nothing was changed)")
    above = next((p for p in path.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise NtgError(f"{option} {path}: {above} is a file, not a folder; choose another path")
    if above is not None:  # fail now, not after minutes of work: can we create something beside the output?
        with _writable(path):
            os.rmdir(tempfile.mkdtemp(prefix=".ntg-probe.", dir=above))
    if path.is_dir():
        if _protected(path):
            raise NtgError(f"{option} {path}: is your home, working or a top-level folder, which ntg never "
                           "replaces; choose a new sub-folder (nothing was changed)")
        found = output_kind(path)
        empty = not any(path.iterdir())
        if not (empty or found == kind or force):
            what = f"an ntg {found} folder, not a {kind}" if found else f"a folder ntg did not write as a {kind}"
            raise NtgError(f"{option} {path}: is {what}, and its contents would be replaced; choose another "
                           "path or pass --force to replace it (nothing was changed)")
    if mark:
        with _writable(path):
            path.mkdir(parents=True, exist_ok=True)
        if output_kind(path) != kind or not (path / MARKER_FILE).exists():
            _write_marker(path, kind)
    return path


def claim_output_file(path: str | Path, recognise: Iterable[Callable[[Path], bool]] = (), *,
                      force: bool = False, option: str = "--out") -> Path:
    """Check that the file ``path`` may be replaced: missing, or one of ``recognise`` says ntg wrote it, or force."""
    path = Path(path)
    if path.is_dir():
        raise NtgError(f"{option} {path}: is a folder; give a file name (nothing was changed)")
    if path.exists() and not force and not any(check(path) for check in recognise):
        raise NtgError(f"{option} {path}: exists and is not a file ntg wrote; choose another path or pass --force "
                       "to replace it (nothing was changed)")
    return path


def _write_marker(folder: Path, kind: str) -> None:
    from ntg import __version__

    write_json(folder / MARKER_FILE, {"kind": kind, "ntg_version": __version__,
                                      "note": "written by ntg; marks this folder as ntg output it may replace"})


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically (sorted keys, indented, trailing newline)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")
    return path


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
