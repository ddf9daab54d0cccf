"""`ntg data prepare | info | list`: captures to labelled, split biflows; inspect them; the registry."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ntg.errors import NtgError


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="prepare, inspect and list datasets",
                          description="Prepare datasets from captures, inspect them, list the registry.")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    _add_prepare(data_sub)
    info = data_sub.add_parser("info", help="class table and split sizes of a prepared dataset")
    info.add_argument("dir", type=Path, help="prepared dataset folder")
    info.add_argument("--json", action="store_true", help="print meta.json")
    info.set_defaults(func=cmd_data_info)
    listing = data_sub.add_parser("list", help="the dataset registry and where each copy lies")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_data_list)
    data.set_defaults(func=lambda a: (data.print_help(), 0)[1])


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare",
        help="captures or a dataset file → labelled, split biflows (flows.parquet + meta.json)",
        description="Parse captures (pcap/pcapng) or a published dataset file into labelled biflows, filter "
        "them, split train/val/test by capture, and write OUT/flows.parquet + OUT/meta.json. A re-run with the "
        "same inputs and parameters reuses the result.",
    )
    p.add_argument("source", help="registry name (see `ntg data list`), a folder of captures, a capture, "
                   "or a dataset file (MIRAGE JSON, CESNET PPI CSV)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--labels", help="dir (parent folder names the class), ndpi (nDPI via nfstream), or "
                   "csv:FILE (5-tuple → label table); default: the registry's choice, else dir")
    p.add_argument("--root", type=Path, help="local root of datasets (default: $NTG_DATA_ROOT)")
    p.add_argument("--offline", action="store_true", help="never download; fail if no local copy")
    p.add_argument("--idle-timeout", type=float, default=120.0, help="seconds of silence that end a biflow")
    p.add_argument("--min-packets", type=int, default=2, help="drop biflows with fewer packets (default 2)")
    p.add_argument("--min-flows-per-class", type=int, default=30, help="classes with fewer flows are "
                   "dropped or merged (default 30)")
    p.add_argument("--small-classes", choices=("drop", "other"), default="drop",
                   help="what to do with classes under --min-flows-per-class")
    p.add_argument("--max-flows-per-class", type=int, help="cap flows per class (seeded sample)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the capture-level split")
    p.add_argument("--split", default="0.7,0.1,0.2", help="train,val,test flow shares (default 0.7,0.1,0.2)")
    hosts = p.add_mutually_exclusive_group()
    hosts.add_argument("--device-only", dest="device_only", action="store_true", default=None,
                       help="keep only biflows of the device whose MAC is in _iotdevice-mac.txt "
                       "(default for iot-sentinel)")
    hosts.add_argument("--all-hosts", dest="device_only", action="store_false",
                       help="keep every biflow of each capture")
    p.add_argument("--split-by", choices=("auto", "capture", "flow"), default="auto",
                   help="group that a split never divides: capture (default for captures and MIRAGE) or flow "
                   "(default for CESNET tables, which carry no capture)")
    p.add_argument("--keep-unknown", action="store_true", help="keep flows nDPI could not label")
    p.add_argument("--jobs", type=int, help="parallel parser processes (default: up to 4 cores)")
    p.add_argument("--force", action="store_true", help="rebuild even if the result is up to date, and replace "
                   "--out even if it is not a dataset ntg prepared")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_data_prepare)


def cmd_data_prepare(args: argparse.Namespace) -> int:
    from ntg.data.prepare import PrepareOptions, info_table, prepare_dataset

    try:
        fractions = tuple(float(x) for x in args.split.split(","))
    except ValueError:
        raise NtgError(f"--split {args.split!r}: expected three comma-separated numbers like 0.7,0.1,0.2") from None
    if args.jobs is not None and args.jobs < 1:
        raise NtgError(f"--jobs {args.jobs}: give at least 1 parser process (or leave it out: up to 4 cores)")
    options = PrepareOptions(
        labels=args.labels,
        idle_timeout=args.idle_timeout,
        min_packets=args.min_packets,
        min_flows_per_class=args.min_flows_per_class,
        small_classes=args.small_classes,
        max_flows_per_class=args.max_flows_per_class,
        split_seed=args.split_seed,
        split_fractions=fractions,  # type: ignore[arg-type]
        device_only=args.device_only,
        keep_unknown=args.keep_unknown,
        split_by=args.split_by,
    )
    dataset = prepare_dataset(args.source, args.out, options, root=args.root, offline=args.offline,
                              jobs=args.jobs, progress=not args.quiet, force=args.force)
    print(info_table(dataset).to_string(index=False))
    return 0


def cmd_data_info(args: argparse.Namespace) -> int:
    from ntg.data.dataset import PreparedDataset, notices
    from ntg.data.prepare import info_table

    dataset = PreparedDataset.load(args.dir)
    meta = dataset.meta
    if args.json:
        print(json.dumps(meta, indent=2))
        return 0
    src = meta["source"]
    print(f"dataset   {args.dir}")
    print(f"source    {src.get('name') or src.get('local_path')}  ({src.get('format')}, {src.get('files')} files, "
          f"sha256 {src.get('checksum', '')[:16]}…)")
    print(f"labels    {meta['label_mode']}    split seed {meta['split_seed']}    flows {meta['flows']}    "
          f"captures {meta['captures']}")
    print("splits    " + "  ".join(f"{k} {v}" for k, v in meta["splits"].items()))
    print()
    print(info_table(dataset).to_string(index=False))
    lines = notices(meta)
    if lines:
        print()
        print("\n".join(lines))
    skipped = meta.get("parsing", {}).get("skipped_packets", {})
    if skipped:
        print("\nskipped packets: " + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())))
    return 0


def cmd_data_list(args: argparse.Namespace) -> int:
    import pandas as pd

    from ntg.data.registry import describe

    frame = pd.DataFrame(describe())
    if args.json:
        print(frame.to_json(orient="records", indent=2))
    else:
        with pd.option_context("display.max_colwidth", 60, "display.width", 200):
            print(frame.to_string(index=False))
    return 0
