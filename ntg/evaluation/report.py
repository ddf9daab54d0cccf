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
* ``figures``: figure name → path relative to the report folder; ``warnings``: list of strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ntg.data.schema import FlowTable

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
AXES = ("fidelity", "tstr", "augmentation", "privacy", "cost")
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
    """``report.md``: headline per axis, TSTR with the copy rate beside it, per-class F1, augmentation,
    fidelity parts, privacy and cost tables, and the figures."""
    source = report["source"]
    name = source.get("family") or source["kind"]
    lines = [f"# ntg evaluation: {name} on {Path(report['data']['path']).name}", ""]
    lines.append(f"Source: {source['kind']} `{source.get('path')}`; data: `{report['data']['path']}`; "
                 f"first {report['settings']['n_packets']} packets; created {report['created']}.")
    if source.get("is_bootstrap"):
        lines += ["", "> " + BOOTSTRAP_NOTE]
    for warning in report.get("warnings") or []:
        lines += ["", f"> note: {warning}"]
    h = report["headline"]
    lines += ["", "## Headline", ""]
    lines += _table(
        ["axis", "metric", "value", "copy rate"],
        [
            ["fidelity", "score (lower is better)", h["fidelity_score"], ""],
            ["tstr", "TSTR macro-F1 (RF)", h["tstr_macro_f1"], _fmt(h["copy_rate"])],
            ["tstr", "TRTR macro-F1 (RF)", h["trtr_macro_f1"], ""],
            ["tstr", "TSTR / TRTR", h["tstr_trtr_ratio"], _fmt(h["copy_rate"])],
            ["augmentation", "gain of real+synthetic" + (
                f" at {h['augmentation_fraction']:.0%} real" if h["augmentation_fraction"] else ""),
             h["augmentation_gain"], ""],
            ["privacy", "copy rate", h["copy_rate"], ""],
            ["cost", "parameters", h["parameters"], ""],
            ["cost", "sampling flows/s", h["sampling_flows_per_s"], ""],
        ],
    )
    if report.get("tstr"):
        lines += _tstr_section(report["tstr"], source.get("is_bootstrap", False))
    if report.get("augmentation"):
        lines += _augmentation_section(report["augmentation"])
    if report.get("fidelity"):
        fid = report["fidelity"]
        lines += ["", "## Fidelity", "",
                  f"Real reference: {fid['reference']} split ({fid['n_real']} flows) vs "
                  f"{fid['n_synthetic']} synthetic flows; every part in [0, 1], 0 ideal.", ""]
        parts = [[k, v] for k, v in fid["score_parts"].items()]
        lines += _table(["part", "value"], [*parts, ["**score**", fid["score"]]])
        headers = fid["details"].get("headers")
        if headers:
            lines += ["", "Transport headers (beside the score, not in it): "
                      + ", ".join(f"{k} {_fmt(v)}" for k, v in headers.items()) + "."]
    if report.get("privacy"):
        p = report["privacy"]
        lines += ["", "## Privacy", ""]
        lines += _table(
            ["copy rate", "natural copy rate", "copy excess", "memorisation flagged"],
            [[p["copy_rate"], p["natural_copy_rate"], p["copy_excess"], p["flag_memorisation"]]],
        )
    if report.get("cost"):
        c = report["cost"]
        lines += ["", "## Cost", ""]
        lines += _table(
            ["parameters", "FLOPs/flow", "training s", "sampling flows/s",
             f"peak memory ({c['memory_method']})", "device", "sampling precision"],
            [[c["parameters"], c["flops_per_flow"], c["train_wall_s"], c["sampling_flows_per_s"],
              f"{c['peak_memory_bytes'] / 2**20:.1f} MiB", c["device"], c.get("sample_precision") or "-"]],
        )
    if report.get("figures"):
        lines += ["", "## Figures", ""]
        lines += [f"![{name}]({path})" for name, path in report["figures"].items()]
    return "\n".join(lines) + "\n"


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
        f1s = [_fmt(by_key[(f, method)]["macro_f1"]) for f in aug["fractions"]]
        gains = [_fmt(by_key[(f, method)]["gain"]) for f in aug["fractions"]]
        rows.append([method, *f1s, *gains])
    lines += _table(header, rows)
    for method, why in aug["skipped"].items():
        lines.append(f"\n`{method}` skipped: {why}.")
    return lines


