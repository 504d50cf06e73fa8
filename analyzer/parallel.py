"""One capture's records from several processes: each keeps the flows of its shard.

Every worker reads the whole capture (the cheap part) and keeps only the
flows `engine.shard_of` gives it, so the expensive per-flow work (decoding,
flow table, inspection, DNS, JSON) is split: in a classic pcap the other
shards' records are told apart in bulk (`CaptureReader.shard_pass`) and only
move the worker's clock. Workers render their records
as JSON lines themselves and send the bytes through a pipe: handing Python
objects back would cost as much as making them (pickling a flow record
takes ~65 µs).

Records are the same as one process makes (tests/test_parallel.py checks it
on the corpus and lab captures), with three exceptions that need flows of
different shards to meet: the table's flow limit and reassembly budget are
per worker, and a capture whose clock jumps backwards is judged on each
worker's own packets. Flows then come in no fixed order across workers.
Needs `fork` (Linux, macOS); elsewhere callers run one process.
"""

from __future__ import annotations

import multiprocessing
import os
import selectors
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from analyzer.dnsmap import DNSTransaction
from analyzer.engine import (
    CaptureSummary,
    EngineConfig,
    announce_stops,
    run_engine,
    say_stopped,
)
from analyzer.errors import AnalyzerError
from analyzer.inspect import FlowFacts
from analyzer.neighbors import NeighborBinding, merge_bindings

_CHUNK = 1 << 18


@dataclass(slots=True)
class WrittenRecords:
    """How many lines of each kind went out, and what the engine counted on the way."""

    flows: int
    dns: int
    captures: list[CaptureSummary]
    weird: Counter[str]
    neighbors: list[NeighborBinding] = field(default_factory=list)
    """ARP/NDP bindings (each worker learns those of its own packets; merged as one process's)."""
    stops: list[tuple[int, str]] = field(default_factory=list)
    """(packets read, why) of each engine that stopped reading early (--max-memory)."""


def write_records(files: Sequence[str], write: Callable[[bytes], object],
                  render_flow: Callable[[FlowFacts], bytes], render_dns: Callable[[DNSTransaction], bytes],
                  config: EngineConfig | None = None, shard: tuple[int, int] | None = None) -> WrittenRecords:
    """Write every flow and DNS transaction of `files` (of one shard) as it completes: one process's job."""
    counts = [0, 0]

    def on_flow(f: FlowFacts) -> None:
        counts[0] += 1
        write(render_flow(f))

    def on_dns(t: DNSTransaction) -> None:
        counts[1] += 1
        write(render_dns(t))

    stops: list[tuple[int, str]] = []
    res = run_engine(files, config, on_flow=on_flow, on_dns=on_dns, shard=shard, on_stop=stops.append)
    return WrittenRecords(counts[0], counts[1], res.captures, res.weird, res.neighbors, stops)


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def stream_lines(files: Sequence[str], workers: int, out: BinaryIO,
                 render_flow: Callable[[FlowFacts], bytes], render_dns: Callable[[DNSTransaction], bytes],
                 config: EngineConfig | None = None) -> WrittenRecords:
    """Write every flow and DNS transaction of `files` to `out` as lines rendered by the workers."""
    from analyzer.native import resolve_engine

    # Once here, before the fork: a missing core is said once, not by every worker, and
    # `--engine native` without one fails here with its one line.
    resolve_engine(config.engine if config is not None else None)
    ctx = multiprocessing.get_context("fork")
    procs: list[tuple[Any, Any, int]] = []
    try:
        for k in range(workers):
            rfd, wfd = os.pipe()
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker, args=(k, workers, list(files), wfd, send, render_flow, render_dns,
                                                     config), daemon=True)
            proc.start()
            os.close(wfd)
            send.close()
            procs.append((proc, recv, rfd))
        _copy_lines([rfd for _, _, rfd in procs], out)
        total = WrittenRecords(0, 0, [], Counter())
        for k, (proc, recv, _) in enumerate(procs):
            try:
                result = recv.recv()
            except EOFError:
                raise AnalyzerError(f"worker {k} died (exit code {proc.exitcode})") from None
            if isinstance(result, str):
                raise AnalyzerError(result)
            total.flows += result.flows
            total.dns += result.dns
            total.captures += result.captures
            total.weird.update(result.weird)
            total.neighbors = merge_bindings([total.neighbors, result.neighbors])
            total.stops += result.stops
        if total.stops:  # the workers kept quiet: one line for all (the first worker to stop says why)
            say_stopped(f"in {len(total.stops)} of {workers} workers", total.stops[0][1])
        return total
    finally:
        for proc, recv, rfd in procs:
            recv.close()
            try:
                os.close(rfd)
            except OSError:
                pass
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()


def _copy_lines(fds: list[int], out: BinaryIO) -> None:
    """Copy whole lines from the workers' pipes as they come (a worker's chunk may end mid-line)."""
    sel = selectors.DefaultSelector()
    partial: dict[int, bytes] = {}
    for fd in fds:
        sel.register(fd, selectors.EVENT_READ)
        partial[fd] = b""
    open_fds = len(fds)
    while open_fds:
        for key, _ in sel.select():
            fd = key.fd
            chunk = os.read(fd, _CHUNK)
            if not chunk:  # a worker's end; a line it left unfinished (it died) is not written
                sel.unregister(fd)
                open_fds -= 1
                continue
            data = partial[fd] + chunk
            cut = data.rfind(b"\n") + 1
            if cut:
                out.write(data[:cut])
            partial[fd] = data[cut:]
    sel.close()


def _worker(k: int, n: int, files: list[str], wfd: int, send: Any, render_flow: Callable[[FlowFacts], bytes],
            render_dns: Callable[[DNSTransaction], bytes], config: EngineConfig | None) -> None:
    try:
        buf: list[bytes] = []
        size = 0

        def flush() -> None:
            nonlocal size
            data = memoryview(b"".join(buf))
            while data:
                data = data[os.write(wfd, data):]
            buf.clear()
            size = 0

        def emit(line: bytes) -> None:
            nonlocal size
            buf.append(line)
            size += len(line)
            if size >= _CHUNK:
                flush()

        announce_stops(False)  # the parent says it once for every worker (stream_lines)
        done = write_records(files, emit, render_flow, render_dns, config, shard=(k, n))
        flush()
        os.close(wfd)
        if k:
            done.captures = []  # every worker read the same files: worker 0 reports them
        send.send(done)
    except AnalyzerError as exc:  # e.g. an unreadable file: the parent says it as one process would
        send.send(str(exc))
    except BaseException as exc:  # the parent reports it; a traceback here would be lost
        where = traceback.extract_tb(exc.__traceback__)[-1]
        send.send(f"internal error in worker {k}: {exc!r} at {where.filename}:{where.lineno}")
    finally:
        send.close()
