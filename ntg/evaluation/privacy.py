"""Privacy: does a generator hand back its training flows?

:func:`privacy_report` compares synthetic flows with the training split, next to what fresh real flows
(the test split, never seen in training) naturally do. Returns a flat dict:

============================  ==============================================================================
``n_train/n_test/n_synth``    flow counts (all tables cut to their common N first)
``dcr_median``, ``dcr_p5``    median and 5th percentile of the synthetic flows' distance to the closest
                              training record (Euclidean, :func:`~ntg.evaluation.joint.flow_features`
                              standardised with the training statistics)
``dcr_test_median/_p5``       the same for the real test flows (the natural level)
``dcr_share_below_test_p5``   share of synthetic flows at or below the test flows' 5th-percentile DCR
                              (≈ 0.05 for a fresh sample, more where real flows repeat exactly since ties
                              at 0 count — 0.2 on iot-sentinel —, 1 for copies)
``copy_rate``                 share of synthetic flows that exactly copy some training flow
``natural_copy_rate``         share of real test flows that exactly copy some training flow
``copy_excess``               copy_rate − natural_copy_rate
``copy_threshold``            the excess above which memorisation is flagged
``flag_memorisation``         bool: copy_excess > copy_threshold
``dcr_quantiles``             ``{"synthetic", "holdout"}``: the 0, 1, ..., 100th percentiles of both DCRs (the
                              report's DCR figure draws them)
============================  ==============================================================================

*Exact copy* (:func:`flow_signatures`): same stored length min(n_packets, N), and at every stored position
the same direction, the same payload length, and the same inter-arrival time after rounding to
``iat_resolution`` seconds (default 1 ms: a generator that memorises timing up to its own quantisation is
still caught). Short fixed-shape flows (DNS, NTP, DHCP) repeat in real traffic, hence the natural rate.

*Threshold*: ``max(0.05, 3·SE)`` with ``SE = sqrt(p(1 − p)(1/n_synth + 1/n_test))`` at the pooled rate p —
flagged only when the excess is both practically large (5 points) and well beyond sampling noise. Resampling
the training flows (a bootstrap "generator") gives copy_rate 1 and is flagged unless the natural rate is
itself above 0.95.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neighbors import NearestNeighbors

from ntg.data.schema import FlowTable
from ntg.evaluation.distances import common_window
from ntg.evaluation.joint import feature_scaler, raw_flow_features

IAT_RESOLUTION = 1e-3  # seconds
MIN_EXCESS = 0.05
EXCESS_SIGMAS = 3.0
QUANTILES = np.arange(101)


def flow_signatures(flows: FlowTable, iat_resolution: float = IAT_RESOLUTION) -> np.ndarray:
    """One hashable byte string per flow: length, directions, payloads, rounded iats of stored packets."""
    mask = flows.mask
    iat = np.where(mask, np.rint(flows.iat / iat_resolution), 0).astype(np.int64)
    rows = np.concatenate(
        [
            flows.length[:, None].astype(np.int64),
            np.where(mask, flows.direction, 0).astype(np.int64),
            np.where(mask, flows.payload, 0).astype(np.int64),
            iat,
        ],
        axis=1,
    )
    rows = np.ascontiguousarray(rows)
    return np.array([row.tobytes() for row in rows], dtype=object)


def copy_mask(flows: FlowTable, train: FlowTable, iat_resolution: float = IAT_RESOLUTION) -> np.ndarray:
    """Boolean per flow of ``flows``: True where it exactly copies some flow of ``train``."""
    known = set(flow_signatures(train, iat_resolution))
    return np.array([s in known for s in flow_signatures(flows, iat_resolution)], dtype=bool)


def distance_to_closest_record(flows: FlowTable, train: FlowTable) -> np.ndarray:
    """Euclidean distance from each flow to its nearest training flow (features standardised on train)."""
    mean, std = feature_scaler(train)
    index = NearestNeighbors(n_neighbors=1, algorithm="kd_tree").fit((raw_flow_features(train) - mean) / std)
    distances, _ = index.kneighbors((raw_flow_features(flows) - mean) / std)
    return distances[:, 0]


def memorisation_threshold(copy_rate: float, natural_rate: float, n_synth: int, n_test: int) -> float:
    """Excess copy rate above which memorisation is flagged (see the module docstring)."""
    n_s, n_t = max(n_synth, 1), max(n_test, 1)
    pooled = (copy_rate * n_s + natural_rate * n_t) / (n_s + n_t)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_s + 1 / n_t))
    return float(max(MIN_EXCESS, EXCESS_SIGMAS * se))


def privacy_report(
    train: FlowTable, test: FlowTable, synth: FlowTable, iat_resolution: float = IAT_RESOLUTION
) -> dict[str, Any]:
    """DCR and exact-copy statistics of ``synth`` against ``train``, next to ``test``'s natural levels."""
    train, synth, n = common_window(train, synth)
    train, test, n = common_window(train, test)
    synth = synth.first(n) if synth.max_packets > n else synth
    dcr = distance_to_closest_record(synth, train)
    dcr_test = distance_to_closest_record(test, train)
    test_p5 = float(np.percentile(dcr_test, 5))
    copy_rate = float(copy_mask(synth, train, iat_resolution).mean())
    natural = float(copy_mask(test, train, iat_resolution).mean())
    threshold = memorisation_threshold(copy_rate, natural, len(synth), len(test))
    return {
        "n_train": len(train),
        "n_test": len(test),
        "n_synth": len(synth),
        "dcr_median": float(np.median(dcr)),
        "dcr_p5": float(np.percentile(dcr, 5)),
        "dcr_test_median": float(np.median(dcr_test)),
        "dcr_test_p5": test_p5,
        "dcr_share_below_test_p5": float(np.mean(dcr <= test_p5)),
        "copy_rate": copy_rate,
        "natural_copy_rate": natural,
        "copy_excess": copy_rate - natural,
        "copy_threshold": threshold,
        "flag_memorisation": bool(copy_rate - natural > threshold),
        "dcr_quantiles": {"synthetic": np.percentile(dcr, QUANTILES).tolist(),
                          "holdout": np.percentile(dcr_test, QUANTILES).tolist()},
    }
