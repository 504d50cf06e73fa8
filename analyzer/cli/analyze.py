"""`apple-net analyze FILE...`: the product's answer for captures from a problem Mac."""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from analyzer.capture.reader import STDIN
from analyzer.catalogue import EDITIONS
from analyzer.cli.output import open_binary_output, require_stdout, stdout_errors, write_text
from analyzer.errors import AnalyzerError

FORMATS = ("table", "json", "jsonl", "md", "csv", "html")
SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}


def register(sub: Any) -> None:
    p = sub.add_parser("analyze", help="which Apple services work in these captures, and what blocks the others",
                       description="Attribute every flow to a documented Apple service, judge it (ok, no_response, "
                       "refused, reset, tls_failed, intercepted, incomplete), find HTTPS inspection and DNS filtering, "
                       "and say what to change.")
    p.add_argument("files", nargs="+", metavar="FILE", help="pcap, pcapng or .gz captures (read as one); - for standard input")
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="table: the answer laid out for the terminal's width (COLUMNS); csv: one table, the "
                   "flows unless --csv-of says otherwise (default table)")
    add_layout_options(p)
    p.add_argument("-o", "--output", metavar="PATH", help="write the report to PATH instead of stdout")
    p.add_argument("--html", metavar="PATH", help="also write the HTML report to PATH")
    p.add_argument("--edition", choices=EDITIONS, default="current", help="edition of Apple's article (default current)")
    p.add_argument("--signatures", metavar="DIR", help="use this signatures directory instead of the packaged one")
    p.add_argument("--all-services", action="store_true", help="list every catalogue entry, also those not seen")
    p.add_argument("--client", metavar="ADDR|MAC|CIDR",
                   help="look at one device only (its every address: IPv4, IPv6, by MAC when the capture shows it)")
    p.add_argument("--fail-on", choices=("warning", "error"), help="exit 1 when a finding at or above this severity exists")
    add_max_bytes(p)
    p.add_argument("--max-memory", type=memory_mb, metavar="MB", help=MAX_MEMORY_HELP)
    p.set_defaults(func=cmd_analyze)


MAX_MEMORY_HELP = ("stop reading once the resident memory passes MB MiB, say so, and write the report of what "
                   "was read, marked partial (default: no limit; a MemoryError stops reading the same way)")


def memory_mb(text: str) -> int:
    """--max-memory's value: a whole number of MiB, at least 1."""
    try:
        mb = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of MiB: {text!r}") from None
    if mb < 1:
        raise argparse.ArgumentTypeError("must be at least 1 (MiB)")
    return mb


def add_layout_options(p: argparse.ArgumentParser) -> None:
    """--wide and --csv-of: how the table and csv formats lay the report out (analyze and live)."""
    from analyzer.report.csv_report import TABLES

    p.add_argument("--wide", action="store_true",
                   help="table: every detail column (section, attempts, verdicts, names seen) and the full advice "
                   "in the services table, however wide it gets")
    p.add_argument("--csv-of", choices=tuple(TABLES), default="flows", metavar="|".join(TABLES),
                   help="csv: which table to write: " + "; ".join(f"{k}: {v}" for k, v in TABLES.items())
                   + " (default flows)")


def write_report(report: dict[str, Any], fmt: str, output: str | None, *, show_not_seen: bool = False,
                 wide: bool = False, csv_of: str = "flows") -> None:
    """Render a report in `fmt` to `output` (a path, or stdout for None or "-"); shared by analyze and live."""
    if fmt in ("json", "jsonl"):
        # Bytes straight to the output: these are the formats of big captures.
        from analyzer.report.jsonl import events, json_document, json_line

        with open_binary_output(output) as out:
            if fmt == "json":
                out.write(json_document(report))
            else:
                for event in events(report):
                    out.write(json_line(event))
        return
    if fmt == "csv":
        from analyzer.report.csv_report import TABLES, render_csv

        write_text(render_csv(report, csv_of), output)
        # What the file holds, said where it cannot spoil the data.
        print(f"apple-net: CSV of the {csv_of} table, {TABLES[csv_of]} (--csv-of {'|'.join(TABLES)})",
              file=sys.stderr)
        return
    if fmt != "table":
        write_text(renderer(fmt)(report), output)
        return
    from analyzer.report.terminal_report import render_terminal

    if output and output != "-":
        buf = io.StringIO()
        render_terminal(report, buf, color=False, show_not_seen=show_not_seen, wide=wide)
        write_text(buf.getvalue(), output)  # atomically: a render error leaves the previous file
    else:
        with stdout_errors() as out:
            render_terminal(report, out, show_not_seen=show_not_seen, wide=wide)


