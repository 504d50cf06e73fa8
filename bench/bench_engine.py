#!/usr/bin/env python3
"""Capture-engine benchmark (issues 3 and 15): our two engines against tshark, ndpiReader and the
libpcap floor, in one run, on one capture and on its doubled distinct-flow copy.

    BENCH_DATA=/var/tmp/bench .venv/bin/python bench/bench_engine.py            # 1x + 2xd, every row
    BENCH_DATA=/var/tmp/bench .venv/bin/python bench/bench_engine.py --scale 0.05   # pilot: first 5 %
    python3 bench/bench_engine.py --venv /work/main/.venv --input /var/tmp/bench/bench.pcap
    .venv/bin/python bench/bench_engine.py --profile   # + the Python engine's stage passes and py-spy

Every row runs as a subprocess under `/usr/bin/time -f '%e %M %U %S'` (wall, peak RSS, user,
sys) after the input was read once into the page cache. Rows (--tools; default all but the
-py in-process and -j2-py rows):

  ours-analyze     apple-net analyze FILE --format json -o /dev/null --engine native
  ours-analyze-py  the same with --engine python (the reference engine)
  ours-cli         apple-net flows FILE --format jsonl -o /dev/null --engine native
  ours-cli-py      the same with --engine python
  ours-cli-j2      ours-cli with -j 2 (two processes, each keeping half the flows); ours-cli-j2-py
  ours-api         analyzer.engine.run_engine(FILE) with the native engine in a child python, no
                   JSON: the whole engine (core + inspection, DNS, neighbours in Python); it also
                   gives the counts for the cross-check. ours-api-py: the Python engine.
  core-feed        the compiled core alone in a child python: the file's chunks (reader.chunks())
                   fed to anc_feed, the event buffers left unread (no Python per event); a pass
                   that only reads the chunks is timed first and subtracted
  core-events      core-feed plus copying each event buffer and decoding it into the Python
                   engine's values (analyzer.native.events.read_events), which are then dropped
  tshark-sni       tshark -r FILE -Y tls.handshake.type==1 -T fields -e tls.handshake.extensions_server_name
  ndpi-q           ndpiReader -i FILE -q  (plus one untimed run without -q for its flow count)
  tcpdump-floor    tcpdump -r FILE -n 'ether proto 0x1234': libpcap reads every record and runs the
                   BPF filter on it in user space (offline reads are filtered by libpcap, not the
                   kernel); nothing matches, so nothing is printed (checked: the row records its
                   output bytes, 0). No -w: run as root, tcpdump chowns its -w file to the user
                   tcpdump, /dev/null included.

each on the 1x capture and on a 2x capture whose second copy is rewritten as distinct flows
(127.0.x.y -> 127.128.x.y, ::1 -> ::3, time shifted past the first copy): the "bench2xd" of
../shared/research/perf-baseline.md. A row whose tool is missing (tshark, ndpiReader, tcpdump,
the compiled core) is reported as skipped, with the reason.

Which code is measured: the apple-net and python of --venv (default $BENCH_VENV, else this tree's
.venv), importing whatever tree that venv has installed, or --tree (PYTHONPATH). The header of
the results records that tree's commit and uncommitted files, and the core library loaded.

The machine is shared (2 vCPUs): the load average is logged with each run, and the CPU
column (user+sys) is the less noisy measure; the issue's targets are on wall time, within one
run. Raw results go to bench/results/engine-*.json. Internal modes used as child processes:
--child MODE FILE, --stage NAME FILE, --make-2xd.
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
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SELF = Path(__file__).resolve()
DATA = Path(os.environ.get("BENCH_DATA") or BENCH / "data")
DEFAULT_INPUT = DATA / "bench.pcap"
DEFAULT_VENV = Path(os.environ.get("BENCH_VENV") or REPO / ".venv")
RESULTS = BENCH / "results"
TIME = "/usr/bin/time"

# Our command-line rows: tool -> (subcommand, --format, engine, extra arguments).
OURS_CLI: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "ours-analyze": ("analyze", "json", "native", ()),
    "ours-analyze-py": ("analyze", "json", "python", ()),
    "ours-cli": ("flows", "jsonl", "native", ()),
    "ours-cli-py": ("flows", "jsonl", "python", ()),
    "ours-cli-j2": ("flows", "jsonl", "native", ("-j", "2")),
    "ours-cli-j2-py": ("flows", "jsonl", "python", ("-j", "2")),
}
# Our in-process rows (a child python running this file): tool -> (--child mode, engine).
OURS_CHILD: dict[str, tuple[str, str]] = {
    "ours-api": ("engine", "native"),
    "ours-api-py": ("engine", "python"),
    "core-feed": ("feed", "native"),
    "core-events": ("events", "native"),
}
PEERS = {"tshark-sni": "tshark", "ndpi-q": "ndpiReader", "tcpdump-floor": "tcpdump"}
FLOOR_FILTER = "ether proto 0x1234"  # no frame of the capture has this EtherType: matches nothing
DEFAULT_TOOLS = ("ours-analyze,ours-analyze-py,ours-cli,ours-cli-py,ours-cli-j2,ours-api,core-feed,core-events,"
                 "tshark-sni,ndpi-q,tcpdump-floor")
ALL_TOOLS = (*OURS_CLI, *OURS_CHILD, *PEERS)

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


def measure(cmd: Sequence[str], timeout: float, stdout: Path | None = None,
            env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run cmd under /usr/bin/time; wall s, CPU s (user+sys), peak RSS MiB, load average."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf, tempfile.TemporaryFile("w+") as err:
        out = open(stdout, "wb") if stdout is not None else subprocess.DEVNULL  # noqa: SIM115
        load0 = os.getloadavg()[0]
        t0 = time.monotonic()
        try:
            proc = subprocess.run([TIME, "-f", "%e %M %U %S", "-o", tf.name, *cmd], stdout=out, stderr=err,
                                  timeout=timeout, check=False, env=env)
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
# child modes: the whole engine in-process (counts), the core alone, stage passes
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


def _engine_config(engine: str | None) -> Any:
    from analyzer.engine import EngineConfig

    return EngineConfig(engine=engine) if engine else EngineConfig()


def _json_lines(res: Any) -> bytes:
    """Every flow and DNS line as `flows --format jsonl` writes them (whichever helper this tree has)."""
    from analyzer.cli import flows as cli_flows

    if hasattr(cli_flows, "_jsonl"):  # trees before the streaming writer
        text = cli_flows._jsonl(res)
        return text.encode() if isinstance(text, str) else text
    return (b"".join(map(cli_flows._flow_line, res.flows)) + b"".join(map(cli_flows._dns_line, res.dns)))


def _child_engine(path: str, engine: str | None, out: str) -> None:
    """The whole engine (run_engine, no JSON): CPU measured inside, after the imports."""
    from analyzer.engine import run_engine

    config = _engine_config(engine)
    t0, w0 = time.process_time(), time.perf_counter()
    res = run_engine([path], config)
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    counts = engine_counts(res)
    counts.update(engine=engine or "default", cpu_inside=round(cpu, 3), wall_inside=round(wall, 3))
    Path(out).write_text(json.dumps(counts))


def _child_core(path: str, mode: str, out: str) -> None:
    """The compiled core alone: NativeEngine.read and finish, whose per-chunk event handler is
    replaced (mode "feed": the event buffer is left unread, only its length is taken; "events":
    it is copied and decoded into the Python engine's values, which are then dropped). So the
    calls into the core are the engine's own, and nothing of the Python engine runs behind them
    (no inspection, DNS tracker, neighbours, records list).

    A pass that only reads the file's chunks runs first; its CPU is reported apart and taken off
    (`cpu_core`). The engine's internals used here (`_events`, `_lib`, `_h`, `_len`, `_buffer`)
    are NativeEngine's (analyzer/native/engine.py): a change there shows up as a failed row.
    """
    import contextlib
    import ctypes

    from analyzer.capture.reader import open_capture
    from analyzer.native.engine import NativeEngine
    from analyzer.native.events import EV_ARP, EV_DNS, EV_FLOW, EV_NDP, read_events

    try:
        from analyzer.engine import relaxed_gc
    except ImportError:
        relaxed_gc = contextlib.nullcontext  # type: ignore[assignment]
    names = {EV_FLOW: "flow", EV_DNS: "dns", EV_ARP: "arp", EV_NDP: "ndp"}
    kinds: collections.Counter[str] = collections.Counter()
    calls = [0, 0]  # event-buffer reads, their bytes

    class CoreOnly(NativeEngine):  # type: ignore[misc]
        def _events(self) -> None:
            calls[0] += 1
            if mode == "events":
                buf = self._buffer(self._lib.anc_events)
                calls[1] += len(buf)
                for kind, _value in read_events(buf):
                    kinds[names.get(kind, str(kind))] += 1
            else:
                self._lib.anc_events(self._h, ctypes.byref(self._len))
                calls[1] += self._len.value

    # 1. the chunks alone (the file is in the page cache)
    t0, w0 = time.process_time(), time.perf_counter()
    reader = open_capture(path)
    nbytes = 0
    for chunk in reader.chunks():
        nbytes += len(chunk)
    reader.close()
    cpu_read, wall_read = time.process_time() - t0, time.perf_counter() - w0

    # 2. the core, fed as NativeEngine feeds it
    with relaxed_gc():
        t0, w0 = time.process_time(), time.perf_counter()
        engine = CoreOnly(_engine_config("native"))
        summary = engine.read(path)
        engine.finish()
        cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    Path(out).write_text(json.dumps({
        "mode": mode, "format": summary.format, "packets": summary.packets, "file_bytes": nbytes,
        "event_reads": calls[0], "event_bytes": calls[1], "events": dict(kinds) if mode == "events" else None,
        "flows": kinds.get("flow", 0) if mode == "events" else None,
        "cpu_read": round(cpu_read, 3), "wall_read": round(wall_read, 3),
        "cpu_inside": round(cpu, 3), "wall_inside": round(wall, 3),
        "cpu_core": round(cpu - cpu_read, 3), "wall_core": round(wall - wall_read, 3),
    }))


STAGES = ("walk", "decode", "table", "engine", "output")
STAGE_TEXT = {
    "walk": "reader: iterate RawPackets (analyzer/capture/reader.py)",
    "decode": "+ decode every frame to a Packet (analyzer/capture/decode.py)",
    "table": "+ FlowTable.add for every packet, flush (analyzer/flows/*), no inspection, no DNS",
    "engine": "+ DNS tracker and inspect_flow per finished flow = run_engine (analyzer/engine.py)",
    "output": "+ JSON lines of every record, as `flows --format jsonl` (analyzer/cli/flows.py)",
}


def _stage(name: str, path: str, out: str) -> None:
    """One cumulative stage of the Python engine over the whole file; CPU seconds measured inside
    the child (the parent sets APPLE_NET_ENGINE=python for the engine and output passes)."""
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
            t1 = time.process_time()
            text = _json_lines(res)
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


def _git(tree: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True,
                              check=False).stdout
    except OSError:
        return ""


def _source_state(tree: Path) -> str:
    """The tree measured: commit and uncommitted files (others edit the tree meanwhile)."""
    head = _git(tree, "rev-parse", "--short", "HEAD").strip()
    if not head:
        return f"{tree} (not a git tree)"
    dirty = [ln[3:] for ln in _git(tree, "status", "--porcelain", "analyzer", "core/src").split("\n") if ln.strip()]
    return f"{tree} at {head}" + (f" + uncommitted {', '.join(dirty)}" if dirty else "")


_PROBE = r"""
import json, os, sys
out = {"python": sys.executable}
try:
    import analyzer
    out["analyzer"] = os.path.dirname(os.path.abspath(analyzer.__file__))
except Exception as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
else:
    try:
        import analyzer.native as n
    except ImportError:
        out.update(engines=False, native=False, why_not="this tree has no analyzer.native (the Python engine only)")
    else:
        lib = n.load()
        out.update(engines=True, native=lib is not None, why_not=n.why_not(), lib=getattr(lib, "_name", None))
    try:
        import analyzer.signatures as sig
        out["signatures"] = os.path.abspath(list(sig.__path__)[0])
    except Exception:
        pass
print(json.dumps(out))
"""


@dataclass
class Context:
    """What the rows run: the venv's python and apple-net, the tree and core they load."""

    py: Path
    apple_net: Path
    env: dict[str, str]
    info: dict[str, Any] = field(default_factory=dict)

    def snapshot(self, dest: Path) -> None:
        """Run every row on a copy of the measured package (Python and core library) taken now:
        others edit and rebuild the tree during a run, and one run should measure one version.
        The copy goes first on PYTHONPATH; the header keeps the original tree's state."""
        src = self.info.get("analyzer")
        if not src:
            return
        pkg = dest / "analyzer"
        shutil.copytree(src, pkg, ignore=shutil.ignore_patterns("__pycache__"))
        sig = self.info.get("signatures")
        if sig and not (pkg / "signatures").exists():  # an editable install maps it from elsewhere
            shutil.copytree(sig, pkg / "signatures", ignore=shutil.ignore_patterns("__pycache__"))
        # byte-compile the copy now, or the first row would pay for it
        subprocess.run([str(self.py), "-m", "compileall", "-q", str(pkg)], env=self.env, check=False,
                       stdout=subprocess.DEVNULL)
        original = self.info
        self.env["PYTHONPATH"] = os.pathsep.join([str(dest), *filter(None, [self.env.get("PYTHONPATH")])])
        self.probe()
        if self.info.get("analyzer") != str(pkg):
            raise SystemExit(f"--snapshot: the copy in {dest} was not the package imported ({self.info})")
        self.info.update(source=original.get("source"), lib_original=original.get("lib"),
                         lib_mtime=original.get("lib_mtime"), snapshot=str(dest))

    def probe(self) -> None:
        p = subprocess.run([str(self.py), "-c", _PROBE], capture_output=True, text=True, env=self.env, timeout=300,
                           check=False, cwd="/")  # cwd "/": `python -c` puts the working directory on sys.path
        try:
            self.info = json.loads(p.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            self.info = {"error": (p.stderr or p.stdout)[-400:]}
        if self.info.get("analyzer"):
            self.info["source"] = _source_state(Path(self.info["analyzer"]).parent)
        lib = self.info.get("lib")
        if lib and os.path.exists(lib):
            self.info["lib_mtime"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(lib)))

    @classmethod
    def make(cls, venv: Path, tree: Path | None) -> Context:
        env = {k: v for k, v in os.environ.items() if k != "APPLE_NET_ENGINE"}  # rows say --engine
        if tree is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(tree.resolve()), *filter(None, [env.get("PYTHONPATH")])])
        py = venv / "bin" / "python"
        ctx = cls(py, venv / "bin" / "apple-net", env)
        if not py.exists():
            ctx.info = {"error": f"{py} missing (--venv or BENCH_VENV: a venv with the package installed)"}
            return ctx
        ctx.probe()
        return ctx

    def skip_reason(self, tool: str) -> str | None:
        if self.info.get("error"):
            return f"our package does not load: {self.info['error']}"
        engine = OURS_CLI[tool][2] if tool in OURS_CLI else OURS_CHILD[tool][1]
        if engine == "native" and not self.info.get("native"):
            return f"compiled core not available ({self.info.get('why_not')})"
        if tool in OURS_CLI and not self.apple_net.exists():
            return f"{self.apple_net} missing"
        return None


