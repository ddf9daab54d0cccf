"""Vectorised decoding of link, IP and TCP/UDP headers for every frame of a capture at once.

Each stage gathers header bytes at per-frame offsets with numpy, checks them against the captured length,
and marks frames it cannot use with a skip reason; only frames still alive move on to the next stage.
"""

from __future__ import annotations

import numpy as np

# Skip reasons, in the order a frame meets them. Code 0 means "kept".
REASONS = (
    "kept",
    "unsupported_link_type",  # a link layer this reader does not decode
    "non_ip",  # ARP, EAPOL, LLC/STP, ... (no IPv4/IPv6 header)
    "truncated_header",  # captured bytes end before the link, IP or TCP/UDP header does
    "bad_ip_header",  # version/header-length/total-length fields that cannot be right
    "fragment",  # IPv4 or IPv6 fragments (not reassembled)
    "non_tcp_udp",  # ICMP, IGMP, ESP, tunnels, ...
    "bad_l4_header",  # TCP data offset < 5 or headers longer than the IP length says
)
KEPT, UNSUPPORTED, NON_IP, TRUNCATED, BAD_IP, FRAGMENT, NON_TCP_UDP, BAD_L4 = range(len(REASONS))

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VLAN_TYPES = (0x8100, 0x88A8, 0x9100)
PPPOE_SESSION = 0x8864
MPLS_TYPES = (0x8847, 0x8848)
PPP_TO_ETHERTYPE = {0x0021: ETH_IPV4, 0x0057: ETH_IPV6}
IPV6_EXTENSIONS = (0, 43, 44, 51, 60, 135, 139, 140)
LINK_ETHERNET, LINK_SLL, LINK_SLL2 = 1, 113, 276
LINK_RAW = (101, 12, 14)
LINK_IPV4, LINK_IPV6 = 228, 229
LINK_NULL, LINK_LOOP, LINK_PPP, LINK_CHDLC = 0, 108, 9, 104
SUPPORTED_LINK_TYPES = (LINK_ETHERNET, LINK_SLL, LINK_SLL2, *LINK_RAW, LINK_IPV4, LINK_IPV6, LINK_NULL,
                        LINK_LOOP, LINK_PPP, LINK_CHDLC)
_MAC_WEIGHTS = np.array([1 << 40, 1 << 32, 1 << 24, 1 << 16, 1 << 8, 1], dtype=np.int64)


class _Bytes:
    """Safe gathers from a byte buffer: positions past its end read as 0 (callers check lengths)."""

    def __init__(self, buf: bytes) -> None:
        self.u8 = np.frombuffer(buf, dtype=np.uint8)
        self.size = len(self.u8)

    def u8_at(self, pos: np.ndarray) -> np.ndarray:
        if self.size == 0:
            return np.zeros(len(pos), np.int64)
        return self.u8[np.clip(pos, 0, self.size - 1)].astype(np.int64)

    def be16(self, pos: np.ndarray) -> np.ndarray:
        return (self.u8_at(pos) << 8) | self.u8_at(pos + 1)

    def le32(self, pos: np.ndarray) -> np.ndarray:
        return self.u8_at(pos) | (self.u8_at(pos + 1) << 8) | (self.u8_at(pos + 2) << 16) | (
            self.u8_at(pos + 3) << 24)

    def be32(self, pos: np.ndarray) -> np.ndarray:
        return (self.be16(pos) << 16) | self.be16(pos + 2)

    def block(self, pos: np.ndarray, width: int) -> np.ndarray:
        """(n, width) uint8 bytes starting at each position."""
        if self.size < width:
            return np.zeros((len(pos), width), np.uint8)
        windows = np.lib.stride_tricks.sliding_window_view(self.u8, width)  # a view: no index matrix
        return windows[np.clip(pos, 0, self.size - width)]

    def mac(self, pos: np.ndarray) -> np.ndarray:
        return self.block(pos, 6).astype(np.int64) @ _MAC_WEIGHTS


