"""-o and --html are written atomically; a full disk or a closed stdout is one line and exit 2 (issue 17, 3 and 7)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from analyzer.cli import main

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "mixed_session.pcap"
FORMATS = ("table", "json", "jsonl", "md", "csv", "html")
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def cli(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    kw.setdefault("stdout", subprocess.PIPE)
    return subprocess.run([sys.executable, "-m", "analyzer", *args], stderr=subprocess.PIPE, text=True, env=ENV,
                          timeout=120, **kw)


def one_error_line(proc: subprocess.CompletedProcess[str], what: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("apple-net: error:")]
    assert lines and what in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_full_disk_is_one_line_and_exit_2(fmt: str) -> None:
    # /dev/full is a special file: written directly (it cannot be renamed into), its ENOSPC is one line.
    one_error_line(cli("analyze", str(SAMPLE), "--format", fmt, "-o", "/dev/full"),
                   "cannot write /dev/full: No space left on device")
    with open("/dev/full", "w") as full:
        one_error_line(cli("analyze", str(SAMPLE), "--format", fmt, stdout=full),
                       "cannot write to standard output: No space left on device")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_closed_stdout_is_one_line_and_exit_2(fmt: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "analyzer", "analyze", str(SAMPLE), "--format", fmt],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV, timeout=120,
                          preexec_fn=lambda: os.close(1))
    one_error_line(subprocess.CompletedProcess(proc.args, proc.returncode, "", proc.stderr),
                   "cannot write to standard output: it is closed")


def test_flows_and_html_on_a_full_disk() -> None:
    one_error_line(cli("flows", str(SAMPLE), "--format", "jsonl", "-o", "/dev/full"), "No space left on device")
    one_error_line(cli("flows", str(SAMPLE), "--format", "jsonl", "-j", "2", "-o", "/dev/full"),
                   "No space left on device")
    one_error_line(cli("flows", str(SAMPLE), "--format", "json", "-o", "/dev/full"), "No space left on device")
    one_error_line(cli("analyze", str(SAMPLE), "--format", "json", "-o", os.devnull, "--html", "/dev/full"),
                   "cannot write /dev/full")


def test_a_reader_that_goes_away_is_no_traceback() -> None:
    # `| head -c0`: the pipe's reader is gone before a byte is read; quiet, as `services | head` always was.
    proc = subprocess.run(f"{sys.executable} -m analyzer analyze {SAMPLE} --format json | head -c0",
                          shell=True, capture_output=True, text=True, env=ENV, timeout=120)
    assert "Traceback" not in proc.stderr and "Exception" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("fmt,module,name", [("md", "analyzer.report.markdown", "render_markdown"),
                                             ("html", "analyzer.report.html", "render_html"),
                                             ("table", "analyzer.report.terminal_report", "render_terminal")])
def test_a_render_error_keeps_the_previous_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str,
                                                  module: str, name: str) -> None:
    out = tmp_path / "report"
    out.write_text("the previous report\n")

    def broken(*_a: Any, **_k: Any) -> str:
        raise RuntimeError("renderer bug")

    monkeypatch.setattr(f"{module}.{name}", broken)
    with pytest.raises(RuntimeError, match="renderer bug"):
        main(["analyze", str(SAMPLE), "--format", fmt, "-o", str(out)])
    assert out.read_text() == "the previous report\n"
    assert leftovers(tmp_path) == []


def test_a_streamed_render_error_keeps_the_previous_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # jsonl is written as it is made: half the lines are out when the renderer fails.
    import analyzer.report.jsonl as jsonl

    real = jsonl.events

    def half_then_fail(report: Any) -> Any:
        for n, event in enumerate(real(report)):
            if n == 3:
                raise RuntimeError("renderer bug")
            yield event

    monkeypatch.setattr(jsonl, "events", half_then_fail)
    out = tmp_path / "report.jsonl"
    out.write_text("previous\n")
    with pytest.raises(RuntimeError):
        main(["analyze", str(SAMPLE), "--format", "jsonl", "-o", str(out)])
    assert out.read_text() == "previous\n" and leftovers(tmp_path) == []


SLOW_WRITER = """
import sys, time
import analyzer.cli.flows as flows
real = flows._flow_line
def slow(f):
    line = real(f)
    print("WRITING", file=sys.stderr, flush=True)
    time.sleep(0.2)
    return line
