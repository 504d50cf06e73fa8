"""In-band TLS upgrades: where TLS begins inside a clear-text dialogue (pure parsing).

SMTP (RFC 3207 `STARTTLS`), IMAP (RFC 9051 `<tag> STARTTLS`), POP3 (RFC 2595
`STLS`), FTP (RFC 4217 `AUTH TLS`) and XMPP (RFC 6120 `<starttls/>`) start in
clear text and switch to TLS on the same TCP stream once the client asks and
the server agrees. Zeek follows the switch inside each protocol analyzer: on
the server's acceptance it hands the rest of the stream to its SSL analyzer.
`find_upgrade` does the same over the two reassembled directions of a flow.
It pairs the client's commands with the server's replies in order, as
Zeek's SMTP analyzer does (pipelining included: the n-th reply answers the
n-th command, a DATA body is not a command), finds the upgrade command and
the reply that answers it, and returns the stream offsets where TLS begins on
each side.

A refused upgrade (SMTP 454, IMAP NO/BAD, POP3 -ERR, FTP 4xx/5xx, XMPP
`<failure/>`) is a result too: `accepted` is False and there are no offsets.
The protocol is told by the server's greeting and the client's first command,
never by port. Only the first `MAX_DIALOGUE` bytes of each direction are read:
an upgrade comes right after the greeting and the capabilities, and a line
that is not text (a TLS record, binary junk) ends the dialogue.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from .tls import looks_like_tls

__all__ = ["MAX_DIALOGUE", "Upgrade", "UpgradeProtocol", "find_upgrade"]

MAX_DIALOGUE = 16 * 1024
"""Bytes of each direction searched for the upgrade (greeting, capabilities, a few commands)."""

MAX_TEXT = 200
"""Characters of a command or reply kept as evidence."""


class UpgradeProtocol(StrEnum):
    SMTP = "smtp"
    IMAP = "imap"
    POP3 = "pop3"
    FTP = "ftp"
    XMPP = "xmpp"


@dataclass(frozen=True, slots=True)
class Upgrade:
    """The client asked to switch to TLS; what the server said and where TLS begins."""

    protocol: UpgradeProtocol
    command: str  # the client's upgrade command as sent (escaped, bounded)
    reply: str | None  # the first line of the server's answer; None when none was seen
    accepted: bool | None  # None: no answer seen (one-sided capture, cut stream)
    client_tls: int | None  # client stream offset of its first TLS byte (just after the command)
    server_tls: int | None  # server stream offset of its first TLS byte (just after the acceptance)
    weirds: tuple[str, ...] = ()


# -- lines and replies ---------------------------------------------------------

_NOT_TEXT = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")  # control bytes but tab (CR is stripped first)


def _line(data: bytes, pos: int) -> tuple[bytes, int] | None:
    """The text line at `pos` without its end (CRLF or a bare LF) and the offset after it.

    None when the line is unterminated within `MAX_DIALOGUE` or is not text.
    """
    end = data.find(b"\n", pos, MAX_DIALOGUE)
    if end < 0:
        return None
    line = data[pos:end]
    if line.endswith(b"\r"):
        line = line[:-1]
    if _NOT_TEXT.search(line):
        return None
    return line, end + 1


def _lines(data: bytes, pos: int = 0) -> list[tuple[bytes, int]]:
    out: list[tuple[bytes, int]] = []
    got = _line(data, pos)
    while got is not None:
        out.append(got)
        got = _line(data, got[1])
    return out


@dataclass(frozen=True, slots=True)
class _Reply:
    line: bytes  # its first line
    end: int  # offset after its last line


_NUMERIC = re.compile(rb"([1-5][0-9]{2})(?:[ -]|$)")


def _numeric_reply(data: bytes, pos: int) -> _Reply | None:
    """An SMTP/FTP reply: `ddd text`, or `ddd-` lines up to the line that starts with `ddd `."""
    got = _line(data, pos)
    if got is None:
        return None
    first, end = got
    m = _NUMERIC.match(first)
    if m is None:
        return None
    code = m.group(1)
    if first[3:4] == b"-":
        # FTP (RFC 959 4.2) allows other lines in between; SMTP's all start with "ddd-".
        while True:
            got = _line(data, end)
            if got is None:
                return None
            line, end = got
            if line.startswith(code) and line[3:4] in (b"", b" "):
                break
    return _Reply(first, end)


def _code(reply: _Reply) -> int:
    return int(reply.line[:3])


class _Replies:
    """The server's replies in order; None for every one past the last complete reply."""

    __slots__ = ("_data", "_done", "_pos", "_read")

    def __init__(self, data: bytes, read: Callable[[bytes, int], _Reply | None]) -> None:
        self._data = data
        self._read = read
        self._pos = 0
        self._done = not data

    def next(self, read: Callable[[bytes, int], _Reply | None] | None = None) -> _Reply | None:
        """The next reply, read by `read` when this one has its own shape (a POP3 list)."""
        if self._done:
            return None
        reply = (read or self._read)(self._data, self._pos)
        if reply is None:
            self._done = True
            return None
        self._pos = reply.end
        return reply


