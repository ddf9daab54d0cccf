"""The one training loop on real flows (CESNET-MINER22 sample) with a tiny MLP generator."""

from __future__ import annotations

import json
import math

import pytest
import torch
from tiny_generator import TinyMLP, cesnet_flows

from ntg.errors import NtgError
from ntg.models.base import load_generator
from ntg.models.fitting import CHECKPOINT_FILE, Reporter, TrainConfig, TrainResult, train_generator
from ntg.models.optim import WarmupCosine, parameter_groups
from ntg.training.config import apply_overrides, split_config

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def flows(datasets_root):
    return cesnet_flows(datasets_root, limit=1200)


@pytest.fixture(scope="module")
def split(flows):
    return flows.take(range(0, 900)), flows.take(range(900, len(flows)))


class Recorder(Reporter):
    """Keeps every epoch's metrics and a copy of the weights; optionally crashes after an epoch."""

    def __init__(self, gen, crash_after: int | None = None) -> None:
        self.gen, self.crash_after = gen, crash_after
        self.metrics, self.states, self.checkpoints = [], [], []

    def report(self, metrics, checkpoint_dir):
        self.metrics.append(metrics)
        self.states.append({k: v.clone() for k, v in self.gen.module.state_dict().items()})
        self.checkpoints.append(checkpoint_dir)
        if self.crash_after is not None and metrics["epoch"] == self.crash_after:
            raise KeyboardInterrupt("simulated interruption")


def weights(gen):
    return {k: v.detach().clone() for k, v in gen.module.state_dict().items()}


def test_training_lowers_the_loss_and_reports_json(split):
    train, val = split
    gen = TinyMLP(hidden=16)
    config = TrainConfig(epochs=4, batch_size=64, lr=3e-3, patience=10)
    gen.fit(train, val, train_config=config)
    result = gen.training_result_
    assert isinstance(result, TrainResult)
    losses = [h.train_loss for h in result.history]
    assert len(losses) == 4 and losses[-1] < 0.7 * losses[0]
    assert result.history[-1].val_loss < result.history[0].val_loss
    assert result.best_epoch == min(result.history, key=lambda h: h.val_loss).epoch
    assert result.num_train_flows == 900 and result.num_val_flows == 300
    assert all(h.flows_per_s > 0 and h.wall_s > 0 for h in result.history)
    assert result.wall_s >= sum(h.wall_s for h in result.history)
    assert not gen.module.training
    expected = "cuda" if torch.cuda.is_available() else "cpu"  # device "auto"; the module stays there
    assert gen.device.type == torch.device(result.device).type == expected
    again = TrainResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result
    assert len(gen.sample(7, seed=1)) == 7


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_interrupted_run_resumes_to_the_same_result(split, tmp_path, ema_decay):
    train, val = split
    config = TrainConfig(epochs=4, batch_size=64, lr=3e-3, warmup=0.2, patience=10, seed=3, ema_decay=ema_decay)

    whole = TinyMLP(dropout=0.2)
    reference = train_generator(whole, train, val, config, checkpoint_dir=tmp_path / "a")

    first = TinyMLP(dropout=0.2)
    with pytest.raises(KeyboardInterrupt):
        train_generator(first, train, val, config, checkpoint_dir=tmp_path / "b", reporter=Recorder(first, 2))
    assert (tmp_path / "b" / CHECKPOINT_FILE).exists()
    second = TinyMLP(dropout=0.2)
    resumed = train_generator(second, train, val, config, checkpoint_dir=tmp_path / "b")

    assert resumed.resumed_from_epoch == 2
    assert [h.epoch for h in resumed.history] == [1, 2, 3, 4]
    for a, b in zip(reference.history, resumed.history, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-6, abs=0)
        assert a.val_loss == pytest.approx(b.val_loss, rel=1e-6, abs=0)
        assert a.lr == pytest.approx(b.lr)
    ref_w, res_w = weights(whole), weights(second)
    assert all(torch.allclose(ref_w[k], res_w[k], rtol=0, atol=1e-6) for k in ref_w)
    # a finished checkpoint trains no further and gives the same weights again
    third = TinyMLP(dropout=0.2)
    done = train_generator(third, train, val, config, checkpoint_dir=tmp_path / "b")
    assert done.resumed_from_epoch == 4 and len(done.history) == 4
    assert all(torch.equal(res_w[k], v) for k, v in weights(third).items())


