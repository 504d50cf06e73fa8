"""Long fuzz run: every target (or the chosen ones) for N minutes each, crashes kept as fixtures.

    python bench/fuzz.py --minutes 5                 # every target, 5 minutes each
    python bench/fuzz.py --minutes 30 --target tls   # one target
    make fuzz FUZZ_MINUTES=10

Crashes go to tests/fixtures/fuzz/crashes/<target>/<sha1>, where tests/test_fuzz_smoke.py
replays them. Prints inputs, inputs/s and crashes per target, then the totals.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzz.mutate import run  # noqa: E402
from tests.fuzz.targets import TARGETS, seeds  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=1.0, help="per target (default 1)")
    ap.add_argument("--target", action="append", choices=sorted(TARGETS), help="repeatable; default all")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock)")
    args = ap.parse_args(argv)
    rng_seed = args.seed if args.seed is not None else int(time.time())
    names = args.target or list(TARGETS)
    all_seeds = seeds()
    print(f"seed {rng_seed}; {args.minutes:g} min per target", flush=True)
    total_inputs = total_crashes = 0
    for name in names:
        stats = run(name, TARGETS[name], all_seeds[name], seconds=args.minutes * 60, rng_seed=rng_seed)
        total_inputs += stats.inputs
        total_crashes += len(stats.crashes)
        print(f"{name:10} {stats.inputs:>10,} inputs {stats.rate:>9,.0f}/s "
              f"{len(stats.crashes)} crashes", flush=True)
        for c in stats.crashes:
            print(f"    {c.error}\n    -> {c.path}", flush=True)
    print(f"total      {total_inputs:>10,} inputs, {total_crashes} crashes", flush=True)
    return 1 if total_crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
