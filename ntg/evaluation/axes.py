"""One function per evaluation axis, each a step of ``evaluate`` that reads the shared :class:`AxisContext` and
returns the report's entry for its axis.

The context holds what several axes share, computed once: the synthetic set like the training split of each
split seed (TSTR trains on it, privacy compares it with the training flows, its copy rate stands beside every
TSTR figure) and the privacy figures of each split seed. An axis that raises leaves the others untouched.

Split seeds: the first is the dataset's stored split (the one the generator was trained on); the others come
from :func:`ntg.data.splits.resplit`. The given generator / synthetic file is used for the stored split only
(on another split it would have seen that split's held-out flows); with ``retrain`` a fresh generator of the
same family and settings is fitted on each other split's training flows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ntg.data.dataset import PreparedDataset
from ntg.data.schema import FlowTable
from ntg.errors import NtgError
from ntg.evaluation.sources import FitLike, Source
from ntg.evaluation.tstr import mean_std, synthetic_like, train_and_score, tstr_trtr
from ntg.models.base import Generator

FIDELITY_SEED_OFFSET = 101  # the fidelity sample is drawn apart from the TSTR sample of the same split seed


@dataclass
class AxisContext:
    """Everything the axes read; ``reference`` is the real split they score against ("test", or "val" in the
    fast profile)."""

    dataset: PreparedDataset
    source: Source
    settings: Any  # EvaluateSettings (defined in evaluate.py, which imports this module)
    n: int
    seeds: list[int]
    reference: str
    fit_like: FitLike | None
    warnings: list[str]
    tick: Callable[[], None] = lambda: None
    figure_flows: dict[str, FlowTable] = field(default_factory=dict)  # inputs of the report's figures
    _splits: dict[int, PreparedDataset] = field(default_factory=dict)
    _samplers: dict[int, Generator | FlowTable | None] = field(default_factory=dict)
    _synthetic: dict[int, FlowTable] = field(default_factory=dict)
    _privacy: dict[int, dict[str, Any]] = field(default_factory=dict)

    def split(self, seed: int) -> PreparedDataset:
        if seed == self.seeds[0]:
            return self.dataset
        if seed not in self._splits:
            from ntg.data.splits import resplit

            self._splits[seed] = resplit(self.dataset, seed)
        return self._splits[seed]

    def flows(self, seed: int) -> tuple[FlowTable, FlowTable]:
        """(training flows, reference flows) of a split seed, first ``n`` packets."""
        split = self.split(seed)
        return split.train.first(self.n), split.split(self.reference).first(self.n)

    def sampler(self, seed: int) -> Generator | FlowTable | None:
        """The stored split's source; on another split seed a refitted generator (``retrain``) or None."""
        if seed == self.seeds[0]:
            return self.source.sampler
        if seed not in self._samplers:
            fitted = None
            if self.settings.retrain and self.fit_like is not None:
                split = self.split(seed)
                fitted = self.fit_like(split.train, split.val, seed)
            self._samplers[seed] = fitted
        return self._samplers[seed]

    def synthetic(self, seed: int) -> FlowTable:
        """Synthetic flows with the class counts of the split seed's training flows (drawn once)."""
        if seed not in self._synthetic:
            self._synthetic[seed] = synthetic_like(self.sampler(seed), self.flows(seed)[0], seed=seed)
        return self._synthetic[seed]

    def privacy(self, seed: int) -> dict[str, Any]:
        """:func:`~ntg.evaluation.privacy.privacy_report` of :meth:`synthetic` (computed once per seed)."""
        if seed not in self._privacy:
            from ntg.evaluation.privacy import privacy_report

            train, reference = self.flows(seed)
            self._privacy[seed] = privacy_report(train, reference, self.synthetic(seed))
        return self._privacy[seed]


# ---------------------------------------------------------------------------------------------- the axes
def tstr_axis(ctx: AxisContext) -> dict[str, Any]:
    """TSTR and TRTR for every split seed and classifier, with the synthetic set's copy rate beside them."""
    options = ctx.settings.classifier_options
    per_seed = []
    for seed in ctx.seeds:
        train, reference = ctx.flows(seed)
        sampler = ctx.sampler(seed)
        copy_rate = ctx.privacy(seed)["copy_rate"] if sampler is not None else None
        for clf in ctx.settings.classifiers:
            opts = options.get(clf)
            if sampler is not None:
                result = tstr_trtr(train, reference, ctx.synthetic(seed), clf, ctx.n, seed, ctx.dataset.classes,
                                   opts)
            else:
                trtr = train_and_score(train, reference, clf, ctx.n, seed, ctx.dataset.classes, opts)
                result = {"tstr": None, "trtr": trtr, "ratio": None, "n_synthetic": 0,
                          "n_train": len(train), "n_test": len(reference)}
            per_seed.append({"seed": seed, "classifier": clf, **result, "copy_rate": copy_rate})
            ctx.tick()
    summary = {clf: summarise([e for e in per_seed if e["classifier"] == clf]) for clf in ctx.settings.classifiers}
    return {"classifiers": list(ctx.settings.classifiers), "split_seeds": list(ctx.seeds), "reference": ctx.reference,
            "per_seed": per_seed, "summary": summary}


