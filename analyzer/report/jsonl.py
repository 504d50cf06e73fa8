"""JSON lines with a Suricata-EVE-like envelope: one event per line.

Envelope: timestamp (ISO 8601 UTC), event_type, flow_id and the 5-tuple
(src = client, dest = server) where they apply, and the record itself under a
key named like the event type, as EVE does ({"event_type": "dns", "dns": {...}}).
Records are kept as they are: JSON escapes control characters (and, with
ensure_ascii, every non-ASCII character), so a line is always one line.

Order: captures, then flows and DNS transactions by time, then findings,
services and the summary (roll-ups, stamped with the end of the capture).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from analyzer.report.terminal_report import iso_ts


def _envelope(event_type: str, ts: float | None, record: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"timestamp": iso_ts(ts), "event_type": event_type}
    event.update({k: v for k, v in extra.items() if v is not None})
    event[event_type] = record
    return event


def _five_tuple(client: Mapping[str, Any] | None, server: Mapping[str, Any] | None,
                proto: str | None) -> dict[str, Any]:
    client, server = client or {}, server or {}
    return {"src_ip": client.get("ip"), "src_port": client.get("port"), "dest_ip": server.get("ip"),
            "dest_port": server.get("port"), "proto": proto}


def events(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    captures = report.get("captures") or []
    ends = [c["last_ts"] for c in captures if c.get("last_ts") is not None]
    end = max(ends) if ends else None
    flows = report.get("flows") or []
    by_id = {f.get("id"): f for f in flows}

    out = [_envelope("capture", c.get("first_ts"), c) for c in captures]
    timed: list[tuple[float, int, dict[str, Any]]] = []
    for i, f in enumerate(flows):
        timed.append((f.get("ts_start") or 0.0, i, _envelope(
            "flow", f.get("ts_start"), f, flow_id=f.get("id"), community_id=f.get("community_id"),
            **_five_tuple(f.get("client"), f.get("server"), f.get("proto")))))
    for i, d in enumerate(report.get("dns") or []):
        timed.append((d.get("ts") or 0.0, len(flows) + i, _envelope(
            "dns", d.get("ts"), d, flow_id=d.get("flow_id"),
            **_five_tuple(d.get("client"), d.get("server"), d.get("transport")))))
    out += [event for _, _, event in sorted(timed, key=lambda t: (t[0], t[1]))]

    for finding in report.get("findings") or []:
        cited = [by_id[i] for i in finding.get("flows") or [] if i in by_id]
        starts = [f["ts_start"] for f in cited if f.get("ts_start") is not None]
        extra: dict[str, Any] = {}
        if len(finding.get("flows") or []) == 1 and cited:
            only = cited[0]
            extra = {"flow_id": only.get("id"), "community_id": only.get("community_id"),
                     **_five_tuple(only.get("client"), only.get("server"), only.get("proto"))}
        out.append(_envelope("finding", min(starts) if starts else end, finding, **extra))
    out += [_envelope("service", end, s) for s in report.get("services") or []]
    summary = {"tool": report.get("tool"), "schema_version": report.get("schema_version"),
               **(report.get("summary") or {}), "weird": report.get("weird") or {}}
    out.append(_envelope("summary", end, summary))
    return out


def render_jsonl(report: Mapping[str, Any]) -> str:
    return "".join(json.dumps(e, ensure_ascii=True, sort_keys=False) + "\n" for e in events(report))
