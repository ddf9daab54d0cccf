"""``ntg zoo publish``: a real small sweep (real Ray, real Optuna storage, real captures) published to the local
zoo (served by olah through :class:`ntg.zoo.server.ZooServer`) and to the project's wire-compatible local Hub
test double (``tests/hub_server.py``, the upload path: the real ``HfApi.create_repo`` / ``upload_folder``), then
downloaded back through the real ``huggingface_hub`` client.
"""

from __future__ import annotations

import getpass
import json
import re
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from ntg.data.schema import PACKET_FIELDS, FlowTable
from ntg.errors import NtgError
from ntg.models.base import load_generator
from ntg.search.sweep import SweepOptions, run_sweep
from ntg.zoo import publish as publish_mod
from ntg.zoo.card import HEADLINE_METRICS, read_card_info, read_metrics, repo_name
from ntg.zoo.publish import publish_sweep
from tests.hub_server import HubServer, hf_home, hub_server  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(900)]
NS = "ntg-test"
TOKEN = "hf_test_write_token_5b1c9e"
#: the cards' evaluation budget here: one split seed, one augmentation seed at the 1 % fraction (cached per budget)
CARD = {"split_seeds": 1, "augmentation_seeds": 1, "augmentation_fractions": (0.01,)}
CARD_ARGS = ["--split-seeds", "1", "--augmentation-seeds", "1", "--augmentation-fractions", "0.01"]
MARKOV_SPACE = """
families:
  markov:
    model:
      order: {type: categorical, choices: [1, 2]}
      payload_bins: {type: categorical, choices: [8, 32]}
"""


def assert_same_flows(a: FlowTable, b: FlowTable) -> None:
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.labels, b.labels)
    for name in PACKET_FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.fixture(scope="module")
def sweep(ray_cluster, iot_small, tmp_path_factory) -> Path:  # noqa: F811
    """Four markov trials ranked on fidelity and parameters (so the front holds more than one)."""
    tmp = tmp_path_factory.mktemp("zoo_sweep")
    (tmp / "space.yaml").write_text(MARKOV_SPACE)
    options = SweepOptions(spaces=[tmp / "space.yaml"], data_dir=iot_small.root, n_trials=4, out=tmp / "sweep",
                           seed=0, concurrency=2, objectives="fidelity:min,parameters:min")
    run_sweep(options, log=lambda line: None)
    return tmp / "sweep"


@pytest.fixture(scope="module")
def local_zoo(sweep, tmp_path_factory) -> tuple[Path, list[dict]]:
    zoo = tmp_path_factory.mktemp("zoo") / "local"
    return zoo, publish_sweep(sweep, NS, zoo_dir=zoo, **CARD, progress=False)


@pytest.fixture(scope="module")
def uploaded(sweep, hub_server) -> list[dict]:  # noqa: F811
    hub_server.write_token = TOKEN
    return publish_sweep(sweep, NS, endpoint=hub_server.endpoint, token=TOKEN, **CARD, progress=False)


def _trial_generator(sweep: Path, trial_id: str):
    record = json.loads((sweep / "trials" / f"{trial_id}.json").read_text())
    return load_generator(sweep / record["generator_dir"]), record


