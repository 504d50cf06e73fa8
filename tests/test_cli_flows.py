"""`apple-net flows`: streamed JSON lines, the same records as the JSON document, and workers.

The corpus and crafted captures (tests/fixtures, provenance in their READMEs)
are run through one process and through several; every record must be the
same. Each flow is written as it finishes, so the line order differs.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers_pcap import FIXTURE_CAPTURES, LOCAL, SAMPLE
from hypothesis import given, settings
from hypothesis import strategies as st

import analyzer
from analyzer.cli import main
from analyzer.report.jsonl import json_document, json_line
from analyzer.report.terminal_report import iso_ts

CAPTURES = FIXTURE_CAPTURES


def flows_jsonl(tmp_path: Path, files: list[Path], *extra: str) -> list[dict[str, Any]]:
    out = tmp_path / f"out{len(list(tmp_path.iterdir()))}.jsonl"
    assert main(["flows", *map(str, files), "--format", "jsonl", "-o", str(out), *extra]) == 0
    text = out.read_bytes()
    assert text.isascii()
    return [json.loads(line) for line in text.decode().splitlines()]


def canonical(events: list[dict[str, Any]], kind: str) -> Counter[str]:
    return Counter(json.dumps(e, sort_keys=True) for e in events if e["event_type"] == kind)


def test_jsonl_holds_the_json_documents_records(tmp_path: Path) -> None:
    events = flows_jsonl(tmp_path, [SAMPLE])
    doc = tmp_path / "doc.json"
    assert main(["flows", str(SAMPLE), "--format", "json", "-o", str(doc)]) == 0
    whole = json.loads(doc.read_text())
    flows = [e for e in events if e["event_type"] == "flow"]
    assert sorted((f["flow"] for f in flows), key=lambda d: (d["ts_start"], d["uid"])) == whole["flows"]
    # DNS transactions stream as they complete: the document sorts them by query time.
    assert sorted((e["dns"] for e in events if e["event_type"] == "dns"), key=lambda d: d["ts"]) == whole["dns"]
    for e in flows:  # the envelope repeats the record's 5-tuple, client as src
        f = e["flow"]
        assert (e["flow_id"], e["src_ip"], e["src_port"], e["dest_ip"], e["dest_port"], e["proto"]) == (
            f["id"], f["client"]["ip"], f["client"]["port"], f["server"]["ip"], f["server"]["port"], f["proto"])
    # Then one capture event and the closing stats.
    assert [e["event_type"] for e in events[-2:]] == ["capture", "stats"]
    assert events[-2]["capture"] == whole["captures"][0]
    stats = events[-1]["stats"]
    assert (stats["flows"], stats["dns"], stats["weird"]) == (len(whole["flows"]), len(whole["dns"]), whole["weird"])


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_give_the_same_records(tmp_path: Path, workers: int) -> None:
    one = flows_jsonl(tmp_path, CAPTURES[:1])
    many = flows_jsonl(tmp_path, CAPTURES[:1], "--workers", str(workers))
    assert canonical(one, "flow") == canonical(many, "flow")
    for path in CAPTURES[1:] + [SAMPLE]:
        one = flows_jsonl(tmp_path, [path])
        many = flows_jsonl(tmp_path, [path], "-j", str(workers))
        for kind in ("flow", "dns", "capture", "neighbor"):
            assert canonical(one, kind) == canonical(many, kind), (path, kind)
        # Frame-level weirds are counted by one worker only; flow-level ones add up.
        assert one[-1]["stats"] == many[-1]["stats"], path


def test_workers_read_several_files_as_one_capture(tmp_path: Path) -> None:
    files = [SAMPLE, LOCAL / "http-proxy-squid.pcap"]
    one = flows_jsonl(tmp_path, files)
    two = flows_jsonl(tmp_path, files, "-j", "2")
    assert canonical(one, "flow") == canonical(two, "flow")
    assert len([e for e in two if e["event_type"] == "capture"]) == 2


def test_worker_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flows", str(tmp_path / "missing.pcap"), "--format", "jsonl", "-j", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("apple-net: error: cannot open") and err.count("\n") == 1
    # -j is checked by argparse now (bounds, ulimit -n): its usage error, exit 2.
    with pytest.raises(SystemExit) as exited:
        main(["flows", str(SAMPLE), "--format", "jsonl", "-j", "0"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith("argument -j/--workers: 0 is not in 1..64")


@pytest.mark.parametrize("text", ["plain", "caf\u00e9", "line\u2028break", "lone \udc80 surrogate", "\x1b[31m"])
def test_json_line_is_one_ascii_line(text: str) -> None:
    line = json_line({"sni": text, "n": 1.5})
    assert line.isascii() and line.endswith(b"\n") and line.count(b"\n") == 1
    back = json.loads(line)
    assert back["n"] == 1.5
    assert back["sni"] == text


@settings(max_examples=3000, deadline=None)
@given(st.floats(min_value=-1e9, max_value=4e9, allow_nan=False) | st.integers(0, 4 * 10**15).map(lambda n: n / 1e6))
def test_iso_ts_is_datetimes_isoformat(ts: float) -> None:
    # iso_ts caches the date-time part per second and rounds the microseconds itself.
    assert iso_ts(ts) == datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


@pytest.mark.parametrize("text", ["plain", "caf\u00e9", "line\u2028break", "lone \udc80 surrogate", "\x1b[31m"])
def test_json_document_is_json_dumps_indent_2(text: str) -> None:
    report = analyzer.analyze(SAMPLE).report
    report = {**report, "weird": {text: 1}, "tool": {"name": text, "when": datetime(2026, 1, 1, tzinfo=UTC)},
              "rtt": [1.7881393432617188e-05, 0.25, 1e300]}
    doc = json_document(report)
    reference = json.dumps(report, indent=2, default=str) + "\n"
    assert json.loads(doc) == json.loads(reference)
    assert doc.isascii() == ("\udc80" in text)  # UTF-8 unless a lone surrogate sends it through json.dumps
    # The same layout, line for line (keys and nesting), but for how values are spelled.
    def shape(text: str) -> list[tuple[int, str]]:
        kinds = {'"': "s", "{": "{", "}": "}", "[": "[", "]": "]"}  # keys and strings; numbers and literals: v
        return [(len(line) - len(line.lstrip()), kinds.get(line.lstrip()[:1], "v")) for line in text.split("\n")]

    assert shape(doc.decode("utf-8", "surrogatepass")) == shape(reference)