def command(tool: str, path: Path, label: str, ctx: Context, work: Path) -> tuple[list[str] | None, str | None]:
    """(argv, None) for a row, or (None, why it is skipped)."""
    if tool in OURS_CLI or tool in OURS_CHILD:
        why = ctx.skip_reason(tool)
        if why:
            return None, why
    if tool in OURS_CLI:
        sub, fmt, engine, extra = OURS_CLI[tool]
        flag = ["--engine", engine] if ctx.info.get("engines") else []  # trees before issue 15: Python only
        return [str(ctx.apple_net), sub, str(path), "--format", fmt, "-o", "/dev/null", *extra, *flag], None
    if tool in OURS_CHILD:
        mode, engine = OURS_CHILD[tool]
        cmd = [str(ctx.py), str(SELF), "--child", mode, str(path), "--out", str(work / f"{tool}-{label}.json")]
        if ctx.info.get("engines"):
            cmd += ["--engine", engine]
        return cmd, None
    if tool in PEERS:
        if shutil.which(PEERS[tool]) is None:
            return None, f"{PEERS[tool]} not on PATH"
        if tool == "tshark-sni":
            return ["tshark", "-r", str(path), "-Y", "tls.handshake.type==1", "-T", "fields",
                    "-e", "tls.handshake.extensions_server_name"], None
        if tool == "ndpi-q":
            return ["ndpiReader", "-i", str(path), "-q"], None
        return ["tcpdump", "-r", str(path), "-n", FLOOR_FILTER], None
    raise SystemExit(f"unknown tool {tool} (known: {', '.join(ALL_TOOLS)})")


