"""The training loop under Ray, on a real local cluster: Ray Train DDP workers and a Ray Tune search."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_generator import cesnet_flows, write_prepared_dataset

from ntg.data.schema import FlowTable
from ntg.models.base import load_generator
from ntg.training.runs import TRAIN_LOG_FILE, sample_run

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data_dir(datasets_root, tmp_path_factory):
    flows = cesnet_flows(datasets_root, limit=800)
    return write_prepared_dataset(flows, tmp_path_factory.mktemp("ray-data") / "cesnet-small")


@pytest.mark.slow
def test_ddp_run_on_two_workers_trains_saves_and_resumes(ray_cluster, data_dir, tmp_path):
    from ntg.training.ray_train import train_distributed

    config = {"model": {"hidden": 12, "n_packets": 8},
              "train": {"epochs": 2, "batch_size": 64, "lr": 3e-3, "patience": 5}}
    out = train_distributed("tiny-mlp", data_dir, tmp_path / "ddp", config, num_workers=2,
                            imports=["tiny_generator"])
    log = json.loads((out / TRAIN_LOG_FILE).read_text())
    assert log["world_size"] == 2 and [h["epoch"] for h in log["history"]] == [1, 2]
    train_rows = json.loads((out / "run.json").read_text())["dataset"]["splits"]["train"]
    assert log["num_train_flows"] == train_rows
    assert all(np.isfinite(h["train_loss"]) and np.isfinite(h["val_loss"]) for h in log["history"])
    assert log["history"][1]["train_loss"] < log["history"][0]["train_loss"]
    assert (out / "checkpoints" / "checkpoint.pt").is_file()

    gen = load_generator(out)
    assert gen.get_config()["hidden"] == 12 and log["num_parameters"] == gen.num_parameters()
    flows = FlowTable.read(sample_run(out, 30, seed=2, out=tmp_path / "ddp.parquet"))
    assert len(flows) == 30 and flows.length.max() == 8

    # the run folder's checkpoint is finished: a second call resumes it and trains no further epoch
    before = gen.state_arrays()
    train_distributed("tiny-mlp", data_dir, out, config, num_workers=2, imports=["tiny_generator"])
    again = json.loads((out / TRAIN_LOG_FILE).read_text())
    assert again["resumed_from_epoch"] == 2 and len(again["history"]) == 2
    after = load_generator(out).state_arrays()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_tune_search_with_reused_actors(ray_cluster, data_dir, tmp_path):
    from ray import tune

    from ntg.training.tune_trainable import tune_trainable

    param_space = {
        "family": "tiny-mlp",
        "data_dir": str(data_dir),
        "imports": ["tiny_generator"],
        "model": {"n_packets": 6},
        "model.hidden": tune.grid_search([4, 24]),
        "train": {"epochs": 3, "batch_size": 64, "lr": 3e-3},
    }
    tuner = tune.Tuner(
        tune.with_resources(tune_trainable, {"cpu": 1}),
        param_space=param_space,
        tune_config=tune.TuneConfig(metric="val_loss", mode="min", reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), name="tiny", verbose=0),
    )
    results = tuner.fit()
    assert len(results) == 2 and results.errors == []
    params = set()
    for result in results:
        metrics = result.metrics
        assert metrics["epoch"] == 3 and metrics["training_iteration"] == 3
        for key in ("val_loss", "train_loss", "wall_s", "total_wall_s", "num_parameters"):
            assert np.isfinite(metrics[key]), key
        assert result.metrics_dataframe["val_loss"].shape == (3,)
        assert result.checkpoint is not None
        params.add(metrics["num_parameters"])
    assert len(params) == 2  # the two hidden sizes really were two different models

    best = results.get_best_result()
    assert best.metrics["val_loss"] == min(r.metrics["val_loss"] for r in results)
    with best.checkpoint.as_directory() as folder:
        gen = load_generator(folder)
    assert gen.get_config()["hidden"] == best.config["model.hidden"]
    assert gen.num_parameters() == best.metrics["num_parameters"]
    assert len(gen.sample(9, label="Miner", seed=0)) == 9