class _Frames:
    """Working state: per-frame positions, the reason each dead frame was dropped, and decoded fields."""

    def __init__(self, start: np.ndarray, caplen: np.ndarray) -> None:
        n = len(start)
        self.start = start
        self.end = start + caplen  # one past the last captured byte
        self.reason = np.zeros(n, dtype=np.int8)
        self.pos = start.copy()  # current header position
        self.ethertype = np.zeros(n, dtype=np.int64)
        self.src_mac = np.full(n, -1, dtype=np.int64)
        self.dst_mac = np.full(n, -1, dtype=np.int64)

    def alive(self, sel: np.ndarray | None = None) -> np.ndarray:
        ok = self.reason == KEPT
        return ok if sel is None else ok & sel

    def drop(self, mask: np.ndarray, reason: int) -> None:
        self.reason[mask & (self.reason == KEPT)] = reason


def decode_frames(buf: bytes, start: np.ndarray, caplen: np.ndarray, origlen: np.ndarray,
                  linktype: np.ndarray) -> dict[str, np.ndarray]:
    """Decode all frames; returns per-frame columns plus ``reason`` (0 = kept, see :data:`REASONS`)."""
    data = _Bytes(buf)
    f = _Frames(start, caplen)
    _link_layer(data, f, linktype)
    _encapsulations(data, f)
    f.drop((f.ethertype != ETH_IPV4) & (f.ethertype != ETH_IPV6), NON_IP)
    ip = _ip_layer(data, f, origlen)
    return {**ip, **_l4_layer(data, f, ip), "src_mac": f.src_mac, "dst_mac": f.dst_mac, "reason": f.reason}


# ---------------------------------------------------------------------------------------------- link layer
def _link_layer(data: _Bytes, f: _Frames, linktype: np.ndarray) -> None:
    f.drop(~np.isin(linktype, SUPPORTED_LINK_TYPES), UNSUPPORTED)
    caplen = f.end - f.start

    eth = f.alive(linktype == LINK_ETHERNET)
    f.drop(eth & (caplen < 14), TRUNCATED)
    eth = f.alive(eth)
    f.dst_mac[eth] = data.mac(f.start[eth])
    f.src_mac[eth] = data.mac(f.start[eth] + 6)
    f.ethertype[eth] = data.be16(f.start[eth] + 12)
    f.pos[eth] = f.start[eth] + 14

    sll = f.alive(linktype == LINK_SLL)
    f.drop(sll & (caplen < 16), TRUNCATED)
    sll = f.alive(sll)
    s = f.start[sll]
    has_mac = data.be16(s + 4) == 6  # a 6-byte link-layer address (as tshark reads it)
    f.src_mac[sll] = np.where(has_mac, data.mac(s + 6), -1)
    f.ethertype[sll] = data.be16(s + 14)
    f.pos[sll] = s + 16

    sll2 = f.alive(linktype == LINK_SLL2)
    f.drop(sll2 & (caplen < 20), TRUNCATED)
    sll2 = f.alive(sll2)
    s = f.start[sll2]
    has_mac = data.u8_at(s + 11) == 6
    f.src_mac[sll2] = np.where(has_mac, data.mac(s + 12), -1)
    f.ethertype[sll2] = data.be16(s)
    f.pos[sll2] = s + 20

    raw = f.alive(np.isin(linktype, LINK_RAW))
    f.drop(raw & (caplen < 1), TRUNCATED)
    raw = f.alive(raw)
    version = data.u8_at(f.start[raw]) >> 4
    f.ethertype[raw] = np.select([version == 4, version == 6], [ETH_IPV4, ETH_IPV6], 0)
    for code, ethertype in ((LINK_IPV4, ETH_IPV4), (LINK_IPV6, ETH_IPV6)):
        f.ethertype[f.alive(linktype == code)] = ethertype

    null = f.alive((linktype == LINK_NULL) | (linktype == LINK_LOOP))
    f.drop(null & (caplen < 4), TRUNCATED)
    null = f.alive(null)
    s = f.start[null]
    family = np.where(linktype[null] == LINK_LOOP, data.be32(s), data.le32(s))
    family = np.where(family > 0xFFFF, data.be32(s), family)  # DLT_NULL is in the writer's byte order
    f.ethertype[null] = np.select([family == 2, np.isin(family, (10, 24, 28, 30))], [ETH_IPV4, ETH_IPV6], 0)
    f.pos[null] = s + 4

    chdlc = f.alive(linktype == LINK_CHDLC)
    ppp = f.alive(linktype == LINK_PPP)
    first = data.u8_at(f.start)
    chdlc |= ppp & ((first == 0x0F) | (first == 0x8F))  # Cisco HDLC framing inside "PPP" captures
    ppp &= ~chdlc
    f.drop(chdlc & (caplen < 4), TRUNCATED)
    chdlc = f.alive(chdlc)
    f.ethertype[chdlc] = data.be16(f.start[chdlc] + 2)
    f.pos[chdlc] = f.start[chdlc] + 4

    s = f.start[ppp]
    framed = (data.u8_at(s) == 0xFF) & (data.u8_at(s + 1) == 0x03)
    f.pos[ppp] = s + np.where(framed, 2, 0)
    f.drop(ppp & (f.pos + 2 > f.end), TRUNCATED)
    ppp = f.alive(ppp)
    f.ethertype[ppp] = _ppp_to_ethertype(data.be16(f.pos[ppp]))
    f.pos[ppp] += 2


