"""The terminal answer: headline first, then services, then findings.

Every string in the report dict is treated as untrusted (SNI, certificate
names, DNS names and evidence come off the wire; the headline quotes issuer
names): it goes through `for_terminal` and into a rich `Text` object, never
into a markup string, so neither control sequences nor rich markup from a
capture can reach the terminal.

The plain-text helpers at the top (timestamps, capture lines, alert text,
status order) are shared by the other renderers.
"""

from __future__ import annotations

import functools

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from rich import box
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from analyzer.report.escape import for_terminal
from analyzer.report.terminal import TextConsole, terminal_width, wrap_hanging
from analyzer.words import count, plural

# Worst first: the answer an admin needs leads.
STATUS_ORDER = ("blocked", "intercepted", "degraded", "working", "not_seen")
SEVERITY_ORDER = ("error", "warning", "info")
SEVERITY_TITLES = {"error": "Errors", "warning": "Warnings", "info": "Info"}
PROBLEM_VERDICTS = frozenset({"no_response", "refused", "reset", "tls_failed", "intercepted"})

STATUS_STYLES = {"working": "green", "degraded": "yellow", "blocked": "bold red",
                 "intercepted": "bold magenta", "not_seen": "dim"}
SEVERITY_STYLES = {"error": "bold red", "warning": "bold yellow", "info": "bold cyan"}


# ---------------------------------------------------------------- plain-text helpers (unescaped)

def _utc(ts: float) -> datetime | None:
    """Epoch seconds as a UTC datetime; None for a time no datetime holds (or not a number)."""
    try:
        return datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError, TypeError):
        return None


def format_ts(ts: float | None, *, date: bool = True) -> str:
    """Epoch seconds as UTC with milliseconds; '?' when unknown, 'time out of range' when unprintable."""
    if ts is None:
        return "?"
    dt = _utc(ts)
    if dt is None:
        return "time out of range"
    text = dt.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")
    return f"{text}.{dt.microsecond // 1000:03d}"


def iso_ts(ts: float | None) -> str | None:
    """ISO 8601 UTC with microseconds, as Suricata EVE writes timestamps."""
    if ts is None:
        return None
    if not 0 <= ts < 253402300800:  # before 1970, past 9999, NaN: the slow way, None if unprintable
        dt = _utc(ts)
        return None if dt is None else dt.isoformat(timespec="microseconds")
    # Every flow and DNS line has one: the date-time part is shared by the records of a
    # second. Rounding as datetime.fromtimestamp does (fraction * 1e6, half to even).
    sec = int(ts)
    us = round((ts - sec) * 1e6)
    if us >= 1_000_000:
        sec += 1
        us -= 1_000_000
    return f"{_iso_second(sec)}.{us:06d}+00:00"


@functools.lru_cache(maxsize=1024)
def _iso_second(sec: int) -> str:
    return datetime.fromtimestamp(sec, UTC).isoformat()[:19]


def status_sort_key(service: Mapping[str, Any]) -> tuple[int, str, str]:
    status = str(service.get("status", ""))
    rank = STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER)
    return rank, str(service.get("section", "")), str(service.get("id", ""))


def counts_text(counts: Mapping[str, Any] | None, order: Iterable[str] = ()) -> str:
    """{'ok': 3, 'reset': 1} -> 'reset 1, ok 3' in the given order first, then the rest sorted."""
    if not counts:
        return ""
    known = [k for k in order if counts.get(k)]
    rest = sorted(k for k in counts if k not in known and counts.get(k))
    return ", ".join(f"{k} {counts[k]}" for k in known + rest)


def capture_line(capture: Mapping[str, Any]) -> str:
    first, last = capture.get("first_ts"), capture.get("last_ts")
    parts = [count(int(capture.get("packets") or 0), "packet")]
    if capture.get("bytes") is not None:
        parts.append(count(int(capture["bytes"]), "byte"))
    if first is not None and last is not None:
        if last >= first:
            parts.append(f"{format_ts(first)} to {format_ts(last, date=False)} UTC ({last - first:.1f} s)")
        else:  # the clock went back: no negative duration
            parts.append(f"{format_ts(first)} to {format_ts(last)} UTC (the clock went back)")
    if capture.get("truncated"):
        parts.append("truncated: the file ends inside a record")
    if capture.get("dropped"):
        parts.append(f"{count(int(capture['dropped']), 'packet')} dropped by the kernel")
    weird = sum(int(v) for v in (capture.get("weird") or {}).values())
    if weird:
        parts.append(f"{weird} weird")
    return f"{capture.get('source', '?')}: " + ", ".join(parts)


