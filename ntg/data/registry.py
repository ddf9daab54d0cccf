"""Named datasets with their real sources pinned, found locally first and downloaded (verified) otherwise.

Lookup order for ``ntg data prepare NAME``:

1. a local root (``--root`` or ``NTG_DATA_ROOT``) laid out as ``ROOT/<folder>/<path in the source repo>``
   (the layout of ``../shared/datasets``);
2. ntg's download cache (``NTG_CACHE``, default ``~/.cache/ntg``) at ``datasets/<folder>/...``;
3. a download of the pinned files (GitHub raw files at the pinned commit, or the authors' archive), each
   checked against the sha256 in ``ntg/data/manifests/<name>.json`` where it is known. ``NTG_DATASET_MIRROR``
   replaces ``https://raw.githubusercontent.com`` (a mirror, or a local server in tests).
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ntg.data.manifest import read_manifest, sha256_file
from ntg.errors import NtgError
from ntg.utils.io import atomic_path

MANIFESTS = Path(__file__).parent / "manifests"
GITHUB_RAW = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class DatasetSpec:
    """One registry entry: where the bytes come from and how to turn them into labelled biflows."""

    name: str
    description: str
    folder: str  # folder under a local root / the cache
    data_path: str  # path inside the source (and inside ``folder``) that holds the data
    fmt: str  # "pcap" | "mirage-json" | "cesnet-ppi" | "cesnet-lists" | "datazoo"
    label_mode: str  # default --labels for pcap sources; "given" for labelled formats
    repository: str | None = None
    commit: str | None = None
    url: str | None = None  # archive or page for sources outside GitHub
    manifest: str | None = None  # manifest file name (pins every file's sha256)
    options: dict[str, Any] = field(default_factory=dict)
    citation: str = ""
    licence: str = ""

    def source_record(self) -> dict[str, Any]:
        """What ``meta.json`` stores about the source."""
        return {
            "name": self.name,
            "repository": self.repository,
            "commit": self.commit,
            "url": self.url,
            "path": self.data_path,
            "manifest": self.manifest,
        }


REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            name="iot-sentinel",
            description="IoT Sentinel (ICDCS'17): setups of 31 smart-home devices; folder = device type",
            folder="iot-sentinel",
            data_path="captures_IoT_Sentinel/captures_IoT-Sentinel",
            fmt="pcap",
            label_mode="dir",
            repository="andypitcher/IoT_Sentinel",
            commit="0743dc668bb317600663be18a35f89fad134400a",
            manifest="iot-sentinel.json",
            options={"device_only": True},
            citation="Miettinen et al., IoT Sentinel, ICDCS 2017",
            licence="MIT (repository)",
        ),
        DatasetSpec(
            name="ndpi-pcaps",
            description="nDPI test captures (475 pcap/pcapng files); nDPI application labels",
            folder="ndpi",
            data_path="tests/cfgs/default/pcap",
            fmt="pcap",
            label_mode="ndpi",
            repository="ntop/nDPI",
            commit="3b1286ab03b0c9223ac208a01868d8c1f6c0ae00",
            manifest="ndpi-pcaps.json",
            licence="LGPL-3.0",
        ),
        DatasetSpec(
            name="requet",
            description="Requet (MMSys'19): a phone streaming YouTube; 21-capture stratified subset",
            folder="requet",
            data_path="",
            fmt="pcap",
            label_mode="ndpi",
            repository="Wimnet/RequetDataSet",
            commit="e5c93e050692fee407f77484106eb1229fe631b6",
            manifest="requet.json",
            citation="Gutterman et al., Requet, MMSys 2019",
            licence="none stated",
        ),
        DatasetSpec(
            name="mirage19",
            description="MIRAGE-2019: labelled biflows of 40 Android apps (authors' JSON release)",
            folder="mirage19",
            data_path="",
            fmt="mirage-json",
            label_mode="given",
            url="http://traffic.comics.unina.it/mirage/MIRAGE/MIRAGE-2019_traffic_dataset_downloadable_v2.tar.gz",
            citation="Aceto et al., MIRAGE, IEEE ISCC 2019",
            licence="MIRAGE-2019 terms (registration with the authors)",
        ),
        DatasetSpec(
            name="mirage22",
            description="MIRAGE-2022 (COVID-CCMA): labelled biflows of video-meeting apps (authors' JSON)",
            folder="mirage22",
            data_path="",
            fmt="mirage-json",
            label_mode="given",
            url="http://traffic.comics.unina.it/mirage/MIRAGE/MIRAGE-COVID-CCMA-2022.zip",
            citation="Guarino et al., MIRAGE-2022",
            licence="MIRAGE-2022 terms (registration with the authors)",
        ),
        DatasetSpec(
            name="mirage19-sample",
            description="three files of the MIRAGE-2019 release (format sample; too small to train on)",
            folder="mirage19-sample",
            data_path="sample-data",
            fmt="mirage-json",
            label_mode="given",
            repository="ma-torabi/json2tensorparser",
            commit="fbce94708c778f36621ecb9ec53628717890dfae",
            manifest="mirage19-sample.json",
            licence="MIRAGE-2019 terms",
        ),
        DatasetSpec(
            name="cesnet-miner22-sample",
            description="CESNET-MINER22 sample in CESNET's PPI layout (format sample of CESNET-TLS22/QUIC22)",
            folder="cesnet-miner22",
            data_path="CESNET-MINER22-PPI/input/miner22-ppi-sampled.csv",
            fmt="cesnet-ppi",
            label_mode="given",
            repository="FETA-Project/DatasetCatalog-Example",
            commit="9aa729cd4131e59b9afe0d521b981f9b61b04b5a",
            manifest="cesnet-miner22-sample.json",
            licence="Apache-2.0 (repository)",
        ),
        DatasetSpec(
            name="cesnet-tls22",
            description="CESNET-TLS22: TLS flows of 191 services (through the cesnet-datazoo package)",
            folder="cesnet-tls22",
            data_path="",
            fmt="datazoo",
            label_mode="given",
            url="https://zenodo.org/records/7965515",
            options={"datazoo_class": "CESNET_TLS22"},
            citation="Luxemburk and Čejka, CESNET-TLS22, Computer Networks 2023",
        ),
        DatasetSpec(
            name="cesnet-quic22",
            description="CESNET-QUIC22: QUIC flows of 102 services (through the cesnet-datazoo package)",
            folder="cesnet-quic22",
            data_path="",
            fmt="datazoo",
            label_mode="given",
            url="https://zenodo.org/records/7409924",
            options={"datazoo_class": "CESNET_QUIC22"},
            citation="Luxemburk et al., CESNET-QUIC22, Data in Brief 2023",
        ),
    ]
}


def get_spec(name: str) -> DatasetSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise NtgError(f"unknown dataset {name!r}; `ntg data list` shows the registry: {sorted(REGISTRY)}") from None


def default_root() -> Path | None:
    root = os.environ.get("NTG_DATA_ROOT")
    return Path(root).expanduser() if root else None


def cache_dir() -> Path:
    return Path(os.environ.get("NTG_CACHE", Path.home() / ".cache" / "ntg")).expanduser()


def local_candidates(spec: DatasetSpec, root: Path | None) -> list[Path]:
    """Where a copy of ``spec`` may already lie, in lookup order."""
    roots = [r for r in (root, default_root()) if r is not None]
    roots.append(cache_dir() / "datasets")
    seen, out = set(), []
    for r in roots:
        path = (r / spec.folder / spec.data_path) if spec.data_path else (r / spec.folder)
        if path not in seen:
            seen.add(path)
            out.append(path)
    return out


def locate(name: str, root: str | Path | None = None, download: bool = True, progress: bool = True) -> Path:
    """Path of the dataset's data (file or folder), downloading and verifying it if needed."""
    spec = get_spec(name)
    if spec.fmt == "datazoo":
        return _datazoo_hint(spec)
    candidates = local_candidates(spec, Path(root).expanduser() if root else None)
    for path in candidates:
        if path.exists() and (path.is_file() or any(path.iterdir())):
            return path
    if not download:
        raise _not_found(spec, candidates, "downloads are disabled (--offline)")
    try:
        return download_dataset(spec, progress=progress)
    except (urllib.error.URLError, OSError) as err:
        raise _not_found(spec, candidates, f"download failed: {err}") from None


