"""The Python reader's view of a capture, in walk_dump's lines (core/examples/walk_dump.rs),
and the differential check of the core's record walk against it.

usage (from the repository root, the core built with `cargo build --release --example walk_dump`):
  PYTHONPATH=. python core/tools/walk_ref.py PATH             # the reference lines of one file
  PYTHONPATH=. python core/tools/walk_ref.py --diff [--mutants N] [--synthetic M] [--seed S] [ROOT...]

`PATH`: one line per record (ts as f64 bits, linktype, caplen, CRC-32 of the data, wirelen,
iface, process fields: UTF-8 as hex + "h", or "-"), then the reader's counters. A CaptureError
prints "error <message>" alone.

`--diff`: every capture under the ROOTs (default tests/fixtures and ../shared/corpus) whose
first bytes are a pcap, pcapng or gzip magic, and N mutants of each (cut at a random offset,
bytes flipped, both), compared line for line with walk_dump fed in 4093-byte chunks and, for
the mutants, in random-size chunks. gzip input is inflated here first, as Python will do
before it feeds the core; the gzip_* weirds, and `truncated` when gunzipping failed, are
Python's own and left out of the comparison, as is `bytes_read` (file bytes read in Python's
own chunks) when the walk stopped early or the file is compressed. `--synthetic M`: M generated
captures (half pcap, half pcapng, built to reach every branch: versions, length swaps, empty
records, sections of either byte order, if_tsresol/if_tsoffset, process blocks and options,
SPB/PB, unknown and damaged blocks), each with 2 mutants.
"""

from __future__ import annotations

import gzip
import os
import random
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

from analyzer.capture.reader import open_capture
from analyzer.errors import CaptureError

DUMP = Path(__file__).resolve().parent.parent / "target" / "release" / "examples" / "walk_dump"
MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a")
GZIP = b"\x1f\x8b"


def _num(v: int | None) -> str:
    return "-" if v is None else str(v)


def _text(v: str | None) -> str:
    return "-" if v is None else v.encode("utf-8").hex() + "h"


def ref_lines(path: str) -> list[str]:
    """The reference lines of one capture."""
    try:
        reader = open_capture(path)
    except CaptureError as exc:
        return [f"error {exc}"]
    lines = []
    for raw in reader:
        p = raw.proc
        procs = (_num(p.pid), _text(p.name), _num(p.epid), _text(p.ename)) if p is not None else ("-",) * 4
        bits = struct.unpack("<Q", struct.pack("<d", raw.ts))[0]
        lines.append(f"rec {bits:016x} {raw.linktype} {len(raw.data)} {zlib.crc32(raw.data):08x} "
                     f"{raw.wirelen} {raw.iface} {' '.join(procs)}")
    lines.append(f"format {reader.format} {reader.file_type}")
    lines.append(f"packets {reader.packets}")
    lines.append(f"bytes {reader.bytes}")
    lines.append(f"link_types {','.join(reader.link_types)}")
    lines.append(f"interfaces {','.join(f'{lt}:{_text(n)}' for lt, n in reader.interfaces)}")
    lines.append(f"snaplen {reader.snaplen}")
    lines.append(f"truncated {int(bool(reader.truncated))}")
    for k, v in sorted(reader.weird.items()):
        if v:
            lines.append(f"weird {k} {v}")
    lines.append(f"bytes_read {reader.bytes_read}")
    return lines


def dump_lines(path: str, *args: str) -> list[str]:
    """walk_dump's lines for one (plain) capture."""
    out = subprocess.run([str(DUMP), path, *args], capture_output=True, check=True)
    return out.stdout.decode().splitlines()


def _inflate(data: bytes) -> tuple[bytes, bool]:
    """What Python's reader would gunzip (the bytes before any damage), and whether it failed."""
    parts = []
    with gzip.GzipFile(fileobj=__import__("io").BytesIO(data)) as gz:
        while True:
            try:
                part = gz.read1(1 << 16)
            except gzip.BadGzipFile as exc:
                return b"".join(parts), not str(exc).startswith("Not a gzipped file")
            except (OSError, EOFError, zlib.error):
                return b"".join(parts), True
            if not part:
                return b"".join(parts), False
            parts.append(part)


SEEN: dict[str, int] = {}
"""How many compared files showed each weird / error kind: what the comparison exercised."""


