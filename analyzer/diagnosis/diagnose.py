"""The diagnosis stage: engine records in; per-flow verdicts, service roll-up, findings and advice out.

Passes, in order:
1. devices: which client addresses are one device (diagnosis.clients);
2. attribute every flow to a catalogue entry (strongest evidence wins; DNS asked by any of the device's
   addresses counts);
3. judge each flow on its own (TCP story, TLS/QUIC/NTP/HTTP facts);
4. certificate chains: substitute issuers on visible chains (TLS <= 1.2);
5. TLS 1.3 interception from each flow's own signals (diagnosis.interception);
6. captive portal, then DNS verdicts;
7. roll-up per service (diagnosis.services), then findings with advice and Wireshark filters
   (diagnosis.findings).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analyzer.catalogue.issuers import IssuerClassifier
from analyzer.catalogue.loader import Catalogue
from analyzer.catalogue.matcher import Matcher
from analyzer.diagnosis.advice import AppleRanges
from analyzer.diagnosis.attribution import attribute, resolution_for
from analyzer.diagnosis.certs import certificate_anomalies
from analyzer.diagnosis.clients import Device, Devices, devices_matching
from analyzer.diagnosis.dns import DNSJudgement, judge_dns
from analyzer.diagnosis.findings import (
    PROXY_PREFIX,
    TIMING_PREFIX,
    WEAK_PREFIX,
    dns_filter,
    findings,
    flow_filter,
    flows_filter,
    headline,
    interception_summary,
    is_dns_flow,
)
from analyzer.diagnosis.interception import Signal, assess_chain, judge_signals, tls13_signals
from analyzer.diagnosis.model import Attribution, DNSVerdict, Evidence, Finding, Interception, Judgement, Status, Verdict
from analyzer.diagnosis.paths import PathBaselines, ip_object
from analyzer.diagnosis.portal import Portal, detect_portal
from analyzer.diagnosis.results import DNSResult, FlowResult
from analyzer.diagnosis.services import ServiceRow, judge_service
from analyzer.diagnosis.verdicts import judge_flow, server_side_missing
from analyzer.engine import EngineResult
from analyzer.inspect import FlowFacts

TCP, UDP = 6, 17
__all__ = ["Diagnosis", "DNSResult", "FlowResult", "ServiceRow", "diagnose", "dns_filter", "flow_filter",
           "flows_filter", "select_client"]


@dataclass(slots=True)
class Diagnosis:
    flows: list[FlowResult]
    dns: list[DNSResult]
    services: list[ServiceRow]
    findings: list[Finding]
    headline: str
    interception: list[dict[str, object]]
    devices: Devices = field(default_factory=Devices)
    portal: Portal | None = None


# -- passes --------------------------------------------------------------------------------------

def _devices(result: EngineResult) -> Devices:
    records = [f.flow for f in result.flows if f.flow.proto in (TCP, UDP)]
    bindings = [(b.ip, b.mac) for b in result.neighbors]
    on_device = any(c.on_device for c in result.captures)
    return Devices.build(records, bindings, on_device)


def _judge_all(result: EngineResult, matcher: Matcher, classifier: IssuerClassifier,
               devices: Devices) -> list[FlowResult]:
    flows = [f for f in result.flows if f.flow.proto in (TCP, UDP)]
    owners = [devices.of(f.flow.client_ip) for f in flows]
    attributions = [attribute(f, result.names, matcher, d.addresses) for f, d in zip(flows, owners)]
    chains = [assess_chain(f.tls, a, classifier) if f.tls is not None else None for f, a in zip(flows, attributions)]
    baselines = PathBaselines.build(
        (f.flow, a.is_apple, c is None) for f, a, c in zip(flows, attributions, chains)
    )
    capture_end = max((c.last_ts or 0.0 for c in result.captures), default=0.0)
    out: list[FlowResult] = []
    for f, a, chain, device in zip(flows, attributions, chains, owners):
        j = judge_flow(f, baselines, capture_end)
        if f.tls is not None:
            j.evidence.extend(f"certificate: {x}" for x in certificate_anomalies(f.tls, f.flow.ts_start))
        if chain is not None:
            _mark_intercepted(j, chain)
        tie = _dns_tie(f, a, result, device)
        if tie:
            j.evidence.append(tie)
        out.append(FlowResult(f, a, j, device))
    _tls13_pass(out, baselines)
    return out


def _dns_tie(f: FlowFacts, a: Attribution, result: EngineResult, device: Device) -> str | None:
    """Say so when the flow's names came from DNS that another address of the same device asked."""
    if a.evidence is not Evidence.DNS:
        return None
    res = resolution_for(f, result.names, device.addresses)
    if res is None or res.transaction.client_ip == f.flow.client_ip:
        return None
    return (f"named by the DNS answer {res.transaction.client_ip} received for {res.query}; "
            f"{device.tie_text() or 'the same device'}")


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
    """TLS 1.3 interception from each flow's own signals; other flows' substitutes only name the product."""
    # The box that substitutes certificates, by the TTL it answers with: context for naming, not evidence.
    substitutes: dict[int, tuple[str | None, str | None]] = {}
    for r in results:
        i = r.judgement.interception
        ttl = r.facts.flow.server.syn_ttl
        if i is not None and ttl is not None and (i.product or i.issuer):
            substitutes.setdefault(ttl, (i.product, i.issuer))
    candidates: list[tuple[FlowResult, list[Signal]]] = []
    for r in results:
        t = r.facts.tls
        if (t is None or r.judgement.interception is not None or not r.attribution.is_apple or t.certificates
                or t.server_hello is None):
            continue
        signals = tls13_signals(r.facts, baselines)
        if signals:
            candidates.append((r, signals))
    aborting = sum(1 for _, sig in candidates if any(not s.from_path for s in sig))
    for r, signals in candidates:
        refused = any(not s.from_path for s in signals)
        verdict = judge_signals(signals, repeated=aborting >= 2 and refused)
        if verdict is None:
            # A slow ServerHello alone (a busy server, a loaded capture host) is no box on the path:
            # a transparent proxy needs the nearer TTL.
            nearer = any(s.name == "server_nearer" for s in signals)
            prefix = WEAK_PREFIX if refused else PROXY_PREFIX if nearer else TIMING_PREFIX
            r.judgement.evidence.extend(f"{prefix}{s.text}" for s in signals)
            continue
        product, issuer = substitutes.get(r.facts.flow.server.syn_ttl or -1, (None, None))
        if product is not None:
            verdict = Interception(product, issuer, verdict.confidence, (
                *verdict.evidence, f"the box answering with this TTL substitutes {product} certificates on "
                                   "other connections of this capture"))
        _mark_intercepted(r.judgement, verdict)
        if product is None:
            r.judgement.reason = r.judgement.reason.replace(
                "an unknown inspection CA (None)", "a TLS-inspecting proxy (certificate not visible in TLS 1.3)")


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