def headline(report: Mapping[str, Any]) -> str:
    summary = report.get("summary") or {}
    if summary.get("headline"):
        return str(summary["headline"])
    return f"{summary.get('apple_flows', 0)} of {summary.get('flows', 0)} flows went to Apple services"


def alert_text(tls: Mapping[str, Any] | None) -> str:
    alert = (tls or {}).get("alert")
    if not alert:
        return ""
    code = alert.get("code")
    suffix = f" ({code})" if isinstance(code, int) and code >= 0 else ""
    return f"{alert.get('from', '?')} {alert.get('level', '?')} {alert.get('description', '?')}{suffix}"


def clients_text(clients: Mapping[str, Any] | None) -> str:
    """'1 of 3 failed' (or '3 ok') for a service row's client counts; '' when one client or none."""
    c = clients or {}
    tried = int(c.get("tried") or 0)
    if tried < 1:
        return ""
    failed = int(c.get("failed") or 0)
    return f"{failed} of {tried} failed" if failed else f"{c.get('ok', 0)} of {tried} ok"


def leaf_issuer(flow: Mapping[str, Any]) -> str:
    certs = (flow.get("tls") or {}).get("certificates") or []
    return str(certs[0].get("issuer", "")) if certs else ""


def flow_name(flow: Mapping[str, Any]) -> str:
    """The most specific name for a flow: SNI, QUIC SNI, CONNECT target, then the first DNS name."""
    for value in (flow.get("sni"), (flow.get("quic") or {}).get("sni"),
                  (flow.get("proxy") or {}).get("connect_target")):
        if value:
            return str(value)
    names = flow.get("names") or []
    return str(names[0]) if names else ""


def endpoint(ep: Mapping[str, Any] | None) -> str:
    if not ep:
        return "?"
    ip = str(ep.get("ip", "?"))
    return f"[{ip}]:{ep.get('port')}" if ":" in ip else f"{ip}:{ep.get('port')}"


def interception_line(item: Mapping[str, Any]) -> str:
    services = item.get("services") or []
    issuer = f"(issuer {item['issuer']}) " if item.get("issuer") else ""
    return (f"HTTPS inspection by {item.get('product') or 'an unknown product'} "
            f"{issuer}on {count(len(services), 'service')}: {', '.join(map(str, services))}"
            f" [{item.get('confidence') or '?'} confidence]")


# ---------------------------------------------------------------- the short reason of a service row

# How a verdict reads in the services table's reason column (the finding under the table says more).
_VERDICT_WORDS = {"no_response": "no answer", "refused": "refused", "reset": "reset",
                  "tls_failed": "TLS failed", "intercepted": "HTTPS inspection", "incomplete": "not judged"}
_DNS_WORDS = {"no_response": "no answer", "nxdomain": "NXDOMAIN", "sinkholed": "sinkholed",
              "servfail": "SERVFAIL", "refused": "REFUSED"}