def compare(path: str, data: bytes, tmpdir: str, extra: tuple[str, ...] = ()) -> tuple[bool, list[str], list[str]]:
    """(equal, reference lines, core lines) for the capture `data` stored at `path`."""
    ref = ref_lines(path)
    for line in ref:
        if line.startswith("weird "):
            key = line.split()[1]
        elif line.startswith("error "):
            key = "error: " + " ".join(line.split(": ", 1)[-1].split()[:4])
        elif line == "truncated 1":
            key = "truncated"
        else:
            continue
        SEEN[key] = SEEN.get(key, 0) + 1
    if data[:2] == GZIP:
        plain, failed = _inflate(data)
        if ref[0].startswith("error") and ("gzip" in ref[0] or "unreadable" in ref[0]):
            return True, ref, ref  # Python's own (gzip) error before any capture byte
        inner = os.path.join(tmpdir, "inflated")
        Path(inner).write_bytes(plain)
        args = ["--name", path, "--gzip"] + (["--head-note"] if failed and len(plain) < 65536 else [])
        got = dump_lines(inner, *args, *extra)
        ref = [line for line in ref if not line.startswith(("weird gzip_", "bytes_read"))]
        got = [line for line in got if not line.startswith("bytes_read")]
        if failed:
            ref = [line for line in ref if not line.startswith("truncated")]
            got = [line for line in got if not line.startswith("truncated")]
    else:
        got = dump_lines(path, *extra)
        if "truncated 1" in ref:
            ref = [line for line in ref if not line.startswith("bytes_read")]
            got = [line for line in got if not line.startswith("bytes_read")]
    return ref == got, ref, got


def mutants(data: bytes, rng: random.Random, n: int) -> list[bytes]:
    """Cut, flipped and cut-and-flipped copies of `data`; flips favour the first bytes,
    where the headers that steer the walk are."""
    out = []
    for i in range(n):
        b = bytearray(data)
        kind = i % 3
        if kind in (1, 2):
            for _ in range(rng.randint(1, 8)):
                if not b:
                    break
                span = len(b) if rng.random() < 0.5 else min(len(b), 256)
                b[rng.randrange(span)] = rng.randrange(256)
        if kind in (0, 2) and b:
            del b[rng.randrange(len(b) + 1):]
        out.append(bytes(b))
    return out


# -- synthetic captures: every branch of the walk, by construction -----------------------------

def _pad4(b: bytes) -> bytes:
    return b + bytes(-len(b) % 4)


def _options(e: str, rng: random.Random, items: list[tuple[int, bytes]]) -> bytes:
    out = b""
    for code, value in items:
        out += struct.pack(e + "HH", code, len(value)) + _pad4(value)
    r = rng.random()
    if r < 0.1:  # an option running past the block
        out += struct.pack(e + "HH", 1, 200)
    elif r < 0.6:
        out += struct.pack(e + "HH", 0, 0)
    return out


def _block(e: str, rng: random.Random, btype: int, body: bytes) -> bytes:
    body = _pad4(body)
    blen = len(body) + 12
    tail = blen
    r = rng.random()
    if r < 0.01:
        tail = blen + 4  # length mismatch
    elif r < 0.015:
        blen = tail = rng.choice([8, 13, 66 << 20])
    return struct.pack(e + "II", btype, blen) + body + struct.pack(e + "I", tail)


def _text_bytes(rng: random.Random) -> bytes:
    pieces = [b"en0", b"\xed\xa0\x80", b"\xff", b"\xc3\xa9", b"\0", b"proc", b"\xf0\x9f\x98", b" "]
    return b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 5)))