def summarise(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over split seeds of one classifier's TSTR entries (TRTR also over unpaired seeds)."""
    paired = [e for e in entries if e["tstr"] is not None]

    def per_class(kind: str, rows: list[dict[str, Any]]) -> dict[str, float]:
        classes = sorted({c for e in rows for c in e[kind]["per_class_f1"]})
        return {c: float(np.mean([e[kind]["per_class_f1"][c] for e in rows if c in e[kind]["per_class_f1"]]))
                for c in classes}

    return {
        "tstr_macro_f1": mean_std([e["tstr"]["macro_f1"] for e in paired]),
        "trtr_macro_f1": mean_std([e["trtr"]["macro_f1"] for e in paired]),
        "trtr_macro_f1_all_seeds": mean_std([e["trtr"]["macro_f1"] for e in entries]),
        "ratio": mean_std([e["ratio"] for e in paired]),
        "tstr_accuracy": mean_std([e["tstr"]["accuracy"] for e in paired]),
        "tstr_macro_f1_supported": mean_std([e["tstr"]["macro_f1_supported"] for e in paired]),
        "trtr_macro_f1_supported": mean_std([e["trtr"]["macro_f1_supported"] for e in paired]),
        "copy_rate": mean_std([e["copy_rate"] for e in paired]),
        "per_class_f1_tstr": per_class("tstr", paired),
        "per_class_f1_trtr": per_class("trtr", paired or entries),
    }


def fidelity_axis(ctx: AxisContext) -> dict[str, Any]:
    """Fidelity of synthetic flows with the reference split's class counts, against the reference flows."""
    from ntg.evaluation.fidelity import fidelity_report

    seed = ctx.seeds[0]
    _, reference = ctx.flows(seed)
    synth = synthetic_like(ctx.source.sampler, reference, seed=seed + FIDELITY_SEED_OFFSET)
    details = fidelity_report(reference, synth, per_class=True, seed=0)
    ctx.figure_flows.update(reference=reference, synthetic=synth)
    return {"reference": ctx.reference, "n_real": len(reference), "n_synthetic": len(synth),
            "score": details["score"], "score_parts": details["score_parts"], "details": details}


def privacy_axis(ctx: AxisContext) -> dict[str, Any]:
    """Copies and distances to the training flows of the stored split's synthetic set, beside the natural level
    of the reference flows, and the search's privacy gate (:func:`ntg.evaluation.fast.privacy_gate`)."""
    from ntg.evaluation.fast import privacy_gate

    seed = ctx.seeds[0]
    details = ctx.privacy(seed)
    keys = ("copy_rate", "natural_copy_rate", "copy_excess", "flag_memorisation")
    return {"reference": "train", "holdout": ctx.reference, "n_train": details["n_train"],
            "n_test": details["n_test"], "n_synthetic": details["n_synth"], **{k: details[k] for k in keys},
            "privacy_ok": privacy_gate(details), "details": details}


def augmentation_axis(ctx: AxisContext) -> dict[str, Any]:
    """Low-data augmentation on the stored split (:func:`ntg.evaluation.augmentation.run_augmentation`)."""
    from ntg.evaluation.augmentation import run_augmentation

    s = ctx.settings
    train, reference = ctx.flows(ctx.seeds[0])
    fit_like = ctx.fit_like

    def fraction_generator(subset: FlowTable, seed: int) -> Generator:
        return fit_like(subset, None, seed)

    return run_augmentation(
        train, reference, synthetic_source=ctx.source.sampler,
        fraction_generator=fraction_generator if fit_like is not None and s.augmentation_refit else None,
        fractions=s.fractions, seeds=tuple(range(s.augmentation_seeds)), classifier="rf", n_packets=ctx.n,
        progress=s.progress, classifier_options=s.classifier_options.get("rf"),
    )


def cost_axis(ctx: AxisContext) -> dict[str, Any] | None:
    """Parameters, FLOPs, training time and sampling speed of the generator (None for a synthetic file)."""
    if ctx.source.generator is None:
        ctx.warnings.append("cost axis skipped: it needs a generator, not a synthetic file")
        return None
    from ntg.evaluation.cost import measure_cost

    s = ctx.settings
    return measure_cost(ctx.source.generator, ctx.source.run_dir, n_flows=s.cost_flows, batch=s.cost_batch,
                        seed=ctx.seeds[0])


# in the order they run: cheap and widely needed first, so a failing or interrupted evaluation has kept the most
AXIS_STEPS: dict[str, Callable[[AxisContext], dict[str, Any] | None]] = {
    "fidelity": fidelity_axis,
    "privacy": privacy_axis,
    "cost": cost_axis,
    "tstr": tstr_axis,
    "augmentation": augmentation_axis,
}


def split_seeds(dataset: PreparedDataset, k: int) -> list[int]:
    """The stored split seed first, then ``k - 1`` others."""
    if k < 1:
        raise NtgError(f"--split-seeds must be at least 1, not {k}")
    stored = int(dataset.meta.get("split_seed", 0))
    return [stored] + [s for s in range(k + 1) if s != stored][: k - 1]


def axis_order(axes: Sequence[str]) -> list[str]:
    """``axes`` in the order of :data:`AXIS_STEPS`."""
    return [a for a in AXIS_STEPS if a in axes]
