"""Loaders of MIRAGE JSON and CESNET CSV layouts, checked value by value against the raw files."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from ntg.data.loaders import (
    detect_dataset_file,
    load_cesnet_datazoo,
    load_cesnet_lists,
    load_cesnet_ppi,
    load_dataset_file,
    load_mirage,
)
from ntg.errors import NtgError


@pytest.fixture(scope="module")
def mirage_dir(datasets_root: Path) -> Path:
    return datasets_root / "mirage19-sample" / "sample-data"


@pytest.fixture(scope="module")
def ppi_csv(datasets_root: Path) -> Path:
    return datasets_root / "cesnet-miner22" / "CESNET-MINER22-PPI" / "input" / "miner22-ppi-sampled.csv"


@pytest.fixture(scope="module")
def lists_csv(datasets_root: Path) -> Path:
    return datasets_root / "cesnet-miner22" / "CESNET-MINER22" / "input" / "miner22-sampled.csv"


# ---------------------------------------------------------------------------------------------- MIRAGE
def test_mirage_flows_match_raw_json(mirage_dir: Path) -> None:
    files = sorted(mirage_dir.glob("*.json"))
    assert len(files) == 3
    flows = load_mirage(mirage_dir)
    flows.validate()
    raw = {f.name: json.loads(f.read_text()) for f in files}
    assert len(flows) == sum(len(d) for d in raw.values())
    checked_flipped = 0
    for i, row in flows.meta.iterrows():
        record = raw[row["capture"]]
        key = f"{row.src_ip},{row.src_port},{row.dst_ip},{row.dst_port},{row.proto}"
        flipped = key not in record
        if flipped:  # first packet was downstream: endpoints swapped
            key = f"{row.dst_ip},{row.dst_port},{row.src_ip},{row.src_port},{row.proto}"
        packets, meta = record[key]["packet_data"], record[key]["flow_metadata"]
        assert row["label"] == meta["BF_label"]
        n = min(len(packets["packet_dir"]), 32)
        assert flows.length[i] == n
        assert flows.n_packets[i] == (meta["BF_num_packets"] if n == 32 else n)
        np.testing.assert_array_equal(flows.payload[i, :n], packets["L4_payload_bytes"][:n])
        np.testing.assert_array_equal(flows.window[i, :n], packets["TCP_win_size"][:n])
        np.testing.assert_allclose(flows.iat[i, 1:n], packets["iat"][1:n], rtol=0, atol=1e-12)
        raw_dir = np.asarray(packets["packet_dir"][:n])
        assert flipped == (raw_dir[0] == 1)
        expected_dir = 1 - raw_dir if flipped else raw_dir
        np.testing.assert_array_equal(flows.direction[i, :n], expected_dir)
        checked_flipped += flipped
    assert checked_flipped == 1  # the sample holds exactly one biflow that starts downstream
    assert set(flows.labels) == {"com.iconology.comics", "air.com.hypah.io.slither", "com.waze"}


def test_mirage_truncation_keeps_biflow_size(mirage_dir: Path) -> None:
    full = load_mirage(mirage_dir)
    short = load_mirage(mirage_dir, max_packets=10)
    assert short.max_packets == 10
    np.testing.assert_array_equal(short.payload, full.payload[:, :10])
    long = full.length == 32
    np.testing.assert_array_equal(short.n_packets[long], full.n_packets[long])
    assert (full.n_packets[long] > 32).any()


# ---------------------------------------------------------------------------------------------- CESNET PPI
def test_cesnet_ppi_matches_raw_csv(ppi_csv: Path) -> None:
    flows = load_cesnet_ppi(ppi_csv)
    flows.validate()
    with open(ppi_csv, newline="") as handle:
        rows = [{k.strip(): v.strip() for k, v in r.items()} for r in csv.DictReader(handle)]
    assert len(flows) == len(rows)
    assert list(flows.labels) == [r["label"] for r in rows]
    server_first = 0
    for i in (0, 1, 2, 17, 500, 1234, 2999, len(rows) - 1, *range(40, 80)):
        r = rows[i]
        dirs = [int(r[f"DIR_{k}"]) for k in range(1, 31) if int(r[f"DIR_{k}"]) != 0]
        n = len(dirs)
        assert flows.length[i] == n
        np.testing.assert_array_equal(flows.payload[i, :n], [int(r[f"SIZE_{k}"]) for k in range(1, n + 1)])
        np.testing.assert_allclose(flows.iat[i, 1:n], [int(r[f"IPT_{k}"]) / 1000 for k in range(2, n + 1)])
        np.testing.assert_array_equal(flows.direction[i, :n], [int(d != dirs[0]) for d in dirs])
        server_first += dirs[0] == -1
    assert 0 < server_first < 48  # the sampled rows include server-first flows, re-anchored
    assert (flows.direction[:, 0] == 0).all()


# ---------------------------------------------------------------------------------------------- CESNET lists
def test_cesnet_lists_match_raw_csv(lists_csv: Path) -> None:
    flows = load_cesnet_lists(lists_csv)
    flows.validate()
    with open(lists_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(flows) == len(rows)

    def items(cell: str) -> list[str]:
        return cell.strip("[]").split("|")

    def epoch(text: str) -> float:
        return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()

    for i in (0, 1, 5, 99, 2500, len(rows) - 1):
        r = rows[i]
        dirs = [int(x) for x in items(r["int8* PPI_PKT_DIRECTIONS"])]
        n = len(dirs)
        times = [epoch(t) for t in items(r["time* PPI_PKT_TIMES"])]
        assert flows.labels[i] == r["string LABEL"]
        np.testing.assert_array_equal(
            flows.payload[i, :n], [int(x) for x in items(r["uint16* PPI_PKT_LENGTHS"])]
        )
        np.testing.assert_array_equal(flows.flags[i, :n], [int(x) for x in items(r["uint8* PPI_PKT_FLAGS"])])
        np.testing.assert_array_equal(flows.direction[i, :n], [int(d != dirs[0]) for d in dirs])
        np.testing.assert_allclose(flows.iat[i, 1:n], np.diff(times), atol=1e-6)
        ports = (int(r["uint16 SRC_PORT"]), int(r["uint16 DST_PORT"]))
        expected = ports[::-1] if dirs[0] == -1 else ports
        assert (flows.meta.src_port[i], flows.meta.dst_port[i]) == expected
        assert flows.meta.first_ts[i] == pytest.approx(epoch(r["time TIME_FIRST"]), abs=1e-6)


def test_cesnet_layouts_agree(ppi_csv: Path, lists_csv: Path) -> None:
    """The two MINER22 files hold the same flows: both loaders must give the same sequences."""
    a, b = load_cesnet_ppi(ppi_csv), load_cesnet_lists(lists_csv)
    np.testing.assert_array_equal(a.payload, b.payload)
    np.testing.assert_array_equal(a.direction, b.direction)
    np.testing.assert_allclose(a.iat, b.iat, atol=1.5e-3)  # IPT is whole ms, times are ms-truncated
    np.testing.assert_array_equal(a.labels, b.labels)


# ---------------------------------------------------------------------------------------------- detection
def test_detect_dataset_file(mirage_dir: Path, ppi_csv: Path, lists_csv: Path, datasets_root: Path) -> None:
    assert detect_dataset_file(next(mirage_dir.glob("*.json"))) == "mirage-json"
    assert detect_dataset_file(mirage_dir) == "mirage-json"
    assert detect_dataset_file(ppi_csv) == "cesnet-ppi"
    assert detect_dataset_file(lists_csv) == "cesnet-lists"
    assert (
        detect_dataset_file(datasets_root / "ndpi" / "tests" / "cfgs" / "default" / "pcap" / "1kxun.pcap")
        is None
    )
    assert detect_dataset_file(datasets_root / "README.md") is None
    assert len(load_dataset_file(lists_csv)) == len(load_dataset_file(ppi_csv, fmt="cesnet-ppi"))


# ---------------------------------------------------------------------------------------------- bad input
def test_ppi_csv_missing_columns(tmp_path: Path, ppi_csv: Path) -> None:
    bad = tmp_path / "ppi.csv"
    lines = ppi_csv.read_text().splitlines()[:5]
    header = lines[0].split(",")
    drop = header.index("SIZE_7")
    bad.write_text("\n".join(",".join(c for j, c in enumerate(ln.split(",")) if j != drop) for ln in lines))
    with pytest.raises(NtgError, match=r"ppi\.csv.*SIZE_7"):
        load_cesnet_ppi(bad)


def test_lists_csv_missing_columns_and_bad_lists(tmp_path: Path, lists_csv: Path) -> None:
    lines = lists_csv.read_text().splitlines()[:4]
    no_times = tmp_path / "lists.csv"
    no_times.write_text("\n".join(lines).replace("time* PPI_PKT_TIMES", "time* OTHER"))
    with pytest.raises(NtgError, match=r"lists\.csv.*PPI_PKT_TIMES"):
        load_cesnet_lists(no_times)
    garbled = tmp_path / "garbled.csv"
    garbled.write_text("\n".join([lines[0], lines[1].replace("[1|-1]", "1;-1")]))
    with pytest.raises(NtgError, match="garbled.csv"):
        load_cesnet_lists(garbled)


def test_bad_mirage_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"10.0.0.1,1,10.0.0.2,2,6": {"packet_data": ')
    with pytest.raises(NtgError, match="broken.json"):
        load_mirage(broken)
    no_dir = tmp_path / "nodir.json"
    no_dir.write_text(
        json.dumps({"10.0.0.1,1,10.0.0.2,2,6": {"packet_data": {"iat": [0], "L4_payload_bytes": [1]}}})
    )
    with pytest.raises(NtgError, match=r"nodir\.json.*packet_dir"):
        load_mirage(no_dir)


def test_unknown_file_and_datazoo(datasets_root: Path) -> None:
    with pytest.raises(NtgError, match="README.md"):
        load_dataset_file(datasets_root / "README.md")
    with pytest.raises(NtgError, match="pip install cesnet-datazoo"):
        load_cesnet_datazoo("cesnet-tls22")
