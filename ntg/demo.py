"""``ntg demo`` / ``make demo``: the reference paper's comparison on our data, end to end.

Prepare ``iot-sentinel`` (29 device types), train every generator family and baseline with its default
config, evaluate each on every axis, and write one comparison table plus a fidelity-vs-cost plot. Every step
writes its result atomically and is skipped when its result already exists, so an interrupted demo resumes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from ntg.errors import NtgError
from ntg.utils.io import claim_output_dir, read_json

FAMILIES = ("bootstrap", "marginals", "markov", "gmm", "transformer", "ssm", "diffusion")
NEURAL = ("transformer", "ssm", "diffusion")

# Training budgets that keep the whole demo within about 30 minutes on 2 CPU cores; a GPU or a longer
# budget (`ntg train` with the default TrainConfig) gives better generators.
DEMO_OVERRIDES: dict[str, list[str]] = {
    "transformer": ["train.epochs=20", "train.patience=3"],
    "ssm": ["train.epochs=8", "train.patience=2"],
    "diffusion": ["train.epochs=30", "train.patience=4", "model.sampling_steps=10"],
}
QUICK_OVERRIDES: dict[str, list[str]] = {
    "transformer": ["train.epochs=1", "train.max_train_flows=1500", "model.d_model=64", "model.n_heads=2",
                    "model.mlp_hidden=128", "model.n_layers=2"],
    "ssm": ["train.epochs=1", "train.max_train_flows=1500", "model.d_model=64", "model.n_layers=2"],
    "diffusion": ["train.epochs=1", "train.max_train_flows=1500", "model.sampling_steps=8"],
}


def _say(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_demo(
    dataset: str = "iot-sentinel",
    workdir: str | Path = "artifacts/demo",
    families: list[str] | None = None,
    split_seeds: int = 2,
    quick: bool = False,
) -> dict[str, Any]:
    """Run (or resume) the demo in ``workdir``; returns the per-generator headline metrics."""
    from ntg.data.prepare import PrepareOptions, prepare_dataset
    from ntg.evaluation.evaluate import compare, evaluate
    from ntg.training.runs import train_run
    from ntg.utils.io import atomic_path

    workdir = Path(workdir)
    families = list(families or FAMILIES)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise NtgError(f"--families {unknown[0]}: not a generator family; choose from {', '.join(FAMILIES)}")
    if split_seeds < 1:
        raise NtgError(f"--split-seeds {split_seeds}: give at least 1")
    claim_output_dir(workdir, "demo", option="--workdir")  # before anything: never a folder ntg did not write
    started = time.time()
    _say(f"1/4 prepare {dataset}")
    data = prepare_dataset(dataset, workdir / "data", PrepareOptions())
    _say(f"    {len(data.flows)} biflows, {len(data.classes)} classes "
         f"(train {len(data.train)}, val {len(data.val)}, test {len(data.test)})")

    overrides = QUICK_OVERRIDES if quick else DEMO_OVERRIDES
    for i, family in enumerate(families, 1):
        run_dir = workdir / "runs" / family
        if (run_dir / "train_log.json").exists():
            _say(f"2/4 train {family} ({i}/{len(families)}): done before, reusing {run_dir}")
            continue
        _say(f"2/4 train {family} ({i}/{len(families)})")
        t0 = time.time()
        train_run(family, data.root, run_dir, overrides=overrides.get(family, []), progress=True)
        _say(f"    {family} trained in {time.time() - t0:.0f} s")

    reports: dict[str, dict[str, Any]] = {}
    for i, family in enumerate(families, 1):
        out = workdir / "reports" / family
        if (out / "report.json").exists():
            _say(f"3/4 evaluate {family} ({i}/{len(families)}): done before, reusing {out}")
            reports[family] = read_json(out / "report.json")
            continue
        _say(f"3/4 evaluate {family} ({i}/{len(families)})")
        t0 = time.time()
        reports[family] = evaluate(
            data.root,
            generator=workdir / "runs" / family,
            out_dir=out,
            split_seeds=1 if quick else split_seeds,
            classifiers=("rf",),
            augmentation_seeds=1 if quick else 2,
            augmentation_refit=family not in NEURAL,
            progress=True,
        )
        _say(f"    {family} evaluated in {time.time() - t0:.0f} s")

    for family in FAMILIES:  # a partial re-run (--families) still compares every generator evaluated so far
        report_file = workdir / "reports" / family / "report.json"
        if family not in reports and report_file.exists():
            reports[family] = read_json(report_file)
    order = [f for f in FAMILIES if f in reports] + [f for f in reports if f not in FAMILIES]
    reports = {f: reports[f] for f in order}
    _say("4/4 compare")
    table, png = compare(reports, workdir / "fidelity_vs_cost.png")
    with atomic_path(workdir / "comparison.md") as tmp:
        tmp.write_text(f"# ntg demo: {dataset}\n\n{table}\n")
    print(table)
    if png:
        print(f"fidelity vs cost plot: {png}")
    print(f"reports: {workdir / 'reports'}/<generator>/report.md    ({time.time() - started:.0f} s in all)")
    return {name: rep["headline"] for name, rep in reports.items()}
