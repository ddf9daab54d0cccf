"""Test helpers for the training tests: a tiny neural generator and a small prepared dataset of real flows.

``TinyMLP`` (family ``tiny-mlp``) maps a class embedding through a small MLP with dropout to the flow
matrix (log payload, direction, log IAT per packet) and is trained with MSE; it exists so the training
loop, runs and Ray tests do not depend on the real families' timing. It has an embedding, a LayerNorm
and biases (no weight decay) and dropout (randomness that resumption must reproduce).

The dataset comes from the real CESNET-MINER22 PPI sample in the shared datasets folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ntg.data.schema import FlowTable
from ntg.models.base import register
from ntg.models.neural import NeuralGenerator
from ntg.utils.io import write_json

CESNET_PPI = "cesnet-miner22/CESNET-MINER22-PPI/input/miner22-ppi-sampled.csv"


class _TinyNet(nn.Module):
    def __init__(self, n_classes: int, n_packets: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_classes, hidden)
        self.mlp = nn.Sequential(
            nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, 3 * n_packets),
        )

    def predict(self, label: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.embed(label))

    def forward(self, label: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return ((self.predict(label) - x) ** 2).mean()


@register("tiny-mlp")
class TinyMLP(NeuralGenerator):
    def __init__(self, n_packets: int = 10, seed: int = 0, hidden: int = 16, dropout: float = 0.1) -> None:
        super().__init__(n_packets=n_packets, seed=seed)
        self.hidden = hidden
        self.dropout = dropout

    def prepare(self, train: FlowTable) -> None:
        self._learn_classes(train)
        self.module = self.build_module()

    def build_module(self) -> nn.Module:
        assert self.classes_ is not None
        return _TinyNet(len(self.classes_), self.n_packets, self.hidden, self.dropout)

    def encode(self, flows: FlowTable) -> dict[str, torch.Tensor]:
        flows = flows.first(self.n_packets)
        features = [np.log1p(flows.payload) / 8.0, flows.direction.astype(np.float64)]
        x = np.concatenate([*features, np.log1p(flows.iat * 1e3) / 10.0], axis=1)
        return {
            "label": torch.as_tensor(self.class_ids(flows.labels)),
            "x": torch.tensor(x, dtype=torch.float32),
        }

    def _sample(self, class_ids: np.ndarray, rng_seed: int) -> FlowTable:
        assert self.module is not None
        p = self.n_packets
        self.module.eval()
        g = torch.Generator().manual_seed(rng_seed)
        with torch.no_grad():
            mean = self.module.predict(torch.as_tensor(class_ids, device=self.device)).float().cpu()
        x = (mean + 0.05 * torch.randn(mean.shape, generator=g)).numpy()
        payload = np.clip(np.expm1(x[:, :p] * 8.0), 0, 65535).round().astype(np.int32)
        direction = (x[:, p : 2 * p] > 0.5).astype(np.int8)
        iat = np.clip(np.expm1(x[:, 2 * p :] * 10.0), 0, None) / 1e3
        iat[:, 0] = 0.0
        n = len(class_ids)
        return FlowTable(
            n_packets=np.full(n, p), payload=payload, direction=direction, iat=iat,
            flags=np.zeros((n, p), np.int16), window=np.zeros((n, p), np.int32),
        )


def cesnet_flows(datasets_root: Path, limit: int | None = None) -> FlowTable:
    """Real flows of the CESNET-MINER22 PPI sample (IPT in ms, DIR ±1, SIZE in bytes) as a FlowTable."""
    frame = pd.read_csv(datasets_root / CESNET_PPI, skipinitialspace=True)
    frame.columns = [c.strip() for c in frame.columns]
    if limit is not None:
        frame = frame.sample(n=min(limit, len(frame)), random_state=0).reset_index(drop=True)
    ipt = frame[[f"IPT_{i}" for i in range(1, 31)]].to_numpy(np.float64)
    dirs = frame[[f"DIR_{i}" for i in range(1, 31)]].to_numpy(np.int64)
    size = frame[[f"SIZE_{i}" for i in range(1, 31)]].to_numpy(np.int64)
    length = (dirs != 0).sum(axis=1)
    keep = length >= 1
    mask = np.arange(30)[None, :] < length[:, None]
    n = int(keep.sum())
    pad = np.zeros((n, 2), np.int64)
    label_col = [c for c in frame.columns if c.lower() == "label"][0]
    return FlowTable(
        n_packets=length[keep],
        payload=np.concatenate([np.where(mask, size, 0)[keep], pad], axis=1),
        direction=np.concatenate([np.where(mask & (dirs == -1), 1, 0)[keep], pad], axis=1),
        iat=np.concatenate([np.where(mask, ipt / 1e3, 0.0)[keep], pad], axis=1),
        flags=np.zeros((n, 32), np.int16),
        window=np.zeros((n, 32), np.int32),
        meta=pd.DataFrame({"label": frame[label_col].astype(str).str.strip().to_numpy()[keep]}),
    )


def write_prepared_dataset(flows: FlowTable, out: Path, seed: int = 0) -> Path:
    """A minimal prepared dataset (flows.parquet + meta.json) with a seeded 70/15/15 split of ``flows``."""
    rng = np.random.default_rng(seed)
    split = rng.choice(["train", "val", "test"], size=len(flows), p=[0.7, 0.15, 0.15])
    meta = flows.meta.copy()
    meta["split"] = split
    meta["capture"] = "miner22-ppi-sampled.csv"
    flows = FlowTable(
        flows.n_packets, flows.payload, flows.direction, flows.iat, flows.flags, flows.window, meta=meta
    )
    out.mkdir(parents=True, exist_ok=True)
    flows.write(out / "flows.parquet")
    classes = sorted(set(flows.labels.astype(str)))
    write_json(out / "meta.json", {
        "schema_version": 1,
        "source": "cesnet-miner22 (test subset)",
        "checksum": "test",
        "classes": [{"name": c, "flows": int((flows.labels == c).sum())} for c in classes],
    })
    return out