def synth_pcapng(rng: random.Random) -> bytes:
    out = b""
    for section in range(rng.randint(1, 3)):
        e = rng.choice("<>")
        bom = struct.pack(e + "I", 0x1A2B3C4D)
        if section and rng.random() < 0.05:
            bom = b"\x01\x02\x03\x04"
        major = 1 if rng.random() < 0.97 or not section else 2
        shb_body = bom + struct.pack(e + "HHq", major, 0, -1) + _options(e, rng, [(4, b"synth")] * rng.randint(0, 1))
        shb = _block(e, rng, 0x0A0D0D0A, shb_body) if section else (
            struct.pack(e + "II", 0x0A0D0D0A, len(shb_body) + 12) + shb_body + struct.pack(e + "I", len(shb_body) + 12))
        if section and rng.random() < 0.03:
            shb = struct.pack(e + "II", 0x0A0D0D0A, 24) + bom + struct.pack(e + "HHI", 1, 0, 0) + struct.pack(e + "I", 24)
        out += shb
        n_ifaces = 0
        n_procs = 0
        for _ in range(rng.randint(0, 40)):
            kind = rng.random()
            if kind < 0.12 or (n_ifaces == 0 and kind < 0.5):
                opts = []
                if rng.random() < 0.6:
                    opts.append((9, bytes([rng.choice([3, 6, 9, 0, 19, 20, 0x80, 0x94, 0xBF, 0xC0, 0xFF, 0x87])])))
                if rng.random() < 0.4:
                    off = rng.choice([0, 1, -1, 1_600_000_000, -2_000_000_000, 1 << 62, -(1 << 63), (1 << 53) + 1])
                    opts.append((14, struct.pack(e + "q", off)))
                if rng.random() < 0.1:
                    opts.append((14, b"\x01\x02"))  # too short: ignored
                if rng.random() < 0.5:
                    opts.append((2, _text_bytes(rng)))
                if rng.random() < 0.1:
                    opts.append((9, b""))
                rng.shuffle(opts)
                snap = rng.choice([0, 0, 65535, 40, 8])
                lt = rng.choice([1, 1, 101, 113, 258, 0, 147, 276])
                body = struct.pack(e + "HHI", lt, 0, snap) + _options(e, rng, opts)
                if rng.random() < 0.03:
                    body = struct.pack(e + "HH", lt, 0)  # too short for an IDB
                out += _block(e, rng, 1, body)
                n_ifaces += 1
            elif kind < 0.2:
                opts = [(2, _text_bytes(rng))] if rng.random() < 0.8 else []
                if rng.random() < 0.2:
                    opts.append((2, _text_bytes(rng)))
                body = struct.pack(e + "I", rng.randrange(1 << 32)) + _options(e, rng, opts)
                if rng.random() < 0.03:
                    body = b""
                out += _block(e, rng, 0x80000001, body)
                n_procs += 1
            elif kind < 0.8:
                data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 70)))
                caplen = len(data)
                if rng.random() < 0.05:
                    caplen += rng.randint(1, 8)  # past the block
                wirelen = rng.choice([len(data), len(data) + 100, max(0, len(data) - 3)])
                iface = rng.randrange(n_ifaces + 2) if rng.random() < 0.1 else rng.randrange(max(1, n_ifaces))
                hi = rng.choice([0, 1, 0x5000, 0x00059, 0xFFFFFFFF, rng.randrange(1 << 32)])
                lo = rng.randrange(1 << 32)
                opts = []
                for _ in range(rng.randint(0, 3)):
                    code = rng.choice([0x8001, 0x8003, 0x8001, 0x8003, 2, 0x8002])
                    index = rng.randrange(n_procs + 1) if rng.random() < 0.9 else rng.randrange(1 << 32)
                    value = struct.pack(e + "I", index) if rng.random() < 0.9 else b"\x01\x02"
                    opts.append((code, value))
                if rng.random() < 0.5:
                    opts.insert(0, (1, b"comment"))
                if rng.random() < 0.15:  # obsolete Packet Block
                    fixed = struct.pack(e + "HHIIII", iface & 0xFFFF, 0, hi, lo, caplen, wirelen)
                    btype = 2
                else:
                    fixed = struct.pack(e + "IIIII", iface, hi, lo, caplen, wirelen)
                    btype = 6
                body = fixed + _pad4(data) + (_options(e, rng, opts) if opts or rng.random() < 0.5 else b"")
                if rng.random() < 0.02:
                    body = fixed[:rng.choice([0, 8, 16])]
                out += _block(e, rng, btype, body)
            elif kind < 0.9:
                data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 60)))
                wirelen = rng.choice([len(data), len(data) + 5, max(0, len(data) - 5), 0])
                body = struct.pack(e + "I", wirelen) + data
                if rng.random() < 0.05:
                    body = b""
                out += _block(e, rng, 3, body)
            else:
                btype = rng.choice([4, 5, 7, 0xBAD, 0x40000BAD, 0x80000002, 0x1234, 0x80000001 + 5])
                out += _block(e, rng, btype, bytes(rng.randrange(256) for _ in range(rng.randint(0, 20))))
    return out