def test_weight_average_is_validated_and_kept_without_changing_the_updates(split):
    train, val = split
    base = {"epochs": 3, "batch_size": 64, "lr": 3e-3, "patience": 10, "seed": 1}
    plain, averaged = TinyMLP(), TinyMLP()
    recorder = Recorder(averaged)
    a = train_generator(plain, train, val, TrainConfig(**base))
    b = train_generator(averaged, train, val, TrainConfig(**base, ema_decay=0.9), reporter=recorder)
    # the optimiser sees the same steps: training losses agree; what is validated and kept differs
    assert [h.train_loss for h in a.history] == pytest.approx([h.train_loss for h in b.history], rel=1e-6)
    assert [h.val_loss for h in a.history] != [h.val_loss for h in b.history]
    kept, raw_last = weights(averaged), recorder.states[-1]
    assert not all(torch.equal(kept[k], raw_last[k]) for k in kept)
    # the kept average scores the validation loss reported for its epoch
    from ntg.models.epoch_data import encode_rows
    from ntg.models.fitting import _evaluate

    val_loss = _evaluate(averaged.module, encode_rows(averaged, val, "validation"), TrainConfig(**base), Reporter(),
                         torch.device("cpu"), False)
    assert val_loss == pytest.approx(b.best_val_loss, rel=1e-6)


def test_early_stopping_restores_the_best_weights(split):
    train, val = split
    gen = TinyMLP()
    recorder = Recorder(gen)
    # min_delta larger than any possible improvement: epoch 1 stays best, patience 2 stops after epoch 3
    config = TrainConfig(epochs=10, batch_size=64, patience=2, min_delta=10.0, selection="val_loss")
    result = train_generator(gen, train, val, config, reporter=recorder)
    assert result.stopped_early and result.best_epoch == 1 and len(result.history) == 3
    assert [m["epoch"] for m in recorder.metrics] == [1, 2, 3]
    final = weights(gen)
    assert all(torch.equal(final[k], recorder.states[0][k]) for k in final)
    assert not all(torch.equal(final[k], recorder.states[-1][k]) for k in final)
    assert recorder.checkpoints == [None, None, None]  # no checkpoint_dir, nothing written


def test_small_training_sets_keep_the_last_weights_and_log_the_validation_loss(split):
    """900 flows are a small set (data rules): batch 32, 12 epochs, last weights kept, val loss only logged,
    and the decision is in the notes; a setting the user gives is kept as given."""
    train, val = split
    gen = TinyMLP()
    recorder = Recorder(gen)
    result = train_generator(gen, train, val, TrainConfig(min_delta=10.0), reporter=recorder)
    assert len(result.history) == 12 and result.best_epoch == 12 and not result.stopped_early
    assert all(h.val_loss is not None for h in result.history)
    assert result.train_config["batch_size"] == 32 and result.train_config["selection"] == "last"
    assert any("data rules for 900 training flows" in note for note in result.notes)
    final = weights(gen)
    assert all(torch.equal(final[k], recorder.states[-1][k]) for k in final)
    given = train_generator(TinyMLP(), train, val, TrainConfig(epochs=2, batch_size=100, selection="val_loss"))
    assert given.train_config["batch_size"] == 100 and len(given.history) == 2 and given.notes == []


def test_data_rules_by_training_set_size():
    from ntg.models.data_rules import SMALL_DATA_FLOWS, resolve_train_config

    large, notes = resolve_train_config(TrainConfig(), SMALL_DATA_FLOWS)
    assert (large.epochs, large.batch_size, large.selection) == (20, 256, "val_loss") and notes
    small, _ = resolve_train_config(TrainConfig(), 1066)
    assert (small.epochs, small.batch_size, small.selection) == (12, 64, "last")
    assert resolve_train_config(TrainConfig(), 100)[0].batch_size == 16
    assert resolve_train_config(TrainConfig(), 728)[0].batch_size == 32


