"""Findings (what is wrong, with evidence, advice and a Wireshark filter) and the one-line headline."""

from __future__ import annotations

from analyzer.catalogue.model import Status as EntryStatus
from analyzer.diagnosis.advice import PRIVATE_RELAY_ADVICE
from analyzer.diagnosis.model import FAILURES, DNSVerdict, Finding, Interception, Severity, Status, Verdict
from analyzer.diagnosis.portal import Portal
from analyzer.diagnosis.results import DNSResult, FlowResult
from analyzer.diagnosis.services import ServiceRow, dns_effective_failures
from analyzer.diagnosis.verdicts import payload_cut
from analyzer.engine import EngineResult
from analyzer.inspect import FlowFacts
from analyzer.words import count, plural

TCP, UDP = 6, 17
DNS_PORTS = {53, 5353, 5355}
DNS_FINDING_KIND = {DNSVerdict.SINKHOLED: "dns_sinkhole", DNSVerdict.NXDOMAIN: "dns_nxdomain",
                    DNSVerdict.SERVFAIL: "dns_servfail", DNSVerdict.REFUSED: "dns_refused",
                    DNSVerdict.NO_RESPONSE: "dns_no_response", DNSVerdict.OK: "dns"}
WEAK_PREFIX = "weak sign of interception: "
PROXY_PREFIX = "transparent proxy: "
TIMING_PREFIX = "timing: "  # a sign too weak for any finding (a slow ServerHello alone)


# -- Wireshark display filters -------------------------------------------------------------------

def _addr_clause(ip: str) -> str:
    return f"ipv6.addr=={ip}" if ":" in ip else f"ip.addr=={ip}"


def flow_filter(f: FlowFacts) -> str:
    r = f.flow
    ip = "ipv6.addr" if r.ip_version == 6 else "ip.addr"
    l4 = "tcp" if r.proto == TCP else "udp"
    return (f"{ip}=={r.client_ip} && {ip}=={r.server_ip} && {l4}.port=={r.client_port} && "
            f"{l4}.port=={r.server_port}")


def flows_filter(flows: list[FlowResult]) -> str | None:
    """One clause per connection: a connection retried with several SYNs on one port pair is one clause."""
    if not flows:
        return None
    parts = list(dict.fromkeys(flow_filter(f.facts) for f in flows))
    if len(parts) <= 4:
        return parts[0] if len(parts) == 1 else " || ".join(f"({p})" for p in parts)
    servers = sorted({(f.facts.flow.ip_version, f.facts.flow.server_ip, f.facts.flow.server_port, f.facts.flow.proto)
                      for f in flows})[:4]
    clauses = [f"({'ipv6' if v == 6 else 'ip'}.addr=={ip} && {'tcp' if p == TCP else 'udp'}.port=={port})"
               for v, ip, port, p in servers]
    return " || ".join(clauses)


def dns_filter(names: list[str], clients: list[str] = ()) -> str:  # type: ignore[assignment]
    """The DNS questions, limited to the clients that asked them (at most three named)."""
    uniq = list(dict.fromkeys(n.lower() for n in names))[:5]
    q = " || ".join(f'dns.qry.name == "{n}"' for n in uniq)
    who = list(dict.fromkeys(clients))[:3]
    if not who:
        return q
    c = " || ".join(_addr_clause(ip) for ip in who)
    return f"({q}) && ({c})" if len(uniq) > 1 or len(who) > 1 else f"{q} && {c}"


# -- findings ------------------------------------------------------------------------------------

def is_dns_flow(f: FlowFacts) -> bool:
    r = f.flow
    return r.server_port in DNS_PORTS or r.client_port in DNS_PORTS


def _processes(flows: list[FlowResult]) -> list[str]:
    return list(dict.fromkeys(p for f in flows for p in f.facts.flow.proc_names))[:4]


def _service_findings(services: list[ServiceRow]) -> list[Finding]:
    out: list[Finding] = []
    for row in services:
        if row.status in (Status.WORKING, Status.NOT_SEEN) or row.private_relay or row.captive:
            continue
        bad = [f for f in row.flows if f.judgement.verdict in FAILURES]
        kind = {Status.INTERCEPTED: "tls_interception", Status.BLOCKED: "service_blocked",
                Status.DEGRADED: "service_degraded"}[row.status]
        if row.status is not Status.INTERCEPTED and bad and all(f.judgement.verdict is Verdict.NO_RESPONSE for f in bad):
            kind = "blocked_port" if row.status is Status.BLOCKED else kind
        severity = Severity.WARNING if row.status is Status.DEGRADED else Severity.ERROR
        dns_fail = dns_effective_failures(row.dns)
        if not bad and dns_fail:
            # Blocked in DNS only: no connection ever left the client.
            kind = DNS_FINDING_KIND[dns_fail[0].judgement.verdict]
        if bad:
            wf = flows_filter(bad)
        elif dns_fail:
            wf = dns_filter([d.transaction.query for d in dns_fail], [d.transaction.client_ip for d in dns_fail])
        else:
            wf = None
        what = {Status.INTERCEPTED: "is intercepted by HTTPS inspection", Status.BLOCKED: "is blocked",
                Status.DEGRADED: "works only partly"}[row.status]
        c = row.clients
        if c.tried > 1 and c.failed:
            what += f" for {c.failed} of {count(c.tried, 'client')}"
        procs = _processes(bad)
        evidence = list(row.evidence)
        if procs:
            what += f" ({plural(len(procs), 'process')} {', '.join(procs)})"
            evidence.append(f"{plural(len(procs), 'process', 'processes')} on the device: {', '.join(procs)} "
                            "(from the capture's process metadata)")
        out.append(Finding(severity, kind, f"{row.entry.host} ({row.entry.section}) {what}", row.entry.id,
                           tuple(f.id for f in bad), tuple(evidence), row.advice, wf))
    return out


