"""`apple-net flows FILE...`: the engine's per-flow and per-DNS-transaction records."""

from __future__ import annotations

import argparse
import json
from typing import Any

from analyzer.cli.output import write_text
from analyzer.engine import EngineResult, run_engine
from analyzer.report.records import capture_dict, dns_dict, flow_dict
from analyzer.report.terminal import make_console, plain_table


def register(sub: Any) -> None:
    p = sub.add_parser("flows", help="list every flow and DNS transaction the engine extracts from captures",
                       description="Decode captures (pcap, pcapng, .gz) and print one record per flow "
                       "(Zeek conn_state/history, SNI, TLS, QUIC, HTTP, NTP, RSTs, ICMP) and per DNS transaction.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", choices=("table", "json", "jsonl"), default="table")
    p.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of stdout")
    p.set_defaults(func=cmd_flows)


def result_dict(res: EngineResult) -> dict[str, Any]:
    return {"captures": [capture_dict(c) for c in res.captures], "flows": [flow_dict(f) for f in res.flows],
            "dns": [dns_dict(t) for t in res.dns], "weird": dict(sorted(res.weird.items()))}


def _jsonl(res: EngineResult) -> str:
    lines = []
    for c in res.captures:
        lines.append(json.dumps({"event_type": "capture", **capture_dict(c)}))
    for f in res.flows:
        d = flow_dict(f)
        lines.append(json.dumps({"timestamp": d["ts_start"], "event_type": "flow", "flow_id": d["id"],
                                 "community_id": d["community_id"], "proto": d["proto"],
                                 "src_ip": d["client"]["ip"], "src_port": d["client"]["port"],
                                 "dest_ip": d["server"]["ip"], "dest_port": d["server"]["port"], "flow": d}))
    for t in res.dns:
        d = dns_dict(t)
        lines.append(json.dumps({"timestamp": d["ts"], "event_type": "dns", "proto": d["transport"],
                                 "src_ip": d["client"]["ip"], "src_port": d["client"]["port"],
                                 "dest_ip": d["server"]["ip"], "dest_port": d["server"]["port"], "dns": d}))
    return "".join(line + "\n" for line in lines)


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


def cmd_flows(args: argparse.Namespace) -> int:
    res = run_engine(args.files)
    if args.format == "json":
        write_text(json.dumps(result_dict(res), indent=1) + "\n", args.output)
    elif args.format == "jsonl":
        write_text(_jsonl(res), args.output)
    else:
        write_text(_table(res), args.output)
    return 0
