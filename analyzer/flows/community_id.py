"""Community ID v1 flow hashes (corelight/community-id-spec), as Zeek and Suricata log them.

The hash input is: 2-byte seed, the two addresses and ports in a canonical
order (smaller address first, ports break ties), the IP protocol and a zero
pad byte, all in network byte order; SHA-1, base64, prefixed with "1:". ICMP
has no ports: the type and code map to port equivalents, and request/reply
pairs (echo, timestamp, neighbour discovery...) map to the same value so both
directions of an exchange share one ID; other ICMP messages are one-way and
keep their own order.
"""

from __future__ import annotations

import binascii
import hashlib
import ipaddress
import struct

__all__ = ["community_id", "icmp_port_equivalents"]

_ICMP = 1
_ICMP6 = 58
_PORTED = frozenset({6, 17, 132, _ICMP, _ICMP6})  # TCP, UDP, SCTP, ICMP, ICMPv6

# ICMPv4 type -> counterpart type (community-id-spec, after Zeek's ICMP4_counterpart).
_ICMP4_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 17: 18, 18: 17}
# ICMPv6 type -> counterpart type (after Zeek's ICMP6_counterpart).
_ICMP6_PAIRS = {
    128: 129,
    129: 128,
    133: 134,
    134: 133,
    135: 136,
    136: 135,
    130: 131,
    131: 130,
    139: 140,
    140: 139,
    144: 145,
    145: 144,
}


def icmp_port_equivalents(proto: int, icmp_type: int, icmp_code: int) -> tuple[int, int, bool]:
    """(source "port", destination "port", one-way) for an ICMP/ICMPv6 message."""
    pairs = _ICMP6_PAIRS if proto == _ICMP6 else _ICMP4_PAIRS
    other = pairs.get(icmp_type)
    if other is None:
        return icmp_type, icmp_code, True
    return icmp_type, other, False


def _packed(addr: str | bytes) -> bytes:
    if isinstance(addr, bytes):
        if len(addr) not in (4, 16):
            raise ValueError(f"address must be 4 or 16 bytes, got {len(addr)}")
        return addr
    return ipaddress.ip_address(addr).packed


def community_id(
    src: str | bytes,
    dst: str | bytes,
    proto: int,
    sport: int | None = None,
    dport: int | None = None,
    seed: int = 0,
) -> str:
    """Community ID v1 of one packet's flow (the same for both directions).

    `src`/`dst` are address text or packed bytes. For ICMP/ICMPv6 pass the
    message type as `sport` and the code as `dport`; for protocols without
    ports leave both None. Raises ValueError for a bad address or a seed or
    port outside 16 bits.
    """
    saddr = _packed(src)
    daddr = _packed(dst)
    if len(saddr) != len(daddr):
        raise ValueError("source and destination address families differ")
    if not 0 <= seed <= 0xFFFF:
        raise ValueError("seed must fit in 16 bits")
    ported = proto in _PORTED and sport is not None and dport is not None
    sp = dp = 0
    if ported:
        assert sport is not None and dport is not None
        sp, dp = sport, dport
        one_way = False
        if proto in (_ICMP, _ICMP6):
            sp, dp, one_way = icmp_port_equivalents(proto, sp, dp)
        if not (0 <= sp <= 0xFFFF and 0 <= dp <= 0xFFFF):
            raise ValueError("ports must fit in 16 bits")
        if not one_way and (saddr, sp) > (daddr, dp):
            saddr, daddr, sp, dp = daddr, saddr, dp, sp
    elif saddr > daddr:
        saddr, daddr = daddr, saddr
    if ported:
        data = _SEED(seed) + saddr + daddr + _PROTO_PORTS(proto & 0xFF, 0, sp, dp)
    else:
        data = _SEED(seed) + saddr + daddr + _PROTO(proto & 0xFF, 0)
    return "1:" + binascii.b2a_base64(hashlib.sha1(data).digest(), newline=False).decode("ascii")


_SEED = struct.Struct("!H").pack
_PROTO = struct.Struct("!BB").pack
_PROTO_PORTS = struct.Struct("!BBHH").pack