def renderer(fmt: str) -> Callable[[dict[str, Any]], str]:
    """The renderer of a text format (md, csv, html): report dict in, text out. JSON is written as bytes."""
    if fmt == "md":
        from analyzer.report.markdown import render_markdown

        return render_markdown
    if fmt == "csv":
        from analyzer.report.csv_report import render_csv

        return render_csv
    from analyzer.report.html import render_html

    return render_html


@contextlib.contextmanager
def progress_bar(files: list[str], min_bytes: int = 20 * 1024 * 1024) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr for long files, only when stderr is a terminal."""
    total = sum(Path(f).stat().st_size for f in files if Path(f).is_file())
    if not sys.stderr.isatty() or total < min_bytes:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    done_before = 0  # bytes of the files already read
    last = 0
    with Progress("reading", BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=Console(file=sys.stderr), transient=True) as bar:
        task = bar.add_task("read", total=total)

        def update(read: int, _file_total: int) -> None:
            nonlocal done_before, last
            if read < last:  # the next file began
                done_before += last
            last = read
            bar.update(task, completed=done_before + read)

        yield update


def byte_size(text: str) -> int:
    """`--max-bytes` values: a number of bytes, optionally with K, M, G or T (powers of 1024)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1:] if t[-1:] in units else ""
    try:
        value = float(t[: len(t) - len(unit)])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500M, 20G)") from None
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 byte: {text!r}")
    return int(value * units[unit])


def add_max_bytes(p: argparse.ArgumentParser) -> None:
    """The input options every reading command shares: --max-bytes and --engine."""
    p.add_argument("--engine", choices=("native", "python", "auto"), default=None,
                   help="the packet loop: native (the compiled core), python (the reference engine) or "
                   "auto, the default: native when it was built at install time (APPLE_NET_ENGINE sets the default)")
    p.add_argument("--max-bytes", type=byte_size, metavar="SIZE",
                   help="refuse a capture holding more than SIZE bytes of data once gunzipped (e.g. 20G): "
                   "one line and exit 2 instead of inflating a gzip bomb to its end (default: no limit)")


def engine_config(args: argparse.Namespace) -> Any:
    """The EngineConfig the input options ask for, or None for the defaults."""
    engine = getattr(args, "engine", None)
    if args.max_bytes is None and engine is None:
        return None
    from analyzer.engine import EngineConfig

    return EngineConfig(max_bytes=args.max_bytes, engine=engine)


def check_inputs(files: list[str]) -> None:
    """`-` (standard input) at most once: a stream can be read only once."""
    if files.count(STDIN) > 1:
        raise AnalyzerError("standard input (-) can be given only once")


def cmd_analyze(args: argparse.Namespace) -> int:
    from analyzer.analysis import analyze
    from analyzer.engine import relaxed_gc, set_memory_limit

    check_inputs(args.files)
    set_memory_limit(args.max_memory)
    for f in args.files:
        if f != STDIN and not Path(f).exists():
            raise AnalyzerError(f"{f}: no such file")
    require_stdout(args.output)
    # Rendering happens while every flow is still alive: keep the collector relaxed (see relaxed_gc).
    with relaxed_gc():
        with progress_bar(args.files) as progress:
            analysis = analyze(args.files, edition=args.edition, signatures=args.signatures,
                               all_services=args.all_services, progress=progress, client=args.client,
                               config=engine_config(args))
        report = analysis.report
        write_report(report, args.format, args.output, show_not_seen=args.all_services, wide=args.wide,
                     csv_of=args.csv_of)
        if args.html:
            write_text(analysis.to_html(), args.html)
            print(f"HTML report written to {args.html}", file=sys.stderr)
        severities = [f["severity"] for f in report["findings"]]
        # Freed here, by reference counts: left alive past the block, the millions of records
        # would be rescanned by the full collection that restoring the thresholds sets off.
        del analysis, report
    if args.fail_on:
        threshold = SEVERITY_RANK[args.fail_on]
        if any(SEVERITY_RANK.get(s, 0) >= threshold for s in severities):
            return 1
    return 0
