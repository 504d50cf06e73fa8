#!/usr/bin/env python3
"""Capture-engine benchmark: our engine vs tshark and ndpiReader, in one run, on one capture.

    .venv/bin/python bench/bench_engine.py                  # bench/data/bench.pcap (~1.29 M packets)
    .venv/bin/python bench/bench_engine.py --scale 0.05     # quick pilot on the first 5 % of the packets
    .venv/bin/python bench/bench_engine.py --profile        # + per-stage passes and a py-spy profile

Every tool runs as a subprocess under `/usr/bin/time -f '%e %M %U %S'` (wall, peak RSS,
user, sys) after the input was read once into the page cache. Rows:

  ours-cli     .venv/bin/apple-net flows FILE --format jsonl -o /dev/null   (all records, JSON)
  ours-cli-j2  the same with -j 2 (two processes, each keeping half the flows)
  ours-analyze .venv/bin/apple-net analyze FILE --format json -o /dev/null (records + diagnosis)
  ours-api     analyzer.engine.run_engine(FILE) in a child python (no JSON), which also
               reports the counts for the cross-check
  proto-bulk   bench/prototype_bulk.py FILE (the bulk numpy prototype), if present
  tshark-sni   tshark -r FILE -Y tls.handshake.type==1 -T fields -e tls.handshake.extensions_server_name
  ndpi-q       ndpiReader -i FILE -q  (plus one untimed run without -q for its flow count)

each on the 1x capture and, for the memory question, on a 2x capture whose second copy is
rewritten as distinct flows (127.0.x.y -> 127.128.x.y, ::1 -> ::3, time shifted past the
first copy): the "bench2xd" of ../shared/research/perf-baseline.md.

The machine is shared (2 vCPUs): the load average is logged with each run, and the CPU
column (user+sys) is the less noisy measure. Raw results go to bench/results/*.json.
Internal modes used as child processes: --inproc FILE, --stage NAME FILE, --make-2xd.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV_PY = REPO / ".venv" / "bin" / "python"
APPLE_NET = REPO / ".venv" / "bin" / "apple-net"
DEFAULT_INPUT = BENCH / "data" / "bench.pcap"
RESULTS = BENCH / "results"
TIME = "/usr/bin/time"

# ---------------------------------------------------------------------------------------------
# pcap plumbing (classic pcap only: what tcpdump writes and the generator produces)
# ---------------------------------------------------------------------------------------------

_PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1": ("<", 1_000_000), b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
               b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000), b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000)}


def _pcap_header(f: BinaryIO, path: Path) -> tuple[bytes, str, int]:
    head = f.read(24)
    if len(head) < 24 or head[:4] not in _PCAP_MAGIC:
        raise SystemExit(f"{path}: not a classic pcap file (pcapng inputs: convert with editcap -F pcap)")
    endian, frac = _PCAP_MAGIC[head[:4]]
    return head, endian, frac


def iter_records(path: Path) -> Iterator[tuple[int, int, int, bytes]]:
    """(sec, frac, wirelen, data) for every record; stops quietly at a cut record."""
    with open(path, "rb", buffering=1 << 22) as f:
        _, endian, _ = _pcap_header(f, path)
        hdr = struct.Struct(endian + "IIII")
        read = f.read
        while True:
            h = read(16)
            if len(h) < 16:
                return
            sec, frac, caplen, wirelen = hdr.unpack(h)
            data = read(caplen)
            if len(data) < caplen:
                return
            yield sec, frac, wirelen, data


def count_packets(path: Path) -> int:
    n = 0
    with open(path, "rb", buffering=1 << 22) as f:
        _, endian, _ = _pcap_header(f, path)
        unpack = struct.Struct(endian + "IIII").unpack
        while True:
            h = f.read(16)
            if len(h) < 16:
                return n
            f.seek(unpack(h)[2], os.SEEK_CUR)
            n += 1


def write_prefix(src: Path, dst: Path, fraction: float) -> int:
    """The first `fraction` of src's packets (whole flows mostly survive a prefix cut)."""
    total = count_packets(src)
    keep = max(1, int(total * fraction))
    with open(src, "rb") as f:
        head, endian, _ = _pcap_header(f, src)
    pack = struct.Struct(endian + "IIII").pack
    tmp = dst.with_suffix(".tmp")
    with open(tmp, "wb", buffering=1 << 22) as out:
        out.write(head)
        for i, (sec, frac, wirelen, data) in enumerate(iter_records(src)):
            if i >= keep:
                break
            out.write(pack(sec, frac, len(data), wirelen))
            out.write(data)
    tmp.replace(dst)
    return keep