def _escape(raw: bytes) -> str:
    raw = raw[:MAX_TEXT]
    return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in raw)


def _verb(line: bytes) -> tuple[bytes, bytes]:
    word, _, arg = line.strip().partition(b" ")
    return word.upper(), arg.strip()


# -- the result ------------------------------------------------------------------

_SNIFF = 8  # bytes `looks_like_tls` needs to tell a TLS record (or an SSLv2 ClientHello)


def _result(
    protocol: UpgradeProtocol,
    client: bytes,
    server: bytes,
    command: bytes,
    command_end: int,
    reply: _Reply | None,
    accepted: bool | None,
) -> Upgrade:
    weirds: list[str] = []
    client_tls = server_tls = None
    c_rest = client[command_end:command_end + _SNIFF]  # enough to tell a TLS record
    if accepted is False:
        if looks_like_tls(c_rest):
            weirds.append("starttls_tls_after_refusal")
    elif looks_like_tls(c_rest):
        client_tls = command_end
    elif c_rest and accepted:
        # Clear text after an accepted upgrade: a client that pipelined past STARTTLS
        # (the command injection of CVE-2011-0411), or a stream we misread.
        weirds.append("starttls_client_not_tls")
    if accepted and reply is not None:
        s_rest = server[reply.end:reply.end + _SNIFF]
        if looks_like_tls(s_rest):
            server_tls = reply.end
        elif s_rest:
            weirds.append("starttls_server_not_tls")
    elif accepted is None and client_tls is not None and server:
        # The client went on in TLS, so the server said yes; we could not pair its answer.
        for _, end in _lines(server):
            if looks_like_tls(server[end:end + _SNIFF]):
                server_tls = end
                break
        weirds.append("starttls_reply_unmatched")
    return Upgrade(
        protocol, _escape(command), _escape(reply.line) if reply is not None else None,
        accepted, client_tls, server_tls, tuple(weirds),
    )


# -- per protocol ------------------------------------------------------------------

def _smtp(client: bytes, server: bytes) -> Upgrade | None:
    replies = _Replies(server, _numeric_reply)
    replies.next()  # the greeting answers the connection
    pos = 0
    in_data = False
    while (got := _line(client, pos)) is not None:
        line, end = got
        if in_data:
            if line == b".":  # end of the message: one reply
                replies.next()
                in_data = False
            pos = end
            continue
        verb, arg = _verb(line)
        reply = replies.next()
        if verb == b"STARTTLS":
            accepted = None if reply is None else _code(reply) == 220
            return _result(UpgradeProtocol.SMTP, client, server, line, end, reply, accepted)
        if verb == b"DATA" and (reply is None or _code(reply) == 354):
            in_data = True
        elif verb == b"BDAT":  # RFC 3030: the chunk's bytes follow the command line
            size = arg.split(b" ", 1)[0]
            if not size.isdigit():
                return None
            end += int(size)
        pos = end
    return None


_FTP_TLS_MECHANISMS = (b"TLS", b"SSL", b"TLS-C", b"TLS-P")