def test_local_zoo_git_repos_index_and_download_through_the_zoo_server(sweep, local_zoo, hf_home, monkeypatch):  # noqa: F811
    from huggingface_hub import ModelCard, constants, snapshot_download

    from ntg.zoo.server import ZooServer

    zoo, results = local_zoo
    front = json.loads((sweep / "front.json").read_text()) if (sweep / "front.json").is_file() else None
    assert len(results) >= 1 and (front is None or len(results) == len(front["front"]))
    index = json.loads((zoo / "index.json").read_text())["repos"]
    assert sorted(e["repo_id"] for e in index) == sorted(r["repo_id"] for r in results)
    first = results[0]
    record = json.loads((sweep / "trials" / f"{first['trial_id']}.json").read_text())
    assert first["repo_id"] == repo_name(NS, "markov", first["dataset"], record["config_key"])
    assert re.fullmatch(rf"{NS}/ntg-markov-[a-z0-9-]+-{record['config_key'][:8]}", first["repo_id"])
    git_dir = zoo / "models" / first["repo_id"]
    branch = subprocess.run(["git", "branch", "--show-current"], cwd=git_dir, capture_output=True, text=True)
    assert branch.stdout.strip() == "main"
    with ZooServer(zoo) as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.endpoint)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            server.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        snap = Path(snapshot_download(first["repo_id"], endpoint=server.endpoint, cache_dir=hf_home / "c1"))
        assert {"model.safetensors", "config.json", "README.md", "front.png", "eval"} <= {p.name for p in
                                                                                          snap.iterdir()}
        assert (snap / "eval" / "report.json").is_file() and list((snap / "eval" / "figures").glob("*.png"))
        card = ModelCard.load(first["repo_id"])
        assert read_metrics(card)["fidelity_score"] == pytest.approx(first["metrics"]["fidelity_score"])
        loaded = load_generator(first["repo_id"], endpoint=server.endpoint, cache_dir=hf_home / "c2")
    original, _ = _trial_generator(sweep, first["trial_id"])
    assert_same_flows(loaded.sample(300, seed=4), original.sample(300, seed=4))
    assert_same_flows(loaded.sample(40, label=original.classes_[0], seed=1),
                      original.sample(40, label=original.classes_[0], seed=1))
    assert json.loads((snap / "config.json").read_text())["ntg"]["classes"] == original.classes_


def test_republishing_makes_new_commits_and_reuses_the_evaluation(sweep, local_zoo, monkeypatch):
    zoo, results = local_zoo
    git_dir = zoo / "models" / results[0]["repo_id"]

    def no_evaluation(*args, **kwargs):
        raise AssertionError("an unchanged generator must not be evaluated again")

    monkeypatch.setattr("ntg.evaluation.evaluate.evaluate", no_evaluation)
    again = publish_sweep(sweep, NS, zoo_dir=zoo, **CARD, progress=False)
    assert [r["repo_id"] for r in again] == [r["repo_id"] for r in results]
    assert [r["metrics"] for r in again] == [r["metrics"] for r in results]
    log = subprocess.run(["git", "log", "--format=%H %an"], cwd=git_dir, capture_output=True, text=True)
    commits = log.stdout.split("\n")[:-1]
    assert len(commits) == 2 and commits[0].split()[0] == again[0]["commit"] != results[0]["commit"]
    assert {c.split()[1] for c in commits} == {"ntg"}  # never the user's name
    assert len(list((zoo / "models" / NS).iterdir())) == len(results)  # updated, not duplicated
    with pytest.raises(AssertionError, match="must not be evaluated"):  # another card budget: evaluated afresh
        publish_sweep(sweep, NS, zoo_dir=zoo, **{**CARD, "augmentation_seeds": 2}, progress=False)


def test_upload_to_the_hub_double_and_download_the_same_generator(sweep, uploaded, hub_server, hf_home):  # noqa: F811
    repo = uploaded[0]["repo_id"]
    assert ("POST", "/api/repos/create") in hub_server.requests
    assert ("POST", f"/api/models/{repo}/preupload/main") in hub_server.requests
    assert ("POST", f"/api/models/{repo}/commit/main") in hub_server.requests
    assert any(m == "PUT" and p.startswith("/lfs-upload/") for m, p in hub_server.requests)  # weights via LFS
    for result in uploaded:
        assert result["url"].startswith(hub_server.endpoint) and result["commit"]
        loaded = load_generator(result["repo_id"], endpoint=hub_server.endpoint, cache_dir=hf_home / "hub-c")
        original, _ = _trial_generator(sweep, result["trial_id"])
        assert_same_flows(loaded.sample(200, seed=7), original.sample(200, seed=7))
    before = {r["repo_id"]: r["commit"] for r in uploaded}
    again = publish_sweep(sweep, NS, endpoint=hub_server.endpoint, token=TOKEN, **CARD, progress=False)
    for result in again:
        assert result["commit"] != before[result["repo_id"]]
        assert len(hub_server.commits[result["repo_id"]]) == 2  # the same repo, a second commit
    assert sorted(f"{NS}/{p.name}" for p in (hub_server.root / NS).iterdir()) == sorted(before)