def _ip4_checksum(h: bytearray) -> int:
    s = 0
    for i in range(0, len(h), 2):
        s += (h[i] << 8) | h[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


_V6_LOOP = bytes(15) + b"\x01"


def _distinct(data: bytes) -> bytes:
    """The frame with its flow rewritten onto other addresses (Ethernet + IPv4/IPv6 only).

    127.0.x.y -> 127.128.x.y (IPv4 header checksum recomputed) and ::1 -> ::3. TCP/UDP
    checksums are left as captured: on loopback they are offloaded (partial) already,
    and none of the benchmarked tools checks them.
    """
    if len(data) < 34:
        return data
    b = bytearray(data)
    etype = (b[12] << 8) | b[13]
    if etype == 0x0800:
        ihl = (b[14] & 15) * 4
        changed = False
        for off in (26, 30):
            if b[off] == 127 and b[off + 1] == 0:
                b[off + 1] = 128
                changed = True
        if changed and len(b) >= 14 + ihl:
            b[24] = b[25] = 0
            c = _ip4_checksum(b[14 : 14 + ihl])
            b[24], b[25] = c >> 8, c & 0xFF
    elif etype == 0x86DD and len(b) >= 54:
        for off in (22, 38):
            if b[off : off + 16] == _V6_LOOP:
                b[off + 15] = 3
    return bytes(b)


def make_distinct_double(src: Path, dst: Path) -> int:
    """src followed by a copy of itself as distinct flows, shifted to start after src ends."""
    first = last = None
    for sec, frac, _w, _d in iter_records(src):
        if first is None:
            first = (sec, frac)
        last = (sec, frac)
    if first is None or last is None:
        raise SystemExit(f"{src}: no packets")
    with open(src, "rb") as f:
        head, endian, scale = _pcap_header(f, src)
    span = (last[0] - first[0]) + 2  # whole seconds: the copy starts >= 1 s after the last packet
    pack = struct.Struct(endian + "IIII").pack
    tmp = dst.with_suffix(".tmp")
    n = 0
    with open(tmp, "wb", buffering=1 << 22) as out:
        out.write(head)
        for copy in (0, 1):
            for sec, frac, wirelen, data in iter_records(src):
                if copy:
                    data = _distinct(data)
                    sec += span
                out.write(pack(sec, frac, len(data), wirelen))
                out.write(data)
                n += 1
    tmp.replace(dst)
    del scale
    return n


def prepare_inputs(base: Path, scale: float, want_2x: bool) -> tuple[Path, Path | None]:
    if not base.exists():
        raise SystemExit(f"{base} missing: run bench/make_capture.sh first (see bench/README.md)")
    one = base
    if scale != 1.0:
        one = base.with_name(f"{base.stem}-s{scale:g}.pcap")
        if not one.exists() or one.stat().st_mtime < base.stat().st_mtime:
            print(f"# writing {one.name}: first {scale:g} of {base.name}'s packets", flush=True)
            write_prefix(base.resolve(), one, scale)
    two = None
    if want_2x:
        two = one.with_name(f"{one.stem}-2xd.pcap")
        if not two.exists() or two.stat().st_mtime < one.stat().st_mtime:
            print(f"# writing {two.name}: {one.name} + a distinct-flow copy", flush=True)
            make_distinct_double(one.resolve(), two)
    return one, two


# ---------------------------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------------------------

def warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def measure(cmd: Sequence[str], timeout: float, stdout: Path | None = None) -> dict[str, Any]:
    """Run cmd under /usr/bin/time; wall s, CPU s (user+sys), peak RSS MiB, load average."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf, tempfile.TemporaryFile("w+") as err:
        out = open(stdout, "wb") if stdout is not None else subprocess.DEVNULL  # noqa: SIM115
        load0 = os.getloadavg()[0]
        t0 = time.monotonic()
        try:
            proc = subprocess.run([TIME, "-f", "%e %M %U %S", "-o", tf.name, *cmd], stdout=out, stderr=err,
                                  timeout=timeout, check=False)
            rc: int | str = proc.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        finally:
            if stdout is not None:
                out.close()  # type: ignore[union-attr]
        elapsed = time.monotonic() - t0
        fields = tf.read().split()
        err.seek(0)
        tail = err.read()[-400:]
    res: dict[str, Any] = {"cmd": list(cmd), "rc": rc, "load1_before": load0, "load1_after": os.getloadavg()[0]}
    # GNU time prints "Command exited with non-zero status N" first on failure.
    nums = [x for x in fields if x.replace(".", "", 1).isdigit()][-4:]
    if len(nums) == 4:
        wall, rss_kib, user, sys_ = float(nums[0]), int(nums[1]), float(nums[2]), float(nums[3])
        res.update(wall=wall, cpu=round(user + sys_, 2), user=user, sys=sys_, rss_mib=round(rss_kib / 1024, 1))
    else:
        res.update(wall=round(elapsed, 2), cpu=None, user=None, sys=None, rss_mib=None)
    if rc != 0:
        res["stderr_tail"] = tail
    return res


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if r.get("cpu") is not None and r["rc"] == 0]
    if not ok:
        return runs[-1]
    best = dict(sorted(ok, key=lambda r: r["cpu"])[len(ok) // 2])
    best["n"] = len(ok)
    best["cpu_all"] = [r["cpu"] for r in ok]
    best["wall_all"] = [r["wall"] for r in ok]
    best["wall"] = statistics.median(r["wall"] for r in ok)
    return best


# ---------------------------------------------------------------------------------------------
# child modes: in-process engine (counts), stage passes
# ---------------------------------------------------------------------------------------------

def engine_counts(res: Any) -> dict[str, Any]:
    """What the cross-check compares, from an analyzer.engine.EngineResult."""
    flows = res.flows
    by_proto: collections.Counter[str] = collections.Counter()
    by_app: collections.Counter[str] = collections.Counter()
    sni: collections.Counter[str] = collections.Counter()
    hellos = no_sni = rst_flows = 0
    for f in flows:
        r = f.flow
        by_proto[{6: "tcp", 17: "udp"}.get(r.proto, "other")] += 1
        by_app[f.app or "-"] += 1
        if r.rst_total:
            rst_flows += 1
        t = f.tls
        if t is not None and t.client_hello is not None:
            hellos += 1
            name = t.client_hello.server_name
            if name:
                sni[name] += 1
            else:
                no_sni += 1
    return {
        "packets": sum(c.packets for c in res.captures),
        "flows": len(flows),
        "flows_by_proto": dict(by_proto),
        "flows_by_app": dict(by_app),
        "client_hellos": hellos,
        "client_hellos_without_sni": no_sni,
        "sni": dict(sni.most_common()),
        "dns_transactions": len(res.dns),
        "dns_udp": sum(1 for t in res.dns if t.transport == "udp"),
        "flows_with_rst": rst_flows,
        "weird_total": sum(res.weird.values()),
    }


def _inproc(path: str, out: str, with_output: bool) -> None:
    sys.path.insert(0, str(REPO))
    from analyzer.engine import run_engine

    t0 = time.process_time()
    res = run_engine([path])
    t1 = time.process_time()
    counts = engine_counts(res)
    if with_output:
        from analyzer.cli.flows import _jsonl

        with open(os.devnull, "w") as dn:
            dn.write(_jsonl(res))
    counts["cpu_engine"] = round(t1 - t0, 2)
    counts["cpu_output"] = round(time.process_time() - t1, 2) if with_output else None
    Path(out).write_text(json.dumps(counts))


STAGES = ("walk", "decode", "table", "engine", "output")
STAGE_TEXT = {
    "walk": "reader: iterate RawPackets (analyzer/capture/reader.py)",
    "decode": "+ decode every frame to a Packet (analyzer/capture/decode.py)",
    "table": "+ FlowTable.add for every packet, flush (analyzer/flows/*), no inspection, no DNS",
    "engine": "+ DNS tracker and inspect_flow per finished flow = run_engine (analyzer/engine.py)",
    "output": "+ JSON lines of every record, as `flows --format jsonl` (analyzer/cli/flows.py)",
}


def _stage(name: str, path: str, out: str) -> None:
    """One cumulative stage over the whole file; CPU seconds measured inside the child."""
    sys.path.insert(0, str(REPO))
    from analyzer.capture.decode import Decoder
    from analyzer.capture.reader import open_capture
    from analyzer.flows.table import FlowTable

    gc_time = [0.0, 0, 0.0]  # seconds in the cyclic GC, gen-2 collections, start of the current one

    def _gc_cb(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_time[2] = time.process_time()
        else:
            gc_time[0] += time.process_time() - gc_time[2]
            gc_time[1] += info["generation"] == 2

    gc.callbacks.append(_gc_cb)
    t0 = time.process_time()
    n = 0
    extra: dict[str, Any] = {}
    if name == "walk":
        for _ in open_capture(path):
            n += 1
    elif name == "decode":
        dec = Decoder()
        for raw in open_capture(path):
            dec(raw)
            n += 1
    elif name == "table":
        dec = Decoder()
        table = FlowTable()
        add = table.add
        flows = 0
        for raw in open_capture(path):
            pkt = dec(raw)
            n += 1
            if pkt is not None:
                flows += len(add(pkt))
        flows += len(table.flush())
        extra["flows"] = flows
    else:
        from analyzer.engine import run_engine

        res = run_engine([path])
        n = res.captures[0].packets
        extra["flows"] = len(res.flows)
        if name == "output":
            from analyzer.cli.flows import _jsonl

            t1 = time.process_time()
            text = _jsonl(res)
            extra["cpu_output_only"] = round(time.process_time() - t1, 2)
            extra["json_bytes"] = len(text)
    cpu = round(time.process_time() - t0, 2)
    gc.callbacks.remove(_gc_cb)
    Path(out).write_text(json.dumps({"stage": name, "packets": n, "cpu_inside": cpu, "gc_cpu": round(gc_time[0], 2),
                                     "gc_gen2": gc_time[1], **extra}))


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------

def _tshark_counts(path: Path) -> dict[str, Any]:
    names: collections.Counter[str] = collections.Counter()
    lines = no_sni = 0
    for line in path.read_text(errors="replace").splitlines():
        lines += 1
        # one line per frame with a ClientHello; several hellos in one frame: comma separated
        vals = line.split(",") if line else [""]
        for v in vals:
            if v:
                names[v] += 1
            else:
                no_sni += 1
    return {"client_hello_frames": lines, "sni": dict(names.most_common()), "without_sni": no_sni,
            "client_hellos": sum(names.values()) + no_sni}


def _ndpi_flows(path: Path, timeout: float) -> int | None:
    try:
        p = subprocess.run(["ndpiReader", "-i", str(path)], capture_output=True, text=True, timeout=timeout,
                           check=False)
    except subprocess.TimeoutExpired:
        return None
    for line in p.stdout.splitlines():
        if "Unique flows:" in line:
            return int(line.split(":")[1].split()[0])
    return None


def _source_state() -> str:
    """The engine measured: commit and uncommitted files (others edit the tree meanwhile)."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "analyzer"], capture_output=True,
                               text=True, check=False).stdout.split("\n")
        dirty = [ln[3:] for ln in dirty if ln.strip()]
        return f"{head}" + (f" + uncommitted {', '.join(dirty)}" if dirty else "")
    except OSError:
        return "unknown"