def _private_relay_finding(services: list[ServiceRow]) -> Finding | None:
    rows = [r for r in services if r.private_relay]
    if not rows:
        return None
    flows = [f for r in rows for f in r.flows if f.judgement.verdict in FAILURES]
    hosts = ", ".join(r.entry.host for r in rows)
    return Finding(Severity.INFO, "private_relay_unavailable",
                   f"iCloud Private Relay is unavailable on this network (may be intended): {hosts} "
                   f"{plural(len(rows), 'is')} blocked", rows[0].entry.id, tuple(f.id for f in flows),
                   tuple(e for r in rows for e in r.evidence[:3]), PRIVATE_RELAY_ADVICE, flows_filter(flows))


def _portal_finding(portal: Portal | None, services: list[ServiceRow]) -> Finding | None:
    if portal is None:
        return None
    rows = [r for r in services if r.captive]
    where = portal.url or (portal.addresses[0] if portal.addresses else "the local network")
    hosts = ", ".join(r.entry.host for r in rows[:6]) + (f" and {len(rows) - 6} more" if len(rows) > 6 else "")
    advice = rows[0].advice if rows else (
        "A captive portal answers until someone signs in: the Mac shows its sign-in sheet. For managed Macs or "
        "kiosks, exempt Apple's validation hosts (captive.apple.com and the MDM hosts) in the portal's walled "
        "garden.")
    probes = [f for r in rows for f in r.flows if f.id in portal.probe_flows]
    wf = flows_filter(probes) or " || ".join(_addr_clause(a) for a in portal.addresses[:3]) or None
    return Finding(Severity.WARNING, "captive_portal",
                   f"A captive portal ({where}) answers in Apple's place until someone signs in"
                   + (f" ({hosts})" if rows else ""),
                   rows[0].entry.id if rows else None, portal.probe_flows, portal.evidence, advice, wf)


def _flow_findings(flows: list[FlowResult]) -> list[Finding]:
    out: list[Finding] = []
    for f in flows:
        j = f.judgement
        if j.reset_by == "middlebox" and j.verdict in (Verdict.RESET, Verdict.REFUSED) and f.facts.flow.rsts:
            out.append(Finding(Severity.WARNING, "injected_reset",
                               f"A reset for {f.facts.flow.server_ip}:{f.facts.flow.server_port} came from a "
                               "middlebox, not the server", f.attribution.entry.id if f.attribution.entry else None,
                               (f.id,), tuple(j.evidence), None, flow_filter(f.facts) + " && tcp.flags.reset==1"))
        if _undocumented_port(f):
            e = f.attribution.entry
            assert e is not None
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
        weak = [e for e in f.judgement.evidence if e.startswith(WEAK_PREFIX)]
        if weak and f.judgement.verdict is not Verdict.INTERCEPTED:
            host = f.attribution.entry.host if f.attribution.entry else f.facts.flow.server_ip
            out.append(Finding(Severity.WARNING, "possible_tls_interception",
                               f"The client refused the TLS server answering for {f.attribution.name or host} "
                               f"({f.facts.flow.server_ip}); the certificate is encrypted (TLS 1.3), so whether a "
                               "proxy substituted it cannot be seen", f.attribution.entry.id if f.attribution.entry else None,
                               (f.id,), tuple(e.removeprefix(WEAK_PREFIX) for e in weak),
                               f"If a proxy or firewall terminates TLS here, make sure it splices (passes through "
                               f"undecrypted) {host}: Apple services reject decrypted connections.",
                               flow_filter(f.facts)))
    proxied = [f for f in flows if f.judgement.verdict is not Verdict.INTERCEPTED
               and any(e.startswith(PROXY_PREFIX) for e in f.judgement.evidence)]
    if proxied:
        hosts = sorted({f.attribution.name or f.facts.flow.server_ip for f in proxied})
        shown = ", ".join(hosts[:6]) + (f" and {len(hosts) - 6} more" if len(hosts) > 6 else "")
        evidence = list(dict.fromkeys(e.removeprefix(PROXY_PREFIX) for f in proxied for e in f.judgement.evidence
                                      if e.startswith(PROXY_PREFIX)))
        out.append(Finding(Severity.INFO, "transparent_proxy",
                           f"A transparent proxy answers TCP in the name of {shown}; the handshakes completed and "
                           "TLS 1.3 hides the certificate, so nothing shows that it decrypts them",
                           None, tuple(f.id for f in proxied[:20]), tuple(evidence[:6]),
                           "If this proxy inspects TLS, make sure it splices (passes through undecrypted) Apple's "
                           "hosts: `apple-net services export --format squid|pac` writes the bypass list.",
                           flows_filter(proxied)))
    return out


