"""`apple-net compare BEFORE AFTER`: what a firewall or proxy change did to Apple services."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from analyzer.catalogue import EDITIONS
from analyzer.cli.output import write_text
from analyzer.errors import AnalyzerError


def register(sub: Any) -> None:
    p = sub.add_parser("compare", help="compare two captures (before and after a change): services and findings",
                       description="Analyse BEFORE and AFTER and say which Apple services changed status and which "
                       "findings appeared or disappeared. Either side may also be a saved `apple-net analyze "
                       "--format json` report. A service missing from AFTER was not exercised there: it is "
                       "reported as 'no longer seen', never as fixed.")
    p.add_argument("before", metavar="BEFORE", help="capture (pcap, pcapng, .gz) or JSON report from before")
    p.add_argument("after", metavar="AFTER", help="capture or JSON report from after")
    p.add_argument("--format", choices=("table", "json", "md"), default="table")
    p.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of stdout")
    p.add_argument("--edition", choices=EDITIONS, default="current", help="edition of Apple's article (default current)")
    p.add_argument("--signatures", metavar="DIR", help="use this signatures directory instead of the packaged one")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when a service got worse or an error finding appeared")
    p.set_defaults(func=cmd_compare)


def _load(path: str, args: argparse.Namespace) -> dict[str, Any]:
    """A capture is analysed; a JSON report (what `analyze --format json` wrote) is read as it is."""
    p = Path(path)
    if not p.is_file():
        raise AnalyzerError(f"{path}: no such file")
    with p.open("rb") as fh:
        head = fh.read(64).lstrip()
    if head.startswith(b"{"):
        from analyzer.compare import check_report

        try:
            report = json.loads(p.read_text(encoding="utf-8"))
        except RecursionError:
            raise AnalyzerError(f"{path}: not a JSON report (nested too deeply)") from None
        except ValueError as exc:  # also UnicodeDecodeError, and an integer too long to convert
            raise AnalyzerError(f"{path}: not a JSON report ({exc})") from None
        if not isinstance(report, dict) or "services" not in report or "findings" not in report:
            raise AnalyzerError(f"{path}: JSON, but not an apple-net report (no services/findings)")
        try:
            return dict(check_report(report))
        except ValueError as exc:
            raise AnalyzerError(f"{path}: not an apple-net report: {exc}") from None
    from analyzer.analysis import analyze

    return analyze(path, edition=args.edition, signatures=args.signatures).report


def _table(comparison: Any) -> str:
    from rich.console import Group
    from rich.text import Text

    from analyzer.compare import CHANGE_ORDER, Change
    from analyzer.report.escape import for_terminal
    from analyzer.report.terminal import make_console, plain_table

    c = comparison
    parts: list[Any] = [Text(for_terminal(c.headline), style="bold"),
                        Text(f"before: {for_terminal(c.before.headline)}  [{for_terminal(', '.join(c.before.sources))}]"),
                        Text(f"after:  {for_terminal(c.after.headline)}  [{for_terminal(', '.join(c.after.sources))}]"),
                        Text("")]
    changed = [s for s in c.services if s.change is not Change.SAME]
    if changed:
        order = {ch: i for i, ch in enumerate(CHANGE_ORDER)}
        rows = [(s.change.value.replace("_", " "), s.host, s.section, s.before, s.after, s.advice or "")
                for s in sorted(changed, key=lambda s: order[s.change])]
        parts.append(plain_table(("Change", "Host", "Section", "Before", "After", "Advice"), rows,
                                 title="Services whose status changed"))
    same = len(c.services) - len(changed)
    parts.append(Text(f"{same} service{'s' if same != 1 else ''} unchanged."))
    if c.findings:
        rows = [(f.change.value.replace("_", " "), f.severity, f.message, f.kind, f.before_count, f.after_count)
                for f in c.findings]
        parts.append(plain_table(("Change", "Severity", "Finding", "Kind", "Before", "After"), rows, title="Findings"))
    return make_console().render_to_text(Group(*parts))


def cmd_compare(args: argparse.Namespace) -> int:
    from analyzer.compare import compare

    comparison = compare(_load(args.before, args), _load(args.after, args))
    if args.format == "json":
        write_text(json.dumps(comparison.to_dict(), indent=2) + "\n", args.output)
    elif args.format == "md":
        write_text(comparison.to_markdown(), args.output)
    else:
        write_text(_table(comparison), args.output)
    return 1 if args.fail_on_regression and comparison.regressed else 0
