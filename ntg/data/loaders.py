"""Loaders of published flow datasets that ship per-packet sequences instead of captures (MIRAGE, CESNET).

Each loader returns a :class:`~ntg.data.schema.FlowTable` of the first up to ``max_packets`` packets per
biflow, in our units and encodings (payload bytes, direction 0 = client→server where the client is the
sender of the first packet given, inter-arrival seconds), with row metadata ``label``, ``capture`` (the
source file's name) and, where the file gives them, ``src_ip``/``dst_ip``/``src_port``/``dst_port``/
``proto``/``first_ts``. When a source flow starts with a server→client packet, directions are flipped and
the endpoints swapped so that every flow starts with direction 0, as flows parsed from captures do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ntg.data.flow_builder import FlowBuilder, tcp_flags
from ntg.data.schema import MAX_PACKETS, FlowTable
from ntg.errors import NtgError

FORMATS = ("mirage-json", "cesnet-ppi", "cesnet-lists")
MIRAGE_REQUIRED = ("packet_dir", "L4_payload_bytes")
CESNET_LIST_REQUIRED = ("PPI_PKT_DIRECTIONS", "PPI_PKT_LENGTHS", "PPI_PKT_TIMES")
CESNET_LABEL_COLUMNS = ("label", "LABEL", "APP", "app")


# ---------------------------------------------------------------------------------------------- dispatch
def detect_dataset_file(path: str | Path) -> str | None:
    """The format of a dataset file from its content: one of :data:`FORMATS`, or None.

    A folder is ``"mirage-json"`` when it holds MIRAGE JSON files.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        return "mirage-json" if files and _looks_like_mirage(files[0]) else None
    if not path.is_file():
        return None
    if _looks_like_mirage(path):
        return "mirage-json"
    columns = _csv_header(path)
    if columns is None:
        return None
    if all(c in columns for c in CESNET_LIST_REQUIRED):
        return "cesnet-lists"
    if {"IPT_1", "DIR_1", "SIZE_1"} <= set(columns) or "PPI" in columns:
        return "cesnet-ppi"
    return None


def load_dataset_file(path: str | Path, fmt: str | None = None, max_packets: int = MAX_PACKETS) -> FlowTable:
    """Load ``path`` in format ``fmt`` (detected from the content when None)."""
    path = Path(path)
    if not path.exists():
        raise NtgError(f"{path}: no such dataset file")
    fmt = fmt or detect_dataset_file(path)
    loaders: dict[str, Callable[..., FlowTable]] = {
        "mirage-json": load_mirage,
        "cesnet-ppi": load_cesnet_ppi,
        "cesnet-lists": load_cesnet_lists,
    }
    if fmt not in loaders:
        raise NtgError(
            f"{path}: not a dataset file ntg recognises; expected one of {', '.join(FORMATS)} "
            "(MIRAGE JSON, CESNET PPI CSV with IPT_i/DIR_i/SIZE_i, CESNET CSV with PPI_PKT_* lists)"
        )
    return loaders[fmt](path, max_packets=max_packets)


