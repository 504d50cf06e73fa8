"""The diagnosis stage: engine records in; per-flow verdicts, service roll-up, findings and advice out.

Passes, in order:
1. attribute every flow to a catalogue entry (strongest evidence wins);
2. judge each flow on its own (TCP story, TLS/QUIC/NTP/HTTP facts);
3. certificate chains: substitute issuers on visible chains (TLS <= 1.2);
4. cross-flow: TLS 1.3 interception from indirect signals, using what 3 found;
5. DNS verdicts;
6. roll-up per service, then findings with advice and Wireshark filters.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from analyzer.catalogue.issuers import IssuerClassifier
from analyzer.catalogue.loader import Catalogue
from analyzer.catalogue.matcher import Matcher
from analyzer.catalogue.model import Entry
from analyzer.catalogue.model import Status as EntryStatus
from analyzer.diagnosis.attribution import attribute
from analyzer.diagnosis.certs import certificate_anomalies
from analyzer.diagnosis.dns import DNSJudgement, judge_dns
from analyzer.diagnosis.interception import (
    Signal,
    assess_chain,
    judge_signals,
    tls13_signals,
)
from analyzer.diagnosis.model import (
    FAILURES,
    Attribution,
    DNSVerdict,
    Finding,
    Interception,
    Judgement,
    Severity,
    Status,
    Verdict,
)
from analyzer.diagnosis.paths import PathBaselines, ip_object
from analyzer.diagnosis.verdicts import judge_flow, payload_cut, server_side_missing
from analyzer.dnsmap import DNSTransaction
from analyzer.engine import EngineResult
from analyzer.inspect import FlowFacts

TCP, UDP = 6, 17
ATTEMPT_GAP = 30.0  # failed connections to one service closer together than this are retries of one attempt
DNS_PORTS = {53, 5353, 5355}
DNS_FINDING_KIND = {DNSVerdict.SINKHOLED: "dns_sinkhole", DNSVerdict.NXDOMAIN: "dns_nxdomain",
                    DNSVerdict.SERVFAIL: "dns_servfail", DNSVerdict.REFUSED: "dns_refused",
                    DNSVerdict.NO_RESPONSE: "dns_no_response", DNSVerdict.OK: "dns"}


@dataclass(slots=True)
class FlowResult:
    facts: FlowFacts
    attribution: Attribution
    judgement: Judgement

    @property
    def id(self) -> str:
        return self.facts.flow.uid


@dataclass(slots=True)
class DNSResult:
    transaction: DNSTransaction
    judgement: DNSJudgement
    silence_untrusted: bool = False
    """No answer was captured, but the capture misses the other direction: not a failure to report."""


@dataclass(slots=True)
class ServiceRow:
    entry: Entry
    flows: list[FlowResult] = field(default_factory=list)
    dns: list[DNSResult] = field(default_factory=list)
    attempts: int = 0
    status: Status = Status.NOT_SEEN
    advice: str | None = None
    evidence: list[str] = field(default_factory=list)

    def by_verdict(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for f in self.flows:
            out[f.judgement.verdict.value] += 1
        return dict(out)


@dataclass(slots=True)
class Diagnosis:
    flows: list[FlowResult]
    dns: list[DNSResult]
    services: list[ServiceRow]
    findings: list[Finding]
    headline: str
    interception: list[dict[str, object]]


# -- filters -------------------------------------------------------------------------------------

def flow_filter(f: FlowFacts) -> str:
    r = f.flow
    ip = "ipv6.addr" if r.ip_version == 6 else "ip.addr"
    l4 = "tcp" if r.proto == TCP else "udp"
    return (f"{ip}=={r.client_ip} && {ip}=={r.server_ip} && {l4}.port=={r.client_port} && "
            f"{l4}.port=={r.server_port}")


def flows_filter(flows: list[FlowResult]) -> str | None:
    if not flows:
        return None
    if len(flows) <= 4:
        parts = [flow_filter(f.facts) for f in flows]
        return parts[0] if len(parts) == 1 else " || ".join(f"({p})" for p in parts)
    servers = sorted({(f.facts.flow.ip_version, f.facts.flow.server_ip, f.facts.flow.server_port, f.facts.flow.proto)
                      for f in flows})[:4]
    parts = [f"({'ipv6' if v == 6 else 'ip'}.addr=={ip} && {'tcp' if p == TCP else 'udp'}.port=={port})"
             for v, ip, port, p in servers]
    return " || ".join(parts)


def dns_filter(names: list[str]) -> str:
    uniq = list(dict.fromkeys(n.lower() for n in names))[:5]
    return " || ".join(f'dns.qry.name == "{n}"' for n in uniq)


# -- passes --------------------------------------------------------------------------------------

def _is_dns_flow(f: FlowFacts) -> bool:
    r = f.flow
    return r.server_port in DNS_PORTS or r.client_port in DNS_PORTS


def _judge_all(result: EngineResult, matcher: Matcher, classifier: IssuerClassifier) -> list[FlowResult]:
    flows = [f for f in result.flows if f.flow.proto in (TCP, UDP)]
    attributions = [attribute(f, result.names, matcher) for f in flows]
    chains = [assess_chain(f.tls, a, classifier) if f.tls is not None else None for f, a in zip(flows, attributions)]
    baselines = PathBaselines.build(
        (f.flow, a.is_apple, c is None) for f, a, c in zip(flows, attributions, chains)
    )
    capture_end = max((c.last_ts or 0.0 for c in result.captures), default=0.0)
    out: list[FlowResult] = []
    for f, a, chain in zip(flows, attributions, chains):
        j = judge_flow(f, baselines, capture_end)
        if f.tls is not None:
            j.evidence.extend(f"certificate: {x}" for x in certificate_anomalies(f.tls, f.flow.ts_start))
        if chain is not None:
            _mark_intercepted(j, chain)
        out.append(FlowResult(f, a, j))
    _tls13_pass(out, baselines)
    return out


def _mark_intercepted(j: Judgement, chain: Interception) -> None:
    before = f"connection outcome: {j.reason}"
    j.evidence = [*chain.evidence, before, *j.evidence]
    j.interception = chain
    who = chain.product or f"an unknown inspection CA ({chain.issuer})"
    if j.verdict is Verdict.OK:
        j.reason = (f"HTTPS inspection by {who}: this client trusts the substitute certificate, but Apple services "
                    "that pin Apple's certificates will fail")
    else:
        j.reason = f"HTTPS inspection by {who}; {j.reason}"
    j.verdict = Verdict.INTERCEPTED


def _tls13_pass(results: list[FlowResult], baselines: PathBaselines) -> None:
    substitutes = [r.judgement.interception.issuer for r in results
                   if r.judgement.interception is not None and r.judgement.interception.issuer]
    products = [r.judgement.interception.product for r in results
                if r.judgement.interception is not None and r.judgement.interception.product]
    candidates: list[tuple[FlowResult, list[Signal]]] = []
    for r in results:
        t = r.facts.tls
        if (t is None or r.judgement.interception is not None or not r.attribution.is_apple or t.certificates
                or t.server_hello is None):
            continue
        signals = tls13_signals(r.facts, baselines, [s for s in substitutes if s])
        if signals:
            candidates.append((r, signals))
    aborting = sum(1 for _, sig in candidates if any(s.name.startswith("client_") for s in sig))
    for r, signals in candidates:
        verdict = judge_signals(signals, repeated=aborting >= 2 and any(s.name.startswith("client_") for s in signals))
        if verdict is None:
            r.judgement.evidence.extend(f"weak sign of interception: {s.text}" for s in signals)
            continue
        product = products[0] if products and len(set(products)) == 1 else None
        _mark_intercepted(r.judgement, Interception(product, substitutes[0] if substitutes and product else None,
                                                    verdict.confidence, verdict.evidence))
        if product is None:
            r.judgement.reason = r.judgement.reason.replace(
                "an unknown inspection CA (None)", "a TLS-inspecting proxy (certificate not visible in TLS 1.3)")


def _attempts(flows: list[FlowResult]) -> int:
    groups: dict[tuple[str, int], list[FlowResult]] = defaultdict(list)
    for f in flows:
        groups[(f.facts.flow.client_ip, f.attribution.port or 0)].append(f)
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


def _distrust_silence(flows: list[FlowResult], dns: list[DNSResult]) -> None:
    """The capture misses the servers' direction somewhere: an answer not captured proves nothing.

    TCP flows tell this themselves (`server_side_missing`); UDP and DNS cannot, so their
    no-answer verdicts become "cannot tell" for the whole capture.
    """
    why = "no answer captured, but this capture misses the other direction (see one_sided_capture)"
    for f in flows:
        if f.judgement.verdict is Verdict.NO_RESPONSE and f.facts.flow.proto == UDP:
            f.judgement = Judgement(Verdict.INCOMPLETE, why)
    for d in dns:
        if d.judgement.verdict is DNSVerdict.NO_RESPONSE:
            d.silence_untrusted = True


def _dns_effective_failures(rows: list[DNSResult]) -> list[DNSResult]:
    """DNS failures not later repaired by a good answer to the same question (a retry that worked)."""
    ok_after: dict[tuple[str, str, str], float] = {}
    for d in rows:
        if d.judgement.verdict is DNSVerdict.OK:
            key = (d.transaction.client_ip, d.transaction.query.lower(), d.transaction.qtype)
            ok_after[key] = max(ok_after.get(key, 0.0), d.transaction.ts)
    out = []
    for d in rows:
        if d.judgement.verdict is DNSVerdict.OK or d.silence_untrusted:
            continue
        key = (d.transaction.client_ip, d.transaction.query.lower(), d.transaction.qtype)
        if key in ok_after and ok_after[key] > d.transaction.ts:
            continue
        out.append(d)
    return out


def _service_rows(flows: list[FlowResult], dns: list[DNSResult], catalogue: Catalogue,
                  all_services: bool) -> list[ServiceRow]:
    rows: dict[str, ServiceRow] = {}
    for f in flows:
        if f.attribution.entry is not None and not _is_dns_flow(f.facts):
            rows.setdefault(f.attribution.entry.id, ServiceRow(f.attribution.entry)).flows.append(f)
    for d in dns:
        if d.judgement.entry is not None:
            rows.setdefault(d.judgement.entry.id, ServiceRow(d.judgement.entry)).dns.append(d)
    if all_services:
        for e in catalogue.entries:
            rows.setdefault(e.id, ServiceRow(e))
    for row in rows.values():
        _judge_service(row)
    order = {k: s.order for k, s in catalogue.sections.items()}
    rank = {Status.INTERCEPTED: 0, Status.BLOCKED: 1, Status.DEGRADED: 2, Status.WORKING: 3, Status.NOT_SEEN: 4}
    return sorted(rows.values(), key=lambda r: (rank[r.status], order.get(r.entry.section, 999), r.entry.host))


def _judge_service(row: ServiceRow) -> None:
    row.attempts = _attempts(row.flows)
    dns_fail = _dns_effective_failures(row.dns)
    verdicts = [f.judgement.verdict for f in row.flows]
    ok = sum(1 for v in verdicts if v is Verdict.OK)
    intercepted = [f for f in row.flows if f.judgement.verdict is Verdict.INTERCEPTED]
    failed = [f for f in row.flows if f.judgement.verdict in FAILURES and f.judgement.verdict is not Verdict.INTERCEPTED]
    if intercepted:
        row.status = Status.INTERCEPTED
    elif (failed or dns_fail) and ok:
        row.status = Status.DEGRADED
    elif failed or dns_fail:
        row.status = Status.BLOCKED
    elif row.flows and all(v is Verdict.INCOMPLETE for v in verdicts):
        # Seen, but no connection could be judged (capture cut short, snaplen, one direction):
        # saying "working" would be a guess.
        row.status = Status.NOT_SEEN
        row.evidence.append(f"{len(row.flows)} connection(s) seen, none could be judged: "
                            f"{row.flows[0].judgement.reason}")
    elif row.flows or row.dns:
        row.status = Status.WORKING
    else:
        row.status = Status.NOT_SEEN
    for f in (intercepted + failed)[:6]:
        r = f.facts.flow
        row.evidence.append(f"{r.client_ip} -> {r.server_ip}:{r.server_port}: {f.judgement.reason}")
    for d in dns_fail[:4]:
        row.evidence.append(f"DNS {d.transaction.query} ({d.transaction.qtype}): {d.judgement.reason}")
    if ok and (failed or dns_fail):
        good = next(f for f in row.flows if f.judgement.verdict is Verdict.OK)
        row.evidence.append(f"but {good.facts.flow.server_ip}:{good.facts.flow.server_port} works: "
                            f"{good.judgement.reason}")
    row.advice = _advice(row, intercepted, failed, dns_fail)


def _ports_text(row: ServiceRow, flows: list[FlowResult]) -> str:
    ports = sorted({f.attribution.port or f.facts.flow.server_port for f in flows})
    proto = sorted({"TCP" if f.facts.flow.proto == TCP else "UDP" for f in flows})
    return f"{'/'.join(proto)} {', '.join(map(str, ports))}"


def _advice(row: ServiceRow, intercepted: list[FlowResult], failed: list[FlowResult], dns_fail: list[DNSResult]) -> str | None:
    e = row.entry
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
    by_kind: dict[str, list[FlowResult]] = defaultdict(list)
    for f in failed:
        by_kind[f.judgement.verdict.value].append(f)
    if by_kind.get("no_response"):
        fl = by_kind["no_response"]
        if any(f.facts.tls is not None and f.facts.flow.synack_ts is not None for f in fl):
            names = sorted({n for f in fl for n in f.attribution.names[:1]}) or [e.host]
            parts.append(f"A filter drops TLS connections naming {', '.join(names)} after the TCP handshake: "
                         f"exempt {e.host} from SNI/URL filtering.")
        if any(f.facts.flow.synack_ts is None for f in fl):
            parts.append(f"Allow {_ports_text(row, fl)} to {e.host} (or Apple's 17.0.0.0/8) on the firewall: "
                         "the packets are silently dropped.")
    if by_kind.get("refused"):
        fl = by_kind["refused"]
        proxied = [f for f in fl if f.facts.http is not None and f.facts.http.connect_target]
        if proxied:
            st = proxied[0].facts.http.response.status if proxied[0].facts.http.response else "?"  # type: ignore[union-attr]
            parts.append(f"Allow CONNECT to {proxied[0].facts.http.connect_target} on the proxy "  # type: ignore[union-attr]
                         f"{proxied[0].facts.flow.server_ip}:{proxied[0].facts.flow.server_port} (it answered {st}); "
                         "Apple services cannot authenticate to proxies.")
        if len(proxied) < len(fl):
            mb = any(f.judgement.reset_by == "middlebox" for f in fl if f not in proxied)
            parts.append(f"Allow {_ports_text(row, [f for f in fl if f not in proxied])} to {e.host} "
                         f"(or 17.0.0.0/8): {'a firewall on the path rejects it' if mb else 'the server refused it'}.")
    if by_kind.get("reset"):
        fl = by_kind["reset"]
        if any(f.judgement.reset_by == "middlebox" for f in fl):
            parts.append(f"A middlebox injects resets into connections to {e.host} (after the ClientHello: an "
                         "SNI or URL filter): exempt it from filtering.")
        else:
            parts.append(f"The server reset connections to {e.host}; if this persists, check for a proxy in the path.")
    if by_kind.get("tls_failed"):
        f0 = by_kind["tls_failed"][0]
        parts.append(f"TLS to {e.host} fails ({f0.judgement.alert or f0.judgement.reason}): if a proxy or "
                     "firewall is in the path, make it pass this host untouched.")
    if dns_fail:
        kinds = sorted({d.judgement.verdict.value for d in dns_fail})
        q = sorted({d.transaction.query for d in dns_fail})[:3]
        if set(kinds) & {"nxdomain", "sinkholed", "refused"}:
            parts.append(f"Your DNS filter blocks {', '.join(q)} ({', '.join(kinds)}): allow {e.host} in it.")
        else:
            parts.append(f"DNS for {', '.join(q)} fails ({', '.join(kinds)}): check the resolver and its upstream.")
    if not parts:
        return None
    if row.status is Status.DEGRADED and e.port_roles:
        parts.append("It works through a fallback for now, but slower and less reliably (APNs prefers 5223).")
    return " ".join(parts)


def _is_multicast(ip: str) -> bool:
    addr = ip_object(ip)
    return addr is not None and addr.is_multicast


def _dns_results(result: EngineResult, matcher: Matcher, catalogue: Catalogue) -> list[DNSResult]:
    # Multicast queries (mDNS/LLMNR discovery) have no single server that owes an answer: not judged.
    return [DNSResult(t, judge_dns(t, matcher, catalogue.sinkholes)) for t in result.dns
            if not _is_multicast(t.server_ip)]


# -- findings ------------------------------------------------------------------------------------

def _findings(flows: list[FlowResult], dns: list[DNSResult], services: list[ServiceRow],
              result: EngineResult, one_sided: list[FlowResult]) -> list[Finding]:
    out: list[Finding] = []
    for row in services:
        if row.status in (Status.WORKING, Status.NOT_SEEN):
            continue
        bad = [f for f in row.flows if f.judgement.verdict in FAILURES]
        kind = {Status.INTERCEPTED: "tls_interception", Status.BLOCKED: "service_blocked",
                Status.DEGRADED: "service_degraded"}[row.status]
        if row.status is not Status.INTERCEPTED and bad and all(f.judgement.verdict is Verdict.NO_RESPONSE for f in bad):
            kind = "blocked_port" if row.status is Status.BLOCKED else kind
        severity = Severity.WARNING if row.status is Status.DEGRADED else Severity.ERROR
        dns_fail = _dns_effective_failures(row.dns)
        if not bad and dns_fail:
            # Blocked in DNS only: no connection ever left the client.
            kind = DNS_FINDING_KIND[dns_fail[0].judgement.verdict]
        wf = flows_filter(bad) if bad else (dns_filter([d.transaction.query for d in dns_fail]) if dns_fail else None)
        what = {Status.INTERCEPTED: "is intercepted by HTTPS inspection", Status.BLOCKED: "is blocked",
                Status.DEGRADED: "works only partly"}[row.status]
        out.append(Finding(severity, kind, f"{row.entry.host} ({row.entry.section}) {what}", row.entry.id,
                           tuple(f.id for f in bad), tuple(row.evidence), row.advice, wf))
    for f in flows:
        j = f.judgement
        if j.reset_by == "middlebox" and j.verdict in (Verdict.RESET, Verdict.REFUSED) and f.facts.flow.rsts:
            out.append(Finding(Severity.WARNING, "injected_reset",
                               f"A reset for {f.facts.flow.server_ip}:{f.facts.flow.server_port} came from a "
                               "middlebox, not the server", f.attribution.entry.id if f.attribution.entry else None,
                               (f.id,), tuple(j.evidence), None, flow_filter(f.facts) + " && tcp.flags.reset==1"))
        if f.attribution.entry is not None and f.attribution.port_documented is False and \
                f.attribution.entry.status is not EntryStatus.GUIDANCE and not _is_dns_flow(f.facts):
            e = f.attribution.entry
            out.append(Finding(Severity.INFO, "undocumented_port",
                               f"{f.attribution.name} reached on {'TCP' if f.facts.flow.proto == TCP else 'UDP'} "
                               f"{f.attribution.port}, a port Apple does not document for {e.host} "
                               f"(documented: {', '.join(map(str, e.ports))})", e.id, (f.id,),
                               (f"attributed by {f.attribution.evidence.value if f.attribution.evidence else '?'}",),
                               None, flow_filter(f.facts)))
    for f in flows:
        anomalies = [e.removeprefix("certificate: ") for e in f.judgement.evidence if e.startswith("certificate: ")]
        if anomalies and f.judgement.verdict is not Verdict.INTERCEPTED:
            r = f.facts.flow
            out.append(Finding(Severity.WARNING if f.attribution.is_apple else Severity.INFO, "certificate_anomaly",
                               f"Certificate problems on {f.facts.server_name or r.server_ip}:{r.server_port}: "
                               + "; ".join(anomalies), f.attribution.entry.id if f.attribution.entry else None,
                               (f.id,), tuple(anomalies), None, flow_filter(f.facts)))
        weak = [e for e in f.judgement.evidence if e.startswith("weak sign of interception: ")]
        if weak and f.judgement.verdict is not Verdict.INTERCEPTED:
            host = f.attribution.entry.host if f.attribution.entry else f.facts.flow.server_ip
            out.append(Finding(Severity.WARNING, "possible_tls_interception",
                               f"Something near the client answers TLS for {f.attribution.name or host} "
                               f"({f.facts.flow.server_ip}); the certificate is encrypted (TLS 1.3), so whether it "
                               "decrypts cannot be seen", f.attribution.entry.id if f.attribution.entry else None,
                               (f.id,), tuple(e.removeprefix("weak sign of interception: ") for e in weak),
                               f"If a proxy or firewall terminates TLS here, make sure it splices (passes through "
                               f"undecrypted) {host}: Apple services reject decrypted connections.",
                               flow_filter(f.facts)))
    if one_sided:
        out.append(Finding(Severity.WARNING, "one_sided_capture",
                           f"{len(one_sided)} connection(s) show only the client's packets, although the client "
                           "acknowledged answers: the capture misses the other direction",
                           None, tuple(f.id for f in one_sided[:20]),
                           ("asymmetric routing, or a tap or span port that copies one direction",
                            "no-answer verdicts in this capture (TCP, DNS, NTP) cannot be trusted"),
                           "Capture on the Mac itself (or a port that sees both directions) and analyse again."))
    cut = [f for f in flows if payload_cut(f.facts.flow)]
    if cut:
        out.append(Finding(Severity.WARNING, "snaplen_cut",
                           f"The capture cut the payload of {len(cut)} connection(s) short (a snaplen): TLS and HTTP "
                           "handshakes there cannot be read, so interception and refusals can go unseen",
                           None, tuple(f.id for f in cut[:20]), (),
                           "Capture whole packets: tcpdump -s 0 (or -s 65535), Wireshark's default."))
    for c in result.captures:
        if c.truncated:
            out.append(Finding(Severity.INFO, "capture_truncated", f"{c.source} ends inside a packet record; "
                               "everything before the cut was analysed", None))
    rank = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    out.sort(key=lambda x: rank[x.severity])
    return out


def _interception_summary(flows: list[FlowResult]) -> list[dict[str, object]]:
    """One row per inspection product (or "unknown"): the services it intercepts, the best confidence."""
    by: dict[str, tuple[Interception, list[str]]] = {}
    for f in flows:
        i = f.judgement.interception
        if i is None or f.judgement.verdict is not Verdict.INTERCEPTED:
            continue
        first, services = by.setdefault(i.product or "unknown", (i, []))
        if i.confidence == "high" and first.confidence != "high":
            by[i.product or "unknown"] = (i, services)
        svc = f.attribution.entry.id if f.attribution.entry else None
        if svc and svc not in services:
            services.append(svc)
    return [{"product": i.product, "issuer": i.issuer, "services": services, "confidence": i.confidence}
            for i, services in by.values()]


def _headline(services: list[ServiceRow], interception: list[dict[str, object]], apple_flows: int,
              dns_blocked: int) -> str:
    blocked = sum(1 for s in services if s.status is Status.BLOCKED)
    degraded = sum(1 for s in services if s.status is Status.DEGRADED)
    parts = []
    if blocked:
        parts.append(f"{blocked} Apple service{'s' if blocked != 1 else ''} blocked")
    if degraded:
        parts.append(f"{degraded} degraded")
    for i in interception:
        n = len(i["services"])  # type: ignore[arg-type]
        parts.append(f"HTTPS inspection by {i['product'] or 'an unidentified proxy'} on {n} service{'s' if n != 1 else ''}")
    if dns_blocked:
        parts.append(f"{dns_blocked} Apple name{'s' if dns_blocked != 1 else ''} filtered in DNS")
    seen = sum(1 for s in services if s.status is not Status.NOT_SEEN)
    if parts:
        return "; ".join(parts)
    if not apple_flows and not seen:
        return "No Apple traffic found in this capture"
    return f"All {seen} Apple service{'s' if seen != 1 else ''} seen work ({apple_flows} flows)"


def diagnose(result: EngineResult, catalogue: Catalogue, *, all_services: bool = False) -> Diagnosis:
    matcher = Matcher(catalogue)
    classifier = IssuerClassifier(catalogue)
    flows = _judge_all(result, matcher, classifier)
    dns = _dns_results(result, matcher, catalogue)
    one_sided = [f for f in flows if server_side_missing(f.facts.flow)]
    if one_sided:
        _distrust_silence(flows, dns)
    services = _service_rows(flows, dns, catalogue, all_services)
    interception = _interception_summary(flows)
    findings = _findings(flows, dns, services, result, one_sided)
    apple_flows = sum(1 for f in flows if f.attribution.is_apple and not _is_dns_flow(f.facts))
    dns_blocked = len({d.transaction.query.lower() for d in _dns_effective_failures(dns)
                       if d.judgement.entry is not None and d.judgement.verdict in
                       (DNSVerdict.NXDOMAIN, DNSVerdict.SINKHOLED, DNSVerdict.REFUSED)})
    return Diagnosis(flows, dns, services, findings, _headline(services, interception, apple_flows, dns_blocked),
                     interception)
