"""The `apple-net` command: a thin layer over the public API.

Every subcommand module registers its parser with `register(subparsers)`.
Errors the package raises on purpose (`AnalyzerError`) become a one-line
message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from analyzer import __version__
from analyzer.cli import analyze, capture_guide, compare, flows, lab, live, services
from analyzer.errors import AnalyzerError

COMMANDS = (analyze, services, flows, lab, compare, live, capture_guide)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apple-net",
        description="Do the Apple services your Macs, iPhones and iPads need work on this network? "
        "And if not, what is in the way?",
    )
    parser.add_argument("--version", action="version", version=f"apple-net-analyzer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lab"]:
        # The lab has its own option parser; hand it every argument untouched.
        return lab.run(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except AnalyzerError as exc:
        print(f"apple-net: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `apple-net services | head`: the reader went away; that is not an error.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("apple-net: interrupted", file=sys.stderr)
        return 130
