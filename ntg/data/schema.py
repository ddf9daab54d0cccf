"""The biflow table: the one data contract between captures, generators, classifiers and reports.

A biflow keeps the first ``MAX_PACKETS`` packets; each packet has

* ``payload``   L4 payload bytes (int),
* ``direction`` 0 client→server, 1 server→client (the client sent the first packet seen),
* ``iat``       seconds since the previous packet of the biflow (float, microsecond resolution, 0 first),
* ``flags``     TCP flags byte (0 for UDP),
* ``window``    TCP window (0 for UDP).

In memory a :class:`FlowTable` holds these as dense ``(n, P)`` arrays padded with zeros past each flow's
``length = min(n_packets, P)``; on disk (``flows.parquet``) they are variable-length list columns of exactly
``length`` items, beside the row metadata (label, capture, split, 5-tuple, first timestamp, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA_VERSION = 1
MAX_PACKETS = 32
DEFAULT_N = 10
PACKET_FIELDS = ("payload", "direction", "iat", "flags", "window")
PACKET_DTYPES = {
    "payload": np.int32,
    "direction": np.int8,
    "iat": np.float64,
    "flags": np.int16,
    "window": np.int32,
}
ARROW_TYPES = {
    "payload": pa.int32(),
    "direction": pa.int8(),
    "iat": pa.float64(),
    "flags": pa.int16(),
    "window": pa.int32(),
}
# Row metadata columns a prepared dataset carries (generated flows carry only ``label``).
META_COLUMNS = (
    "label",
    "capture",
    "split",
    "src_ip",
    "dst_ip",
    "src_port",
    "dst_port",
    "proto",
    "first_ts",
)


@dataclass
class FlowTable:
    """Dense per-packet arrays of ``n`` biflows plus their row metadata.

    ``meta`` is a DataFrame with one row per flow and at least a ``label`` column; everything else in it
    (capture, split, 5-tuple, ...) is carried along untouched by slicing and concatenation.
    """

    n_packets: np.ndarray  # (n,) int64: packets in the whole biflow (may exceed P)
    payload: np.ndarray  # (n, P) int32
    direction: np.ndarray  # (n, P) int8
    iat: np.ndarray  # (n, P) float64 seconds
    flags: np.ndarray  # (n, P) int16
    window: np.ndarray  # (n, P) int32
    meta: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self) -> None:
        self.n_packets = np.asarray(self.n_packets, dtype=np.int64)
        for name in PACKET_FIELDS:
            setattr(self, name, np.asarray(getattr(self, name), dtype=PACKET_DTYPES[name]))
        n, p = self.payload.shape if self.payload.ndim == 2 else (len(self.n_packets), 0)
        for name in PACKET_FIELDS:
            arr = getattr(self, name)
            if arr.shape != (n, p):
                raise ValueError(f"FlowTable.{name} has shape {arr.shape}, expected {(n, p)}")
        if len(self.n_packets) != n:
            raise ValueError(f"FlowTable.n_packets has {len(self.n_packets)} rows, expected {n}")
        if self.meta is None or len(self.meta.columns) == 0:
            self.meta = pd.DataFrame({"label": np.full(n, "", dtype=object)})
        if len(self.meta) != n:
            raise ValueError(f"FlowTable.meta has {len(self.meta)} rows, expected {n}")
        self.meta = self.meta.reset_index(drop=True)

    # ------------------------------------------------------------------ shape and views
    def __len__(self) -> int:
        return len(self.n_packets)

    @property
    def max_packets(self) -> int:
        """P, the number of packet slots per flow."""
        return self.payload.shape[1]

    @property
    def length(self) -> np.ndarray:
        """Packets stored per flow: ``min(n_packets, P)``."""
        return np.minimum(self.n_packets, self.max_packets)

    @property
    def labels(self) -> np.ndarray:
        return self.meta["label"].to_numpy(dtype=object)

    @property
    def mask(self) -> np.ndarray:
        """(n, P) bool: True where a packet exists."""
        return np.arange(self.max_packets)[None, :] < self.length[:, None]

    def first(self, n: int) -> FlowTable:
        """The first ``n`` packets of every flow (``n_packets`` is kept: it is the biflow's size)."""
        if not 1 <= n <= self.max_packets:
            raise ValueError(f"cannot take the first {n} packets of flows that store {self.max_packets}")
        return FlowTable(
            n_packets=self.n_packets.copy(),
            **{name: getattr(self, name)[:, :n].copy() for name in PACKET_FIELDS},
            meta=self.meta.copy(),
        )

    def take(self, index: np.ndarray | Sequence[int]) -> FlowTable:
        """Rows by integer index or boolean mask."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return FlowTable(
            n_packets=self.n_packets[index],
            **{name: getattr(self, name)[index] for name in PACKET_FIELDS},
            meta=self.meta.iloc[index].reset_index(drop=True),
        )

    def where(self, **equals: object) -> FlowTable:
        """Rows whose meta columns equal the given values, e.g. ``flows.where(split="train")``."""
        keep = np.ones(len(self), dtype=bool)
        for column, value in equals.items():
            keep &= (self.meta[column] == value).to_numpy()
        return self.take(keep)

    @staticmethod
    def concat(tables: Sequence[FlowTable]) -> FlowTable:
        tables = [t for t in tables]
        if not tables:
            raise ValueError("FlowTable.concat needs at least one table")
        p = max(t.max_packets for t in tables)
        tables = [t.pad_to(p) for t in tables]
        return FlowTable(
            n_packets=np.concatenate([t.n_packets for t in tables]),
            **{name: np.concatenate([getattr(t, name) for t in tables]) for name in PACKET_FIELDS},
            meta=pd.concat([t.meta for t in tables], ignore_index=True),
        )

    def pad_to(self, p: int) -> FlowTable:
        if p == self.max_packets:
            return self
        if p < self.max_packets:
            return self.first(p)
        extra = p - self.max_packets
        return FlowTable(
            n_packets=self.n_packets,
            **{name: np.pad(getattr(self, name), ((0, 0), (0, extra))) for name in PACKET_FIELDS},
            meta=self.meta,
        )

    @classmethod
    def empty(cls, p: int = MAX_PACKETS) -> FlowTable:
        return cls(
            n_packets=np.zeros(0, np.int64),
            **{name: np.zeros((0, p), PACKET_DTYPES[name]) for name in PACKET_FIELDS},
            meta=pd.DataFrame({"label": np.zeros(0, dtype=object)}),
        )

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ValueError if any flow breaks the schema's invariants."""
        m = self.mask
        if np.any(self.n_packets < 1):
            raise ValueError("every flow needs at least one packet")
        if np.any((self.direction != 0) & (self.direction != 1)):
            raise ValueError("direction must be 0 or 1")
        if np.any(self.payload < 0):
            raise ValueError("payload lengths must be >= 0")
        if np.any(~np.isfinite(self.iat)) or np.any(self.iat < 0):
            raise ValueError("inter-arrival times must be finite and >= 0")
        for name in PACKET_FIELDS:
            if np.any(getattr(self, name)[~m] != 0):
                raise ValueError(f"{name} must be 0 past each flow's length")

    # ------------------------------------------------------------------ frames and files
    def to_frame(self) -> pd.DataFrame:
        """One row per flow; per-packet fields as lists of exactly ``length`` items."""
        frame = self.meta.copy()
        frame["n_packets"] = self.n_packets
        lengths = self.length
        for name in PACKET_FIELDS:
            arr = getattr(self, name)
            frame[name] = [arr[i, : lengths[i]].tolist() for i in range(len(self))]
        return frame

    def to_arrow(self) -> pa.Table:
        lengths = self.length.astype(np.int32)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        mask = self.mask
        columns = {c: pa.array(self.meta[c].tolist()) for c in self.meta.columns}
        columns["n_packets"] = pa.array(self.n_packets, pa.int64())
        for name in PACKET_FIELDS:
            values = pa.array(getattr(self, name)[mask], ARROW_TYPES[name])
            columns[name] = pa.ListArray.from_arrays(pa.array(offsets), values)
        return pa.table(columns)

    @classmethod
    def from_arrow(cls, table: pa.Table, max_packets: int = MAX_PACKETS) -> FlowTable:
        n = table.num_rows
        n_packets = table.column("n_packets").to_numpy().astype(np.int64)
        arrays = {}
        for name in PACKET_FIELDS:
            col = table.column(name).combine_chunks()
            offsets = col.offsets.to_numpy()
            values = col.values.to_numpy(zero_copy_only=False)
            lengths = np.diff(offsets)
            if np.any(lengths > max_packets):
                raise ValueError(f"column {name!r} has flows longer than {max_packets} packets")
            out = np.zeros((n, max_packets), PACKET_DTYPES[name])
            rows = np.repeat(np.arange(n), lengths)
            cols = np.arange(len(rows)) - np.repeat(offsets[:-1] - offsets[0], lengths)
            out[rows, cols] = values[offsets[0] : offsets[-1]]
            arrays[name] = out
        meta_cols = [c for c in table.column_names if c not in PACKET_FIELDS and c != "n_packets"]
        meta = table.select(meta_cols).to_pandas() if meta_cols else pd.DataFrame(index=range(n))
        return cls(n_packets=n_packets, **arrays, meta=meta)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, max_packets: int = MAX_PACKETS) -> FlowTable:
        missing = [c for c in ("label", *PACKET_FIELDS) if c not in frame.columns]
        if missing:
            raise ValueError(f"flow frame lacks columns {missing}")
        frame = frame.copy()
        if "n_packets" not in frame.columns:
            frame["n_packets"] = [len(x) for x in frame["payload"]]
        return cls.from_arrow(pa.Table.from_pandas(frame, preserve_index=False), max_packets)

    def write(self, path: str | Path) -> Path:
        """Write parquet (``.parquet``) or CSV (``.csv``, lists as space-separated values), atomically."""
        from ntg.utils.io import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            if path.suffix == ".csv":
                frame = self.to_frame()
                for name in PACKET_FIELDS:
                    frame[name] = [" ".join(map(str, xs)) for xs in frame[name]]
                frame.to_csv(tmp, index=False)
            else:
                pq.write_table(self.to_arrow(), tmp)
        return path

    @classmethod
    def read(cls, path: str | Path, max_packets: int = MAX_PACKETS) -> FlowTable:
        """Read a file written by :meth:`write` (parquet or CSV); anything else is an :class:`NtgError`."""
        from ntg.errors import NtgError

        path = Path(path)
        if not path.is_file():
            raise NtgError(f"{path}: no such flow file" + (" (it is a folder)" if path.is_dir() else "")
                           + "; give a .parquet or .csv file written by `ntg sample` or `ntg data prepare`")
        columns = flow_file_columns(path)
        if columns is None:
            raise NtgError(f"{path}: not a readable parquet or CSV file; give a flow file written by `ntg sample`")
        optional = ("n_packets",) if path.suffix == ".csv" else ()
        missing = [c for c in FLOW_FILE_COLUMNS if c not in columns and c not in optional]
        if missing:
            raise NtgError(f"{path}: not a flow file, it lacks the columns {missing} (flow files have "
                           f"{list(FLOW_FILE_COLUMNS)}); write one with `ntg sample`")
        try:
            if path.suffix == ".csv":
                frame = pd.read_csv(path)
                for name in PACKET_FIELDS:
                    cast = float if name == "iat" else int
                    frame[name] = [[cast(v) for v in str(s).split()] if isinstance(s, str) else []
                                   for s in frame[name]]
                return cls.from_frame(frame, max_packets)
            return cls.from_arrow(pq.read_table(path), max_packets)
        except (ValueError, TypeError, pa.ArrowException) as err:
            raise NtgError(f"{path}: not a valid flow file ({err}); write one with `ntg sample`") from None


#: Columns every flow file has (CSV files may leave out ``n_packets``: it is the payload list's length).
FLOW_FILE_COLUMNS = ("label", "n_packets", *PACKET_FIELDS)


def flow_file_columns(path: str | Path) -> list[str] | None:
    """The column names of a parquet or CSV file (without reading its rows), or None if it is neither."""
    path = Path(path)
    try:
        if path.suffix == ".csv":
            return pd.read_csv(path, nrows=0).columns.tolist()
        return pq.read_schema(path).names
    except (OSError, ValueError, pa.ArrowException, UnicodeDecodeError):
        return None


def is_flow_file(path: str | Path) -> bool:
    """Whether ``path`` is a flow file as :meth:`FlowTable.write` makes them (so ntg may replace it)."""
    columns = flow_file_columns(path)
    return columns is not None and all(c in columns for c in FLOW_FILE_COLUMNS if c != "n_packets")