def run(args: argparse.Namespace) -> dict[str, Any]:
    if not Path(TIME).exists():
        raise SystemExit(f"{TIME} missing (Debian package: time)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-engine-", dir=RESULTS))
    ctx = Context.make(Path(args.venv), Path(args.tree) if args.tree else None)
    if args.snapshot:
        ctx.snapshot(work / "snapshot")
    print(f"# measuring {ctx.info.get('source') or ctx.info.get('error')}"
          + (f" (a copy taken now: {ctx.info['snapshot']})" if ctx.info.get("snapshot") else "")
          + f"; compiled core: {ctx.info.get('lib') if ctx.info.get('native') else ctx.info.get('why_not')}",
          flush=True)
    one, two = prepare_inputs(Path(args.input), args.scale, not args.no_2x)
    inputs = {"1x": one} | ({"2xd": two} if two is not None else {})
    packets = {k: count_packets(v) for k, v in inputs.items()}
    print("# inputs: " + ", ".join(f"{k}={v} ({packets[k]:,} packets, {v.stat().st_size / 1e6:.0f} MB)"
                                    for k, v in inputs.items()), flush=True)
    tools = [t for t in args.tools.split(",") if t]
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    cross: dict[str, Any] = {}
    for label, path in inputs.items():
        warm(path)
        for tool in tools:
            if label == "2xd" and tool == "tshark-sni" and args.no_tshark_2x:
                continue
            cmd, why = command(tool, path, label, ctx, work)
            if cmd is None:
                print(f"# {tool} {label}: skipped: {why}", flush=True)
                skipped.append({"tool": tool, "input": label, "why": str(why)})
                continue
            stdout = work / f"{tool}-{label}.out" if tool in ("tshark-sni", "tcpdump-floor") else None
            runs = []
            for i in range(args.runs):
                print(f"# {tool} {label} run {i + 1}/{args.runs} (load {os.getloadavg()[0]:.1f}) ...", end=" ",
                      flush=True)
                r = measure(cmd, args.timeout, stdout, ctx.env)
                inside = work / f"{tool}-{label}.json"
                if tool in OURS_CHILD and inside.exists():  # this run's own figures, before the next overwrites them
                    r["inside"] = json.loads(inside.read_text())
                    inside.unlink()
                print(f"wall {r['wall']} s, cpu {r['cpu']} s, rss {r['rss_mib']} MiB, rc {r['rc']}", flush=True)
                if r["rc"] != 0:
                    print(f"#   stderr: {r.get('stderr_tail', '').strip()[-300:]}", flush=True)
                runs.append(r)
            row = _median_run(runs) | {"tool": tool, "input": label, "packets": packets[label]}
            if tool == "tcpdump-floor" and stdout is not None and stdout.exists():
                row["output_bytes"] = stdout.stat().st_size  # 0: the filter matched nothing
            if tool.startswith("ours-api") and row.get("inside"):  # the median run's
                cross[f"{tool}-{label}"] = row["inside"]
            rows.append(row)
            if tool == "tshark-sni" and stdout is not None and stdout.exists():
                cross[f"tshark-{label}"] = _tshark_counts(stdout)
            if tool == "ndpi-q":
                cross[f"ndpi-{label}"] = {"unique_flows": _ndpi_flows(path, args.timeout)}
    changed = []  # the tree or the core rebuilt under the run: its rows measured two versions
    if ctx.info.get("snapshot"):
        pass  # the rows ran on the copy; the tree may move meanwhile
    elif ctx.info.get("analyzer") and _source_state(Path(ctx.info["analyzer"]).parent) != ctx.info.get("source"):
        changed.append("source tree (commit or uncommitted files)")
    lib = None if ctx.info.get("snapshot") else ctx.info.get("lib")
    if lib and os.path.exists(lib) and time.strftime(
            "%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(lib))) != ctx.info.get("lib_mtime"):
        changed.append("compiled core library")
    if changed:
        print(f"# WARNING: changed during the run: {', '.join(changed)}", flush=True)
    result = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "host_cpus": os.cpu_count(),
              "source": ctx.info.get("source", "?"), "changed_during_run": changed,
              "bench": _source_state(REPO), "probe": ctx.info,
              "inputs": {k: str(v) for k, v in inputs.items()}, "packets": packets, "rows": rows,
              "skipped": skipped, "cross": cross}
    if args.profile:
        result["stages"] = profile_stages(one, args, work, ctx)
    shutil.rmtree(work, ignore_errors=True)
    return result


