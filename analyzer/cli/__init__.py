"""The `apple-net` command: a thin layer over the public API.

Every subcommand module registers its parser with `register(subparsers)`.
Errors the package raises on purpose (`AnalyzerError`) become a one-line
message on stderr and exit code 2, never a traceback. So do mistakes on the
command line, with a "did you mean" for a misspelt command, choice or option,
and the usage of the (sub)command the mistake was made in.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from analyzer import __version__
from analyzer.cli import analyze, capture_guide, compare, flows, lab, live, services
from analyzer.errors import AnalyzerError

COMMANDS = (analyze, services, flows, lab, compare, live, capture_guide)
_PARSER = "_cli_parser"  # namespace attribute: the innermost (sub)command parser that parsed the arguments


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """'; did you mean 'X'?' for the closest candidate, or '' when none is close."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class Parser(argparse.ArgumentParser):
    """argparse's parser, with suggestions and each mistake reported by the (sub)command it was made in.

    Subcommand parsers are made from this class too (add_subparsers uses the parent's class).
    """

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        ns, extras = super().parse_known_args(args, namespace)
        # A subcommand's parser runs inside its parent's parse and returns first; its namespace
        # is copied into the parent's, so the innermost parser is the one recorded.
        if not hasattr(ns, _PARSER):
            setattr(ns, _PARSER, self)
        return ns, extras

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # argparse's own check (a private hook, the one Python 3.14's suggest_on_error uses), plus the suggestion.
        if action.choices is not None and value not in action.choices:
            choices = [str(c) for c in action.choices]
            raise argparse.ArgumentError(action, f"invalid choice: {value!r}{did_you_mean(str(value), choices)} "
                                                 f"(choose from {', '.join(map(repr, choices))})")

    def unrecognized(self, extras: list[str]) -> NoReturn:
        """Exit 2 with this parser's usage: the unknown arguments, and the option meant by the first unknown option."""
        options = [o for a in self._actions for o in a.option_strings]
        unknown = next((e.split("=", 1)[0] for e in extras if e.startswith("-") and e != "-"), None)
        hint = did_you_mean(unknown, options) if unknown else ""
        self.error(f"unrecognized arguments: {' '.join(extras)}{hint}")


def parse(parser: Parser, argv: Sequence[str]) -> argparse.Namespace:
    args, extras = parser.parse_known_args(argv)
    owner = vars(args).pop(_PARSER, parser)
    if extras:
        owner.unrecognized(extras)
    return args


def build_parser() -> Parser:
    parser = Parser(
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
    args = parse(parser, argv)
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
