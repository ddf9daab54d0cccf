"""`ntg zoo`: publish a sweep's front, serve the local zoo, list, compare and index published generators."""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "zoo",
        help="model zoo: publish, serve, list, compare and index published generators",
        description="Published generators are Hub repos with a model card whose model-index carries every "
        "headline metric. The local zoo ($NTG_ZOO or zoo/local) is served to the standard Hugging Face client "
        "by `ntg zoo serve`; list/compare/index read the cards from a hub (--endpoint, else HF_ENDPOINT) or from "
        "the local zoo (--zoo, the default when neither is set).",
    )
    zoo_sub = p.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND")
    p.set_defaults(func=lambda args: p.print_help() or 0)
    try:
        from ntg.cli.zoo_publish import add_publish
    except ImportError:  # the publish command ships separately; the rest of the group works without it
        pass
    else:
        add_publish(zoo_sub)
    _add_serve(zoo_sub)
    _add_list(zoo_sub)
    _add_compare(zoo_sub)
    _add_index(zoo_sub)


def _source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint", metavar="URL", help="hub to read the cards from (default: HF_ENDPOINT if set, "
                   "else the local zoo)")
    p.add_argument("--zoo", type=Path, metavar="DIR", help="local zoo folder (default: $NTG_ZOO or zoo/local); "
                   "with --endpoint, its index.json names the repos of a server that cannot list (olah)")


def _endpoint(args: argparse.Namespace) -> str | None:
    """--endpoint, else HF_ENDPOINT unless --zoo was given, else None (the local zoo)."""
    return args.endpoint or (None if args.zoo else os.environ.get("HF_ENDPOINT") or None)


def _add_serve(zoo_sub: argparse._SubParsersAction) -> None:
    p = zoo_sub.add_parser(
        "serve", help="serve the local zoo over the Hub's download API (olah) until Ctrl-C",
        description="Start olah in offline mode on the local zoo's git repositories and keep it in the foreground. "
        "Set HF_ENDPOINT to the printed URL and huggingface_hub (snapshot_download, ModelCard.load) and "
        "ntg.models.load_generator('NS/NAME') download from it. Ctrl-C stops the server.",
    )
    p.add_argument("--zoo", type=Path, metavar="DIR", help="local zoo folder (default: $NTG_ZOO or zoo/local)")
    p.add_argument("--port", type=int, metavar="P", help="port to listen on (default: a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from ntg.errors import NtgError
    from ntg.zoo.server import ZooServer

    if args.port is not None and not 0 < args.port < 65536:
        raise NtgError(f"--port must be between 1 and 65535, not {args.port}")
    def terminated(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # `kill` stops olah too (the context manager's exit), not only Ctrl-C

    signal.signal(signal.SIGTERM, terminated)
    with ZooServer(args.zoo, port=args.port, host=args.host) as server:
        print(f"zoo {server.zoo_dir} served at {server.endpoint} (log: {server.log_path}); Ctrl-C stops it")
        print(f"export HF_ENDPOINT={server.endpoint}", flush=True)
        while server.running:
            time.sleep(0.5)
        raise NtgError(f"the zoo server stopped unexpectedly; see {server.log_path}")


def _add_list(zoo_sub: argparse._SubParsersAction) -> None:
    p = zoo_sub.add_parser(
        "list", help="published generators and their headline metrics (from the model cards)",
        description="One row per published generator with its headline metrics, read from each card's "
        "model-index through huggingface_hub. Repos are named by the hub's listing, or by the zoo's index.json "
        "where the server cannot list (the local olah zoo).",
    )
    p.add_argument("namespace", nargs="?", metavar="NAMESPACE", help="only this user or organisation")
    _source_options(p)
    p.add_argument("--csv", type=Path, metavar="FILE", help="also write every metric of every generator as CSV")
    p.set_defaults(func=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    from ntg.utils.io import atomic_path
    from ntg.zoo.catalog import format_listing, list_generators

    frame = list_generators(args.namespace, endpoint=_endpoint(args), zoo_dir=args.zoo)
    print(format_listing(frame))
    if args.csv:
        with atomic_path(args.csv) as tmp:
            frame.to_csv(tmp, index=False)
        print(f"wrote {args.csv}")
    return 0


def _add_compare(zoo_sub: argparse._SubParsersAction) -> None:
    p = zoo_sub.add_parser(
        "compare", help="fronts of several sweeps, families or datasets in one plot and table, with hypervolumes",
        description="Read the cards of REPO... (or of every repo of --namespace), draw each group's front "
        "(one colour per sweep, or family when there is one sweep) and write compare.png, compare.csv and "
        "compare.md with each group's hypervolume under one reference point (log10(1+x) for parameters, FLOPs "
        "and flows/s; min-max over all compared generators; reference 1.1 per metric).",
    )
    p.add_argument("repos", nargs="*", metavar="REPO", help="repo ids NAMESPACE/NAME")
    p.add_argument("--namespace", metavar="NS", help="compare every generator of this namespace")
    p.add_argument("--x", default="flops_per_flow", help="card metric on the x axis (default flops_per_flow)")
    p.add_argument("--y", default="fidelity_score", help="card metric on the y axis (default fidelity_score)")
    p.add_argument("--by", choices=("sweep", "family", "dataset"), help="group generators by (default: sweep if "
                   "several, else family)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for compare.png/.csv/.md")
    _source_options(p)
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from ntg.errors import NtgError
    from ntg.zoo.catalog import compare

    if not args.repos and not args.namespace:
        raise NtgError("give repo ids (NAMESPACE/NAME ...) or --namespace NS; `ntg zoo list` shows them")
    y = "fidelity_score" if args.y == "fidelity" else args.y
    result = compare(args.repos or None, args.namespace, x=args.x, y=y, by=args.by, endpoint=_endpoint(args),
                     zoo_dir=args.zoo, out_dir=args.out)
    print(result["table"].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"hypervolume normalisation: {result['normalisation']}")
    print(f"wrote {result['plot']}, {result['csv']}, {result['markdown']}")
    return 0


def _add_index(zoo_sub: argparse._SubParsersAction) -> None:
    p = zoo_sub.add_parser(
        "index", help="regenerate the zoo/ index (results CSV per dataset, README table, front plot)",
        description="Read every published card and write OUT/results-<dataset>.csv (one row per generator, "
        "headline metrics as columns, best fidelity first), OUT/README.md and OUT/front.png.",
    )
    _source_options(p)
    p.add_argument("--out", type=Path, default=Path("zoo"), metavar="DIR", help="index folder (default zoo)")
    p.set_defaults(func=cmd_index)


def cmd_index(args: argparse.Namespace) -> int:
    from ntg.zoo.index import write_index

    endpoint = _endpoint(args)
    paths = write_index(endpoint or args.zoo, args.out, zoo_dir=args.zoo)
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
