"""IP -> Ethernet address bindings learnt from ARP and NDP: which addresses are one device.

A Mac has several addresses at once (IPv4, IPv6 global, temporary privacy
addresses, link-local) and sends them all from one Ethernet address. What
ARP and Neighbor Discovery state on the link (`analyzer.protocols.neighbors`)
ties each address to that Ethernet address; the flow records carry the
Ethernet source of each side (`FlowRecord.client_mac`), so the diagnosis can
tell that an IPv4 flow and an IPv6 flow came from the same device.

`NeighborTracker` is fed ARP frames and NDP packets by the engine and keeps
one `NeighborBinding` per (IP, Ethernet address) pair: when and how often it
was stated. It holds at most `max_bindings`; past that the binding seen
longest ago is dropped (weird `neighbor_table_full`). Time comes only from
packet timestamps.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from analyzer.capture.decode import ArpFrame, Packet, ip_bytes, ip_text, mac_text
from analyzer.protocols.neighbors import NDP_TYPES, ParseError, parse_arp, parse_ndp

__all__ = ["WEIRDS", "NeighborBinding", "NeighborSource", "NeighborTracker", "merge_bindings"]

WEIRDS: dict[str, str] = {
    "neighbor_table_full": "an IP/Ethernet binding was dropped to make room (EngineConfig.max_neighbors)",
}

PROTO_ICMP6 = 58


class NeighborSource(StrEnum):
    ARP = "arp"
    NDP = "ndp"


@dataclass(frozen=True, slots=True)
class NeighborBinding:
    """An IP address that ARP or NDP said belongs to an Ethernet address."""

    ip: str
    mac: str
    """"aa:bb:cc:dd:ee:ff"."""
    source: NeighborSource
    first_ts: float
    last_ts: float
    count: int
    """Messages that stated it."""


class NeighborTracker:
    """ARP frames and NDP packets in, `bindings()` out."""

    def __init__(self, max_bindings: int = 4096) -> None:
        if max_bindings < 1:
            raise ValueError("max_bindings must be >= 1")
        self.max_bindings = max_bindings
        self.weird: Counter[str] = Counter()
        # (ip, mac) -> [first_ts, last_ts, count]; least recently stated first.
        self._seen: OrderedDict[tuple[bytes, bytes], list[float]] = OrderedDict()

    def arp(self, frame: ArpFrame) -> None:
        try:
            msg = parse_arp(frame.data)
        except ParseError as exc:
            self.weird[exc.kind] += 1
            return
        for ip, mac in msg.claims:
            self._bind(ip, mac, frame.ts)

    def ndp(self, pkt: Packet) -> None:
        """An ICMPv6 packet; anything but Neighbor Discovery is ignored."""
        icmp = pkt.icmp
        if pkt.proto != PROTO_ICMP6 or icmp is None or icmp.type not in NDP_TYPES:
            return
        try:
            msg = parse_ndp(icmp.type, icmp.code, pkt.ttl, pkt.payload, pkt.src)
        except ParseError as exc:
            self.weird[exc.kind] += 1
            return
        for ip, mac in msg.claims(pkt.src):
            self._bind(ip, mac, pkt.ts)

    def _bind(self, ip: bytes, mac: bytes, ts: float) -> None:
        key = (ip, mac)
        seen = self._seen.get(key)
        if seen is not None:
            seen[0] = min(seen[0], ts)
            seen[1] = max(seen[1], ts)
            seen[2] += 1
            self._seen.move_to_end(key)
            return
        if len(self._seen) >= self.max_bindings:
            self._seen.popitem(last=False)
            self.weird["neighbor_table_full"] += 1
        self._seen[key] = [ts, ts, 1]

    def bindings(self) -> list[NeighborBinding]:
        """Every binding kept, IPv4 before IPv6, by address then Ethernet address."""
        return [
            NeighborBinding(
                ip_text(ip),
                mac_text(mac),
                NeighborSource.ARP if len(ip) == 4 else NeighborSource.NDP,
                first,
                last,
                int(count),
            )
            for (ip, mac), (first, last, count) in sorted(self._seen.items(), key=lambda kv: (len(kv[0][0]), kv[0]))
        ]


def merge_bindings(groups: Iterable[Iterable[NeighborBinding]]) -> list[NeighborBinding]:
    """Bindings that several engines (the shards of `apple-net flows -j N`) learnt, as one engine's list.

    The same (ip, mac, source) from two groups becomes one: the earliest
    first time, the latest last time, the counts added. Sorted as
    `NeighborTracker.bindings` sorts.
    """
    merged: dict[tuple[str, str, NeighborSource], NeighborBinding] = {}
    for group in groups:
        for b in group:
            key = (b.ip, b.mac, b.source)
            old = merged.get(key)
            if old is not None:
                b = NeighborBinding(b.ip, b.mac, b.source, min(old.first_ts, b.first_ts),
                                    max(old.last_ts, b.last_ts), old.count + b.count)
            merged[key] = b
    return sorted(merged.values(), key=_order)


def _order(b: NeighborBinding) -> tuple[int, bytes, str]:
    raw = ip_bytes(b.ip)
    return len(raw), raw, b.mac
