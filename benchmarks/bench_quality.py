"""Quality of every generator family on the shared datasets over split seeds, against the targets of issue #11.

    python benchmarks/bench_quality.py [--datasets iot-sentinel ndpi-pcaps requet] [--seeds S ...]
        [--scoring-seeds S ...] [--families bootstrap marginals markov gmm transformer ssm diffusion] [--jobs 2]
        [--device auto]
        [--aug-datasets iot-sentinel] [--aug-families markov transformer ssm diffusion] [--aug-fractions 0.01]
        [--aug-seeds 0 1 2] [--cache /tmp/ntg-bench/quality] [--data-root ../shared/datasets]
        [--fresh [FAMILY|DATASET:FAMILY ...]] [--reuse benchmarks/results/quality.json]
        [--max-flows-per-class N] [--epochs N] [--out benchmarks/results/quality]   (last two: smoke tests only)

``--datasets`` takes registry names or paths to your own captures or flow files (whatever ``ntg prepare`` takes),
split by capture where the source names captures. Each (dataset, split seed, family) cell fits
``create_generator(family)`` with its defaults on the prepared training split (``--cache``, outside the repository)
and scores it with :func:`ntg.evaluation.fast.fast_scores` on the **test** split, once per scoring seed (the seed of
the sampled flows and of the Random Forests; the cell keeps the means, and the privacy gate only where it passed for
every seed): TSTR/TRTR (RF macro-F1), fidelity score (lower is better), copy rate beside the natural one, median DCR
beside the hold-out's, the privacy gate, fit seconds, parameters, (neural) epochs. On split seed 0
:func:`ntg.evaluation.augmentation.run_augmentation` gives the low-data augmentation under both protocols (generator
fitted on the full training split; refitted on the fraction alone) beside real-only, SMOTE, the hand-crafted
augmentations and the 100 % ceiling. Cells run longest first in ``--jobs`` spawned one-thread processes, each stored
atomically in ``--cache``/cells and reused by a re-run (``--fresh``: refit every cell, or the cells of the named
families, ``FAMILY``, or of one set's family, ``DATASET:FAMILY``, after a change to their code; ``--reuse RESULTS_JSON``
seeds the cache with an earlier run's cells where their settings match, ``bench_cache.py``); after a change to the
evaluation code (``ntg/evaluation``) or to the scoring seeds a re-run scores the stored generators again without
refitting them. Writes ``--out``.json (records, aggregates, targets, augmentation, environment, wall time), ``.md`` and
``.png``.

Targets, per dataset, on the means over split seeds: (a) every GenAI family (transformer, ssm, diffusion) has
TSTR/TRTR ≥ markov's and fidelity ≤ markov's; (b) the best GenAI TSTR/TRTR ≥ markov's + 0.05 (N/A where TSTR F1
≤ 1 makes that unreachable: markov + 0.05 above the mean of 1 / TRTR); (c) transformer ≥ 0.95 wherever markov ≥
0.90 (N/A elsewhere); (d) diffusion ≥ markov on iot-sentinel; (e) ``privacy_ok`` (copy rate ≤ natural + margin,
median DCR ≥ 0.5 × the hold-out's) on every split seed of every family. Beside them, each GenAI family against
markov on the same split seeds: the mean per-seed difference with its 95 % t interval (``quality_report.py``,
which also aggregates and renders).

Seeds by default (:func:`default_seeds`): split seeds 0–4 scored with seed 0 on large sets; on sets under 4,096
training flows, where a fit takes seconds and the noise is widest (item 11), split seeds 0–9, each cell scored
with seeds 0, 1 and 2.

Measured results, dated, and the investigation behind every default (the numbered items that the README and
the model docstrings cite as "item N"): ``benchmarks/quality_findings.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is no package: its report module sits beside

from bench_cache import cache_name, cached, chosen, seed_from_results  # noqa: E402
from quality_report import GENAI, aggregate, check_targets, fmt, paired_against_markov, plot, render_markdown  # noqa: E402

from ntg.families import FAMILIES  # noqa: E402

DATASETS = ("iot-sentinel", "ndpi-pcaps", "requet")
AUG_FAMILIES = ("markov", *GENAI)  # the strongest baseline beside the networks
SPLIT_SEEDS = (0, 1, 2, 3, 4)  # the issue asks for at least 3; one split moves a family by up to 0.4 on ndpi-pcaps
SMALL_SET_SEEDS = tuple(range(10))  # sets under data_rules.SMALL_DATA_FLOWS training flows: cheap fits, wider noise
SMALL_SET_SCORING_SEEDS = (0, 1, 2)  # and each of their cells sampled and scored three times (item 11)
AUG_SEEDS = (0, 1, 2)
FIT_KEYS = ("fit_s", "params", "best_epoch", "epochs_run", "train_device", "train_flows")  # what a re-score keeps


# ---------------------------------------------------------------------------------------------- cells (workers)
def _one_thread() -> None:
    """Every worker trains and scores on one thread (set before any work; OMP_NUM_THREADS is inherited)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def _fit(gen: Any, train: Any, val: Any, task: dict[str, Any]) -> float:
    """Fit ``gen`` on (train, val), the neural families with the device (and the smoke-test epochs override) as
    ``train_config``; the wall seconds of the fit."""
    from ntg.models.neural import NeuralGenerator

    config = {"device": task["device"], **({"epochs": task["epochs"]} if task["epochs"] else {})}
    started = time.perf_counter()
    gen.fit(train, val, **({"train_config": config} if isinstance(gen, NeuralGenerator) else {}))
    return time.perf_counter() - started


