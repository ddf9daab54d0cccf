"""The evaluation orchestrator and its report, end to end on the real iot_small dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ntg.errors import NtgError
from ntg.evaluation import report as report_mod
from ntg.evaluation.evaluate import compare, evaluate
from ntg.models.base import create_generator

FAST = {
    "classifiers": ("rf",),
    "fractions": (0.05, 0.25),
    "augmentation_seeds": 1,
    "cost_flows": 512,
    "classifier_options": {"rf": {"n_estimators": 50}},
    "progress": False,
}
# The documented layout of report.json (schema 1). Changing it is a breaking change: bump the version.
PINNED_TOP_LEVEL = [
    "schema_version", "created", "ntg_version", "data", "source", "settings", "headline",
    "fidelity", "tstr", "augmentation", "privacy", "cost", "figures", "warnings",
]
PINNED_AXES = {
    "fidelity": ["reference", "n_real", "n_synthetic", "score", "score_parts", "details"],
    "tstr": ["classifiers", "split_seeds", "per_seed", "summary"],
    "augmentation": [
        "classifier", "fractions", "methods", "seeds", "min_target", "target_rule", "rows", "skipped",
    ],
    "privacy": [
        "reference", "n_train", "n_test", "n_synthetic", "copy_rate", "natural_copy_rate", "copy_excess",
        "flag_memorisation", "details",
    ],
    "cost": [
        "family", "parameters", "flops_per_flow", "train_wall_s", "sampling_flows_per_s", "sampling_wall_s",
        "sampling_batch", "sampling_flows", "peak_memory_bytes", "memory_method", "device", "sample_precision",
    ],
}
PINNED_HEADLINE = [
    "fidelity_score", "tstr_macro_f1", "trtr_macro_f1", "tstr_trtr_ratio", "copy_rate", "augmentation_gain",
    "augmentation_fraction", "parameters", "sampling_flows_per_s",
]
PINNED_TSTR_SUMMARY = [
    "tstr_macro_f1", "trtr_macro_f1", "trtr_macro_f1_all_seeds", "ratio", "tstr_accuracy",
    "tstr_macro_f1_supported", "trtr_macro_f1_supported", "copy_rate", "per_class_f1_tstr",
    "per_class_f1_trtr",
]


def _train_run(family: str, dataset, folder: Path) -> Path:
    gen = create_generator(family, n_packets=10).fit(dataset.train.first(10), dataset.val.first(10))
    gen.save_pretrained(folder)
    (folder / "train_log.json").write_text(json.dumps({"history": [], "wall_s": 1.25}))
    return folder


@pytest.fixture(scope="module")
def bootstrap_report(iot_small, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """Every axis for the bootstrap baseline, two split seeds, refitted per seed."""
    base = tmp_path_factory.mktemp("bootstrap_eval")
    run = _train_run("bootstrap", iot_small, base / "run")
    out = base / "report"
    report = evaluate(iot_small.root, generator=run, out_dir=out, split_seeds=2, retrain=True, **FAST)
    return report, out


def test_report_json_keys_are_pinned(bootstrap_report) -> None:
    report, out = bootstrap_report
    on_disk = json.loads((out / "report.json").read_text())
    assert sorted(on_disk) == sorted(PINNED_TOP_LEVEL) == sorted(report_mod.TOP_LEVEL_KEYS)
    assert on_disk["schema_version"] == report_mod.REPORT_SCHEMA_VERSION == 1
    for axis, keys in PINNED_AXES.items():
        assert on_disk[axis] is not None, axis
        assert set(keys) <= set(on_disk[axis]), axis
        assert list(report_mod.AXIS_KEYS[axis]) == keys
    assert sorted(on_disk["headline"]) == sorted(PINNED_HEADLINE)
    assert sorted(on_disk["tstr"]["summary"]["rf"]) == sorted(PINNED_TSTR_SUMMARY)
    assert on_disk["cost"]["train_wall_s"] == 1.25  # read from the run's train_log.json
    assert on_disk["cost"]["memory_method"] == "tracemalloc" and on_disk["cost"]["sampling_flows_per_s"] > 0


def test_bootstrap_tstr_reproduces_trtr_on_every_split_seed(bootstrap_report, iot_small) -> None:
    report, _ = bootstrap_report
    entries = report["tstr"]["per_seed"]
    assert [e["seed"] for e in entries] == report["tstr"]["split_seeds"] == [iot_small.meta["split_seed"], 1]
    assert entries[0]["n_test"] != entries[1]["n_test"] or entries[0]["n_train"] != entries[1]["n_train"]
    for entry in entries:  # bootstrap replays real training flows, so TSTR ≈ TRTR; and it is a copy
        assert entry["trtr"]["macro_f1"] > 0.5
        assert entry["ratio"] == pytest.approx(1.0, abs=0.12)
        assert entry["copy_rate"] > 0.5
    assert report["source"]["is_bootstrap"] and report["privacy"]["copy_rate"] > 0.5
    summary = report["tstr"]["summary"]["rf"]
    values = [e["tstr"]["macro_f1"] for e in entries]
    assert summary["tstr_macro_f1"]["mean"] == pytest.approx(np.mean(values))
    assert summary["tstr_macro_f1"]["std"] == pytest.approx(np.std(values))
    assert summary["tstr_macro_f1"]["n"] == 2


def test_markdown_puts_copy_rate_beside_every_tstr_figure(bootstrap_report) -> None:
    report, out = bootstrap_report
    md = (out / "report.md").read_text()
    assert "bootstrap baseline" in md
    lines = md.splitlines()
    tables = [line for line in lines if line.startswith("|")]
    headers = [  # a table's header is the line above its |---| separator
        [c.strip() for c in line.strip("|").split("|")]
        for line, below in zip(lines, lines[1:], strict=False) if below.startswith("|---") and "TSTR" in line
    ]
    tstr_columns = 0
    for cells in headers:
        for i, cell in enumerate(cells):
            if cell.startswith("TSTR macro-F1") or cell.startswith("TSTR F1"):
                tstr_columns += 1
                if cell.startswith("TSTR F1"):  # per-class table: the copy rate stands in its caption
                    continue
                assert cells[i + 1] == "copy rate", cells
    assert tstr_columns >= 3
    copy = report["headline"]["copy_rate"]["mean"]
    headline_row = next(line for line in tables if "TSTR macro-F1 (RF)" in line)
    assert f"{copy:.3f}" in headline_row.split("|")[4]
    for line in md.splitlines():
        if line.startswith("Per-class F1"):
            assert "copy rate" in line


def test_figures_are_written(bootstrap_report) -> None:
    report, out = bootstrap_report
    names = set(report["figures"])
    assert {"confusion_tstr_rf", "confusion_trtr_rf", "distributions", "augmentation"} <= names
    for relative in report["figures"].values():
        data = (out / relative).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        assert f"]({relative})" in (out / "report.md").read_text()


def test_compare_without_retrain_and_from_a_synthetic_file(bootstrap_report, iot_small, tmp_path) -> None:
    run = _train_run("markov", iot_small, tmp_path / "markov")
    markov = evaluate(iot_small.root, generator=run, axes=("fidelity", "tstr", "cost"), split_seeds=2, **FAST)
    entries = markov["tstr"]["per_seed"]
    assert entries[0]["tstr"] is not None and entries[1]["tstr"] is None  # the generator saw split 0 only
    assert entries[1]["trtr"]["macro_f1"] > 0 and any("--retrain" in w for w in markov["warnings"])
    assert markov["augmentation"] is None and markov["privacy"] is None
    assert markov["headline"]["copy_rate"]["n"] == 1  # still computed beside the TSTR figure

    synth_file = tmp_path / "synth.parquet"
    create_generator("marginals").fit(iot_small.train.first(10)).sample(600, seed=0).write(synth_file)
    from_file = evaluate(iot_small.root, synthetic=synth_file, axes=("tstr", "cost"), split_seeds=1, **FAST)
    assert from_file["source"]["kind"] == "synthetic" and from_file["cost"] is None
    assert from_file["tstr"]["per_seed"][0]["n_synthetic"] == len(iot_small.train)

    table, png = compare({"bootstrap": bootstrap_report[0], "markov": markov}, tmp_path / "cmp.png")
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| generator") and rows[1].startswith("| bootstrap *")
    assert rows[2].startswith("| markov") and len(rows) == 3
    assert png is not None and png.read_bytes()[:4] == b"\x89PNG"


def test_bad_input_is_reported(iot_small, tmp_path: Path) -> None:
    with pytest.raises(NtgError, match="exactly one"):
        evaluate(iot_small.root)
    with pytest.raises(NtgError, match="missing.parquet"):
        evaluate(iot_small.root, synthetic=tmp_path / "missing.parquet")
    with pytest.raises(NtgError, match="unknown evaluation axis"):
        evaluate(iot_small.root, synthetic=tmp_path / "x.parquet", axes=("speed",))
    with pytest.raises(NtgError, match="not a prepared dataset"):
        evaluate(tmp_path, synthetic=tmp_path / "x.parquet")


# ---------------------------------------------------------------------------------------------- figures
@pytest.fixture(scope="module")
def markov_report(iot_small, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Fidelity, TSTR and privacy (no augmentation, no cost) for a Markov chain on iot_small."""
    run = _train_run("markov", iot_small, tmp_path_factory.mktemp("markov_eval") / "mk")
    return evaluate(iot_small.root, generator=run, axes=("fidelity", "tstr", "privacy"), split_seeds=1, **FAST)


