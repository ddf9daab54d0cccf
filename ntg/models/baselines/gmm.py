"""``gmm``: per-class Gaussian mixture on the flattened normalised ``N x F`` flow matrix."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from ntg.data.schema import DEFAULT_N, FlowTable
from ntg.models.base import register
from ntg.models.baselines.common import TableGenerator
from ntg.models.flow_matrix import N_CHANNELS, FlowMatrixCodec
from ntg.models.settings import spec

COVARIANCE_TYPES = ("full", "diag")
FLOWS_PER_COMPONENT = 5  # a class gets at most one component per this many training flows


@register("gmm")
class GMMGenerator(TableGenerator):
    """scikit-learn ``GaussianMixture`` per class on the matrix of :mod:`ntg.models.flow_matrix`; samples are
    decoded like the diffusion's (direction rounded, payload clipped to the training range, presence→length).
    """

    SETTINGS: ClassVar[dict[str, Any]] = {
        "components": spec("mixture components per class (fewer for classes with few flows)", 1),
        "covariance_type": spec("scikit-learn covariance type", choices=COVARIANCE_TYPES),
        "reg_covar": spec("added to the covariance diagonals", 0, open_low=True),
    }

    def __init__(
        self,
        n_packets: int = DEFAULT_N,
        seed: int = 0,
        components: int = 8,
        covariance_type: str = "full",
        reg_covar: float = 1e-3,
    ) -> None:
        super().__init__(n_packets, seed)
        self._init_settings(locals())
        self.codec_: FlowMatrixCodec | None = None

    def _fit(self, train: FlowTable, val: FlowTable | None) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture

        train, class_id = self._start_fit(train)
        self.codec_ = FlowMatrixCodec.fit(train, self.n_packets)
        x = self.codec_.encode(train).reshape(len(train), -1).astype(np.float64)
        dim, n_classes = x.shape[1], len(self.classes_)
        weights = np.zeros((n_classes, self.components))
        means = np.zeros((n_classes, self.components, dim))
        chol = np.zeros((n_classes, self.components, dim, dim))
        for c in range(n_classes):
            xc = x[class_id == c]
            k = max(1, min(self.components, len(xc) // FLOWS_PER_COMPONENT))
            mixture = GaussianMixture(
                k, covariance_type=self.covariance_type, reg_covar=self.reg_covar, random_state=self.seed
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                mixture.fit(xc if len(xc) > 1 else np.repeat(xc, 2, axis=0))
            cov = mixture.covariances_
            cov = cov if self.covariance_type == "full" else np.stack([np.diag(v) for v in cov])
            weights[c, :k] = mixture.weights_
            means[c, :k] = mixture.means_
            chol[c, :k] = np.linalg.cholesky(cov)
        self.tables_ = {"weights": weights, "means": means, "chol": chol}

    def num_parameters(self) -> int:
        """Mixture weights, means and covariance entries actually used (lower triangle for ``full``)."""
        used = self.tables_["weights"] > 0
        dim = self.tables_["means"].shape[-1]
        per_cov = dim * (dim + 1) // 2 if self.covariance_type == "full" else dim
        return int(used.sum() * (1 + dim + per_cov))

    def _sample(self, class_ids: np.ndarray, rng_seed: int) -> FlowTable:
        assert self.codec_ is not None
        rng = np.random.default_rng(rng_seed)
        t = self.tables_
        dim = t["means"].shape[-1]
        cum = np.cumsum(t["weights"][class_ids], axis=1)
        comp = (rng.random(len(class_ids))[:, None] * cum[:, -1:] >= cum).sum(axis=1)
        comp = np.minimum(comp, (t["weights"][class_ids] > 0).sum(axis=1) - 1)
        z = rng.standard_normal((len(class_ids), dim))
        x = t["means"][class_ids, comp] + np.einsum("nij,nj->ni", t["chol"][class_ids, comp], z)
        return self.codec_.decode(x.reshape(len(class_ids), self.n_packets, N_CHANNELS))

    def learnt_metadata(self) -> dict[str, Any]:
        assert self.codec_ is not None
        return {**super().learnt_metadata(), "codec": self.codec_.to_dict()}

    def set_learnt_metadata(self, meta: dict[str, Any]) -> None:
        super().set_learnt_metadata(meta)
        self.codec_ = FlowMatrixCodec.from_dict(meta["codec"])