def test_wrong_token_is_one_line_and_names_the_fix(sweep, uploaded, hub_server):  # noqa: F811
    with pytest.raises(NtgError, match=r"HTTP 401.*--token or HF_TOKEN") as err:
        publish_sweep(sweep, NS, endpoint=hub_server.endpoint, token="hf_wrong", **CARD, progress=False)
    assert "\n" not in str(err.value)


def test_cards_parse_back_follow_the_model_index_and_leak_nothing(sweep, uploaded, hub_server, iot_small):  # noqa: F811
    from huggingface_hub import ModelCard

    secrets = {"token": TOKEN, "home": str(Path.home()), "sweep path": str(sweep.resolve()),
               "data path": str(Path(iot_small.root).resolve()), "tmp root": str(sweep.resolve().parents[1])}
    # names as words in the text files (a short host name such as "vm" occurs by chance in any binary)
    names = {what: re.compile(rb"(?<![A-Za-z0-9_])" + re.escape(name.encode()) + rb"(?![A-Za-z0-9_])")
             for what, name in (("user name", getpass.getuser()), ("host name", socket.gethostname()))}
    for result in uploaded:
        folder = hub_server.root / result["repo_id"]
        files = [p for p in folder.rglob("*") if p.is_file()]
        assert {"README.md", "config.json", "model.safetensors", "front.png", "eval/report.json",
                "eval/report.md"} <= {p.relative_to(folder).as_posix() for p in files}
        for path in files:
            data = path.read_bytes()
            for what, text in secrets.items():
                assert text.encode() not in data, f"{path.relative_to(folder)} holds the {what}"
            if path.suffix in (".md", ".json"):
                for what, pattern in names.items():
                    assert not pattern.search(data), f"{path.relative_to(folder)} holds the {what}"
            elif path.suffix == ".png":  # the figures' text chunks (matplotlib writes "Software")
                from PIL import Image

                text = " ".join(str(v) for v in Image.open(path).info.values()).encode()
                assert not any(p.search(text) for p in names.values()), f"{path.relative_to(folder)} metadata"
        card = ModelCard.load(folder / "README.md")
        info = read_card_info(card, result["repo_id"])
        metrics = info["metrics"]
        assert set(HEADLINE_METRICS) <= set(metrics)
        assert any(k.startswith("fidelity_") and k != "fidelity_score" for k in metrics)
        assert metrics == pytest.approx(result["metrics"])
        assert (info["family"], info["trial_id"], info["sweep"]) == ("markov", result["trial_id"], sweep.name)
        assert set(info["objectives"]) == {"fidelity", "parameters"} and info["hardware"]
        meta = yaml.safe_load(card.content.split("---")[1])
        assert meta["library_name"] == "ntg" and meta["license"] == "apache-2.0"
        assert {"ntg", "network-traffic", "synthetic-data", "markov"} <= set(meta["tags"])
        (entry,) = meta["model-index"]
        assert entry["name"] == result["repo_id"].split("/")[1]
        for res in entry["results"]:
            assert res["task"]["type"] and res["dataset"]["name"] == result["dataset"]
            assert res["dataset"]["split"] == "test"
            assert all(set(m) >= {"type", "value"} for m in res["metrics"])
        body = card.text
        for needle in ("load_generator(", f"ntg sample {result['repo_id']}", "front.png", "Limitations",
                       "natural level"):
            assert needle in body


def test_dry_run_prints_the_plan_and_writes_nothing(sweep, tmp_path, capsys):
    zoo = tmp_path / "zoo"
    plan = publish_sweep(sweep, NS, zoo_dir=zoo, dry_run=True, progress=False)
    out = capsys.readouterr().out
    assert plan and all(p["repo_id"] in out for p in plan) and not zoo.exists()
    every = publish_sweep(sweep, NS, zoo_dir=zoo, dry_run=True, only_front=False, progress=False)
    assert len(every) >= len(plan) and not zoo.exists()


