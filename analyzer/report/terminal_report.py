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

from rich.console import Group
from rich.table import Table
from rich.text import Text

from analyzer.report.escape import for_terminal
from analyzer.report.terminal import TextConsole

# Worst first: the answer an admin needs leads.
STATUS_ORDER = ("blocked", "intercepted", "degraded", "working", "not_seen")
SEVERITY_ORDER = ("error", "warning", "info")
SEVERITY_TITLES = {"error": "Errors", "warning": "Warnings", "info": "Info"}
PROBLEM_VERDICTS = frozenset({"no_response", "refused", "reset", "tls_failed", "intercepted"})

STATUS_STYLES = {"working": "green", "degraded": "yellow", "blocked": "bold red",
                 "intercepted": "bold magenta", "not_seen": "dim"}
SEVERITY_STYLES = {"error": "bold red", "warning": "bold yellow", "info": "bold cyan"}


# ---------------------------------------------------------------- plain-text helpers (unescaped)

def format_ts(ts: float | None, *, date: bool = True) -> str:
    """Epoch seconds as UTC with milliseconds; '?' when unknown."""
    if ts is None:
        return "?"
    dt = datetime.fromtimestamp(ts, UTC)
    text = dt.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")
    return f"{text}.{dt.microsecond // 1000:03d}"


def iso_ts(ts: float | None) -> str | None:
    """ISO 8601 UTC with microseconds, as Suricata EVE writes timestamps."""
    if ts is None:
        return None
    if ts < 0:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")
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
    parts = [f"{capture.get('packets', 0)} packets"]
    if capture.get("bytes") is not None:
        parts.append(f"{capture['bytes']} bytes")
    if first is not None and last is not None:
        parts.append(f"{format_ts(first)} to {format_ts(last, date=False)} UTC ({last - first:.1f} s)")
    if capture.get("truncated"):
        parts.append("truncated: the file ends inside a record")
    if capture.get("dropped"):
        parts.append(f"{capture['dropped']} packets dropped by the kernel")
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
            f"{issuer}on {len(services)} service"
            f"{'' if len(services) == 1 else 's'}: {', '.join(map(str, services))}"
            f" [{item.get('confidence') or '?'} confidence]")


# ---------------------------------------------------------------- terminal rendering

def _t(value: object, style: str = "") -> Text:
    """A literal Text from any value: control characters escaped, markup never parsed."""
    return Text(for_terminal("" if value is None else str(value)), style=style)


def _answer(report: Mapping[str, Any]) -> Group:
    parts: list[Text] = [_t(headline(report), "bold")]
    for capture in report.get("captures") or []:
        parts.append(_t(capture_line(capture)))
    summary = report.get("summary") or {}
    by_status = summary.get("services_by_status") or {}
    if by_status:
        line = Text("Services: ")
        first = True
        for status in [s for s in STATUS_ORDER if by_status.get(s)] + sorted(
                s for s in by_status if s not in STATUS_ORDER and by_status.get(s)):
            if not first:
                line.append(", ")
            line.append(for_terminal(f"{by_status[status]} {status}"), style=STATUS_STYLES.get(status, ""))
            first = False
        parts.append(line)
    flows_line = f"Flows: {summary.get('flows', 0)} ({summary.get('apple_flows', 0)} to Apple)"
    verdicts = counts_text(summary.get("by_verdict"), ("intercepted", "tls_failed", "reset", "refused",
                                                       "no_response", "incomplete", "ok"))
    dns = counts_text(summary.get("dns_by_verdict"))
    parts.append(_t(flows_line + (f": {verdicts}" if verdicts else "") + (f". DNS: {dns}" if dns else "")))
    for item in summary.get("interception") or []:
        parts.append(_t(interception_line(item), STATUS_STYLES["intercepted"]))
    return Group(*parts)