def _ftp(client: bytes, server: bytes) -> Upgrade | None:
    replies = _Replies(server, _numeric_reply)

    def final() -> _Reply | None:
        # A 1yz reply is preliminary: another reply to the same command follows.
        reply = replies.next()
        while reply is not None and _code(reply) < 200:
            reply = replies.next()
        return reply

    final()  # the greeting (120 then 220, or 220)
    pos = 0
    while (got := _line(client, pos)) is not None:
        line, end = got
        verb, arg = _verb(line)
        reply = final()
        if verb == b"AUTH" and arg.upper() in _FTP_TLS_MECHANISMS:
            accepted = None if reply is None else _code(reply) == 234
            return _result(UpgradeProtocol.FTP, client, server, line, end, reply, accepted)
        pos = end
    return None


def _pop3_reply(multiline: bool) -> Callable[[bytes, int], _Reply | None]:
    def read(data: bytes, pos: int) -> _Reply | None:
        got = _line(data, pos)
        if got is None:
            return None
        first, end = got
        if not first.startswith((b"+", b"-ERR")):  # +OK, -ERR, or "+ " continuing an AUTH
            return None
        if multiline and first.startswith(b"+OK"):
            while True:  # up to the line that is a lone "."
                got = _line(data, end)
                if got is None:
                    return None
                line, end = got
                if line == b".":
                    break
        return _Reply(first, end)

    return read


_POP3_LISTS = (b"CAPA", b"RETR", b"TOP")  # always answered with a multi-line +OK
_POP3_LISTS_WITHOUT_ARG = (b"LIST", b"UIDL")  # multi-line only without an argument


_pop3_line, _pop3_list = _pop3_reply(False), _pop3_reply(True)


def _pop3(client: bytes, server: bytes) -> Upgrade | None:
    replies = _Replies(server, _pop3_line)
    replies.next()  # the greeting
    pos = 0
    while (got := _line(client, pos)) is not None:
        line, end = got
        verb, arg = _verb(line)
        multiline = verb in _POP3_LISTS or (verb in _POP3_LISTS_WITHOUT_ARG and not arg)
        answer = replies.next(_pop3_list if multiline else None)
        if verb == b"STLS":
            accepted = None if answer is None else answer.line.startswith(b"+OK")
            return _result(UpgradeProtocol.POP3, client, server, line, end, answer, accepted)
        pos = end
    return None


_LITERAL = re.compile(rb"\{([0-9]{1,9})\+?\}$")  # an IMAP literal's size at the end of a line


def _imap(client: bytes, server: bytes) -> Upgrade | None:
    pos = 0
    tags: list[bytes] = []  # of the commands before STARTTLS
    found: tuple[bytes, bytes, int] | None = None  # tag, command line, offset after it
    while (got := _line(client, pos)) is not None:
        line, end = got
        parts = line.split()
        if len(parts) == 2 and parts[1].upper() == b"STARTTLS":
            found = (parts[0], line, end)
            break
        if parts:
            tags.append(parts[0])
        if (m := _LITERAL.search(line)) is not None:
            end += int(m.group(1))
        pos = end
    if found is None:
        return None
    tag, command, command_end = found
    # A client may use one tag for every command (OpenSSL's s_client sends ". CAPABILITY", ". STARTTLS"):
    # the answer to STARTTLS is then the tagged completion after those of the earlier commands.
    earlier = tags.count(tag)
    spos = 0
    while (got := _line(server, spos)) is not None:
        line, end = got
        if line.startswith(tag + b" "):
            status = line[len(tag) + 1:].split(b" ", 1)[0].upper()
            if status in (b"OK", b"NO", b"BAD"):
                if not earlier:
                    return _result(UpgradeProtocol.IMAP, client, server, command, command_end,
                                   _Reply(line, end), status == b"OK")
                earlier -= 1
        if (m := _LITERAL.search(line)) is not None:
            end += int(m.group(1))
        spos = end
    return _result(UpgradeProtocol.IMAP, client, server, command, command_end, None, None)


_TLS_NS = rb"""xmlns\s*=\s*['"]urn:ietf:params:xml:ns:xmpp-tls['"]"""


