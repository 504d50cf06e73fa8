"""Usage errors are one line and exit 2, never a traceback (issue 17, item 9)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from analyzer.compare import ReportError, check_report

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "mixed_session.pcap"
ORDINARY = ROOT / "tests" / "fixtures" / "reports" / "ordinary.json"


def cli(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, **kw)


def usage_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "error:" in last and all(w in last for w in words), proc.stderr


@pytest.mark.parametrize("option,value,words", [
    ("--write-mb", "0", ("--write-mb", "not in 1..")),
    ("--write-mb", "-5", ("--write-mb", "not in 1..")),
    ("--write-mb", "9" * 30, ("--write-mb", "not in 1..")),
    ("--write-keep", "0", ("--write-keep", "not in 1..")),
    ("--max-flows", "0", ("--max-flows", "not in 4..")),
    ("--max-flows", "ten", ("--max-flows", "not a whole number")),
    ("--buffer-mb", "0", ("--buffer-mb", "not in 1..")),
])
def test_live_numbers_out_of_range(tmp_path: Path, option: str, value: str, words: tuple[str, ...]) -> None:
    proc = cli("live", "--replay", str(SAMPLE), "--write", str(tmp_path / "w.pcapng"), option, value,
               "--format", "json", "-o", os.devnull)
    usage_error(proc, *words)
    assert list(tmp_path.iterdir()) == []


def test_workers_have_an_upper_bound() -> None:
    usage_error(cli("flows", str(SAMPLE), "--format", "jsonl", "-j", "1000"), "-j/--workers", "not in 1..64")
    usage_error(cli("flows", str(SAMPLE), "--format", "jsonl", "-j", "0"), "-j/--workers", "not in 1..64")


def test_workers_beyond_the_file_descriptor_limit(tmp_path: Path) -> None:
    def few_fds() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (30, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    proc = cli("flows", str(SAMPLE), "--format", "jsonl", "-j", "40", "-o", str(tmp_path / "out"),
               preexec_fn=few_fds)
    usage_error(proc, "-j/--workers", "limit is 30 (ulimit -n)", "use -j")
    # The -j it proposes works under that limit.
    fit = proc.stderr.strip().split("use -j ")[1].split()[0]
    ok = cli("flows", str(SAMPLE), "--format", "jsonl", "-j", fit, "-o", str(tmp_path / "out"), preexec_fn=few_fds)
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "out").read_text().splitlines()[-1])["event_type"] == "stats"


def bad_reports() -> dict[str, str]:
    good = json.loads(ORDINARY.read_text())

    def with_(path: tuple[Any, ...], value: Any) -> str:
        doc = json.loads(json.dumps(good))
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return json.dumps(doc)

    assert good["services"] and good["findings"]
    return {
        "services not a list": with_(("services",), "x"),
        "a service not an object": with_(("services",), [1, 2]),
        "a service id not a string": with_(("services", 0, "id"), {"a": 1}),
        "by_verdict not counts": with_(("services", 0, "by_verdict"), {"ok": "many"}),
        "a huge count": with_(("services", 0, "by_verdict"), {"ok": 10**4000}),
        "findings not a list": with_(("findings",), {"a": 1}),
        "a finding's message a list": with_(("findings", 0, "message"), ["x"]),
        "summary a list": with_(("summary",), []),
        "a capture's source an object": with_(("captures", 0, "source"), {"x": 1}),
        "deep nesting": '{"services": [], "findings": [], "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "deep nesting in a field": with_(("services", 0, "advice"), "PLACEHOLDER").replace(
            '"PLACEHOLDER"', "[" * 50_000 + "]" * 50_000),
        "an integer too long to read": '{"services": [], "findings": [], "n": ' + "9" * 5000 + "}",
    }


@pytest.mark.parametrize("case", sorted(bad_reports()))
def test_compare_refuses_a_malformed_report_in_one_line(tmp_path: Path, case: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(bad_reports()[case])
    for args in ((str(bad), str(ORDINARY)), (str(ORDINARY), str(bad))):
        proc = cli("compare", *args, "--format", "json")
        assert proc.returncode == 2, (case, proc.stderr)
        assert proc.stderr.startswith(f"apple-net: error: {bad}: ") and len(proc.stderr.splitlines()) == 1, proc.stderr


def test_a_well_formed_report_still_compares() -> None:
    proc = cli("compare", str(ORDINARY), str(ORDINARY), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["headline"]


def test_the_api_refuses_wrong_types_too() -> None:
    from analyzer.compare import compare

    good = json.loads(ORDINARY.read_text())
    check_report(good)
    with pytest.raises(ReportError, match=r"services\[0\]\.id must be a string"):
        compare({"services": [{"id": 5}], "findings": []}, good)
