"""ARP (RFC 826) and IPv6 Neighbor Discovery (RFC 4861): which host says it has which IP on the link.

Sans-I/O: `parse_arp(data)` reads one ARP message (the bytes after the
Ethernet and VLAN headers); `parse_ndp(type, code, hop_limit, body)` reads one
NDP message, `body` being the ICMPv6 message after its 8-byte header. Each
result names the (IP address, Ethernet address) pairs it states in `claims`:

- ARP: the sender's pair (request and reply); in a reply also the target's
  (the host that asked). A probe (sender IP 0.0.0.0) claims nothing.
- NDP: Router and Neighbor Solicitations and Router Advertisements bind their
  IPv6 source to their Source Link-Layer Address option; a Neighbor
  Advertisement (or a Redirect) binds its target address to its Target
  Link-Layer Address option.

Only Ethernet/IPv4 ARP and 6-byte link-layer addresses are read; broadcast,
multicast and all-zero addresses are never claimed. Malformed input raises
`ParseError` whose `kind` is one of `WEIRDS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._buffer import ParseError

__all__ = [
    "NDP_TYPES",
    "WEIRDS",
    "ArpMessage",
    "NdpMessage",
    "ParseError",
    "is_unicast_mac",
    "parse_arp",
    "parse_ndp",
]

WEIRDS: dict[str, str] = {
    "arp_truncated": "ARP message shorter than its address fields",
    "arp_unsupported": "ARP for another hardware or protocol type than Ethernet/IPv4",
    "arp_bad_lengths": "ARP address lengths that do not fit Ethernet/IPv4",
    "arp_unknown_opcode": "ARP opcode other than request (1) or reply (2)",
    "ndp_bad_hop_limit": "NDP message with a hop limit other than 255 (not from the link: ignored)",
    "ndp_bad_code": "NDP message with an ICMPv6 code other than 0",
    "ndp_truncated": "NDP message shorter than its fixed fields",
    "ndp_bad_option_length": "NDP option of length 0 or running past the message",
    "ndp_lla_from_unspecified": "NDP source link-layer address option from the unspecified address",
}
"""Weird names these parsers raise (`ParseError.kind`)."""

ARP_REQUEST = 1
ARP_REPLY = 2
_ARP_LEN = 28  # Ethernet/IPv4: 8-byte header, 6+4+6+4 bytes of addresses

ND_ROUTER_SOLICIT = 133
ND_ROUTER_ADVERT = 134
ND_NEIGHBOR_SOLICIT = 135
ND_NEIGHBOR_ADVERT = 136
ND_REDIRECT = 137
NDP_TYPES = frozenset({ND_ROUTER_SOLICIT, ND_ROUTER_ADVERT, ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT, ND_REDIRECT})
"""ICMPv6 types of Neighbor Discovery."""
OPT_SOURCE_LLA = 1
OPT_TARGET_LLA = 2
# Where the options start in each message's body (after the ICMPv6 header).
_OPTIONS_AT = {
    ND_ROUTER_SOLICIT: 0,
    ND_ROUTER_ADVERT: 8,  # reachable time, retransmission timer
    ND_NEIGHBOR_SOLICIT: 16,  # target address
    ND_NEIGHBOR_ADVERT: 16,
    ND_REDIRECT: 32,  # target and destination addresses
}
_UNSPECIFIED4 = bytes(4)
_UNSPECIFIED6 = bytes(16)

Claim = tuple[bytes, bytes]
"""(IP address, 4 or 16 bytes; Ethernet address, 6 bytes)."""


def is_unicast_mac(mac: bytes) -> bool:
    """A 6-byte address that names one interface: not zero, not broadcast or multicast (I/G bit)."""
    return len(mac) == 6 and not mac[0] & 1 and mac != b"\0\0\0\0\0\0"


@dataclass(frozen=True, slots=True)
class ArpMessage:
    opcode: int
    """1 request, 2 reply."""
    sender_mac: bytes
    sender_ip: bytes
    target_mac: bytes
    """Zero (or anything) in a request: the asker does not know it yet."""
    target_ip: bytes

    @property
    def claims(self) -> tuple[Claim, ...]:
        out: list[Claim] = []
        if self.sender_ip != _UNSPECIFIED4 and is_unicast_mac(self.sender_mac):
            out.append((self.sender_ip, self.sender_mac))
        if (
            self.opcode == ARP_REPLY
            and self.target_ip != _UNSPECIFIED4
            and is_unicast_mac(self.target_mac)
            and (self.target_ip, self.target_mac) not in out
        ):
            out.append((self.target_ip, self.target_mac))
        return tuple(out)


def parse_arp(data: bytes) -> ArpMessage:
    """One ARP message; trailing bytes (Ethernet padding) are ignored."""
    if len(data) < 8:
        raise ParseError("arp_truncated", f"{len(data)} bytes")
    htype = int.from_bytes(data[0:2])
    ptype = int.from_bytes(data[2:4])
    if htype != 1 or ptype != 0x0800:
        raise ParseError("arp_unsupported", f"hardware {htype}, protocol {ptype:#06x}")
    if data[4] != 6 or data[5] != 4:
        raise ParseError("arp_bad_lengths", f"hardware {data[4]}, protocol {data[5]}")
    opcode = int.from_bytes(data[6:8])
    if opcode != ARP_REQUEST and opcode != ARP_REPLY:
        raise ParseError("arp_unknown_opcode", str(opcode))
    if len(data) < _ARP_LEN:
        raise ParseError("arp_truncated", f"{len(data)} bytes")
    return ArpMessage(opcode, data[8:14], data[14:18], data[18:24], data[24:28])


@dataclass(frozen=True, slots=True)
class NdpMessage:
    type: int
    """ICMPv6 type: 133 RS, 134 RA, 135 NS, 136 NA, 137 Redirect."""
    target: bytes | None
    """NS, NA, Redirect: the target address."""
    source_lla: bytes | None
    """Source Link-Layer Address option (6 bytes), if present."""
    target_lla: bytes | None
    """Target Link-Layer Address option (6 bytes), if present."""

    def claims(self, source_ip: bytes) -> tuple[Claim, ...]:
        """The bindings this message states, sent from `source_ip`."""
        out: list[Claim] = []
        if self.source_lla is not None and source_ip != _UNSPECIFIED6 and is_unicast_mac(self.source_lla):
            out.append((source_ip, self.source_lla))
        target = self.target
        if (
            self.target_lla is not None
            and target is not None
            and target != _UNSPECIFIED6
            and target[0] != 0xFF  # a multicast target is malformed; no host has it
            and is_unicast_mac(self.target_lla)
            and (target, self.target_lla) not in out
        ):
            out.append((target, self.target_lla))
        return tuple(out)


def parse_ndp(icmp_type: int, code: int, hop_limit: int, body: bytes, source_ip: bytes = b"") -> NdpMessage:
    """One Neighbor Discovery message (RFC 4861 section 6.1.1/7.1 validity: hop limit 255, code 0).

    `body` is what follows the 8-byte ICMPv6 header. With `source_ip`, a
    source link-layer address option from the unspecified address (a
    Duplicate Address Detection probe must not carry one) is an error.
    """
    start = _OPTIONS_AT.get(icmp_type)
    if start is None:
        raise ValueError(f"not a Neighbor Discovery type: {icmp_type}")
    if hop_limit != 255:
        raise ParseError("ndp_bad_hop_limit", str(hop_limit))
    if code != 0:
        raise ParseError("ndp_bad_code", str(code))
    if len(body) < start:
        raise ParseError("ndp_truncated", f"{len(body)} bytes")
    target = body[0:16] if icmp_type >= ND_NEIGHBOR_SOLICIT else None
    source_lla = target_lla = None
    pos, end = start, len(body)
    while pos < end:
        if end - pos < 2:
            raise ParseError("ndp_bad_option_length", f"{end - pos} bytes left at {pos}")
        kind, length = body[pos], body[pos + 1] * 8
        if length == 0 or pos + length > end:
            raise ParseError("ndp_bad_option_length", f"option {kind} of {length} bytes at {pos}")
        if length == 8:  # an Ethernet address and two bytes of padding
            if kind == OPT_SOURCE_LLA and source_lla is None:
                source_lla = body[pos + 2 : pos + 8]
            elif kind == OPT_TARGET_LLA and target_lla is None:
                target_lla = body[pos + 2 : pos + 8]
        pos += length
    if source_lla is not None and source_ip == _UNSPECIFIED6:
        raise ParseError("ndp_lla_from_unspecified")
    return NdpMessage(icmp_type, target, source_lla, target_lla)
