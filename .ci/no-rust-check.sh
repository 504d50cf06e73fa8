#!/usr/bin/env bash
# A machine without Rust: the package still installs (the core's build is skipped), runs on the
# Python engine with one notice line, and the suite passes on that engine (issue 15).
#   1. `pip install .` into a scratch venv with no cargo or rustc on PATH: no _core*.so, and
#      `apple-net flows` on the sample works and says why the Python engine runs.
#   2. The suite without the lab on the project's venv with the core disabled (APPLE_NET_NO_CORE:
#      the same code path as a missing library), so every test sees the Python engine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/bin"
python=$(python3 -c 'import sys; print(sys.executable)')  # the real binary, not a pyenv shim script
ln -s "$python" "$scratch/bin/python3"
for tool in sh bash git gcc cc; do  # what a pure-Python wheel build may call; never cargo or rustc
    command -v "$tool" >/dev/null && ln -s "$(command -v "$tool")" "$scratch/bin/$tool"
done
env -u CARGO -u RUSTC PATH="$scratch/bin" python3 -m venv "$scratch/venv"
# From the committed sources only: a build/ folder left by another install (tests/test_packaging.py
# builds wheels with the core) would hand its compiled core to this wheel.
mkdir "$scratch/src"
git archive --format=tar HEAD | tar -x -C "$scratch/src"
env -u CARGO -u RUSTC PATH="$scratch/bin" "$scratch/venv/bin/python" -m pip install -q --disable-pip-version-check \
    "$scratch/src" >"$scratch/pip.log" 2>&1 || { cat "$scratch/pip.log" >&2; exit 1; }
site=$("$scratch/venv/bin/python" -I -c 'import analyzer, os; print(os.path.dirname(analyzer.__file__))')
if ls "$site"/native/_core* >/dev/null 2>&1; then
    echo "no-rust-check: a compiled core was built without a Rust toolchain on PATH" >&2
    exit 1
fi
err="$scratch/stderr"
env -u CARGO -u RUSTC PATH="$scratch/bin" "$scratch/venv/bin/apple-net" flows samples/mixed_session.pcap \
    --format jsonl -o "$scratch/flows.jsonl" 2>"$err"
grep -q '"event_type":"flow"' "$scratch/flows.jsonl"
[ "$(grep -c 'compiled core' "$err")" = 1 ] || { cat "$err" >&2; echo "no-rust-check: expected one notice line" >&2; exit 1; }
echo "no-rust-check: installed without Rust; $(cat "$err")"

APPLE_NET_NO_CORE=1 "$PY" -m pytest -q -p no:cacheprovider -m 'not lab'
