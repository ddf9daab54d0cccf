"""The report's PNG figures, and the caption each gets in ``report.md``.

Every title names the generator and the dataset (:func:`subject`): a figure copied out of its report folder
into a slide or an issue must still say what it shows. :func:`write_figures` is the one entry point that
``evaluate`` calls; the single-figure functions stay public for ``compare`` and for notebooks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ntg.data.schema import FlowTable
from ntg.utils.plots import pyplot, save_png

FIGURES_DIR = "figures"


def subject(report: dict[str, Any]) -> str:
    """``"<generator> on <dataset>"`` from a report's ``source`` and ``data`` entries (the dataset's
    ``data["name"]`` where the report has one, else its folder name)."""
    source = report.get("source") or {}
    name = source.get("family") or source.get("kind") or "synthetic"
    path = source.get("path")
    if path and Path(path).name not in (name, ""):
        name = f"{name} ({Path(path).name})"
    data = report.get("data") or {}
    dataset = data.get("name") or (Path(data["path"]).name if data.get("path") else "")
    return f"{name} on {dataset}" if dataset else name


def _save(fig, path: Path) -> Path:
    return save_png(fig, path, dpi=110, bbox_inches="tight")


def _titled(title: str, subject: str) -> str:
    return f"{subject}\n{title}" if subject else title


# ---------------------------------------------------------------------------------------------- figures
def plot_confusion(scores: dict[str, Any], path: str | Path, title: str, *, subject: str = "") -> Path:
    """Row-normalised confusion matrix of :func:`~ntg.evaluation.tstr.classification_scores`, with the share
    printed in every non-empty cell (colour alone does not tell 0.42 from 0.48)."""
    plt = pyplot()
    labels = scores["confusion_labels"]
    matrix = np.asarray(scores["confusion"], dtype=np.float64)
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.42 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    font = 7 if len(labels) <= 15 else 5
    for (row, col), share in np.ndenumerate(norm):
        if matrix[row, col] > 0:
            ax.text(col, row, f"{share:.2f}".lstrip("0") if share < 1 else "1", ha="center", va="center",
                    fontsize=font, color="white" if share > 0.6 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(_titled(f"{title} (macro-F1 {scores['macro_f1']:.3f})", subject), fontsize=9)
    bar = fig.colorbar(image, ax=ax, fraction=0.046)
    bar.set_label("share of the true class's test flows")
    return _save(fig, Path(path))


def plot_distributions(
    real: FlowTable, synth: FlowTable, n_packets: int, path: str | Path, *, subject: str = ""
) -> Path:
    """Per packet position: median and 10–90 % band of payload and inter-arrival time, real vs synthetic
    (only positions where a flow has a packet; inter-arrival from the second packet, log scale)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for table, name, color in ((real, "real test", "tab:blue"), (synth, "synthetic", "tab:orange")):
        window = table.pad_to(n_packets)
        mask = window.mask
        for ax, values, start in ((axes[0], window.payload.astype(np.float64), 0),
                                  (axes[1], np.maximum(window.iat, 1e-6), 1)):
            positions, bands = [], []
            for i in range(start, n_packets):
                column = values[mask[:, i], i]
                if len(column):
                    positions.append(i + 1)
                    bands.append(np.percentile(column, [10, 50, 90]))
            if bands:
                band = np.array(bands)
                ax.plot(positions, band[:, 1], marker="o", color=color, label=f"{name} median")
                ax.fill_between(positions, band[:, 0], band[:, 2], color=color, alpha=0.2,
                                label=f"{name} 10–90 %")
    axes[0].set_ylabel("payload (bytes)")
    axes[1].set_ylabel("inter-arrival time (s, log scale)")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("packet position in the flow")
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].legend(fontsize=8)
    fig.suptitle(_titled("Per-position distributions: real test vs synthetic flows", subject), fontsize=10)
    return _save(fig, Path(path))


