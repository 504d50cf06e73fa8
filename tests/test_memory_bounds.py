"""Memory stays flat with the number of flows (issue 17, item 4).

A SYN scan is the worst case: every packet starts a flow that the table must
evict or time out. The capture is written by bench/make_synscan.py (hand-built
SYNs: the point is the number of distinct flows, which no real client here
makes in seconds). The 1 M-flow measurement is bench/bench_memory.py.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import analyzer.flows.table as table_mod
from analyzer.capture.reader import open_capture
from analyzer.engine import Engine, EngineConfig, run_engine
from analyzer.flows.config import FlowConfig
from analyzer.inspect import FlowFacts

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "fixtures" / "corpus"


def _synscan() -> Callable[..., None]:
    spec = importlib.util.spec_from_file_location("make_synscan", REPO / "bench" / "make_synscan.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.write_synscan  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    d = tmp_path_factory.mktemp("synscan")
    out = {}
    for n in (10_000, 40_000):
        out[n] = d / f"scan{n}.pcap"
        _synscan()(str(out[n]), n)
    return out


def _live_flow_objects() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is table_mod._Flow)


def test_timers_of_finished_flows_do_not_keep_them(scans: dict[int, Path]) -> None:
    """Each evicted flow left a timer behind: the heap grew by one per flow, holding the flow."""
    max_flows = 4000
    emitted = 0

    def sink(_f: FlowFacts) -> None:
        nonlocal emitted
        emitted += 1

    engine = Engine(EngineConfig(flows=FlowConfig(max_flows=max_flows)), on_flow=sink)
    table = engine.table
    worst = 0
    for i, raw in enumerate(open_capture(scans[40_000]), 1):
        engine.feed(raw)
        if not i % 2000:
            worst = max(worst, len(table._heap))
            assert len(table) <= max_flows
    assert worst <= table_mod._STALE_FACTOR * max_flows + table_mod._STALE_SLACK < 40_000
    assert table.weird["flow_table_full"] == 40_000 - max_flows
    assert _live_flow_objects() <= max_flows + 10  # the evicted 36 000 are freed
    engine.finish()
    assert emitted == 40_000
    assert _live_flow_objects() <= 10


def _peak_rss_mib(path: Path, max_flows: int) -> int:
    code = (
        "import resource, sys\n"
        "from analyzer.engine import run_engine, EngineConfig\n"
        "from analyzer.flows.config import FlowConfig\n"
        "run_engine([sys.argv[1]], EngineConfig(flows=FlowConfig(max_flows=int(sys.argv[2]))), on_flow=lambda f: None)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code, str(path), str(max_flows)], env=env,
                         capture_output=True, text=True, check=True, timeout=600)
    return int(out.stdout.split()[-1])


def test_peak_memory_is_flat_in_the_number_of_flows(scans: dict[int, Path]) -> None:
    """Four times the flows through a table capped at 2000: the same peak RSS (within noise).

    Before the fix the 40 k scan took 29 MiB more than the 10 k scan (stale timers and the
    shells they held); now about 3 MiB.
    """
    small = _peak_rss_mib(scans[10_000], 2000)
    big = _peak_rss_mib(scans[40_000], 2000)
    assert big - small < 12, (small, big)


def _records(paths: list[Path]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []

    def sink(f: FlowFacts) -> None:
        r = f.flow
        out.append((r.uid, r.end_reason, r.ts_end, r.conn_state, r.history, r.client.packets, r.server.packets))

    for p in paths:  # the Python table's timer heap is what is checked here
        run_engine([p], EngineConfig(flows=FlowConfig(max_flows=50), engine="python"), on_flow=sink)
    return out


def test_compacting_the_timers_changes_no_record(monkeypatch: pytest.MonkeyPatch, scans: dict[int, Path]) -> None:
    """The sweep drops only stale entries: compacting at every chance gives the same flows in the same order."""
    paths = sorted(p for p in CORPUS.rglob("*") if p.suffix in (".pcap", ".pcapng", ".cap"))[:40] + [scans[10_000]]
    assert len(paths) > 20
    before = _records(paths)
    compactions = 0
    real = table_mod.FlowTable._compact_timers

    def counting(self: table_mod.FlowTable) -> None:
        nonlocal compactions
        compactions += 1
        real(self)

    monkeypatch.setattr(table_mod, "_STALE_FACTOR", 1)
    monkeypatch.setattr(table_mod, "_STALE_SLACK", 0)
    monkeypatch.setattr(table_mod.FlowTable, "_compact_timers", counting)
    after = _records(paths)
    assert compactions > 1000
    assert after == before


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "analyzer", *args], env=env, capture_output=True, text=True,
                          timeout=600)


def test_max_memory_stops_reading_says_so_and_writes_what_was_read(scans: dict[int, Path]) -> None:
    res = _cli("flows", str(scans[40_000]), "--format", "jsonl", "--max-memory", "1")
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("apple-net: stopped reading after 16383 packets: memory use")
    events = [json.loads(x) for x in res.stdout.splitlines()]
    flows = [e for e in events if e["event_type"] == "flow"]
    assert len(flows) == 16383  # one check every 16 k packets: the first one stops it
    stats = events[-1]["stats"]
    assert stats["weird"]["reading_stopped_max_memory"] == 1
    capture = next(e for e in events if e["event_type"] == "capture")
    assert capture["capture"]["weird"] == {"reading_stopped_max_memory": 1}


def test_max_memory_with_workers_is_said_once_for_all_of_them(scans: dict[int, Path]) -> None:
    """Issue 17: each `-j` worker stops at the limit; the parent says so in one line, not one per worker."""
    res = _cli("flows", str(scans[40_000]), "--format", "jsonl", "-j", "2", "--max-memory", "1")
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines() == [line for line in res.stderr.splitlines() if "stopped reading" in line]
    (line,) = res.stderr.splitlines()
    assert line.startswith("apple-net: stopped reading in 2 of 2 workers: memory use reached ")
    assert line.endswith("; the report covers what was read")
    stats = json.loads(res.stdout.splitlines()[-1])["stats"]
    assert stats["weird"]["reading_stopped_max_memory"] == 2  # one per worker's engine


def test_max_memory_in_analyze_marks_the_report_partial(scans: dict[int, Path]) -> None:
    res = _cli("analyze", str(scans[40_000]), "--format", "json", "--max-memory", "1")
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("apple-net: stopped reading after") == 1
    report = json.loads(res.stdout)
    assert report["weird"]["reading_stopped_max_memory"] == 1
    assert report["captures"][0]["packets"] == 16383


@pytest.mark.parametrize("value", ["0", "-5", "lots"])
def test_max_memory_usage_errors(value: str, scans: dict[int, Path]) -> None:
    for cmd in ("flows", "analyze"):
        res = _cli(cmd, str(scans[10_000]), f"--max-memory={value}")
        assert res.returncode == 2
        assert "--max-memory" in res.stderr and "Traceback" not in res.stderr


def test_memory_error_stops_reading_and_keeps_the_flows_read(scans: dict[int, Path],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    engine = Engine()
    add = engine.table.add

    def failing(pkt: Any) -> Any:
        if engine.table.packets >= 100:
            raise MemoryError
        return add(pkt)

    engine.table.add = failing  # type: ignore[method-assign]
    engine.read(scans[10_000])
    result = engine.finish()
    assert engine.stopped == "out of memory (MemoryError)"
    assert len(result.flows) == 100
    assert result.weird["reading_stopped_out_of_memory"] == 1
    assert "internal_error_packet" not in result.weird
    assert result.captures[0].packets == 101  # the reader stops right after the failing packet
    err = capsys.readouterr().err.splitlines()
    assert err == ["apple-net: stopped reading after 100 packets: out of memory (MemoryError); "
                   "the report covers what was read"]


def test_fragment_table_is_bounded_by_bytes() -> None:
    """Many large unfinished datagrams: the oldest go once their bytes pass max_bytes (a counted weird)."""
    from collections import Counter

    from analyzer.capture.ipfrag import FragmentTable

    weird: Counter[str] = Counter()
    table: FragmentTable[int] = FragmentTable(max_datagrams=4096, max_bytes=1 << 20)
    for i in range(200):  # each: its last 8 KiB only, so it never completes and holds 64 KiB of buffer (under max_size)
        assert table.add(i, 57336, False, b"x" * 8192, float(i) / 1000, i, weird) is None
        assert table.held <= (1 << 20) + 65536
    assert len(table) <= 17
    assert weird["ip_fragment_table_full"] == 200 - len(table)
    # The newest datagram still completes.
    done = table.add(199, 0, True, b"y" * 57336, 0.5, 199, weird)
    assert done is not None and done[0] == 199 and len(done[1]) == 65528
    assert table.held == sum(len(d.buf) for d in table._pending.values())


def test_reassembly_budget_bounds_floors_and_pending_bytes() -> None:
    """Floors are granted only under the hard bound; out-of-order bytes count against the budget."""
    from analyzer.flows.reassembly import ReassemblyBudget, StreamReassembler

    budget = ReassemblyBudget(limit=1000, floor=500)
    assert budget.hard == 2000
    streams = [StreamReassembler(4096, budget=budget) for _ in range(10)]
    for r in streams:
        r.data(0, b"a" * 400, 0.0)  # within each floor: the first five get it all
        assert budget.used <= budget.hard
    assert [r.stored for r in streams[:5]] == [400] * 5
    assert budget.used == 2000 and all(r.cut_by_budget for r in streams[5:])
    for r in streams:
        r.release()
    assert budget.used == 0

    # Bytes waiting beyond a hole are held in the budget, then handed to the prefix.
    r = StreamReassembler(4096, budget=budget)
    r.data(100, b"b" * 300, 0.0)
    assert budget.used == 300 and r.stored == 0
    r.data(0, b"c" * 100, 0.1)
    assert r.stored == 400 and budget.used == 400
    other = StreamReassembler(4096, budget=budget)
    other.data(10, b"d" * 1700, 0.2)  # past the hard bound: kept as a range without its bytes
    assert budget.used == 400
    other.data(0, b"e" * 10, 0.3)
    assert other.stored == 10 and other.cut_by_budget and not other.cut_by_cap
    r.release()
    other.release()
    assert budget.used == 0


def test_segment_entries_stop_at_the_budgets_hard_bound() -> None:
    """One-byte segments would cost ~100x their bytes in (offset, time) entries: they count too."""
    from analyzer.flows.reassembly import SEGMENT_COST, ReassemblyBudget, StreamReassembler

    budget = ReassemblyBudget(limit=6000, floor=100)
    streams = [StreamReassembler(4096, max_segments=4096, budget=budget) for _ in range(4)]
    for r in streams:
        for off in range(1000):
            r.data(off, b"z", off / 1000)
    assert budget.segment_bytes <= budget.hard  # 4000 entries would cost 480 000
    assert budget.segment_bytes == SEGMENT_COST * sum(len(r.segments or ()) for r in streams)
    assert all(r.stored == 1000 for r in streams)  # the bytes themselves are within the budget
    assert all(r.segments_truncated for r in streams)
    for r in streams:
        r.release()
    assert budget.used == 0 and budget.segment_bytes == 0