def _ppp_to_ethertype(proto: np.ndarray) -> np.ndarray:
    return np.select([proto == k for k in PPP_TO_ETHERTYPE], list(PPP_TO_ETHERTYPE.values()), 0)


def _encapsulations(data: _Bytes, f: _Frames, rounds: int = 4) -> None:
    """Strip 802.1Q/802.1ad VLAN tags, PPPoE session headers and MPLS label stacks."""
    for _ in range(rounds):
        vlan = f.alive(np.isin(f.ethertype, VLAN_TYPES))
        pppoe = f.alive(f.ethertype == PPPOE_SESSION)
        mpls = f.alive(np.isin(f.ethertype, MPLS_TYPES))
        if not (vlan.any() or pppoe.any() or mpls.any()):
            return
        f.drop(vlan & (f.pos + 4 > f.end), TRUNCATED)
        vlan = f.alive(vlan)
        f.ethertype[vlan] = data.be16(f.pos[vlan] + 2)
        f.pos[vlan] += 4

        f.drop(pppoe & (f.pos + 8 > f.end), TRUNCATED)
        pppoe = f.alive(pppoe)
        f.ethertype[pppoe] = _ppp_to_ethertype(data.be16(f.pos[pppoe] + 6))
        f.pos[pppoe] += 8

        for _label in range(8):  # pop labels until the bottom-of-stack bit
            f.drop(mpls & (f.pos + 5 > f.end), TRUNCATED)
            mpls = f.alive(mpls)
            if not mpls.any():
                break
            bottom = (data.u8_at(f.pos[mpls] + 2) & 1) == 1
            f.pos[mpls] += 4
            done = np.flatnonzero(mpls)[bottom]
            version = data.u8_at(f.pos[done]) >> 4
            f.ethertype[done] = np.select([version == 4, version == 6], [ETH_IPV4, ETH_IPV6], 0)
            mpls[done] = False
        f.drop(mpls, NON_IP)