# ---------------------------------------------------------------------------------------------- figures
def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    from ntg.utils.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _figure().close(fig)
    return path


def plot_confusion(scores: dict[str, Any], path: str | Path, title: str) -> Path:
    """Row-normalised confusion matrix of :func:`~ntg.evaluation.tstr.classification_scores`."""
    plt = _figure()
    labels = scores["confusion_labels"]
    matrix = np.asarray(scores["confusion"], dtype=np.float64)
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.35 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title} (macro-F1 {scores['macro_f1']:.3f})")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _save(fig, Path(path))


def plot_distributions(real: FlowTable, synth: FlowTable, n_packets: int, path: str | Path) -> Path:
    """Per packet position: median and 10–90 % band of payload and log10 inter-arrival time, real vs synthetic
    (only positions where a flow has a packet; IAT from the second packet)."""
    plt = _figure()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for table, name, color in ((real, "real", "tab:blue"), (synth, "synthetic", "tab:orange")):
        window = table.pad_to(n_packets) if table.max_packets < n_packets else table.first(n_packets)
        mask = window.mask
        for ax, values, label, start in (
            (axes[0], window.payload.astype(np.float64), "payload bytes", 0),
            (axes[1], np.log10(np.maximum(window.iat, 1e-6)), "log10 inter-arrival (s)", 1),
        ):
            positions, bands = [], []
            for i in range(start, n_packets):
                column = values[mask[:, i], i]
                if len(column):
                    positions.append(i + 1)
                    bands.append(np.percentile(column, [10, 50, 90]))
            if not bands:
                continue
            band = np.array(bands)
            ax.plot(positions, band[:, 1], marker="o", color=color, label=name)
            ax.fill_between(positions, band[:, 0], band[:, 2], color=color, alpha=0.2)
            ax.set_xlabel("packet position")
            ax.set_ylabel(label)
    axes[0].legend()
    fig.suptitle("Per-position distributions (median, 10–90 %): real test vs synthetic")
    return _save(fig, Path(path))


def plot_augmentation(aug: dict[str, Any], path: str | Path) -> Path:
    """Macro-F1 vs training fraction for every augmentation method (error bars: std over seeds)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in aug["methods"]:
        rows = [r for r in aug["rows"] if r["method"] == method and r["macro_f1"]["mean"] is not None]
        if not rows:
            continue
        xs = [r["fraction"] for r in rows]
        ax.errorbar(xs, [r["macro_f1"]["mean"] for r in rows], yerr=[r["macro_f1"]["std"] for r in rows],
                    marker="o", capsize=3, label=method, linestyle="--" if method == "real_100" else "-")
    ax.set_xscale("log")
    ax.set_xlabel("fraction of the real training split")
    ax.set_ylabel(f"macro-F1 ({aug['classifier']}, real test)")
    ax.set_title("Low-data augmentation")
    ax.legend(fontsize=8)
    return _save(fig, Path(path))


def plot_fidelity_vs_cost(points: dict[str, tuple[float, float]], path: str | Path) -> Path:
    """One point per generator: sampling cost (µs per flow) against fidelity score (lower is better)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, (cost_us, score) in points.items():
        ax.scatter([cost_us], [score])
        ax.annotate(name, (cost_us, score), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("sampling cost (µs per flow, log)")
    ax.set_ylabel("fidelity score (lower is better)")
    ax.set_title("Fidelity vs cost")
    return _save(fig, Path(path))


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
