"""Loading generators by Hub repo id, through the real ``huggingface_hub`` client, from a local Hub test double.

The server in ``tests/hub_server.py`` is a test double of the Hugging Face Hub (no hub is reachable here); the client
library, its cache and ``ntg.models.base.load_generator`` / ``Generator.from_pretrained`` are the real ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ntg.data.schema import PACKET_FIELDS, FlowTable
from ntg.errors import NtgError
from ntg.models.base import Generator, create_generator, load_generator, resolve_model_dir
from tests.evaluation_data import cesnet_flows
from tests.hub_server import HubServer, hf_home, hub_server  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[1]
MARKOV_REPO = "ntg-test/markov-tiny"
TRANSFORMER_REPO = "ntg-test/transformer-tiny"
N_PACKETS = 10


def assert_same_flows(a: FlowTable, b: FlowTable) -> None:
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.n_packets, b.n_packets)
    for name in PACKET_FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(a.labels, b.labels)


@pytest.fixture(scope="module")
def train_flows(datasets_root: Path) -> FlowTable:
    """600 real CESNET PPI flows (Miner / Other), first 10 packets."""
    flows = cesnet_flows(datasets_root, N_PACKETS)
    return flows.take(np.sort(np.random.default_rng(0).permutation(len(flows))[:600]))


@pytest.fixture(scope="module")
def markov(train_flows: FlowTable, tmp_path_factory: pytest.TempPathFactory) -> tuple[Generator, Path]:
    model = create_generator("markov", n_packets=N_PACKETS, seed=1).fit(train_flows)
    return model, model.save_pretrained(tmp_path_factory.mktemp("markov") / "model")


@pytest.fixture(scope="module")
def published(hub_server: HubServer, markov) -> str:  # noqa: F811
    """The markov generator published as ``ntg-test/markov-tiny``; its commit id."""
    return hub_server.publish(MARKOV_REPO, markov[1])


def test_load_generator_by_repo_id_samples_the_same_flows(hub_server, hf_home, markov, published):  # noqa: F811
    original, _ = markov
    cache = hf_home / "cache"
    start = len(hub_server.requests)
    loaded = load_generator(MARKOV_REPO, cache_dir=cache, endpoint=hub_server.endpoint)

    assert type(loaded) is type(original) and loaded.get_config() == original.get_config()
    assert loaded.classes_ == original.classes_
    assert_same_flows(loaded.sample(300, seed=5), original.sample(300, seed=5))
    assert_same_flows(loaded.sample(50, label="Miner", seed=2), original.sample(50, label="Miner", seed=2))
    # the files went through the client's cache, pinned to the served commit
    snapshot = cache / "models--ntg-test--markov-tiny" / "snapshots" / published
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "model.safetensors"]
    assert (cache / "models--ntg-test--markov-tiny" / "refs" / "main").read_text() == published
    # what the real client asked the double: repo info, file list, per-file metadata, LFS weights via the "CDN"
    asked = hub_server.requests[start:]
    assert ("GET", f"/api/models/{MARKOV_REPO}/revision/main") in asked
    assert ("GET", f"/api/models/{MARKOV_REPO}/tree/{published}") in asked
    assert ("HEAD", f"/{MARKOV_REPO}/resolve/{published}/model.safetensors") in asked
    assert any(m == "GET" and p.startswith(f"/cdn-lfs/{MARKOV_REPO}/") for m, p in asked)
    assert ("GET", f"/{MARKOV_REPO}/resolve/{published}/config.json") in asked


def test_from_pretrained_through_the_default_endpoint(hub_server, hf_home, markov, published, monkeypatch):  # noqa: F811
    from ntg.models.baselines.markov import MarkovGenerator
    from ntg.models.transformer import TransformerGenerator

    hub_server.as_default(monkeypatch)  # what HF_ENDPOINT does at import time
    loaded = MarkovGenerator.from_pretrained(MARKOV_REPO)  # no kwargs: default endpoint, HF_HOME cache
    assert_same_flows(loaded.sample(200, seed=9), markov[0].sample(200, seed=9))
    assert (hf_home / "hub" / "models--ntg-test--markov-tiny" / "snapshots" / published / "config.json").is_file()
    assert isinstance(Generator.from_pretrained(MARKOV_REPO), MarkovGenerator)
    with pytest.raises(NtgError, match="holds a markov generator, not transformer"):
        TransformerGenerator.from_pretrained(MARKOV_REPO)
    # a pinned commit works too
    pinned = load_generator(MARKOV_REPO, revision=published)
    assert_same_flows(pinned.sample(100, seed=4), markov[0].sample(100, seed=4))


def test_second_load_is_served_from_the_cache_offline(hub_server, hf_home, markov, published, monkeypatch):  # noqa: F811
    from huggingface_hub import constants

    cache = hf_home / "cache"
    first = load_generator(MARKOV_REPO, cache_dir=cache, endpoint=hub_server.endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # read from the environment at import time
    before = len(hub_server.requests)
    again = load_generator(MARKOV_REPO, cache_dir=cache, endpoint=hub_server.endpoint)
    assert len(hub_server.requests) == before, "offline load must not touch the network"
    assert_same_flows(again.sample(200, seed=7), first.sample(200, seed=7))
    with pytest.raises(NtgError, match="ntg-test/never-downloaded"):
        load_generator("ntg-test/never-downloaded", cache_dir=cache, endpoint=hub_server.endpoint)


def test_second_load_works_when_the_hub_is_down(tmp_path, hf_home, markov):  # noqa: F811
    cache = hf_home / "cache"
    with HubServer(tmp_path / "hub") as hub:
        hub.publish(MARKOV_REPO, markov[1])
        first = load_generator(MARKOV_REPO, cache_dir=cache, endpoint=hub.endpoint)
        hub.stop()
        again = load_generator(MARKOV_REPO, cache_dir=cache, endpoint=hub.endpoint)
        assert_same_flows(again.sample(200, seed=3), first.sample(200, seed=3))
        with pytest.raises(NtgError, match="ntg-test/other.*check your internet connection"):
            load_generator("ntg-test/other", cache_dir=cache, endpoint=hub.endpoint)


def test_unknown_repo_or_revision_is_a_clear_ntg_error(hub_server, hf_home, published):  # noqa: F811
    cache = hf_home / "cache"
    with pytest.raises(NtgError, match=r"ntg-test/no-such-model: .*no such model repo on the Hub at http://127"):
        load_generator("ntg-test/no-such-model", cache_dir=cache, endpoint=hub_server.endpoint)
    with pytest.raises(NtgError, match="has no revision 'v9' of this repo"):
        resolve_model_dir(MARKOV_REPO, cache_dir=cache, endpoint=hub_server.endpoint, revision="v9")
    assert not (cache / "models--ntg-test--no-such-model" / "snapshots").exists()


def test_republishing_makes_a_new_commit_that_is_downloaded(tmp_path, hf_home, train_flows, markov):  # noqa: F811
    cache = hf_home / "cache"
    with HubServer(tmp_path / "hub") as hub:
        first_sha = hub.publish(MARKOV_REPO, markov[1])
        load_generator(MARKOV_REPO, cache_dir=cache, endpoint=hub.endpoint)
        order1 = create_generator("markov", n_packets=N_PACKETS, seed=1, order=1).fit(train_flows)
        second_sha = hub.publish(MARKOV_REPO, order1.save_pretrained(tmp_path / "order1"))
        assert second_sha != first_sha
        loaded = load_generator(MARKOV_REPO, cache_dir=cache, endpoint=hub.endpoint)
        assert loaded.order == 1
        assert_same_flows(loaded.sample(100, seed=0), order1.sample(100, seed=0))
        old = load_generator(MARKOV_REPO, cache_dir=cache, endpoint=hub.endpoint, revision=first_sha)
        assert old.order == 2  # the old commit stays in the cache


def test_neural_weights_survive_the_hub_round_trip(hub_server, hf_home, train_flows, tmp_path):  # noqa: F811
    model = create_generator("transformer", n_packets=N_PACKETS, d_model=32, n_layers=1, n_heads=2, mlp_hidden=64)
    model.fit(train_flows, train_config={"epochs": 1})
    sha = hub_server.publish(TRANSFORMER_REPO, model.save_pretrained(tmp_path / "transformer"))

    loaded = load_generator(TRANSFORMER_REPO, cache_dir=hf_home / "cache", endpoint=hub_server.endpoint)
    assert ("HEAD", f"/{TRANSFORMER_REPO}/resolve/{sha}/model.safetensors") in hub_server.requests
    want, got = model.state_arrays(), loaded.state_arrays()
    assert sorted(got) == sorted(want) and len(want) > 3
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert_same_flows(loaded.sample(64, seed=11), model.sample(64, seed=11))


def test_hf_endpoint_environment_variable_in_a_fresh_process(hub_server, hf_home, markov, published):  # noqa: F811
    """The documented user path: HF_ENDPOINT and HF_HOME set before the client is imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_"))}
    env.update(HF_ENDPOINT=hub_server.endpoint, HF_HOME=str(hf_home), HF_HUB_DISABLE_PROGRESS_BARS="1")
    script = (
        "import sys, numpy as np\n"
        "from ntg.models.base import load_generator\n"
        f"flows = load_generator({MARKOV_REPO!r}).sample(100, seed=6)\n"
        "np.save(sys.argv[1], flows.payload)\n"
    )
    out = hf_home / "payload.npy"
    done = subprocess.run([sys.executable, "-c", script, str(out)], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(out), markov[0].sample(100, seed=6).payload)
    assert (hf_home / "hub" / "models--ntg-test--markov-tiny" / "snapshots" / published).is_dir()
