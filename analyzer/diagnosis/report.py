"""The report dict: what `apple-net analyze --format json` writes (report.schema.json plus extra fields)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from analyzer import __version__
from analyzer.catalogue.loader import Catalogue
from analyzer.diagnosis.clients import Device
from analyzer.diagnosis.diagnose import Diagnosis, DNSResult, FlowResult, ServiceRow, flow_filter
from analyzer.diagnosis.model import Finding
from analyzer.engine import EngineResult
from analyzer.report.records import capture_dict, dns_dict, flow_dict, neighbor_dict

SCHEMA_VERSION = 1


def _flow(f: FlowResult) -> dict[str, Any]:
    d = flow_dict(f.facts)
    a, j = f.attribution, f.judgement
    d["names"] = list(a.names)
    d["service"] = a.entry.id if a.entry else None
    d["service_host"] = a.entry.host if a.entry else None
    d["attribution"] = a.evidence.value if a.evidence else None
    d["attributed_by"] = a.name
    d["port_documented"] = a.port_documented
    d["verdict"] = j.verdict.value
    d["reason"] = j.reason
    d["reset_by"] = j.reset_by
    d["evidence"] = list(j.evidence)
    d["interception"] = ({"product": j.interception.product, "issuer": j.interception.issuer,
                          "confidence": j.interception.confidence} if j.interception else None)
    d["wireshark_filter"] = flow_filter(f.facts)
    d["device"] = f.device.label
    return d


def _dns(d: DNSResult) -> dict[str, Any]:
    out = dns_dict(d.transaction)
    out["service"] = d.judgement.entry.id if d.judgement.entry else None
    out["verdict"] = d.judgement.verdict.value
    out["reason"] = d.judgement.reason
    out["device"] = d.device.label
    out["captive_portal"] = d.captive
    return out


def _service(row: ServiceRow, cat: Catalogue) -> dict[str, Any]:
    e = row.entry
    sec = cat.sections.get(e.section)
    names = sorted({n for f in row.flows for n in f.attribution.names[:3]}
                   | {d.transaction.query for d in row.dns})
    return {
        "id": e.id,
        "section": e.section,
        "section_en": sec.en if sec else e.section,
        "section_nl": sec.nl if sec else "",
        "host": e.host,
        "ports": list(e.ports),
        "protocol": e.protocol,
        "flows": len(row.flows),
        "attempts": row.attempts,
        "dns_queries": len(row.dns),
        "by_verdict": row.by_verdict(),
        "status": row.status.value,
        "advice": row.advice,
        "names": names[:20],
        "evidence": list(row.evidence),
        "source": e.source,
        "ref": e.ref,
        "proxy": e.proxy.value,
        "clients": row.clients.as_dict(),
        "captive_portal": row.captive,
    }


def _finding(f: Finding) -> dict[str, Any]:
    return {"severity": f.severity.value, "kind": f.kind, "service": f.service, "flows": list(f.flows),
            "message": f.message, "evidence": list(f.evidence), "advice": f.advice,
            "wireshark_filter": f.wireshark_filter}


def build_report(result: EngineResult, diagnosis: Diagnosis, catalogue: Catalogue) -> dict[str, Any]:
    flows = [_flow(f) for f in diagnosis.flows]
    by_verdict = Counter(f["verdict"] for f in flows)
    apple = [f for f in diagnosis.flows if f.attribution.is_apple]
    services = [_service(s, catalogue) for s in diagnosis.services]
    dns = [_dns(d) for d in diagnosis.dns]
    return {
        "tool": {"name": "apple-net-analyzer", "version": __version__},
        "schema_version": SCHEMA_VERSION,
        "edition": catalogue.edition,
        "captures": [capture_dict(c) for c in result.captures],
        "summary": {
            "flows": len(flows),
            "apple_flows": len(apple),
            "by_verdict": dict(sorted(by_verdict.items())),
            "headline": diagnosis.headline,
            "services_by_status": dict(sorted(Counter(s["status"] for s in services).items())),
            "dns_by_verdict": dict(sorted(Counter(d["verdict"] for d in dns).items())),
            "interception": diagnosis.interception,
        },
        "services": services,
        "flows": flows,
        "dns": dns,
        "findings": [_finding(f) for f in diagnosis.findings],
        "weird": dict(sorted(result.weird.items())),
        "neighbors": [neighbor_dict(b) for b in result.neighbors],
        "devices": [_device(d) for d in diagnosis.devices.all() if len(d.addresses) > 1],
        "captive_portal": _portal(diagnosis),
    }


def _device(d: Device) -> dict[str, Any]:
    return {"label": d.label, "mac": d.mac, "addresses": list(d.addresses), "tie": d.tie, "evidence": d.tie_text()}


def _portal(diagnosis: Diagnosis) -> dict[str, Any] | None:
    p = diagnosis.portal
    if p is None:
        return None
    return {"url": p.url, "addresses": list(p.addresses), "evidence": list(p.evidence),
            "probe_flows": list(p.probe_flows), "hijacked_names": list(p.hijacked_names)}