def _generator_dir(task: dict[str, Any]) -> Path:
    """Where a quality cell keeps its fitted generator, for the augmentation cell of the same split to reuse."""
    folder = f"{cache_name(task['dataset'])}-s{task['seed']}-{task['family']}"
    return Path(task["path"]).parent.parent / "generators" / folder


def _fit_config(task: dict[str, Any]) -> dict[str, Any]:
    """The settings a fitted generator depends on (the dataset and, for neural families, epochs and device)."""
    return {k: v for k, v in task["config"].items() if k not in ("fractions", "seeds", "scoring", "scoring_seeds")}


def scoring_key(kind: str) -> str:
    """A digest of the evaluation code a cell of ``kind`` runs (``ntg/evaluation/*.py``, less ``augmentation.py``
    for a quality cell, which never runs it): a cell scored by other code is scored again."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "ntg" / "evaluation").glob("*.py")):
        if not (kind == "quality" and path.name == "augmentation.py"):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _stored_fit(task: dict[str, Any]) -> dict[str, Any] | None:
    """The fit facts of this cell's stored record when its generator is stored with the same fit settings (only
    the scoring changed): the cell is then scored again with that generator, not refitted."""
    from ntg.utils.io import read_json

    path, config = Path(task["path"]), _generator_dir(task) / "bench-config.json"
    try:
        record = read_json(path) if path.exists() and config.exists() else None
        same = record is not None and read_json(config) == _fit_config(task) == _fit_config(record)
    except ValueError:
        return None
    return {k: record.get(k) for k in FIT_KEYS} if same and record else None


def _fitted_or_fit(task: dict[str, Any], train: Any, val: Any) -> tuple[Any, float | None]:
    """The quality cell's generator of this split when it was fitted with the same settings, else a new fit."""
    from ntg.models.base import create_generator, load_generator
    from ntg.utils.io import read_json

    folder = _generator_dir(task)
    reuse = not task.get("refit") and (folder / "bench-config.json").exists()  # refit: the quality cell may be running
    if reuse and read_json(folder / "bench-config.json") == _fit_config(task):
        return load_generator(folder), None
    gen = create_generator(task["family"])
    return gen, _fit(gen, train, val, task)


