"""JSON lines with a Suricata-EVE-like envelope: one event per line.

Envelope: timestamp (ISO 8601 UTC), event_type, flow_id and the 5-tuple
(src = client, dest = server) where they apply, and the record itself under a
key named like the event type, as EVE does ({"event_type": "dns", "dns": {...}}).
Records are kept as they are: JSON escapes control characters (and, with
ensure_ascii, every non-ASCII character), so a line is always one line.

Order: captures, the ARP/NDP neighbour bindings, then flows and DNS
transactions by time, then findings, services and the summary (roll-ups,
stamped with the end of the capture).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

from analyzer.report.terminal_report import iso_ts

_ORJSON_LINE = orjson.OPT_APPEND_NEWLINE
_ORJSON_DOCUMENT = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE | orjson.OPT_PASSTHROUGH_DATETIME


def json_line(obj: Any) -> bytes:
    """One JSON object and a newline, ASCII only (like json.dumps's ensure_ascii).

    orjson is 10-15x faster than json.dumps on flow records, which made JSON the
    second-largest cost of `apple-net flows`. It writes non-ASCII as UTF-8, and
    U+2028/U+2029 would split a line for `str.splitlines`; it also refuses lone
    surrogates. Those rare lines (wire strings only) go through json.dumps.
    """
    try:
        out = orjson.dumps(obj, option=_ORJSON_LINE)
    except (TypeError, orjson.JSONEncodeError):
        return (json.dumps(obj, ensure_ascii=True) + "\n").encode("ascii")
    if out.isascii():
        return out
    return (json.dumps(obj, ensure_ascii=True) + "\n").encode("ascii")


def json_document(obj: Any) -> bytes:
    """`json.dumps(obj, indent=2, default=str)` and a newline, in UTF-8, at orjson's speed.

    The same layout and values; non-ASCII text is written as UTF-8 rather than
    \\u escapes, and small floats without an exponent (0.0000179 where json
    writes 1.79e-05). The JSON report of a big capture is hundreds of MB:
    json.dumps built it as one str (then encoded it: two copies) and took
    ~10x longer. Lone surrogates (orjson refuses them) take json's way.
    """
    try:
        return orjson.dumps(obj, option=_ORJSON_DOCUMENT, default=str)
    except (TypeError, orjson.JSONEncodeError):
        return (json.dumps(obj, indent=2, default=str) + "\n").encode("ascii")


def envelope(event_type: str, ts: float | None, record: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return _without_none({"timestamp": iso_ts(ts), "event_type": event_type, **extra, event_type: record},
                         event_type)


def five_tuple(client: Mapping[str, Any] | None, server: Mapping[str, Any] | None,
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

    out = [envelope("capture", c.get("first_ts"), c) for c in captures]
    out += [neighbor_event(b) for b in report.get("neighbors") or []]
    timed: list[tuple[float, int, dict[str, Any]]] = []
    for i, f in enumerate(flows):
        timed.append((f.get("ts_start") or 0.0, i, flow_event(f)))
    for i, d in enumerate(report.get("dns") or []):
        timed.append((d.get("ts") or 0.0, len(flows) + i, dns_event(d)))
    out += [event for _, _, event in sorted(timed, key=lambda t: (t[0], t[1]))]

    for finding in report.get("findings") or []:
        cited = [by_id[i] for i in finding.get("flows") or [] if i in by_id]
        starts = [f["ts_start"] for f in cited if f.get("ts_start") is not None]
        extra: dict[str, Any] = {}
        if len(finding.get("flows") or []) == 1 and cited:
            only = cited[0]
            extra = {"flow_id": only.get("id"), "community_id": only.get("community_id"),
                     **five_tuple(only.get("client"), only.get("server"), only.get("proto"))}
        out.append(envelope("finding", min(starts) if starts else end, finding, **extra))
    out += [envelope("service", end, s) for s in report.get("services") or []]
    summary = {"tool": report.get("tool"), "schema_version": report.get("schema_version"),
               **(report.get("summary") or {}), "weird": report.get("weird") or {}}
    out.append(envelope("summary", end, summary))
    return out


def flow_event(f: Mapping[str, Any]) -> dict[str, Any]:
    # `envelope`'s event in one dict literal: one line per flow of a capture (`apple-net flows`),
    # where the keyword arguments were a fifth of a line's cost.
    return _without_none({"timestamp": iso_ts(f.get("ts_start")), "event_type": "flow", "flow_id": f.get("id"),
                          "community_id": f.get("community_id"),
                          **five_tuple(f.get("client"), f.get("server"), f.get("proto")), "flow": f}, "flow")


def neighbor_event(b: Mapping[str, Any]) -> dict[str, Any]:
    """An ARP/NDP binding (`records.neighbor_dict`), stamped with the time it was first stated."""
    return envelope("neighbor", b.get("first_ts"), b, src_ip=b.get("ip"), src_mac=b.get("mac"))


def dns_event(d: Mapping[str, Any]) -> dict[str, Any]:
    return _without_none({"timestamp": iso_ts(d.get("ts")), "event_type": "dns", "flow_id": d.get("flow_id"),
                          **five_tuple(d.get("client"), d.get("server"), d.get("transport")), "dns": d}, "dns")


def _without_none(event: dict[str, Any], record_key: str) -> dict[str, Any]:
    """Envelope fields without a value are left out; the timestamp and the record always stay."""
    if None in event.values():
        for key in [k for k, v in event.items() if v is None and k != "timestamp" and k != record_key]:
            del event[key]
    return event


def render_jsonl(report: Mapping[str, Any]) -> str:
    return b"".join(json_line(e) for e in events(report)).decode("ascii")