@pytest.fixture()
def drawn(monkeypatch) -> list:
    """Every matplotlib figure the report functions save, kept open for inspection."""
    from ntg.evaluation import figures

    kept, save = [], figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: (kept.append((Path(path).stem, fig)), save(fig, path))[1])
    return kept


def test_figures_name_generator_and_dataset_and_label_everything(markov_report, iot_small, tmp_path, drawn) -> None:
    from ntg.evaluation.figures import subject, write_figures
    from ntg.models.base import load_generator

    n = markov_report["settings"]["n_packets"]
    test, train = iot_small.test.first(n), iot_small.train.first(n)
    synth = load_generator(markov_report["source"]["path"]).sample(len(test), seed=1)
    names = write_figures(markov_report, tmp_path, test, synth, n, train=train)
    assert sorted(names) == ["confusion_trtr_rf", "confusion_tstr_rf", "dcr", "distributions"]  # no augmentation
    who = subject(markov_report)
    assert who.startswith("markov") and who.endswith(f" on {Path(iot_small.root).name}")
    figs = dict(drawn)
    for name, fig in figs.items():
        title = fig._suptitle.get_text() if fig._suptitle else fig.axes[0].get_title()
        assert who in title, (name, title)
        for ax in fig.axes:  # plot axes label both axes, a colour bar its own
            assert ax.get_ylabel() and (ax.get_xlabel() or ax.get_label() == "<colorbar>"), (name, ax)
        assert (tmp_path / names[name]).read_bytes()[:4] == b"\x89PNG"
    confusion = figs["confusion_tstr_rf"]
    matrix = np.asarray(markov_report["tstr"]["per_seed"][0]["tstr"]["confusion"])
    assert len(confusion.axes[0].texts) == int((matrix > 0).sum())  # a value in every non-empty cell
    assert "share" in confusion.axes[1].get_ylabel()  # the colour bar says what its colours mean
    dcr_lines = figs["dcr"].axes[0].get_lines()
    assert len([line for line in dcr_lines if line.get_label().startswith(("synthetic", "real held-out"))]) == 2


