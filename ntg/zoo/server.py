"""The embedded zoo server: olah, a maintained Hugging Face mirror, serving the local zoo's git repositories.

Why olah and not our own server: the standard client (``snapshot_download``, ``ModelCard.load``,
``from_pretrained``) must work unchanged, and olah's offline mode serves ``<zoo>/models/<ns>/<name>`` git
repositories (committed on ``main``) over the Hub's download API; a new commit is visible at once. It is
read-only and cannot list a namespace, hence the zoo's ``index.json`` (see :mod:`ntg.zoo.catalog`).

ntg owns the process: its own process group (so Ctrl-C in ``ntg zoo serve`` or the end of a test stops it
whole), its own cache folder, a free port unless one is given, and a log file whose tail explains a failed start.
"""

from __future__ import annotations

import atexit
import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from ntg.errors import NtgError

START_TIMEOUT_S = 30.0


def default_zoo_dir(zoo_dir: str | Path | None = None) -> Path:
    """``zoo_dir``, else ``$NTG_ZOO``, else ``zoo/local`` (where ``publish`` writes: :mod:`ntg.zoo.local`)."""
    from ntg.zoo.local import default_zoo_dir as publish_default

    return Path(zoo_dir).expanduser() if zoo_dir else publish_default()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _check_port(host: str, port: int | None) -> int:
    """``port`` (or a free one) if ntg can listen there; else one NtgError line saying why."""
    try:
        if port is None:
            return free_port(host)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, port))
        return port
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise NtgError(f"port {port} on {host} is in use; choose another with --port or leave it out for a "
                           "free one") from None
        raise NtgError(f"cannot listen on {host}:{port or 'any port'} ({err.strerror or err}); use --host 127.0.0.1 "
                       "or an address of this machine") from None


def _olah_command() -> list[str]:
    """olah-cli beside this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).with_name("olah-cli")
    found = str(beside) if beside.is_file() else shutil.which("olah-cli")
    if not found:
        raise NtgError("olah-cli not found: the zoo server needs olah; install it with `pip install olah`")
    return [found]


class ZooServer:
    """olah in offline mode on ``zoo_dir``; ``endpoint`` is what ``HF_ENDPOINT`` should be set to."""

    def __init__(self, zoo_dir: str | Path | None = None, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.zoo_dir = default_zoo_dir(zoo_dir).resolve()
        self.host = host
        self.port = port
        self._requested_port = port
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self.log_path: Path | None = None

    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise NtgError("the zoo server is not started; call start() first")
        return f"http://{self.host}:{self.port}"

    def start(self) -> ZooServer:
        """Start olah and wait until it answers; one NtgError line on a missing zoo, a busy port or a failed start."""
        if not (self.zoo_dir / "models").is_dir():
            raise NtgError(f"{self.zoo_dir}: no local zoo here (no models/ folder); publish one with "
                           "`ntg zoo publish SWEEP_DIR --to NAMESPACE` or pass --zoo DIR")
        self.port = _check_port(self.host, self._requested_port)
        self._workdir = Path(tempfile.mkdtemp(prefix="ntg-zoo-server."))
        self.log_path = self._workdir / "olah.log"
        config = self._workdir / "olah.toml"
        netloc = f"{self.host}:{self.port}"
        config.write_text(
            "[basic]\n"
            f'host = "{self.host}"\nport = {self.port}\n'
            f'repos-path = "{self._workdir / "cache"}"\n'
            f'mirror-netloc = "{netloc}"\nmirror-lfs-netloc = "{netloc}"\n'
            f'mirrors-path = ["{self.zoo_dir}"]\n'
            "[accessibility]\noffline = true\n"
        )
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                [*_olah_command(), "-c", str(config), "--log-path", str(self._workdir / "logs")],
                cwd=self._workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopped whole, and Ctrl-C reaches ntg only
            )
        try:
            self._wait_until_up()
        except BaseException:
            self.stop(keep_log=True)
            raise
        atexit.register(self.stop)  # a forgotten server dies with ntg
        return self

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise NtgError(f"the zoo server (olah) exited at start with status {self._process.returncode}: "
                               f"{self._log_tail()}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/api/models/ntg-zoo/ping/revision/main", timeout=1):
                    return
            except urllib.error.HTTPError:
                return  # an HTTP answer (404 for the ping repo): it serves
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise NtgError(f"the zoo server (olah) did not answer on {self.endpoint} within {START_TIMEOUT_S:.0f} s; "
                       f"see {self.log_path}")

    def _log_tail(self) -> str:
        try:
            lines = [line for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        except (OSError, AttributeError):
            return "no log"
        messages = [re.sub(r"^.*\| (ERROR|INFO|WARNING) \| \w+ \| ", "", line).strip() for line in lines]
        errors = [m for m in messages if re.search(r"error|errno|exception", m, re.IGNORECASE)]
        return (errors or messages or ["no output"])[-1][:300]

    def stop(self, keep_log: bool = False) -> None:
        """Terminate olah's process group (SIGTERM, then SIGKILL after 5 s) and remove its folder (its log too,
        unless ``keep_log``); idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            except ProcessLookupError:
                pass
        if self._workdir is not None:
            shutil.rmtree(self._workdir / "cache", ignore_errors=True)
            if not keep_log:
                shutil.rmtree(self._workdir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> ZooServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        failed = exc is not None and not isinstance(exc, KeyboardInterrupt | SystemExit)
        self.stop(keep_log=failed)  # the log explains a failure
