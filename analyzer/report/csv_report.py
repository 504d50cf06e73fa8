"""CSV: one row per flow, for spreadsheets.

Every text cell goes through `for_csv` (a leading =, +, -, @, tab or CR gets a
quote prefix, as OWASP advises against formula injection; control characters
are shown as \\xNN); numbers stay numbers. The csv module does the quoting.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from analyzer.report.escape import for_csv
from analyzer.report.terminal_report import alert_text, leaf_issuer

COLUMNS = ("id", "ts_start", "ts_end", "proto", "client_ip", "client_port", "server_ip", "server_port", "state",
           "history", "sni", "names", "service", "attribution", "verdict", "reason", "reset_by", "tls_version",
           "alert", "leaf_issuer", "interception", "wireshark_filter")


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return for_csv(str(value).lower())
    if isinstance(value, int | float):
        return value
    return for_csv(str(value))


def flow_row(flow: Mapping[str, Any]) -> list[object]:
    client = flow.get("client") or {}
    server = flow.get("server") or {}
    tls = flow.get("tls") or {}
    values: list[object] = [
        flow.get("id"), flow.get("ts_start"), flow.get("ts_end"), flow.get("proto"),
        client.get("ip"), client.get("port"), server.get("ip"), server.get("port"),
        flow.get("state"), flow.get("history"), flow.get("sni"),
        " ".join(map(str, flow.get("names") or [])),
        flow.get("service"), flow.get("attribution"), flow.get("verdict"), flow.get("reason"),
        flow.get("reset_by"), tls.get("version"), alert_text(tls), leaf_issuer(flow),
        (flow.get("interception") or {}).get("product"), flow.get("wireshark_filter"),
    ]
    return [_cell(v) for v in values]


def render_csv(report: Mapping[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for flow in report.get("flows") or []:
        writer.writerow(flow_row(flow))
    return out.getvalue()
