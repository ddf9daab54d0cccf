"""The embedded zoo server: olah (a real Hugging Face mirror) serving a local zoo to the real client.

Every download goes through a subprocess whose ``HF_ENDPOINT`` is set before ``huggingface_hub`` is imported,
as a user's shell would; the zoo is a real local zoo (git repo per model, ``ntg.zoo.local``) holding markov
generators fitted on real iot-sentinel flows with cards built by ``ntg.zoo.card``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ntg.data.schema import PACKET_FIELDS
from ntg.errors import NtgError
from ntg.models import create_generator
from ntg.models.base import load_generator
from ntg.zoo.server import ZooServer, free_port
from tests.hub_server import hf_home  # noqa: F401  (fixture: a private HF cache for in-process clients)
from tests.test_zoo_catalog import publish_card

REPO_ROOT = Path(__file__).resolve().parents[1]
NS = "ntg-test"
MARKOV = f"{NS}/ntg-markov-iot-1a2b3c4d"
METRICS = {"fidelity_score": 0.42, "tstr_macro_f1": 0.61, "copy_rate": 0.02, "parameters": 1234.0,
           "flops_per_flow": 5.0e3}


@pytest.fixture(scope="module")
def markov(iot_small, tmp_path_factory: pytest.TempPathFactory):
    model = create_generator("markov", seed=3).fit(iot_small.train.first(10), iot_small.val.first(10))
    return model, model.save_pretrained(tmp_path_factory.mktemp("markov") / "model")


@pytest.fixture(scope="module")
def zoo(markov, tmp_path_factory: pytest.TempPathFactory) -> Path:
    zoo = tmp_path_factory.mktemp("served") / "zoo"
    publish_card(zoo, MARKOV, family="markov", dataset="iot", sweep="s1", metrics=METRICS, model_dir=markov[1])
    return zoo


@pytest.fixture(scope="module")
def server(zoo):
    with ZooServer(zoo) as srv:
        yield srv
    assert not srv.running


def client_env(server_or_url, home: Path, **extra: str) -> dict[str, str]:
    endpoint = server_or_url if isinstance(server_or_url, str) else server_or_url.endpoint
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return {**env, "HF_ENDPOINT": endpoint, "HF_HOME": str(home), "HF_HUB_DISABLE_XET": "1",
            "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT), **extra}


CLIENT = """
import json, sys
import numpy as np
from huggingface_hub import ModelCard, snapshot_download
from ntg.models import load_generator
from ntg.zoo.card import read_card_info
repo, out = sys.argv[1], sys.argv[2]
folder = snapshot_download(repo)
info = read_card_info(ModelCard.load(repo), repo)
flows = load_generator(repo).sample(300, seed=5)
np.savez(out, **{name: getattr(flows, name) for name in {fields}})
print(json.dumps({{"files": sorted(p.name for p in __import__("pathlib").Path(folder).iterdir()), "info": info}}))
"""


def test_plain_client_downloads_card_and_generator(server, markov, tmp_path):
    script = tmp_path / "client.py"
    script.write_text(CLIENT.replace("{fields}", repr(tuple(PACKET_FIELDS))).replace("{{", "{").replace("}}", "}"))
    done = subprocess.run([sys.executable, str(script), MARKOV, str(tmp_path / "flows.npz")], capture_output=True,
                          text=True, env=client_env(server, tmp_path / "hf"), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["files"] == ["README.md", "config.json", "model.safetensors"]
    assert got["info"]["family"] == "markov" and got["info"]["sweep"] == "s1"
    assert got["info"]["metrics"] == pytest.approx(METRICS)
    original = markov[0].sample(300, seed=5)
    downloaded = np.load(tmp_path / "flows.npz")
    for name in PACKET_FIELDS:  # the downloaded generator samples the same flows for the same seed
        np.testing.assert_array_equal(downloaded[name], getattr(original, name), err_msg=name)


def ntg(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ntg.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_sample_and_evaluate_by_repo_id_then_offline(server, iot_small, tmp_path):
    env = client_env(server, tmp_path / "hf")
    done = ntg("sample", MARKOV, "--n", "40", "--seed", "1", "--out", "synth.parquet", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    done = ntg("evaluate", "--data", str(iot_small.root), "--generator", MARKOV, "--profile", "fast", "--axes",
               "fidelity", "--out", "report", "--quiet", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "report" / "report.json").is_file()
    # offline with the cached copy: works, and the same flows as online
    offline = {**env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    done = ntg("sample", MARKOV, "--n", "40", "--seed", "1", "--out", "again.parquet", env=offline, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "again.parquet").read_bytes() == (tmp_path / "synth.parquet").read_bytes()
    # offline without one: one line that says what to do
    done = ntg("sample", MARKOV, "--n", "5", "--out", "x.parquet", env={**offline, "HF_HOME": str(tmp_path / "e")},
               cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "HF_HUB_OFFLINE=1" in done.stderr and "download it once" in done.stderr


@pytest.mark.parametrize("repo", [f"{NS}/ntg-markov-iot-ffffffff", "no-such-namespace/ntg-markov-iot-1a2b3c4d"])
def test_unknown_repo_or_namespace_is_one_line(server, repo, tmp_path):
    done = ntg("sample", repo, "--n", "5", "--out", "x.parquet", env=client_env(server, tmp_path / "hf"),
               cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"ntg: error: {repo}:") and "no such model repo" in done.stderr


def test_bad_endpoint_fails_fast(tmp_path, hf_home):  # noqa: F811
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    start = time.monotonic()
    with pytest.raises(NtgError, match=f"{MARKOV}:.*Connection refused"):
        load_generator(MARKOV, endpoint=dead, cache_dir=tmp_path / "cache")
    assert time.monotonic() - start < 5, "a refused connection must not be retried for long"
    from ntg.zoo.catalog import list_generators

    start = time.monotonic()
    with pytest.raises(NtgError, match="cannot reach the model hub"):
        list_generators(NS, endpoint=dead, repos=[MARKOV])
    assert time.monotonic() - start < 5


def test_list_through_the_server_sees_a_republish_at_once(server, zoo, capsys, hf_home):  # noqa: F811
    from ntg.cli import main
    from ntg.zoo.catalog import list_generators

    assert main(["zoo", "list", NS, "--endpoint", server.endpoint, "--zoo", str(zoo)]) == 0
    out = capsys.readouterr().out
    assert MARKOV in out and "0.42" in out
    other = f"{NS}/ntg-markov-iot-2b2b2b2b"
    for fidelity in (0.5, 0.25):  # a re-publish is a new commit of the same repo, served at once
        publish_card(zoo, other, family="markov", dataset="iot", sweep="s2", metrics={"fidelity_score": fidelity})
        frame = list_generators(NS, endpoint=server.endpoint, zoo_dir=zoo).set_index("repo_id")
        assert frame.loc[other, "fidelity_score"] == fidelity and frame.loc[MARKOV, "fidelity_score"] == 0.42


def test_busy_port_and_missing_zoo_are_one_line(server, tmp_path):
    with pytest.raises(NtgError, match=f"port {server.port} .* is in use; choose another with --port"):
        ZooServer(server.zoo_dir, port=server.port).start()
    with pytest.raises(NtgError, match="no local zoo here"):
        ZooServer(tmp_path / "nothing").start()
    with pytest.raises(NtgError, match="cannot listen on 10.255.255.1"):
        ZooServer(server.zoo_dir, host="10.255.255.1").start()


def test_a_port_taken_after_the_check_ends_in_olahs_own_line(zoo, monkeypatch):
    import ntg.zoo.server as zoo_server

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setattr(zoo_server, "_check_port", lambda host, port: taken.getsockname()[1])
        server = ZooServer(zoo)
        with pytest.raises(NtgError, match="olah.* exited at start .*address already in use; see .*olah.log"):
            server.start()
    assert not server.running and server.log_path.is_file()  # the log is kept to explain the failure
    shutil.rmtree(server.log_path.parent)


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM)])
def test_serve_command_prints_endpoint_and_stops_on_ctrl_c_or_kill(zoo, tmp_path, signum, status):
    env = client_env("http://unused", tmp_path / "hf")
    proc = subprocess.Popen([sys.executable, "-m", "ntg.cli", "zoo", "serve", "--zoo", str(zoo)], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        export = proc.stdout.readline().strip()
        assert "served at http://127.0.0.1:" in first and export.startswith("export HF_ENDPOINT=http://127.0.0.1:")
        endpoint = export.split("=", 1)[1]
        done = subprocess.run([sys.executable, "-c", "from huggingface_hub import ModelCard; import sys; "
                               f"print(ModelCard.load({MARKOV!r}).data.ntg_family)"],
                              capture_output=True, text=True, env=client_env(endpoint, tmp_path / "hf"), timeout=60)
        assert done.stdout.strip() == "markov", done.stderr[-1000:]
        olah = _children(proc.pid)
        assert olah, "olah runs as a child of ntg zoo serve"
        proc.send_signal(signum)
        assert proc.wait(timeout=20) == status
        time.sleep(0.5)
        assert not [pid for pid in olah if Path(f"/proc/{pid}").exists()], "olah must stop with ntg"
        log_folder = Path(first.split("(log: ")[1].split(")")[0]).parent
        assert not log_folder.exists(), "a clean stop leaves no temporary folder"
    finally:
        if proc.poll() is None:
            proc.kill()


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []
