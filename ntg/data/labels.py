"""Class labels for the biflows of a capture: from its folder, from nDPI (via nfstream) or from a CSV table.

Every labeller works on a *key table*: a DataFrame with one row per biflow and the columns ``src_ip``,
``dst_ip``, ``src_port``, ``dst_port``, ``proto`` (6/17) and optionally ``first_ts`` (epoch seconds), the
row metadata :func:`ntg.data.biflow.capture_to_flows` produces. Labellers return one string per key row;
``"Unknown"`` marks a biflow they could not label (callers drop those).
"""

from __future__ import annotations

import ipaddress
import os
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ntg.errors import NtgError

UNKNOWN = "Unknown"
KEY_COLUMNS = ("src_ip", "dst_ip", "src_port", "dst_port", "proto")
CSV_COLUMNS = (*KEY_COLUMNS, "label")
# nDPI names "MASTER.APP": for these carrier protocols the application part is the class.
CARRIER_PROTOCOLS = frozenset({"TLS", "QUIC", "HTTP", "DTLS", "STUN", "HTTP2"})
PROTO_NUMBERS = {"tcp": 6, "udp": 17}
LABEL_MODES = ("dir", "ndpi", "csv:FILE")


# ---------------------------------------------------------------------------------------------- modes
@dataclass(frozen=True)
class LabelMode:
    """How to label the biflows of a capture: ``dir``, ``ndpi`` or ``csv`` (with its label file ``path``)."""

    kind: Literal["dir", "ndpi", "csv"]
    path: Path | None = None

    def __str__(self) -> str:
        return f"csv:{self.path}" if self.kind == "csv" else self.kind

    def apply(self, capture: Path, keys: pd.DataFrame, root: Path, idle_timeout: float = 120.0) -> np.ndarray:
        """One label per row of ``keys`` (the biflows of ``capture``, a file below ``root``)."""
        if self.kind == "dir":
            return np.full(len(keys), label_from_dir(capture, root), dtype=object)
        if self.kind == "ndpi":
            return ndpi_labels(capture, keys, idle_timeout=idle_timeout)
        assert self.path is not None
        return csv_labels(self.path, keys)


def parse_label_mode(text: str) -> LabelMode:
    """Parse ``"dir"``, ``"ndpi"`` or ``"csv:FILE"``."""
    text = text.strip()
    if text in ("dir", "ndpi"):
        return LabelMode(text)  # type: ignore[arg-type]
    if text.startswith("csv:") and len(text) > 4:
        return LabelMode("csv", Path(text[4:]).expanduser())
    raise NtgError(f"unknown label mode {text!r}; use one of {', '.join(LABEL_MODES)}")


# ---------------------------------------------------------------------------------------------- dir
def label_from_dir(capture: Path, root: Path) -> str:
    """The name of the folder holding ``capture`` (``root/<class>/.../<class>/x.pcap`` → ``<class>``)."""
    capture, root = Path(os.path.abspath(capture)), Path(os.path.abspath(root))  # keep symlinked folders
    if root not in capture.parents:
        raise NtgError(f"{capture}: not below the dataset folder {root}; pass the folder that holds it")
    if capture.parent == root:
        raise NtgError(
            f"{capture}: lies directly in {root}, so no folder names its class; "
            "put captures in one folder per class or use --labels ndpi / csv:FILE"
        )
    return capture.parent.name


# ---------------------------------------------------------------------------------------------- nDPI
def normalise_ndpi_name(name: str | None) -> str:
    """An nDPI application name as a class: ``TLS.YouTube`` → ``YouTube``, ``DNS.YouTube`` → ``DNS``.

    For carrier protocols (:data:`CARRIER_PROTOCOLS`) the application part is the class; for any other
    master protocol the master is (``DNS.YouTube`` is a DNS exchange); a bare name stays. Empty → Unknown.
    """
    name = (name or "").strip()
    if not name or name == UNKNOWN:
        return UNKNOWN
    master, dot, app = name.partition(".")
    if not dot or not app:
        return master
    if master in CARRIER_PROTOCOLS:
        return app if app != UNKNOWN else master
    return master


def ndpi_flows(
    capture: Path, idle_timeout: float = 120.0, decode_tunnels: bool = False, accept_guessed: bool = False
) -> pd.DataFrame:
    """nfstream's (bundled nDPI) flows of ``capture``: 5-tuple, ``first_ts`` (s) and normalised ``label``.

    Port- or IP-based guesses (``application_is_guessed``) become Unknown unless ``accept_guessed``.
    """
    from nfstream import NFStreamer

    capture = Path(capture)
    if not capture.is_file():
        raise NtgError(f"{capture}: no such capture file")
    streamer = NFStreamer(
        source=str(capture),
        decode_tunnels=decode_tunnels,
        idle_timeout=int(round(idle_timeout)),
        active_timeout=10**9,  # never cut a flow for its age: our biflows only end when idle
        n_dissections=255,
        statistical_analysis=False,
        n_meters=1,
    )
    rows = []
    try:
        for flow in streamer:
            guessed = bool(flow.application_is_guessed) and not accept_guessed
            rows.append(
                (
                    flow.src_ip,
                    flow.dst_ip,
                    flow.src_port,
                    flow.dst_port,
                    flow.protocol,
                    flow.bidirectional_first_seen_ms / 1000.0,
                    UNKNOWN if guessed else normalise_ndpi_name(flow.application_name),
                )
            )
    except (ValueError, OSError) as err:
        raise NtgError(f"{capture}: nfstream could not read it ({err}); is it a pcap/pcapng file?") from None
    return pd.DataFrame(rows, columns=[*KEY_COLUMNS, "first_ts", "label"])