def by_service(items: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for item in items:
        if item.get("service"):
            out.setdefault(str(item["service"]), []).append(item)
    return out


def _flow_problem(flow: Mapping[str, Any]) -> str:
    verdict = str(flow.get("verdict", ""))
    text = _VERDICT_WORDS.get(verdict, verdict)
    if verdict in ("refused", "reset") and flow.get("reset_by"):
        text += f" by {flow['reset_by']}"
    elif verdict == "tls_failed":
        alert = ((flow.get("tls") or {}).get("alert") or {})
        if alert.get("description"):
            text += f" ({alert.get('from', '?')} {alert['description']})"
    return text


def service_reason(service: Mapping[str, Any], flows: list[Mapping[str, Any]],
                   dns: list[Mapping[str, Any]], products: Mapping[str, str]) -> str:
    """One short line on why a service row has its status: per port what failed, or what DNS said.

    '5223: no answer; 443 works', '443: reset by middlebox (1 of 3)', 'DNS: sinkholed'. The finding
    under the table carries the evidence and the advice; this is the row's label.
    """
    if service.get("captive_portal"):
        return "captive portal until sign-in"
    parts: list[str] = []
    by_port: dict[str, list[Mapping[str, Any]]] = {}
    for flow in flows:
        port = (flow.get("server") or {}).get("port")
        by_port.setdefault("?" if port is None else str(port), []).append(flow)
    failing: list[str] = []
    working: list[str] = []
    for port, group in by_port.items():
        bad = [f for f in group if f.get("verdict") in PROBLEM_VERDICTS]
        if not bad:
            if any(f.get("verdict") == "ok" for f in group):
                working.append(port)
            continue
        problems = list(dict.fromkeys(_flow_problem(f) for f in bad))
        share = f" ({len(bad)} of {len(group)})" if len(bad) < len(group) else ""
        failing.append(f"{port}: {', '.join(problems)}{share}")
    if service.get("status") == "intercepted" and products.get(str(service.get("id"))):
        failing = [f"{text} ({products[str(service.get('id'))]})" if "HTTPS inspection" in text else text
                   for text in failing]
    parts += failing
    if failing and working:
        parts.append(f"{' '.join(working)} {plural(len(working), 'works')}")
    bad_dns = list(dict.fromkeys(_DNS_WORDS.get(str(d.get("verdict")), str(d.get("verdict")))
                                 for d in dns if d.get("verdict") not in (None, "ok")))
    if bad_dns:
        parts.append("DNS: " + ", ".join(bad_dns))
    return "; ".join(parts)


# ---------------------------------------------------------------- terminal rendering

def _t(value: object, style: str = "") -> Text:
    """A literal Text from any value: control characters escaped, markup never parsed."""
    return Text(for_terminal("" if value is None else str(value)), style=style)


def _paragraph(prefix: str | Text, body: Text, width: int, indent: int) -> list[Text]:
    return wrap_hanging(prefix if isinstance(prefix, Text) else Text(prefix), body, width, indent)


def _answer(report: Mapping[str, Any], width: int) -> list[Text]:
    lines = _paragraph("", _t(headline(report), "bold"), width, 2)
    for capture in report.get("captures") or []:
        lines += _paragraph("", _t(capture_line(capture)), width, 2)
    summary = report.get("summary") or {}
    by_status = summary.get("services_by_status") or {}
    if by_status:
        line = Text()
        for status in [s for s in STATUS_ORDER if by_status.get(s)] + sorted(
                s for s in by_status if s not in STATUS_ORDER and by_status.get(s)):
            if line.plain:
                line.append(", ")
            line.append(for_terminal(f"{by_status[status]} {status}"), style=STATUS_STYLES.get(status, ""))
        lines += _paragraph("Services: ", line, width, 2)
    flows_line = f"{summary.get('flows', 0)} ({summary.get('apple_flows', 0)} to Apple)"
    verdicts = counts_text(summary.get("by_verdict"), ("intercepted", "tls_failed", "reset", "refused",
                                                       "no_response", "incomplete", "ok"))
    lines += _paragraph("Flows: ", _t(flows_line + (f": {verdicts}" if verdicts else "")), width, 2)
    dns = counts_text(summary.get("dns_by_verdict"))
    if dns:
        lines += _paragraph("DNS: ", _t(dns), width, 2)
    for item in summary.get("interception") or []:
        lines += _paragraph("", _t(interception_line(item), STATUS_STYLES["intercepted"]), width, 2)
    return lines


# A services-table column: header, how it fits (host: never cut; short: cut with an ellipsis;
# text: wrapped inside the column), its widest and narrowest width, right-justified or not.
_Column = tuple[str, str, int, int, bool]
_GAP = 2  # cells between two columns
_REASON_MAX = 40  # the reason column's widest
_ADVICE_MAX = 60  # --wide: the advice column's widest


def _ports_cell(service: Mapping[str, Any], wide: bool) -> str:
    ports = " ".join(str(p) for p in service.get("ports") or [])
    protocol = str(service.get("protocol") or "")
    # TCP goes without saying in the compact table; UDP and the rest are named.
    if protocol and (wide or protocol != "TCP"):
        return f"{ports} {protocol}".strip()
    return ports


def _fit_words(text: str, width: int) -> str:
    """`text` cut to `width` cells between words, with an ellipsis: '443 80 5223 2197' -> '443 80 …'."""
    if cell_len(text) <= width:
        return text
    kept = ""
    for word in text.split(" "):
        candidate = f"{kept} {word}".strip()
        if cell_len(candidate) + 2 > width:
            break
        kept = candidate
    return f"{kept} …" if kept else text  # a first word too long: rich's ellipsis cuts it


def _width_of(cells: Iterable[str], header: str) -> int:
    return max([cell_len(header)] + [cell_len(line) for c in cells for line in c.split("\n")])


def _services_table(services: list[Mapping[str, Any]], report: Mapping[str, Any], width: int,
                    wide: bool) -> tuple[Table, int]:
    """The services table laid out for `width` columns, and the width it needs.

    The compact table (status, host, ports, flows, clients when several devices tried, a short
    reason) fits 80 columns; section, verdict counts, names seen and attempts are added, in that
    order, while the width leaves the reason its room; --wide adds them all and the full advice.
    A host cell is never wrapped, and cut (with an ellipsis) only when longer than any catalogue host.
    """
    flows = by_service(report.get("flows") or [])
    dns = by_service(report.get("dns") or [])
    products = {str(sid): str(item["product"]) for item in (report.get("summary") or {}).get("interception") or []
                if item.get("product") for sid in item.get("services") or []}
    several = any(int((s.get("clients") or {}).get("tried") or 0) > 1 for s in services)
    cells: dict[str, list[str]] = {
        "status": [str(s.get("status", "")) for s in services],
        "section": [str(s.get("section_en") or s.get("section") or "") for s in services],
        "host": [str(s.get("host") or "") for s in services],
        "ports": [_ports_cell(s, wide) for s in services],
        "flows": [str(s.get("flows", 0)) for s in services],
        "attempts": [str(s.get("attempts", "")) for s in services],
        "clients": [clients_text(s.get("clients")) for s in services],
        "verdicts": [counts_text(s.get("by_verdict")) for s in services],
        "names seen": ["\n".join(for_terminal(str(n)) for n in s.get("names") or []) for s in services],
        "reason": [service_reason(s, flows.get(str(s.get("id")), []), dns.get(str(s.get("id")), []), products)
                   for s in services],
        "advice": [str(s.get("advice") or "") for s in services],
    }
    # Wire strings shown, never obeyed (names are escaped one by one: the newline between them is ours).
    cells = {k: [for_terminal(c) for c in col] if k != "names seen" else col for k, col in cells.items()}
    natural = {k: _width_of(col, k) for k, col in cells.items()}
    # (name, fit, widest, narrowest, right-justified)
    spec: dict[str, _Column] = {
        "status": ("status", "short", natural["status"], natural["status"], False),
        "section": ("section", "short", min(natural["section"], 30), 8, False),
        # Whole: every catalogue host (37 characters at most) fits; only a name longer than the
        # terminal leaves room for gets an ellipsis (never a line break).
        "host": ("host", "host", natural["host"] if wide else min(natural["host"], max(37, width - 43)),
                 natural["host"], False),
        "ports": ("ports", "short", min(natural["ports"], 20), min(natural["ports"], 7), False),
        "flows": ("flows", "short", natural["flows"], natural["flows"], True),
        "attempts": ("attempts", "short", natural["attempts"], natural["attempts"], True),
        "clients": ("clients", "short", natural["clients"], natural["clients"], False),
        "verdicts": ("verdicts", "short", min(natural["verdicts"], 30), 8, False),
        "names seen": ("names seen", "short", min(natural["names seen"], 40), 12, False),
        "reason": ("reason", "text", min(natural["reason"], _REASON_MAX), min(natural["reason"], 12), False),
        "advice": ("advice", "text", min(natural["advice"], _ADVICE_MAX), 20, False),
    }
    order = ["status", "section", "host", "ports", "flows", "attempts", "clients", "verdicts", "names seen",
             "reason", "advice"]
    chosen = {"status", "host", "ports", "flows", "reason"} | ({"clients"} if several else set())
    if wide:
        chosen |= {"section", "attempts", "verdicts", "names seen", "advice"}
        widths = {k: spec[k][2] for k in chosen}
    else:
        def total(keys: set[str], w: Mapping[str, int]) -> int:
            return sum(w[k] for k in keys) + _GAP * (len(keys) - 1)

        widest = {k: spec[k][2] for k in spec}
        # Details only while everything, the reason at its widest, still fits.
        for extra in ("verdicts", "section", "names seen", "attempts"):
            if total(chosen | {extra}, widest) <= width:
                chosen.add(extra)
        widths = {k: widest[k] for k in chosen}
        # Too wide: the ports give first (the reason names the failing one), then the reason, which wraps.
        for key in ("ports", "reason"):
            over = total(chosen, widths) - width
            if over > 0:
                widths[key] = max(spec[key][3], widths[key] - over)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0),
                  header_style="bold")
    keys = [k for k in order if k in chosen]
    for key in keys:
        _, fit, _, _, right = spec[key]
        table.add_column(key, width=widths[key], justify="right" if right else "left",
                         no_wrap=fit != "text", overflow="fold" if fit == "text" else "ellipsis")
    if "ports" in chosen:
        cells["ports"] = [_fit_words(c, widths["ports"]) for c in cells["ports"]]
    for i, s in enumerate(services):
        status = str(s.get("status", ""))
        table.add_row(*(Text(cells[k][i], style=STATUS_STYLES.get(status, "") if k == "status" else "")
                        for k in keys))
    return table, sum(widths[k] for k in keys) + _GAP * (len(keys) - 1)


