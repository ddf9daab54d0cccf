"""Fidelity of synthetic biflows to real ones: static marginals, and the one-call :func:`fidelity_report`.

Static metrics (:func:`static_metrics`, a flat dict of floats; lower is better everywhere):

==========================  =======================================================================
``jsd_direction``           JSD (base 2, [0, 1]) of packet direction, pooled over all packets
``jsd_direction_posK``      the same at packet position K = 1..N only (NaN if a side has no packet)
``jsd_payload``             JSD of the binned payload length (:data:`~ntg.evaluation.distances.PAYLOAD_BINS`)
``jsd_payload_posK``        the same at position K
``w1_payload``              Wasserstein-1 of payload bytes / the real IQR (range if IQR = 0), all packets
``ks_payload``              Kolmogorov–Smirnov statistic of payload bytes, all packets
``w1_log_iat``              Wasserstein-1 of log10(iat + 1e-6) / the real IQR, packets at positions ≥ 2
``ks_log_iat``              KS statistic of log10(iat + 1e-6), positions ≥ 2
``jsd_length``              JSD of the stored flow length min(n_packets, N), one bin per value 1..N
``w1_length``               Wasserstein-1 of the stored flow length / N
==========================  =======================================================================

Temporal and joint metrics live in :mod:`ntg.evaluation.temporal` and :mod:`ntg.evaluation.joint`.
:func:`header_metrics` compares the transport headers (protocol, TCP flags, window); it is reported beside
the score, not in it, since the classifiers and the score read sizes, directions and timing only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ntg.data.schema import FlowTable
from ntg.evaluation.distances import (
    PAYLOAD_BINS,
    common_window,
    counts,
    jsd,
    ks_statistic,
    log_iat,
    payload_bin,
    wasserstein1,
)
from ntg.evaluation.joint import joint_metrics
from ntg.evaluation.temporal import temporal_metrics

MIN_CLASS_FLOWS = 20
# score part -> how it is made from the metrics (each part lies in [0, 1]; 0 is ideal)
SCORE_PARTS = (
    "jsd_direction",
    "jsd_payload",
    "w1_payload",
    "w1_log_iat",
    "jsd_length",
    "acf_mse",
    "transition_l1",
    "c2st",
)


def static_metrics(real: FlowTable, synth: FlowTable) -> dict[str, float]:
    """Per-packet marginal distances between ``real`` and ``synth`` (keys in the module docstring)."""
    real, synth, n = common_window(real, synth)
    out: dict[str, float] = {}
    rm, sm = real.mask, synth.mask
    n_bins = len(PAYLOAD_BINS)

    out["jsd_direction"] = jsd(counts(real.direction[rm], 2), counts(synth.direction[sm], 2))
    out["jsd_payload"] = jsd(
        counts(payload_bin(real.payload[rm]), n_bins), counts(payload_bin(synth.payload[sm]), n_bins)
    )
    for k in range(n):
        r, s = rm[:, k], sm[:, k]
        out[f"jsd_direction_pos{k + 1}"] = jsd(
            counts(real.direction[r, k], 2), counts(synth.direction[s, k], 2)
        )
        out[f"jsd_payload_pos{k + 1}"] = jsd(
            counts(payload_bin(real.payload[r, k]), n_bins), counts(payload_bin(synth.payload[s, k]), n_bins)
        )

    out["w1_payload"] = wasserstein1(real.payload[rm], synth.payload[sm])
    out["ks_payload"] = ks_statistic(real.payload[rm], synth.payload[sm])
    real_iat, synth_iat = log_iat(real.iat[:, 1:][rm[:, 1:]]), log_iat(synth.iat[:, 1:][sm[:, 1:]])
    out["w1_log_iat"] = wasserstein1(real_iat, synth_iat)
    out["ks_log_iat"] = ks_statistic(real_iat, synth_iat)

    out["jsd_length"] = jsd(counts(real.length - 1, n), counts(synth.length - 1, n))
    out["w1_length"] = wasserstein1(real.length, synth.length, scale=float(n))
    return out


def fidelity_metrics(real: FlowTable, synth: FlowTable, seed: int = 0) -> dict[str, Any]:
    """Static, temporal and joint metrics of one pair of tables, with their score.

    Returns ``{"n_real", "n_synth", "static": {...}, "temporal": {...}, "joint": {...}, "score",
    "score_parts": {...}}``.
    """
    static = static_metrics(real, synth)
    temporal = temporal_metrics(real, synth)
    joint = joint_metrics(real, synth, seed=seed)
    parts = score_parts(static, temporal, joint)
    return {
        "n_real": len(real),
        "n_synth": len(synth),
        "static": static,
        "temporal": temporal,
        "joint": joint,
        "score": _mean(parts.values()),
        "score_parts": parts,
    }


def score_parts(
    static: dict[str, float], temporal: dict[str, float], joint: dict[str, float]
) -> dict[str, float]:
    """The parts of the fidelity score, each in [0, 1] with 0 ideal (see :data:`SCORE_PARTS`).

    JSDs as they are; normalised W1s clipped to 1; ACF MSE = mean of the payload and log-iat ACF MSEs / 4
    (ACF values lie in [-1, 1]); transition L1 / 4 (its maximum); C2ST = |AUC − 0.5| · 2.
    """
    acf = _mean([temporal["acf_mse_payload"], temporal["acf_mse_log_iat"]])
    return {
        "jsd_direction": static["jsd_direction"],
        "jsd_payload": static["jsd_payload"],
        "w1_payload": min(static["w1_payload"], 1.0),
        "w1_log_iat": min(static["w1_log_iat"], 1.0) if np.isfinite(static["w1_log_iat"]) else float("nan"),
        "jsd_length": static["jsd_length"],
        "acf_mse": acf / 4.0,
        "transition_l1": temporal["transition_l1"] / 4.0,
        "c2st": abs(joint["c2st_auc"] - 0.5) * 2.0,
    }


def fidelity_report(
    real: FlowTable,
    synth: FlowTable,
    per_class: bool = True,
    seed: int = 0,
    min_class_flows: int = MIN_CLASS_FLOWS,
) -> dict[str, Any]:
    """Compare synthetic flows with real ones, overall and per class.

    Both tables should hold the same first N packets (the common N is used otherwise) and a ``label``.

    Returns::

        {
          "n_packets": N,
          "overall": fidelity_metrics(real, synth),            # see fidelity_metrics
          "per_class": {label: fidelity_metrics(...)},        # classes with >= min_class_flows on both sides
          "skipped_classes": {label: {"n_real": int, "n_synth": int}},
          "score": float,          # lower is better; 0 = indistinguishable
          "score_parts": {part: float},
        }

    ``score`` is the mean of the available :data:`SCORE_PARTS`. With ``per_class`` and at least one class
    evaluated it is the mean over evaluated classes of the class scores (class-conditional fidelity, what
    a conditional generator must get right), and ``score_parts`` the class-mean of each part; otherwise
    both are those of ``overall``.
    """
    real, synth, n = common_window(real, synth)
    report: dict[str, Any] = {"n_packets": n, "overall": fidelity_metrics(real, synth, seed=seed)}
    classes: dict[str, dict[str, Any]] = {}
    skipped: dict[str, dict[str, int]] = {}
    if per_class:
        real_labels, synth_labels = real.labels, synth.labels
        for label in sorted(set(real_labels) | set(synth_labels), key=str):
            r, s = real.take(real_labels == label), synth.take(synth_labels == label)
            if len(r) < min_class_flows or len(s) < min_class_flows:
                skipped[str(label)] = {"n_real": len(r), "n_synth": len(s)}
                continue
            classes[str(label)] = fidelity_metrics(r, s, seed=seed)
    report["per_class"] = classes
    report["skipped_classes"] = skipped
    report["headers"] = header_metrics(real, synth)
    if classes:
        report["score_parts"] = {p: _mean(c["score_parts"][p] for c in classes.values()) for p in SCORE_PARTS}
        report["score"] = _mean(c["score"] for c in classes.values())
    else:
        report["score_parts"] = dict(report["overall"]["score_parts"])
        report["score"] = report["overall"]["score"]
    return report


def header_metrics(real: FlowTable, synth: FlowTable) -> dict[str, float]:
    """Distances of the transport headers (lower is better; NaN where a side lacks them):

    ``tv_proto`` total variation of the flows' protocol shares (``meta["proto"]``); ``jsd_flags`` and
    ``jsd_flags_pos1`` JSD of the TCP flags byte over all packets and at the first packet; ``jsd_window`` JSD
    of the window in powers of two (0, 1, 2-3, 4-7, ...).
    """
    out = {"tv_proto": float("nan")}
    if "proto" in real.meta and "proto" in synth.meta and len(real) and len(synth):
        r, s = np.asarray(real.meta["proto"], np.int64), np.asarray(synth.meta["proto"], np.int64)
        values = np.union1d(r, s)
        share_r = np.array([(r == v).mean() for v in values])
        share_s = np.array([(s == v).mean() for v in values])
        out["tv_proto"] = float(0.5 * np.abs(share_r - share_s).sum())
    bins = 512  # the flags byte plus NS
    out["jsd_flags"] = jsd(counts(real.flags[real.mask], bins), counts(synth.flags[synth.mask], bins))
    out["jsd_flags_pos1"] = jsd(counts(real.flags[:, 0][real.mask[:, 0]], bins),
                                counts(synth.flags[:, 0][synth.mask[:, 0]], bins))

    def window_bins(table: FlowTable) -> np.ndarray:
        w = table.window[table.mask].astype(np.int64)
        return counts(np.where(w > 0, np.floor(np.log2(np.maximum(w, 1))).astype(np.int64) + 1, 0), 34)

    out["jsd_window"] = jsd(window_bins(real), window_bins(synth))
    return out


def _mean(values) -> float:
    """Mean of the finite values (NaN if none)."""
    arr = np.array([v for v in values], dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else float("nan")
