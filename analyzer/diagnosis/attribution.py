"""Tie each flow to a documented Apple service; the strongest evidence wins.

TLS SNI > QUIC SNI > CONNECT target > HTTP Host > DNS (names this client
resolved to this server address before the flow began, CNAME chain included,
latest answer wins; "this client" is every address of the device, so a Mac that
asks over IPv4 and connects over IPv6 keeps its names) > Apple's address ranges
> an Apple-only port.
"""

from __future__ import annotations

from analyzer.catalogue.matcher import Match, Matcher
from analyzer.catalogue.model import Entry, Status
from analyzer.diagnosis.model import Attribution, Evidence
from analyzer.dnsmap import NameMap, Resolution
from analyzer.inspect import FlowFacts

TCP, UDP = 6, 17
# Ports no other documented service uses: a flow on them to anywhere is most likely APNs.
APPLE_ONLY_PORTS = {(5223, "tcp"), (2197, "tcp")}
# Edition rows are the documented facts; related-article and research rows refine them.
_SOURCE_RANK = {"seed": 0, "apple-101555-en": 1}


def _host_of(authority: str) -> str:
    if authority.startswith("["):
        return authority[1:].split("]", 1)[0]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def preferred_entry(m: Match, port: int | None, transport: str | None) -> Entry:
    """The entry a flow (or a DNS name, port None) is counted under: a documented row, edition rows first."""
    documented = m.documented(port, transport) or m.entries
    return min(documented, key=lambda e: _SOURCE_RANK.get(e.source, 2))


def _is_guidance(m: Match) -> bool:
    return all(e.status is Status.GUIDANCE for e in m.entries)


def resolution_for(facts: FlowFacts, names: NameMap, addresses: tuple[str, ...] = ()) -> Resolution | None:
    """The latest DNS answer that gave this flow's server address to the flow's device before it began.

    `addresses`: the device's other addresses (the flow's own client address is always asked first).
    """
    r = facts.flow
    best = names.lookup(r.client_ip, r.server_ip, r.ts_start)
    for a in addresses:
        if a == r.client_ip:
            continue
        res = names.lookup(a, r.server_ip, r.ts_start)
        if res is not None and (best is None or res.ts > best.ts):
            best = res
    return best


def flow_names(facts: FlowFacts, names: NameMap, addresses: tuple[str, ...] = ()) -> list[tuple[Evidence, str]]:
    """Every name tied to the flow, in evidence order."""
    out: list[tuple[Evidence, str]] = []
    if facts.tls is not None and facts.tls.session.server_name:
        out.append((Evidence.SNI, facts.tls.session.server_name))
    if facts.quic is not None and facts.server_name:
        out.append((Evidence.QUIC_SNI, facts.server_name))
    if facts.http is not None:
        if facts.http.connect_target:
            out.append((Evidence.CONNECT, _host_of(facts.http.connect_target)))
        req = facts.http.request
        if req is not None and req.host and req.method != "CONNECT":
            out.append((Evidence.HTTP_HOST, _host_of(req.host)))
    res = resolution_for(facts, names, addresses)
    if res is not None:
        out.extend((Evidence.DNS, n) for n in res.names)
    return out


def attribute(facts: FlowFacts, names: NameMap, matcher: Matcher, addresses: tuple[str, ...] = ()) -> Attribution:
    """`addresses`: every address of the flow's client device (see diagnosis.clients)."""
    r = facts.flow
    transport = "tcp" if r.proto == TCP else "udp"
    tied = flow_names(facts, names, addresses)
    port = r.server_port
    if facts.http is not None and facts.http.connect_target:
        try:
            port = int(facts.http.connect_target.rsplit(":", 1)[1])
        except (IndexError, ValueError):
            pass
    all_names = tuple(dict.fromkeys(n for _, n in tied))

    fallback: tuple[Evidence, str, Match] | None = None
    for evidence, name in tied:
        m = matcher.match_name(name)
        if m is None:
            continue
        if not _is_guidance(m):
            return _result(m, evidence, name, all_names, port, transport)
        if fallback is None:
            fallback = (evidence, name, m)
    tunnelled = facts.http is not None and facts.http.connect_target is not None
    if not tunnelled:
        m = matcher.match_ip(r.server_ip)
        if m is not None and (fallback is None or not _is_guidance(m)):
            return _result(m, Evidence.IP_RANGE, r.server_ip, all_names, port, transport)
    if fallback is not None:
        return _result(fallback[2], fallback[0], fallback[1], all_names, port, transport)
    if (port, transport) in APPLE_ONLY_PORTS:
        m = matcher.match_name("courier.push.apple.com")
        if m is not None:
            return _result(m, Evidence.PORT_ONLY, f"port {port}", all_names, port, transport)
    return Attribution(None, None, None, None, all_names, port, None)


def _result(m: Match, evidence: Evidence, name: str, names: tuple[str, ...], port: int, transport: str) -> Attribution:
    entry = preferred_entry(m, port, transport)
    return Attribution(entry, m, evidence, name, names, port, entry.documents(port, transport))
