"""The bulk shard pass of `apple-net flows -j N` workers: the same shards, times, counters and records.

`analyzer.capture.bulk.frame_shards` must give `engine.raw_shard`'s answer on
every frame; `CaptureReader.shard_pass` must hand out the same records (and
leave the same counters) as a plain pass; and an engine fed through it must
finish the same flows, in the same order, as one fed packet by packet.
"""

from __future__ import annotations

import functools
import io
import random
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers_pcap import FIXTURE_CAPTURES, LOCAL, SAMPLE
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.capture import reader as reader_module
from analyzer.capture.bulk import UNDECIDED, frame_shards
from analyzer.capture.decode import decode
from analyzer.capture.reader import (
    CaptureReader,
    RawPacket,
    Skipped,
    Undecided,
    open_capture,
)
from analyzer.cli import main
from analyzer.engine import Engine, raw_shard, shard_of
from analyzer.inspect import FlowFacts
from analyzer.report.jsonl import flow_event, json_line
from analyzer.report.records import flow_dict

CAPTURES = [*FIXTURE_CAPTURES, SAMPLE]
T0 = 1_700_000_000


def _is_pcap(path: Path) -> bool:
    try:
        return open_capture(path).format == "pcap"
    except Exception:  # noqa: BLE001 - not a capture at all: not one for these tests
        return False


PCAPS = [p for p in CAPTURES if _is_pcap(p)]


def _shards(frames: list[bytes], linktype: int, n: int, gap: int = 16) -> list[int | None]:
    """frame_shards over the frames laid out as in a chunk (`gap` bytes before each), None for UNDECIDED."""
    buf = bytearray()
    starts = []
    for f in frames:
        buf += bytes(gap)
        starts.append(len(buf))
        buf += f
    got = frame_shards(np.frombuffer(bytes(buf), np.uint8), np.array(starts, np.int64),
                       np.array([len(f) for f in frames], np.int64), linktype, n)
    return [None if s == UNDECIDED else int(s) for s in got]


# --- frame_shards is raw_shard ----------------------------------------------------------------


def test_frame_shards_equal_raw_shard_on_every_fixture_frame() -> None:
    decided = undecided = 0
    for path in CAPTURES:
        by_linktype: dict[int, list[RawPacket]] = {}
        for raw in open_capture(path):
            by_linktype.setdefault(raw.linktype, []).append(raw)
        for linktype, raws in by_linktype.items():
            for n in (2, 3, 7):
                quick = _shards([r.data for r in raws], linktype, n)
                assert quick == [raw_shard(r, n) for r in raws], (path, n)
                for raw, shard in zip(raws, quick, strict=True):
                    pkt = decode(raw)
                    if shard is not None and pkt is not None:
                        assert shard == shard_of(pkt, n), (path, raw.ts)
            shards = _shards([r.data for r in raws], linktype, 2)
            decided += sum(s is not None for s in shards)
            undecided += sum(s is None for s in shards)
    assert decided > 2000 and undecided > 200  # both answers are exercised


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """Ethernet frames around raw_shard's edges: IPv4 with options or odd IHLs, fragments, IPv6, VLAN, cuts."""
    # Mostly frames raw_shard can place, each of its conditions failing now and then.
    kind = draw(st.sampled_from(["v4", "v4", "v4", "v6", "v6", "vlan", "junk"]))
    if kind == "junk":
        return draw(st.binary(max_size=80))
    eth = draw(st.binary(min_size=12, max_size=12))
    if kind == "vlan":
        eth += b"\x81\x00" + draw(st.binary(min_size=2, max_size=2))
    proto = draw(st.sampled_from([6, 17, 6, 17, 6, 17, 1, 58, 255]))
    addrs = draw(st.binary(min_size=32, max_size=32))
    if kind == "v6":
        version = draw(st.sampled_from([6, 6, 6, 6, 4, 0]))
        ip = bytes([version << 4, 0, 0, 0, 0, 40, proto, 64]) + addrs
        frame = eth + b"\x86\xdd" + ip
    else:
        version = draw(st.sampled_from([4, 4, 4, 4, 6, 15]))
        ihl = draw(st.sampled_from([5, 5, 6, 7, 15, 0, 4]))
        frag = draw(st.sampled_from([0, 0, 0, 0x4000, 0x4000, 0x2000, 0x0001, 0x00FF, 0x0100]))
        ip = struct.pack("!BBHHHBBH", version << 4 | ihl, 0, 40, 1, frag, 64, proto, 0) + addrs[:8]
        ip += draw(st.binary(min_size=max(ihl * 4 - 20, 0), max_size=max(ihl * 4 - 20, 0)))  # options
        frame = eth + b"\x08\x00" + ip
    ports_at = len(frame)
    frame += draw(st.binary(min_size=4, max_size=24))  # ports and more
    # Cuts where raw_shard's length checks change their answer, or anywhere.
    edges = [len(frame), ports_at + 3, ports_at + 4, 37, 38, 57, 58]
    cut = draw(st.one_of(st.sampled_from(edges), st.integers(0, len(frame))))
    return frame[:cut]