def test_diffusion_trains_its_whole_budget_on_large_sets_and_a_set_value_is_kept():
    from ntg.models.base import generator_class
    from ntg.models.data_rules import SMALL_DATA_FLOWS, resolve_train_config

    family = generator_class("diffusion")
    large, _ = resolve_train_config(TrainConfig(), SMALL_DATA_FLOWS, family.default_epochs, family.default_selection)
    assert (large.epochs, large.selection) == (120, "last")
    small, _ = resolve_train_config(TrainConfig(), 1066, family.default_epochs, family.default_selection)
    assert (small.epochs, small.selection) == (60, "last")
    given, _ = resolve_train_config(TrainConfig(selection="val_loss", epochs=30), SMALL_DATA_FLOWS,
                                    family.default_epochs, family.default_selection)
    assert (given.epochs, given.selection) == (30, "val_loss")


def test_without_validation_table_holds_out_val_fraction(split):
    train, _ = split
    gen = TinyMLP()
    result = train_generator(gen, train, None, TrainConfig(epochs=1, val_fraction=0.2, max_train_flows=500))
    assert result.num_val_flows == 180 and result.num_train_flows == 500
    assert result.history[0].val_loss is not None
    no_val = train_generator(TinyMLP(), train, None, TrainConfig(epochs=2, val_fraction=0.0))
    assert no_val.history[-1].val_loss is None and no_val.best_epoch == 2


def test_checkpoint_with_other_settings_is_refused(split, tmp_path):
    train, val = split
    train_generator(TinyMLP(), train, val, TrainConfig(epochs=1), checkpoint_dir=tmp_path)
    with pytest.raises(NtgError, match="lr"):
        train_generator(TinyMLP(), train, val, TrainConfig(epochs=1, lr=0.5), checkpoint_dir=tmp_path)
    with pytest.raises(NtgError, match="hyperparameters"):
        train_generator(TinyMLP(hidden=8), train, val, TrainConfig(epochs=1), checkpoint_dir=tmp_path)
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(NtgError, match=CHECKPOINT_FILE):
        train_generator(TinyMLP(), train, val, TrainConfig(epochs=1), checkpoint_dir=tmp_path)


def test_progress_bar_and_epoch_lines_go_to_stderr(split, capsys):
    train, val = split
    TinyMLP().fit(train.take(range(200)), val, train_config=TrainConfig(epochs=2, batch_size=50), progress=True)
    err = capsys.readouterr().err
    assert "epoch 1: train_loss" in err and "epoch 2: train_loss" in err
    TinyMLP().fit(train.take(range(200)), val, train_config=TrainConfig(epochs=1, batch_size=50))
    assert capsys.readouterr().err == ""


