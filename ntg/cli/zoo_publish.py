"""`ntg zoo publish SWEEP_DIR --to NAMESPACE`: the sweep's Pareto set as Hub repos with evaluation cards."""

from __future__ import annotations

import argparse
from pathlib import Path

from ntg.zoo.budget import CardBudget


def add_publish(zoo_sub: argparse._SubParsersAction) -> None:
    """Register ``publish`` under the ``ntg zoo`` group (``zoo_sub`` is its sub-parsers object)."""
    p = zoo_sub.add_parser(
        "publish",
        help="publish a sweep's Pareto-optimal generators with evaluation cards (local zoo or a hub)",
        description="For each feasible Pareto-optimal trial of SWEEP_DIR, evaluate its generator on the TEST split "
        "on every axis (cached by weights sha256 in SWEEP_DIR/zoo-eval), and publish NAMESPACE/ntg-<family>-"
        "<dataset>-<id> with model.safetensors, config.json, eval/, front.png and a model card (README.md). "
        "With --endpoint (or HF_ENDPOINT) it uploads with huggingface_hub; without, it commits to the local zoo "
        "($NTG_ZOO or zoo/local), which `ntg zoo serve` serves. Re-publishing makes new commits. CPU budget, "
        "recorded in each card: Random Forest only, --split-seeds, --augmentation-seeds and "
        "--augmentation-fractions; neural families are not refitted per split seed or augmentation fraction.",
    )
    p.add_argument("sweep_dir", metavar="SWEEP_DIR",
                   help="the --out of `ntg sweep`: a folder, or an s3:// / gs:// URI (read through a local mirror)")
    p.add_argument("--to", required=True, metavar="NAMESPACE", help="Hub user or organisation, e.g. my-org")
    p.add_argument("--endpoint", metavar="URL", help="hub URL, e.g. https://huggingface.co (default: HF_ENDPOINT "
                   "unless --zoo is given; neither: the local zoo)")
    p.add_argument("--token", help="hub token with write access (default: the HF_TOKEN environment variable)")
    p.add_argument("--private", action="store_true", help="create the repos private (hub only)")
    p.add_argument("--only-front", action=argparse.BooleanOptionalAction, default=True,
                   help="publish only the front (default); --no-only-front publishes every feasible trial")
    p.add_argument("--dry-run", action="store_true", help="print what would be published; write nothing")
    p.add_argument("--zoo", type=Path, metavar="DIR", help="local zoo folder (default: $NTG_ZOO or zoo/local)")
    p.add_argument("--data", type=Path, metavar="DIR", help="the prepared data (default: the sweep's, sweep.json)")
    p.add_argument("--split-seeds", type=int,
                   help=f"split seeds of the test evaluation (default {CardBudget.split_seeds})")
    p.add_argument("--augmentation-seeds", type=int,
                   help=f"seeds of the low-data subsets in the cards (default {CardBudget.augmentation_seeds}); the "
                   "augmentation axis is most of a card's time")
    p.add_argument("--augmentation-fractions", type=float, nargs="+", metavar="F",
                   help="shares of the training split the low-data augmentation uses (default: the full profile's)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_publish)


def cmd_publish(args: argparse.Namespace) -> int:
    from ntg.errors import NtgError
    from ntg.search.storage import open_sweep
    from ntg.zoo.publish import publish_sweep

    if args.split_seeds is not None and args.split_seeds < 1:
        raise NtgError(f"--split-seeds must be at least 1, not {args.split_seeds}")
    sweep_dir, store = open_sweep(args.sweep_dir)
    results = publish_sweep(sweep_dir, args.to, endpoint=args.endpoint, token=args.token,
                            private=args.private, only_front=args.only_front, dry_run=args.dry_run,
                            zoo_dir=args.zoo, split_seeds=args.split_seeds, progress=not args.quiet,
                            data_dir=args.data, augmentation_seeds=args.augmentation_seeds,
                            augmentation_fractions=args.augmentation_fractions)
    if store is not None and not args.dry_run:
        store.push()  # the test-split evaluations (zoo-eval/), so the next publish from any machine reuses them
    if not args.dry_run:
        for r in results:
            fid = r["metrics"].get("fidelity_score")
            print(f"{r['repo_id']}  commit {r['commit'][:12]}  fidelity {fid if fid is None else round(fid, 4)}  "
                  f"{r['url']}")
    return 0
