"""`ntg data prepare` on real captures: labels, filters, capture-level splits, caching, atomicity, errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import IOT_SMALL_DEVICES, iot_sentinel_dir

from ntg.data.dataset import PreparedDataset
from ntg.data.prepare import PrepareOptions, prepare_dataset
from ntg.data.schema import FlowTable
from ntg.errors import NtgError

QUIET = {"progress": False, "log": lambda m: None}


def test_iot_small_is_labelled_and_split_by_capture(iot_small: PreparedDataset) -> None:
    flows = iot_small.flows
    assert set(iot_small.classes) <= set(IOT_SMALL_DEVICES) and len(iot_small.classes) >= 6
    # the parent folder names the class
    assert all(cap.split("/")[0] == lab for cap, lab in zip(flows.meta["capture"], flows.labels, strict=True))
    per_capture = flows.meta.groupby("capture")["split"].nunique()
    assert (per_capture == 1).all(), "a capture was split across train/val/test"
    present = pd.crosstab(flows.meta["label"], flows.meta["split"]) > 0
    assert present["train"].all() and present["test"].all()
    flows.validate()
    assert flows.max_packets == 32 and (flows.n_packets >= 2).all()
    counts = {c["name"]: c["counts"] for c in iot_small.meta["classes"]}
    for name, c in counts.items():
        assert c["train"] == int(((flows.labels == name) & (flows.meta["split"] == "train")).sum())
    assert iot_small.meta["schema_version"] == 1 and len(iot_small.meta["source"]["checksum"]) == 64


def test_device_only_keeps_the_device_mac(iot_small: PreparedDataset, datasets_root: Path) -> None:
    macs = {d: (iot_sentinel_dir(datasets_root) / d / "_iotdevice-mac.txt").read_text().strip().lower()
            for d in IOT_SMALL_DEVICES}
    meta = iot_small.flows.meta
    own = [(macs[lab] in (c, s)) for lab, c, s in zip(meta["label"], meta["client_mac"], meta["server_mac"],
                                                      strict=True)]
    assert all(own)


def test_rerun_is_a_cache_hit_and_parameters_change_the_key(iot_small: PreparedDataset,
                                                           iot_small_captures: Path) -> None:
    flows_file = iot_small.root / "flows.parquet"
    before = flows_file.stat().st_mtime_ns
    messages: list[str] = []
    options = PrepareOptions(labels="dir", device_only=True, min_flows_per_class=10)
    again = prepare_dataset(str(iot_small_captures), iot_small.root, options, progress=False, log=messages.append)
    assert flows_file.stat().st_mtime_ns == before and "up to date" in messages[0]
    assert again.meta["cache_key"] == iot_small.meta["cache_key"]


def test_split_seed_changes_split_not_flows(iot_small_captures: Path, tmp_path: Path) -> None:
    devices = tmp_path / "two"
    devices.mkdir()
    for d in IOT_SMALL_DEVICES[:3]:
        (devices / d).symlink_to(iot_small_captures / d)
    a, b = (
        prepare_dataset(str(devices), tmp_path / f"s{seed}",
                        PrepareOptions(split_seed=seed, min_flows_per_class=5, device_only=True), **QUIET)
        for seed in (0, 1)
    )
    assert len(a.flows) == len(b.flows)
    assert not a.flows.meta["split"].equals(b.flows.meta["split"])


def test_device_only_filter_drops_other_hosts(iot_small_captures: Path, tmp_path: Path) -> None:
    """With another host's MAC in _iotdevice-mac.txt, only that host's biflows survive."""
    folder = tmp_path / "caps" / "HueBridge"
    folder.mkdir(parents=True)
    for p in sorted((iot_small_captures / "HueBridge").glob("*.pcap"))[:8]:
        (folder / p.name).symlink_to(p)
    options = PrepareOptions(min_flows_per_class=1, min_packets=1)
    every = prepare_dataset(str(folder.parent), tmp_path / "all", options, **QUIET)
    macs = every.flows.meta["client_mac"].value_counts()
    other = next(m for m in macs.index if m and m != "ff:ff:ff:ff:ff:ff" and macs[m] < macs.iloc[0])
    (folder / "_iotdevice-mac.txt").write_text(other + "\n")
    only = prepare_dataset(str(folder.parent), tmp_path / "only",
                           PrepareOptions(min_flows_per_class=1, min_packets=1, device_only=True), **QUIET)
    assert 0 < len(only.flows) < len(every.flows)
    assert ((only.flows.meta["client_mac"] == other) | (only.flows.meta["server_mac"] == other)).all()


def test_interrupted_prepare_leaves_no_half_dataset(iot_small_captures: Path, tmp_path: Path, monkeypatch) -> None:
    devices = tmp_path / "cap"
    devices.mkdir()
    for d in IOT_SMALL_DEVICES[:2]:
        (devices / d).symlink_to(iot_small_captures / d)

    def crash(self, path):  # the parquet write dies half-way
        Path(path).write_bytes(b"PAR1 half")
        raise KeyboardInterrupt

    monkeypatch.setattr(FlowTable, "write", crash)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(str(devices), tmp_path / "out", PrepareOptions(min_flows_per_class=5), **QUIET)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_truncated_capture_keeps_parsed_flows_and_reports(iot_small_captures: Path, tmp_path: Path) -> None:
    src = sorted((iot_small_captures / "HueBridge").glob("*.pcap"))
    folder = tmp_path / "caps" / "HueBridge"
    folder.mkdir(parents=True)
    for p in src[:6]:
        shutil.copy(p, folder / p.name)
    victim = folder / src[0].name
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2 + 7])
    ds = prepare_dataset(str(tmp_path / "caps"), tmp_path / "out",
                         PrepareOptions(min_flows_per_class=1, device_only=False), **QUIET)
    assert f"HueBridge/{victim.name}" in ds.meta["parsing"]["truncated_captures"]
    assert (ds.flows.meta["capture"] == f"HueBridge/{victim.name}").sum() > 0


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("make_source", "options", "message"),
    [
        (lambda d: d, PrepareOptions(), "no captures found"),
        (lambda d: _write(d / "notes.txt", "hello"), PrepareOptions(), "neither a pcap"),
        (lambda d: _write(d / "x" / "bad.pcap", "hello").parent, PrepareOptions(), "bad.pcap"),
        (lambda d: d / "missing", PrepareOptions(), "no such file"),
    ],
)
def test_bad_sources_give_clear_errors(tmp_path: Path, make_source, options, message) -> None:
    source = make_source(tmp_path)
    with pytest.raises(NtgError, match=message):
        prepare_dataset(str(source), tmp_path / "out", options, **QUIET)


def test_unknown_label_mode_and_no_flows_left(iot_small_captures: Path, tmp_path: Path) -> None:
    with pytest.raises(NtgError, match="label mode|labels"):
        prepare_dataset(str(iot_small_captures / "Aria"), tmp_path / "o1", PrepareOptions(labels="magic"), **QUIET)
    with pytest.raises(NtgError, match="no flows left"):
        prepare_dataset(str(iot_small_captures), tmp_path / "o2",
                        PrepareOptions(min_flows_per_class=10**6), **QUIET)


def test_ndpi_labels_on_real_captures(datasets_root: Path, tmp_path: Path) -> None:
    pcaps = datasets_root / "ndpi" / "tests" / "cfgs" / "default" / "pcap"
    folder = tmp_path / "ndpi"
    folder.mkdir()
    for capture in sorted(pcaps.iterdir())[::12]:
        (folder / capture.name).symlink_to(capture)
    ds = prepare_dataset(str(folder), tmp_path / "out",
                         PrepareOptions(labels="ndpi", min_flows_per_class=1), **QUIET)
    assert ds.meta["label_mode"] == "ndpi"
    assert "Unknown" not in ds.classes and len(ds.classes) >= 2
    assert not any(c.startswith(("TLS.", "QUIC.", "DNS.")) for c in ds.classes)


def test_dataset_files_prepare(datasets_root: Path, tmp_path: Path) -> None:
    ppi = datasets_root / "cesnet-miner22" / "CESNET-MINER22-PPI" / "input" / "miner22-ppi-sampled.csv"
    ds = prepare_dataset(str(ppi), tmp_path / "cesnet", PrepareOptions(min_flows_per_class=5), **QUIET)
    assert set(ds.classes) <= {"Miner", "Other"} and len(ds.flows) > 1000
    mirage = datasets_root / "mirage19-sample" / "sample-data"
    with pytest.raises(NtgError, match="no flows left"):  # one capture per app: nothing evaluable by capture
        prepare_dataset(str(mirage), tmp_path / "m0", PrepareOptions(min_flows_per_class=1), **QUIET)
    ds = prepare_dataset(str(mirage), tmp_path / "mirage",
                         PrepareOptions(min_flows_per_class=1, split_by="flow"), **QUIET)
    assert len(ds.classes) == 3
    ds.flows.validate()


def _ntg(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "ntg.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_cli_user_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    for args in (["data", "prepare", str(tmp_path), "--out", str(tmp_path / "o")],
                 ["data", "prepare", "no-such-name", "--out", str(tmp_path / "o")],
                 ["data", "info", str(tmp_path)]):
        result = _ntg(*args)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().startswith("ntg: error:") and len(result.stderr.strip().splitlines()) == 1


def test_cli_prepare_info_list(iot_small: PreparedDataset) -> None:
    info = _ntg("data", "info", str(iot_small.root))
    assert info.returncode == 0 and "train" in info.stdout
    for name in iot_small.classes:
        assert name in info.stdout
    listing = _ntg("data", "list")
    assert listing.returncode == 0
    for name in ("iot-sentinel", "ndpi-pcaps", "requet", "mirage19", "mirage22", "cesnet-tls22"):
        assert name in listing.stdout
    assert np.isfinite(iot_small.meta["split_cost"])


def test_prepare_and_info_say_what_was_dropped_and_truncated(iot_small_captures: Path, tmp_path: Path) -> None:
    """The terminal, not only meta.json, names a class dropped for coming from one capture and a truncated capture."""
    caps = tmp_path / "caps"
    for device, n in (("HueBridge", 6), ("Aria", 1)):  # Aria from a single capture: cannot be split
        (caps / device).mkdir(parents=True)
        for p in sorted((iot_small_captures / device).glob("*.pcap"))[:n]:
            shutil.copy(p, caps / device / p.name)
    victim = sorted((caps / "HueBridge").glob("*.pcap"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2 + 7])
    made = _ntg("data", "prepare", str(caps), "--out", str(tmp_path / "out"), "--min-flows-per-class", "1",
                "--all-hosts", "--quiet")
    assert made.returncode == 0, made.stderr
    again = _ntg("data", "prepare", str(caps), "--out", str(tmp_path / "out"), "--min-flows-per-class", "1",
                 "--all-hosts", "--quiet")
    assert "up to date" in again.stderr
    for shown in (made.stderr, again.stderr, _ntg("data", "info", str(tmp_path / "out")).stdout):
        assert "dropped class Aria" in shown and "all flows come from one capture" in shown
        assert "truncated capture" in shown and victim.name in shown