def quality_cell(task: dict[str, Any]) -> dict[str, Any]:
    """Fit one default family on one prepared split (or load its stored generator when only the scoring changed)
    and score it with the fast profile on the test split."""
    from ntg.data.dataset import PreparedDataset
    from ntg.evaluation.fast import fast_scores
    from ntg.models.base import create_generator, load_generator
    from ntg.training.runs import train_inputs
    from ntg.utils.io import write_json

    started, dataset = time.perf_counter(), PreparedDataset.load(task["data"])
    stored = None if task.get("refit") else _stored_fit(task)
    if stored:
        gen, fit = load_generator(_generator_dir(task)), stored
    else:
        gen = create_generator(task["family"])
        train, val = train_inputs(dataset, gen.n_packets)
        fit_s = _fit(gen, train, val, task)
        gen.save_pretrained(_generator_dir(task))
        write_json(_generator_dir(task) / "bench-config.json", _fit_config(task))
        log = gen.fit_log_ or {}
        fit = {"fit_s": fit_s, "params": gen.num_parameters(), "best_epoch": log.get("best_epoch"),
               "epochs_run": len(log.get("history") or []) or None, "train_device": log.get("device", "cpu"),
               "train_flows": len(train)}
    runs = [fast_scores(gen, dataset, split="test", seed=s, classifier_options={"n_jobs": 1})
            for s in task.get("scoring_seeds", [0])]
    return {**_key(task), **mean_scores(runs), **fit, "rescored": bool(stored),
            "cell_s": time.perf_counter() - started}


def mean_scores(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One cell's scores over its scoring seeds: the mean of each figure and of the per-seed TSTR/TRTR (None if a
    TRTR F1 is 0), ``eval_seconds`` summed, ``privacy_ok`` only when the gate passed for every seed, and the
    per-seed ratios in ``ratio_per_scoring_seed``."""
    ratios = [r["tstr_f1"] / r["trtr_f1"] if r["trtr_f1"] else None for r in runs]
    out: dict[str, Any] = {k: sum(r[k] for r in runs) / len(runs) for k in runs[0] if k not in ("privacy_ok",)}
    out["eval_seconds"] = sum(r["eval_seconds"] for r in runs)
    out["privacy_ok"] = all(r["privacy_ok"] for r in runs)
    out["ratio"] = None if None in ratios else sum(ratios) / len(ratios)
    if len(runs) > 1:
        out["ratio_per_scoring_seed"] = ratios
    return out


def augmentation_cell(task: dict[str, Any]) -> dict[str, Any]:
    """Low-data augmentation of one family: fitted on the full training split, and refitted on each fraction."""
    from ntg.data.dataset import PreparedDataset
    from ntg.evaluation.augmentation import run_augmentation
    from ntg.models.base import create_generator
    from ntg.training.runs import train_inputs

    started, dataset = time.perf_counter(), PreparedDataset.load(task["data"])
    train, val = train_inputs(dataset, create_generator(task["family"]).n_packets)
    gen, fit_s = _fitted_or_fit(task, train, val)  # fit_s None: the quality cell's generator was reused

    def factory(subset: Any, seed: int) -> Any:  # a fresh default generator, seeded like evaluate's refits
        fresh = create_generator(task["family"], seed=seed) if seed else create_generator(task["family"])
        _fit(fresh, subset, None, task)
        return fresh

    result = run_augmentation(train, dataset.test.first(gen.n_packets), synthetic_source=gen,
                              fraction_generator=factory, fractions=tuple(task["fractions"]),
                              seeds=tuple(task["aug_seeds"]), classifier="rf", n_packets=gen.n_packets,
                              classifier_options={"n_jobs": 1})
    return {**_key(task), "augmentation": result, "fit_s": fit_s, "cell_s": time.perf_counter() - started}


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Run one cell and store its record atomically in the cache (the unit of resumption)."""
    from ntg.utils.io import write_json

    record = (augmentation_cell if task["kind"] == "augmentation" else quality_cell)(task)
    record["config"] = task["config"]
    write_json(task["path"], record)
    return record


def _key(task: dict[str, Any]) -> dict[str, Any]:
    return {k: task[k] for k in ("kind", "dataset", "seed", "family")}