def _not_found(spec: DatasetSpec, candidates: list[Path], why: str) -> NtgError:
    where = ", ".join(str(p) for p in candidates)
    origin = (
        f"{spec.repository} @ {spec.commit} (path {spec.data_path or '/'})" if spec.repository else spec.url
    )
    return NtgError(
        f"dataset {spec.name!r} not found locally (looked in {where}) and {why}; get it from {origin} and "
        f"put it at ROOT/{spec.folder}/{spec.data_path} with --root ROOT or NTG_DATA_ROOT=ROOT"
    )


def _datazoo_hint(spec: DatasetSpec) -> Path:
    try:
        import cesnet_datazoo  # noqa: F401
    except ImportError:
        raise NtgError(
            f"dataset {spec.name!r} is read through the cesnet-datazoo package, which is not installed; "
            "run `pip install cesnet-datazoo` (it downloads the data from Zenodo on first use)"
        ) from None
    return cache_dir() / "datasets" / spec.folder


def download_dataset(spec: DatasetSpec, progress: bool = True) -> Path:
    """Fetch every file of the manifest into the cache, verifying sizes and sha256; resumable per file."""
    if spec.manifest is None or spec.repository is None:
        raise urllib.error.URLError(
            f"{spec.name} has no pinned file list here; download the archive from {spec.url} yourself"
        )
    from tqdm.auto import tqdm

    files = read_manifest(MANIFESTS / spec.manifest)
    base = os.environ.get("NTG_DATASET_MIRROR", GITHUB_RAW).rstrip("/")
    dest_root = cache_dir() / "datasets" / spec.folder
    todo = {
        rel: info
        for rel, info in files.items()
        if not ((dest_root / rel).exists() and sha256_file(dest_root / rel) == info["sha256"])
    }
    total = sum(info["size"] for info in todo.values())
    with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {spec.name}", disable=not progress) as bar:
        for rel, info in todo.items():
            url = f"{base}/{spec.repository}/{spec.commit}/{urllib.request.quote(rel)}"
            target = dest_root / rel
            with atomic_path(target) as tmp:
                with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
                    while chunk := response.read(1 << 16):
                        out.write(chunk)
                        bar.update(len(chunk))
                got = sha256_file(tmp)
                if got != info["sha256"]:
                    raise NtgError(
                        f"{url}: checksum mismatch (sha256 {got[:12]}…, expected {info['sha256'][:12]}…); "
                        "the source changed or the download was corrupted — retry or report it"
                    )
    return dest_root / spec.data_path if spec.data_path else dest_root


def describe() -> list[dict[str, Any]]:
    """Registry rows for ``ntg data list``."""
    root = default_root()
    rows = []
    for spec in REGISTRY.values():
        local = next((p for p in local_candidates(spec, root) if p.exists()), None)
        rows.append(
            {
                "name": spec.name,
                "labels": spec.label_mode,
                "format": spec.fmt,
                "source": f"{spec.repository}@{spec.commit[:10]}" if spec.repository else (spec.url or ""),
                "local": str(local) if local else "-",
                "description": spec.description,
            }
        )
    return rows