def test_markdown_leaves_out_axes_not_run_and_captions_every_figure(markov_report, tmp_path) -> None:
    from ntg.evaluation.figures import write_figures

    report = dict(markov_report, figures=write_figures(markov_report, tmp_path))  # report-only figures
    md = report_mod.render_markdown(report)
    assert "## Low-data augmentation" not in md and "## Cost" not in md
    headline = md.split("## Headline")[1].split("\n## ")[0]
    assert "augmentation" not in headline and "cost" not in headline and "—" not in headline
    lines = md.splitlines()
    images = [i for i, line in enumerate(lines) if line.startswith("![")]
    # no flows given: no distributions plot; the DCR figure only where the privacy axis kept its percentiles
    expected = {"confusion_tstr_rf", "confusion_trtr_rf"}
    if "dcr_quantiles" in markov_report["privacy"]["details"]:
        expected.add("dcr")
    assert set(report["figures"]) == expected and len(images) == len(expected)
    for i in images:
        assert lines[i + 2].startswith("*Figure (") and len(lines[i + 2]) > 40
    assert md.index("![confusion_tstr_rf]") < md.index("## Fidelity")  # in the TSTR section


def test_dcr_figure_stands_beside_the_copy_rate(markov_report, iot_small, tmp_path) -> None:
    from ntg.evaluation.figures import write_figures

    n = markov_report["settings"]["n_packets"]
    test = iot_small.test.first(n)
    report = dict(markov_report, figures=write_figures(markov_report, tmp_path, test, test,
                                                       train=iot_small.train.first(n)))
    privacy = report_mod.render_markdown(report).split("## Privacy")[1].split("\n## ")[0]
    assert "copy rate" in privacy and "DCR median (synthetic)" in privacy
    assert "![dcr](figures/dcr.png)" in privacy and "*Figure (dcr):" in privacy


def test_loss_curve_has_integer_epochs_and_names_generator_and_dataset(tmp_path, monkeypatch) -> None:
    import matplotlib.pyplot as plt

    from ntg.training.runs import plot_loss_curve

    kept = []
    monkeypatch.setattr(plt, "close", kept.append)
    history = [{"epoch": e, "train_loss": 3.0 / e, "val_loss": 3.2 / e} for e in range(1, 4)]
    path = plot_loss_curve(history, tmp_path / "loss.png", title="transformer", dataset="iot")
    assert path.read_bytes()[:4] == b"\x89PNG"
    ax = kept[0].axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert "transformer on iot" in ax.get_title() and ax.get_ylabel().startswith("loss")
