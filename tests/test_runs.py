"""Train and sample runs (what ``ntg train`` / ``ntg sample`` call) on a small prepared real dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_generator import cesnet_flows, write_prepared_dataset

from ntg.data.schema import FlowTable
from ntg.errors import NtgError
from ntg.models.base import CONFIG_FILE, WEIGHTS_FILE, load_generator
from ntg.training.runs import (
    CHECKPOINT_DIR,
    LOSS_CURVE_FILE,
    RUN_FILE,
    TRAIN_LOG_FILE,
    sample_run,
    train_run,
)

torch.set_num_threads(1)

TINY = {"model": {"hidden": 12, "n_packets": 8}, "train": {"epochs": 3, "batch_size": 64, "patience": 5}}


@pytest.fixture(scope="module")
def data_dir(datasets_root, tmp_path_factory):
    flows = cesnet_flows(datasets_root, limit=900)
    return write_prepared_dataset(flows, tmp_path_factory.mktemp("runs") / "cesnet-small")


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "tiny"
    return train_run("tiny-mlp", data_dir, out, TINY, overrides=["train.lr=0.003"], progress=False)


def test_train_run_writes_model_run_record_log_and_curve(run_dir, data_dir):
    for name in (CONFIG_FILE, WEIGHTS_FILE, RUN_FILE, TRAIN_LOG_FILE, LOSS_CURVE_FILE):
        assert (run_dir / name).is_file(), name
    assert (run_dir / CHECKPOINT_DIR / "checkpoint.pt").is_file()
    assert (run_dir / LOSS_CURVE_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    run = json.loads((run_dir / RUN_FILE).read_text())
    assert run["family"] == "tiny-mlp"
    assert run["hparams"]["hidden"] == 12 and run["hparams"]["n_packets"] == 8
    assert run["train"]["lr"] == 0.003 and run["train"]["epochs"] == 3
    assert run["overrides"] == ["train.lr=0.003"]
    assert run["dataset"]["dir"] == str(data_dir.resolve())
    assert len(run["dataset"]["meta_sha256"]) == 64 and run["dataset"]["classes"] == ["Miner", "Other"]

    log = json.loads((run_dir / TRAIN_LOG_FILE).read_text())
    assert [h["epoch"] for h in log["history"]] == [1, 2, 3]
    assert all(h["val_loss"] is not None for h in log["history"])
    gen = load_generator(run_dir)
    assert log["num_parameters"] == gen.num_parameters() > 0
    assert log["flops_per_flow"] > 0 and log["wall_s"] > 0


def test_sample_run_writes_parquet_and_csv(run_dir, tmp_path):
    parquet = sample_run(run_dir, 40, seed=5, out=tmp_path / "s.parquet")
    flows = FlowTable.read(parquet)
    assert len(flows) == 40 and set(flows.labels) <= {"Miner", "Other"}
    assert flows.max_packets == 32 and flows.length.max() == 8
    again = FlowTable.read(sample_run(run_dir, 40, seed=5, out=tmp_path / "t.parquet"))
    assert np.array_equal(flows.payload, again.payload)
    csv = FlowTable.read(sample_run(run_dir, 10, label="Miner", seed=1, out=tmp_path / "s.csv"))
    assert len(csv) == 10 and set(csv.labels) == {"Miner"}
    with pytest.raises(NtgError, match="Nope"):
        sample_run(run_dir, 3, label="Nope", out=tmp_path / "x.parquet")
    with pytest.raises(NtgError, match=r"\.txt"):
        sample_run(run_dir, 3, out=tmp_path / "x.txt")


def test_rerun_resumes_from_the_checkpoint(run_dir, data_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    before = load_generator(copy).state_arrays()
    train_run("tiny-mlp", data_dir, copy, TINY, overrides=["train.lr=0.003"], progress=False)
    log = json.loads((copy / TRAIN_LOG_FILE).read_text())
    assert log["resumed_from_epoch"] == 3 and len(log["history"]) == 3
    after = load_generator(copy).state_arrays()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    with pytest.raises(NtgError, match="lr"):
        train_run("tiny-mlp", data_dir, copy, TINY, overrides=["train.lr=0.01"], progress=False)


def test_bad_settings_name_the_problem(data_dir, tmp_path):
    with pytest.raises(NtgError, match="widht"):
        train_run("tiny-mlp", data_dir, tmp_path / "a", TINY, overrides=["model.widht=3"], progress=False)
    with pytest.raises(NtgError, match="unknown train setting"):
        train_run("tiny-mlp", data_dir, tmp_path / "b", TINY, overrides=["train.epochz=3"], progress=False)
    with pytest.raises(NtgError, match="family"):
        train_run("no-such-family", data_dir, tmp_path / "c", TINY, progress=False)
    with pytest.raises(NtgError, match="not a prepared dataset"):
        train_run("tiny-mlp", tmp_path, tmp_path / "d", TINY, progress=False)
    bad = tmp_path / "bad.json"
    bad.write_text("{model: 1")
    with pytest.raises(NtgError, match="bad.json"):
        train_run("tiny-mlp", data_dir, tmp_path / "e", bad, progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "e").exists()


def test_baseline_family_run(data_dir, tmp_path):
    config = {"model": {"n_packets": 6}}
    out = train_run("marginals", data_dir, tmp_path / "marginals", config, progress=False)
    log = json.loads((out / TRAIN_LOG_FILE).read_text())
    assert log["history"] == [] and log["num_parameters"] > 0 and log["wall_s"] > 0
    assert not (out / LOSS_CURVE_FILE).exists()
    flows = FlowTable.read(sample_run(out, 25, seed=0, out=tmp_path / "m.parquet"))
    assert len(flows) == 25 and flows.length.max() <= 6


def test_transformer_family_run(data_dir, tmp_path):
    config = {"model": {"d_model": 32, "n_layers": 1, "n_heads": 2, "mlp_hidden": 64, "n_packets": 6},
              "train": {"epochs": 1, "batch_size": 128}}
    out = train_run("transformer", data_dir, tmp_path / "transformer", config, progress=False)
    log = json.loads((out / TRAIN_LOG_FILE).read_text())
    assert len(log["history"]) == 1 and np.isfinite(log["history"][0]["train_loss"])
    flows = FlowTable.read(sample_run(out, 16, label="Other", out=tmp_path / "tr.parquet"))
    assert len(flows) == 16 and set(flows.labels) == {"Other"}


def test_a_missing_local_path_is_reported_as_such_not_as_a_hub_error(run_dir, tmp_path, monkeypatch):
    from ntg.models.base import looks_local

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for source in ("./runs/tf", "runs/tf", str(tmp_path / "nope"), "~/no/such/run", "a/b/c"):
        assert looks_local(source)
        with pytest.raises(NtgError, match="no such generator folder") as err:
            sample_run(source, 5, out=tmp_path / "s.parquet")
        assert "Hub" not in str(err.value).split(";")[0]
    assert not looks_local("ntg-test/markov-tiny")  # owner/name whose owner is not a local folder: a repo id


def test_one_path_from_run_or_checkpoint_to_a_generator(run_dir, tmp_path):
    from_run = load_generator(run_dir)
    from_checkpoint = load_generator(run_dir / CHECKPOINT_DIR)
    assert from_checkpoint.get_config() == from_run.get_config() and from_checkpoint.classes_ == from_run.classes_
    a, b = from_run.sample(20, seed=4), from_checkpoint.sample(20, seed=4)
    assert np.array_equal(a.payload, b.payload) and list(a.labels) == list(b.labels)