def test_parameter_groups_skip_norms_biases_and_embeddings(flows):
    gen = TinyMLP(hidden=8)
    gen.prepare(flows)
    decay, no_decay = parameter_groups(gen.module, 0.1)
    names = {id(p): n for n, p in gen.module.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert sorted(names[id(p)] for p in decay["params"]) == ["mlp.1.weight", "mlp.4.weight"]
    assert "embed.weight" in {names[id(p)] for p in no_decay["params"]}
    assert len(decay["params"]) + len(no_decay["params"]) == len(names)


def test_warmup_then_cosine_decay():
    schedule = WarmupCosine(warmup_steps=10, total_steps=110)
    ramp = [schedule(s) for s in range(10)]
    assert ramp == sorted(ramp) and ramp[-1] == 1.0 and ramp[0] == pytest.approx(0.1)
    assert schedule(60) == pytest.approx(0.5) and schedule(109) < 0.01 and schedule(500) == 0.0
    assert schedule(10) == 1.0 and all(schedule(s) >= schedule(s + 1) for s in range(10, 110))
    assert math.isclose(WarmupCosine(0, 4)(0), 1.0)


def test_train_config_from_dict_and_overrides():
    assert TrainConfig.from_dict({"epochs": 3}).epochs == 3
    with pytest.raises(NtgError, match="epoch"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(NtgError, match="train.lr"):
        TrainConfig.from_dict({"lr": -1})
    merged = apply_overrides(
        {"model": {"d_model": 64}, "train": {"epochs": 9}},
        ["model.d_model=128", "train.device=cuda", "train.lr=1e-3", "model.name=[1, 2]"],
    )
    assert merged == {"model": {"d_model": 128, "name": [1, 2]},
                      "train": {"epochs": 9, "device": "cuda", "lr": 1e-3}}
    model, train = split_config(None, ["train.max_train_flows=100", "train.bf16=false"])
    assert model == {} and train.max_train_flows == 100 and train.bf16 is False
    for bad in (["epochs=3"], ["optim.lr=1"], ["train.lr"]):
        with pytest.raises(NtgError, match="override"):
            apply_overrides(None, bad)
    with pytest.raises(NtgError, match="section"):
        apply_overrides({"optim": {}})
    with pytest.raises(NtgError, match="unknown train setting"):
        split_config(None, ["train.epoch=3"])


def test_load_generator_reads_a_checkpoint_with_its_best_or_last_weights(split, tmp_path):
    train, val = split
    gen = TinyMLP(hidden=8)
    recorder = Recorder(gen)
    train_generator(gen, train, val, TrainConfig(epochs=3, patience=1, min_delta=10.0, selection="val_loss"),
                        checkpoint_dir=tmp_path,
                    reporter=recorder)
    best = load_generator(tmp_path)
    last = load_generator(tmp_path / CHECKPOINT_FILE, best=False)
    assert best.classes_ == gen.classes_ and best.get_config() == gen.get_config()
    assert all(torch.equal(v, recorder.states[0][k]) for k, v in best.module.state_dict().items())
    assert all(torch.equal(v, recorder.states[-1][k]) for k, v in last.module.state_dict().items())
    assert len(best.sample(4, seed=0)) == 4
    a, b = best.sample(50, seed=2), gen.sample(50, seed=2)  # the header model travels with the checkpoint
    assert best.headers_ is not None and torch.equal(torch.as_tensor(a.flags), torch.as_tensor(b.flags))
    with pytest.raises(NtgError, match="no such generator folder"):
        load_generator(tmp_path / "elsewhere")


def test_tune_trial_settings_merge_dotted_keys():
    from ntg.training.tune_trainable import trial_settings

    family, data_dir, model, train = trial_settings(
        {"family": "tiny-mlp", "data_dir": "/d", "model": {"hidden": 4, "dropout": 0.0},
         "model.hidden": 32, "train": {"epochs": 2}, "train.lr": 0.01, "threads": 1}
    )
    assert (family, data_dir, model) == ("tiny-mlp", "/d", {"hidden": 32, "dropout": 0.0})
    assert train.epochs == 2 and train.lr == 0.01
    with pytest.raises(NtgError, match="lerning_rate"):
        trial_settings({"family": "x", "data_dir": "/d", "lerning_rate": 1})
    with pytest.raises(NtgError, match="data_dir"):
        trial_settings({"family": "x"})


def _with_labels(flows, labels):
    table = flows.take(range(len(labels)))
    table.meta["label"] = labels
    return table


def test_hold_out_is_stratified_and_never_takes_a_class_s_last_flow(flows):
    from ntg.models.holdout import split_train_val

    labels = ["big"] * 60 + ["mid"] * 9 + ["pair"] * 2 + ["one"] + ["two"] * 2
    table = _with_labels(flows, labels)
    for seed in range(20):
        train, val, notes = split_train_val(table, None, 0.25, None, seed)
        assert set(train.labels) == set(labels) and not notes
        assert len(val) == round(0.25 * len(labels)) and len(train) + len(val) == len(labels)
        assert (val.labels == "big").sum() == 15 and "one" not in set(val.labels)
    # too small to spare a hold-out: train on everything, without early stopping, and say so
    singles = _with_labels(flows, ["a", "b", "c"])
    train, val, notes = split_train_val(singles, None, 0.1, None, 0)
    assert val is None and len(train) == 3 and "no validation hold-out" in notes[0]
    result = train_generator(TinyMLP(), singles, None, TrainConfig(epochs=1))
    assert result.num_val_flows == 0 and result.notes and result.history[0].val_loss is None


def test_max_train_flows_subsample_keeps_every_class(flows):
    from ntg.models.holdout import split_train_val

    labels = ["big"] * 90 + ["rare"] * 2 + ["single"]
    train, val, _ = split_train_val(_with_labels(flows, labels), None, 0.0, 20, 0)
    assert val is None and set(train.labels) == set(labels) and len(train) == 20
    gen = TinyMLP().fit(_with_labels(flows, labels), None,
                        train_config=TrainConfig(epochs=1, max_train_flows=10, val_fraction=0.2))
    assert gen.classes_ == ["big", "rare", "single"] and gen.fit_log_["num_train_flows"] == 10
    assert set(gen.sample(3, label=["big", "rare", "single"], seed=0).labels) == {"big", "rare", "single"}
