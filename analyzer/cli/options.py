"""argparse types for numeric options: a bad value is argparse's one-line usage error (exit 2), not a traceback."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

MAX_WORKERS = 64
# What one worker of `flows -j` holds open in the parent (its lines pipe, its result pipe, its sentinel,
# one spare while it starts), each child inheriting those of the workers before it; measured: 4 per worker
# and about a dozen besides.
FDS_PER_WORKER = 4
FDS_BESIDES = 16


def int_range(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `lo` to `hi`."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:  # also a number too long to convert
            shown = text if len(text) <= 24 else text[:20] + "..."
            raise argparse.ArgumentTypeError(f"not a whole number: {shown!r}") from None
        if not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"{n if abs(n) < 10**24 else 'the number'} is not in {lo}..{hi}")
        return n

    parse.__name__ = "whole number"
    return parse


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 16


def workers(text: str) -> int:
    """-j N: 1..MAX_WORKERS, and no more than the file-descriptor limit (ulimit -n) can hold."""
    n = int_range(1, MAX_WORKERS)(text)
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return n
    need = _open_fds() + FDS_PER_WORKER * n + FDS_BESIDES
    if soft != resource.RLIM_INFINITY and need > soft:
        fit = max(1, (soft - _open_fds() - FDS_BESIDES) // FDS_PER_WORKER)
        raise argparse.ArgumentTypeError(f"{n} workers need about {need} open files, the limit is {soft} "
                                         f"(ulimit -n): use -j {fit} or fewer, or raise the limit")
    return n
