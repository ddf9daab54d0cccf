"""Constructed flows and shared checks for the autoregressive families (transformer, SSM)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ntg.data.schema import FlowTable
from ntg.models import load_generator
from ntg.models.autoregressive import AutoregressiveGenerator

P = 10


def two_class_flows(n: int, seed: int = 0) -> FlowTable:
    """Class ``short``: 2–4 small packets (0/60/80 B) 0.1–1 ms apart; class ``long``: 7–10 large packets
    (1448/1460 B or 500–1399 B) 0.5–2 s apart. Directions alternate."""
    rng = np.random.default_rng(seed)
    is_long = rng.integers(0, 2, n).astype(bool)
    length = np.where(is_long, rng.integers(7, P + 1, n), rng.integers(2, 5, n))
    mask = np.arange(P)[None, :] < length[:, None]
    small = rng.choice([0, 60, 80], size=(n, P))
    mss = rng.choice([1448, 1460], size=(n, P))
    large = np.where(rng.random((n, P)) < 0.6, mss, rng.integers(500, 1400, (n, P)))
    payload = np.where(is_long[:, None], large, small)
    iat = np.where(is_long[:, None], rng.uniform(0.5, 2.0, (n, P)), rng.uniform(1e-4, 1e-3, (n, P)))
    iat[:, 0] = 0.0
    direction = np.broadcast_to(np.arange(P) % 2, (n, P))
    return FlowTable(
        n_packets=length,
        payload=np.where(mask, payload, 0),
        direction=np.where(mask, direction, 0),
        iat=np.where(mask, np.round(iat * 1e6) / 1e6, 0.0),
        flags=np.zeros((n, P)),
        window=np.zeros((n, P)),
        meta=pd.DataFrame({"label": np.where(is_long, "long", "short")}),
    )


def train_small(gen: AutoregressiveGenerator, flows: FlowTable, epochs: int = 4) -> AutoregressiveGenerator:
    torch.manual_seed(0)
    return gen.fit(flows, None, train_config={"epochs": epochs, "batch_size": 64, "lr": 3e-3, "device": "cpu",
                                 "val_fraction": 0.1, "patience": epochs})


def check_loss_falls(gen: AutoregressiveGenerator) -> None:
    history = gen.training_result_.history
    assert len(history) >= 3
    first, last = history[0].train_loss, history[-1].train_loss
    assert last < 0.8 * first, f"training loss did not fall clearly: {first:.3f} -> {last:.3f}"
    assert history[-1].val_loss < history[0].val_loss


def check_valid(gen: AutoregressiveGenerator, train: FlowTable) -> None:
    flows = gen.sample(300, seed=3)
    flows.validate()
    assert flows.max_packets == gen.n_packets
    assert np.all((flows.length >= 1) & (flows.length <= gen.n_packets))
    sizes = flows.payload[flows.mask]
    real = train.payload[train.mask]
    assert sizes.min() >= real.min() and sizes.max() <= real.max()
    assert np.all(flows.iat[:, 0] == 0)
    assert set(flows.labels) <= set(gen.classes_)


def check_class_conditioning(gen: AutoregressiveGenerator) -> None:
    short, long = gen.sample(200, "short", seed=5), gen.sample(200, "long", seed=5)
    assert set(short.labels) == {"short"} and set(long.labels) == {"long"}
    assert short.length.mean() < 5 < long.length.mean()
    assert np.median(short.payload[short.mask]) < 100 < np.median(long.payload[long.mask])
    short_gaps = short.iat[:, 1:][short.mask[:, 1:]]
    long_gaps = long.iat[:, 1:][long.mask[:, 1:]]
    assert np.median(short_gaps) < 0.01 < np.median(long_gaps)


def check_determinism_and_round_trip(gen: AutoregressiveGenerator, tmp_path) -> None:
    a, b = gen.sample(64, seed=11), gen.sample(64, seed=11)
    c = gen.sample(64, seed=12)
    assert np.array_equal(a.payload, b.payload) and np.array_equal(a.iat, b.iat)
    assert not (np.array_equal(a.payload, c.payload) and np.array_equal(a.iat, c.iat))
    gen.save_pretrained(tmp_path / "model")
    loaded = load_generator(tmp_path / "model")
    assert type(loaded) is type(gen) and loaded.get_config() == gen.get_config()
    d = loaded.sample(64, seed=11)
    for name in ("n_packets", "payload", "direction", "iat"):
        assert np.array_equal(getattr(a, name), getattr(d, name)), name
    assert list(a.labels) == list(d.labels)
    assert gen.flops_per_flow(batch=16) > 0


def check_fits_real_data(gen: AutoregressiveGenerator, dataset) -> None:
    """A few epochs on a real prepared dataset: the loss falls and samples are valid, of the known classes."""
    train, val = dataset.train.first(gen.n_packets), dataset.val.first(gen.n_packets)
    gen.fit(train, val if len(val) else None,
            train_config={"epochs": 3, "batch_size": 64, "lr": 3e-3, "device": "cpu", "patience": 3})
    history = gen.training_result_.history
    assert history[-1].train_loss < 0.85 * history[0].train_loss
    flows = gen.sample(200, seed=0)
    flows.validate()
    real = train.payload[train.mask]
    assert flows.payload.max() <= real.max()
    assert set(flows.labels) <= set(dataset.classes)
    # lengths are learnt: the share of flows shorter than N is close to the real share
    real_short = np.mean(train.length < gen.n_packets)
    assert abs(np.mean(flows.length < gen.n_packets) - real_short) < 0.25
