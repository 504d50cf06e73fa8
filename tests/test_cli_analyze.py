"""`apple-net analyze`: formats, files, exit codes, and the progress bar."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from analyzer.cli.analyze import progress_bar

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "mixed_session.pcap"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer", "analyze", *args], capture_output=True, text=True,
                          timeout=120)


def test_default_table_answer_first_and_html(tmp_path: Path) -> None:
    html = tmp_path / "r.html"
    p = run(str(SAMPLE), "--html", str(html))
    assert p.returncode == 0, p.stderr
    first = p.stdout.splitlines()[0]
    assert first.startswith("6 Apple services blocked; 1 Apple service degraded; HTTPS inspection")
    assert "\x1b" not in p.stdout  # not a TTY: no colour
    assert html.read_text().startswith("<!DOCTYPE html>")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The JSON report of the sample, the reference every other format is held to."""
    out = tmp_path_factory.mktemp("json") / "r.json"
    p = run(str(SAMPLE), "--format", "json", "-o", str(out))
    assert p.returncode == 0 and p.stdout == "", p.stderr
    rep: dict[str, Any] = json.loads(out.read_text())
    assert rep["summary"]["apple_flows"] == 10
    return rep


def _gsa(report: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The sample's SNI-reset gsa.apple.com: its service row and its one flow."""
    (svc,) = [x for x in report["services"] if x["host"] == "gsa.apple.com"]
    (flow,) = [f for f in report["flows"] if f["sni"] == "gsa.apple.com"]
    assert (svc["status"], flow["verdict"], flow["reset_by"]) == ("blocked", "reset", "middlebox")
    return svc, flow


def check_md(text: str, report: dict[str, Any]) -> None:
    plain = html.unescape(re.sub(r"\\(.)", r"\1", text))  # Markdown escapes undone
    assert plain.startswith("# Apple services on this network\n")
    assert f"**{report['summary']['headline']}**" in plain
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in plain.splitlines() if line.startswith("| ")]
    for svc in report["services"]:  # Status | Section | Host | ... | Advice
        assert any(r[0] == svc["status"] and r[2] == svc["host"] for r in rows), svc["host"]
    gsa, _ = _gsa(report)
    (row,) = [r for r in rows if r[2] == "gsa.apple.com"]
    assert row[0] == "blocked" and "reset 1" in row and row[-1] == gsa["advice"]
    for f in report["findings"]:
        assert f"- Kind: {f['kind']}" in plain
        if f["advice"]:
            assert f"- Advice: {f['advice']}" in plain, f["kind"]


def check_html(text: str, report: dict[str, Any]) -> None:
    assert text.startswith("<!DOCTYPE html>")
    assert f'<p class="headline">{html.escape(report["summary"]["headline"])}<' in text
    rows = re.findall(r'<tr data-status="([a-z_]+)"[^>]*>.*?title="([^"]+)">([^<]+)</td>', text)
    assert {(svc["status"], svc["id"], svc["host"]) for svc in report["services"]} <= set(rows)
    gsa, _ = _gsa(report)
    assert html.escape(gsa["advice"]) in text
    for f in report["findings"]:
        assert f'<span class="muted mono">{f["kind"]}</span>' in text
        if f["advice"]:
            assert html.escape(f["advice"]) in text, f["kind"]


def check_csv(text: str, report: dict[str, Any]) -> None:
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and {"id", "proto", "client_ip", "server_ip", "server_port", "sni", "service", "verdict", "reason",
                     "reset_by", "wireshark_filter"} <= set(rows[0])
    assert [(r["id"], r["verdict"], r["reset_by"]) for r in rows] == [
        (f["id"], f["verdict"], f["reset_by"] or "") for f in report["flows"]]
    _, flow = _gsa(report)
    (row,) = [r for r in rows if r["sni"] == "gsa.apple.com"]
    assert row == row | {"id": flow["id"], "proto": "tcp", "server_ip": "17.253.1.10", "server_port": "443",
                         "verdict": "reset", "reset_by": "middlebox", "service": "apple_id/gsa.apple.com"}


def check_jsonl(text: str, report: dict[str, Any]) -> None:
    events = [json.loads(line) for line in text.splitlines()]
    assert Counter(e["event_type"] for e in events) == {
        "capture": len(report["captures"]), "flow": len(report["flows"]), "dns": len(report["dns"]),
        "service": len(report["services"]), "finding": len(report["findings"]), "summary": 1}
    assert [e["flow_id"] for e in events if e["event_type"] == "flow"] == [f["id"] for f in report["flows"]]
    assert all(e["timestamp"] for e in events)


CHECKS = {"md": check_md, "html": check_html, "csv": check_csv, "jsonl": check_jsonl}


@pytest.mark.parametrize("fmt", ["jsonl", "md", "csv", "html"])
def test_every_format_to_a_file(tmp_path: Path, fmt: str, report: dict[str, Any]) -> None:
    out = tmp_path / f"r.{fmt}"
    p = run(str(SAMPLE), "--format", fmt, "-o", str(out))
    assert p.returncode == 0 and p.stdout == "", p.stderr
    CHECKS[fmt](out.read_text(), report)


def test_exit_codes() -> None:
    assert run(str(SAMPLE), "--format", "json", "--fail-on", "error").returncode == 1
    assert run(str(SAMPLE), "--format", "json", "--fail-on", "warning").returncode == 1
    missing = run("/nonexistent/x.pcap")
    assert missing.returncode == 2 and missing.stderr.strip() == "apple-net: error: /nonexistent/x.pcap: no such file"
    notcap = run(__file__)
    assert notcap.returncode == 2 and "not a pcap or pcapng capture" in notcap.stderr
    assert "Traceback" not in notcap.stderr
    assert run("--format", "xml", str(SAMPLE)).returncode == 2


def test_clean_capture_exits_zero_with_fail_on(tmp_path: Path) -> None:
    clean = Path(__file__).parent / "fixtures" / "corpus" / "zeek" / "testing" / "btest" / "Traces" / "tls" / "tls1.2.pcap"
    assert run(str(clean), "--format", "json", "--fail-on", "error").returncode == 0


def test_progress_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class TTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = TTY()
    monkeypatch.setattr(sys, "stderr", tty)
    with progress_bar([str(SAMPLE)], min_bytes=0) as update:
        assert update is not None
        update(1000, 2000)
        update(500, 2000)  # a second file began: 1000 bytes before it, 500 into it
    frames = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", f).strip() for f in tty.getvalue().split("\r")]
    last = [f for f in frames if f][-1]
    total = f"{SAMPLE.stat().st_size / 1000:.1f} kB"
    assert last.startswith("reading ") and f" 1.5/{total} " in last, frames
    assert tty.getvalue().endswith("\x1b[2K")  # transient: the bar is erased once reading ends
    tty.seek(0)
    tty.truncate()
    with progress_bar([str(SAMPLE)]) as update:
        assert update is None  # small input: no bar
    assert tty.getvalue() == ""
