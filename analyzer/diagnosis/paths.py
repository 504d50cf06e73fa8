"""What the IP layer says about who answered: TTL / hop counts per server, for resets and interception.

A packet's TTL starts at 32, 64, 128 or 255 and drops by one per router, so
`hops = initial - ttl`. A reset or a TLS answer "from" a distant Apple server
that arrives 0 hops away, or with a TTL unlike that server's own SYN-ACK, was
made by something closer: a firewall or an inspecting proxy.
"""

from __future__ import annotations

import functools
import ipaddress
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from analyzer.flows.records import FlowRecord

INITIAL_TTLS = (32, 64, 128, 255)


def initial_ttl(ttl: int) -> int:
    for t in INITIAL_TTLS:
        if ttl <= t:
            return t
    return 255


def hops(ttl: int) -> int:
    return initial_ttl(ttl) - ttl


def hops_text(n: int) -> str:
    return f"{n} hop" if n == 1 else f"{n} hops"


@functools.lru_cache(maxsize=4096)
def ip_object(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address in `text`, parsed once: a capture has a few addresses and many records."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_public(ip: str) -> bool:
    addr = ip_object(ip)
    return addr is not None and addr.is_global


@dataclass(slots=True)
class PathBaselines:
    """TTLs seen from each server address (its SYN-ACKs), and hop counts of Apple servers overall."""

    synack_ttls: dict[str, Counter[int]]
    apple_hops: Counter[int]

    @classmethod
    def build(cls, flows: Iterable[tuple[FlowRecord, bool, bool]]) -> "PathBaselines":
        """`flows`: (record, attributed to Apple, looks genuine) for every flow."""
        per_server: dict[str, Counter[int]] = defaultdict(Counter)
        apple: Counter[int] = Counter()
        for r, is_apple, genuine in flows:
            ttl = r.server.syn_ttl
            if ttl is None or r.synack_ts is None:
                continue
            if genuine:
                per_server[r.server_ip][ttl] += 1
                if is_apple:
                    apple[hops(ttl)] += 1
        return cls(dict(per_server), apple)

    def server_ttl(self, ip: str, exclude: int | None = None) -> int | None:
        """The usual SYN-ACK TTL of `ip` in this capture (None when unknown)."""
        c = self.synack_ttls.get(ip)
        if not c:
            return None
        if exclude is not None and sum(c.values()) <= 1 and exclude in c:
            return None
        return c.most_common(1)[0][0]

    def usual_apple_hops(self) -> int | None:
        return self.apple_hops.most_common(1)[0][0] if self.apple_hops else None


def closer_than_server(ttl: int, server_ip: str, baselines: PathBaselines, own_synack_ttl: int | None) -> list[str]:
    """Evidence that a packet claiming to come from `server_ip` was made by something nearer the client."""
    evidence: list[str] = []
    h = hops(ttl)
    if own_synack_ttl is not None and own_synack_ttl != ttl and hops(own_synack_ttl) != h:
        evidence.append(f"TTL {ttl} ({hops_text(h)}) differs from the server's own SYN-ACK TTL {own_synack_ttl} "
                        f"({hops_text(hops(own_synack_ttl))})")
        return evidence
    usual = baselines.server_ttl(server_ip)
    if usual is not None and usual != ttl and hops(usual) != h:
        evidence.append(f"TTL {ttl} ({hops_text(h)}) differs from {server_ip}'s usual TTL {usual} "
                        f"({hops_text(hops(usual))}) in other flows of this capture")
        return evidence
    apple = baselines.usual_apple_hops()
    if apple is not None and h < apple:
        evidence.append(f"{hops_text(h)} away, nearer than the Apple servers in this capture ({hops_text(apple)})")
        return evidence
    if h == 0 and is_public(server_ip):
        evidence.append(f"TTL {ttl} = 0 hops: made by a device on the client's own network segment, "
                        f"not by {server_ip} (a public address)")
    return evidence
