"""Escaping of strings that came off the wire, for each place they go.

Everything from a capture (SNI, certificate names, DNS names, HTTP headers) is
untrusted: it may hold HTML, spreadsheet formulas or terminal escape sequences.
"""

from __future__ import annotations

import html
import re

# C0 controls except tab/newline, DEL, C1 controls (ESC-less CSI 0x9b among them), and the
# invisible bidi/zero-width marks that make a hostile name display as a different one.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def _visible(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: str) -> str:
    """Control characters (ESC, BEL, CR, C1 ...) shown as \\xNN so they cannot drive the terminal."""
    return _CONTROL.sub(_visible, text.replace("\n", "\\n").replace("\t", "\\t"))


def for_html(text: str) -> str:
    return html.escape(_CONTROL.sub(_visible, text), quote=True)


def for_csv(text: str) -> str:
    """Neutralise spreadsheet formula injection (OWASP: prefix with a quote) and control characters."""
    t = _CONTROL.sub(_visible, text)
    if t.startswith(_FORMULA_START):
        return "'" + t
    return t


def for_markdown(text: str) -> str:
    t = for_terminal(text)
    t = html.escape(t, quote=False)
    return re.sub(r"([\\`*_{}\[\]()#+!|~>-])", r"\\\1", t)