def plot_augmentation(aug: dict[str, Any], path: str | Path, *, subject: str = "") -> Path:
    """Macro-F1 vs training fraction for every augmentation method (error bars: std over seeds)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in aug["methods"]:
        rows = [r for r in aug["rows"] if r["method"] == method and r["macro_f1"]["mean"] is not None]
        if not rows:
            continue
        xs = [r["fraction"] for r in rows]
        ax.errorbar(xs, [r["macro_f1"]["mean"] for r in rows], yerr=[r["macro_f1"]["std"] or 0 for r in rows],
                    marker="o", capsize=3, label=method, linestyle="--" if method == "real_100" else "-")
    ax.set_xscale("log")
    ax.set_xticks(aug["fractions"], [f"{f:.0%}" for f in aug["fractions"]])
    ax.minorticks_off()
    ax.set_xlabel("share of the real training split used (log scale)")
    ax.set_ylabel(f"macro-F1 on the real test split ({aug['classifier']})")
    ax.set_title(_titled("Low-data augmentation", subject), fontsize=10)
    ax.legend(fontsize=8, title="training set")
    return _save(fig, Path(path))


def plot_dcr(
    synthetic: np.ndarray, holdout: np.ndarray, path: str | Path, *, subject: str = "",
    sizes: tuple[int, int] | None = None,
) -> Path:
    """Empirical CDFs of the distance to the closest training record: synthetic flows vs real held-out flows.

    The inputs are distances or their percentiles (the privacy axis records 101); ``sizes`` gives the flow
    counts for the legend when they are percentiles.

    A synthetic curve above (left of) the held-out one means flows closer to training records than fresh
    real traffic comes: memorisation. The x axis is linear near 0 (exact repeats) and logarithmic beyond.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    counts = sizes or (len(synthetic), len(holdout))
    for values, name, color, count in ((holdout, "real held-out", "tab:blue", counts[1]),
                                       (synthetic, "synthetic", "tab:orange", counts[0])):
        values = np.sort(np.asarray(values, dtype=np.float64))
        if not len(values):
            continue
        median = float(np.median(values))
        # percentiles p_0..p_100 sit at shares 0..1; raw distances at i/n (the empirical CDF)
        shares = np.linspace(0, 1, len(values)) if sizes else np.arange(1, len(values) + 1) / len(values)
        ax.step(values, shares, where="post", color=color,
                label=f"{name}: {count:,} flows, median {median:.3g}")
        ax.axvline(median, color=color, linestyle=":", linewidth=1)
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_xlim(left=0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("distance to closest training record (standardised flow features)")
    ax.set_ylabel("share of flows at or below the distance")
    ax.set_title(_titled("Distance to closest record (DCR)", subject), fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, Path(path))


def plot_fidelity_vs_cost(points: dict[str, tuple[float, float]], path: str | Path, *, dataset: str = "") -> Path:
    """One point per generator: sampling cost (µs per flow) against fidelity score (lower is better)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, (cost_us, score) in points.items():
        ax.scatter([cost_us], [score], label=name)
        ax.annotate(name, (cost_us, score), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("sampling cost (µs per flow, log scale)")
    ax.set_ylabel("fidelity score (lower is better)")
    ax.set_title("Fidelity vs sampling cost" + (f" on {dataset}" if dataset else ""))
    if points:
        ax.legend(fontsize=8, title="generator")
    return _save(fig, Path(path))


# ---------------------------------------------------------------------------------------------- all of them
def dcr_samples(
    report: dict[str, Any], train: FlowTable | None, holdout: FlowTable | None, synth: FlowTable | None
) -> tuple[np.ndarray, np.ndarray, tuple[int, int] | None] | None:
    """(synthetic, held-out, sizes) for :func:`plot_dcr`: the privacy axis's own percentiles and flow counts
    when it recorded them (``details["dcr_quantiles"]``: the figure then matches the table), else distances
    recomputed from the flows given (sizes None), else None."""
    privacy = report.get("privacy")
    if not privacy:
        return None
    quantiles = (privacy.get("details") or {}).get("dcr_quantiles")
    if quantiles:
        sizes = (int(privacy.get("n_synthetic", 0)), int(privacy.get("n_test", 0)))
        return np.asarray(quantiles["synthetic"]), np.asarray(quantiles["holdout"]), sizes
    if train is None or holdout is None or synth is None:
        return None
    from ntg.evaluation.distances import common_window
    from ntg.evaluation.privacy import distance_to_closest_record

    train, synth, n = common_window(train, synth)
    train, holdout, n = common_window(train, holdout)
    synth = synth.first(n) if synth.max_packets > n else synth
    return distance_to_closest_record(synth, train), distance_to_closest_record(holdout, train), None


def write_figures(
    report: dict[str, Any],
    report_dir: str | Path,
    real_test: FlowTable | None = None,
    synth: FlowTable | None = None,
    n_packets: int | None = None,
    *,
    train: FlowTable | None = None,
) -> dict[str, str]:
    """Every figure the report's axes allow, into ``report_dir/figures``; returns name → path relative to
    ``report_dir`` (the report's ``figures`` entry). Figures of axes that did not run are not made."""
    folder = Path(report_dir) / FIGURES_DIR
    who = subject(report)
    names: dict[str, str] = {}

    def done(name: str) -> Path:
        names[name] = f"{FIGURES_DIR}/{name}.png"
        return folder / f"{name}.png"

    if report.get("tstr"):
        first = report["tstr"]["split_seeds"][0]
        for entry in report["tstr"]["per_seed"]:
            for kind in ("tstr", "trtr"):
                if entry["seed"] == first and entry[kind]:
                    clf = entry["classifier"]
                    plot_confusion(entry[kind], done(f"confusion_{kind}_{clf}"),
                                   f"{kind.upper()} {clf}, split seed {first}", subject=who)
    if real_test is not None and synth is not None:
        n = n_packets or min(real_test.max_packets, synth.max_packets)
        plot_distributions(real_test, synth, n, done("distributions"), subject=who)
    if report.get("augmentation"):
        plot_augmentation(report["augmentation"], done("augmentation"), subject=who)
    dcr = dcr_samples(report, train, real_test, synth)
    if dcr is not None:
        plot_dcr(dcr[0], dcr[1], done("dcr"), subject=who, sizes=dcr[2])
    return names


def caption(name: str, report: dict[str, Any]) -> str:
    """The one-line caption under figure ``name`` in ``report.md``."""
    settings = report.get("settings") or {}
    if name.startswith("confusion_"):
        _, kind, clf = name.split("_", 2)
        trained = "synthetic flows" if kind == "tstr" else "the real training split"
        seed = (report.get("tstr") or {}).get("split_seeds", ["?"])[0]
        return (f"{clf.upper()} trained on {trained}, tested on the real test split (split seed {seed}); each row "
                "is a true class, each cell the share of its flows predicted as the column's class.")
    if name == "distributions":
        return (f"Median and 10–90 % band per packet position (first {settings.get('n_packets', '?')} packets) "
                "of payload size and inter-arrival time: real test flows vs synthetic flows.")
    if name == "augmentation":
        aug = report.get("augmentation") or {}
        return (f"Macro-F1 on the real test split when training on a share of the real training split, with and "
                f"without synthetic flows; error bars: std over seeds {aug.get('seeds')}.")
    if name == "dcr":
        return ("Distance from each flow to its closest training flow: synthetic vs real held-out (test) flows. A "
                "synthetic curve left of the real one means flows nearer to training records than fresh traffic "
                "(memorisation); the jump at 0 is exact repeats, natural for short fixed-shape exchanges.")
    return name.replace("_", " ")