def _services_table(services: list[Mapping[str, Any]]) -> Table:
    # Built here rather than with plain_table: the status cell carries a colour.
    # The service id is section/host, so those two columns stand for it.
    table = Table(title=None, show_lines=False, header_style="bold")
    # Several devices in the capture (a span port): which share of them each service failed for.
    several = any(((s.get("clients") or {}).get("tried") or 0) > 1 for s in services)
    headers = ("status", "section", "host", "ports", "flows", "attempts", *(("clients",) if several else ()),
               "verdicts", "names seen", "advice")
    for header in headers:
        short = header in ("status", "ports", "flows", "attempts", "clients")
        table.add_column(header, overflow="fold", no_wrap=short,
                         justify="right" if header in ("flows", "attempts") else "left")
    for s in services:
        status = str(s.get("status", ""))
        table.add_row(
            _t(status, STATUS_STYLES.get(status, "")),
            _t(s.get("section_en") or s.get("section")),
            _t(s.get("host")),
            _t(" ".join(str(p) for p in s.get("ports") or []) + f" {s.get('protocol') or ''}".rstrip()),
            _t(s.get("flows", 0)),
            _t(s.get("attempts", "")),
            *((_t(clients_text(s.get("clients"))),) if several else ()),
            _t(counts_text(s.get("by_verdict"))),
            _t(", ".join(map(str, s.get("names") or []))),
            _t(s.get("advice") or ""),
        )
    return table


def _finding(f: Mapping[str, Any]) -> Group:
    severity = str(f.get("severity", "info"))
    head = Text("* ")
    head.append(for_terminal(f"[{f.get('kind', '?')}]"), style=SEVERITY_STYLES.get(severity, ""))
    head.append(" ")
    head.append(for_terminal(str(f.get("message", ""))), style="bold")
    if f.get("service"):
        head.append(for_terminal(f" ({f['service']})"), style="dim")
    lines: list[Text] = [head]
    for item in f.get("evidence") or []:
        lines.append(_t(f"    - {item}"))
    if f.get("flows"):
        lines.append(_t("    flows: " + ", ".join(map(str, f["flows"])), "dim"))
    if f.get("advice"):
        line = Text("    Advice: ", style="bold")
        line.append(for_terminal(str(f["advice"])), style="")
        lines.append(line)
    if f.get("wireshark_filter"):
        line = Text("    Wireshark: ", style="bold")
        line.append(for_terminal(str(f["wireshark_filter"])), style="cyan")
        lines.append(line)
    return Group(*lines)


def render_terminal(report: Mapping[str, Any], stream: TextIO, *, color: bool | None = None,
                    show_not_seen: bool = False) -> None:
    """Write the answer, the services seen and the findings to `stream`.

    Colour when the stream is a TTY, or as `color` forces. Services the capture
    never touched (status not_seen, present with --all-services) are listed,
    dimmed, only with `show_not_seen`; otherwise one line counts them.
    """
    console = TextConsole(stream)
    if color is not None:
        console.is_tty = color
    out: list[str] = [console.render_to_text(_answer(report))]

    services = sorted(report.get("services") or [], key=status_sort_key)
    shown = [s for s in services if show_not_seen or s.get("status") != "not_seen"]
    hidden = len(services) - len(shown)
    out.append(console.render_to_text(Text(f"\nServices ({len(shown)})", style="bold underline")))
    if shown:
        out.append(console.render_to_text(_services_table(shown)))
    else:
        out.append(console.render_to_text(Text("No Apple service seen in the capture.")))
    if hidden:
        out.append(console.render_to_text(Text(f"{hidden} catalogue services not seen (not shown)", style="dim")))

    findings = list(report.get("findings") or [])
    out.append(console.render_to_text(Text(f"\nFindings ({len(findings)})", style="bold underline")))
    if not findings:
        out.append(console.render_to_text(Text("No problems found.")))
    for severity in SEVERITY_ORDER + tuple(sorted({str(f.get("severity")) for f in findings}
                                                  - set(SEVERITY_ORDER))):
        group = [f for f in findings if str(f.get("severity")) == severity]
        if not group:
            continue
        title = Text(f"{SEVERITY_TITLES.get(severity, for_terminal(severity))} ({len(group)})",
                     style=SEVERITY_STYLES.get(severity, "bold"))
        out.append(console.render_to_text(title))
        for f in group:
            out.append(console.render_to_text(_finding(f)))
    stream.write("".join(out))
    stream.flush()
