"""The terminal report at 80, 100, 120 and 200 columns: golden files, and the layout's own rules.

The golden comparison catches any change of the text; the layout checks (no line wider than the
width, no host name split across lines, nothing at column 0 that continues an indented paragraph)
hold whatever the goldens say, so regenerating them (APPLE_NET_UPDATE_GOLDEN=1, see
tests/fixtures/terminal/README.md) cannot bless a broken layout.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len

import analyzer
from analyzer.report.terminal_report import STATUS_ORDER, render_terminal

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "fixtures" / "terminal"
SIGNATURES = ROOT / "signatures"
CAPTURES = {
    "mixed_session": ROOT / "samples" / "mixed_session.pcap",
    "span_three_macs_one_blocked": GOLDEN / "span_three_macs_one_blocked.pcap",
    "captive_portal_http_302": GOLDEN / "captive_portal_http_302.pcap",
}
WIDTHS = (80, 100, 120, 200)
UPDATE = os.environ.get("APPLE_NET_UPDATE_GOLDEN") == "1"
SEVERITY_TITLE = re.compile(r"^(Errors|Warnings|Info) \(\d+\)$")
_reports: dict[str, dict[str, Any]] = {}


def report_of(name: str) -> dict[str, Any]:
    if name not in _reports:
        # Analysed by a path relative to the repository, as the golden files show it.
        here = Path.cwd()
        os.chdir(ROOT)
        try:
            # This tree's signatures, whatever the installed package points at.
            _reports[name] = analyzer.analyze(str(CAPTURES[name].relative_to(ROOT)), signatures=SIGNATURES).report
        finally:
            os.chdir(here)
    return _reports[name]


def render(name: str, width: int, **kwargs: Any) -> str:
    out = io.StringIO()
    render_terminal(report_of(name), out, color=False, width=width, **kwargs)
    return out.getvalue()


def hosts_and_names(report: dict[str, Any]) -> set[str]:
    """Every host name the report shows: service hosts, names seen, SNIs."""
    names = {str(s.get("host")) for s in report.get("services") or []}
    names |= {str(n) for s in report.get("services") or [] for n in s.get("names") or []}
    names |= {str(f["sni"]) for f in report.get("flows") or [] if f.get("sni")}
    return {n for n in names if n and n != "None"}


def sections(text: str) -> tuple[list[str], list[str], list[str]]:
    """The answer, the services table (header, rule, rows) and the findings, as lines."""
    lines = text.splitlines()
    services = next(i for i, line in enumerate(lines) if re.fullmatch(r"Services \(\d+\)", line))
    findings = next(i for i, line in enumerate(lines) if re.fullmatch(r"Findings \(\d+\)", line))
    return lines[:services - 1], lines[services + 1:findings - 1], lines[findings + 1:]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", CAPTURES)
def test_terminal_matches_golden(name: str, width: int) -> None:
    text = render(name, width)
    golden = GOLDEN / f"{name}.{width}.txt"
    if UPDATE:
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"{golden} missing: run with APPLE_NET_UPDATE_GOLDEN=1 and check it by eye"
    assert text == golden.read_text(encoding="utf-8")


def test_cli_takes_the_width_from_columns() -> None:
    env = {**os.environ, "COLUMNS": "100", "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "analyzer", "analyze", "samples/mixed_session.pcap",
                        "--signatures", "signatures"],
                       capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert p.stdout == (GOLDEN / "mixed_session.100.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", CAPTURES)
def test_terminal_layout_rules(name: str, width: int) -> None:
    report = report_of(name)
    text = render(name, width)
    lines = text.splitlines()
    # No line wider than the terminal.
    too_wide = [line for line in lines if cell_len(line) > width]
    assert too_wide == []
    # No host name broken across lines: joining each line to the next (indent removed) finds no
    # occurrence that the lines themselves do not have.
    joined = "".join(line.strip() for line in lines)
    for host in hosts_and_names(report):
        on_lines = sum(line.count(host) for line in lines)
        assert on_lines > 0 or host not in joined, host
        assert joined.count(host) == on_lines, f"{host} is split across lines"
    answer, table, findings = sections(text)
    # The answer: one line at column 0 per paragraph (headline, each capture, services, flows, DNS,
    # each interception, and a captive portal's line in the headline's place); the rest indented.
    summary = report["summary"]
    paragraphs = (1 + len(report["captures"]) + bool(summary.get("services_by_status")) + 1
                  + bool(summary.get("dns_by_verdict")) + len(summary.get("interception") or []))
    assert sum(1 for line in answer if line and not line[0].isspace()) == paragraphs, answer
    # The table: header, rule, then rows that start at column 0 with their status; wrapped cells
    # continue indented.
    assert table[0].startswith("status ") and set(table[1]) == {"─"}
    rows = [line for line in table[2:] if line and not line[0].isspace()]
    assert [r.split()[0] for r in rows] == [s["status"] for s in sorted(
        report["services"], key=lambda s: STATUS_ORDER.index(s["status"])) if s["status"] != "not_seen"]
    # Findings: at column 0 only severity titles and the "* " head of each finding.
    heads = [line for line in findings if line and not line[0].isspace()]
    assert all(SEVERITY_TITLE.match(line) or line.startswith("* ") for line in heads), heads
    assert sum(1 for line in heads if line.startswith("* ")) == len(report["findings"])
    # Every evidence, advice and filter line is indented under its finding.
    for line in findings:
        if line.lstrip().startswith(("- ", "flows: ", "Advice: ", "Wireshark: ")):
            assert line.startswith("    "), line


@pytest.mark.parametrize("name", CAPTURES)
def test_terminal_details_by_width(name: str) -> None:
    report = report_of(name)
    header = {w: sections(render(name, w))[1][0].split() for w in WIDTHS}
    assert header[80][:2] == ["status", "host"] and header[80][-1] == "reason"
    assert "section" not in header[80] and "advice" not in header[200]
    several = any((s.get("clients") or {}).get("tried", 0) > 1 for s in report["services"])
    assert ("clients" in header[80]) == several
    # More room, more detail: each wider layout keeps the narrower one's columns.
    for narrow, wide in zip(WIDTHS, WIDTHS[1:]):
        assert set(header[narrow]) <= set(header[wide])
    assert {"section", "verdicts", "attempts"} <= set(header[200])
    # --wide: every column and the full advice, at any width; the paragraphs still wrap at the width.
    text = render(name, 80, wide=True)
    _, table, findings = sections(text)
    assert table[0].split()[-1] == "advice" and "section" in table[0]
    assert all(cell_len(line) <= 80 for line in findings)