def _undocumented_port(f: FlowResult) -> bool:
    e = f.attribution.entry
    if e is None or f.attribution.port_documented is not False or e.status is EntryStatus.GUIDANCE:
        return False
    if is_dns_flow(f.facts):
        return False
    r = f.facts.flow
    # HTTP/3: a host documented on TCP 443 answers QUIC on UDP 443 as a matter of course.
    return not (r.proto == UDP and f.attribution.port == 443 and 443 in e.ports)


def _capture_findings(flows: list[FlowResult], result: EngineResult, one_sided: list[FlowResult]) -> list[Finding]:
    out: list[Finding] = []
    if one_sided:
        out.append(Finding(Severity.WARNING, "one_sided_capture",
                           f"{count(len(one_sided), 'connection')} show only the client's packets, although the "
                           "client acknowledged answers: the capture misses the other direction",
                           None, tuple(f.id for f in one_sided[:20]),
                           ("asymmetric routing, or a tap or span port that copies one direction",
                            "no-answer verdicts in this capture (TCP, DNS, NTP) cannot be trusted"),
                           "Capture on the Mac itself (or a port that sees both directions) and analyse again."))
    cut = [f for f in flows if payload_cut(f.facts.flow)]
    if cut:
        out.append(Finding(Severity.WARNING, "snaplen_cut",
                           f"The capture cut the payload of {count(len(cut), 'connection')} short (a snaplen): TLS "
                           "and HTTP handshakes there cannot be read, so interception and refusals can go unseen",
                           None, tuple(f.id for f in cut[:20]), (),
                           "Capture whole packets: tcpdump -s 0 (or -s 65535), Wireshark's default."))
    for c in result.captures:
        if c.truncated:
            out.append(Finding(Severity.INFO, "capture_truncated", f"{c.source} ends inside a packet record; "
                               "everything before the cut was analysed", None))
    return out


def findings(flows: list[FlowResult], services: list[ServiceRow], result: EngineResult,
             one_sided: list[FlowResult], portal: Portal | None) -> list[Finding]:
    out = _service_findings(services)
    for extra in (_portal_finding(portal, services), _private_relay_finding(services)):
        if extra is not None:
            out.append(extra)
    out += _flow_findings(flows)
    out += _capture_findings(flows, result, one_sided)
    rank = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    out.sort(key=lambda x: rank[x.severity])
    return out


# -- summary -------------------------------------------------------------------------------------

def interception_summary(flows: list[FlowResult]) -> list[dict[str, object]]:
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


def headline(services: list[ServiceRow], interception: list[dict[str, object]], apple_flows: int,
             dns: list[DNSResult], portal: Portal | None) -> str:
    counted = [s for s in services if not s.private_relay and not s.captive]
    blocked = sum(1 for s in counted if s.status is Status.BLOCKED)
    degraded = sum(1 for s in counted if s.status is Status.DEGRADED)
    parts = []
    if portal is not None:
        where = f" ({portal.url})" if portal.url else ""
        parts.append(f"Captive portal{where}: Apple services wait for sign-in")
    if blocked:
        parts.append(f"{count(blocked, 'Apple service')} blocked")
    if degraded:
        parts.append(f"{count(degraded, 'Apple service')} degraded")
    for i in interception:
        n = len(i["services"])  # type: ignore[arg-type]
        parts.append(f"HTTPS inspection by {i['product'] or 'an unidentified proxy'} on {count(n, 'service')}")
    dns_blocked = len({d.transaction.query.lower() for d in dns_effective_failures(dns)
                       if d.judgement.entry is not None and not d.captive and d.judgement.verdict in
                       (DNSVerdict.NXDOMAIN, DNSVerdict.SINKHOLED, DNSVerdict.REFUSED)})
    if dns_blocked:
        parts.append(f"{count(dns_blocked, 'Apple name')} filtered in DNS")
    if any(s.private_relay for s in services):
        parts.append("iCloud Private Relay unavailable on this network (may be intended)")
    if parts:
        return "; ".join(parts)
    working = sum(1 for s in services if s.status is Status.WORKING)
    if working == 1:
        return f"The one Apple service seen works ({count(apple_flows, 'connection')})"
    if working:
        return f"All {working} Apple services seen work ({count(apple_flows, 'connection')})"
    if apple_flows or any(s.dns for s in services):
        return "Apple traffic seen, but no connection to Apple could be judged (see the services)"
    return "No Apple traffic found in this capture"
