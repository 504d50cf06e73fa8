#!/bin/sh
# Diff the Python and Rust flow tables on every capture under the fixtures and the shared corpus
# (and, with GEN=N [GENLEN=packets], on N generated sequences of each kind, --gen and --conv), with the default config and with
# small limits. Usage: core/tools/flows_diff.sh [outdir]   (run from the repository root)
# Prints one line per mismatch and a summary; exit status 1 if anything differs.
set -u
out=${1:-/tmp/flows_diff}
mkdir -p "$out"
py=${PYTHON:-/work/main/.venv/bin/python}
rs=core/target/release/examples/flows_dump
export PYTHONPATH=$PWD
small="max_flows=4 reassembly_budget=3000 reassembly_floor=500 reassembly_cap=2000 max_segments=3 max_pending_segments=2 max_history=8 max_udp_datagrams=2 ip_id_samples=2 max_rsts=2 max_icmp_errors=1 max_processes=1 max_time_jump=0.5 tcp_attempt_timeout=0.2 tcp_close_linger=0.1 tcp_partial_close_timeout=0.1 udp_idle_timeout=1 tcp_idle_timeout=2 icmp_idle_timeout=1"
ok=0; bad=0; pkts=0; recs=0; n=0
run() { # name dumpsource... ; $1 name, $2 config label, rest: flows_ref args (before config)
    name=$1; label=$2; shift 2
    cfg=""; [ "$label" = small ] && cfg=$small
    # shellcheck disable=SC2086
    if ! "$py" core/tools/flows_ref.py "$@" $cfg > "$out/$name.$label.py" 2> "$out/$name.$label.err"; then
        echo "PYFAIL $name $label"; return
    fi
    dump=$(for a in "$@"; do :; done; echo "$a")
    # shellcheck disable=SC2086
    "$rs" "$dump" $cfg > "$out/$name.$label.rs" 2>> "$out/$name.$label.err"
    if cmp -s "$out/$name.$label.py" "$out/$name.$label.rs"; then
        ok=$((ok + 1))
    else
        bad=$((bad + 1)); echo "DIFF $name $label"
    fi
    p=$(grep '^S packets=' "$out/$name.$label.py" | grep -o 'packets=[0-9]*' | cut -d= -f2)
    r=$(grep -c '^R ' "$out/$name.$label.py")
    pkts=$((pkts + ${p:-0})); recs=$((recs + r))
}
for cap in $(find /work/main/tests/fixtures /work/shared/corpus -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.pcap.gz' -o -name '*.pcapng.gz' -o -name '*.cap' \) | sort); do
    n=$((n + 1))
    name=$(echo "$cap" | sed 's|/work/||; s|[/ ]|_|g')
    dump="$out/$name.dump"
    "$py" core/tools/flows_ref.py "$cap" "$dump" > /dev/null 2> "$out/$name.decode.err" || { echo "SKIP $cap (not decodable: $(tail -1 "$out/$name.decode.err"))"; continue; }
    run "$name" default --dump "$dump"
    run "$name" small --dump "$dump"
done
i=0
while [ "$i" -lt "${GEN:-0}" ]; do
    for mode in gen conv; do
        "$py" core/tools/flows_ref.py --$mode "$i" "${GENLEN:-3000}" "$out/$mode$i.dump" > /dev/null
        run "$mode$i" default --dump "$out/$mode$i.dump"
        run "$mode$i" small --dump "$out/$mode$i.dump"
    done
    i=$((i + 1))
done
if [ "${GEN:-0}" -gt 0 ]; then  # a SYN scan: the timer heap's compaction, and eviction
    "$py" core/tools/flows_ref.py --scan 1 120000 "$out/scan.dump" > /dev/null
    run scan default --dump "$out/scan.dump"
    run scan small --dump "$out/scan.dump"
fi
echo "captures=$n runs_equal=$ok runs_different=$bad packets=$pkts records=$recs"
[ "$bad" -eq 0 ]
