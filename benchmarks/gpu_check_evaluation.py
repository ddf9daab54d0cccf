"""GPU check of the evaluation code paths that differ on CUDA (run on a CUDA machine; prints JSON).

* :func:`ntg.evaluation.cost.measure_cost` of a transformer living on ``cuda``: memory is read with
  ``torch.cuda.max_memory_allocated`` (``memory_method == "cuda_max_allocated"``), throughput is measured
  after ``torch.cuda.synchronize``;
* the 1-D CNN classifier trained on ``cuda`` against the same classifier on CPU (macro-F1 of both).

Uses constructed four-class flows (no dataset needed).

    python benchmarks/gpu_check_evaluation.py [--out results/gpu_check_evaluation.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ntg.data.schema import FlowTable  # noqa: E402
from ntg.evaluation.classifiers import make_classifier  # noqa: E402
from ntg.evaluation.cost import measure_cost  # noqa: E402
from ntg.evaluation.tstr import classification_scores  # noqa: E402
from ntg.models import create_generator  # noqa: E402


def four_class_flows(n_per_class: int, seed: int, p: int = 10) -> FlowTable:
    """Classes differ in payload level, direction pattern and timing scale."""
    rng = np.random.default_rng(seed)
    tables = []
    for k in range(4):
        length = rng.integers(3, p + 1, size=n_per_class)
        mask = np.arange(p)[None, :] < length[:, None]
        payload = (rng.normal(100 + 200 * k, 40, (n_per_class, p)).clip(0) * mask).astype(int)
        direction = ((np.arange(p)[None, :] + k) % 2) * mask
        iat = rng.exponential(0.01 * (k + 1), (n_per_class, p)) * mask
        iat[:, 0] = 0.0
        zeros = np.zeros((n_per_class, p), dtype=int)
        tables.append(FlowTable(n_packets=length, payload=payload, direction=direction, iat=iat,
                                flags=zeros, window=zeros, meta=pd.DataFrame({"label": [f"c{k}"] * n_per_class})))
    return FlowTable.concat(tables)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    assert torch.cuda.is_available(), "needs a CUDA device"
    train, test = four_class_flows(1500, 0), four_class_flows(300, 1)
    out: dict = {"device_name": torch.cuda.get_device_name(0)}

    gen = create_generator("transformer")
    t0 = time.perf_counter()
    gen.fit(train, None, train_config={"epochs": 2, "batch_size": 256, "device": "cuda", "bf16": True})
    out["transformer_fit_s"] = time.perf_counter() - t0
    cost = measure_cost(gen, None, n_flows=4096, batch=1024, seed=0)
    out["cost_transformer_cuda"] = cost
    assert cost["device"] == "cuda" and cost["memory_method"] == "cuda_max_allocated"
    assert cost["peak_memory_bytes"] > 0 and cost["sampling_flows_per_s"] > 0

    for device in ("cuda", "cpu"):
        t0 = time.perf_counter()
        clf = make_classifier("cnn", n_packets=10, seed=0, device=device).fit(train)
        pred = clf.predict(test)
        out[f"cnn_{device}"] = {"macro_f1": classification_scores(test.labels, pred)["macro_f1"],
                                "fit_predict_s": time.perf_counter() - t0}
    assert abs(out["cnn_cuda"]["macro_f1"] - out["cnn_cpu"]["macro_f1"]) < 0.05
    text = json.dumps(out, indent=2, default=str)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
