"""Which addresses belong to one device: a dual-stack Mac has an IPv4 address, a link-local and global
IPv6 address and temporary privacy addresses, and may ask DNS over one family and connect over another.

The tie is link-layer evidence: the same source MAC address on the client's packets, in ARP and in NDP.
A MAC seen with several IPv4 addresses (or with more IPv6 addresses than one host plausibly has) is a
router's, seen on a span port beyond it: it ties nothing. A capture taken on the Mac itself (Apple's PKTAP
with process names) ties the local ends of its sockets. Without either, each address is its own device,
except where a capture holds one IPv4 client and IPv6 clients of one /64 only: that tie is an inference,
and the evidence says so.
"""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from analyzer.diagnosis.paths import ip_object
from analyzer.errors import AnalyzerError
from analyzer.flows.records import FlowRecord

MAX_V6_PER_HOST = 16  # link-local, stable, temporary addresses of several prefixes; more is a router
TIE_MAC, TIE_PKTAP, TIE_ONE_HOST = "mac", "pktap", "one_host"


@dataclass(frozen=True, slots=True)
class Device:
    """One client device: its addresses (IPv4 first), and what ties them together."""

    addresses: tuple[str, ...]
    mac: str | None = None
    tie: str | None = None  # TIE_MAC | TIE_PKTAP | TIE_ONE_HOST, None for a lone address

    @property
    def key(self) -> str:
        return self.mac or self.addresses[0]

    @property
    def label(self) -> str:
        """How the report names it: its IPv4 address (or first address), with the MAC when known."""
        return f"{self.addresses[0]} ({self.mac})" if self.mac else self.addresses[0]

    def tie_text(self) -> str | None:
        """The evidence that the addresses are one device, for a finding or a flow's evidence."""
        if self.tie is None or len(self.addresses) < 2:
            return None
        addrs = ", ".join(self.addresses)
        if self.tie == TIE_MAC:
            return f"{addrs} are one device: the same MAC address {self.mac} sends from each"
        if self.tie == TIE_PKTAP:
            return f"{addrs} are one device: the capture was taken on it (PKTAP process metadata)"
        return (f"{addrs} taken as one device (inferred: the only IPv4 client and IPv6 clients of one /64 in "
                "this capture, no link-layer evidence)")


def _v6_prefix(ip: str) -> ipaddress.IPv6Network | None:
    addr = ip_object(ip)
    if not isinstance(addr, ipaddress.IPv6Address) or addr.is_link_local:
        return None
    return ipaddress.IPv6Network((int(addr) >> 64 << 64, 64))


def _family(ip: str) -> int:
    addr = ip_object(ip)
    return addr.version if addr is not None else 0


class Devices:
    """Client address -> the device it belongs to."""

    def __init__(self, devices: Iterable[Device] = ()) -> None:
        self._by_ip: dict[str, Device] = {}
        for d in devices:
            for a in d.addresses:
                self._by_ip[a] = d

    def of(self, ip: str) -> Device:
        d = self._by_ip.get(ip)
        return d if d is not None else Device((ip,))

    def all(self) -> list[Device]:
        return list({id(d): d for d in self._by_ip.values()}.values())

    @classmethod
    def build(cls, records: Iterable[FlowRecord], bindings: Iterable[tuple[str, str]] = (),
              on_device: bool = False) -> Devices:
        """`records`: every flow; `bindings`: (ip, mac) pairs learnt from ARP/NDP; `on_device`: a PKTAP capture."""
        records = list(records)
        by_mac: dict[str, set[str]] = defaultdict(set)
        clients: list[str] = []
        for r in records:
            clients.append(r.client_ip)
            mac = r.client_mac
            if mac:
                by_mac[mac].add(r.client_ip)
        for ip, mac in bindings:
            addr = ip_object(ip)
            if mac and addr is not None and not addr.is_unspecified:
                by_mac[mac].add(ip)
        client_set = set(clients)
        devices: list[Device] = []
        tied: set[str] = set()
        for mac, ips in sorted(by_mac.items()):
            v4 = [i for i in ips if _family(i) == 4]
            v6 = [i for i in ips if _family(i) == 6]
            if len(v4) > 1 or len(v6) > MAX_V6_PER_HOST:
                continue  # a router (or a span port beyond one): its MAC fronts many hosts
            if not ips & client_set:
                continue  # a server's or the router's address
            addrs = tuple(sorted(ips, key=_order))
            if tied & set(addrs):
                continue  # an address claimed by two MACs: tie neither a second time
            devices.append(Device(addrs, mac, TIE_MAC if len(addrs) > 1 else None))
            tied.update(addrs)
        if on_device:
            local = sorted({r.client_ip for r in records if r.processes} - tied, key=_order)
            if len(local) > 1:
                devices.append(Device(tuple(local), None, TIE_PKTAP))
                tied.update(local)
        elif not by_mac:
            one = _one_host(client_set)
            if one is not None:
                devices.append(one)
        return cls(devices)


def _order(ip: str) -> tuple[int, int, str]:
    """IPv4 first, then global IPv6, then link-local: the first address names the device."""
    addr = ip_object(ip)
    if addr is None:
        return (9, 0, ip)
    return (0 if addr.version == 4 else 1, 1 if addr.is_link_local else 0, ip)


def _one_host(clients: set[str]) -> Device | None:
    """The inferred tie: exactly one IPv4 client and IPv6 clients of one /64 (plus link-local)."""
    v4 = [c for c in clients if _family(c) == 4]
    v6 = [c for c in clients if _family(c) == 6]
    if len(v4) != 1 or not v6:
        return None
    prefixes = {p for p in map(_v6_prefix, v6) if p is not None}
    if len(prefixes) != 1:
        return None
    return Device(tuple(sorted(clients, key=_order)), None, TIE_ONE_HOST)


class ClientSpecError(AnalyzerError, ValueError):
    """`--client` names no address, network or MAC address."""


_MAC = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$")


def devices_matching(devices: Devices, spec: str, clients: Iterable[str]) -> list[Device]:
    """The devices that `spec` names: a MAC address, an IP address or a CIDR (every address of each is kept).

    Raises ClientSpecError when `spec` is none of these.
    """
    text = spec.strip().lower()
    found: dict[str, Device] = {}
    if _MAC.match(text):
        mac = text.replace("-", ":")
        for ip in clients:
            d = devices.of(ip)
            if d.mac == mac:
                found[d.key] = d
        return list(found.values())
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ClientSpecError(f"--client {spec!r}: not an IP address, a CIDR or a MAC address") from None
    for ip in clients:
        addr = ip_object(ip)
        if addr is not None and addr.version == net.version and addr in net:
            d = devices.of(ip)
            found[d.key] = d
    return list(found.values())