def ndpi_labels(
    capture: Path,
    keys: pd.DataFrame,
    idle_timeout: float = 120.0,
    decode_tunnels: bool = False,
    accept_guessed: bool = False,
) -> np.ndarray:
    """nDPI's label for each biflow of ``keys`` (from ``capture``), normalised by :func:`normalise_ndpi_name`.

    Each biflow is matched to nfstream's flow with the same 5-tuple in either orientation and the nearest
    first-seen time. ``decode_tunnels`` is off by default because our capture parser keeps a GTP/CAPWAP/TZSP
    tunnel as its outer UDP biflow (whose packets mix the inner flows): nDPI then labels that biflow (e.g.
    ``GTP``) instead of inner flows no key refers to; turn it on for keys of decoded inner flows. Port- or
    IP-based guesses count as undetected unless ``accept_guessed``. Unmatched or undetected biflows get
    ``"Unknown"``.
    """
    _check_keys(keys, "the key table")
    return match_labels(keys, ndpi_flows(capture, idle_timeout, decode_tunnels, accept_guessed))


# ---------------------------------------------------------------------------------------------- CSV
def csv_labels(file: Path, keys: pd.DataFrame, tolerance: float = 1.0) -> np.ndarray:
    """Labels from a CSV table with columns ``src_ip, dst_ip, src_port, dst_port, proto, label``.

    A row matches a biflow with the same 5-tuple in either orientation; ``proto`` may be a number or
    ``TCP``/``UDP``. With an optional ``first_ts`` column (epoch seconds) a biflow takes the row nearest its
    own first timestamp, if within ``tolerance`` seconds. Unmatched biflows get ``"Unknown"``.
    """
    file = Path(file)
    if not file.is_file():
        raise NtgError(f"{file}: no such label file; pass --labels csv:FILE with an existing CSV")
    try:
        table = pd.read_csv(file, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise NtgError(f"{file}: not a readable CSV ({err})") from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in CSV_COLUMNS if c not in table.columns]
    if missing:
        raise NtgError(
            f"{file}: missing label columns {missing}; expected {list(CSV_COLUMNS)} (+ optional first_ts)"
        )
    try:
        table["proto"] = [_proto_number(p) for p in table["proto"]]
        table["src_port"] = table["src_port"].astype(int)
        table["dst_port"] = table["dst_port"].astype(int)
        if "first_ts" in table.columns:
            table["first_ts"] = table["first_ts"].astype(float)
    except (ValueError, TypeError) as err:
        raise NtgError(
            f"{file}: bad port/proto/first_ts value ({err}); use numbers (proto also TCP/UDP)"
        ) from None
    table["label"] = table["label"].fillna("").astype(str).str.strip().replace("", UNKNOWN)
    _check_keys(keys, "the key table")
    return match_labels(keys, table, tolerance=tolerance if "first_ts" in table.columns else None)


# ---------------------------------------------------------------------------------------------- matching
def match_labels(keys: pd.DataFrame, table: pd.DataFrame, tolerance: float | None = None) -> np.ndarray:
    """For each key row, the ``label`` of the ``table`` row with the same 5-tuple (either orientation).

    Among several candidates the one whose ``first_ts`` is nearest the key's wins (the earliest when either
    side has no time); with ``tolerance`` a nearest candidate further away than that is no match.
    """
    has_time = "first_ts" in table.columns
    index: dict[tuple, list[tuple[float, str]]] = defaultdict(list)
    times = table["first_ts"].to_numpy(float) if has_time else np.full(len(table), np.nan)
    for row, ts in zip(table[[*KEY_COLUMNS, "label"]].itertuples(index=False), times, strict=True):
        index[_canonical(*row[:5])].append((ts, str(row[5])))
    for candidates in index.values():
        candidates.sort(key=lambda c: (np.isnan(c[0]), c[0]))

    key_times = keys["first_ts"].to_numpy(float) if "first_ts" in keys.columns else np.full(len(keys), np.nan)
    out = np.full(len(keys), UNKNOWN, dtype=object)
    for i, (row, ts) in enumerate(
        zip(keys[list(KEY_COLUMNS)].itertuples(index=False), key_times, strict=True)
    ):
        candidates = index.get(_canonical(*row))
        if not candidates:
            continue
        if np.isnan(ts) or np.isnan(candidates[0][0]):
            out[i] = candidates[0][1]
            continue
        gap, label = min((abs(c_ts - ts), c_label) for c_ts, c_label in candidates)
        if tolerance is None or gap <= tolerance:
            out[i] = label
    return out


def _canonical(src_ip: str, dst_ip: str, src_port: int, dst_port: int, proto: int) -> tuple:
    a, b = (_ip(src_ip), int(src_port)), (_ip(dst_ip), int(dst_port))
    return (int(proto), *sorted((a, b)))


@lru_cache(maxsize=65536)
def _ip(text: str) -> str:
    """Canonical text of an IP address (IPv6 compressed, lower case); other strings as given."""
    try:
        return str(ipaddress.ip_address(str(text).strip()))
    except ValueError:
        return str(text).strip()


def _proto_number(value: object) -> int:
    text = str(value).strip().lower()
    return PROTO_NUMBERS[text] if text in PROTO_NUMBERS else int(float(text))


def _check_keys(keys: pd.DataFrame, what: str) -> None:
    missing = [c for c in KEY_COLUMNS if c not in keys.columns]
    if missing:
        raise NtgError(f"{what} lacks columns {missing}; expected {list(KEY_COLUMNS)} (+ optional first_ts)")
