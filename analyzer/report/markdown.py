"""Markdown report: headline, services, findings, failing flows, DNS problems.

Every string from the report goes through `for_markdown` (control characters
shown, HTML and Markdown syntax escaped, table pipes included). Wireshark
filters go in code spans, whose content CommonMark shows literally, so they
stay copyable; the span's fence is longer than any backtick run inside.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from analyzer.report.escape import for_markdown, for_terminal
from analyzer.report.terminal_report import (
    PROBLEM_VERDICTS,
    SEVERITY_ORDER,
    SEVERITY_TITLES,
    STATUS_ORDER,
    alert_text,
    capture_line,
    counts_text,
    endpoint,
    flow_name,
    format_ts,
    headline,
    interception_line,
    status_sort_key,
)


def _md(value: object) -> str:
    return for_markdown("" if value is None else str(value))


def code_span(value: object) -> str:
    text = for_terminal("" if value is None else str(value))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    # A space on each side keeps a leading or trailing backtick out of the fence.
    return f"{fence} {text} {fence}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_md(cell) for cell in row) + " |")
    return lines


def _answer(report: Mapping[str, Any]) -> list[str]:
    summary = report.get("summary") or {}
    lines = ["# Apple services on this network", "", f"**{_md(headline(report))}**", ""]
    for capture in report.get("captures") or []:
        lines.append(f"- Capture {_md(capture_line(capture))}")
    by_status = counts_text(summary.get("services_by_status"), STATUS_ORDER)
    if by_status:
        lines.append(f"- Services: {_md(by_status)}")
    verdicts = counts_text(summary.get("by_verdict"))
    lines.append(f"- Flows: {_md(summary.get('flows', 0))} ({_md(summary.get('apple_flows', 0))} to Apple)"
                 + (f": {_md(verdicts)}" if verdicts else ""))
    dns = counts_text(summary.get("dns_by_verdict"))
    if dns:
        lines.append(f"- DNS: {_md(dns)}")
    for item in summary.get("interception") or []:
        lines.append(f"- {_md(interception_line(item))}")
    return [*lines, ""]


def _services(report: Mapping[str, Any]) -> list[str]:
    services = sorted(report.get("services") or [], key=status_sort_key)
    lines = ["## Services", ""]
    if not services:
        return [*lines, "No Apple service seen in the capture.", ""]
    rows = [(s.get("status"), s.get("section_en") or s.get("section"), s.get("host"),
             " ".join(str(p) for p in s.get("ports") or []) + f" {s.get('protocol') or ''}".rstrip(),
             s.get("flows", 0), s.get("attempts", ""), counts_text(s.get("by_verdict")),
             ", ".join(map(str, s.get("names") or [])), s.get("advice") or "")
            for s in services]
    lines += _table(("Status", "Section", "Host", "Ports", "Flows", "Attempts", "Verdicts", "Names seen", "Advice"),
                    rows)
    return [*lines, ""]


def _finding(f: Mapping[str, Any]) -> list[str]:
    lines = [f"#### {_md(f.get('message'))}", "", f"- Kind: {_md(f.get('kind'))}"]
    if f.get("service"):
        lines.append(f"- Service: {_md(f['service'])}")
    if f.get("flows"):
        lines.append(f"- Flows: {_md(', '.join(map(str, f['flows'])))}")
    evidence = f.get("evidence") or []
    if evidence:
        lines.append("- Evidence:")
        lines += [f"  - {_md(item)}" for item in evidence]
    if f.get("advice"):
        lines.append(f"- Advice: {_md(f['advice'])}")
    if f.get("wireshark_filter"):
        lines.append(f"- Wireshark filter: {code_span(f['wireshark_filter'])}")
    return [*lines, ""]


def _findings(report: Mapping[str, Any]) -> list[str]:
    findings = list(report.get("findings") or [])
    lines = ["## Findings", ""]
    if not findings:
        return [*lines, "No problems found.", ""]
    severities = SEVERITY_ORDER + tuple(sorted({str(f.get("severity")) for f in findings} - set(SEVERITY_ORDER)))
    for severity in severities:
        group = [f for f in findings if str(f.get("severity")) == severity]
        if group:
            lines += [f"### {_md(SEVERITY_TITLES.get(severity, severity))} ({len(group)})", ""]
            for f in group:
                lines += _finding(f)
    return lines


def _failing_flows(report: Mapping[str, Any]) -> list[str]:
    flows = [f for f in report.get("flows") or [] if f.get("verdict") in PROBLEM_VERDICTS]
    lines = ["## Failing flows", ""]
    if not flows:
        return [*lines, "None.", ""]
    rows = [(f.get("id"), format_ts(f.get("ts_start")), f.get("proto"), endpoint(f.get("client")),
             endpoint(f.get("server")), flow_name(f), f.get("service") or "", f.get("verdict"),
             f.get("reset_by") or "", f.get("state") or "", alert_text(f.get("tls")), f.get("reason") or "")
            for f in flows]
    lines += _table(("Flow", "Start (UTC)", "Proto", "Client", "Server", "Name", "Service", "Verdict", "Reset by",
                     "State", "TLS alert", "Reason"), rows)
    return [*lines, ""]


def _dns_problems(report: Mapping[str, Any]) -> list[str]:
    problems = [d for d in report.get("dns") or [] if d.get("verdict") != "ok"]
    lines = ["## DNS problems", ""]
    if not problems:
        return [*lines, "None.", ""]
    rows = [(format_ts(d.get("ts")), endpoint(d.get("client")), endpoint(d.get("server")), d.get("query"),
             d.get("qtype"), d.get("rcode") or "no response", d.get("verdict"),
             ", ".join(f"{a.get('type')} {a.get('data')}" for a in d.get("answers") or []),
             " -> ".join(map(str, d.get("chain") or [])), d.get("service") or "", d.get("reason") or "")
            for d in problems]
    lines += _table(("Time (UTC)", "Client", "Resolver", "Query", "Type", "Rcode", "Verdict", "Answers",
                     "CNAME chain", "Service", "Reason"), rows)
    return [*lines, ""]


def render_markdown(report: Mapping[str, Any]) -> str:
    lines = (_answer(report) + _services(report) + _findings(report) + _failing_flows(report)
             + _dns_problems(report))
    tool = report.get("tool") or {}
    lines.append(f"_{_md(tool.get('name', 'apple-net-analyzer'))} {_md(tool.get('version', ''))}_")
    return "\n".join(lines) + "\n"
