"""``ntg evaluate``: judge a generator (or a file of synthetic flows) on every axis and write the report.

Split seeds: the first split seed is the dataset's stored split (the one the generator was trained on);
the others come from :func:`ntg.data.splits.resplit`. The given generator / synthetic file is used for the
stored split only — using it on another split would leak that split's test flows, which it may have
trained on. With ``retrain=True`` a fresh generator (same family, hyperparameters and train config from
``run.json``) is fitted on each other split's training flows. TRTR is computed on every split seed.

Fidelity compares synthetic flows (class counts matched to the real test split) with the real **test**
split (held out, so copying training flows does not look like fidelity). Privacy compares the TSTR
synthetic set with the real training split, next to the test split's natural copy level; its copy rate is
also computed beside every TSTR figure. Augmentation runs on the stored split.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ntg.data.dataset import PreparedDataset
from ntg.data.schema import DEFAULT_N, FlowTable
from ntg.errors import NtgError
from ntg.evaluation import report as report_mod
from ntg.evaluation.augmentation import FRACTIONS, run_augmentation
from ntg.evaluation.report import AXES
from ntg.evaluation.tstr import mean_std, synthetic_like, tstr_trtr
from ntg.models.base import Generator

CLASSIFIERS = ("rf", "cnn")


# ---------------------------------------------------------------------------------------------- sources
def _load_source(generator: Generator | str | Path | None, synthetic: FlowTable | str | Path | None):
    """(generator or None, synthetic table or None, source record, run folder or None)."""
    if (generator is None) == (synthetic is None):
        raise NtgError("give exactly one of --generator RUN_DIR and --synthetic FILE to evaluate")
    if generator is not None:
        if isinstance(generator, Generator):
            gen, path = generator, None
        else:
            from ntg.models.base import load_generator, resolve_model_dir

            path = resolve_model_dir(generator)
            gen = load_generator(path)
        run = _read_run(path)
        record = {
            "kind": "generator",
            "path": str(path) if path else None,
            "family": gen.family,
            "is_bootstrap": gen.family == "bootstrap",
            "hparams": gen.get_config(),
        }
        return gen, None, record, path, run
    if isinstance(synthetic, FlowTable):
        table, path = synthetic, None
    else:
        path = Path(synthetic)
        try:
            table = FlowTable.read(path)
        except (FileNotFoundError, ValueError, OSError) as err:
            raise NtgError(f"{path}: unreadable ({err}); pass a .parquet or .csv flow file") from None
    if "label" not in table.meta.columns or len(table) == 0:
        raise NtgError(f"{path}: synthetic flows need rows and a 'label' column; see `ntg sample`")
    family = table.meta["family"].iloc[0] if "family" in table.meta.columns else None
    record = {"kind": "synthetic", "path": str(path) if path else None, "family": family,
              "is_bootstrap": family == "bootstrap", "hparams": None}
    return None, table, record, None, {}


def _read_run(path: Path | None) -> dict[str, Any]:
    from ntg.utils.io import read_json

    if path is None or not (Path(path) / "run.json").exists():
        return {}
    try:
        return read_json(Path(path) / "run.json")
    except ValueError as err:
        raise NtgError(f"{path}/run.json: not valid JSON ({err}); re-run `ntg train`") from None


def _generator_factory(gen: Generator, run: dict[str, Any], progress: bool):
    """``fit(train, val, seed)``: a fresh generator like ``gen`` (family, hparams, train config)."""
    from ntg.models.base import create_generator

    hparams = dict(run.get("hparams") or run.get("model") or gen.get_config())
    train_config = run.get("train")

    def fit(train: FlowTable, val: FlowTable | None, seed: int) -> Generator:
        params = dict(hparams)
        if "seed" in params:
            params["seed"] = int(params["seed"]) + seed
        fresh = create_generator(gen.family, **params)
        n = fresh.n_packets
        train = train.first(n) if train.max_packets > n else train
        val = val.first(n) if val is not None and len(val) and val.max_packets > n else (val if val else None)
        if "train_config" in inspect.signature(fresh.fit).parameters and train_config is not None:
            fresh.fit(train, val, train_config=train_config, progress=False)
        else:
            fresh.fit(train, val)
        return fresh

    return fit


def _resplit(dataset: PreparedDataset, seed: int) -> PreparedDataset:
    try:
        from ntg.data.splits import resplit
    except ImportError as err:  # pragma: no cover - the lead's module
        raise NtgError(f"re-splitting needs ntg.data.splits.resplit ({err}); use --split-seeds 1") from None
    return resplit(dataset, seed)


def _split_seeds(dataset: PreparedDataset, k: int) -> list[int]:
    stored = int(dataset.meta.get("split_seed", 0))
    return [stored] + [s for s in range(k + 1) if s != stored][: k - 1]


# ---------------------------------------------------------------------------------------------- axes
def _privacy(train: FlowTable, test: FlowTable, synth: FlowTable) -> dict[str, Any] | None:
    try:
        from ntg.evaluation.privacy import privacy_report
    except ImportError:  # pragma: no cover - the privacy engineer's module
        return None
    return privacy_report(train, test, synth)


def _tstr_axis(
    dataset: PreparedDataset,
    seeds: Sequence[int],
    sources: dict[int, Generator | FlowTable | None],
    classifiers: Sequence[str],
    n_packets: int,
    bar,
    options: dict[str, dict[str, Any]],
) -> tuple[dict[str, Any], dict[int, FlowTable]]:
    per_seed, synthetic_sets = [], {}
    for seed in seeds:
        split = dataset if seed == seeds[0] else _resplit(dataset, seed)
        train, test = split.train.first(n_packets), split.test.first(n_packets)
        source = sources.get(seed)
        synth = synthetic_like(source, train, seed=seed) if source is not None else None
        if synth is not None:
            synthetic_sets[seed] = synth
        privacy = _privacy(train, test, synth) if synth is not None else None
        for clf in classifiers:
            opts = options.get(clf)
            if synth is not None:
                result = tstr_trtr(train, test, synth, clf, n_packets, seed, dataset.classes, opts)
            else:
                from ntg.evaluation.tstr import train_and_score

                trtr = train_and_score(train, test, clf, n_packets, seed, dataset.classes, opts)
                result = {"tstr": None, "trtr": trtr, "ratio": None, "n_synthetic": 0,
                          "n_train": len(train), "n_test": len(test)}
            per_seed.append({"seed": seed, "classifier": clf, **result,
                             "copy_rate": privacy["copy_rate"] if privacy else None})
            bar.update(1)
    summary = {clf: _summarise([e for e in per_seed if e["classifier"] == clf]) for clf in classifiers}
    return {"classifiers": list(classifiers), "split_seeds": list(seeds), "per_seed": per_seed,
            "summary": summary}, synthetic_sets


def _summarise(entries: list[dict[str, Any]]) -> dict[str, Any]:
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


# ---------------------------------------------------------------------------------------------- evaluate
def evaluate(
    data_dir: str | Path,
    generator: Generator | str | Path | None = None,
    synthetic: FlowTable | str | Path | None = None,
    out_dir: str | Path | None = None,
    axes: Sequence[str] = AXES,
    split_seeds: int = 3,
    retrain: bool = False,
    n_packets: int | None = None,
    progress: bool = True,
    classifiers: Sequence[str] = CLASSIFIERS,
    fractions: Sequence[float] = FRACTIONS,
    augmentation_seeds: int = 3,
    cost_flows: int = 2048,
    cost_batch: int = 256,
    classifier_options: dict[str, dict[str, Any]] | None = None,
    augmentation_refit: bool = True,
    force: bool = False,
) -> dict[str, Any]:
    """Evaluate on ``axes`` and return the report dict; with ``out_dir``, write ``report.json``,
    ``report.md`` and ``figures/`` there (the folder is replaced atomically as a whole).

    ``classifier_options`` maps a classifier name to constructor options (e.g. ``{"rf": {"n_estimators":
    50}}``); augmentation uses the ``"rf"`` options. ``augmentation_refit=False`` skips the "generator trained
    on the fraction alone" rows (one fit per fraction and seed: costly for neural families on a CPU).
    """
    from ntg.utils.io import claim_output_dir

    claim_output_dir(out_dir, "report", force=force)  # before any work: never over a folder ntg did not write
    options = {k: dict(v) for k, v in (classifier_options or {}).items()}
    from tqdm.auto import tqdm

    import ntg

    axes = tuple(axes)
    unknown = [a for a in axes if a not in AXES]
    if unknown:
        raise NtgError(f"unknown evaluation axis {unknown[0]!r}; choose from {list(AXES)}")
    if split_seeds < 1:
        raise NtgError(f"split_seeds must be at least 1, not {split_seeds}")
    dataset = PreparedDataset.load(data_dir)
    gen, synth_table, source, run_dir, run = _load_source(generator, synthetic)
    if retrain and gen is None:
        raise NtgError("--retrain needs --generator RUN_DIR (a synthetic file cannot be re-fitted)")
    n = int(n_packets or (gen.n_packets if gen is not None else dataset.meta.get("n_packets", DEFAULT_N)))
    n = min(n, dataset.flows.max_packets)
    if gen is not None and n > gen.n_packets:
        raise NtgError(f"--n-packets {n} exceeds the generator's n_packets={gen.n_packets}; pass fewer")
    if synth_table is not None:
        n = min(n, synth_table.max_packets)
    warnings: list[str] = []
    fit_like = _generator_factory(gen, run, progress) if gen is not None else None

    seeds = _split_seeds(dataset, split_seeds)
    sources: dict[int, Generator | FlowTable | None] = {seeds[0]: gen if gen is not None else synth_table}
    need_tstr = "tstr" in axes
    if need_tstr and len(seeds) > 1:
        if retrain:
            for seed in seeds[1:]:
                split = _resplit(dataset, seed)
                sources[seed] = fit_like(split.train, split.val, seed)
        else:
            warnings.append(f"TSTR uses split seed {seeds[0]} only (the generator's own split); TRTR uses "
                            f"all {len(seeds)} — pass --retrain for TSTR over every split seed")

    steps = (len(seeds) * len(classifiers) if need_tstr else 0) + sum(a in axes for a in AXES if a != "tstr")
    bar = tqdm(total=steps, desc="evaluate", disable=not progress)
    started = time.perf_counter()
    train, test = dataset.train.first(n), dataset.test.first(n)
    report: dict[str, Any] = dict.fromkeys(report_mod.TOP_LEVEL_KEYS)
    figures_data: dict[str, Any] = {}
    synthetic_sets: dict[int, FlowTable] = {}

    if need_tstr:
        report["tstr"], synthetic_sets = _tstr_axis(dataset, seeds, sources, classifiers, n, bar, options)
    main_synth = synthetic_sets.get(seeds[0]) or synthetic_like(sources[seeds[0]], train, seed=seeds[0])

    if "fidelity" in axes:
        from ntg.evaluation.fidelity import fidelity_report

        synth_test = synthetic_like(sources[seeds[0]], test, seed=seeds[0] + 101)
        details = fidelity_report(test, synth_test, per_class=True, seed=0)
        report["fidelity"] = {
            "reference": "test", "n_real": len(test), "n_synthetic": len(synth_test),
            "score": details["score"], "score_parts": details["score_parts"], "details": details,
        }
        figures_data["distributions"] = synth_test
        bar.update(1)
    if "privacy" in axes:
        details = _privacy(train, test, main_synth)
        if details is None:
            warnings.append("privacy axis skipped: ntg.evaluation.privacy is not available")
        else:
            keys = ("copy_rate", "natural_copy_rate", "copy_excess", "flag_memorisation")
            report["privacy"] = {
                "reference": "train", "n_train": len(train), "n_test": len(test),
                "n_synthetic": len(main_synth), **{k: details[k] for k in keys}, "details": details,
            }
        bar.update(1)
    if "augmentation" in axes:
        def fraction_generator(subset: FlowTable, seed: int) -> Generator:
            return fit_like(subset, None, seed)

        report["augmentation"] = run_augmentation(
            train, test, synthetic_source=sources[seeds[0]],
            fraction_generator=fraction_generator if fit_like is not None and augmentation_refit else None,
            fractions=fractions, seeds=tuple(range(augmentation_seeds)), classifier="rf", n_packets=n,
            progress=progress, classifier_options=options.get("rf"),
        )
        bar.update(1)
    if "cost" in axes:
        if gen is None:
            warnings.append("cost axis skipped: it needs a generator, not a synthetic file")
        else:
            from ntg.evaluation.cost import measure_cost

            report["cost"] = measure_cost(gen, run_dir, n_flows=cost_flows, batch=cost_batch, seed=seeds[0])
        bar.update(1)
    bar.close()

    report.update(
        schema_version=report_mod.REPORT_SCHEMA_VERSION,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        ntg_version=getattr(ntg, "__version__", None),
        data={"path": str(Path(data_dir)), "classes": dataset.classes, "stored_split_seed": seeds[0],
              "flows": {"train": len(dataset.train), "val": len(dataset.val), "test": len(dataset.test)}},
        source=source,
        settings={"axes": list(axes), "n_packets": n, "split_seeds": seeds, "retrain": retrain,
                  "classifiers": list(classifiers), "augmentation_fractions": [float(f) for f in fractions],
                  "augmentation_seeds": augmentation_seeds, "augmentation_refit": augmentation_refit,
                  "classifier_options": options,
                  "wall_s": time.perf_counter() - started},
        figures={},
        warnings=warnings,
    )
    report["headline"] = report_mod.headline(report)
    if out_dir is not None:
        write_all(report, out_dir, test, figures_data.get("distributions", main_synth), n)
    return report


def write_all(
    report: dict[str, Any], out_dir: str | Path, real_test: FlowTable, synth: FlowTable, n: int,
    force: bool = False,
) -> Path:
    """Figures, ``report.json`` and ``report.md`` into ``out_dir``, replaced as a whole (atomically)."""
    from ntg.utils.io import atomic_dir, claim_output_dir

    claim_output_dir(out_dir, "report", force=force, mark=False)

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        figures = tmp / "figures"
        names: dict[str, str] = {}
        if report["tstr"]:
            first = report["tstr"]["split_seeds"][0]
            for entry in report["tstr"]["per_seed"]:
                if entry["seed"] != first:
                    continue
                for kind in ("tstr", "trtr"):
                    if entry[kind]:
                        name = f"confusion_{kind}_{entry['classifier']}"
                        report_mod.plot_confusion(entry[kind], figures / f"{name}.png",
                                                  f"{kind.upper()} {entry['classifier']}, split seed {first}")
                        names[name] = f"figures/{name}.png"
        report_mod.plot_distributions(real_test, synth, n, figures / "distributions.png")
        names["distributions"] = "figures/distributions.png"
        if report["augmentation"]:
            report_mod.plot_augmentation(report["augmentation"], figures / "augmentation.png")
            names["augmentation"] = "figures/augmentation.png"
        report["figures"] = names
        report_mod.write_report(report, tmp)
    return out_dir


# ---------------------------------------------------------------------------------------------- compare
def compare(reports: dict[str, dict[str, Any]], out_png: str | Path | None = None) -> tuple[str, Path | None]:
    """A markdown table (rows: generators; columns: each axis's headline) and a fidelity-vs-cost PNG.

    The PNG (x: sampling µs per flow, y: fidelity score) is written to ``out_png`` when given and at least
    one report has both figures. The bootstrap baseline is marked with ``*``.
    """
    header = ["generator", "fidelity score ↓", "TSTR macro-F1", "copy rate", "TSTR/TRTR",
              "augmentation gain", "parameters", "flows/s"]
    rows, points = [], {}
    for name, rep in reports.items():
        h = rep["headline"]
        label = f"{name} *" if (rep.get("source") or {}).get("is_bootstrap") else name
        rows.append([label, h["fidelity_score"], h["tstr_macro_f1"], h["copy_rate"], h["tstr_trtr_ratio"],
                     h["augmentation_gain"], h["parameters"], h["sampling_flows_per_s"]])
        if h["fidelity_score"] is not None and h["sampling_flows_per_s"]:
            points[name] = (1e6 / h["sampling_flows_per_s"], h["fidelity_score"])
    lines = report_mod._table(header, rows)
    if any((rep.get("source") or {}).get("is_bootstrap") for rep in reports.values()):
        lines += ["", "\\* " + report_mod.BOOTSTRAP_NOTE]
    png = None
    if out_png is not None and points:
        png = report_mod.plot_fidelity_vs_cost(points, out_png)
    return "\n".join(lines) + "\n", png