# ---------------------------------------------------------------------------------------------- MIRAGE
def load_mirage(path: str | Path, max_packets: int = MAX_PACKETS) -> FlowTable:
    """MIRAGE-2019/2022 JSON (``<epoch>_<app>_MIRAGE-20xx_..._labeled_biflows.json``) or a folder of them.

    The file maps ``"src_ip,src_port,dst_ip,dst_port,proto"`` (src = the mobile device) to a biflow with
    ``packet_data`` lists and ``flow_metadata``. Mapping:

    * label: ``flow_metadata.BF_label`` (the app's package name), else the app part of the file name;
    * payload: ``L4_payload_bytes``;
    * direction: MIRAGE's ``packet_dir`` is 0 upstream (device→server), 1 downstream; ours is
      ``packet_dir != packet_dir[0]`` (0 = the first packet's sender → its peer); flows whose first packet is
      downstream get their endpoints swapped in the metadata;
    * iat: ``iat`` is already seconds since the previous packet of the biflow (its sum is ``BF_duration``);
      without it, differences of ``timestamp`` (epoch seconds); the first packet's is 0;
    * window: ``TCP_win_size`` (0 when absent); flags: ``TCP_flags`` (MIRAGE-2022; number or letters such
      as ``"PA"``; 0 when absent, as in MIRAGE-2019);
    * n_packets: ``BF_num_packets`` when the lists fill all ``max_packets`` slots, else the list length;
    * first_ts: ``timestamp[0]`` where given (MIRAGE-2022).
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise NtgError(f"{path}: no MIRAGE *.json files in this folder")
        return FlowTable.concat([load_mirage(f, max_packets) for f in files])
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise NtgError(f"{path}: not a readable MIRAGE JSON file ({err})") from None
    if not isinstance(data, dict):
        raise NtgError(f"{path}: a MIRAGE file is a JSON object of biflows keyed by 5-tuple")
    builder = FlowBuilder(max_packets)
    for key, record in data.items():
        packets = record.get("packet_data") if isinstance(record, dict) else None
        missing = [f for f in MIRAGE_REQUIRED if not isinstance(packets, dict) or f not in packets]
        if missing or ("iat" not in packets and "timestamp" not in packets):
            raise NtgError(
                f"{path}: biflow {key!r} lacks packet_data fields {missing or ['iat or timestamp']}; "
                f"a MIRAGE biflow needs packet_data with {list(MIRAGE_REQUIRED)} and iat (or timestamp)"
            )
        _add_mirage_flow(builder, path, key, record, packets)
    return builder.table()


def _add_mirage_flow(builder: FlowBuilder, path: Path, key: str, record: dict, packets: dict) -> None:
    raw_dir = np.asarray(packets["packet_dir"], dtype=np.int64)
    if len(raw_dir) == 0:
        return
    if "iat" in packets:
        iat = np.asarray(packets["iat"], dtype=np.float64)
    else:
        iat = np.diff(np.asarray(packets["timestamp"], dtype=np.float64), prepend=packets["timestamp"][0])
    n = len(raw_dir)
    window = packets.get("TCP_win_size") or [0] * n
    flags = [tcp_flags(f) for f in packets["TCP_flags"]] if "TCP_flags" in packets else [0] * n
    metadata = record.get("flow_metadata") or {}
    label = metadata.get("BF_label") or _mirage_app_from_name(path)
    parts = key.split(",")
    if len(parts) != 5:
        raise NtgError(f"{path}: biflow key {key!r} is not 'src_ip,src_port,dst_ip,dst_port,proto'")
    meta = {
        "label": str(label),
        "capture": path.name,
        "src_ip": parts[0],
        "src_port": int(parts[1]),
        "dst_ip": parts[2],
        "dst_port": int(parts[3]),
        "proto": int(parts[4]),
    }
    if "timestamp" in packets:
        meta["first_ts"] = float(packets["timestamp"][0])
    total = int(metadata.get("BF_num_packets", n))
    builder.add(
        payload=packets["L4_payload_bytes"],
        server_side=raw_dir != raw_dir[0],
        first_is_server=bool(raw_dir[0] == 1),
        iat=iat,
        flags=flags,
        window=window,
        n_packets=max(total, n),
        meta=meta,
        source=path,
    )


def _mirage_app_from_name(path: Path) -> str:
    """``1543251985_com.waze_MIRAGE-2019_...json`` → ``com.waze``."""
    stem = path.name.split("_MIRAGE", 1)[0]
    return stem.split("_", 1)[1] if "_" in stem else stem


def _looks_like_mirage(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(65536)
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and b'"packet_data"' in head and b'"packet_dir"' in head


# ---------------------------------------------------------------------------------------------- CESNET PPI
def load_cesnet_ppi(path: str | Path, max_packets: int = MAX_PACKETS) -> FlowTable:
    """CESNET "PPI" CSV (CESNET-TLS22/QUIC22 layout): ``IPT_1..K, DIR_1..K, SIZE_1..K`` and a label column.

    CESNET's per-packet information (PPI) holds the first K (30) packets *that carry payload* (a flow's
    SYN/ACK-only packets are not in it), zero-padded. Mapping:

    * label: ``label`` (or ``LABEL``/``APP``);
    * payload: ``SIZE_i`` (transport payload bytes); a packet exists where ``DIR_i != 0``;
    * direction: CESNET's ``DIR_i`` is 1 client→server, -1 server→client; ours is ``DIR_i != DIR_1``
      (flows whose first payload packet comes from the server, e.g. server-first protocols, are re-anchored);
    * iat: ``IPT_i`` is milliseconds since the previous PPI packet → seconds (``IPT_1`` = 0);
    * flags, window: not given → 0; n_packets: the PPI length (the file does not give the flow's size).

    A single ``PPI`` column holding ``[[ipt...], [dir...], [size...]]`` (cesnet-datazoo exports) works too.
    """
    path = Path(path)
    frame = _read_csv(path)
    label_column = _label_column(path, frame)
    if "PPI" in frame.columns:
        try:
            ppi = np.array([json.loads(str(cell)) for cell in frame["PPI"]], dtype=np.float64)
        except (ValueError, json.JSONDecodeError) as err:
            raise NtgError(f"{path}: column PPI is not [[ipt...],[dir...],[size...]] lists ({err})") from None
    else:
        k = 1
        while f"DIR_{k + 1}" in frame.columns:
            k += 1
        wanted = [f"{name}_{i}" for name in ("IPT", "DIR", "SIZE") for i in range(1, k + 1)]
        missing = [c for c in wanted if c not in frame.columns]
        if "DIR_1" not in frame.columns or missing:
            raise NtgError(
                f"{path}: missing CESNET PPI columns {missing or ['DIR_1']}; expected IPT_i, DIR_i, SIZE_i "
                "(i = 1..K) and a label column"
            )
        try:
            ppi = frame[wanted].to_numpy(dtype=np.float64).reshape(len(frame), 3, k)
        except ValueError as err:
            raise NtgError(f"{path}: non-numeric IPT/DIR/SIZE values ({err})") from None
    if ppi.ndim != 3 or ppi.shape[1] != 3:
        raise NtgError(
            f"{path}: PPI must hold three sequences (IPT, DIR, SIZE) per flow, got {ppi.shape[1:]}"
        )
    meta = pd.DataFrame({"label": frame[label_column].astype(str).str.strip(), "capture": path.name})
    return ppi_to_flows(ppi, meta, max_packets=max_packets, source=path)


def ppi_to_flows(
    ppi: np.ndarray, meta: pd.DataFrame, max_packets: int = MAX_PACKETS, source: Path | None = None
) -> FlowTable:
    """CESNET PPI arrays ``(n, 3, K)`` of (IPT ms, DIR ±1/0, SIZE bytes) to a FlowTable (see above)."""
    builder = FlowBuilder(max_packets)
    ipt, dirs, size = ppi[:, 0], ppi[:, 1].astype(np.int64), ppi[:, 2]
    for i in range(len(ppi)):
        present = dirs[i] != 0
        n = int(present.sum())
        if n == 0:
            continue
        if not present[:n].all():
            where = f"{source}: " if source else ""
            raise NtgError(f"{where}flow {i} has gaps in its DIR sequence; PPI packets must be contiguous")
        d = dirs[i, :n]
        iat = ipt[i, :n] / 1000.0
        builder.add(
            payload=size[i, :n],
            server_side=d != d[0],
            first_is_server=bool(d[0] == -1),
            iat=np.concatenate([[0.0], iat[1:]]),
            flags=np.zeros(n),
            window=np.zeros(n),
            n_packets=n,
            meta=meta.iloc[i].to_dict(),
            source=source,
        )
    return builder.table()


# ---------------------------------------------------------------------------------------------- CESNET lists
def load_cesnet_lists(path: str | Path, max_packets: int = MAX_PACKETS) -> FlowTable:
    """CESNET CSV with per-packet lists (CESNET-MINER22 layout, ipfixprobe/UniRec export).

    Column names carry their UniRec type (``uint16* PPI_PKT_LENGTHS``); the type is ignored. Lists are
    written ``[a|b|c]``. Mapping:

    * label: ``LABEL``; payload: ``PPI_PKT_LENGTHS`` (transport payload bytes of the packets with payload);
    * direction: ``PPI_PKT_DIRECTIONS`` 1 client→server, -1 server→client → ours ``dir != dir[0]``
      (endpoints swapped when the first payload packet is the server's);
    * iat: differences of ``PPI_PKT_TIMES`` (ISO times, UTC, millisecond resolution) in seconds;
    * flags: ``PPI_PKT_FLAGS`` (TCP flags byte; 0 when absent); window: not given → 0;
    * n_packets: the PPI length; first_ts: ``TIME_FIRST`` (the flow's first packet, payload or not) or the
      first PPI time; ``SRC_IP``/``DST_IP``/``SRC_PORT``/``DST_PORT``/``PROTOCOL`` where present.
    """
    path = Path(path)
    frame = _read_csv(path)
    frame.columns = [str(c).strip().split(" ")[-1] for c in frame.columns]
    missing = [c for c in (*CESNET_LIST_REQUIRED, "LABEL") if c not in frame.columns]
    if missing:
        raise NtgError(
            f"{path}: missing CESNET columns {missing}; expected LABEL, {', '.join(CESNET_LIST_REQUIRED)} "
            "(+ optional PPI_PKT_FLAGS, TIME_FIRST, SRC_IP, DST_IP, SRC_PORT, DST_PORT, PROTOCOL)"
        )
    try:
        dirs = [_int_list(x) for x in frame["PPI_PKT_DIRECTIONS"]]
        lengths = [_int_list(x) for x in frame["PPI_PKT_LENGTHS"]]
        flags = [_int_list(x) for x in frame["PPI_PKT_FLAGS"]] if "PPI_PKT_FLAGS" in frame.columns else None
        times_text = [_str_list(x) for x in frame["PPI_PKT_TIMES"]]
        flat_us = _epoch_us(pd.Series([t for ts in times_text for t in ts]))
        first_ts = _epoch_us(frame["TIME_FIRST"]) / 1e6 if "TIME_FIRST" in frame.columns else None
    except (ValueError, TypeError) as err:
        raise NtgError(
            f"{path}: unparsable per-packet list or time ({err}); lists look like [a|b|c]"
        ) from None
    offsets = np.concatenate([[0], np.cumsum([len(ts) for ts in times_text])])
    endpoint_columns = {
        "SRC_IP": "src_ip",
        "DST_IP": "dst_ip",
        "SRC_PORT": "src_port",
        "DST_PORT": "dst_port",
    }
    builder = FlowBuilder(max_packets)
    for i in range(len(frame)):
        d = np.asarray(dirs[i])
        n = len(d)
        if n == 0:
            continue
        times = flat_us[offsets[i] : offsets[i + 1]]
        if len(lengths[i]) != n or len(times) != n or (flags is not None and len(flags[i]) != n):
            raise NtgError(f"{path}: row {i + 2} has per-packet lists of different lengths")
        meta = {"label": str(frame["LABEL"].iat[i]).strip(), "capture": path.name}
        for column, name in endpoint_columns.items():
            if column in frame.columns:
                value = frame[column].iat[i]
                meta[name] = int(value) if name.endswith("port") else str(value)
        if "PROTOCOL" in frame.columns:
            meta["proto"] = int(frame["PROTOCOL"].iat[i])
        meta["first_ts"] = float(first_ts[i]) if first_ts is not None else times[0] / 1e6
        builder.add(
            payload=lengths[i],
            server_side=d != d[0],
            first_is_server=bool(d[0] == -1),
            iat=np.maximum(np.diff(times, prepend=times[0]), 0) / 1e6,
            flags=flags[i] if flags is not None else np.zeros(n),
            window=np.zeros(n),
            n_packets=n,
            meta=meta,
            source=path,
        )
    return builder.table()


def load_cesnet_datazoo(*args: object, **kwargs: object) -> FlowTable:
    """Hook for CESNET-TLS22/QUIC22 through the ``cesnet-datazoo`` package (not a dependency of ntg)."""
    try:
        import cesnet_datazoo  # noqa: F401
    except ImportError:
        raise NtgError(
            "the cesnet-datazoo package is not installed; install it with `pip install cesnet-datazoo`, "
            "or export the dataset to CSV (IPT_i/DIR_i/SIZE_i or a PPI column + APP) and load that file"
        ) from None
    raise NtgError(
        "loading through cesnet-datazoo directly is not supported yet; take its PPI array (n, 3, 30) "
        "and labels and call ntg.data.loaders.ppi_to_flows, or export them to CSV and load that file"
    )


# ---------------------------------------------------------------------------------------------- helpers
def _epoch_us(texts: pd.Series) -> np.ndarray:
    """ISO times (UTC when naive) as integer microseconds since the epoch."""
    times = pd.to_datetime(texts, utc=True, format="ISO8601")
    return ((times - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)).to_numpy(np.int64)


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise NtgError(f"{path}: no such file")
    try:
        return pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise NtgError(f"{path}: not a readable CSV file ({err})") from None


def _csv_header(path: Path) -> list[str] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            line = handle.readline()
    except (OSError, UnicodeDecodeError):
        return None
    if "," not in line:
        return None
    return [c.strip().split(" ")[-1] for c in line.strip().split(",")]


def _label_column(path: Path, frame: pd.DataFrame) -> str:
    for column in CESNET_LABEL_COLUMNS:
        if column in frame.columns:
            return column
    raise NtgError(f"{path}: no label column; expected one of {list(CESNET_LABEL_COLUMNS)}")


def _str_list(cell: object) -> list[str]:
    text = str(cell).strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise ValueError(f"{text[:40]!r} is not a [a|b|c] list")
    text = text[1:-1].strip()
    return [t.strip() for t in text.split("|")] if text else []


def _int_list(cell: object) -> list[int]:
    return [int(t) for t in _str_list(cell)]
