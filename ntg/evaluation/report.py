"""The evaluation report: ``report.json`` (stable keys), ``report.md`` (tables) and PNG figures.

``report.json`` (schema :data:`REPORT_SCHEMA_VERSION`) has exactly the top-level keys
:data:`TOP_LEVEL_KEYS`; an axis that was not run is ``null``; an axis that ran has at least the keys of
:data:`AXIS_KEYS`:

* ``schema_version`` int; ``created`` ISO time (UTC); ``ntg_version``;
* ``data``: prepared dataset folder, classes, flows per split, stored split seed;
* ``source``: ``kind`` ("generator" | "synthetic"), ``path``, ``family``, ``is_bootstrap``, ``hparams``;
* ``settings``: axes, n_packets, split seeds, retrain, classifiers, augmentation fractions/seeds;
* ``headline``: one number per axis (see :data:`HEADLINE_KEYS`; null when the axis was not run);
* ``fidelity``: ``reference`` (which real split), sizes, ``score`` (lower is better), ``score_parts``,
  ``details`` (the whole :func:`ntg.evaluation.fidelity.fidelity_report`);
* ``tstr``: ``classifiers``, ``split_seeds``, ``per_seed`` (one entry per split seed and classifier:
  ``tstr`` / ``trtr`` scores from :func:`ntg.evaluation.tstr.classification_scores`, ``ratio``,
  ``copy_rate``), ``summary`` (per classifier: mean ± std of TSTR / TRTR macro-F1, ratio, copy rate,
  per-class F1 means);
* ``augmentation``: the dict of :func:`ntg.evaluation.augmentation.run_augmentation`;
* ``privacy``: ``copy_rate``, ``natural_copy_rate``, ``copy_excess``, ``flag_memorisation``, sizes,
  ``details`` (the whole :func:`ntg.evaluation.privacy.privacy_report`);
* ``cost``: :func:`ntg.evaluation.cost.measure_cost`;
* ``figures``: figure name → path relative to the report folder (drawn by
  :func:`ntg.evaluation.figures.write_figures`, captioned in ``report.md``); ``warnings``: list of strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ntg.evaluation.figures import (  # noqa: F401  (re-exported: evaluate.write_all and compare call them here)
    caption,
    plot_augmentation,
    plot_confusion,
    plot_dcr,
    plot_distributions,
    plot_fidelity_vs_cost,
    write_figures,
)
from ntg.evaluation.options import AXES

REPORT_SCHEMA_VERSION = 1
TOP_LEVEL_KEYS = (
    "schema_version",
    "created",
    "ntg_version",
    "data",
    "source",
    "settings",
    "headline",
    "fidelity",
    "tstr",
    "augmentation",
    "privacy",
    "cost",
    "figures",
    "warnings",
)
AXIS_KEYS: dict[str, tuple[str, ...]] = {
    "fidelity": ("reference", "n_real", "n_synthetic", "score", "score_parts", "details"),
    "tstr": ("classifiers", "split_seeds", "per_seed", "summary"),
    "augmentation": (
        "classifier", "fractions", "methods", "seeds", "min_target", "target_rule", "rows", "skipped",
    ),
    "privacy": (
        "reference", "n_train", "n_test", "n_synthetic", "copy_rate", "natural_copy_rate", "copy_excess",
        "flag_memorisation", "details",
    ),
    "cost": (
        "family", "parameters", "flops_per_flow", "train_wall_s", "sampling_flows_per_s", "sampling_wall_s",
        "sampling_batch", "sampling_flows", "peak_memory_bytes", "memory_method", "device", "sample_precision",
    ),
}
HEADLINE_KEYS = (
    "fidelity_score",
    "tstr_macro_f1",
    "trtr_macro_f1",
    "tstr_trtr_ratio",
    "copy_rate",
    "augmentation_gain",
    "augmentation_fraction",
    "parameters",
    "sampling_flows_per_s",
)
TSTR_SUMMARY_KEYS = (
    "tstr_macro_f1",
    "trtr_macro_f1",
    "trtr_macro_f1_all_seeds",
    "ratio",
    "tstr_accuracy",
    "tstr_macro_f1_supported",
    "trtr_macro_f1_supported",
    "copy_rate",
    "per_class_f1_tstr",
    "per_class_f1_trtr",
)
BOOTSTRAP_NOTE = (
    "**bootstrap baseline**: it replays real training flows, so its scores are a reference for what copying "
    "the training data achieves, not a generator's result (see the copy rate)."
)


# ---------------------------------------------------------------------------------------------- headline
def headline(report: dict[str, Any], classifier: str = "rf") -> dict[str, Any]:
    """One figure per axis (keys :data:`HEADLINE_KEYS`); TSTR figures are those of ``classifier``."""
    out: dict[str, Any] = dict.fromkeys(HEADLINE_KEYS)
    if report.get("fidelity"):
        out["fidelity_score"] = report["fidelity"]["score"]
    if report.get("tstr"):
        summary = report["tstr"]["summary"].get(classifier) or next(iter(report["tstr"]["summary"].values()))
        out["tstr_macro_f1"] = summary["tstr_macro_f1"]
        out["trtr_macro_f1"] = summary["trtr_macro_f1"]
        out["tstr_trtr_ratio"] = summary["ratio"]
        out["copy_rate"] = summary["copy_rate"]
    if report.get("privacy") and out["copy_rate"] is None:
        out["copy_rate"] = {"mean": report["privacy"]["copy_rate"], "std": None, "n": 1}
    if report.get("augmentation"):
        aug = report["augmentation"]
        smallest = min(aug["fractions"])
        for row in aug["rows"]:
            if row["fraction"] == smallest and row["method"] == "real+synthetic_full":
                out["augmentation_gain"] = row["gain"]
                out["augmentation_fraction"] = smallest
    if report.get("cost"):
        out["parameters"] = report["cost"]["parameters"]
        out["sampling_flows_per_s"] = report["cost"]["sampling_flows_per_s"]
    return out


# ---------------------------------------------------------------------------------------------- markdown
def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict) and "mean" in value:
        if value["mean"] is None:
            return "—"
        std = value.get("std")
        n = value.get("n")
        if std is None or n in (None, 1):
            return f"{value['mean']:.{digits}f}"
        return f"{value['mean']:.{digits}f} ± {std:.{digits}f} (n={n})"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            return "—"
        if abs(value) >= 1e3:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}" if value and abs(value) < 1e-3 else f"{value:.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) if not isinstance(v, str) else v for v in row) + " |" for row in rows]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """``report.md``: headline per axis, then one section per axis that ran (TSTR with the copy rate beside
    it, augmentation, fidelity, privacy with the DCR figure, cost), each with its figures and their captions.
    Axes that did not run have no row and no section."""
    source = report["source"]
    name = source.get("family") or source["kind"]
    lines = [f"# ntg evaluation: {name} on {Path(report['data']['path']).name}", ""]
    lines.append(f"Source: {source['kind']} `{source.get('path')}`; data: `{report['data']['path']}`; "
                 f"first {report['settings']['n_packets']} packets; created {report['created']}.")
    if source.get("is_bootstrap"):
        lines += ["", "> " + BOOTSTRAP_NOTE]
    for warning in report.get("warnings") or []:
        lines += ["", f"> note: {warning}"]
    lines += ["", "## Headline", ""]
    lines += _table(["axis", "metric", "value", "copy rate"], _headline_rows(report))
    figures = dict(report.get("figures") or {})
    if report.get("tstr"):
        lines += _tstr_section(report["tstr"], source.get("is_bootstrap", False))
        lines += _figure_lines(report, figures, lambda f: f.startswith("confusion_"))
    if report.get("augmentation"):
        lines += _augmentation_section(report["augmentation"])
        lines += _figure_lines(report, figures, lambda f: f == "augmentation")
    if report.get("fidelity"):
        lines += _fidelity_section(report["fidelity"])
        lines += _figure_lines(report, figures, lambda f: f == "distributions")
    if report.get("privacy"):
        lines += _privacy_section(report["privacy"])
        lines += _figure_lines(report, figures, lambda f: f == "dcr")
    if report.get("cost"):
        c = report["cost"]
        lines += ["", "## Cost", ""]
        lines += _table(
            ["parameters", "FLOPs/flow", "training s", "sampling flows/s",
             f"peak memory ({c['memory_method']})", "device", "sampling precision"],
            [[c["parameters"], c["flops_per_flow"], c["train_wall_s"], c["sampling_flows_per_s"],
              f"{c['peak_memory_bytes'] / 2**20:.1f} MiB", c["device"], c.get("sample_precision") or "-"]],
        )
    if figures:
        lines += ["", "## Figures"]
        lines += _figure_lines(report, figures, lambda f: True)
    return "\n".join(lines) + "\n"


def _headline_rows(report: dict[str, Any]) -> list[list[Any]]:
    """One row per headline figure of the axes that ran."""
    h = report["headline"]
    copy = _fmt(h["copy_rate"]) if h["copy_rate"] is not None else ""
    at = f" at {h['augmentation_fraction']:.0%} real" if h["augmentation_fraction"] else ""
    rows = {
        "fidelity": [["fidelity", "score (lower is better)", h["fidelity_score"], ""]],
        "tstr": [["tstr", "TSTR macro-F1 (RF)", h["tstr_macro_f1"], copy],
                 ["tstr", "TRTR macro-F1 (RF)", h["trtr_macro_f1"], ""],
                 ["tstr", "TSTR / TRTR", h["tstr_trtr_ratio"], copy]],
        "augmentation": [["augmentation", "gain of real+synthetic" + at, h["augmentation_gain"], ""]],
        "privacy": [["privacy", "copy rate", h["copy_rate"], ""]],
        "cost": [["cost", "parameters", h["parameters"], ""],
                 ["cost", "sampling flows/s", h["sampling_flows_per_s"], ""]],
    }
    return [row for axis in AXES if report.get(axis) for row in rows[axis]]


def _figure_lines(report: dict[str, Any], figures: dict[str, str], wanted) -> list[str]:
    """Markdown for the figures whose names ``wanted`` accepts, each with its caption; removes them from
    ``figures`` so that each figure appears once."""
    lines = []
    for name in [f for f in figures if wanted(f)]:
        path = figures.pop(name)
        lines += ["", f"![{name}]({path})", "", f"*Figure ({name}): {caption(name, report)}*"]
    return lines


def _fidelity_section(fid: dict[str, Any]) -> list[str]:
    lines = ["", "## Fidelity", "",
             f"Real reference: {fid['reference']} split ({fid['n_real']} flows) vs "
             f"{fid['n_synthetic']} synthetic flows; every part in [0, 1], 0 ideal.", ""]
    parts = [[k, v] for k, v in fid["score_parts"].items()]
    lines += _table(["part", "value"], [*parts, ["**score**", fid["score"]]])
    headers = fid["details"].get("headers")
    if headers:
        lines += ["", "Transport headers (beside the score, not in it): "
                  + ", ".join(f"{k} {_fmt(v)}" for k, v in headers.items()) + "."]
    return lines


def _privacy_section(p: dict[str, Any]) -> list[str]:
    """Copy rates and the distance to closest record (DCR) side by side: a low copy rate with synthetic DCRs
    far below the held-out ones is still memorisation (near-copies)."""
    d = p.get("details") or {}
    lines = ["", "## Privacy", ""]
    lines += _table(
        ["copy rate", "natural copy rate", "copy excess", "memorisation flagged",
         "DCR median (synthetic)", "DCR median (real held-out)", "synthetic at or below held-out DCR p5"],
        [[p["copy_rate"], p["natural_copy_rate"], p["copy_excess"], p["flag_memorisation"],
          d.get("dcr_median"), d.get("dcr_test_median"), d.get("dcr_share_below_test_p5")]],
    )
    return lines


def _tstr_section(tstr: dict[str, Any], is_bootstrap: bool) -> list[str]:
    lines = ["", "## Train on synthetic, test on real", ""]
    if is_bootstrap:
        lines += ["> " + BOOTSTRAP_NOTE, ""]
    lines.append(f"Mean ± std over split seeds {tstr['split_seeds']}; copy rate of the synthetic set beside "
                 "every TSTR figure.")
    lines.append("")
    rows = []
    for clf, s in tstr["summary"].items():
        rows.append([clf, s["tstr_macro_f1"], _fmt(s["copy_rate"]), s["trtr_macro_f1"], s["ratio"],
                     s["tstr_macro_f1_supported"], _fmt(s["copy_rate"]), s["trtr_macro_f1_supported"]])
    lines += _table(
        ["classifier", "TSTR macro-F1", "copy rate", "TRTR macro-F1", "TSTR/TRTR",
         "TSTR macro-F1 (≥10 test flows)", "copy rate", "TRTR macro-F1 (≥10 test flows)"],
        rows,
    )
    lines += ["", "Per split seed:", ""]
    lines += _table(
        ["seed", "classifier", "TSTR macro-F1", "copy rate", "TRTR macro-F1", "TSTR acc.", "TRTR acc."],
        [[str(e["seed"]), e["classifier"], e["tstr"]["macro_f1"] if e["tstr"] else None, e["copy_rate"],
          e["trtr"]["macro_f1"], e["tstr"]["accuracy"] if e["tstr"] else None, e["trtr"]["accuracy"]]
         for e in tstr["per_seed"]],
    )
    for clf, s in tstr["summary"].items():
        classes = sorted(set(s["per_class_f1_trtr"]) | set(s["per_class_f1_tstr"]))
        lines += ["", f"Per-class F1 ({clf}, mean over seeds; copy rate {_fmt(s['copy_rate'])}):", ""]
        lines += _table(
            ["class", "TSTR F1", "TRTR F1"],
            [[c, s["per_class_f1_tstr"].get(c), s["per_class_f1_trtr"].get(c)] for c in classes],
        )
    return lines


def _augmentation_section(aug: dict[str, Any]) -> list[str]:
    lines = ["", "## Low-data augmentation", "",
             f"Classifier {aug['classifier']}; seeds {aug['seeds']}; synthetic amounts: {aug['target_rule']} "
             f"(min_target = {aug['min_target']}). Macro-F1 and relative gain vs real-only.", ""]
    fractions = aug["fractions"]
    header = ["method"] + [f"{f:.0%} F1" for f in fractions] + [f"{f:.0%} gain" for f in fractions]
    by_key = {(r["fraction"], r["method"]): r for r in aug["rows"]}
    rows = []
    for method in aug["methods"]:
        if method in aug["skipped"]:  # said below, not shown as a row of dashes
            continue
        f1s = [_fmt(by_key[(f, method)]["macro_f1"]) for f in aug["fractions"]]
        gains = [_fmt(by_key[(f, method)]["gain"]) for f in aug["fractions"]]
        rows.append([method, *f1s, *gains])
    lines += _table(header, rows)
    for method, why in aug["skipped"].items():
        lines.append(f"\n`{method}` skipped: {why}.")
    return lines


# ---------------------------------------------------------------------------------------------- files
def check_report_keys(report: dict[str, Any]) -> None:
    """Raise ValueError if ``report`` breaks the documented key layout."""
    if tuple(report) != TOP_LEVEL_KEYS and set(report) != set(TOP_LEVEL_KEYS):
        raise ValueError(f"report keys {sorted(report)} differ from {sorted(TOP_LEVEL_KEYS)}")
    for axis, keys in AXIS_KEYS.items():
        if report[axis] is not None and not set(keys) <= set(report[axis]):
            raise ValueError(f"report[{axis!r}] lacks {sorted(set(keys) - set(report[axis]))}")
    if set(report["headline"]) != set(HEADLINE_KEYS):
        raise ValueError("report['headline'] keys differ from HEADLINE_KEYS")


def write_report(report: dict[str, Any], directory: str | Path) -> dict[str, Path]:
    """Write ``report.json`` and ``report.md`` into ``directory`` (each atomically)."""
    from ntg.utils.io import atomic_path, write_json

    check_report_keys(report)
    directory = Path(directory)
    json_path = write_json(directory / "report.json", report)
    md_path = directory / "report.md"
    with atomic_path(md_path) as tmp:
        tmp.write_text(render_markdown(report))
    return {"json": json_path, "markdown": md_path}