def synth_pcap(rng: random.Random) -> bytes:
    e, magic = rng.choice([("<", 0xA1B2C3D4), (">", 0xA1B2C3D4), ("<", 0xA1B23C4D), (">", 0xA1B23C4D)])
    version = rng.choice([(2, 4), (2, 4), (2, 3), (2, 2), (1, 0), (3, 0), (2, 5)])
    snaplen = rng.choice([0, 65535, 262144, 60, 0xFFFFFFFF])
    lt = rng.choice([1, 1, 0x1C000001, 101, 999, 258])
    out = struct.pack(e + "IHHiIII", magic, *version, 0, 0, snaplen, lt)
    for _ in range(rng.randint(0, 60)):
        r = rng.random()
        if r < 0.1:
            out += bytes(16 * rng.randint(1, 5))  # empty records
            continue
        data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 90)))
        caplen = len(data)
        wirelen = rng.choice([caplen, caplen + 50, max(0, caplen - 10), 0, 300000])
        sec, frac = rng.randrange(1 << 32), rng.randrange(1 << 32) if rng.random() < 0.2 else rng.randrange(1_000_000)
        a, b = (wirelen, caplen) if version < (2, 3) or (version == (2, 3) and rng.random() < 0.5) else (caplen, wirelen)
        if version < (2, 3):
            data = data[:a] if a < caplen else data + bytes(a - caplen)  # the swapped field is the data length
        if rng.random() < 0.01:
            a = rng.choice([(64 << 20) + 1, 0xFFFFFFFF, 300000])
        out += struct.pack(e + "IIII", sec, frac, a, b) + data
    return out


def diff_all(roots: list[str], n_mutants: int, seed: int, n_synth: int) -> int:
    rng = random.Random(seed)
    files = records = mismatches = 0
    m_files = m_records = s_files = s_records = 0
    with tempfile.TemporaryDirectory() as tmpdir:
        paths = sorted(p for root in roots for p in Path(root).rglob("*") if p.is_file())
        for p in paths:
            data = p.read_bytes()
            if data[:4] not in MAGICS and data[:2] != GZIP and p.suffix not in (".pcap", ".pcapng", ".gz"):
                continue
            same, ref, got = compare(str(p), data, tmpdir)
            files += 1
            records += sum(line.startswith("rec ") for line in ref)
            if not same:
                mismatches += 1
                _report(str(p), ref, got)
            if not n_mutants:
                continue
            plain = _inflate(data)[0] if data[:2] == GZIP else data
            for j, mutant in enumerate(mutants(plain, rng, n_mutants)):
                mpath = os.path.join(tmpdir, f"mutant{j}.pcap")
                Path(mpath).write_bytes(mutant)
                extra = ("--random-chunks", str(rng.randrange(1 << 30))) if j % 2 else ()
                same, ref, got = compare(mpath, mutant, tmpdir, extra)
                m_files += 1
                m_records += sum(line.startswith("rec ") for line in ref)
                if not same:
                    mismatches += 1
                    keep = os.path.join(tempfile.gettempdir(), f"walk_mismatch_{p.name}_{j}")
                    Path(keep).write_bytes(mutant)
                    _report(f"{p} mutant {j} (kept as {keep})", ref, got)
        for i in range(n_synth):
            kind = "pcapng" if i % 2 else "pcap"
            data = synth_pcapng(rng) if i % 2 else synth_pcap(rng)
            spath = os.path.join(tmpdir, f"synth.{kind}")
            for k, mutant in enumerate([data, *mutants(data, rng, 2)]):
                Path(spath).write_bytes(mutant)
                extra = ("--random-chunks", str(rng.randrange(1 << 30))) if i % 3 else ()
                same, ref, got = compare(spath, mutant, tmpdir, extra)
                s_files += 1
                s_records += sum(line.startswith("rec ") for line in ref)
                if not same:
                    mismatches += 1
                    keep = os.path.join(tempfile.gettempdir(), f"walk_mismatch_synth_{i}_{k}.{kind}")
                    Path(keep).write_bytes(mutant)
                    _report(f"synthetic {i} {k} (kept as {keep})", ref, got)
    print("exercised:", ", ".join(f"{k} {v}" for k, v in sorted(SEEN.items())))
    print(f"captures: {files} files, {records} records; mutants: {m_files} files, {m_records} records; "
          f"synthetic (with mutants): {s_files} files, {s_records} records; mismatches: {mismatches}")
    return 1 if mismatches else 0


def _report(what: str, ref: list[str], got: list[str]) -> None:
    import difflib

    print(f"MISMATCH {what}")
    for line in list(difflib.unified_diff(ref, got, "python", "core", lineterm="", n=1))[:20]:
        print("   ", line)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--diff":
        n_mutants, seed, n_synth, roots = 0, 1, 0, []
        it = iter(argv[1:])
        for arg in it:
            if arg == "--mutants":
                n_mutants = int(next(it))
            elif arg == "--synthetic":
                n_synth = int(next(it))
            elif arg == "--seed":
                seed = int(next(it))
            else:
                roots.append(arg)
        return diff_all(roots or ["tests/fixtures", "../shared/corpus"], n_mutants, seed, n_synth)
    for line in ref_lines(argv[0]):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