def profile_stages(path: Path, args: argparse.Namespace, work: Path, ctx: Context) -> dict[str, Any]:
    """The Python engine's cumulative stage passes (differences = per-stage cost) and a py-spy
    profile of the last."""
    out: dict[str, Any] = {"passes": [], "pyspy": None}
    env = ctx.env | {"APPLE_NET_ENGINE": "python"}
    warm(path)
    for st in STAGES:
        res_file = work / f"stage-{st}.json"
        cmd = [str(ctx.py), str(SELF), "--stage", st, str(path), "--out", str(res_file)]
        print(f"# stage {st} (load {os.getloadavg()[0]:.1f}) ...", end=" ", flush=True)
        r = measure(cmd, args.timeout, env=env)
        inside = json.loads(res_file.read_text()) if res_file.exists() else {}
        print(f"cpu {r['cpu']} s (inside {inside.get('cpu_inside')}), rss {r['rss_mib']} MiB", flush=True)
        out["passes"].append(r | {"stage": st, "inside": inside})
    spy = ctx.py.parent / "py-spy"
    if spy.exists():
        raw = work / "pyspy.txt"
        cmd = [str(spy), "record", "-r", "100", "-f", "raw", "-o", str(raw), "--", str(ctx.py),
               str(SELF), "--stage", "output", str(path), "--out", str(work / "spy.json")]
        print("# py-spy record of the output stage ...", flush=True)
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=args.timeout, check=False,
                       env=env)
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