def test_connection_refused_is_a_fast_one_line_error(sweep, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nobody listens
    t0 = time.perf_counter()
    with pytest.raises(NtgError, match=rf"cannot reach the hub at http://127.0.0.1:{port}") as err:
        publish_sweep(sweep, NS, endpoint=f"http://127.0.0.1:{port}", token=TOKEN, progress=False)
    assert time.perf_counter() - t0 < 10 and "\n" not in str(err.value)


def test_a_server_that_never_answers_is_a_bounded_one_line_error(sweep, local_zoo, monkeypatch):
    """The client's shared HTTP session waits forever by default: publish bounds it (and restores it)."""
    from huggingface_hub.utils import _http

    factory = _http._GLOBAL_CLIENT_FACTORY
    monkeypatch.setattr(publish_mod, "READ_TIMEOUT_S", 1.0)
    with socket.socket() as silent:  # accepts connections into its backlog, never reads or answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        t0 = time.perf_counter()
        with pytest.raises(NtgError, match=rf"upload to {endpoint} failed .*re-run") as err:
            publish_sweep(sweep, NS, endpoint=endpoint, token=TOKEN, **CARD, progress=False)
    assert time.perf_counter() - t0 < 15 and "\n" not in str(err.value)
    assert _http._GLOBAL_CLIENT_FACTORY is factory


def test_a_sweep_with_no_finished_trial_has_nothing_to_publish(iot_small, tmp_path):
    empty = tmp_path / "empty"
    (empty / "trials").mkdir(parents=True)
    (empty / "sweep.json").write_text(json.dumps({"data_dir": str(iot_small.root)}))
    with pytest.raises(NtgError, match="nothing to publish: .*no trial records"):
        publish_sweep(empty, NS, zoo_dir=tmp_path / "zoo", progress=False)
    record = {"trial_id": "0000-markov", "family": "markov", "status": "infeasible", "feasible": False,
              "config_key": "ab" * 32, "objectives": {"fidelity": 1e18}}
    (empty / "trials" / "0000-markov.json").write_text(json.dumps(record))
    with pytest.raises(NtgError, match="nothing to publish: .*no feasible trial"):
        publish_sweep(empty, NS, zoo_dir=tmp_path / "zoo", progress=False)
    assert not (tmp_path / "zoo").exists()


def test_a_card_without_model_index_is_an_error_naming_the_repo():
    from huggingface_hub import ModelCard

    card = ModelCard("---\nlicense: mit\nlibrary_name: ntg\n---\n# someone else's model\n")
    with pytest.raises(NtgError, match="other-org/plain-model: the model card has no model-index"):
        read_metrics(card, "other-org/plain-model")
    with pytest.raises(NtgError, match="no model-index"):
        read_card_info(card, "other-org/plain-model")


def test_leak_check_refuses_a_file_with_a_local_path(tmp_path):
    stage = tmp_path / "stage"
    (stage / "eval").mkdir(parents=True)
    (stage / "eval" / "report.json").write_text(json.dumps({"path": str(tmp_path / "data")}))
    with pytest.raises(NtgError, match="refusing to publish: eval/report.json would contain the local path"):
        publish_mod.check_no_leaks(stage, publish_mod._secrets(None, tmp_path))


def test_cli_errors_are_one_line_and_zoo_wins_over_hf_endpoint(sweep, local_zoo, tmp_path, monkeypatch, capsys):
    from ntg.cli import main

    (tmp_path / "empty" / "trials").mkdir(parents=True)
    assert main(["zoo", "publish", str(tmp_path / "empty"), "--to", NS, "--data", str(sweep.parent)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ntg: error: ") and err.count("\n") == 1 and "--data DIR" in err
    assert main(["zoo", "publish", str(sweep), "--to", "bad/ns", "--dry-run"]) == 2
    assert "not a Hub user or organisation name" in capsys.readouterr().err
    assert main(["zoo", "publish", str(sweep), "--to", NS, "--zoo", str(tmp_path / "unused"),
                 "--augmentation-fractions", "1.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--augmentation-fractions" in err and not (tmp_path / "unused").exists()
    # HF_ENDPOINT pointing at a read-only zoo server must not turn an explicit --zoo publish into an upload
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:1")
    zoo = tmp_path / "zoo"
    assert main(["zoo", "publish", str(sweep), "--to", NS, "--zoo", str(zoo), "--quiet", *CARD_ARGS]) == 0
    out = capsys.readouterr().out
    assert all(r["repo_id"] in out for r in local_zoo[1]) and (zoo / "index.json").is_file()
    assert main(["zoo", "publish", str(sweep), "--to", NS, "--dry-run"]) == 0  # HF_ENDPOINT without --zoo
    assert "to http://127.0.0.1:1" in capsys.readouterr().out
