"""Dataset registry: local lookup first, verified downloads from a (local) HTTP mirror, clear errors."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ntg.data import registry
from ntg.data.manifest import read_manifest, sha256_file
from ntg.errors import NtgError


@pytest.fixture()
def mirror(tmp_path: Path, datasets_root: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server laid out like raw.githubusercontent.com: /OWNER/REPO/COMMIT/PATH."""
    site = tmp_path / "site"
    spec = registry.get_spec("mirage19-sample")
    repo_dir = site / spec.repository / spec.commit
    repo_dir.parent.mkdir(parents=True)
    shutil.copytree(datasets_root / spec.folder, repo_dir)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", repo_dir
    finally:
        server.shutdown()
        server.server_close()


def test_local_root_is_looked_up_first(datasets_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NTG_CACHE", str(tmp_path / "cache"))
    path = registry.locate("iot-sentinel", root=datasets_root, download=False)
    assert path == datasets_root / "iot-sentinel" / "captures_IoT_Sentinel" / "captures_IoT-Sentinel"
    assert (path / "Aria" / "_iotdevice-mac.txt").exists()


def test_download_from_mirror_verifies_checksums_and_resumes(mirror, tmp_path: Path, monkeypatch) -> None:
    url, _ = mirror
    monkeypatch.setenv("NTG_DATASET_MIRROR", url)
    monkeypatch.setenv("NTG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NTG_DATA_ROOT", raising=False)
    path = registry.locate("mirage19-sample", root=None, download=True, progress=False)
    manifest = read_manifest(registry.MANIFESTS / "mirage19-sample.json")
    assert sorted(p.name for p in path.iterdir()) == sorted(Path(k).name for k in manifest)
    for rel, info in manifest.items():
        assert sha256_file(tmp_path / "cache" / "datasets" / "mirage19-sample" / rel) == info["sha256"]
    # a second call finds the cached copy and downloads nothing (the mirror may be gone)
    monkeypatch.setenv("NTG_DATASET_MIRROR", "http://127.0.0.1:9")
    assert registry.locate("mirage19-sample", download=True, progress=False) == path


def test_corrupted_download_is_rejected(mirror, tmp_path: Path, monkeypatch) -> None:
    url, repo_dir = mirror
    victim = next((repo_dir / "sample-data").iterdir())
    victim.write_bytes(victim.read_bytes()[:-10] + b"corrupted!")
    monkeypatch.setenv("NTG_DATASET_MIRROR", url)
    monkeypatch.setenv("NTG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NTG_DATA_ROOT", raising=False)
    with pytest.raises(NtgError, match="checksum mismatch"):
        registry.locate("mirage19-sample", progress=False)
    # nothing half-written is left where a later lookup would take it for the dataset
    cached = tmp_path / "cache" / "datasets" / "mirage19-sample" / "sample-data" / victim.name
    assert not cached.exists()


def test_offline_without_local_copy_says_where_it_looked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NTG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NTG_DATA_ROOT", raising=False)
    with pytest.raises(NtgError) as err:
        registry.locate("requet", root=tmp_path / "nowhere", download=False)
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message and "Wimnet/RequetDataSet" in message and "--root" in message


def test_unknown_name_and_datazoo_hint() -> None:
    with pytest.raises(NtgError, match="ntg data list"):
        registry.get_spec("no-such-dataset")
    with pytest.raises(NtgError, match="pip install cesnet-datazoo"):
        registry.locate("cesnet-tls22")


def test_manifests_match_the_shared_copies(datasets_root: Path) -> None:
    """The pinned sha256s are those of the real files (spot check a few of each dataset)."""
    for spec in registry.REGISTRY.values():
        if not spec.manifest:
            continue
        manifest = read_manifest(registry.MANIFESTS / spec.manifest)
        for rel in list(manifest)[:3]:
            assert sha256_file(datasets_root / spec.folder / rel) == manifest[rel]["sha256"], rel