def _ok(x: Any) -> bool:
    return isinstance(x, (int, float)) and x > 0


RATIO_ROWS = ("ours-analyze", "ours-analyze-py", "ours-cli", "ours-cli-py", "ours-cli-j2", "ours-cli-j2-py")


def _verdicts(tool: str, o: dict[str, Any], nd: dict[str, Any] | None, ts: dict[str, Any] | None,
              fl: dict[str, Any] | None) -> list[str]:
    """Issue 15's targets, on wall time within one run: analyze (native) <= ndpiReader, >= 10x
    tshark, stretch <= 5x the tcpdump floor; flows (native) >= 20x tshark."""
    out = []
    w = o["wall"]
    if tool == "ours-analyze":
        if nd and _ok(nd.get("wall")):
            out.append(f"<= ndpiReader: {'MET' if w <= nd['wall'] else 'not met'}")
        if ts and _ok(ts.get("wall")):
            out.append(f">= 10x tshark: {'MET' if ts['wall'] >= 10 * w else 'not met'}")
        if fl and _ok(fl.get("wall")):
            out.append(f"stretch <= 5x floor: {'MET' if w <= 5 * fl['wall'] else 'not met'}")
    elif tool == "ours-cli":
        if ts and _ok(ts.get("wall")):
            out.append(f">= 20x tshark: {'MET' if ts['wall'] >= 20 * w else 'not met'}")
    return out


