"""`apple-net analyze`: formats, files, exit codes, and the progress bar."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.parametrize("fmt", ["json", "jsonl", "md", "csv", "html"])
def test_every_format_to_a_file(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"r.{fmt}"
    p = run(str(SAMPLE), "--format", fmt, "-o", str(out))
    assert p.returncode == 0 and p.stdout == "", p.stderr
    text = out.read_text()
    assert text
    if fmt == "json":
        assert json.loads(text)["summary"]["apple_flows"] == 10


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

    monkeypatch.setattr(sys, "stderr", TTY())
    with progress_bar([str(SAMPLE)], min_bytes=0) as update:
        assert update is not None
        update(1000, 2000)
        update(500, 2000)  # a second file began
    with progress_bar([str(SAMPLE)]) as update:
        assert update is None  # small input: no bar
