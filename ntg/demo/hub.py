"""The demo's steps through the zoo server: download with plain ``huggingface_hub``, sample, compare fronts.

The download deliberately uses ``snapshot_download`` with the server's endpoint and nothing of ntg's, so
it shows what any Hugging Face user does; the sample check then proves the round trip lost nothing: the
downloaded generator draws exactly the flows the published one (the sweep trial's own folder) draws for the
same seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ntg.demo.steps import say
from ntg.errors import NtgError

PACKET_ARRAYS = ("n_packets", "payload", "direction", "iat", "flags", "window")


def download(repo_id: str, endpoint: str, cache_dir: Path) -> dict[str, Any]:
    """``snapshot_download`` of one published repo from the zoo server into ``cache_dir``."""
    from huggingface_hub import snapshot_download

    path = snapshot_download(repo_id, endpoint=endpoint, cache_dir=str(cache_dir))
    files = sorted(str(p.relative_to(path)) for p in Path(path).rglob("*") if p.is_file())
    say(f"    {repo_id}: {len(files)} files in {path}")
    return {"repo_id": repo_id, "path": str(path), "files": files}


def same_flows(a: Any, b: Any) -> bool:
    """Two FlowTables hold the same flows: every packet array equal (NaN-safe) and the same labels."""
    return len(a) == len(b) and all(
        np.array_equal(getattr(a, name), getattr(b, name), equal_nan=np.issubdtype(getattr(a, name).dtype,
                                                                                   np.floating))
        for name in PACKET_ARRAYS) and list(a.meta["label"]) == list(b.meta["label"])


def sample_check(downloaded: Path, sweep_dir: Path, published: dict[str, Any], out: Path, n: int,
                 seed: int = 0) -> dict[str, Any]:
    """Sample ``n`` flows from the downloaded generator and from the sweep's copy; they must be identical."""
    from ntg.models.base import load_generator
    from ntg.utils.io import read_json

    records = {t["trial_id"]: t for t in read_json(sweep_dir / "front.json")["trials"]}
    original = sweep_dir / records[published["trial_id"]]["generator_dir"]
    flows = load_generator(downloaded).sample(n, seed=seed)
    reference = load_generator(original).sample(n, seed=seed)
    if not same_flows(flows, reference):
        raise NtgError(f"{published['repo_id']}: the downloaded generator samples other flows than {original} "
                       f"for seed {seed}; the published files differ from the sweep's (re-run `ntg zoo publish`)")
    out.parent.mkdir(parents=True, exist_ok=True)
    flows.write(out)
    classes = int(np.unique(flows.meta["label"]).size)
    say(f"    {n} flows of {classes} classes from {published['repo_id']}, identical to the published "
        f"generator's for seed {seed}: {out}")
    return {"repo_id": published["repo_id"], "flows": n, "classes": classes, "seed": seed, "identical": True,
            "path": str(out), "reference": str(original)}


def compare_fronts(published: list[dict[str, Any]], endpoint: str, zoo: Path, out: Path) -> dict[str, Any]:
    """``ntg zoo compare``'s fronts (one per sweep: baseline, neural) read from the served cards, and
    ``ntg zoo list``'s table."""
    from ntg.utils.io import atomic_path
    from ntg.zoo.catalog import compare, format_listing, list_generators

    repos = [p["repo_id"] for p in published]
    result = compare(repos, endpoint=endpoint, zoo_dir=zoo, out_dir=out)
    listing = format_listing(list_generators(endpoint=endpoint, zoo_dir=zoo, repos=repos))
    with atomic_path(out / "generators.txt") as tmp:
        tmp.write_text(listing + "\n")
    print(result["table"].to_string(index=False))
    return {"plot": str(result["plot"]), "csv": str(result["csv"]), "markdown": str(result["markdown"]),
            "listing": str(out / "generators.txt"), "by": result["by"],
            "hypervolume": {str(k): float(v) for k, v in result["hypervolume"].items()}}
