"""Terminal rendering helpers: colour only on a TTY, the width of the terminal (or COLUMNS)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import IO

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from analyzer.report.escape import for_terminal

DEFAULT_WIDTH = 80  # what rich assumes when neither COLUMNS nor a terminal says otherwise
_WORD = re.compile(r"\S+")
_URL_BREAKS = "/?&="


def terminal_width(stream: IO[str] | None = None, width: int | None = None) -> int:
    """The columns to lay out for: `width` if given, else COLUMNS, else the stream's terminal, else 80.

    COLUMNS wins over the terminal as it does in rich, so `COLUMNS=100 apple-net analyze ...` lays the
    report out for 100 columns whatever the output is.
    """
    if width:
        return max(int(width), 20)
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return max(int(columns), 20)
    stream = stream or sys.stdout
    try:
        if stream.isatty():
            return max(os.get_terminal_size(stream.fileno()).columns, 20)
    except (AttributeError, OSError, ValueError):
        pass
    return DEFAULT_WIDTH


class TextConsole:
    """Renders rich objects to a string: a real terminal gets colour, a pipe or file gets plain text.

    `width` None keeps the old behaviour of the tables that want it (the terminal's width on a TTY,
    200 columns in a pipe); the report passes the width it laid itself out for.
    """

    def __init__(self, stream: IO[str] | None = None, width: int | None = None) -> None:
        self.stream = stream or sys.stdout
        self.is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.width = width

    def render_to_text(self, renderable: object, width: int | None = None) -> str:
        width = width or self.width or (None if self.is_tty else 200)
        console = Console(file=None, record=True, width=width, force_terminal=self.is_tty,
                          color_system="auto" if self.is_tty else None, highlight=False,
                          soft_wrap=False, no_color=not self.is_tty)
        with console.capture() as cap:
            console.print(renderable)
        text = cap.get()
        if self.is_tty:
            return text
        # A pipe or file gets no padding out to the fixed width.
        return "\n".join(line.rstrip() for line in text.split("\n"))


def make_console(stream: IO[str] | None = None) -> TextConsole:
    return TextConsole(stream)


def plain_table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, title: str | None = None) -> Table:
    """A table whose cells are shown literally: wire strings are escaped, never read as markup."""
    table = Table(title=title, title_justify="left", show_lines=False, header_style="bold")
    for h in headers:
        table.add_column(h, overflow="fold")
    for row in rows:
        table.add_row(*(Text(for_terminal(str(c))) for c in row))
    return table


def wrap_hanging(prefix: Text, body: Text, width: int, indent: int) -> list[Text]:
    """`prefix` + `body` word-wrapped to `width` cells, every line after the first indented by `indent`.

    Lines break only between words, so a host name stays whole; a single word longer than a line
    (a URL) is cut where the line ends, and its rest goes on the next, indented line, never back to
    column 0. The body's styles carry over to its pieces.
    """
    plain = body.plain
    lines: list[Text] = []
    lead: Text = prefix.copy()
    avail = max(width - lead.cell_len, 8)
    start: int | None = None  # offset in body where the current line starts
    end = 0  # offset where its last word ends
    used = 0  # cells used by the body on the current line

    def flush() -> None:
        nonlocal lead, avail, start, used
        line = lead.copy()
        if start is not None:
            line.append_text(body[start:end])
        lines.append(line)
        lead = Text(" " * indent)
        avail = max(width - indent, 8)
        start, used = None, 0

    for m in _WORD.finditer(plain):
        s, e = m.span()
        w = cell_len(plain[s:e])
        if start is not None and used + 1 + w > avail:
            flush()
        if start is not None:
            end, used = e, used + 1 + w
            continue
        # The word opens a line; fold it while it is longer than the line.
        while w > avail:
            cut, cells = s, 0
            while cut < e and cells + cell_len(plain[cut]) <= avail:
                cells += cell_len(plain[cut])
                cut += 1
            if cut == s:  # a character wider than the line: take it anyway
                cut += 1
            # A URL breaks after a / ? & or = when one is in the line's last two thirds, so the
            # host inside it stays whole.
            soft = max(plain.rfind(c, s, cut) for c in _URL_BREAKS) + 1
            if cut < e and soft > s + avail // 3:
                cut = soft
            start, end = s, cut
            flush()
            s = cut
            w = cell_len(plain[s:e])
        if s < e:
            start, end, used = s, e, w
    if start is not None or not lines:
        flush()
    return lines