def _finding(f: Mapping[str, Any], width: int) -> list[Text]:
    severity = str(f.get("severity", "info"))
    head = Text()
    head.append(for_terminal(f"[{f.get('kind', '?')}]"), style=SEVERITY_STYLES.get(severity, ""))
    head.append(" ")
    head.append(for_terminal(str(f.get("message", ""))), style="bold")
    if f.get("service"):
        head.append(for_terminal(f" ({f['service']})"), style="dim")
    lines = _paragraph("* ", head, width, 2)
    for item in f.get("evidence") or []:
        lines += _paragraph("    - ", _t(item), width, 6)
    if f.get("flows"):
        lines += _paragraph(Text("    flows: ", style="dim"), _t(", ".join(map(str, f["flows"])), "dim"), width, 6)
    if f.get("advice"):
        lines += _paragraph(Text("    Advice: ", style="bold"), _t(f["advice"]), width, 6)
    if f.get("wireshark_filter"):
        lines += _paragraph(Text("    Wireshark: ", style="bold"), _t(f["wireshark_filter"], "cyan"), width, 6)
    return lines


def render_terminal(report: Mapping[str, Any], stream: TextIO, *, color: bool | None = None,
                    show_not_seen: bool = False, width: int | None = None, wide: bool = False) -> None:
    """Write the answer, the services seen and the findings to `stream`, laid out for `width` columns.

    The width is `width`, else COLUMNS, else the stream's terminal, else 80 (terminal_width).
    Colour when the stream is a TTY, or as `color` forces. Services the capture never touched
    (status not_seen, present with --all-services) are listed, dimmed, only with `show_not_seen`;
    otherwise one line counts them. `wide` shows every detail column and the full advice in the
    services table, however wide that makes it; the paragraphs still wrap at the width.
    """
    cols = terminal_width(stream, width)
    console = TextConsole(stream, width=cols)
    if color is not None:
        console.is_tty = color
    lines: list[Text] = _answer(report, cols)

    services = sorted(report.get("services") or [], key=status_sort_key)
    shown = [s for s in services if show_not_seen or s.get("status") != "not_seen"]
    hidden = len(services) - len(shown)
    lines += [Text(""), Text(f"Services ({len(shown)})", style="bold underline")]
    out: list[str] = [console.render_to_text(Text("\n").join(lines))]
    lines = []
    if shown:
        table, needed = _services_table(shown, report, cols, wide)
        out.append(console.render_to_text(table, width=max(cols, needed)))
    else:
        lines.append(Text("No Apple service seen in the capture."))
    if hidden:
        lines.append(Text(f"{count(hidden, 'catalogue service')} not seen (not shown)", style="dim"))

    findings = list(report.get("findings") or [])
    lines.append(Text(""))
    lines.append(Text(f"Findings ({len(findings)})", style="bold underline"))
    if not findings:
        lines.append(Text("No problems found."))
    for severity in SEVERITY_ORDER + tuple(sorted({str(f.get("severity")) for f in findings}
                                                  - set(SEVERITY_ORDER))):
        group = [f for f in findings if str(f.get("severity")) == severity]
        if not group:
            continue
        lines.append(Text(f"{SEVERITY_TITLES.get(severity, for_terminal(severity))} ({len(group)})",
                          style=SEVERITY_STYLES.get(severity, "bold")))
        for f in group:
            lines += _finding(f, cols)
    out.append(console.render_to_text(Text("\n").join(lines)))
    stream.write("".join(out))
    stream.flush()
