"""Tiny dpkt-based UDP payload extractor for tests only.

dpkt reads the capture files and link layers; the IP and UDP headers are
walked by hand because dpkt's `IP.unpack` silently leaves raw bytes (or
raises) when a packet was cut by the snaplen, and the snaplen-truncated QUIC
capture is exactly what some tests need: the payload is whatever was
captured, bounded by the UDP length.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import dpkt

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
LOCAL = Path(__file__).parent / "fixtures" / "local"

Endpoint = tuple[str, int]

_RAW_LINKTYPES = {12, 14, 101}
_NULL_LINKTYPES = {0, 108}
_IPV6_EXT_HEADERS = {0, 43, 60}  # hop-by-hop, routing, destination options
_VLAN_ETHERTYPES = {0x8100, 0x88A8, 0x9100}


@dataclasses.dataclass(frozen=True, slots=True)
class Datagram:
    index: int  # 1-based frame number in the capture, as tcpdump/tshark count
    ts: float
    src: Endpoint
    dst: Endpoint
    payload: bytes
    truncated: bool  # fewer bytes captured than the UDP length says


def fmt(ep: Endpoint) -> str:
    ip, port = ep
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _frames(path: Path) -> Iterator[tuple[float, int, bytes]]:
    with path.open("rb") as fh:
        magic = fh.read(4)
        fh.seek(0)
        reader: dpkt.pcap.Reader | dpkt.pcapng.Reader
        if magic == b"\x0a\x0d\x0d\x0a":
            reader = dpkt.pcapng.Reader(fh)
        else:
            reader = dpkt.pcap.Reader(fh)
        linktype = reader.datalink()
        try:
            for ts, frame in reader:
                yield float(ts), linktype, bytes(frame)
        except (dpkt.NeedData, dpkt.UnpackError, ValueError):
            return  # file cut short: keep what was read


def _network_layer(linktype: int, frame: bytes) -> bytes | None:
    if linktype == 1:
        # Walk Ethernet and 802.1Q/QinQ tags by hand: re-serialising dpkt's
        # decoded IP object could rewrite the very header fields under test.
        pos, ethertype = 12, int.from_bytes(frame[12:14], "big")
        while ethertype in _VLAN_ETHERTYPES and len(frame) >= pos + 6:
            pos += 4
            ethertype = int.from_bytes(frame[pos : pos + 2], "big")
        if ethertype not in (0x0800, 0x86DD):
            return None
        return frame[pos + 2 :]
    if linktype in _NULL_LINKTYPES:
        return frame[4:]
    if linktype in _RAW_LINKTYPES:
        return frame
    if linktype == 113:  # Linux SLL
        return frame[16:]
    if linktype == 276:  # Linux SLL2
        return frame[20:]
    return None


def _udp(ip: bytes) -> tuple[str, str, bytes] | None:
    """(src, dst, UDP header+payload as captured) or None if not UDP."""
    if len(ip) < 1:
        return None
    version = ip[0] >> 4
    if version == 4 and len(ip) >= 20:
        ihl = (ip[0] & 0x0F) * 4
        frag = int.from_bytes(ip[6:8], "big")
        if ip[9] != 17 or frag & 0x1FFF:
            return None
        total = int.from_bytes(ip[2:4], "big")
        src = str(ipaddress.IPv4Address(ip[12:16]))
        dst = str(ipaddress.IPv4Address(ip[16:20]))
        return src, dst, ip[ihl:total] if total >= ihl else ip[ihl:]
    if version == 6 and len(ip) >= 40:
        nxt = ip[6]
        plen = int.from_bytes(ip[4:6], "big")
        src = str(ipaddress.IPv6Address(ip[8:24]))
        dst = str(ipaddress.IPv6Address(ip[24:40]))
        rest = ip[40 : 40 + plen]
        while nxt in _IPV6_EXT_HEADERS and len(rest) >= 2:
            nxt, rest = rest[0], rest[(rest[1] + 1) * 8 :]
        if nxt != 17:
            return None
        return src, dst, rest
    return None


def udp_datagrams(path: Path | str) -> list[Datagram]:
    """Every UDP datagram of a capture, in capture order."""
    p = Path(path)
    if not p.is_absolute():
        p = CORPUS / p
    out: list[Datagram] = []
    for index, (ts, linktype, frame) in enumerate(_frames(p), start=1):
        ip = _network_layer(linktype, frame)
        if ip is None:
            continue
        parsed = _udp(ip)
        if parsed is None or len(parsed[2]) < 8:
            continue
        src, dst, udp = parsed
        sport = int.from_bytes(udp[0:2], "big")
        dport = int.from_bytes(udp[2:4], "big")
        length = int.from_bytes(udp[4:6], "big")
        payload = udp[8:length] if length >= 8 else udp[8:]
        truncated = length > len(udp)
        out.append(Datagram(index, ts, (src, sport), (dst, dport), payload, truncated))
    return out


def udp_payloads(path: Path | str, port: int) -> list[Datagram]:
    """Datagrams with `port` as source or destination port."""
    return [d for d in udp_datagrams(path) if port in (d.src[1], d.dst[1])]
