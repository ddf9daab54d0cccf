"""Diffusion generator: learning, decoding, class conditioning, determinism and persistence."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from ntg.data.schema import FlowTable
from ntg.errors import NtgError
from ntg.models import create_generator, load_generator
from ntg.models.diffusion import DiffusionGenerator
from ntg.models.fitting import TrainConfig
from ntg.models.flow_matrix import FlowMatrixCodec

SMALL = {"d_model": 64, "n_layers": 2, "n_heads": 4, "sampling_steps": 12, "guidance_scale": 2.0}


def two_classes(n: int = 400, seed: int = 0) -> FlowTable:
    """``bulk``: 8-10 packets of 1200-1400 bytes, alternating, 1 ms apart; ``chat``: 2-3 packets of 10-60
    bytes, all client→server, ~1 s apart."""
    rng = np.random.default_rng(seed)
    p = 10

    def block(label: str, lengths: np.ndarray, lo: int, hi: int, alternate: bool, iat_scale: float):
        mask = np.arange(p)[None, :] < lengths[:, None]
        iat = np.where(mask, rng.exponential(iat_scale, (n, p)), 0.0).round(6)
        iat[:, 0] = 0.0
        direction = np.tile(np.arange(p) % 2, (n, 1)) if alternate else np.zeros((n, p), int)
        zeros = np.zeros((n, p), int)
        return FlowTable(
            n_packets=lengths,
            payload=np.where(mask, rng.integers(lo, hi, (n, p)), 0),
            direction=np.where(mask, direction, 0),
            iat=iat,
            flags=zeros,
            window=zeros,
            meta=pd.DataFrame({"label": [label] * n}),
        )

    return FlowTable.concat(
        [
            block("bulk", rng.integers(8, 11, n), 1200, 1400, True, 1e-3),
            block("chat", rng.integers(2, 4, n), 10, 60, False, 1.0),
        ]
    )


@pytest.fixture(scope="module")
def constructed() -> FlowTable:
    return two_classes()


@pytest.fixture(scope="module")
def trained(constructed: FlowTable) -> DiffusionGenerator:
    gen = DiffusionGenerator(**SMALL, seed=1)
    config = TrainConfig(epochs=30, batch_size=64, lr=3e-3, val_fraction=0.1, patience=30, seed=0)
    gen.fit(constructed, train_config=config)
    return gen


def _mean_loss(gen: DiffusionGenerator, flows: FlowTable) -> float:
    """Loss over ``flows`` under a fixed RNG (fixed noise and times), in eval mode."""
    batch = gen.encode(flows)
    gen.module.eval()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(123)
        return float(np.mean([gen.module(**batch).item() for _ in range(4)]))


def test_default_config_has_one_to_two_million_parameters(constructed: FlowTable) -> None:
    gen = DiffusionGenerator()
    gen.prepare(constructed)
    assert 1_000_000 <= gen.num_parameters() <= 2_000_000


def test_loss_falls_clearly_on_constructed_classes(constructed: FlowTable) -> None:
    gen = DiffusionGenerator(**SMALL, seed=1)
    gen.prepare(constructed)
    before = _mean_loss(gen, constructed)
    gen.fit(constructed, train_config=TrainConfig(epochs=6, batch_size=64, lr=3e-3, val_fraction=0.0))
    after = _mean_loss(gen, constructed)
    # analog bits: the iat bits of exponential times are noise the model cannot predict, so the loss floor is high
    assert after < 0.8 * before, (before, after)
    history = gen.training_result_.history
    assert history[-1].train_loss < history[0].train_loss


def test_samples_are_valid_and_follow_the_requested_class(trained: DiffusionGenerator) -> None:
    bulk = trained.sample(200, "bulk", seed=0)
    chat = trained.sample(200, "chat", seed=0)
    for flows in (bulk, chat):
        flows.validate()
        assert flows.max_packets == 10
        assert np.all(flows.n_packets == flows.length)
    assert set(bulk.labels) == {"bulk"} and set(chat.labels) == {"chat"}
    assert np.mean(bulk.payload[bulk.mask] > 600) > 0.9
    assert np.mean(chat.payload[chat.mask] < 200) > 0.9
    assert np.mean(bulk.length >= 7) > 0.8
    assert np.mean(chat.length <= 4) > 0.8
    # chat flows are client→server only; bulk flows alternate starting client→server
    assert np.mean(chat.direction[chat.mask] == 0) > 0.9
    assert np.mean(bulk.direction[:, :4] == np.array([0, 1, 0, 1])) > 0.8
    # payload stays within the training range, inter-arrival times match the class scale
    assert bulk.payload.max() <= 1399 and chat.payload[chat.mask].min() >= 10
    assert np.median(chat.iat[:, 1][chat.length > 1]) > 10 * np.median(bulk.iat[:, 1])


def test_sampling_is_deterministic_for_a_seed(trained: DiffusionGenerator) -> None:
    a = trained.sample(64, seed=5)
    b = trained.sample(64, seed=5)
    c = trained.sample(64, seed=6)
    for name in ("payload", "direction", "iat", "n_packets"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.payload, c.payload)


def test_save_load_sample_reproduces_exactly(trained: DiffusionGenerator, tmp_path) -> None:
    trained.save_pretrained(tmp_path / "diffusion")
    loaded = load_generator(tmp_path / "diffusion")
    assert isinstance(loaded, DiffusionGenerator)
    assert loaded.get_config() == trained.get_config()
    assert loaded.num_parameters() == trained.num_parameters()
    a = trained.sample(48, ["bulk", "chat"] * 24, seed=2)
    b = loaded.sample(48, ["bulk", "chat"] * 24, seed=2)
    for name in ("payload", "direction", "iat", "n_packets"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_bf16_autocast_forward_gives_a_finite_float_loss(trained: DiffusionGenerator, constructed) -> None:
    batch = trained.encode(constructed.take(np.arange(0, 800, 40)))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        loss = trained.module(**batch)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_decoding_recovers_length_and_clips_values(constructed: FlowTable) -> None:
    codec = FlowMatrixCodec.fit(constructed, 10)
    codec.snap_tolerance = 0.0  # clipping alone here; snapping is tested below
    matrix = np.zeros((3, 10, 4))
    matrix[..., 1] = -1.0
    matrix[0, :4, 1] = 1.0  # 4 packets, then absent
    matrix[1, :, 1] = 1.0  # all 10 present
    matrix[2, 0, 1] = -0.5  # first position absent: still one packet
    matrix[..., 0] = 0.3  # direction rounds to server→client
    matrix[..., 2] = 5.0  # beyond the scaled range: clipped to the largest training payload
    matrix[..., 3] = -7.0  # below the range: smallest training iat
    flows = codec.decode(matrix)
    flows.validate()
    np.testing.assert_array_equal(flows.length, [4, 10, 1])
    assert flows.payload[0, :4].tolist() == [constructed.payload.max()] * 4
    assert np.all(flows.payload[0, 4:] == 0) and np.all(flows.direction[0, :4] == 1)
    assert np.all(flows.iat >= 0) and np.all(flows.iat[:, 0] == 0)
    # encode → decode is (nearly) the identity on real-looking flows
    round_trip = codec.decode(codec.encode(constructed))
    np.testing.assert_array_equal(round_trip.length, constructed.length)
    np.testing.assert_array_equal(round_trip.direction, constructed.direction)
    assert np.max(np.abs(round_trip.payload - constructed.payload)) <= 1
    np.testing.assert_allclose(round_trip.iat, constructed.iat, rtol=1e-4, atol=2e-6)


def test_decoding_snaps_near_values_to_frequent_payload_sizes() -> None:
    """Bare ACKs (0) and full segments (1448) come back exactly from slightly noisy matrices."""
    from ntg.models.empirical import make_flows

    rng = np.random.default_rng(0)
    n = 600
    payload = np.where(rng.random((n, 10)) < 0.5, 0, 1448)
    rare = rng.random((n, 10)) < 0.1
    payload = np.where(rare, rng.integers(100, 1000, (n, 10)), payload)
    flows = make_flows(np.full(n, 10), payload, rng.integers(0, 2, (n, 10)), rng.uniform(0, 0.1, (n, 10)))
    codec = FlowMatrixCodec.fit(flows, 10)
    assert set(codec.frequent_payloads) >= {0, 1448}
    noisy = codec.encode(flows)
    noisy[..., 2] += rng.uniform(-0.05, 0.05, size=noisy[..., 2].shape)
    common = np.isin(flows.payload, [0, 1448])
    snapped = codec.decode(noisy)
    np.testing.assert_array_equal(snapped.payload[common], flows.payload[common])
    codec.snap_tolerance = 0.0
    plain = codec.decode(noisy)
    assert np.mean(plain.payload[common] != flows.payload[common]) > 0.15  # 0s pushed below -1 stay 0


def test_bf16_sampling_follows_the_classes_like_float32(trained: DiffusionGenerator) -> None:
    trained.sample_precision = "bfloat16"
    try:
        assert next(trained.sampling_module().parameters()).dtype == torch.bfloat16
        bulk, chat = trained.sample(200, "bulk", seed=0), trained.sample(200, "chat", seed=0)
        again = trained.sample(200, "bulk", seed=0)
    finally:
        trained.sample_precision = "float32"
    bulk.validate()
    np.testing.assert_array_equal(bulk.payload, again.payload)
    assert np.mean(bulk.payload[bulk.mask] > 600) > 0.9 and np.mean(chat.payload[chat.mask] < 200) > 0.9
    assert np.mean(bulk.length >= 7) > 0.8 and np.mean(chat.length <= 4) > 0.8


def test_bad_input_raises_ntg_errors(trained: DiffusionGenerator, constructed: FlowTable) -> None:
    with pytest.raises(NtgError, match="sampling_steps"):
        create_generator("diffusion", sampling_steps=0)
    with pytest.raises(NtgError, match="sample_precision"):
        create_generator("diffusion", sample_precision="fp8")
    with pytest.raises(NtgError, match="not in the training data"):
        other = constructed.take(np.arange(3))
        other.meta["label"] = "unknown-device"
        trained.encode(other)
    with pytest.raises(NtgError, match="unknown class"):
        trained.sample(2, "unknown-device")


def test_fits_a_small_real_subset(iot_small) -> None:
    train = iot_small.train
    gen = DiffusionGenerator(**SMALL, seed=0)
    gen.prepare(train)
    before = _mean_loss(gen, iot_small.val)
    gen.fit(train, iot_small.val, train_config=TrainConfig(epochs=3, batch_size=128, lr=3e-3))
    after = _mean_loss(gen, iot_small.val)
    assert after < 0.8 * before, (before, after)
    label = gen.classes_[0]
    flows = gen.sample(100, label, seed=0)
    flows.validate()
    assert set(flows.labels) == {label}
    real = train.where(label=label)
    lo, hi = real.payload[real.mask].min(), real.payload[real.mask].max()
    assert flows.payload[flows.mask].min() >= min(lo, train.payload[train.mask].min())
    assert flows.payload.max() <= max(hi, train.payload.max())



def test_class_values_are_fitted_and_can_be_turned_off(trained: DiffusionGenerator) -> None:
    """The generator keeps the class values of its training packets (redrawing is tested in test_tokenizer);
    ``class_values=False`` samples the plain continuous decoding."""
    assert trained.values_ is not None and trained.values_.values is not None
    trained.class_values = False
    try:
        plain = trained.sample(100, label="bulk", seed=4)
    finally:
        trained.class_values = True
    redrawn = trained.sample(100, label="bulk", seed=4)
    assert np.array_equal(plain.n_packets, redrawn.n_packets) and np.array_equal(plain.direction, redrawn.direction)


def test_bits_by_default_matrix_on_request_and_for_generators_saved_before_bits(
        trained: DiffusionGenerator, constructed: FlowTable) -> None:
    assert trained.space == "bits" and trained.module.n_channels == trained.bits_.n_channels > 4
    gen = DiffusionGenerator(**SMALL, space="matrix", target="v", seed=0)
    gen.fit(constructed, train_config=TrainConfig(epochs=2, batch_size=64, val_fraction=0.0))
    assert gen.module.n_channels == 4 and gen.bits_ is None
    gen.sample(20, "bulk", seed=0).validate()
    meta = gen.learnt_metadata()
    meta.pop("space")  # as saved before analog bits existed
    old = DiffusionGenerator(**SMALL, seed=0)  # their config has no "space": the constructor says bits
    old.set_learnt_metadata(meta)
    assert old.space == "matrix" and old.bits_ is None


def test_self_conditioning_trains_samples_and_reloads(constructed: FlowTable, tmp_path) -> None:
    gen = DiffusionGenerator(**SMALL, self_condition=True, seed=0)
    gen.fit(constructed, train_config=TrainConfig(epochs=2, batch_size=64, val_fraction=0.0))
    plain = DiffusionGenerator(**SMALL, seed=0)
    plain.prepare(constructed)
    # the denoiser reads the noisy bits and its previous estimate of the clean ones
    assert gen.module.denoiser.input.in_features == 2 * plain.module.denoiser.input.in_features
    gen.save_pretrained(tmp_path / "sc")
    loaded = load_generator(tmp_path / "sc")
    assert loaded.self_condition
    a, b = gen.sample(30, "chat", seed=3), loaded.sample(30, "chat", seed=3)
    a.validate()
    np.testing.assert_array_equal(a.payload, b.payload)
    plain.fit(constructed, train_config=TrainConfig(epochs=1, batch_size=64, val_fraction=0.0))
    plain.save_pretrained(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    config["hparams"].pop("self_condition")  # as saved before self-conditioning existed
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    old = load_generator(tmp_path / "old")
    assert not old.self_condition


def test_data_scale_diffuses_scaled_bits_decodes_them_and_reloads(constructed: FlowTable, tmp_path) -> None:
    gen = DiffusionGenerator(**SMALL, data_scale=2.0, seed=0)
    gen.fit(constructed, train_config=TrainConfig(epochs=2, batch_size=64, val_fraction=0.0))
    assert np.abs(gen.encode(constructed.take(np.arange(20)))["x0"].numpy()).max() == 2.0  # bits at ±2
    gen.save_pretrained(tmp_path / "scaled")
    loaded = load_generator(tmp_path / "scaled")
    assert loaded.data_scale == 2.0
    a, b = gen.sample(30, "bulk", seed=2), loaded.sample(30, "bulk", seed=2)
    a.validate()
    np.testing.assert_array_equal(a.payload, b.payload)
    meta = gen.learnt_metadata()
    meta.pop("data_scale")  # as saved before the scale existed: those generators diffused at 1
    old = DiffusionGenerator(**SMALL, data_scale=2.0, seed=0)
    old.set_learnt_metadata(meta)
    assert old.data_scale == 1.0


def _same_flows(a: FlowTable, b: FlowTable) -> bool:
    names = ("payload", "direction", "iat", "n_packets")
    return all(np.array_equal(getattr(a, name), getattr(b, name)) for name in names)


def test_guidance_interval_guides_only_its_noise_levels_and_reloads(trained: DiffusionGenerator, tmp_path) -> None:
    trained.save_pretrained(tmp_path / "base")

    def variant(**settings: float | None) -> DiffusionGenerator:
        gen = load_generator(tmp_path / "base")
        for name, value in settings.items():
            setattr(gen, name, value)
        return gen

    labels = ["bulk", "chat"] * 24
    default = trained.sample(48, labels, seed=3)
    assert _same_flows(variant(guidance_sigma_max=1e12).sample(48, labels, seed=3), default)  # every step inside
    unguided = variant(guidance_scale=1.0).sample(48, labels, seed=3)
    assert not _same_flows(unguided, default)
    assert _same_flows(variant(guidance_sigma_min=1e12).sample(48, labels, seed=3), unguided)  # no step inside
    # guidance doubles the network passes of the steps it applies to, and only those
    settings = {"all": {}, "none": {"guidance_scale": 1.0},
                "middle": {"guidance_sigma_min": 0.3, "guidance_sigma_max": 5.0}}
    flops = {name: variant(**s).flops_per_flow(batch=16) for name, s in settings.items()}
    assert flops["none"] < flops["middle"] < flops["all"] < 2.1 * flops["none"], flops
    middle = variant(guidance_sigma_min=0.3, guidance_sigma_max=5.0)
    middle.save_pretrained(tmp_path / "middle")
    loaded = load_generator(tmp_path / "middle")
    assert (loaded.guidance_sigma_min, loaded.guidance_sigma_max) == (0.3, 5.0)
    assert _same_flows(loaded.sample(48, labels, seed=3), middle.sample(48, labels, seed=3))
    with pytest.raises(NtgError, match="guidance_sigma_max"):
        DiffusionGenerator(guidance_sigma_max=0.0)


def test_bits_target_learns_the_classes_and_reloads(constructed: FlowTable, tmp_path) -> None:
    gen = DiffusionGenerator(**SMALL, target="bits", seed=1)
    gen.prepare(constructed)
    before = _mean_loss(gen, constructed)
    assert before == pytest.approx(np.log(2), rel=1e-3)  # zero-initialised output: every bit at even odds
    gen.fit(constructed, train_config=TrainConfig(epochs=20, batch_size=64, lr=3e-3, val_fraction=0.0, seed=0))
    assert _mean_loss(gen, constructed) < 0.8 * before
    bulk, chat = gen.sample(100, "bulk", seed=0), gen.sample(100, "chat", seed=0)
    bulk.validate()
    assert np.mean(bulk.payload[bulk.mask] > 600) > 0.9 and np.mean(chat.payload[chat.mask] < 100) > 0.9
    # the logits' expected bits come back unchanged through v, as the DDIM step reads them
    module, xt = gen.module, torch.randn(4, 10, gen.module.n_channels)
    logits = torch.randn_like(xt) * 3
    for t in (0, 500, 999):
        ab = module.alpha_bar64[t]
        v = module.v_from_output(logits, xt, ab)
        x0 = np.sqrt(ab) * xt - np.sqrt(1 - ab) * v
        torch.testing.assert_close(x0, torch.tanh(logits / 2), atol=1e-4, rtol=0)
    gen.save_pretrained(tmp_path / "ce")
    loaded = load_generator(tmp_path / "ce")
    assert loaded.target == "bits"
    np.testing.assert_array_equal(loaded.sample(30, "bulk", seed=2).payload, gen.sample(30, "bulk", seed=2).payload)
    with pytest.raises(NtgError, match="target='bits' needs model.space='bits'.*set model.target=v"):
        DiffusionGenerator(space="matrix")  # the default target is bits


def test_folders_saved_before_the_bits_target_load_as_trained_on_v(constructed: FlowTable, tmp_path) -> None:
    gen = DiffusionGenerator(**SMALL, target="v", seed=0)
    gen.fit(constructed, train_config=TrainConfig(epochs=1, batch_size=64, val_fraction=0.0))
    gen.save_pretrained(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["hparams"]["target"]  # as saved before the setting existed
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    old = load_generator(tmp_path / "old")
    assert DiffusionGenerator().target == "bits" and old.target == "v"
    np.testing.assert_array_equal(old.sample(30, "bulk", seed=2).payload, gen.sample(30, "bulk", seed=2).payload)