flows._flow_line = slow
from analyzer.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigint_while_writing_keeps_the_previous_report(tmp_path: Path) -> None:
    out = tmp_path / "flows.jsonl"
    out.write_text("previous\n")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, "flows", str(SAMPLE), "--format", "jsonl",
                             "-o", str(out)], stderr=subprocess.PIPE, text=True, env=ENV)
    assert proc.stderr is not None
    assert proc.stderr.readline().strip() == "WRITING"
    time.sleep(0.5)  # several lines are in the temporary file now
    assert len(leftovers(tmp_path)) == 1 and (tmp_path / leftovers(tmp_path)[0]).stat().st_size > 0
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == 130, rest
    assert "interrupted" in rest and "Traceback" not in rest
    assert out.read_text() == "previous\n"
    assert leftovers(tmp_path) == []


def test_the_report_replaces_a_symlink_and_never_writes_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("not yours\n")
    link = tmp_path / "report.json"
    link.symlink_to(victim)
    assert main(["analyze", str(SAMPLE), "--format", "json", "-o", str(link)]) == 0
    assert victim.read_text() == "not yours\n"
    assert not link.is_symlink() and link.read_text().startswith("{")
    assert (link.stat().st_mode & 0o777) == 0o644 & ~current_umask()


def test_modes_new_report_0644_and_an_existing_file_keeps_its_bits(tmp_path: Path) -> None:
    new = tmp_path / "new.md"
    assert main(["analyze", str(SAMPLE), "--format", "md", "-o", str(new)]) == 0
    assert (new.stat().st_mode & 0o777) == 0o644 & ~current_umask()
    private = tmp_path / "private.html"
    private.write_text("old")
    private.chmod(0o600)
    assert main(["analyze", str(SAMPLE), "--format", "json", "-o", os.devnull, "--html", str(private)]) == 0
    assert (private.stat().st_mode & 0o777) == 0o600 and "<html" in private.read_text().lower()
    assert leftovers(tmp_path) == []


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("fmt", ("table", "json", "jsonl"))
def test_live_reports_on_a_full_disk_or_a_closed_stdout(fmt: str, tmp_path: Path) -> None:
    pytest.importorskip("pcapy", reason="pcapy-ng not installed (pip install 'apple-net-analyzer[live]')")
    one_error_line(cli("live", "--replay", str(SAMPLE), "--format", fmt, "-o", "/dev/full"),
                   "cannot write /dev/full: No space left on device")
    proc = subprocess.run([sys.executable, "-m", "analyzer", "live", "--replay", str(SAMPLE), "--format", fmt],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV, timeout=120,
                          preexec_fn=lambda: os.close(1))
    # Refused before the capture starts, not after it.
    assert proc.returncode == 2 and proc.stderr == "apple-net: error: cannot write to standard output: it is closed\n"
    out = tmp_path / "live.json"
    out.write_text("previous\n")
    assert cli("live", "--replay", str(SAMPLE), "--format", fmt, "-o", str(out)).returncode == 0
    assert out.read_text() != "previous\n" and leftovers(tmp_path) == []


def test_dev_stdout_is_written_through_not_renamed_over(tmp_path: Path) -> None:
    # /dev/stdout links to /proc/self/fd/1, here a regular file: renaming a temp file over it would replace the
    # /dev/stdout link itself. It is written as it is.
    before = os.readlink("/dev/stdout")
    with open(tmp_path / "out.json", "w") as fh:
        proc = cli("analyze", str(SAMPLE), "--format", "json", "-o", "/dev/stdout", stdout=fh)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.json").read_text().startswith("{") and os.readlink("/dev/stdout") == before
    assert not [p for p in Path("/dev").iterdir() if p.name.endswith(".tmp")]