def report(result: dict[str, Any]) -> str:
    rows = result["rows"]
    probe = result.get("probe", {})
    lines = [f"measured: {result.get('source', '?')}"
             + (" (rows ran on a copy taken at the start)" if probe.get("snapshot") else "")
             + f"; compiled core: {probe.get('lib_original') or probe.get('lib') or probe.get('why_not') or '?'}"
             + (f" (built {probe['lib_mtime']})" if probe.get("lib_mtime") else ""),
             f"benchmark: {result.get('bench', '?')}; {result.get('when')}; machine: {result.get('host_cpus')} "
             "CPUs, shared"]
    if result.get("changed_during_run"):
        lines.append(f"WARNING: changed during the run: {', '.join(result['changed_during_run'])}")
    lines.append("")
    by = {(r["tool"], r["input"]): r for r in rows}
    labels = list(dict.fromkeys(r["input"] for r in rows)) or ["1x"]
    lines.append("| tool | input | packets | wall s | CPU s | peak RSS MiB | kpkt/CPU-s | load1 | n |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        kpps = r["packets"] / r["cpu"] / 1e3 if r.get("cpu") else None
        note = "" if r["rc"] == 0 else f" rc={r['rc']}"
        if r.get("output_bytes"):
            note += f" output {r['output_bytes']} bytes!"
        lines.append(f"| {r['tool']} | {r['input']} | {r['packets']:,} | {_f(r['wall'])} | {_f(r.get('cpu'))} | "
                     f"{_f(r.get('rss_mib'), 0)} | {_f(kpps, 0)} | {_f(r['load1_before'], 1)} | {r.get('n', 1)}"
                     f"{note} |")
    skipped: dict[str, dict[str, list[str]]] = {}
    for s in result.get("skipped", []):
        skipped.setdefault(s["why"], {}).setdefault(s["tool"], []).append(s["input"])
    for why, tools in skipped.items():
        lines.append("")
        lines.append(f"Skipped, {why}: " + ", ".join(f"{t} ({', '.join(ins)})" for t, ins in tools.items()))

    table = ["", "Speed on wall time, within this run (issue 15). ndpiReader/ours and tshark/ours: > 1 means ours "
             "is faster; ours/floor: how many times the libpcap floor (tcpdump-floor) ours takes.", "",
             "| ours | input | wall s | ndpiReader / ours | tshark / ours | ours / tcpdump floor | targets |",
             "|---|---|---:|---:|---:|---:|---|"]
    n_head = len(table)
    for label in labels:
        nd, ts, fl = by.get(("ndpi-q", label)), by.get(("tshark-sni", label)), by.get(("tcpdump-floor", label))
        for tool in RATIO_ROWS:
            o = by.get((tool, label))
            if o is None or o["rc"] != 0 or not _ok(o.get("wall")):
                continue
            w = o["wall"]
            r_nd = f"{nd['wall'] / w:.2f}x" if nd and _ok(nd.get("wall")) else "-"
            r_ts = f"{ts['wall'] / w:.1f}x" if ts and _ok(ts.get("wall")) else "-"
            r_fl = f"{w / fl['wall']:.1f}x" if fl and _ok(fl.get("wall")) else "-"
            table.append(f"| {tool} | {label} | {_f(w)} | {r_nd} | {r_ts} | {r_fl} | "
                         f"{'; '.join(_verdicts(tool, o, nd, ts, fl)) or '-'} |")
    if len(table) > n_head:
        lines.extend(table)

    table = ["", "Peak memory, 1x -> 2xd (distinct flows; target < 500 MiB and flat):", "",
             "| tool | RSS 1x MiB | RSS 2xd MiB | 2xd/1x | target |", "|---|---:|---:|---:|---|"]
    n_head = len(table)
    for tool in dict.fromkeys(r["tool"] for r in rows):
        a, b = by.get((tool, "1x")), by.get((tool, "2xd"))
        if a and b and a.get("rss_mib") and b.get("rss_mib"):
            flat = b["rss_mib"] / a["rss_mib"]
            target = "-"
            if tool in ("ours-analyze", "ours-cli", "ours-cli-j2"):
                met = max(a["rss_mib"], b["rss_mib"]) < 500 and flat <= 1.1
                target = "MET" if met else "not met"
            table.append(f"| {tool} | {a['rss_mib']:.0f} | {b['rss_mib']:.0f} | {flat:.2f} | {target} |")
    if len(table) > n_head:
        lines.extend(table)

    core_lines = _core_report(result, by, labels)
    if core_lines:
        lines.append("")
        lines.extend(core_lines)

    cross = result.get("cross", {})
    lines.append("")
    lines.append("Cross-check:")
    for label in labels:
        ours = cross.get(f"ours-api-{label}") or cross.get(f"ours-api-py-{label}")
        py = cross.get(f"ours-api-py-{label}")
        ts, nd = cross.get(f"tshark-{label}"), cross.get(f"ndpi-{label}")
        if ours:
            lines.append(f"- {label} ours ({ours.get('engine', '?')} engine): {ours['flows']:,} flows "
                         f"{ours['flows_by_proto']}, {ours['client_hellos']:,} ClientHellos "
                         f"({ours['client_hellos_without_sni']:,} without SNI), {ours['dns_transactions']:,} DNS "
                         f"transactions, {ours['flows_with_rst']:,} flows with RST")
        if ours and py and ours is not py:
            keys = [k for k in ours if k not in ("engine", "cpu_inside", "wall_inside", "cpu_engine", "cpu_output")]
            diff = [k for k in keys if ours.get(k) != py.get(k)]
            lines.append(f"  native vs Python engine counts: {'identical' if not diff else 'differ in ' + ', '.join(diff)}")
        ev = (by.get(("core-events", label)) or {}).get("inside")
        if ours and ev and ev.get("flows") is not None:
            lines.append(f"  core-events flow events: {ev['flows']:,} "
                         f"({'same as' if ev['flows'] == ours['flows'] else 'NOT the same as'} the engine's flows)")
        if ts:
            lines.append(f"- {label} tshark: {ts['client_hellos']:,} ClientHellos "
                         f"({ts['without_sni']:,} without SNI) in {ts['client_hello_frames']:,} frames")
        if ours and ts:
            names = sorted(set(ours["sni"]) | set(ts["sni"]))
            diff2 = {n: (ours["sni"].get(n, 0), ts["sni"].get(n, 0)) for n in names
                     if ours["sni"].get(n, 0) != ts["sni"].get(n, 0)}
            lines.append(f"  SNI per name ours vs tshark: {'identical' if not diff2 else diff2}; "
                         f"ClientHellos ours - tshark = {ours['client_hellos'] - ts['client_hellos']:+d}")
        if nd and nd.get("unique_flows") is not None:
            extra = f" (ours {ours['flows']:,}: {ours['flows'] - nd['unique_flows']:+,})" if ours else ""
            lines.append(f"- {label} nDPI unique flows: {nd['unique_flows']:,}{extra}")
    st = result.get("stages")
    if st:
        lines.extend(_stages_report(st))
    return "\n".join(lines)


def _core_report(result: dict[str, Any], by: dict[tuple[str, str], dict[str, Any]], labels: list[str]) -> list[str]:
    """The compiled core alone against the whole native engine: µs per packet and per flow, and
    the Python share (CPU measured inside the child processes, imports excluded)."""
    out: list[str] = []
    for label in labels:
        feed = (by.get(("core-feed", label)) or {}).get("inside")
        ev = (by.get(("core-events", label)) or {}).get("inside")
        api = (by.get(("ours-api", label)) or {}).get("inside")
        api_py = (by.get(("ours-api-py", label)) or {}).get("inside")
        if not (feed or ev or api or api_py):
            continue
        pk = result["packets"][label]
        flows = (api or api_py or {}).get("flows") or (ev or {}).get("flows")
        if not out:
            out.append("The core and the Python around it (CPU s measured inside each child, imports excluded; "
                       "per packet and per flow: the same seconds divided by the capture's packets and by its "
                       "flows; share: of the whole native engine, ours-api):")
            out.append("")
            out.append("| input | part | CPU s | µs / packet | µs / flow | share |")
            out.append("|---|---|---:|---:|---:|---:|")
        whole = api.get("cpu_inside") if api else None

        def row(part: str, cpu: float | None) -> None:
            if cpu is None:
                return
            per_pk = 1e6 * cpu / pk if pk else None
            per_fl = 1e6 * cpu / flows if flows else None
            share = f"{100 * cpu / whole:.0f} %" if whole else "-"
            out.append(f"| {label} | {part} | {_f(cpu)} | {_f(per_pk, 3)} | {_f(per_fl, 1)} | {share} |")

        if feed:
            row("reading the file's chunks (Python file reads)", feed["cpu_read"])
            row("core alone: walk, decode, flow table, events written (core-feed)", feed["cpu_core"])
        if ev and feed:
            row("events copied and decoded into Python values (core-events - core-feed)",
                ev["cpu_inside"] - feed["cpu_inside"])
        if api and feed:
            if ev:
                row("the engine's Python after that: inspection, DNS, neighbours, records",
                    api["cpu_inside"] - ev["cpu_inside"])
            row("Python share: whole engine - core alone - reading", api["cpu_inside"] - feed["cpu_inside"])
        if api:
            row("whole native engine (ours-api)", api["cpu_inside"])
        if api_py:
            row("whole Python engine (ours-api-py), for reference", api_py["cpu_inside"])
    return out


def _stages_report(st: dict[str, Any]) -> list[str]:
    lines = ["", "The Python engine's per-stage cost on 1x (cumulative passes, CPU s measured inside the child; "
             "difference = the stage's own cost):", "",
             "| pass | CPU s | stage's own CPU s | of which GC s (whole pass) | peak RSS MiB | what |",
             "|---|---:|---:|---:|---:|---|"]
    prev = 0.0
    for p in st["passes"]:
        inside = p["inside"].get("cpu_inside")
        own = inside - prev if inside is not None else None
        if p["stage"] == "output" and p["inside"].get("cpu_output_only") is not None:
            own = p["inside"]["cpu_output_only"]
        lines.append(f"| {p['stage']} | {_f(inside)} | {_f(own)} | {_f(p['inside'].get('gc_cpu'))} | "
                     f"{_f(p.get('rss_mib'), 0)} | {STAGE_TEXT[p['stage']]} |")
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
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", default=str(DEFAULT_INPUT),
                    help="classic pcap; its 2xd copy is <stem>-2xd.pcap beside it (default: %(default)s, "
                    "from $BENCH_DATA)")
    ap.add_argument("--venv", default=str(DEFAULT_VENV),
                    help="the venv whose apple-net and python are measured (default: %(default)s, $BENCH_VENV)")
    ap.add_argument("--tree", help="a source tree to measure instead of the venv's (put first on PYTHONPATH)")
    ap.add_argument("--snapshot", action="store_true",
                    help="copy the measured package (with its built core) first and run every row on the copy, "
                    "so a tree edited and rebuilt meanwhile does not mix two versions into one run")
    ap.add_argument("--scale", type=float, default=1.0, help="use only this leading fraction of the packets")
    ap.add_argument("--runs", type=int, default=1, help="runs per measured command (median reported)")
    ap.add_argument("--tools", default=DEFAULT_TOOLS, help=f"rows, in order (default: %(default)s; also "
                    f"{', '.join(t for t in ALL_TOOLS if t not in DEFAULT_TOOLS.split(','))})")
    ap.add_argument("--no-2x", action="store_true", help="skip the 2x distinct-flow capture")
    ap.add_argument("--no-tshark-2x", action="store_true", help="skip tshark on 2xd (its slowest row)")
    ap.add_argument("--profile", action="store_true", help="the Python engine's stage passes + py-spy on 1x")
    ap.add_argument("--timeout", type=float, default=1800.0, help="per command, seconds")
    ap.add_argument("--table-only", metavar="RESULT_JSON", help="print the tables of a saved result")
    # child modes
    ap.add_argument("--child", nargs=2, metavar=("MODE", "FILE"), help=argparse.SUPPRESS)
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--stage", nargs=2, metavar=("NAME", "FILE"), help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--make-2xd", nargs=2, metavar=("SRC", "DST"), help="write DST = SRC + distinct-flow copy")
    args = ap.parse_args(argv)
    if args.child:
        mode, path = args.child
        if mode == "engine":
            _child_engine(path, args.engine, args.out)
        else:
            _child_core(path, mode, args.out)
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
    print(f"\n(raw: {dest})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
