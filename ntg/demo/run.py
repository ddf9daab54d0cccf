"""``run_demo``: prepare → sweep → Pareto front → publish → serve → download → sample → compare → stop.

Each step goes through the public piece that a user would call (``ntg.data.prepare``, ``ntg.search.sweep``,
``ntg.search.pareto``, ``ntg.zoo.publish``, ``ntg.zoo.server``, plain ``huggingface_hub``,
``ntg.zoo.catalog``), so the demo is the platform's end-to-end check as much as its showcase.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from ntg.demo.budget import FULL, QUICK, SWEEP_FAMILIES, DemoBudget, space_document
from ntg.demo.steps import Steps, say
from ntg.errors import NtgError
from ntg.utils.io import atomic_path, claim_output_dir

NAMESPACE = "ntg-demo"
STEPS = ("prepare", "sweep", "pareto", "publish", "serve", "download", "sample", "compare", "stop")
SERVED = ("download", "sample", "compare")  # the steps that need the zoo server
#: fidelity against compute, as every sweep; TSTR beside them so the front also keeps the generators that are
#: most useful for training classifiers (with two objectives the Markov chain, 0 FLOPs, dominates every
#: neural generator that a demo budget trains)
OBJECTIVES = ("fidelity", "flops_per_flow", "tstr_f1")


def run_demo(dataset: str = "iot-sentinel", workdir: str | Path = "artifacts/demo", families: list[str] | None = None,
             split_seeds: int | None = None, quick: bool = False, trials: int | None = None) -> dict[str, Any]:
    """Run (or resume) the demo in ``workdir``; returns what each step produced (see ``WORKDIR/steps.json``)."""
    families = list(families or SWEEP_FAMILIES)
    unknown = [f for f in families if f not in SWEEP_FAMILIES]
    if unknown:
        raise NtgError(f"--families {unknown[0]}: not a family of the demo's sweep; choose from "
                       f"{', '.join(SWEEP_FAMILIES)}")
    if split_seeds is not None and split_seeds < 1:
        raise NtgError(f"--split-seeds {split_seeds}: give at least 1")
    if trials is not None and trials < 1:
        raise NtgError(f"--trials {trials}: run at least one trial")
    budget = QUICK if quick else FULL
    workdir = claim_output_dir(Path(workdir), "demo", option="--workdir")  # never a folder ntg did not write
    started = time.perf_counter()
    steps = Steps(workdir, STEPS)
    suffix = ("-quick" if quick else "") + ("" if families == list(SWEEP_FAMILIES) else "-" + "-".join(families))
    sweep_dir, zoo = workdir / f"sweep{suffix}", workdir / "zoo"

    n_trials = trials or budget.trials
    if (steps.info("sweep") or {}).get("trials", n_trials) < n_trials:  # cut short by its time budget, or more asked
        steps.forget("sweep")
    data = steps.run("prepare", workdir / "data", lambda: _prepare(dataset, workdir / "data"))
    steps.run("sweep", sweep_dir, lambda: _sweep(budget, families, n_trials, workdir, sweep_dir))
    steps.run("pareto", sweep_dir / "front.png", lambda: _pareto(sweep_dir))
    published = steps.run("publish", zoo, lambda: _publish(sweep_dir, zoo, split_seeds or budget.split_seeds))
    results: dict[str, Any] = {"data": data, "published": published}
    if not all(steps.done(name) for name in SERVED):
        results.update(_served(steps, workdir, sweep_dir, zoo, published, budget))
    else:  # nothing left that needs the server: the recorded results are reused
        results.update({name: steps.run(name, "-", lambda: None) for name in SERVED})

    listing = workdir / "compare" / "generators.txt"
    if listing.is_file():
        print(listing.read_text().rstrip())
    total = time.perf_counter() - started
    table = steps.table(total)
    with atomic_path(workdir / "summary.md") as tmp:
        tmp.write_text(f"# ntg demo: {dataset}\n\n{table}\n")
    print(table)
    print(f"summary: {workdir / 'summary.md'}    serve the zoo again: ntg zoo serve --zoo {zoo}")
    return results


def _prepare(dataset: str, out: Path) -> dict[str, Any]:
    from ntg.data.prepare import PrepareOptions, prepare_dataset

    data = prepare_dataset(dataset, out, PrepareOptions())
    say(f"    {len(data.flows)} biflows, {len(data.classes)} classes "
        f"(train {len(data.train)}, val {len(data.val)}, test {len(data.test)})")
    return {"flows": len(data.flows), "classes": len(data.classes), "train": len(data.train),
            "val": len(data.val), "test": len(data.test)}


def _sweep(budget: DemoBudget, families: list[str], trials: int, workdir: Path, sweep_dir: Path) -> dict:
    """The sweep on a local Ray instance (started and stopped by ``run_sweep``); resumes a cut-off one."""
    from ntg.search.sweep import SweepOptions, run_sweep

    space = workdir / f"space{sweep_dir.name[len('sweep'):]}.yaml"
    with atomic_path(space) as tmp:
        tmp.write_text("# written by ntg demo (ntg/demo/budget.py)\n"
                       + yaml.safe_dump(space_document(budget, families), sort_keys=False))
    options = SweepOptions(spaces=[space], data_dir=workdir / "data", n_trials=trials, objectives=list(OBJECTIVES),
                           out=sweep_dir, sampler="tpe", seed=0, cpus_per_trial=1.0, max_epochs=budget.epochs,
                           time_budget_s=budget.sweep_seconds, resume=(sweep_dir / "sweep.json").exists())
    summary = run_sweep(options, log=lambda line: say("    " + line))
    return {"trials": summary["trials"], "counts": summary["counts"], "front": summary["front"]}


def _pareto(sweep_dir: Path) -> dict[str, Any]:
    from ntg.search.pareto import compute_front, format_table, write_front

    result = compute_front(sweep_dir)
    paths = write_front(result, sweep_dir)
    print(format_table(result))
    return {"front": result.front["trial_id"].tolist(), "hypervolume": result.hypervolume,
            "files": {k: str(v) for k, v in paths.items()}}


def _publish(sweep_dir: Path, zoo: Path, split_seeds: int) -> list[dict[str, Any]]:
    from ntg.zoo.publish import publish_sweep

    return publish_sweep(sweep_dir, NAMESPACE, zoo_dir=zoo, split_seeds=split_seeds, only_front=True, progress=True)


def _served(steps: Steps, workdir: Path, sweep_dir: Path, zoo: Path, published: list[dict[str, Any]],
            budget: DemoBudget) -> dict[str, Any]:
    """Start the zoo server, run the steps that read through it, and stop it whatever happens."""
    from ntg.demo.hub import compare_fronts, download, sample_check
    from ntg.zoo.server import ZooServer

    server = ZooServer(zoo)
    steps.rows.append(_timed(steps, "serve", server.start))
    steps.rows[-1].path = f"{server.endpoint} (log {server.log_path})"
    try:
        chosen = min(published, key=lambda p: p["metrics"].get("fidelity_score", float("inf")))
        local = steps.run("download", workdir / "hub-cache",
                          lambda: download(chosen["repo_id"], server.endpoint, workdir / "hub-cache"))
        out = workdir / "samples" / f"{chosen['repo_id'].split('/')[-1]}.parquet"
        sampled = steps.run("sample", out, lambda: sample_check(Path(local["path"]), sweep_dir, chosen, out,
                                                                budget.sample_flows))
        compared = steps.run("compare", workdir / "compare",
                             lambda: compare_fronts(published, server.endpoint, zoo, workdir / "compare"))
    finally:
        steps.rows.append(_timed(steps, "stop", server.stop))
    return {"download": local, "sample": sampled, "compare": compared, "endpoint": server.endpoint}


def _timed(steps: Steps, name: str, fn: Any) -> Any:
    """A step that always runs (the server is a process, not an artefact): timed, never recorded as done."""
    from ntg.demo.steps import StepRow

    say(f"{steps.names.index(name) + 1}/{len(steps.names)} {name}")
    started = time.perf_counter()
    fn()
    seconds = time.perf_counter() - started
    say(f"    {name} done in {seconds:.0f} s")
    return StepRow(name, seconds, "-")