@settings(max_examples=400, deadline=None)
@given(st.lists(frames(), min_size=1, max_size=25), st.sampled_from([1, 1, 1, 0, 113, 228]),
       st.integers(1, 9), st.integers(0, 40))
def test_frame_shards_equal_raw_shard_on_made_frames(batch: list[bytes], linktype: int, n: int, gap: int) -> None:
    expected = [raw_shard(RawPacket(0.0, linktype, f, len(f)), n) for f in batch]
    assert _shards(batch, linktype, n, gap) == expected


@settings(max_examples=1000)
@given(st.integers(0, (1 << 144) - 1), st.integers(0, (1 << 144) - 1), st.integers(0, 255))
def test_the_hash_needs_only_the_low_64_bits(a: int, b: int, proto: int) -> None:
    # What frame_shards relies on: bits 29..60 of x * M are those of (x mod 2**64) * M mod 2**64.
    m = 0x9E3779B97F4A7C15
    x = (a ^ b) << 8 | proto
    assert (x * m) >> 29 & 0xFFFFFFFF == ((x % 2**64) * m % 2**64) >> 29 & 0xFFFFFFFF


@settings(max_examples=300, deadline=None)
@given(st.integers(0, (1 << 128) - 1), st.integers(0, (1 << 128) - 1), st.integers(0, 0xFFFF),
       st.integers(0, 0xFFFF), st.sampled_from([6, 17]), st.integers(1, 64))
def test_ipv6_shards_from_whole_addresses(src: int, dst: int, sport: int, dport: int, proto: int, n: int) -> None:
    frame = (bytes(12) + b"\x86\xdd" + bytes([0x60, 0, 0, 0, 0, 8, proto, 64]) + src.to_bytes(16) + dst.to_bytes(16)
             + struct.pack("!HH", sport, dport))
    assert _shards([frame], 1, n) == [raw_shard(RawPacket(0.0, 1, frame, len(frame)), n)]


# --- shard_pass hands out what a plain pass does -------------------------------------------------


def _check_pass(open_reader: Callable[[], CaptureReader], n: int) -> None:
    """Every shard's pass: its own records whole, the undecided ones, every time in order, the same counters."""
    plain = open_reader()
    raws = list(plain)
    for k in range(n):
        reader = open_reader()
        items = list(reader.shard_pass(k, n))
        times: list[float] = []
        for item in items:
            if isinstance(item, Skipped):
                assert item.ts
                times += item.ts
            elif isinstance(item, Undecided):
                times.append(item.raw.ts)
            else:
                times.append(item.ts)
        assert times == [r.ts for r in raws]
        mine = [r for r in raws if raw_shard(r, n) == k]
        assert [i for i in items if isinstance(i, RawPacket)] == mine
        assert [i.raw for i in items if isinstance(i, Undecided)] == [r for r in raws if raw_shard(r, n) is None]
        assert (reader.packets, reader.bytes, reader.truncated, reader.weird) == (
            plain.packets, plain.bytes, plain.truncated, plain.weird)


