"""The roll-up per documented service: its status, which clients tried and failed, its evidence and advice.

`working` needs at least one connection that worked: a name that was only looked up is `not_seen`
("resolved, not contacted"). A service is `degraded` when something worked and something failed (a
fallback, some clients only), `blocked` when nothing worked, `intercepted` when HTTPS inspection touched it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from analyzer.catalogue.model import Entry
from analyzer.diagnosis.advice import (
    PRIVATE_RELAY_ADVICE,
    AppleRanges,
    connect_denied_advice,
    is_private_relay,
    protocol_version_advice,
    server_refused_advice,
)
from analyzer.diagnosis.clients import Device
from analyzer.diagnosis.model import FAILURES, DNSVerdict, Status, Verdict
from analyzer.diagnosis.portal import Portal
from analyzer.diagnosis.results import DNSResult, FlowResult

TCP, UDP = 6, 17
ATTEMPT_GAP = 30.0  # failed connections to one service closer together than this are retries of one attempt
TOP_CLIENTS = 10  # failed clients named per service; the rest are counted


@dataclass(slots=True)
class ClientCounts:
    """How many devices tried a service, how many it worked for, and which it failed for."""

    tried: int = 0
    ok: int = 0
    failed: int = 0
    failed_clients: list[str] = field(default_factory=list)  # device labels, first TOP_CLIENTS
    more_failed: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"tried": self.tried, "ok": self.ok, "failed": self.failed, "failed_clients": self.failed_clients,
                "more_failed": self.more_failed}


@dataclass(slots=True)
class ServiceRow:
    entry: Entry
    flows: list[FlowResult] = field(default_factory=list)
    dns: list[DNSResult] = field(default_factory=list)
    attempts: int = 0
    status: Status = Status.NOT_SEEN
    advice: str | None = None
    evidence: list[str] = field(default_factory=list)
    clients: ClientCounts = field(default_factory=ClientCounts)
    captive: bool = False  # a captive portal answered in this service's place
    private_relay: bool = False  # Private Relay's hosts, blocked: maybe on purpose

    def by_verdict(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for f in self.flows:
            out[f.judgement.verdict.value] += 1
        return dict(out)


def attempts(flows: list[FlowResult]) -> int:
    groups: dict[tuple[str, int], list[FlowResult]] = defaultdict(list)
    for f in flows:
        groups[(f.device.key, f.attribution.port or 0)].append(f)
    total = 0
    for items in groups.values():
        items.sort(key=lambda x: x.facts.flow.ts_start)
        last_end: float | None = None
        last_failed = False
        for f in items:
            failed = f.judgement.verdict in FAILURES
            r = f.facts.flow
            if not (failed and last_failed and last_end is not None and r.ts_start - last_end < ATTEMPT_GAP):
                total += 1
            last_failed, last_end = failed, r.ts_end
    return total


def dns_effective_failures(rows: list[DNSResult]) -> list[DNSResult]:
    """DNS failures not later repaired by a good answer to the same question (a retry that worked)."""
    ok_after: dict[tuple[str, str, str], float] = {}
    for d in rows:
        if d.judgement.verdict is DNSVerdict.OK:
            key = (d.device.key, d.transaction.query.lower(), d.transaction.qtype)
            ok_after[key] = max(ok_after.get(key, 0.0), d.transaction.ts)
    out = []
    for d in rows:
        if d.judgement.verdict is DNSVerdict.OK or d.silence_untrusted:
            continue
        key = (d.device.key, d.transaction.query.lower(), d.transaction.qtype)
        if key in ok_after and ok_after[key] > d.transaction.ts:
            continue
        out.append(d)
    return out


def _count_clients(row: ServiceRow, dns_fail: list[DNSResult]) -> ClientCounts:
    devices: dict[str, Device] = {}
    ok: set[str] = set()
    failed: set[str] = set()
    for f in row.flows:
        devices.setdefault(f.device.key, f.device)
        if f.judgement.verdict is Verdict.OK:
            ok.add(f.device.key)
        elif f.judgement.verdict in FAILURES:
            failed.add(f.device.key)
    for d in row.dns:
        devices.setdefault(d.device.key, d.device)
    failed |= {d.device.key for d in dns_fail}
    failed -= ok
    names = sorted(devices[k].label for k in failed)
    return ClientCounts(len(devices), len(ok), len(failed), names[:TOP_CLIENTS], max(0, len(names) - TOP_CLIENTS))


def judge_service(row: ServiceRow, ranges: AppleRanges, portal: Portal | None) -> None:
    row.attempts = attempts(row.flows)
    dns_fail = dns_effective_failures(row.dns)
    row.clients = _count_clients(row, dns_fail)
    verdicts = [f.judgement.verdict for f in row.flows]
    probes = set(portal.probe_flows) if portal is not None else set()
    ok = sum(1 for f in row.flows if f.judgement.verdict is Verdict.OK and f.id not in probes)
    intercepted = [f for f in row.flows if f.judgement.verdict is Verdict.INTERCEPTED]
    failed = [f for f in row.flows if f.judgement.verdict in FAILURES and f.judgement.verdict is not Verdict.INTERCEPTED]
    row.captive = portal is not None and (
        any(d.captive for d in row.dns) or any(f.id in probes for f in row.flows)
        or any(portal.answered_by_portal(f.facts.flow.server_ip) for f in failed))
    trouble = bool(failed or dns_fail or row.captive)
    if intercepted:
        row.status = Status.INTERCEPTED
    elif trouble and ok:
        row.status = Status.DEGRADED
    elif trouble:
        row.status = Status.BLOCKED
    elif ok:
        row.status = Status.WORKING
    elif row.flows and all(v is Verdict.INCOMPLETE for v in verdicts):
        # Seen, but no connection could be judged (capture cut short, snaplen, one direction):
        # saying "working" would be a guess.
        row.status = Status.NOT_SEEN
        row.evidence.append(f"{len(row.flows)} connection(s) seen, none could be judged: "
                            f"{row.flows[0].judgement.reason}")
    else:
        row.status = Status.NOT_SEEN
        if row.dns:
            row.evidence.append("resolved, not contacted: DNS answered, but no connection to it was seen")
    row.private_relay = is_private_relay(row.entry) and row.status in (Status.BLOCKED, Status.DEGRADED)
    for f in (intercepted + failed)[:6]:
        r = f.facts.flow
        row.evidence.append(f"{r.client_ip} -> {r.server_ip}:{r.server_port}: {f.judgement.reason}")
    for d in dns_fail[:4]:
        row.evidence.append(f"DNS {d.transaction.query} ({d.transaction.qtype}): {d.judgement.reason}")
    if row.captive and portal is not None:
        row.evidence.extend(portal.evidence[:3])
    if ok and (failed or dns_fail):
        good = next(f for f in row.flows if f.judgement.verdict is Verdict.OK)
        row.evidence.append(f"but {good.facts.flow.server_ip}:{good.facts.flow.server_port} works: "
                            f"{good.judgement.reason}")
    if row.clients.tried > 1 and row.clients.failed:
        more = f" and {row.clients.more_failed} more" if row.clients.more_failed else ""
        row.evidence.append(f"fails for {row.clients.failed} of {row.clients.tried} clients: "
                            f"{', '.join(row.clients.failed_clients)}{more}")
    row.advice = _advice(row, intercepted, failed, dns_fail, ranges, portal)


def _ports_text(flows: list[FlowResult]) -> str:
    ports = sorted({f.attribution.port or f.facts.flow.server_port for f in flows})
    proto = sorted({"TCP" if f.facts.flow.proto == TCP else "UDP" for f in flows})
    return f"{'/'.join(proto)} {', '.join(map(str, ports))}"


def _is_quic(f: FlowResult) -> bool:
    return f.facts.flow.proto == UDP and f.facts.quic is not None


def _advice(row: ServiceRow, intercepted: list[FlowResult], failed: list[FlowResult], dns_fail: list[DNSResult],
            ranges: AppleRanges, portal: Portal | None) -> str | None:
    e = row.entry
    if row.private_relay:
        return PRIVATE_RELAY_ADVICE
    if row.captive and portal is not None:
        where = f" ({portal.url})" if portal.url else (f" at {portal.addresses[0]}" if portal.addresses else "")
        return (f"A captive portal{where} answers for {e.host} until someone signs in: the Mac shows the portal's "
                "sign-in sheet, and Apple services work after sign-in. For managed Macs or kiosks that cannot sign "
                "in, exempt Apple's validation hosts (captive.apple.com, gs.apple.com, the MDM hosts) in the "
                "portal's walled garden.")
    parts: list[str] = []
    if intercepted:
        products = sorted({f.judgement.interception.product for f in intercepted
                           if f.judgement.interception is not None and f.judgement.interception.product})
        issuers = sorted({f.judgement.interception.issuer for f in intercepted
                          if f.judgement.interception is not None and f.judgement.interception.issuer})
        by = ", ".join(products) or "your TLS-inspecting proxy"
        parts.append(f"Exclude {e.host} from HTTPS inspection on {by}"
                     + (f" (substitute issuer {issuers[0]})" if issuers else "")
                     + ": Apple services reject intercepted connections. `apple-net services export --format "
                     "squid|pac` writes the bypass list.")
    by_kind: dict[Verdict, list[FlowResult]] = defaultdict(list)
    for f in failed:
        by_kind[f.judgement.verdict].append(f)
    ok = [f for f in row.flows if f.judgement.verdict is Verdict.OK]
    if by_kind.get(Verdict.NO_RESPONSE):
        parts.extend(_silence_advice(e, by_kind[Verdict.NO_RESPONSE], ok, ranges))
    if by_kind.get(Verdict.REFUSED):
        parts.extend(_refused_advice(e, by_kind[Verdict.REFUSED], ranges))
    if by_kind.get(Verdict.RESET):
        fl = by_kind[Verdict.RESET]
        if any(f.judgement.reset_by == "middlebox" for f in fl):
            parts.append(f"A middlebox injects resets into connections to {e.host} (after the ClientHello: an "
                         "SNI or URL filter): exempt it from filtering.")
        else:
            parts.append(f"The server reset connections to {e.host}; if this persists, check for a proxy in the path.")
    if by_kind.get(Verdict.TLS_FAILED):
        parts.append(_tls_failed_advice(e, by_kind[Verdict.TLS_FAILED][0]))
    if dns_fail:
        kinds = sorted({d.judgement.verdict.value for d in dns_fail})
        q = sorted({d.transaction.query for d in dns_fail})[:3]
        if set(kinds) & {"nxdomain", "sinkholed", "refused"}:
            parts.append(f"Your DNS filter blocks {', '.join(q)} ({', '.join(kinds)}): allow {e.host} in it.")
        else:
            parts.append(f"DNS for {', '.join(q)} fails ({', '.join(kinds)}): check the resolver and its upstream.")
    if not parts:
        return None
    failed_devices = {f.device.key for f in failed}
    if row.status is Status.DEGRADED and ok and failed_devices and not failed_devices & {f.device.key for f in ok}:
        # Some clients fail and others work: no fallback, a rule that applies to some devices only.
        parts.append(f"It works for the other clients: whatever blocks {e.host} applies to "
                     f"{row.clients.failed} of {row.clients.tried} clients only (a per-device or per-VLAN rule, "
                     "a client's own firewall or proxy settings).")
    elif row.status is Status.DEGRADED and ok and not any(_is_quic(f) for f in failed):
        fallback = sorted({f.attribution.port or f.facts.flow.server_port for f in ok})
        v6_failed = {f.facts.flow.ip_version for f in failed} == {6} and any(f.facts.flow.ip_version == 4 for f in ok)
        if v6_failed:
            parts.append("The fallback to IPv4 works for now, after a delay on every connection.")
        else:
            parts.append(f"The fallback to port {', '.join(map(str, fallback))} works for now, but slower and less "
                         "reliably" + (" (APNs prefers 5223)." if e.port_roles else "."))
    return " ".join(parts)


def _silence_advice(e: Entry, fl: list[FlowResult], ok: list[FlowResult], ranges: AppleRanges) -> list[str]:
    parts: list[str] = []
    if any(f.facts.tls is not None and f.facts.flow.synack_ts is not None for f in fl):
        names = sorted({n for f in fl for n in f.attribution.names[:1]}) or [e.host]
        parts.append(f"A filter drops TLS connections naming {', '.join(names)} after the TCP handshake: "
                     f"exempt {e.host} from SNI/URL filtering.")
    quic = [f for f in fl if _is_quic(f)]
    tcp_ok = [f for f in ok if f.facts.flow.proto == TCP]
    if quic and tcp_ok:
        parts.append(f"QUIC (UDP 443) to {e.host} is dropped, and the fallback to TCP 443 works: the service works, "
                     "a little slower. To let HTTP/3 through, allow UDP 443 to "
                     f"{e.host} (or {ranges.text([f.facts.flow.server_ip for f in quic])}); otherwise nothing to do.")
    silent = [f for f in fl if f.facts.flow.synack_ts is None and not (f in quic and tcp_ok)]
    if silent:
        servers = [f.facts.flow.server_ip for f in silent]
        v6 = {f.facts.flow.ip_version for f in silent} == {6}
        family = "IPv6 " if v6 else ""
        parts.append(f"Allow {family}{_ports_text(silent)} to {e.host} (or Apple's {ranges.text(servers)}) on the "
                     "firewall: the packets are silently dropped.")
    return parts


def _refused_advice(e: Entry, fl: list[FlowResult], ranges: AppleRanges) -> list[str]:
    parts: list[str] = []
    proxied = [f for f in fl if f.facts.http is not None and f.facts.http.connect_target]
    for f in proxied[:1]:
        http = f.facts.http
        assert http is not None and http.connect_target is not None
        resp = http.response
        parts.append(connect_denied_advice(http.connect_target, f"{f.facts.flow.server_ip}:{f.facts.flow.server_port}",
                                           resp.status if resp else 0, resp.reason if resp else "no answer"))
    direct = [f for f in fl if f not in proxied]
    by_server = [f for f in direct if f.judgement.reset_by == "server"]
    by_middlebox = [f for f in direct if f not in by_server]
    if by_middlebox:
        servers = [f.facts.flow.server_ip for f in by_middlebox]
        parts.append(f"Allow {_ports_text(by_middlebox)} to {e.host} (or {ranges.text(servers)}): a firewall on the "
                     "path rejects it.")
    if by_server:
        names = sorted({n for f in by_server for n in f.attribution.names[:1]})
        parts.append(server_refused_advice(e.host, _ports_text(by_server),
                                           sorted({f.facts.flow.server_ip for f in by_server}), names))
    return parts


def _tls_failed_advice(e: Entry, f0: FlowResult) -> str:
    alert = f0.facts.tls.session.last_alert if f0.facts.tls is not None else None
    if alert is not None and alert.name == "protocol_version" and f0.facts.tls is not None:
        ch, sh = f0.facts.tls.client_hello, f0.facts.tls.server_hello
        return protocol_version_advice(e.host, alert.from_client, ch.max_version if ch else None,
                                       sh.version if sh else None)
    return (f"TLS to {e.host} fails ({f0.judgement.alert or f0.judgement.reason}): if a proxy or firewall is in the "
            "path, make it pass this host untouched.")
