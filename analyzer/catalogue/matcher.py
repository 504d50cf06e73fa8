"""Which catalogue entries does a host name or an address belong to?

Names: case-insensitive, trailing dot and IDNA normalised; an exact entry beats
any wildcard; among wildcards the longest suffix wins. `*.domain` means what
Apple's document means by it: hosts in that domain, at any depth (and the
domain itself, reported as such).
Addresses: longest prefix wins, IPv4 and IPv6.

Attribution runs once per flow, so lookups are cached: a million flows cost
well under a second (see bench/bench_matcher.py).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass

from analyzer.catalogue.loader import Catalogue
from analyzer.catalogue.model import Entry, HostKind
from analyzer.catalogue.names import normalize_name

_CACHE_MAX = 65536


@dataclass(frozen=True, slots=True)
class Match:
    """The entries behind one winning pattern, and why it won."""

    query: str
    pattern: str  # the host, wildcard or CIDR exactly as the catalogue writes it
    kind: HostKind
    rule: str  # human explanation: "exact name", "wildcard *.push.apple.com", "longest prefix 17.0.0.0/8"
    specificity: int  # larger = more specific (for ranking several matches)
    entries: tuple[Entry, ...]

    def documented(self, port: int | None, transport: str | None) -> tuple[Entry, ...]:
        """Entries of this match that document `port` over `transport`."""
        return tuple(e for e in self.entries if e.documents(port, transport))

    def best_entry(self, port: int | None = None, transport: str | None = None) -> Entry:
        """The entry to attribute a flow to: one that documents the port if any does."""
        documented = self.documented(port, transport)
        return documented[0] if documented else self.entries[0]


class Matcher:
    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._exact: dict[str, list[Entry]] = defaultdict(list)
        self._wild: dict[str, list[Entry]] = defaultdict(list)
        # prefix length -> {network int >> (bits - plen): entries}, per address family
        self._nets: dict[int, dict[int, dict[int, list[Entry]]]] = {4: defaultdict(dict), 6: defaultdict(dict)}
        for e in catalogue.entries:
            if e.host_kind is HostKind.EXACT:
                assert e.domain is not None
                self._exact[e.domain].append(e)
            elif e.host_kind is HostKind.WILDCARD:
                assert e.domain is not None
                self._wild[e.domain].append(e)
            else:
                assert e.network is not None
                net = e.network
                bits = net.max_prefixlen
                key = int(net.network_address) >> (bits - net.prefixlen)
                self._nets[net.version][net.prefixlen].setdefault(key, []).append(e)
        self._plens = {v: sorted(d, reverse=True) for v, d in self._nets.items()}
        self._name_cache: dict[str, tuple[Match, ...]] = {}
        self._ip_cache: dict[str, tuple[Match, ...]] = {}
        self._attr_cache: dict[tuple[str | None, str | None, int | None, str | None], tuple[Match, Entry] | None] = {}

    # -- names ---------------------------------------------------------------
    def name_matches(self, name: str) -> tuple[Match, ...]:
        """Every pattern that covers `name`, most specific first."""
        cached = self._name_cache.get(name)
        if cached is not None:
            return cached
        result = self._name_matches(name)
        if len(self._name_cache) >= _CACHE_MAX:
            self._name_cache.clear()
        self._name_cache[name] = result
        return result

    def _name_matches(self, name: str) -> tuple[Match, ...]:
        n = normalize_name(name)
        if n is None:
            return ()
        found: list[Match] = []
        exact = self._exact.get(n)
        if exact:
            found.append(Match(name, exact[0].host, HostKind.EXACT, "exact name", 1000, tuple(exact)))
        labels = n.split(".")
        for i in range(len(labels)):
            suffix = ".".join(labels[i:])
            wild = self._wild.get(suffix)
            if not wild:
                continue
            if i == 0:
                rule = f"the domain of wildcard {wild[0].host} itself"
            else:
                rule = f"wildcard {wild[0].host} (longest matching suffix .{suffix})"
            found.append(Match(name, wild[0].host, HostKind.WILDCARD, rule, len(labels) - i, tuple(wild)))
        return tuple(found)

    def match_name(self, name: str) -> Match | None:
        m = self.name_matches(name)
        return m[0] if m else None

    # -- addresses -----------------------------------------------------------
    def ip_matches(self, ip: str) -> tuple[Match, ...]:
        cached = self._ip_cache.get(ip)
        if cached is not None:
            return cached
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            result: tuple[Match, ...] = ()
        else:
            result = self._ip_matches(ip, addr)
        if len(self._ip_cache) >= _CACHE_MAX:
            self._ip_cache.clear()
        self._ip_cache[ip] = result
        return result

    def _ip_matches(self, ip: str, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[Match, ...]:
        v = addr.version
        bits = addr.max_prefixlen
        value = int(addr)
        found: list[Match] = []
        for plen in self._plens[v]:
            entries = self._nets[v][plen].get(value >> (bits - plen))
            if entries:
                host = entries[0].host
                found.append(Match(ip, host, HostKind.CIDR, f"longest prefix {host}" if not found else f"prefix {host}", plen, tuple(entries)))
        return tuple(found)

    def match_ip(self, ip: str) -> Match | None:
        m = self.ip_matches(ip)
        return m[0] if m else None

    # -- flows ---------------------------------------------------------------
    def attribute(self, name: str | None, ip: str | None, port: int | None, transport: str | None) -> tuple[Match, Entry] | None:
        """The winning match and entry for a flow: by name when one is known, else by address.

        Cached on the whole key, because a capture repeats the same few
        (name, port) pairs thousands of times.
        """
        key = (name, ip if name is None else None, port, transport)
        try:
            return self._attr_cache[key]
        except KeyError:
            pass
        m = self.match_name(name) if name is not None else None
        if m is None and name is None and ip is not None:
            m = self.match_ip(ip)
        result = (m, m.best_entry(port, transport)) if m is not None else None
        if len(self._attr_cache) >= _CACHE_MAX:
            self._attr_cache.clear()
        self._attr_cache[key] = result
        return result

    # -- either --------------------------------------------------------------
    def lookup(self, text: str) -> tuple[Match, ...]:
        """A host name or an address; most specific match first."""
        try:
            ipaddress.ip_address(text)
        except ValueError:
            return self.name_matches(text)
        return self.ip_matches(text)
