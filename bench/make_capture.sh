#!/usr/bin/env bash
# make_capture.sh - the benchmark captures for bench/bench_engine.py, in bench/data/ (not committed).
#
#   bash bench/make_capture.sh                 # ~1.29 M packets of real traffic (2-3 minutes)
#   SCALE=0.05 bash bench/make_capture.sh      # a small one, for a pilot
#   REUSE=/var/tmp/bench bash bench/make_capture.sh   # link an existing bench.pcap instead
#   BENCH_DATA=/var/tmp/bench bash bench/make_capture.sh   # write them there (outside the repo)
#
# The traffic itself comes from the shared generator ../shared/bench/make_bench_pcap.sh (nginx
# TLS 1.2/1.3 with several server names, curl bulk downloads and resumptions, Python and
# openssl clients, failed handshakes, RSTs to closed ports, dig against dnsmasq with
# NXDOMAINs), run in a private network namespace so nothing leaves the machine; see
# ../shared/bench/README.md. It is called, not copied: if ../shared is absent, get that
# script (and its gen/clients.py) from the project's shared material and set GENERATOR.
#
# Then bench2xd: the capture followed by a copy of itself rewritten as distinct flows
# (127.0.x.y -> 127.128.x.y, ::1 -> ::3, shifted past the end), to see whether memory stays
# flat when a capture doubles (bench_engine.py --make-2xd; bench_engine.py also makes it on
# demand).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
DATA="${BENCH_DATA:-$HERE/data}"
GENERATOR="${GENERATOR:-$REPO/../shared/bench/make_bench_pcap.sh}"
if [[ ! -f "$GENERATOR" && -z "${REUSE:-}" ]]; then
  # a git worktree: ../shared sits beside the main checkout, not beside the worktree
  common="$(git -C "$REPO" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)"
  if [[ -n "$common" && -f "$(dirname "$common")/../shared/bench/make_bench_pcap.sh" ]]; then
    GENERATOR="$(cd "$(dirname "$common")/../shared/bench" && pwd)/make_bench_pcap.sh"
  fi
fi
PY="$REPO/.venv/bin/python"
[[ -x "$PY" ]] || PY=python3

mkdir -p "$DATA"
if [[ -n "${REUSE:-}" ]]; then
  [[ -f "$REUSE/bench.pcap" ]] || { echo "REUSE=$REUSE has no bench.pcap" >&2; exit 1; }
  if [[ "$(cd "$REUSE" && pwd -P)" == "$(cd "$DATA" && pwd -P)" ]]; then
    echo "$DATA/bench.pcap is there already"   # linking it onto itself would lose it
  else
    ln -sfn "$(cd "$REUSE" && pwd)/bench.pcap" "$DATA/bench.pcap"
    echo "linked $DATA/bench.pcap -> $REUSE/bench.pcap"
  fi
elif [[ -f "$GENERATOR" ]]; then
  # The generator writes bench.pcap, bench.pcapng, bench2x.pcap (same flows twice) and capinfos.
  BENCH_DATA="$DATA" SCALE="${SCALE:-1}" bash "$GENERATOR"
else
  cat >&2 <<EOF
$GENERATOR not found.
The capture generator lives in the project's shared material (shared/bench/make_bench_pcap.sh
and shared/bench/gen/clients.py). Put it there, or point GENERATOR at a copy, or link an
existing capture with REUSE=<dir holding bench.pcap>.
EOF
  exit 1
fi

"$PY" "$HERE/bench_engine.py" --make-2xd "$DATA/bench.pcap" "$DATA/bench-2xd.pcap"
ls -l "$DATA"
