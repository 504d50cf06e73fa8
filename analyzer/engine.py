"""The engine: the one module that knows the order of the stages, and the one error boundary.

    capture source -> decode -> flow table -> (per finished flow) app-layer inspection
                            \\-> DNS tracker (per message)
                            \\-> neighbour tracker (ARP frames, NDP packets)

Nothing raised below this module escapes it: a bug or hostile input in one
packet or one flow becomes a counted weird, and every other result is kept.
Time comes only from packet timestamps, so the same capture always gives the
same records.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import mmap
import os
import resource
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from analyzer.capture.decode import Decoder, Packet, decode, ip_text_cached
from analyzer.capture.reader import CaptureReader, RawPacket, Skipped, open_capture
from analyzer.dnsmap import DNSTracker, DNSTransaction, NameMap
from analyzer.flows.config import FlowConfig
from analyzer.flows.records import FlowRecord
from analyzer.flows.table import FlowTable
from analyzer.inspect import FlowFacts, inspect_flow
from analyzer.neighbors import NeighborBinding, NeighborTracker
from analyzer.protocols.dns import split_tcp_messages

log = logging.getLogger(__name__)

DNS_PORT = 53
# Unicast DNS, mDNS (Bonjour: every Apple device speaks it) and LLMNR share the message format.
DNS_UDP_PORTS = frozenset({53, 5353, 5355})
UDP, TCP, ICMP6 = 17, 6, 58
_NDP_FIRST, _NDP_LAST = 133, 137  # ICMPv6 Router Solicitation .. Redirect


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Every limit of the engine in one frozen object."""

    flows: FlowConfig = field(default_factory=FlowConfig)
    dns_pending_timeout: float = 30.0
    """A query unanswered this long (packet time) is judged unanswered."""
    dns_max_pending: int = 100_000
    max_neighbors: int = 4096
    """IP/Ethernet bindings kept from ARP and NDP (a span port of a big LAN sees thousands)."""
    max_bytes: int | None = None
    """Capture data (after gunzip) read from one file before reading stops with CaptureError
    (`--max-bytes`): a gzip bomb is refused instead of inflated to the end."""
    engine: str | None = None
    """The packet loop: "native" (the compiled core, `analyzer.native`), "python" (this module's
    `Engine`, the reference), or None: native when it was built (`analyzer.native.resolve_engine`)."""
    max_memory_mb: int | None = None
    """Stop reading once the process's resident memory passes this many MiB (checked every
    `MEMORY_CHECK_EVERY` packets), and write the report of what was read. None: the
    process-wide `set_memory_limit` value (the CLI's --max-memory), else no limit."""


@dataclass(frozen=True, slots=True)
class CaptureSummary:
    source: str
    format: str | None
    packets: int
    bytes: int
    first_ts: float | None
    last_ts: float | None
    link_types: tuple[str, ...]
    truncated: bool
    dropped: int | None
    weird: tuple[tuple[str, int], ...]
    on_device: bool = False
    """Taken on the device itself: Apple PKTAP link type, or Apple process metadata on the packets
    (`tcpdump -k` on a Mac). Every flow's client is then that device, whatever its addresses."""


@dataclass(slots=True)
class EngineResult:
    captures: list[CaptureSummary]
    flows: list[FlowFacts]
    dns: list[DNSTransaction]
    names: NameMap
    weird: Counter[str]
    neighbors: list[NeighborBinding] = field(default_factory=list)
    """IP -> Ethernet address bindings that ARP and NDP stated (`analyzer.neighbors`)."""


MEMORY_CHECK_EVERY = 0x3FFF
"""Packets between two looks at the resident memory (/proc/self/statm: a few microseconds)."""
_RESERVE = 64 << 20
"""Address space held back (untouched, so not resident) and given up when memory runs out,
so that ending the flows and writing the report of what was read can still allocate."""
_memory_limit_mb: int | None = None
STOP_WEIRDS = {
    "reading_stopped_max_memory": "reading stopped at the --max-memory limit: the report covers the packets before",
    "reading_stopped_out_of_memory": "reading stopped on a MemoryError: the report covers the packets before",
}
"""The weirds that mark a partial report (`Engine.stopped` says why)."""