# ---------------------------------------------------------------------------------------------- IP layer
def _ip_layer(data: _Bytes, f: _Frames, origlen: np.ndarray) -> dict[str, np.ndarray]:
    n = len(f.start)
    version = np.zeros(n, dtype=np.uint8)
    src = np.zeros((n, 16), dtype=np.uint8)
    dst = np.zeros((n, 16), dtype=np.uint8)
    proto = np.zeros(n, dtype=np.int64)
    ip_len = np.zeros(n, dtype=np.int64)  # IP total length (header + payload)
    hdr_len = np.zeros(n, dtype=np.int64)  # IP header length including IPv6 extension headers

    # Bytes from the IP header to the frame's end on the wire: an IP length claiming more is cut to it
    # (as tshark does); frames whose wire length is unknown or bogus (< captured) are not cut.
    caplen = f.end - f.start
    wire_room = np.where(origlen >= caplen, origlen, np.iinfo(np.int64).max // 2) - (f.pos - f.start)

    v4 = f.alive(f.ethertype == ETH_IPV4)
    f.drop(v4 & (f.pos + 20 > f.end), TRUNCATED)
    v4 = f.alive(v4)
    p = f.pos[v4]
    b0 = data.u8_at(p)
    ihl = (b0 & 0x0F) * 4
    total = data.be16(p + 2)
    wire = wire_room[v4]
    total = np.where(total == 0, wire, np.minimum(total, wire))  # TSO captures write 0
    ip_len[v4], hdr_len[v4], proto[v4] = total, ihl, data.u8_at(p + 9)
    f.drop(_scatter(v4, ((b0 >> 4) != 4) | (ihl < 20) | (total < ihl)), BAD_IP)
    f.drop(_scatter(v4, (data.be16(p + 6) & 0x3FFF) != 0), FRAGMENT)  # MF flag or fragment offset
    version[v4] = 4
    src[v4, 10:12] = dst[v4, 10:12] = 0xFF  # IPv4-mapped IPv6 addresses
    src[v4, 12:] = data.block(p + 12, 4)
    dst[v4, 12:] = data.block(p + 16, 4)

    v6 = f.alive(f.ethertype == ETH_IPV6)
    f.drop(v6 & (f.pos + 40 > f.end), TRUNCATED)
    v6 = f.alive(v6)
    p = f.pos[v6]
    f.drop(_scatter(v6, (data.u8_at(p) >> 4) != 6), BAD_IP)
    version[v6] = 6
    ip_len[v6] = np.minimum(data.be16(p + 4) + 40, wire_room[v6])
    src[v6] = data.block(p + 8, 16)
    dst[v6] = data.block(p + 24, 16)
    nxt = np.zeros(n, dtype=np.int64)
    nxt[v6] = data.u8_at(p + 6)
    hdr_len[v6] = 40
    for _ in range(10):  # walk the extension header chain
        ext = f.alive(v6 & np.isin(nxt, IPV6_EXTENSIONS))
        if not ext.any():
            break
        at = f.pos + hdr_len
        f.drop(ext & (at + 8 > f.end), TRUNCATED)
        ext = f.alive(ext)
        at = at[ext]
        kind = nxt[ext]
        f.drop(_scatter(ext, (kind == 44) & ((data.be16(at + 2) & 0xFFF9) != 0)), FRAGMENT)
        ext_len = data.u8_at(at + 1)
        size = np.select([kind == 44, kind == 51], [8, (ext_len + 2) * 4], (ext_len + 1) * 8)
        nxt[ext] = data.u8_at(at)
        hdr_len[ext] += size
    f.drop(v6 & np.isin(nxt, IPV6_EXTENSIONS), BAD_IP)
    proto[v6] = nxt[v6]
    f.drop(v6 & (ip_len < hdr_len), BAD_IP)
    return {"ip_version": version, "src_ip": src, "dst_ip": dst, "proto": proto, "ip_len": ip_len,
            "hdr_len": hdr_len}


def _scatter(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A full-length bool array: ``values`` at the True positions of ``mask``, False elsewhere."""
    out = np.zeros(len(mask), dtype=bool)
    out[mask] = values
    return out


# ---------------------------------------------------------------------------------------------- TCP/UDP
def _l4_layer(data: _Bytes, f: _Frames, ip: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    n = len(f.start)
    proto = ip["proto"]
    f.drop((proto != 6) & (proto != 17), NON_TCP_UDP)
    l4 = f.pos + ip["hdr_len"]
    ip_payload = ip["ip_len"] - ip["hdr_len"]
    src_port = np.zeros(n, np.uint16)
    dst_port = np.zeros(n, np.uint16)
    payload = np.zeros(n, np.int64)
    flags = np.zeros(n, np.uint8)
    window = np.zeros(n, np.uint16)

    tcp = f.alive(proto == 6)
    f.drop(tcp & (l4 + 20 > f.end), TRUNCATED)
    tcp = f.alive(tcp)
    at = l4[tcp]
    doff = (data.u8_at(at + 12) >> 4) * 4
    payload[tcp] = ip_payload[tcp] - doff
    f.drop(_scatter(tcp, (doff < 20) | (payload[tcp] < 0)), BAD_L4)
    flags[tcp] = data.u8_at(at + 13)
    window[tcp] = data.be16(at + 14)

    udp = f.alive(proto == 17)
    f.drop(udp & (l4 + 8 > f.end), TRUNCATED)
    udp = f.alive(udp)
    ulen = data.be16(l4[udp] + 4)
    room = ip_payload[udp]
    payload[udp] = np.where((ulen >= 8) & (ulen <= room), ulen - 8, room - 8)
    f.drop(_scatter(udp, room < 8), BAD_L4)

    l4_any = tcp | udp
    src_port[l4_any] = data.be16(l4[l4_any])
    dst_port[l4_any] = data.be16(l4[l4_any] + 2)
    return {"src_port": src_port, "dst_port": dst_port, "payload": payload, "flags": flags, "window": window}