def _xmpp_element(name: bytes) -> re.Pattern[bytes]:
    # <name xmlns='...-tls'/> or <name xmlns='...-tls'>...</name>
    return re.compile(rb"<" + name + rb"\b[^>]*?" + _TLS_NS + rb"[^>]*?(?:/>|>[^<]*(?:<[^>]*>[^<]*)*?</" + name + rb"\s*>)")


_XMPP_STARTTLS = _xmpp_element(b"starttls")
_XMPP_PROCEED = _xmpp_element(b"proceed")
_XMPP_FAILURE = _xmpp_element(b"failure")


def _xmpp(client: bytes, server: bytes) -> Upgrade | None:
    m = _XMPP_STARTTLS.search(client, 0, MAX_DIALOGUE)
    if m is None:
        return None
    command, command_end = m.group(0), m.end()
    proceed = _XMPP_PROCEED.search(server, 0, MAX_DIALOGUE)
    failure = _XMPP_FAILURE.search(server, 0, MAX_DIALOGUE)
    if proceed is not None and (failure is None or proceed.start() < failure.start()):
        reply: _Reply | None = _Reply(proceed.group(0), proceed.end())
        accepted: bool | None = True
    elif failure is not None:
        reply, accepted = _Reply(failure.group(0), failure.end()), False
    else:
        reply, accepted = None, None
    return _result(UpgradeProtocol.XMPP, client, server, command, command_end, reply, accepted)


# -- which protocol ------------------------------------------------------------------

_SMTP_FIRST = (b"EHLO", b"HELO", b"LHLO")
_FTP_FIRST = (b"AUTH", b"USER", b"FEAT", b"SYST", b"OPTS", b"PBSZ", b"PROT", b"HOST", b"CLNT")
_POP3_FIRST = (b"CAPA", b"STLS", b"APOP")
_IMAP_FIRST = (b"CAPABILITY", b"STARTTLS", b"LOGIN", b"AUTHENTICATE", b"ID", b"NOOP")


def _protocol(client: bytes, server: bytes) -> UpgradeProtocol | None:
    """Which dialogue this is, from the server's greeting and the client's first command."""
    c0 = client.lstrip()[:1]
    if c0 == b"<":
        head = client[:512]
        return UpgradeProtocol.XMPP if b"<stream" in head or b"jabber" in head else None
    if not c0 or not 0x21 <= c0[0] <= 0x7E:  # a command (or an IMAP tag) starts with a printable
        return None
    got = _line(client, 0)
    if got is None:
        return None
    verb, arg = _verb(got[0])
    if server.startswith(b"+OK"):
        return UpgradeProtocol.POP3
    if server.startswith(b"* "):
        return UpgradeProtocol.IMAP
    if server and not server.startswith((b"220", b"120")):
        return None
    # SMTP and FTP both greet with 220 (and a one-sided capture has no greeting).
    if verb in _SMTP_FIRST or (verb == b"STARTTLS" and server):
        return UpgradeProtocol.SMTP
    if verb in _FTP_FIRST:
        return UpgradeProtocol.FTP
    if not server:
        if verb in _POP3_FIRST:
            return UpgradeProtocol.POP3
        tagged = arg.split(b" ", 1)[0].upper()
        if tagged in _IMAP_FIRST:
            return UpgradeProtocol.IMAP
    return None


_WALKS: dict[UpgradeProtocol, Callable[[bytes, bytes], Upgrade | None]] = {
    UpgradeProtocol.SMTP: _smtp,
    UpgradeProtocol.FTP: _ftp,
    UpgradeProtocol.POP3: _pop3,
    UpgradeProtocol.IMAP: _imap,
    UpgradeProtocol.XMPP: _xmpp,
}


def find_upgrade(client: bytes, server: bytes) -> Upgrade | None:
    """The TLS upgrade in this clear-text dialogue, or None when the client asked for none.

    `client` and `server` are each direction's bytes from the stream's start.
    """
    protocol = _protocol(client, server)
    if protocol is None:
        return None
    return _WALKS[protocol](client, server)
