"""CSV: one table of the report per file, for spreadsheets: flows (the default), services, dns or findings.

The file holds exactly one table with a header row, nothing else, so any CSV
reader takes it as is; which table it is, is chosen with `--csv-of` (see
TABLES) and said on stderr by the CLI, never inside the data.

Every text cell goes through `for_csv` (a leading =, +, -, @, tab or CR gets a
quote prefix, as OWASP advises against formula injection; control characters
are shown as \\xNN); numbers stay numbers. The csv module does the quoting.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from analyzer.report.escape import for_csv
from analyzer.report.terminal_report import (
    by_service,
    alert_text,
    leaf_issuer,
    service_reason,
    status_sort_key,
)

# --csv-of NAME: what one row is.
TABLES = {
    "flows": "one row per connection",
    "services": "one row per Apple service seen",
    "dns": "one row per DNS transaction",
    "findings": "one row per finding",
}

COLUMNS = ("id", "ts_start", "ts_end", "proto", "client_ip", "client_port", "server_ip", "server_port", "state",
           "history", "sni", "names", "service", "attribution", "verdict", "reason", "reset_by", "tls_version",
           "alert", "leaf_issuer", "interception", "wireshark_filter")
SERVICE_COLUMNS = ("id", "status", "section", "host", "ports", "protocol", "flows", "attempts", "dns_queries",
                   "verdicts", "clients_tried", "clients_failed", "reason", "advice", "names")
DNS_COLUMNS = ("ts", "client_ip", "client_port", "server_ip", "server_port", "transport", "query", "qtype",
               "rcode", "verdict", "reason", "addresses", "chain", "service", "device")
FINDING_COLUMNS = ("severity", "kind", "service", "message", "evidence", "advice", "flows", "wireshark_filter")


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return for_csv(str(value).lower())
    if isinstance(value, int | float):
        return value
    return for_csv(str(value))


def _joined(values: object, sep: str = " ") -> str:
    return sep.join(map(str, values)) if isinstance(values, list | tuple) else ""


def flow_row(flow: Mapping[str, Any]) -> list[object]:
    client = flow.get("client") or {}
    server = flow.get("server") or {}
    tls = flow.get("tls") or {}
    values: list[object] = [
        flow.get("id"), flow.get("ts_start"), flow.get("ts_end"), flow.get("proto"),
        client.get("ip"), client.get("port"), server.get("ip"), server.get("port"),
        flow.get("state"), flow.get("history"), flow.get("sni"),
        _joined(flow.get("names")),
        flow.get("service"), flow.get("attribution"), flow.get("verdict"), flow.get("reason"),
        flow.get("reset_by"), tls.get("version"), alert_text(tls), leaf_issuer(flow),
        (flow.get("interception") or {}).get("product"), flow.get("wireshark_filter"),
    ]
    return [_cell(v) for v in values]


def _flow_rows(report: Mapping[str, Any]) -> list[list[object]]:
    return [flow_row(f) for f in report.get("flows") or []]


def _service_rows(report: Mapping[str, Any]) -> list[list[object]]:
    flows = by_service(report.get("flows") or [])
    dns = by_service(report.get("dns") or [])
    products = {str(sid): str(item["product"]) for item in (report.get("summary") or {}).get("interception") or []
                if item.get("product") for sid in item.get("services") or []}
    rows = []
    for s in sorted(report.get("services") or [], key=status_sort_key):
        sid = str(s.get("id"))
        clients = s.get("clients") or {}
        verdicts = s.get("by_verdict") or {}
        values: list[object] = [
            s.get("id"), s.get("status"), s.get("section_en") or s.get("section"), s.get("host"),
            _joined(s.get("ports")), s.get("protocol"), s.get("flows"), s.get("attempts"), s.get("dns_queries"),
            " ".join(f"{k}={verdicts[k]}" for k in sorted(verdicts)), clients.get("tried"), clients.get("failed"),
            service_reason(s, flows.get(sid, []), dns.get(sid, []), products), s.get("advice"),
            _joined(s.get("names")),
        ]
        rows.append([_cell(v) for v in values])
    return rows


def _dns_rows(report: Mapping[str, Any]) -> list[list[object]]:
    rows = []
    for d in report.get("dns") or []:
        client = d.get("client") or {}
        server = d.get("server") or {}
        values: list[object] = [
            d.get("ts"), client.get("ip"), client.get("port"), server.get("ip"), server.get("port"),
            d.get("transport"), d.get("query"), d.get("qtype"), d.get("rcode"), d.get("verdict"), d.get("reason"),
            _joined(d.get("addresses")), _joined(d.get("chain")), d.get("service"), d.get("device"),
        ]
        rows.append([_cell(v) for v in values])
    return rows


def _finding_rows(report: Mapping[str, Any]) -> list[list[object]]:
    rows = []
    for f in report.get("findings") or []:
        values: list[object] = [
            f.get("severity"), f.get("kind"), f.get("service"), f.get("message"),
            _joined(f.get("evidence"), " | "), f.get("advice"), _joined(f.get("flows")), f.get("wireshark_filter"),
        ]
        rows.append([_cell(v) for v in values])
    return rows


_RENDERERS: dict[str, tuple[Sequence[str], Callable[[Mapping[str, Any]], list[list[object]]]]] = {
    "flows": (COLUMNS, _flow_rows),
    "services": (SERVICE_COLUMNS, _service_rows),
    "dns": (DNS_COLUMNS, _dns_rows),
    "findings": (FINDING_COLUMNS, _finding_rows),
}


def render_csv(report: Mapping[str, Any], table: str = "flows") -> str:
    """One table of the report as CSV with a header row (`table`: a key of TABLES)."""
    if table not in _RENDERERS:
        raise ValueError(f"unknown CSV table {table!r} (choose from {', '.join(TABLES)})")
    columns, rows = _RENDERERS[table]
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(rows(report))
    return out.getvalue()
