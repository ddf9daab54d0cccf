"""Statistical distances shared by the fidelity and privacy metrics.

Conventions used throughout :mod:`ntg.evaluation`:

* Jensen–Shannon divergence is taken in base 2, so it lies in ``[0, 1]``: 0 for equal distributions, 1 for
  disjoint supports.
* Wasserstein-1 distances are *normalised* by a scale of the real sample (:func:`robust_scale`): its
  interquartile range, or its full range when the IQR is 0, or 1 when the sample is constant.
* Payload lengths are binned with :data:`PAYLOAD_BINS` (see :func:`payload_bin`).
* Inter-arrival times are compared on ``log10(iat + IAT_FLOOR)`` (:func:`log_iat`).
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon, pdist

from ntg.data.schema import FlowTable
from ntg.errors import NtgError

IAT_FLOOR = 1e-6  # seconds: the schema's resolution; log10(0 + IAT_FLOOR) = -6
# Left edges of the payload-length bins: 0 | 1–64 | 65–128 | 129–256 | 257–512 | 513–1024 | 1025–1460 |
# 1461–1500 | 1501–2048 | 2049–4096 | 4097–8192 | 8193–16384 | 16385–65535 (and above, for robustness).
PAYLOAD_BINS = np.array([0, 1, 65, 129, 257, 513, 1025, 1461, 1501, 2049, 4097, 8193, 16385])


def payload_bin(payload: np.ndarray) -> np.ndarray:
    """Index of the :data:`PAYLOAD_BINS` bin of each payload length (negative lengths fall in bin 0)."""
    return np.clip(np.searchsorted(PAYLOAD_BINS, np.asarray(payload), side="right") - 1, 0, None)


def log_iat(iat: np.ndarray) -> np.ndarray:
    """``log10(iat + IAT_FLOOR)``: inter-arrival seconds on a log scale, finite at 0."""
    return np.log10(np.clip(np.asarray(iat, dtype=np.float64), 0.0, None) + IAT_FLOOR)


def counts(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Histogram of integer ``values`` in ``range(n_bins)``."""
    return np.bincount(np.asarray(values, dtype=np.int64).ravel(), minlength=n_bins)[:n_bins]


def jsd(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence (base 2, in [0, 1]) of two histograms (counts or probabilities): the square
    of :func:`scipy.spatial.distance.jensenshannon` (a distance). NaN when either histogram is empty."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    return float(np.clip(jensenshannon(p, q, base=2) ** 2, 0.0, 1.0))


def robust_scale(real: np.ndarray) -> float:
    """Normaliser of a real sample: IQR, else range (max − min) when the IQR is 0, else 1."""
    real = np.asarray(real, dtype=np.float64)
    if real.size == 0:
        return 1.0
    q1, q3 = np.percentile(real, [25, 75])
    if q3 - q1 > 0:
        return float(q3 - q1)
    span = float(real.max() - real.min())
    return span if span > 0 else 1.0


def wasserstein1(real: np.ndarray, synth: np.ndarray, scale: float | None = None) -> float:
    """Wasserstein-1 distance / ``scale`` (default :func:`robust_scale` of ``real``); NaN if empty."""
    real = np.asarray(real, dtype=np.float64).ravel()
    synth = np.asarray(synth, dtype=np.float64).ravel()
    if real.size == 0 or synth.size == 0:
        return float("nan")
    scale = robust_scale(real) if scale is None else scale
    return float(stats.wasserstein_distance(real, synth) / scale)


def ks_statistic(real: np.ndarray, synth: np.ndarray) -> float:
    """Two-sample Kolmogorov–Smirnov statistic (sup distance of the ECDFs, in [0, 1]); NaN if empty."""
    real = np.asarray(real, dtype=np.float64).ravel()
    synth = np.asarray(synth, dtype=np.float64).ravel()
    if real.size == 0 or synth.size == 0:
        return float("nan")
    return float(stats.ks_2samp(real, synth).statistic)


def subsample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most ``size`` of ``n`` rows, without replacement (all rows if n <= size)."""
    if n <= size:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size, replace=False))


def median_bandwidth(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, max_points: int = 1000) -> float:
    """Median heuristic: the median pairwise distance among (at most ``max_points`` of) the pooled points."""
    pooled = np.concatenate([x, y])
    pooled = pooled[subsample(len(pooled), max_points, rng)]
    d = pdist(pooled)
    positive = d[d > 0]
    return float(np.median(positive)) if positive.size else 1.0


def mmd2_rbf(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    """Unbiased MMD² with ``k(a, b) = exp(-|a - b|² / (2 bandwidth²))`` (may be slightly below 0). The kernel is
    scikit-learn's ``rbf_kernel``; the estimator (diagonals left out) is ours: neither scipy nor scikit-learn
    has an MMD."""
    from sklearn.metrics.pairwise import rbf_kernel

    m, n = len(x), len(y)
    if m < 2 or n < 2:
        return float("nan")
    gamma = 1.0 / (2.0 * bandwidth**2)
    kxx, kyy, kxy = rbf_kernel(x, x, gamma=gamma), rbf_kernel(y, y, gamma=gamma), rbf_kernel(x, y, gamma=gamma)
    xx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * kxy.mean())


def common_window(real: FlowTable, synth: FlowTable) -> tuple[FlowTable, FlowTable, int]:
    """Both tables cut to their common number of packet slots N (the smaller of the two); returns N too."""
    if len(real) == 0 or len(synth) == 0:
        raise NtgError(
            f"cannot compare flow tables of {len(real)} real and {len(synth)} synthetic flows; "
            "both need at least one flow (check the class filter or the generated sample size)"
        )
    n = min(real.max_packets, synth.max_packets)
    if real.max_packets > n:
        real = real.first(n)
    if synth.max_packets > n:
        synth = synth.first(n)
    return real, synth, n