def run(args: argparse.Namespace) -> dict[str, Any]:
    one, two = prepare_inputs(Path(args.input), args.scale, not args.no_2x)
    inputs = {"1x": one} | ({"2xd": two} if two is not None else {})
    packets = {k: count_packets(v) for k, v in inputs.items()}
    print("# inputs: " + ", ".join(f"{k}={v.name} ({packets[k]:,} packets, {v.stat().st_size / 1e6:.0f} MB)"
                                    for k, v in inputs.items()), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-engine-", dir=RESULTS))
    tools = [t for t in args.tools.split(",") if t]
    if not (BENCH / "prototype_bulk.py").exists():
        tools = [t for t in tools if not t.startswith("proto-bulk")]
    rows: list[dict[str, Any]] = []
    cross: dict[str, Any] = {}
    for label, path in inputs.items():
        warm(path)
        for tool in tools:
            if label == "2xd" and tool == "tshark-sni" and not args.tshark_2x:
                continue
            stdout = None
            if tool == "ours-cli":
                cmd = [str(APPLE_NET), "flows", str(path), "--format", "jsonl", "-o", "/dev/null"]
            elif tool == "ours-cli-j2":
                cmd = [str(APPLE_NET), "flows", str(path), "--format", "jsonl", "-o", "/dev/null", "-j", "2"]
            elif tool == "ours-analyze":
                cmd = [str(APPLE_NET), "analyze", str(path), "--format", "json", "-o", "/dev/null"]
            elif tool == "ours-api":
                cmd = [str(VENV_PY), str(Path(__file__).resolve()), "--inproc", str(path),
                       "--out", str(work / f"ours-{label}.json")]
            elif tool in ("proto-bulk", "proto-bulk-2w"):
                cmd = [str(VENV_PY), str(BENCH / "prototype_bulk.py"), str(path),
                       "--counts-out", str(work / f"{tool}-{label}.json")]
                if tool == "proto-bulk-2w":
                    cmd += ["--workers", "2"]
            elif tool == "tshark-sni":
                cmd = ["tshark", "-r", str(path), "-Y", "tls.handshake.type==1", "-T", "fields",
                       "-e", "tls.handshake.extensions_server_name"]
                stdout = work / f"tshark-{label}.txt"
            elif tool == "ndpi-q":
                cmd = ["ndpiReader", "-i", str(path), "-q"]
            else:
                raise SystemExit(f"unknown tool {tool}")
            runs = []
            for i in range(args.runs):
                print(f"# {tool} {label} run {i + 1}/{args.runs} (load {os.getloadavg()[0]:.1f}) ...", end=" ",
                      flush=True)
                r = measure(cmd, args.timeout, stdout)
                print(f"wall {r['wall']} s, cpu {r['cpu']} s, rss {r['rss_mib']} MiB, rc {r['rc']}", flush=True)
                runs.append(r)
            row = _median_run(runs) | {"tool": tool, "input": label, "packets": packets[label]}
            rows.append(row)
            if tool == "tshark-sni" and stdout is not None and stdout.exists():
                cross[f"tshark-{label}"] = _tshark_counts(stdout)
            if tool in ("ours-api", "proto-bulk", "proto-bulk-2w"):
                f = work / (f"ours-{label}.json" if tool == "ours-api" else f"{tool}-{label}.json")
                if f.exists():
                    cross[f"{tool}-{label}"] = json.loads(f.read_text())
            if tool == "ndpi-q":
                cross[f"ndpi-{label}"] = {"unique_flows": _ndpi_flows(path, args.timeout)}
    result = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "host_cpus": os.cpu_count(), "source": _source_state(),
              "inputs": {k: str(v) for k, v in inputs.items()}, "packets": packets, "rows": rows, "cross": cross}
    if args.profile:
        result["stages"] = profile_stages(one, args, work)
    shutil.rmtree(work, ignore_errors=True)
    return result