def _service_rows(flows: list[FlowResult], dns: list[DNSResult], catalogue: Catalogue, all_services: bool,
                  portal: Portal | None) -> list[ServiceRow]:
    rows: dict[str, ServiceRow] = {}
    for f in flows:
        if f.attribution.entry is not None and not is_dns_flow(f.facts):
            rows.setdefault(f.attribution.entry.id, ServiceRow(f.attribution.entry)).flows.append(f)
    for d in dns:
        if d.judgement.entry is not None:
            rows.setdefault(d.judgement.entry.id, ServiceRow(d.judgement.entry)).dns.append(d)
    if all_services:
        for e in catalogue.entries:
            rows.setdefault(e.id, ServiceRow(e))
    ranges = AppleRanges.of(catalogue)
    for row in rows.values():
        judge_service(row, ranges, portal)
    order = {k: s.order for k, s in catalogue.sections.items()}
    rank = {Status.INTERCEPTED: 0, Status.BLOCKED: 1, Status.DEGRADED: 2, Status.WORKING: 3, Status.NOT_SEEN: 4}
    return sorted(rows.values(), key=lambda r: (rank[r.status], order.get(r.entry.section, 999), r.entry.host))


def _is_multicast(ip: str) -> bool:
    addr = ip_object(ip)
    return addr is not None and addr.is_multicast


def _dns_results(result: EngineResult, matcher: Matcher, catalogue: Catalogue, devices: Devices,
                 portal: Portal | None) -> list[DNSResult]:
    # Multicast queries (mDNS/LLMNR discovery) have no single server that owes an answer: not judged.
    out = []
    for t in result.dns:
        if _is_multicast(t.server_ip):
            continue
        j = judge_dns(t, matcher, catalogue.sinkholes)
        captive = portal is not None and t.query.lower().rstrip(".") in portal.hijacked_names
        if captive:
            addr = t.addresses[0] if t.addresses else "?"
            j = DNSJudgement(j.verdict if j.verdict is not DNSVerdict.OK else DNSVerdict.SINKHOLED,
                             f"answered {addr}, the captive portal's address (every name leads to the portal "
                             "until sign-in)", j.entry)
        out.append(DNSResult(t, j, device=devices.of(t.client_ip), captive=captive))
    return out


def _mark_probes(flows: list[FlowResult], portal: Portal) -> None:
    """The connectivity probes the portal answered: they completed, but Apple never saw them."""
    for f in flows:
        if f.id in portal.probe_flows:
            where = f" to {portal.url}" if portal.url else ""
            f.judgement.reason = f"a captive portal answered Apple's connectivity probe (redirect{where}), not Apple"
            f.judgement.evidence.extend(e for e in portal.evidence if "probe" in e)


def select_client(result: EngineResult, devices: Devices, spec: str) -> EngineResult:
    """Only the flows and DNS of the device(s) that `spec` (an address, a CIDR or a MAC address) names."""
    chosen = devices_matching(devices, spec, [f.flow.client_ip for f in result.flows] +
                              [t.client_ip for t in result.dns])
    keep = {a for d in chosen for a in d.addresses}
    return EngineResult(result.captures, [f for f in result.flows if f.flow.client_ip in keep],
                        [t for t in result.dns if t.client_ip in keep], result.names, result.weird, result.neighbors)


def diagnose(result: EngineResult, catalogue: Catalogue, *, all_services: bool = False,
             client: str | None = None) -> Diagnosis:
    """`client`: look at one device only (an address, CIDR or MAC; every address of that device is kept)."""
    matcher = Matcher(catalogue)
    classifier = IssuerClassifier(catalogue)
    devices = _devices(result)
    if client is not None:
        result = select_client(result, devices, client)
    flows = _judge_all(result, matcher, classifier, devices)
    portal = detect_portal([f.facts for f in flows], result.dns)
    if portal is not None:
        _mark_probes(flows, portal)
    dns = _dns_results(result, matcher, catalogue, devices, portal)
    one_sided = [f for f in flows if server_side_missing(f.facts.flow)]
    if one_sided:
        _distrust_silence(flows, dns)
    services = _service_rows(flows, dns, catalogue, all_services, portal)
    interception = interception_summary(flows)
    found = findings(flows, services, result, one_sided, portal)
    apple_flows = sum(1 for f in flows if f.attribution.is_apple and not is_dns_flow(f.facts))
    return Diagnosis(flows, dns, services, found, headline(services, interception, apple_flows, dns, portal),
                     interception, devices, portal)
