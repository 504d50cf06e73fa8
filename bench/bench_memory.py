"""bench_memory.py - peak memory of the engine on a SYN scan of N distinct flows (issue 17, item 4).

    python bench/bench_memory.py                          # 1 M flows, this tree: flows jsonl and live --replay
    python bench/bench_memory.py --tree /path/to/old/tree --label before
    python bench/bench_memory.py --flows 200000 --commands flows

Each command runs as `/usr/bin/time -v python -m analyzer ...` with PYTHONPATH set to
--tree, on bench/data/synscan-<N>.pcap (made by bench/make_synscan.py when absent:
one unanswered SYN per flow, 10 us apart, 70 MB for 1 M flows). The rows are
appended to results/memory-synscan.jsonl and printed: peak RSS (MiB), wall and CPU
seconds, exit status. Target of issue 17: under 500 MiB for `flows --format jsonl`
and `live --replay`. Latest numbers: results/memory-synscan.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
COMMANDS = {
    "flows": lambda cap, out: ["flows", cap, "--format", "jsonl", "-o", out],
    "live": lambda cap, out: ["live", "--replay", cap, "--format", "json", "-o", out],
    "analyze": lambda cap, out: ["analyze", cap, "--format", "json", "-o", out],
}


def measure(tree: Path, command: str, capture: Path, extra: list[str]) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        argv = ["/usr/bin/time", "-v", sys.executable, "-m", "analyzer",
                *COMMANDS[command](str(capture), out), *extra]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        res = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=tmp)
        size = os.path.getsize(out) if os.path.exists(out) else 0
    err = res.stderr

    def field(name: str) -> str:
        m = re.search(rf"^\s*{re.escape(name)}: (.*)$", err, re.M)
        return m.group(1).strip() if m else ""

    wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)")
    parts = [float(p) for p in wall.split(":")] if wall else [0.0]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    return {
        "command": command, "argv": " ".join(argv[3:]), "tree": str(tree),
        "peak_rss_mib": round(int(field("Maximum resident set size (kbytes)") or 0) / 1024, 1),
        "wall_s": round(seconds, 1),
        "cpu_s": round(float(field("User time (seconds)") or 0) + float(field("System time (seconds)") or 0), 1),
        "exit": res.returncode, "output_bytes": size,
        "stderr_tail": [ln for ln in err.splitlines() if not ln.startswith("\t")][-3:],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--tree", type=Path, default=REPO, help="the source tree to measure (PYTHONPATH)")
    ap.add_argument("--label", default="", help="a name for this tree in the results (e.g. before, after)")
    ap.add_argument("--commands", default="flows,live", help="comma-separated: " + ",".join(COMMANDS))
    ap.add_argument("--extra", default="", help="extra arguments for every command, e.g. '--max-memory 300'")
    args = ap.parse_args(argv)
    data = HERE / "data"
    data.mkdir(exist_ok=True)
    capture = data / f"synscan-{args.flows}.pcap"
    if not capture.exists():
        subprocess.run([sys.executable, str(HERE / "make_synscan.py"), str(capture), "--flows", str(args.flows)],
                       check=True)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    commit = subprocess.run(["git", "-C", str(args.tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    load = os.getloadavg()[0]
    for command in args.commands.split(","):
        row = measure(args.tree, command, capture, args.extra.split())
        row.update(flows=args.flows, label=args.label, commit=commit, load=round(load, 1),
                   when=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()))
        with open(results / "memory-synscan.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{args.label or args.tree}: {command}: peak {row['peak_rss_mib']} MiB, wall {row['wall_s']} s, "
              f"CPU {row['cpu_s']} s, exit {row['exit']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