_announce_stops = True


def announce_stops(on: bool) -> None:
    """Whether an engine says on stderr that it stopped reading (off in `-j` workers: the parent says it once)."""
    global _announce_stops
    _announce_stops = on


def say_stopped(when: str, why: str) -> None:
    """The one line that says reading stopped early (`when`: "after N packets") and the report is partial."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"apple-net: stopped reading {when}: {why}; "
                         "the report covers what was read\n")
        sys.stderr.flush()


def set_memory_limit(mb: int | None) -> None:
    """The limit every engine made after this call uses unless its config sets one (the CLI's --max-memory)."""
    global _memory_limit_mb
    if mb is not None and mb < 1:
        raise ValueError("the memory limit must be at least 1 MiB")
    _memory_limit_mb = mb


def resident_mb() -> float:
    """This process's resident memory in MiB now (Linux), else its peak so far."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * mmap.PAGESIZE / 1048576
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return peak / (1048576 if sys.platform == "darwin" else 1024)


ProgressFn = Callable[[int, int], None]  # (bytes read so far, total bytes or 0)
FlowSink = Callable[[FlowFacts], None]
DNSSink = Callable[[DNSTransaction], None]


class Engine:
    """Feed packets (from files or a live source); `finish()` returns every record.

    With `on_flow`, each flow's facts go to that callback as the flow finishes
    and are not kept, so memory stays flat however long the capture is (what
    `apple-net flows --format jsonl` does); `finish()` then returns no flows.
    `on_dns` does the same for DNS transactions, as each completes; the
    result's NameMap is then empty (it would hold every answer).
    """

    def __init__(self, config: EngineConfig | None = None, on_flow: FlowSink | None = None,
                 shard: tuple[int, int] | None = None, on_dns: DNSSink | None = None) -> None:
        self.config = config or EngineConfig()
        # (k, n): keep only the flows that `shard_of` gives to k of n (see analyzer.parallel).
        self._shard = shard if shard is not None and shard[1] > 1 else None
        # The reader's weirds and the fragments left at the end are the same in every shard: one counts them.
        self._counts_frames = self._shard is None or self._shard[0] == 0
        self._scratch: Counter[str] = Counter()
        self.table = FlowTable(self.config.flows)
        self.decoder = Decoder()
        self.dns = DNSTracker(self.config.dns_pending_timeout, self.config.dns_max_pending, on_transaction=on_dns)
        self.neighbors = NeighborTracker(self.config.max_neighbors)
        self._process_info = False  # a packet of the file being read carried Apple process metadata
        self.flows: list[FlowFacts] = []
        self._sink: FlowSink = self.flows.append if on_flow is None else on_flow
        self.weird: Counter[str] = Counter()
        self.captures: list[CaptureSummary] = []
        limit = self.config.max_memory_mb if self.config.max_memory_mb is not None else _memory_limit_mb
        self.max_memory_mb = limit
        self._check_in = MEMORY_CHECK_EVERY if limit is not None else 1 << 62
        self.stopped: str | None = None
        self._stop_weird: Counter[str] = Counter()
        """Why reading stopped before the end (memory), else None: the results are then partial."""
        self.on_stop: Callable[[str], None] | None = None
        """Called once with the reason when reading stops (a live session ends its loop)."""
        self.unread = 0
        """Packets given to `feed` after reading stopped, and not read."""
        self._reserve: mmap.mmap | None = None
        with contextlib.suppress(OSError, ValueError, MemoryError):
            self._reserve = mmap.mmap(-1, _RESERVE)

    # -- memory --------------------------------------------------------------
    def _check_memory(self) -> None:
        self._check_in = MEMORY_CHECK_EVERY
        limit = self.max_memory_mb
        if limit is not None and (rss := resident_mb()) > limit:
            self._memory_limit_reached(rss)

    def _memory_limit_reached(self, rss: float) -> None:
        self._stop_reading("reading_stopped_max_memory",
                           f"memory use reached {rss:.0f} MiB (--max-memory {self.max_memory_mb})")

    def _stop_reading(self, weird: str, why: str) -> None:
        """Read no more packets; what was read still makes a report, which says it is partial."""
        if self.stopped is not None:
            return
        if self._reserve is not None:
            self._reserve.close()
            self._reserve = None
        self.stopped = why
        self.weird[weird] += 1
        self._stop_weird = Counter({weird: 1})  # also in the weirds of the capture being read
        if _announce_stops:
            say_stopped(f"after {self.packets} packets", why)
        if self.on_stop is not None:
            self.on_stop(why)

    def _out_of_memory(self) -> None:
        self._stop_reading("reading_stopped_out_of_memory", "out of memory (MemoryError)")

    @property
    def packets(self) -> int:
        """Packets given to the flow table so far."""
        return self.table.packets

    @property
    def open_flows(self) -> int:
        """Flows in the table now (not yet finished)."""
        return len(self.table)

    def feed_batch(self, packets: Sequence[RawPacket]) -> None:
        """Frames in order, as `feed` takes them one by one (a live capture's batch)."""
        feed = self.feed
        for raw in packets:
            feed(raw)

    # -- packets -------------------------------------------------------------
    def feed(self, raw: RawPacket, owned: bool = False) -> None:
        """One frame; `owned`: a sharded engine's caller knows the frame is this shard's."""
        if self.stopped is not None:
            self.unread += 1
            return
        try:
            self._feed(raw, owned)
        except MemoryError:
            self._out_of_memory()
        self._check_in -= 1
        if not self._check_in:
            self._check_memory()

    def _feed(self, raw: RawPacket, owned: bool) -> None:
        try:
            if raw[5] is not None:
                self._process_info = True
            pkt = self.decoder(raw) if self._shard is None or owned else self._shard_decode(raw)
            if pkt is None:
                if self.decoder.arp:
                    self._arp()
                return
            proto = pkt.proto
            if proto == UDP and (pkt.dport in DNS_UDP_PORTS or pkt.sport in DNS_UDP_PORTS) and pkt.payload:
                self.dns.feed(pkt.ts, ip_text_cached(pkt.src), pkt.sport, ip_text_cached(pkt.dst), pkt.dport, pkt.payload)
            elif proto == ICMP6 and pkt.icmp is not None and _NDP_FIRST <= pkt.icmp.type <= _NDP_LAST:
                self.neighbors.ndp(pkt)
            finished = self.table.add(pkt)
        except (OSError, MemoryError):
            raise  # from the output, through the DNS sink or a sharded clock move: stop, as _flow_done does
        except Exception as exc:  # the error boundary: count, keep going
            self._internal("packet", exc)
            return
        self._finished(finished)

    def _arp(self) -> None:
        frames = self.decoder.arp
        for frame in frames:
            self.neighbors.arp(frame)
        frames.clear()

    def _shard_decode(self, raw: RawPacket) -> Packet | None:
        """Decode only this shard's packets; the others just move the table's clock.

        A plain Ethernet/IP/TCP-or-UDP frame's shard is read off its bytes
        (most of a capture); anything else is decoded to find out. The frame
        weirds of a packet are counted by the shard that owns it (shard 0 for
        frames that decode to nothing), so the shards' counts add up to one
        process's.
        """
        k, n = self._shard  # type: ignore[misc]
        owner = raw_shard(raw, n)
        if owner is not None and owner != k:
            self._finished(self.table.advance(raw.ts))
            return None
        scratch = self._scratch
        # ARP frames have no shard: the one that counts frame weirds keeps them.
        pkt = decode(raw, self.decoder.frags, scratch, self.decoder.arp if self._counts_frames else None)
        if owner is None:
            owner = shard_of(pkt, n) if pkt is not None else 0
        if scratch:
            if owner == k:
                self.decoder.weird.update(scratch)
            scratch.clear()
        if owner != k:
            if pkt is not None:
                self._finished(self.table.advance(pkt.ts))
            return None
        return pkt

    def skip(self, times: list[float]) -> None:
        """Frames of other shards, by their times only: the table's clock moves as `_shard_decode` moves it.

        `advance(t)` for a t below the table's next timer only moves the
        clock forward, so one call with the run's latest time does the same
        as one per frame, unless a timer falls due within the run; then each
        frame's time is given as it comes, since a timer's outcome may depend
        on the time it fires at (which of a flow's timers ends it).
        """
        table = self.table
        try:
            latest = max(times)
            if latest >= table.next_timer:
                for t in times:
                    if t >= table.next_timer:
                        self._finished(table.advance(t))
            self._finished(table.advance(latest))
        except MemoryError:
            self._out_of_memory()
        except OSError:
            raise  # from the output (a closed pipe): stop, as _flow_done does
        except Exception as exc:  # noqa: BLE001 - the error boundary, as in feed
            self._internal("packet", exc)

    def advance(self, ts: float) -> None:
        """Move the capture's clock to `ts` with no packet: a live capture's stop, later than its last packet.

        Silence is time too: flows whose timers fall due by `ts` end as they
        would have had a packet come then (an unanswered SYN by its attempt
        timeout, not open at the end); `finish()` then ends the rest.
        """
        self.skip([ts])

    def _finished(self, recs: Sequence[FlowRecord]) -> None:
        for rec in recs:
            self._flow_done(rec)

    def feed_packet(self, pkt: Packet) -> None:
        """For sources that decode themselves (tests, live capture)."""
        if self.stopped is not None:
            self.unread += 1
            return
        try:
            try:
                finished = self.table.add(pkt)
            except MemoryError:
                raise
            except Exception as exc:
                self._internal("packet", exc)
                return
            self._finished(finished)
        except MemoryError:
            self._out_of_memory()

    def _flow_done(self, rec: FlowRecord) -> None:
        try:
            facts = inspect_flow(rec)
        except MemoryError:
            raise
        except Exception as exc:
            log.debug("internal error in inspect: %r", exc, exc_info=True)
            facts = FlowFacts(rec, None, weirds=("internal_error_inspect",))  # counted once, below
        if rec.proto == TCP and DNS_PORT in (rec.server_port, rec.client_port):
            self._dns_over_tcp(rec)
        for w in facts.weirds:
            self.weird[w] += 1
        # The parsers have read the payload bytes; keeping them would make memory grow with the capture.
        _release_payload(rec)
        try:
            self._sink(facts)
        except (OSError, MemoryError):
            raise  # the output is gone (a closed pipe, a full disk): stop
        except Exception as exc:  # a record the writer cannot render: the others still go out
            self._internal("output", exc)

    def _dns_over_tcp(self, rec: FlowRecord) -> None:
        for stream, (src, sport, dst, dport) in (
            (rec.client.stream, (rec.client_ip, rec.client_port, rec.server_ip, rec.server_port)),
            (rec.server.stream, (rec.server_ip, rec.server_port, rec.client_ip, rec.client_port)),
        ):
            if stream is None or not stream.data:
                continue
            ts = stream.segments[0][1] if stream.segments else rec.ts_start
            try:
                messages = split_tcp_messages(stream.data)
            except Exception as exc:
                self._internal("dns_tcp", exc)
                continue
            for msg in messages:
                self.dns.feed(ts, src, sport, dst, dport, msg, transport="tcp")

    def _internal(self, where: str, exc: Exception) -> None:
        self.weird[f"internal_error_{where}"] += 1
        log.debug("internal error in %s: %r", where, exc, exc_info=True)

    # -- files ---------------------------------------------------------------
    def read(self, path: str | os.PathLike[str], progress: ProgressFn | None = None) -> CaptureSummary:
        """Read one capture file to its end (or to the cut of a truncated file)."""
        reader = open_capture(path, self.config.max_bytes)
        total = 0
        try:
            total = os.path.getsize(path)
        except OSError:
            pass
        first_ts = last_ts = None
        feed = self.feed
        n = 0
        self._process_info = False
        reading = self.stopped is None
        try:
            if self._shard is not None and reader.format == "pcap":
                first_ts, last_ts = self._read_shard(reader, progress, total)
            else:
                for raw in reader:
                    if first_ts is None:
                        first_ts = raw.ts
                    last_ts = raw.ts
                    feed(raw)
                    if self.stopped is not None:
                        break
                    n += 1
                    if progress is not None and not n & 0x3FFF:
                        progress(reader.bytes_read, total)
        finally:
            close = getattr(reader, "close", None)
            if close is not None:
                close()
        summary = CaptureSummary(
            source=reader.name,  # the path, or <stdin> for "-"
            format=getattr(reader, "format", None),
            packets=reader.packets,
            bytes=reader.bytes,
            first_ts=first_ts,
            last_ts=last_ts,
            link_types=tuple(reader.link_types),
            truncated=bool(reader.truncated),
            dropped=None,
            weird=tuple(sorted((reader.weird + self._stop_weird).items() if reading and self.stopped
                               else reader.weird.items())),
            on_device="pktap" in reader.link_types or self._process_info,
        )
        if self._counts_frames:
            self.weird.update(reader.weird)
        self.captures.append(summary)
        return summary

    def _read_shard(self, reader: CaptureReader, progress: ProgressFn | None,
                    total: int) -> tuple[float | None, float | None]:
        """`read`'s loop for a sharded engine on a classic pcap: the others' records come as times only.

        Returns the first and last record times of the file.
        """
        assert self._shard is not None
        first_ts = last_ts = None
        feed, skip = self.feed, self.skip
        for n, item in enumerate(reader.shard_pass(*self._shard), 1):
            if isinstance(item, RawPacket):
                start = last_ts = item.ts
                feed(item, True)
            elif isinstance(item, Skipped):
                start, last_ts = item.ts[0], item.ts[-1]
                skip(item.ts)
            else:
                start = last_ts = item.raw.ts
                feed(item.raw)
            if first_ts is None:
                first_ts = start
            if self.stopped is not None:
                break
            if progress is not None and not n & 0x3FFF:
                progress(reader.bytes_read, total)
        return first_ts, last_ts

    def _end_packets(self) -> None:
        """End of input for the packet loop: fragments left counted, every open flow ended, their weirds."""
        try:
            if self._counts_frames:
                self.decoder.finish()
        except Exception as exc:
            self._internal("decoder_finish", exc)
        try:
            self._finished(self.table.flush())
        except MemoryError:
            self._out_of_memory()  # the flows ended so far are kept
        self.weird.update(self.decoder.weird)
        self.weird.update(self.table.weird)

    def finish(self) -> EngineResult:
        self._end_packets()
        self.weird.update(self.dns.weird)
        self.weird.update(self.neighbors.weird)
        dns = self.dns.finish()
        self.flows.sort(key=lambda f: (f.flow.ts_start, f.flow.uid))
        return EngineResult(self.captures, self.flows, dns, NameMap(dns), self.weird, self.neighbors.bindings())


def _mix(a: int, b: int, proto: int, n: int) -> int:
    """The shard of a flow from its two endpoints packed as ints (address << 16 | port).

    XOR makes it the same for both directions; the multiply-shift (Fibonacci
    hashing) spreads flows that differ only in a port. Plain arithmetic, so
    every process, forked or not, agrees.
    """
    return ((((a ^ b) << 8 | proto) * 0x9E3779B97F4A7C15) >> 29 & 0xFFFFFFFF) % n


def raw_shard(raw: RawPacket, n: int) -> int | None:
    """`shard_of` read straight off an untagged Ethernet IPv4/IPv6 TCP/UDP frame; None for any other frame.

    The same key as `shard_of` on the decoded packet, so a shard skips the
    others' packets without decoding them.
    """
    if raw[1] != 1:
        return None
    d = raw[2]
    if len(d) < 38:
        return None
    if d[12] == 8 and d[13] == 0:
        if d[14] >> 4 != 4 or d[20] & 0x3F or d[21]:  # not v4, or a fragment (MF or an offset)
            return None
        proto = d[23]
        if proto != TCP and proto != UDP:
            return None
        t = 14 + (d[14] & 0x0F) * 4
        if len(d) < t + 4:
            return None
        return _mix(int.from_bytes(d[26:30]) << 16 | d[t] << 8 | d[t + 1],
                    int.from_bytes(d[30:34]) << 16 | d[t + 2] << 8 | d[t + 3], proto, n)
    if d[12] == 0x86 and d[13] == 0xDD:
        proto = d[20]
        if (proto != TCP and proto != UDP) or len(d) < 58 or d[14] >> 4 != 6:
            return None
        return _mix(int.from_bytes(d[22:38]) << 16 | d[54] << 8 | d[55],
                    int.from_bytes(d[38:54]) << 16 | d[56] << 8 | d[57], proto, n)
    return None


def shard_of(pkt: Packet, n: int) -> int:
    """Which of n shards a packet's flow belongs to: the same for both directions.

    ICMP errors go with the flow whose header they quote, so they still find it.
    """
    proto = pkt.proto
    if proto == TCP or proto == UDP:
        a, ap, b, bp = pkt.src, pkt.sport, pkt.dst, pkt.dport
    else:
        q = pkt.icmp.quoted if pkt.icmp is not None else None
        if q is not None and (q.proto == TCP or q.proto == UDP):
            a, ap, b, bp, proto = q.src, q.sport, q.dst, q.dport, q.proto
        else:
            a, ap, b, bp = pkt.src, 0, pkt.dst, 0
    return _mix(int.from_bytes(a) << 16 | ap, int.from_bytes(b) << 16 | bp, proto, n)


def _release_payload(rec: FlowRecord) -> None:
    """Free the payload bytes of a record the engine alone holds, once the parsers have read them.

    Records are frozen for their readers; the engine owns this one until it
    hands it over, and rebuilding it with dataclasses.replace cost 6% of the
    whole run on the benchmark. So the two payload slots are cleared in place.
    """
    for side in (rec.client, rec.server):
        if side.stream is not None or side.datagrams:
            object.__setattr__(side, "stream", None)
            object.__setattr__(side, "datagrams", ())


_RELAXED_GC = (100_000, 50, 1000)


@contextlib.contextmanager
def relaxed_gc() -> Iterator[None]:
    """Fewer cyclic-GC passes while millions of short-lived, cycle-free records are made.

    Finished flows hold no reference cycles (tests/test_flows.py checks it), so the
    collector only burns time rescanning them: about a quarter of the flow table's cost.
    The previous thresholds are restored afterwards. Nested use (the engine inside
    `analysis.analyze`, which keeps every flow for the diagnosis) leaves the outer
    setting alone.
    """
    old = gc.get_threshold()
    if old[0] >= _RELAXED_GC[0]:
        yield
        return
    gc.freeze()
    gc.set_threshold(*_RELAXED_GC)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def engine_class(config: EngineConfig | None = None) -> type[Engine]:
    """The engine `config.engine` asks for: the compiled core's when built, else this module's.

    Call it before giving up root (`apple-net live`): it loads the core's library and its
    module, which an unprivileged user may not be able to read.
    """
    from analyzer.native import resolve_engine

    if resolve_engine(config.engine if config is not None else None) == "native":
        from analyzer.native.engine import NativeEngine

        return NativeEngine
    return Engine


def make_engine(config: EngineConfig | None = None, on_flow: FlowSink | None = None,
                shard: tuple[int, int] | None = None, on_dns: DNSSink | None = None) -> Engine:
    """An engine of `engine_class(config)`."""
    return engine_class(config)(config, on_flow, shard, on_dns)


def run_engine(paths: Iterable[str | os.PathLike[str]], config: EngineConfig | None = None,
               progress: ProgressFn | None = None, on_flow: FlowSink | None = None,
               on_dns: DNSSink | None = None, shard: tuple[int, int] | None = None,
               on_stop: Callable[[tuple[int, str]], None] | None = None) -> EngineResult:
    """Read captures in order into one engine (one flow table: a capture split in files stays whole).

    `on_stop((packets, why))`: reading stopped early (--max-memory), after that many packets.
    """
    engine = make_engine(config, on_flow, shard, on_dns)
    if on_stop is not None:
        engine.on_stop = lambda why: on_stop((engine.packets, why))
    with relaxed_gc():
        for p in paths:
            if engine.stopped is not None:
                break  # out of memory: the files after it are not read either
            engine.read(p, progress)
        return engine.finish()
