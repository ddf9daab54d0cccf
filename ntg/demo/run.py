"""``run_demo``: prepare → sweeps → Pareto fronts → publish → serve → download → sample → compare → stop.

Each step goes through the public piece that a user would call (``ntg.data.prepare``, ``ntg.search.sweep``,
``ntg.search.pareto``, ``ntg.zoo.publish``, ``ntg.zoo.server``, plain ``huggingface_hub``,
``ntg.zoo.catalog``), so the demo is the platform's end-to-end check as much as its showcase.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from ntg.demo.budget import FULL, QUICK, SWEEP_FAMILIES, SWEEPS, DemoBudget, space_document
from ntg.demo.steps import StepRow, Steps, say
from ntg.errors import NtgError
from ntg.utils.io import atomic_path, claim_output_dir

NAMESPACE = "ntg-demo"
SERVED = ("download", "sample", "compare")  # the steps that need the zoo server


def run_demo(dataset: str = "iot-sentinel", workdir: str | Path = "artifacts/demo", families: list[str] | None = None,
             split_seeds: int | None = None, quick: bool = False, trials: int | None = None) -> dict[str, Any]:
    """Run (or resume) the demo in ``workdir``; returns what each step produced (see ``WORKDIR/steps.json``).

    ``trials`` replaces every sweep's trial count; ``families`` keeps only these families (and the sweeps
    that still have one).
    """
    families = list(families or SWEEP_FAMILIES)
    unknown = [f for f in families if f not in SWEEP_FAMILIES]
    if unknown:
        raise NtgError(f"--families {unknown[0]}: not a family of the demo's sweeps; choose from "
                       f"{', '.join(SWEEP_FAMILIES)}")
    if split_seeds is not None and split_seeds < 1:
        raise NtgError(f"--split-seeds {split_seeds}: give at least 1")
    if trials is not None and trials < 1:
        raise NtgError(f"--trials {trials}: run at least one trial")
    budget = QUICK if quick else FULL
    workdir = claim_output_dir(Path(workdir), "demo", option="--workdir")  # never a folder ntg did not write
    started = time.perf_counter()
    sweeps = {name: [f for f in members if f in families] for name, members in SWEEPS.items()}
    sweeps = {name: members for name, members in sweeps.items() if members}
    folder = workdir / ("sweeps-quick" if quick else "sweeps")
    sweep_dirs = {name: folder / (name if members == list(SWEEPS[name]) else "-".join(members))
                  for name, members in sweeps.items()}
    names = ("prepare", *(f"sweep {name}" for name in sweeps), "fronts", "publish", "serve", *SERVED, "stop")
    steps, zoo = Steps(workdir, names), workdir / "zoo"
    for name in sweeps:
        wanted = trials or budget.trials[name]
        if (steps.info(f"sweep {name}") or {}).get("trials", wanted) < wanted:  # cut short by its time budget
            steps.forget(f"sweep {name}")

    data = steps.run("prepare", workdir / "data", lambda: _prepare(dataset, workdir / "data"))
    for name, members in sweeps.items():
        steps.run(f"sweep {name}", sweep_dirs[name],
                  lambda name=name, members=members: _sweep(budget, name, members, trials, workdir / "data",
                                                            sweep_dirs[name]))
    steps.run("fronts", folder, lambda: {name: _pareto(path) for name, path in sweep_dirs.items()})
    published = steps.run("publish", zoo, lambda: [repo for path in sweep_dirs.values() for repo in _publish(
        path, zoo, replace(budget, split_seeds=split_seeds or budget.split_seeds))])
    results: dict[str, Any] = {"data": data, "published": published, "sweeps": {k: str(v) for k, v in
                                                                                sweep_dirs.items()}}
    if not all(steps.done(name) for name in SERVED):
        results.update(_served(steps, workdir, sweep_dirs, zoo, published, budget))
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


def _sweep(budget: DemoBudget, name: str, families: list[str], trials: int | None, data_dir: Path,
           sweep_dir: Path) -> dict[str, Any]:
    """One sweep on a local Ray instance (started and stopped by ``run_sweep``); resumes a cut-off one."""
    from ntg.search.sweep import SweepOptions, run_sweep

    space = sweep_dir.parent / f"space-{sweep_dir.name}.yaml"
    space.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(space) as tmp:
        tmp.write_text("# written by ntg demo (ntg/demo/budget.py)\n"
                       + yaml.safe_dump(space_document(budget, families), sort_keys=False))
    options = SweepOptions(spaces=[space], data_dir=data_dir, n_trials=trials or budget.trials[name],
                           out=sweep_dir, sampler="tpe", seed=0, cpus_per_trial=1.0, max_epochs=budget.epochs,
                           time_budget_s=budget.sweep_seconds[name], resume=(sweep_dir / "sweep.json").exists())
    summary = run_sweep(options, log=lambda line: say("    " + line))
    return {"trials": summary["trials"], "counts": summary["counts"], "front": summary["front"]}


def _pareto(sweep_dir: Path) -> dict[str, Any]:
    from ntg.search.pareto import compute_front, format_table, write_front

    result = compute_front(sweep_dir)
    paths = write_front(result, sweep_dir)
    print(format_table(result))
    return {"front": result.front["trial_id"].tolist(), "hypervolume": result.hypervolume,
            "files": {k: str(v) for k, v in paths.items()}}


def _publish(sweep_dir: Path, zoo: Path, budget: DemoBudget) -> list[dict[str, Any]]:
    from ntg.zoo.publish import publish_sweep

    published = publish_sweep(sweep_dir, NAMESPACE, zoo_dir=zoo, split_seeds=budget.split_seeds, only_front=True,
                              augmentation_seeds=budget.card_augmentation_seeds,
                              augmentation_fractions=budget.card_fractions)
    return [{**repo, "sweep_dir": str(sweep_dir)} for repo in published]


def choose(published: list[dict[str, Any]]) -> dict[str, Any]:
    """The generator the demo downloads: the most faithful neural one (the round trip that matters: network
    weights), else the most faithful of all."""
    if not published:
        raise NtgError("nothing was published, so there is nothing to download; see the fronts above")
    neural = [p for p in published if p["family"] in SWEEPS["neural"]]
    return min(neural or published, key=lambda p: p["metrics"].get("fidelity_score", float("inf")))


def _served(steps: Steps, workdir: Path, sweep_dirs: dict[str, Path], zoo: Path, published: list[dict[str, Any]],
            budget: DemoBudget) -> dict[str, Any]:
    """Start the zoo server, run the steps that read through it, and stop it whatever happens."""
    from ntg.demo.hub import compare_fronts, download, sample_check
    from ntg.zoo.server import ZooServer

    server = ZooServer(zoo)
    steps.rows.append(_timed(steps, "serve", server.start))
    steps.rows[-1].path = f"{server.endpoint} (log {server.log_path})"
    try:
        chosen = choose(published)
        local = steps.run("download", workdir / "hub-cache",
                          lambda: download(chosen["repo_id"], server.endpoint, workdir / "hub-cache"))
        out = workdir / "samples" / f"{chosen['repo_id'].split('/')[-1]}.parquet"
        sampled = steps.run("sample", out, lambda: sample_check(Path(local["path"]), Path(chosen["sweep_dir"]),
                                                                chosen, out, budget.sample_flows))
        compared = steps.run("compare", workdir / "compare",
                             lambda: compare_fronts(published, server.endpoint, zoo, workdir / "compare"))
    finally:
        steps.rows.append(_timed(steps, "stop", server.stop))
    return {"download": local, "sample": sampled, "compare": compared, "endpoint": server.endpoint}


def _timed(steps: Steps, name: str, fn: Any) -> StepRow:
    """A step that always runs (the server is a process, not an artefact): timed, never recorded as done."""
    say(f"{steps.names.index(name) + 1}/{len(steps.names)} {name}")
    started = time.perf_counter()
    fn()
    seconds = time.perf_counter() - started
    say(f"    {name} done in {seconds:.0f} s")
    return StepRow(name, seconds, "-")
