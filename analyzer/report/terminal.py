"""Terminal rendering helpers: colour only on a TTY, plain width when piped."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import IO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from analyzer.report.escape import for_terminal


class TextConsole:
    """Renders rich objects to a string: a real terminal gets colour, a pipe or file gets plain text."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.is_tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def render_to_text(self, renderable: object) -> str:
        width = None if self.is_tty else 200
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
