"""A sweep folder in an object store (``s3://bucket/prefix``, ``gs://bucket/prefix``) through a local mirror.

The records, the study repair, ``ntg pareto`` and the zoo all read plain local files, so instead of teaching
each of them a second file system the driver works in a local mirror of the URI (``$NTG_SWEEP_CACHE`` or
``~/.cache/ntg/sweeps/<last name>-<sha of the URI>``): :meth:`SweepStore.pull` makes the mirror a copy of the URI (so a
sweep resumes, and its front is read, from any machine), :meth:`SweepStore.push` uploads what changed since
(after every finished trial and at the end). Tune's own folder (``tune/``: trial checkpoints) is written by
Ray straight to ``<URI>/tune`` from whichever node runs a trial, so ``push`` skips it.

The Optuna study is a journal file in the mirror, uploaded with the rest: safe because a sweep has exactly
one driver (two drivers on the same URI would each upload their own journal; use an RDB URL for that).
Credentials come the usual way (``AWS_*`` variables, ``~/.aws``, instance roles; ``GOOGLE_APPLICATION_
CREDENTIALS`` or the metadata server) on the driver and on every Ray node.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ntg.errors import NtgError

#: URI schemes read through pyarrow.fs (Ray Tune's storage_path accepts the same)
OBJECT_SCHEMES = ("s3", "gs", "gcs")
TUNE_DIR = "tune"
CONNECT_TIMEOUT_S = 2.0
REQUEST_TIMEOUT_S = 10.0
HINT = "give s3://bucket/prefix or gs://bucket/prefix (S3-compatible servers: ?endpoint_override=HOST:PORT&scheme=http)"


def is_object_uri(out: str | Path) -> bool:
    """Whether ``--out`` names an object store that :class:`SweepStore` mirrors."""
    scheme, sep, _ = str(out).partition("://")
    return bool(sep) and scheme.lower() in OBJECT_SCHEMES


def cache_root() -> Path:
    """Where mirrors live: ``$NTG_SWEEP_CACHE``, else ``$XDG_CACHE_HOME/ntg/sweeps`` (``~/.cache``)."""
    given = os.environ.get("NTG_SWEEP_CACHE")
    if given:
        return Path(given).expanduser().resolve()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return (base / "ntg" / "sweeps").resolve()


def _filesystem(uri: str) -> tuple[Any, str]:
    """pyarrow's file system for ``uri`` and the path in it, with short timeouts and one retry for S3 so a
    wrong endpoint fails in seconds instead of the SDK's minutes of back-off."""
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as err:  # pyarrow.lib.ArrowInvalid is a ValueError
        raise NtgError(f"--out {uri}: {str(err).splitlines()[0]}; {HINT}") from None
    if isinstance(fs, pafs.S3FileSystem):
        options = dict(fs.__reduce__()[1][0])
        options.update(connect_timeout=CONNECT_TIMEOUT_S, request_timeout=REQUEST_TIMEOUT_S,
                       retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=2))
        options["region"] = options.get("region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        fs = pafs.S3FileSystem(**{k: v for k, v in options.items() if v is not None})
    return fs, path.rstrip("/")


class SweepStore:
    """An object-store sweep folder and its local mirror (see the module docstring)."""

    def __init__(self, uri: str) -> None:
        import pyarrow.fs as pafs

        self.uri = uri
        scheme = uri.partition("://")[0].lower()
        if scheme not in OBJECT_SCHEMES:
            raise NtgError(f"--out {uri}: {scheme}:// is not an object store ntg writes; {HINT}")
        bucket = urlsplit(uri).netloc
        if not bucket:
            raise NtgError(f"--out {uri}: no bucket; {HINT}")
        self.fs, self.root = _filesystem(uri)
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", urlsplit(uri).path.rstrip("/").rpartition("/")[2] or bucket)
        # readable (the zoo cards name the sweep after this folder) and unique per URI
        self.local = cache_root() / f"{name}-{hashlib.sha256(uri.encode()).hexdigest()[:12]}"
        self._sent: dict[str, tuple[int, int]] = {}
        try:
            info = self.fs.get_file_info(bucket)
        except OSError as err:
            raise NtgError(f"--out {uri}: storage not reachable ({_first_line(err)}); check the endpoint, network "
                           f"and credentials (AWS_*/GOOGLE_APPLICATION_CREDENTIALS)") from None
        if info.type == pafs.FileType.NotFound:
            raise NtgError(f"--out {uri}: bucket {bucket!r} not found at this endpoint; create it or fix the URI")

    @property
    def tune_path(self) -> str:
        """Tune's ``storage_path`` inside :attr:`fs` (with ``storage_filesystem=fs``): every node writes there."""
        return f"{self.root}/{TUNE_DIR}"

    def uri_of(self, relative: str) -> str:
        """``<URI>/relative`` with the URI's query options kept (e.g. a Ray Train ``storage_path``)."""
        head, sep, query = self.uri.partition("?")
        return f"{head.rstrip('/')}/{relative}{sep}{query}"

    def _remote_files(self, skip: Iterable[str] = ()) -> dict[str, Any]:
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(self.root, recursive=True, allow_not_found=True)
        try:
            infos = self.fs.get_file_info(selector)
        except OSError as err:
            raise NtgError(f"{self.uri}: listing failed ({_first_line(err)}); check the URI and credentials") from None
        found = {}
        for info in infos:
            if info.type != pafs.FileType.File:
                continue
            rel = info.path[len(self.root) + 1:]
            if not any(rel == s or rel.startswith(s + "/") for s in skip):
                found[rel] = info
        return found

    def pull(self, skip: Iterable[str] = (), log: Callable[[str], None] = lambda line: None) -> Path:
        """Make the mirror a copy of the URI (files under ``skip`` left out); returns the mirror folder."""
        skip = tuple(skip)
        remote = self._remote_files(skip)
        self.local.mkdir(parents=True, exist_ok=True)
        for path in self._local_files(skip):
            if path not in remote:
                (self.local / path).unlink()
        fetched = 0
        for rel, info in remote.items():
            target = self.local / rel
            if target.is_file() and target.stat().st_size == info.size and _same(self._sent.get(rel), target):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.part")
            with self.fs.open_input_stream(info.path) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            tmp.replace(target)
            fetched += 1
        self._sent = {rel: _stamp(self.local / rel) for rel in remote}
        if remote:
            log(f"{self.uri}: {len(remote)} file(s) in the mirror {self.local} ({fetched} downloaded)")
        return self.local

    def push(self, skip: Iterable[str] = (TUNE_DIR,)) -> int:
        """Upload the mirror's new and changed files (trial records last, after their generators); returns how
        many were uploaded."""
        files = [rel for rel in self._local_files(tuple(skip)) if _stamp(self.local / rel) != self._sent.get(rel)]
        files.sort(key=lambda rel: (rel.count("/") == 1 and rel.endswith(".json"), rel))
        for rel in files:
            stamp = _stamp(self.local / rel)
            try:
                self.fs.create_dir(f"{self.root}/{rel}".rsplit("/", 1)[0], recursive=True)
                with open(self.local / rel, "rb") as src, self.fs.open_output_stream(f"{self.root}/{rel}") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except OSError as err:
                raise NtgError(f"{self.uri}: upload of {rel} failed ({_first_line(err)}); the mirror "
                               f"{self.local} keeps it: run the same command again to retry") from None
            self._sent[rel] = stamp
        return len(files)

    def _local_files(self, skip: tuple[str, ...]) -> list[str]:
        if not self.local.is_dir():
            return []
        found = []
        for path in self.local.rglob("*"):
            rel = path.relative_to(self.local).as_posix()
            if path.is_file() and not path.name.endswith(".part") and not any(
                    rel == s or rel.startswith(s + "/") for s in skip):
                found.append(rel)
        return found


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _same(sent: tuple[int, int] | None, path: Path) -> bool:
    """A mirror file is current when it is what this process last pulled or pushed (else fetch it again)."""
    return sent is not None and sent == _stamp(path)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def upload_callback(store: SweepStore, log: Callable[[str], None]) -> Any:
    """A Tune callback that uploads the mirror whenever a trial ends (after the record callback, which comes
    first in the list, wrote its record). A failed upload is logged, not fatal: the next one, or the one at the
    end of the sweep, sends the same files again."""
    from ray import tune

    class UploadCallback(tune.Callback):
        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._push()

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._push()

        def _push(self) -> None:
            try:
                store.push()
            except NtgError as err:
                log(f"warning: {err}")

    return UploadCallback()


def open_sweep(out: str | Path, *, skip: Iterable[str] = (TUNE_DIR,),
               log: Callable[[str], None] = lambda line: None) -> tuple[Path, SweepStore | None]:
    """A sweep folder to read (``ntg pareto``, ``ntg zoo publish``): a local path as is, an object-store URI
    downloaded into its mirror first (without Tune's checkpoints)."""
    from ntg.search.records import resolve_sweep_dir

    if not is_object_uri(out):
        return resolve_sweep_dir(out), None
    store = SweepStore(str(out))
    return store.pull(skip, log), store


__all__ = ["OBJECT_SCHEMES", "SweepStore", "cache_root", "is_object_uri", "open_sweep", "upload_callback"]