def profile_stages(path: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Cumulative stage passes (differences = per-stage cost) and a py-spy profile of the last."""
    out: dict[str, Any] = {"passes": [], "pyspy": None}
    warm(path)
    for st in STAGES:
        res_file = work / f"stage-{st}.json"
        cmd = [str(VENV_PY), str(Path(__file__).resolve()), "--stage", st, str(path), "--out", str(res_file)]
        print(f"# stage {st} (load {os.getloadavg()[0]:.1f}) ...", end=" ", flush=True)
        r = measure(cmd, args.timeout)
        inside = json.loads(res_file.read_text()) if res_file.exists() else {}
        print(f"cpu {r['cpu']} s (inside {inside.get('cpu_inside')}), rss {r['rss_mib']} MiB", flush=True)
        out["passes"].append(r | {"stage": st, "inside": inside})
    spy = REPO / ".venv" / "bin" / "py-spy"
    if spy.exists():
        raw = work / "pyspy.txt"
        cmd = [str(spy), "record", "-r", "100", "-f", "raw", "-o", str(raw), "--", str(VENV_PY),
               str(Path(__file__).resolve()), "--stage", "output", str(path), "--out", str(work / "spy.json")]
        print("# py-spy record of the output stage ...", flush=True)
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=args.timeout, check=False)
        if raw.exists():
            out["pyspy"] = attribute_pyspy(raw)
            keep = RESULTS / f"pyspy-{time.strftime('%Y%m%d-%H%M%S')}.txt"
            shutil.copy(raw, keep)
            out["pyspy"]["raw"] = str(keep)
    return out


# Inclusive attribution of py-spy stacks to stages: the first rule (outermost first) whose
# marker appears in a stack wins, so e.g. DNS parsing under inspect counts as inspect.
_RULES = (
    ("output: JSON lines (flow_dict/dns_dict + json.dumps)", ("_jsonl (",)),
    ("inspect: inspect_flow (TLS/HTTP/QUIC parse, JA3/JA4, X.509)", ("inspect_flow (",)),
    ("DNS: DNSTracker.feed / DNS over TCP", ("feed (analyzer/dnsmap.py", "_dns_over_tcp (")),
    ("flow table: records at flow end (_finish/_record)", ("_finish (analyzer/flows/table.py",)),
    ("flow table: per-packet state (add, TCP session, reassembly)", ("add (analyzer/flows/table.py",)),
    ("decode: Decoder/decode to Packet", ("__call__ (analyzer/capture/decode.py", "decode (analyzer/capture/")),
    ("reader: pcap record walk (RawPacket)", ("_iter_pcap (", "iter_pcapng (")),
    ("engine: feed() loop and glue", ("feed (analyzer/engine.py", "read (analyzer/engine.py")),
    ("result sort, NameMap, finish", ("finish (analyzer/engine.py", "run_engine (")),
)


def attribute_pyspy(raw: Path) -> dict[str, Any]:
    stages: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        for name, markers in _RULES:
            if any(m in stack for m in markers):
                stages[name] += n
                break
        else:
            stages["other (imports, interpreter start, gc)"] += n
        leaf = stack.rsplit(";", 1)[-1]
        leaves[leaf.split(" (")[0] + " (" + leaf.split("(")[-1].split(":")[0] + ")"] += n
    return {"samples": total,
            "stages": {k: round(100 * v / total, 1) for k, v in stages.most_common()} if total else {},
            "top_self": [(k, round(100 * v / total, 1)) for k, v in leaves.most_common(25)] if total else []}


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------

def _f(x: Any, nd: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def report(result: dict[str, Any]) -> str:
    rows = result["rows"]
    lines = [f"engine source: {result.get('source', '?')}; machine: {result.get('host_cpus')} CPUs, shared", ""]
    by = {(r["tool"], r["input"]): r for r in rows}
    lines.append("| tool | input | packets | wall s | CPU s | peak RSS MiB | kpkt/CPU-s | load1 | n |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        kpps = r["packets"] / r["cpu"] / 1e3 if r.get("cpu") else None
        lines.append(f"| {r['tool']} | {r['input']} | {r['packets']:,} | {_f(r['wall'])} | {_f(r.get('cpu'))} | "
                     f"{_f(r.get('rss_mib'), 0)} | {_f(kpps, 0)} | {_f(r['load1_before'], 1)} | {r.get('n', 1)}"
                     + ("" if r["rc"] == 0 else f" rc={r['rc']}") + " |")
    lines.append("")
    lines.append("Speed ratios on 1x (other tool's time / ours: > 1 means ours is faster; targets: "
                 "vs ndpiReader > 1, vs tshark >= 10):")
    lines.append("")
    lines.append("| ours | vs | wall ratio | CPU ratio |")
    lines.append("|---|---|---:|---:|")
    for ours in ("ours-cli", "ours-cli-j2", "ours-api", "ours-analyze", "proto-bulk", "proto-bulk-2w"):
        o = by.get((ours, "1x"))
        if o is None or not o.get("cpu"):
            continue
        for peer in ("tshark-sni", "ndpi-q"):
            p = by.get((peer, "1x"))
            if p is None or not p.get("cpu"):
                continue
            lines.append(f"| {ours} | {peer} | {p['wall'] / o['wall']:.2f}x | {p['cpu'] / o['cpu']:.2f}x |")
    lines.append("")
    lines.append("Peak memory, 1x -> 2xd (distinct flows; target < 500 MiB and flat):")
    lines.append("")
    lines.append("| tool | RSS 1x MiB | RSS 2xd MiB | 2xd/1x |")
    lines.append("|---|---:|---:|---:|")
    for tool in dict.fromkeys(r["tool"] for r in rows):
        a, b = by.get((tool, "1x")), by.get((tool, "2xd"))
        if a and b and a.get("rss_mib") and b.get("rss_mib"):
            lines.append(f"| {tool} | {a['rss_mib']:.0f} | {b['rss_mib']:.0f} | {b['rss_mib'] / a['rss_mib']:.2f} |")
    lines.append("")
    lines.append("Targets (issue 3): CPU faster than ndpiReader, >= 10x faster than tshark, peak RSS < 500 MiB, "
                 "2xd/1x RSS <= 1.1:")
    for ours in ("ours-cli", "ours-cli-j2", "proto-bulk", "proto-bulk-2w"):
        o, o2 = by.get((ours, "1x")), by.get((ours, "2xd"))
        nd, ts = by.get(("ndpi-q", "1x")), by.get(("tshark-sni", "1x"))
        if not o or not o.get("cpu"):
            continue
        verdict = []
        # Several processes only gain in wall time, so those rows are judged on both.
        kinds = ("cpu", "wall") if ours.endswith(("-j2", "-2w")) else ("cpu",)
        for k in kinds:
            if nd and nd.get(k):
                verdict.append(f"{k} vs ndpiReader {nd[k] / o[k]:.2f}x {'MET' if o[k] < nd[k] else 'not met'}")
            if ts and ts.get(k):
                verdict.append(f"{k} vs tshark {ts[k] / o[k]:.1f}x {'MET' if ts[k] >= 10 * o[k] else 'not met'}")
        verdict.append(f"RSS {o['rss_mib']:.0f} MiB {'MET' if o['rss_mib'] < 500 else 'not met'}")
        if o2 and o2.get("rss_mib"):
            flat = o2["rss_mib"] / o["rss_mib"]
            verdict.append(f"2xd/1x {flat:.2f} {'MET' if flat <= 1.1 else 'not met'}")
        lines.append(f"- {ours}: " + "; ".join(verdict))
    cross = result.get("cross", {})
    lines.append("")
    lines.append("Cross-check:")
    for label in ("1x", "2xd"):
        ours, ts, nd = cross.get(f"ours-api-{label}"), cross.get(f"tshark-{label}"), cross.get(f"ndpi-{label}")
        bulk = cross.get(f"proto-bulk-{label}")
        bulk2 = cross.get(f"proto-bulk-2w-{label}")
        if ours:
            lines.append(f"- {label} ours: {ours['flows']:,} flows {ours['flows_by_proto']}, "
                         f"{ours['client_hellos']:,} ClientHellos ({ours['client_hellos_without_sni']:,} without SNI), "
                         f"{ours['dns_transactions']:,} DNS transactions, {ours['flows_with_rst']:,} flows with RST")
        if ts:
            lines.append(f"- {label} tshark: {ts['client_hellos']:,} ClientHellos "
                         f"({ts['without_sni']:,} without SNI) in {ts['client_hello_frames']:,} frames")
        if ours and ts:
            names = sorted(set(ours["sni"]) | set(ts["sni"]))
            diff = {n: (ours["sni"].get(n, 0), ts["sni"].get(n, 0)) for n in names
                    if ours["sni"].get(n, 0) != ts["sni"].get(n, 0)}
            lines.append(f"  SNI per name ours vs tshark: {'identical' if not diff else diff}; "
                         f"ClientHellos ours - tshark = {ours['client_hellos'] - ts['client_hellos']:+d}")
        if nd and nd.get("unique_flows") is not None:
            extra = f" (ours {ours['flows']:,}: {ours['flows'] - nd['unique_flows']:+,})" if ours else ""
            lines.append(f"- {label} nDPI unique flows: {nd['unique_flows']:,}{extra}")
        for name, b in (("prototype", bulk), ("prototype, 2 processes", bulk2)):
            if not b:
                continue
            lines.append(f"- {label} {name}: {b.get('summary', b)}")
            if ours:
                same = {k: b[k] == ours[k] for k in ("flows", "flows_by_proto", "client_hellos",
                                                      "client_hellos_without_sni", "sni", "flows_with_rst")}
                same["dns (udp)"] = b["dns_transactions"] == ours.get("dns_udp")
                lines.append(f"  same as ours-api: {'all' if all(same.values()) else same}")
    st = result.get("stages")
    if st:
        lines.append("")
        lines.append("Per-stage cost on 1x (cumulative passes, CPU s measured inside the child; "
                     "difference = the stage's own cost):")
        lines.append("")
        lines.append("| pass | CPU s | stage's own CPU s | of which GC s (whole pass) | peak RSS MiB | what |")
        lines.append("|---|---:|---:|---:|---:|---|")
        prev = 0.0
        for p in st["passes"]:
            inside = p["inside"].get("cpu_inside")
            own = inside - prev if inside is not None else None
            if p["stage"] == "output" and p["inside"].get("cpu_output_only") is not None:
                own = p["inside"]["cpu_output_only"]
            lines.append(f"| {p['stage']} | {_f(inside)} | {_f(own)} | {_f(p['inside'].get('gc_cpu'))} | "
                         f"{_f(p.get('rss_mib'), 0)} | "
                         f"{STAGE_TEXT[p['stage']]} |")
            if inside is not None and p["stage"] != "output":
                prev = inside
        spy = st.get("pyspy")
        if spy:
            lines.append("")
            lines.append(f"py-spy, output pass ({spy['samples']:,} samples at 100 Hz), inclusive share per stage:")
            for k, v in spy["stages"].items():
                lines.append(f"  {v:5.1f}%  {k}")
            lines.append("  top self-time functions:")
            for k, v in spy["top_self"][:15]:
                lines.append(f"  {v:5.1f}%  {k}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", default=str(DEFAULT_INPUT), help="classic pcap (default: %(default)s)")
    ap.add_argument("--scale", type=float, default=1.0, help="use only this leading fraction of the packets")
    ap.add_argument("--runs", type=int, default=1, help="runs per measured command (median reported)")
    ap.add_argument("--tools", default="ours-cli,ours-cli-j2,ours-api,ours-analyze,proto-bulk,proto-bulk-2w,"
                    "tshark-sni,ndpi-q")
    ap.add_argument("--no-2x", action="store_true", help="skip the 2x distinct-flow capture")
    ap.add_argument("--tshark-2x", action="store_true", help="also run tshark on 2xd (~2x its 1x time)")
    ap.add_argument("--profile", action="store_true", help="per-stage passes + py-spy on the 1x input")
    ap.add_argument("--timeout", type=float, default=1800.0, help="per command, seconds")
    ap.add_argument("--table-only", metavar="RESULT_JSON", help="print the tables of a saved result")
    # child modes
    ap.add_argument("--inproc", metavar="FILE", help=argparse.SUPPRESS)
    ap.add_argument("--stage", nargs=2, metavar=("NAME", "FILE"), help=argparse.SUPPRESS)
    ap.add_argument("--with-output", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--make-2xd", nargs=2, metavar=("SRC", "DST"), help="write DST = SRC + distinct-flow copy")
    args = ap.parse_args(argv)
    if args.inproc:
        _inproc(args.inproc, args.out, args.with_output)
        return 0
    if args.stage:
        _stage(args.stage[0], args.stage[1], args.out)
        return 0
    if args.make_2xd:
        n = make_distinct_double(Path(args.make_2xd[0]), Path(args.make_2xd[1]))
        print(f"{args.make_2xd[1]}: {n:,} packets")
        return 0
    if args.table_only:
        print(report(json.loads(Path(args.table_only).read_text())))
        return 0
    result = run(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    dest = RESULTS / f"engine-{time.strftime('%Y%m%d-%H%M%S')}.json"
    dest.write_text(json.dumps(result, indent=1))
    print()
    print(report(result))
    print(f"\n(raw: {dest.relative_to(REPO)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
