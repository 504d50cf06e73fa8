"""`apple-net flows FILE...`: the engine's per-flow and per-DNS-transaction records."""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from typing import Any

from analyzer.capture.reader import STDIN
from analyzer.cli.analyze import MAX_MEMORY_HELP, add_max_bytes, check_inputs, engine_config, memory_mb
from analyzer.cli.options import workers
from analyzer.cli.output import open_binary_output, write_text
from analyzer.dnsmap import DNSTransaction
from analyzer.engine import EngineConfig, EngineResult, run_engine, set_memory_limit
from analyzer.errors import AnalyzerError
from analyzer.inspect import FlowFacts
from analyzer.parallel import can_fork, stream_lines, write_records
from analyzer.report.jsonl import dns_event, envelope, flow_event, json_line, neighbor_event
from analyzer.report.records import capture_dict, dns_dict, flow_dict, neighbor_dict
from analyzer.report.terminal import make_console, plain_table


def register(sub: Any) -> None:
    p = sub.add_parser("flows", help="list every flow and DNS transaction the engine extracts from captures",
                       description="Decode captures (pcap, pcapng, .gz) and print one record per flow "
                       "(Zeek conn_state/history, SNI, TLS, QUIC, HTTP, NTP, RSTs, ICMP) and per DNS transaction.")
    p.add_argument("files", nargs="+", metavar="FILE", help="pcap, pcapng or .gz captures; - for standard input")
    p.add_argument("--format", choices=("table", "json", "jsonl"), default="table")
    p.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of stdout")
    p.add_argument("-j", "--workers", type=workers, default=1, metavar="N",
                   help="with --format jsonl: split the flows across N processes (each reads the whole "
                   "capture; flows then come in no fixed order). Default 1")
    add_max_bytes(p)
    p.add_argument("--max-memory", type=memory_mb, metavar="MB", help=MAX_MEMORY_HELP)
    p.set_defaults(func=cmd_flows)


def result_dict(res: EngineResult) -> dict[str, Any]:
    return {"captures": [capture_dict(c) for c in res.captures], "flows": [flow_dict(f) for f in res.flows],
            "dns": [dns_dict(t) for t in res.dns], "neighbors": [neighbor_dict(b) for b in res.neighbors],
            "weird": dict(sorted(res.weird.items()))}


def _flow_line(f: FlowFacts) -> bytes:
    return json_line(flow_event(flow_dict(f)))


def _dns_line(t: DNSTransaction) -> bytes:
    return json_line(dns_event(dns_dict(t)))


def _stream_jsonl(files: list[str], path: str | None, workers: int, config: EngineConfig | None = None) -> None:
    """EVE-like JSON lines, each flow written as it finishes: memory stays flat on any capture.

    Flows come in the order they end (as Zeek's conn.log) and DNS transactions
    as they complete, then one "capture" event per file, one "neighbor" event per
    ARP/NDP binding, and a closing "stats" event with the counts and weirds.
    """
    with open_binary_output(path) as out:
        if workers > 1 and can_fork():
            total = stream_lines(files, workers, out, _flow_line, _dns_line, config)
        else:
            total = write_records(files, out.write, _flow_line, _dns_line, config)
        for c in total.captures:
            out.write(json_line(envelope("capture", c.first_ts, capture_dict(c))))
        for b in total.neighbors:
            out.write(json_line(neighbor_event(neighbor_dict(b))))
        last = max((c.last_ts for c in total.captures if c.last_ts is not None), default=None)
        stats = {"flows": total.flows, "dns": total.dns, "weird": dict(sorted(total.weird.items()))}
        out.write(json_line(envelope("stats", last, stats)))


def _table(res: EngineResult) -> str:
    console = make_console()
    rows = []
    for f in res.flows:
        d = flow_dict(f)
        tls = d["tls"] or {}
        alert = tls.get("alert")
        rows.append((d["uid"], d["proto"], f"{d['client']['ip']}:{d['client']['port']}",
                     f"{d['server']['ip']}:{d['server']['port']}", d["state"] or "-", d["history"] or "-",
                     d["app"] or "-", d["sni"] or (d["proxy"] or {}).get("connect_target") or "-",
                     tls.get("version") or (d["quic"] or {}).get("version") or "-",
                     f"{alert['from']}:{alert['description']}" if alert else "-",
                     f"{d['packets']['c2s']}/{d['packets']['s2c']}"))
    out = [console.render_to_text(plain_table(
        ("uid", "proto", "client", "server", "state", "history", "app", "name", "version", "alert", "pkts c/s"),
        rows, title=f"{len(rows)} flows"))]
    drows = [(f"{t.ts:.6f}", t.client_ip, t.server_ip, t.transport, t.query, t.qtype, t.rcode or "no response",
              " -> ".join(t.chain[1:]) or "-", ", ".join(t.addresses) or "-") for t in res.dns]
    out.append(console.render_to_text(plain_table(
        ("ts", "client", "server", "via", "query", "type", "rcode", "CNAME chain", "addresses"),
        drows, title=f"{len(drows)} DNS transactions")))
    for c in res.captures:
        flags = " (truncated: the file ends inside a record)" if c.truncated else ""
        out.append(f"{c.source}: {c.format}, {c.packets} packets, link types {', '.join(c.link_types)}{flags}\n")
    if res.weird:
        out.append("weird: " + ", ".join(f"{k}={v}" for k, v in sorted(res.weird.items())) + "\n")
    return "".join(out)


def _streams(files: list[str]) -> list[str]:
    """The inputs that are no regular file (stdin, a pipe, a FIFO, <(...)): they can be read only once."""
    out = []
    for f in files:
        try:
            regular = f != STDIN and stat.S_ISREG(os.stat(f).st_mode)
        except OSError:
            regular = True  # a missing file: reading it says so
        if not regular:
            out.append(f)
    return out


def cmd_flows(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise AnalyzerError("--workers must be at least 1")
    check_inputs(args.files)
    streams = _streams(args.files)
    if args.workers > 1 and streams:
        # Every worker reads the whole capture: a stream cannot be read by several processes.
        print(f"apple-net: {streams[0]} is a stream, not a file: reading it in one process (-j {args.workers} "
              "needs regular files)", file=sys.stderr)
        args.workers = 1
    set_memory_limit(args.max_memory)
    if args.format == "jsonl":
        _stream_jsonl(args.files, args.output, args.workers, engine_config(args))
        return 0
    res = run_engine(args.files, engine_config(args))
    if args.format == "json":
        write_text(json.dumps(result_dict(res), indent=1) + "\n", args.output)
    else:
        write_text(_table(res), args.output)
    return 0