@pytest.mark.parametrize("path", PCAPS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_shard_pass_on_every_fixture_pcap(path: Path) -> None:
    _check_pass(lambda: open_capture(path), 3)


def test_shard_pass_across_small_chunks_and_cuts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(reader_module, "CHUNK_SIZE", 700)  # records straddle many refills
    data = SAMPLE.read_bytes()
    for cut in (len(data), len(data) - 1, len(data) // 2, 24 + 8, 24):
        path = tmp_path / f"cut{cut}.pcap"
        path.write_bytes(data[:cut])
        _check_pass(functools.partial(open_capture, path), 2)


def test_shard_pass_refuses_pcapng() -> None:
    with pytest.raises(ValueError, match="classic pcap"):
        open_capture(LOCAL.parent / "crafted" / "multi_section.pcapng.gz").shard_pass(0, 2)


@st.composite
def pcaps(draw: st.DrawFn) -> bytes:
    """Classic pcaps with the reader's corners: old versions (swapped lengths), caplen above the snaplen
    or the wire length, a bogus length, a cut anywhere."""
    version = draw(st.sampled_from([(2, 4), (2, 4), (2, 3), (2, 2)]))
    snaplen = draw(st.sampled_from([0, 65535, 60]))
    endian = draw(st.sampled_from(["<", ">"]))
    out = [struct.pack(endian + "IHHiIII", 0xA1B2C3D4, *version, 0, 0, snaplen, 1)]
    for i in range(draw(st.integers(0, 12))):
        frame = draw(frames())
        wirelen = max(len(frame) + draw(st.sampled_from([0, 0, 10, -3])), 0)
        # The two length fields either way round: a file whose lengths the reader
        # misreads must still be misread alike by both passes.
        lengths = (wirelen, len(frame)) if draw(st.booleans()) else (len(frame), wirelen)
        out.append(struct.pack(endian + "IIII", T0 + i, draw(st.integers(0, 999_999)), *lengths) + frame)
    if draw(st.booleans()):
        out.append(struct.pack(endian + "IIII", T0, 0, 70 << 20, 70 << 20))  # bogus: reading stops
    data = b"".join(out)
    return data[: draw(st.one_of(st.just(len(data)), st.integers(24, len(data))))]


@settings(max_examples=300, deadline=None)
@given(pcaps(), st.integers(1, 4), st.sampled_from([40, 300, reader_module.CHUNK_SIZE]))
def test_shard_pass_on_made_pcaps(data: bytes, n: int, chunk_size: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reader_module, "CHUNK_SIZE", chunk_size)
        _check_pass(lambda: open_capture(io.BytesIO(data)), n)


# --- the engine: the same flows, in the same order --------------------------------------------------


def _run(path: Path, shard: tuple[int, int], bulk: bool) -> tuple[list[bytes], list[Any], Counter[str], int]:
    """The flow lines in the order they finished, the DNS transactions, the weirds,
    and how many flows a timer ended while the table's clock was moved without a packet of its own."""
    lines: list[bytes] = []

    def on_flow(f: FlowFacts) -> None:
        lines.append(json_line(flow_event(flow_dict(f))))

    engine = Engine(on_flow=on_flow, shard=shard)
    advance = engine.table.advance
    by_advance = 0

    def counting_advance(ts: float) -> Sequence[Any]:
        nonlocal by_advance
        done = advance(ts)
        by_advance += len(done)
        return done

    engine.table.advance = counting_advance  # type: ignore[method-assign]
    if bulk:
        engine.read(path)
    else:  # what Engine.read did before the bulk pass: every frame through feed
        reader = open_capture(path)
        for raw in reader:
            engine.feed(raw)
        if shard[0] == 0:  # one shard counts the reader's weirds
            engine.weird.update(reader.weird)
    res = engine.finish()
    return lines, res.dns, res.weird, by_advance


@pytest.mark.parametrize("n", [2, 3])
def test_engine_bulk_pass_finishes_the_same_flows_in_the_same_order(n: int) -> None:
    for path in PCAPS:
        for k in range(n):
            assert _run(path, (k, n), bulk=True) == _run(path, (k, n), bulk=False), (path, k)


def _busy_pcap(seed: int, packets: int = 6000) -> bytes:
    """Many short TCP and UDP flows with pauses: the table's timers (attempt, linger, partial close,
    idle) keep falling due while another shard's packets go by."""
    rng = random.Random(seed)
    flows: list[list[int]] = []  # client, sport, server, dport, proto, packets sent
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    t = float(T0)
    for _ in range(packets):
        t += rng.expovariate(4.0) if rng.random() > 0.01 else rng.uniform(2.0, 90.0)
        if not flows or rng.random() < 0.3:
            flows.append([rng.randrange(1, 40), rng.randrange(40000, 40100), rng.randrange(1, 6),
                          rng.choice([53, 443, 80, 5223]), rng.choice([6, 6, 17]), 0])
        flow = rng.choice(flows)
        client, sport, server, dport, proto, sent = flow
        flow[5] += 1
        reply = sent % 2 == 1
        src, dst = (bytes([10, 0, 1, server]), bytes([10, 0, 0, client])) if reply else (
            bytes([10, 0, 0, client]), bytes([10, 0, 1, server]))
        ports = struct.pack("!HH", dport, sport) if reply else struct.pack("!HH", sport, dport)
        payload = bytes(rng.choice([0, 0, 30, 200]))
        if proto == 17:
            l4 = ports + struct.pack("!HH", 8 + len(payload), 0) + payload
        else:
            flags = [0x02, 0x12, 0x10, 0x18, 0x18, 0x11, 0x11, 0x10][min(sent, 7)] if rng.random() > 0.05 else 0x04
            l4 = ports + struct.pack("!IIBBHHH", 1000 + 100 * sent, 2000 + 100 * sent, 5 << 4, flags, 65535, 0, 0)
            l4 += payload
        ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(l4), 0, 0x4000, 64, proto, 0) + src + dst + l4
        frame = bytes(6) + bytes([2, 0, 0, 0, 0, 1]) + b"\x08\x00" + ip
        out.append(struct.pack("<IIII", int(t), int(t % 1 * 1e6), len(frame), len(frame)) + frame)
    return b"".join(out)


@pytest.mark.parametrize("seed", [1, 2])
def test_timers_fire_at_the_same_packet_times_while_others_packets_are_skipped(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "busy.pcap"
    path.write_bytes(_busy_pcap(seed))
    by_advance = 0
    for n in (2, 3):
        for k in range(n):
            bulk = _run(path, (k, n), bulk=True)
            assert bulk == _run(path, (k, n), bulk=False), (n, k)
            by_advance += bulk[3]
    assert by_advance > 1000  # flows did end by their timers while other shards' packets went by


def _jsonl(tmp_path: Path, path: Path, *extra: str) -> list[bytes]:
    out = tmp_path / "out.jsonl"
    assert main(["flows", str(path), "--format", "jsonl", "-o", str(out), *extra]) == 0
    return sorted(out.read_bytes().splitlines())


def test_cut_pcap_gives_the_same_lines_with_two_workers(tmp_path: Path) -> None:
    data = SAMPLE.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) * 2 // 3])  # ends inside a record
    one = _jsonl(tmp_path, cut)
    assert b'"truncated":true' in one[0] + b"".join(one)
    assert _jsonl(tmp_path, cut, "-j", "2") == one


def test_a_closed_output_stops_a_sharded_engine_moving_its_clock() -> None:
    # Flows finished by a skipped run go to the sink; a closed pipe there must stop the
    # run, not be counted as an internal error while the records are dropped.
    from test_flows import Conv

    from analyzer.engine import Engine

    def gone(facts: object) -> None:
        raise BrokenPipeError("reader went away")

    eng = Engine(on_flow=gone, shard=(0, 2))
    c = Conv()
    eng.feed_packet(c.c("S"))
    with pytest.raises(BrokenPipeError):
        eng.skip([c.t + 10_000.0])
