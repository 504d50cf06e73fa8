"""`apple-net live -i IFACE`: watch a span port or gateway interface, see failing Apple services as they fail."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from analyzer.catalogue import EDITIONS
from analyzer.cli.analyze import MAX_MEMORY_HELP, add_layout_options, memory_mb
from analyzer.cli.options import int_range
from analyzer.errors import AnalyzerError

FORMATS = ("table", "json", "jsonl", "md", "csv", "html")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "live", help="capture from an interface and judge Apple services as traffic flows (needs root/CAP_NET_RAW)",
        description="Capture from IFACE with a kernel filter that keeps what the analysis reads (handshakes, "
        "resets, DNS, NTP, QUIC Initials, ICMP errors, the first segments of each TCP connection) and sheds the "
        "bulk; show a services table that updates in place; on Ctrl-C or at --duration write the final report in "
        "any of the offline formats. Kernel drops are counted in the report, never hidden.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("-i", "--interface", metavar="IFACE", help="interface to capture on (`any`: all of them)")
    src.add_argument("--replay", metavar="FILE", help="run the live pipeline (filter, roll-up) over a capture file "
                     "instead: what the default filter would keep of it (no root needed; needs pcapy-ng)")
    p.add_argument("--bpf", metavar="EXPR", help="replace the default filter with this libpcap expression "
                   "('' captures everything); disables the user-space stage")
    p.add_argument("--bpf-also", metavar="EXPR", help="also capture what this libpcap expression matches "
                   "(OR-ed into the default; never shed)")
    p.add_argument("--head-segments", type=int, default=None, metavar="N",
                   help="data segments kept from the start of each TCP direction (default 12)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--report-every", type=float, default=2.0, metavar="S",
                   help="refresh the view, judge finished flows and bound memory every S seconds (default 2)")
    p.add_argument("--write", metavar="FILE", help="keep what was analysed as pcapng (rotated by size)")
    p.add_argument("--write-mb", type=int_range(1, 1 << 20), default=256, metavar="MB",
                   help="rotate --write files at MB (default 256)")
    p.add_argument("--write-keep", type=int_range(1, 1_000_000), metavar="N",
                   help="keep only the newest N --write files")
    p.add_argument("--format", choices=FORMATS, default="table", help="final report format (default table)")
    p.add_argument("-o", "--output", metavar="PATH", help="write the final report to PATH instead of stdout")
    add_layout_options(p)
    p.add_argument("--backend", choices=("auto", "pcapy", "scapy"), default="auto",
                   help="capture library (default: pcapy-ng if installed, else scapy)")
    p.add_argument("--buffer-mb", type=int_range(1, 1 << 16), default=128, metavar="MB",
                   help="kernel capture buffer: absorbs bursts while flows are judged (default 128)")
    p.add_argument("--no-promisc", action="store_true", help="do not put the interface in promiscuous mode")
    p.add_argument("-Z", "--relinquish-privileges", dest="user", metavar="USER",
                   help="once the interface is open, continue as USER (as tcpdump -Z); default: the user who ran "
                   "sudo, else nobody; `-Z root` keeps root. With --replay: only when given")
    p.add_argument("--max-flows", type=int_range(4, 100_000_000), default=100_000, metavar="N",
                   help="finished flows kept in full; older ones are rolled up into counts (default 100000)")
    p.add_argument("--max-memory", type=memory_mb, metavar="MB", help=MAX_MEMORY_HELP)
    p.add_argument("--edition", choices=EDITIONS, default="current", help="edition of Apple's article (default current)")
    p.add_argument("--signatures", metavar="DIR", help="use this signatures directory instead of the packaged one")
    p.set_defaults(func=cmd_live)


def _status_line(st: Any) -> str:
    return (f"live: {st.elapsed:.0f} s, read {st.read}, kept {st.kept}, shed {st.shed}, dropped {st.dropped}; "
            f"flows {st.flows_done} done, {st.active_flows} active; DNS {st.dns}")


def cmd_live(args: argparse.Namespace) -> int:
    from analyzer.catalogue import load_catalogue
    from analyzer.live.bpf import resolve_filter
    from analyzer.live.heads import DEFAULT_HEAD_SEGMENTS
    from analyzer.live.rolling import LiveView, view_table
    from analyzer.live.session import LiveSession
    from analyzer.live.source import (
        LiveSource,
        compile_user_filter,
        open_live,
        open_offline_as_live,
    )

    if args.head_segments is not None and args.head_segments < 0:
        raise AnalyzerError("--head-segments must be >= 0")
    if args.report_every <= 0:
        raise AnalyzerError("--report-every must be > 0")
    from analyzer.cli.output import require_stdout

    require_stdout(args.output)  # before the capture, not after it
    from analyzer.engine import engine_class, set_memory_limit


    set_memory_limit(args.max_memory)
    spec = resolve_filter(args.bpf, args.bpf_also)
    catalogue = load_catalogue(args.signatures, edition=args.edition)
    source: LiveSource
    if args.replay:
        source = open_offline_as_live(args.replay, spec.kernel, spec.fallback)
    else:
        source = open_live(args.interface, spec.kernel, backend=args.backend, buffer_mb=args.buffer_mb,
                           promisc=not args.no_promisc, fallback=spec.fallback)
    writer = None
    try:
        extra = compile_user_filter(spec.also, source.linktype) if spec.also else None
        engine_class()  # the compiled core's library and modules, loaded while they are still readable
        _drop_root(args)  # the handle is open: parse what comes in, and write every file, as USER
        if args.write:
            from analyzer.live.writer import PcapngWriter

            writer = PcapngWriter(args.write, source.linktype, source.snaplen, source.iface, source.filter,
                                  max_bytes=args.write_mb << 20, keep=args.write_keep)
        session = LiveSession(source, spec, catalogue, writer=writer,
                              head_segments=args.head_segments if args.head_segments is not None
                              else DEFAULT_HEAD_SEGMENTS, max_flows=args.max_flows, max_dns=args.max_flows,
                              extra_keep=extra)
        session.engine.on_stop = session.stop  # out of memory: end the capture, report what was read
    except BaseException:
        source.close()
        if writer is not None:
            writer.close()
        raise
    if not args.replay:
        print(f"apple-net live: capturing on {source.iface} ({source.backend}, filter: {spec.origin}); "
              "Ctrl-C ends it with the report", file=sys.stderr, flush=True)
    view = LiveView(enabled=sys.stdout is not None and sys.stdout.isatty() and not args.replay)

    def tick(st: Any) -> None:
        if view.enabled:
            view.update(lambda: view_table(session.rollup.seen, f"apple-net live on {source.iface}: "
                                           + _status_line(st)[6:]))
        else:
            print(_status_line(st), file=sys.stderr, flush=True)

    try:
        session.run(duration=args.duration, tick=tick if not args.replay else None, tick_every=args.report_every)
    finally:
        view.stop()
    report = session.report()
    st = session.status()
    print(f"apple-net live: {session.stopped_by}; " + _status_line(st)[6:], file=sys.stderr)
    if st.dropped:
        print(f"apple-net live: WARNING: {st.dropped} packets were lost before analysis "
              f"(kernel {st.kernel.dropped}, backlog {st.backlog}); see captures[0] in the report", file=sys.stderr)
    _render(report, args)
    return 0


def _drop_root(args: argparse.Namespace) -> None:
    """Give up root for the rest of the run (see analyzer.live.privileges); one line on failure."""
    from pathlib import Path

    import analyzer
    from analyzer.live import privileges

    if args.replay and args.user is None:
        return  # a file needs no root: a replay drops only when asked, like analyze never holds any
    if args.user is not None and args.user in ("root", "0") and os.geteuid() == 0:
        print("apple-net live: WARNING: -Z root: the capture keeps root while it parses untrusted traffic",
              file=sys.stderr)
    target = privileges.drop_target(args.user)
    if target is None:
        if os.geteuid() != 0:
            privileges.drop_capabilities()  # a user allowed by `setcap`: the open handle is all it needs
        return
    privileges.check_readable(target, Path(analyzer.__file__).resolve().parent)
    privileges.check_writable(target, (("-o", args.output), ("--write", args.write)))
    privileges.drop_privileges(target)


def _render(report: dict[str, Any], args: argparse.Namespace) -> None:
    from analyzer.cli.analyze import write_report

    write_report(report, args.format, args.output, wide=args.wide, csv_of=args.csv_of)