# ---------------------------------------------------------------------------------------------- planning
def default_seeds(n_train: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(split seeds, scoring seeds) for a set of ``n_train`` training flows: 0–4 and 0 on large sets; on a set under
    ``SMALL_DATA_FLOWS`` training flows, where a fit takes seconds, a split moves a family by up to 0.4 and the
    sampling seed alone by 0.1 (ndpi-pcaps, item 11), split seeds 0–9, each cell scored with seeds 0–2."""
    from ntg.models.data_rules import small_data

    return (SMALL_SET_SEEDS, SMALL_SET_SCORING_SEEDS) if small_data(n_train) else (SPLIT_SEEDS, (0,))


def prepare_all(args: argparse.Namespace) -> tuple[dict[tuple[str, int], Any], dict[str, tuple[list, list]]]:
    """Prepare every (dataset, split seed) in this process before any cell starts (a cache hit when up to date);
    the prepared splits and each benchmarked dataset's (split seeds, scoring seeds): ``--seeds`` and
    ``--scoring-seeds`` where given, else :func:`default_seeds` of its split seed 0."""
    prepared: dict[tuple[str, int], Any] = {}
    seeds: dict[str, tuple[list, list]] = {}
    for name in dict.fromkeys([*args.datasets, *args.aug_datasets]):
        given = bool(args.seeds and args.scoring_seeds)  # else split seed 0 tells the set's size
        split, scoring = ((), ()) if given else default_seeds(len(_prepare(args, name, 0, prepared).train))
        seeds[name] = (sorted(args.seeds or split), sorted(args.scoring_seeds or scoring))
        for seed in sorted(set(seeds[name][0]) | ({0} if name in args.aug_datasets else set())):
            _prepare(args, name, seed, prepared)
    return prepared, {name: seeds[name] for name in args.datasets}


def _prepare(args: argparse.Namespace, name: str, seed: int, prepared: dict[tuple[str, int], Any]) -> Any:
    """One prepared split, kept in ``prepared`` (prepared once per run)."""
    from ntg.data.prepare import PrepareOptions, prepare_dataset

    if (name, seed) in prepared:
        return prepared[name, seed]
    started = time.perf_counter()
    cap = f"-cap{args.max_flows_per_class}" if args.max_flows_per_class else ""
    options = PrepareOptions(split_seed=seed, max_flows_per_class=args.max_flows_per_class)
    ds = prepare_dataset(name, args.cache / f"{cache_name(name)}-s{seed}{cap}", options, root=args.data_root,
                         offline=True, jobs=args.jobs, progress=False, log=lambda m: None)
    prepared[name, seed] = ds
    print(f"prepared {name} split seed {seed}: {len(ds.train)}/{len(ds.val)}/{len(ds.test)} flows "
          f"train/val/test, {len(ds.classes)} classes ({time.perf_counter() - started:.1f} s)", flush=True)
    return ds


def plan(args: argparse.Namespace, prepared: dict[tuple[str, int], Any], seeds: dict[str, tuple[list, list]]
         ) -> list[dict[str, Any]]:
    """Every cell as a task, longest first (neural families on the largest training splits)."""
    tasks, scoring = [], {kind: scoring_key(kind) for kind in ("quality", "augmentation")}
    skip = {tuple(x.split(":", 1)) for x in args.exclude}
    wanted = [("quality", d, s, f) for d in args.datasets for s in seeds[d][0] for f in args.families
              if (d, f) not in skip]
    wanted += [("augmentation", d, 0, f) for d in args.aug_datasets for f in args.aug_families]
    for kind, name, seed, family in wanted:
        ds = prepared[name, seed]
        neural = {"epochs": args.epochs, "device": args.device} if family in GENAI else {}  # baselines ignore them
        config = {"dataset_key": ds.meta.get("cache_key"), **neural, "scoring": scoring[kind]}
        scoring_seeds = seeds[name][1] if kind == "quality" else [0]
        if scoring_seeds != [0]:  # absent for the one seed 0, as in cells stored before scoring seeds existed
            config["scoring_seeds"] = scoring_seeds
        if kind == "augmentation":
            config.update(fractions=list(args.aug_fractions), seeds=list(args.aug_seeds))
        # augmentation after the quality cells, so that it finds their fitted generators (seed 0)
        cost = len(ds.train) * (100 if family in GENAI else 1) * (0.5 if kind == "augmentation" else 1)
        tasks.append({"kind": kind, "dataset": name, "seed": seed, "family": family, "data": str(ds.root),
                      "epochs": args.epochs, "device": args.device, "fractions": list(args.aug_fractions),
                      "aug_seeds": list(args.aug_seeds), "scoring_seeds": scoring_seeds, "config": config,
                      "cost": cost * len(scoring_seeds) ** 0.5,
                      "path": str(args.cache / "cells" / f"{kind}-{cache_name(name)}-s{seed}-{family}.json")})
    return sorted(tasks, key=lambda t: -t["cost"])


def run_cells(tasks: list[dict[str, Any]], jobs: int, fresh: list[str] | None, started: float
              ) -> tuple[list, list]:
    """Reuse or compute every cell (``jobs`` spawned workers; in this process when 1); (records, errors)."""
    records, errors, todo = [], [], []
    for task in tasks:
        refit = fresh is not None and (not fresh or chosen(task, fresh))
        record = None if refit else cached(task)
        if record is None:
            todo.append({**task, "refit": refit})
        else:
            records.append(record)
            print(progress_line(record, started, "cached"), flush=True)
    if jobs <= 1:
        _one_thread()
        outcomes = ((t, _attempt(run_task, t)) for t in todo)
    else:
        pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread)
        futures = {pool.submit(run_task, t): t for t in todo}
        outcomes = ((futures[f], _attempt(f.result)) for f in as_completed(futures))
    for task, (record, error) in outcomes:
        if error is None:
            records.append(record)
            print(progress_line(record, started), flush=True)
        else:
            errors.append({**_key(task), "error": error})
            print(f"{task['kind']} {task['dataset']} s{task['seed']} {task['family']}: ERROR {error}", flush=True)
    if jobs > 1:
        pool.shutdown()
    return records, errors


def _attempt(fn: Any, *args: Any) -> tuple[Any, str | None]:
    try:
        return fn(*args), None
    except Exception as exc:  # one failed cell must not lose the others
        return None, f"{type(exc).__name__}: {exc}"


def progress_line(r: dict[str, Any], started: float, note: str = "") -> str:
    head = f"[{time.perf_counter() - started:7.1f} s] {r['kind']} {r['dataset']} s{r['seed']} {r['family']}:"
    fit = "generator of the quality cell" if r["fit_s"] is None else f"fit {r['fit_s']:.1f} s"
    fit += " (stored generator scored again)" if r.get("rescored") else ""
    tail = f"{fit}, cell {r['cell_s']:.1f} s{' (' + note + ')' if note else ''}"
    if r["kind"] == "augmentation":
        rows = {x["method"]: x["macro_f1"]["mean"] for x in r["augmentation"]["rows"]}
        return f"{head} " + ", ".join(f"{m} {fmt(v)}" for m, v in rows.items()) + f"; {tail}"
    return (f"{head} TSTR/TRTR {fmt(r['ratio'])} (TSTR {r['tstr_f1']:.3f}), fidelity {r['fidelity']:.3f}, "
            f"copy {r['copy_rate']:.3f} vs {r['natural_copy_rate']:.3f}, DCR {r['dcr_synth_median']:.3f} vs "
            f"{r['dcr_holdout_median']:.3f}, privacy {'ok' if r['privacy_ok'] else 'NOT ok'}; {tail}")


# ---------------------------------------------------------------------------------------------- driver
def environment(device: str, jobs: int) -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    resolved = ("cuda" if cuda else "cpu") if device == "auto" else device
    return {"torch": torch.__version__, "device_requested": device, "device": resolved, "cores": os.cpu_count(),
            "cores_usable": len(os.sched_getaffinity(0)), "jobs": jobs, "load_before": os.getloadavg()[0],
            "gpu": torch.cuda.get_device_name(0) if cuda else None, "python": sys.version.split()[0],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--datasets", nargs="*", default=list(DATASETS),
                   help="registry names, or paths to your own captures or flow files (what `ntg prepare` takes)")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="split seeds of every dataset (default: 0-4, or 0-9 under 4,096 training flows)")
    p.add_argument("--scoring-seeds", nargs="+", type=int, default=None,
                   help="sampling/classifier seeds each quality cell is scored with and averaged over (default: 0, "
                        "or 0 1 2 under 4,096 training flows)")
    p.add_argument("--families", nargs="*", default=list(FAMILIES))
    p.add_argument("--exclude", nargs="*", default=[], metavar="DATASET:FAMILY",
                   help="quality cells to leave out, e.g. iot-sentinel:diffusion (too slow for a CPU run)")
    p.add_argument("--aug-datasets", nargs="*", default=["iot-sentinel"],
                   help="datasets of the augmentation experiment ('none' or nothing: no augmentation)")
    p.add_argument("--aug-families", nargs="*", default=list(AUG_FAMILIES))
    p.add_argument("--aug-fractions", nargs="+", type=float, default=[0.01])
    p.add_argument("--aug-seeds", nargs="+", type=int, default=list(AUG_SEEDS), help="subset/classifier seeds")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (1: run in this process)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="for the neural families")
    p.add_argument("--epochs", type=int, default=None, help="override the neural epochs (smoke tests only)")
    p.add_argument("--max-flows-per-class", type=int, default=None, help="cap the prepared sets (smoke tests)")
    p.add_argument("--cache", type=Path, default=Path("/tmp/ntg-bench/quality"))
    p.add_argument("--data-root", type=Path,
                   default=Path(os.environ.get("NTG_DATA_ROOT", REPO.parent / "shared" / "datasets")))
    p.add_argument("--fresh", nargs="*", default=None, metavar="FAMILY|DATASET:FAMILY",
                   help="recompute (refit and score) every cell, or the cells of these families (FAMILY) or of one "
                        "set's family (DATASET:FAMILY), instead of reusing the cache")
    p.add_argument("--reuse", type=Path, default=None, metavar="RESULTS_JSON",
                   help="seed the cache with the matching cells of an earlier run's JSON, e.g. "
                        "benchmarks/results/quality.json (with --fresh: all but the cells it names)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "quality",
                   help="output stem: writes STEM.json, STEM.md and STEM.png")
    args = p.parse_args(argv)
    if args.reuse and not args.reuse.is_file():
        p.error(f"--reuse {args.reuse}: no such file; pass an earlier run's JSON, e.g. benchmarks/results/quality.json")
    args.aug_datasets = [d for d in args.aug_datasets if d != "none"]  # `--aug-datasets none` reads better
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the spawned workers
    from ntg.utils.io import atomic_path, write_json

    started = time.perf_counter()
    env = environment(args.device, args.jobs)
    prepared, seeds = prepare_all(args)
    tasks = plan(args, prepared, seeds)
    if args.reuse and args.fresh != []:  # a bare --fresh recomputes every cell
        reused = seed_from_results(tasks, args.reuse, set(args.fresh or ()))
        print(f"took {reused} of {len(tasks)} cells from {args.reuse}", flush=True)
    records, errors = run_cells(tasks, args.jobs, args.fresh, started)
    key = ("dataset", "seed", "family")
    quality = sorted((r for r in records if r["kind"] == "quality"), key=lambda r: tuple(r[k] for k in key))
    aug = sorted((r for r in records if r["kind"] == "augmentation"), key=lambda r: (r["dataset"], r["family"]))
    aggs = aggregate(quality)
    aggs = {d: {f: aggs[d][f] for f in args.families if f in aggs[d]} for d in args.datasets if d in aggs}
    checks = check_targets(aggs)
    paired = paired_against_markov([r for r in quality if r["dataset"] in aggs])
    wall = time.perf_counter() - started
    env["load_after"] = os.getloadavg()[0]
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    settings.update(split_seeds={d: v[0] for d, v in seeds.items()}, scoring_seeds={d: v[1] for d, v in seeds.items()})
    out = {ext: Path(f"{args.out}.{ext}") for ext in ("json", "md", "png")}
    write_json(out["json"], {
        "settings": settings, "environment": env, "records": quality, "aggregates": aggs, "targets": checks,
        "paired_against_markov": paired,
        "augmentation": aug, "errors": errors, "wall_s": wall})
    with atomic_path(out["md"]) as tmp:
        tmp.write_text(render_markdown(aggs, checks, aug, paired))
    plot(aggs, out["png"])
    for c in checks:
        print(f"{c['status']:<4} ({c['target']}) {c['dataset']}: {c['detail']}")
    print(f"{len(records)} cells ({len(errors)} failed) in {wall:.1f} s on {env['device']} with {args.jobs} jobs; "
          f"wrote {args.out}.json/.md/.png", flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    from ntg.errors import NtgError

    try:
        sys.exit(main())
    except NtgError as exc:
        sys.exit(f"error: {exc}")
