"""A real local Ray cluster for tests: ``from ray_cluster import ray_cluster`` in a test module.

The session-scoped fixture runs ``ray start --head --block`` as a child process (2 CPUs, 512 MB object
store, free ports everywhere, no dashboard, its own ``--temp-dir`` under /tmp so concurrent test runs do not
clash), connects with ``ray.init(address=...)`` and, at the end, stops *that* head by signalling the
``ray start --block`` process it started (which stops the Ray processes it launched). A plain ``ray stop``
would also kill every other Ray cluster on the machine, such as a colleague's concurrent test run.

Worker processes get ``PYTHONPATH`` with ``tests/`` so helper modules (e.g. ``tiny_generator``) import there.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
RAY = Path(sys.executable).with_name("ray")
PORT_OPTIONS = (
    "--port",
    "--dashboard-port",
    "--ray-client-server-port",
    "--node-manager-port",
    "--object-manager-port",
    "--metrics-export-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--runtime-env-agent-port",
)


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports that are free right now."""
    sockets, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise RuntimeError(f"Ray head not listening on {port} after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group of the ``ray start --block`` this fixture started (its own session, so
    only the Ray processes it launched), then SIGKILL whatever of that group is left after a grace period."""
    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)  # anyone of the group still alive?
            except ProcessLookupError:
                break
            proc.poll()
            time.sleep(0.2)
        else:
            continue
        break
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """Address (``127.0.0.1:PORT``) of a fresh 2-CPU local Ray head this process is connected to."""
    import ray

    os.environ["RAY_AUTH_MODE"] = "disabled"
    temp_dir = Path(tempfile.mkdtemp(prefix="ntg-ray-", dir="/tmp"))
    ports = dict(zip(PORT_OPTIONS, free_ports(len(PORT_OPTIONS)), strict=True))
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    command = [
        str(RAY), "start", "--head", "--block", "--num-cpus", "2", "--num-gpus", "0",
        "--object-store-memory", "512000000", "--include-dashboard", "false", "--disable-usage-stats",
        "--node-ip-address", "127.0.0.1", "--temp-dir", str(temp_dir),
        *[item for option, port in ports.items() for item in (option, str(port))],
    ]
    log = temp_dir / "ray_start.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    address = f"127.0.0.1:{ports['--port']}"
    try:
        _wait_for_port(ports["--port"], proc, log)
        ray.init(address=address, log_to_driver=False,
                 runtime_env={"env_vars": {"RAY_AUTH_MODE": "disabled"}})
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        _stop(proc)
        shutil.rmtree(temp_dir, ignore_errors=True)


class TwoNodeCluster:
    """A real two-node Ray cluster on this machine: a head (1 CPU, dashboard and job server on free ports)
    and a second node (1 CPU) joined to it, each a ``ray start --block`` in its own process group and with
    its own ``--temp-dir`` (under one temporary folder). :meth:`stop` signals those two groups only (never a
    global ``ray stop``)."""

    def __init__(self, cpus_per_node: int = 1, object_store_bytes: int = 300_000_000) -> None:
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ntg-ray2-", dir="/tmp"))
        ports = dict(zip(PORT_OPTIONS, free_ports(len(PORT_OPTIONS)), strict=True))
        self.address = f"127.0.0.1:{ports['--port']}"
        self.dashboard = f"http://127.0.0.1:{ports['--dashboard-port']}"
        venv_bin = str(Path(sys.executable).parent)  # a job's entrypoint runs the cluster's python and `ntg`
        self.env = {
            **os.environ,
            "PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "")]),
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            "OMP_NUM_THREADS": "1",
            "RAY_ADDRESS": self.address,
        }
        common = ["--block", "--num-cpus", str(cpus_per_node), "--num-gpus", "0", "--object-store-memory",
                  str(object_store_bytes), "--disable-usage-stats", "--node-ip-address", "127.0.0.1",
                  "--temp-dir", str(self.temp_dir)]
        head = [str(RAY), "start", "--head", *common, "--include-dashboard", "true", "--dashboard-host",
                "127.0.0.1", *[item for option, port in ports.items() for item in (option, str(port))]]
        worker_ports = free_ports(4)
        # the second node gets a temp dir of its own, as a second machine would: two runtime-env agents
        # unpacking the same job package into one session folder replace the folder a job's driver runs in
        node_dir = self.temp_dir / "node2"
        node_dir.mkdir()
        worker = [str(RAY), "start", "--address", self.address, *common[:-1], str(node_dir),
                  "--node-manager-port", str(worker_ports[0]), "--object-manager-port", str(worker_ports[1]),
                  "--metrics-export-port", str(worker_ports[2]), "--runtime-env-agent-port", str(worker_ports[3])]
        self.procs: list[subprocess.Popen] = []
        try:
            self._start(head, "head.log")
            _wait_for_port(ports["--port"], self.procs[0], self.temp_dir / "head.log")
            _wait_for_port(ports["--dashboard-port"], self.procs[0], self.temp_dir / "head.log")
            self._start(worker, "worker.log")
            self._wait_for_nodes(2)
        except BaseException:
            self.stop()
            raise

    def _start(self, command: list[str], log_name: str) -> None:
        with open(self.temp_dir / log_name, "wb") as out:
            self.procs.append(subprocess.Popen(command, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                               start_new_session=True))

    def _wait_for_nodes(self, n: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = subprocess.run([str(RAY), "status", "--address", self.address], env=self.env,
                                    capture_output=True, text=True, timeout=60)
            if status.stdout.count(" node_") >= n and f"/{float(n):.1f} CPU" in status.stdout:
                return
            time.sleep(2)
        raise RuntimeError(f"the two-node cluster did not come up:\n{status.stdout[-2000:]}{status.stderr[-2000:]}")

    def job(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """``ray job ARGS --address DASHBOARD`` (options before ``--``)."""
        head, sep, tail = list(args), [], []
        if "--" in head:
            i = head.index("--")
            head, sep, tail = head[:i], ["--"], head[i + 1:]
        return subprocess.run([str(RAY), "job", *head, "--address", self.dashboard, *sep, *tail], env=self.env,
                              capture_output=True, text=True, timeout=timeout, cwd=TESTS.parent)

    def status(self, job_id: str) -> str:
        """The job's status name (``RUNNING``, ``STOPPED``, ``SUCCEEDED``, ``FAILED``...), from Ray's job client."""
        from ray.job_submission import JobSubmissionClient

        return str(JobSubmissionClient(self.dashboard).get_job_status(job_id).value)

    def node_ids(self) -> tuple[str, str]:
        """(head node id, second node id) of the alive nodes, from Ray's State API."""
        from ray.util.state import list_nodes

        nodes = list_nodes(address=self.dashboard, filters=[("state", "=", "ALIVE")])
        head = [n.node_id for n in nodes if n.is_head_node]
        others = [n.node_id for n in nodes if not n.is_head_node]
        assert len(head) == 1 and len(others) == 1, nodes
        return head[0], others[0]

    def kill_worker(self) -> None:
        """The second node dies at once, as a machine that loses power: SIGKILL to its ``ray start --block``
        process and every process under it (raylet, agents and the worker processes, which sit in process
        groups of their own), found by walking the process tree of that one ``ray start``; the head lives on."""
        import psutil

        proc = self.procs[1]
        try:
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for p in tree:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(tree, timeout=10)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            _stop(proc)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
