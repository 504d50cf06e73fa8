"""HTTP/1.x message heads from the start of a TCP stream (RFC 9112): pure parsing.

What the analyzer reads in clear HTTP: the request a client sends first
(method, target, Host; the host:port of a CONNECT to a proxy; whether it is
a certificate-status fetch: OCSP, CRL, or an issuer certificate), and the
status line a server or proxy answers with (200 to a CONNECT, 403 from a
filtering proxy, 407 when it wants credentials).

`parse_request_head` / `parse_response_head` return None while the head is
incomplete (no empty line yet) and raise `ParseError` for a head that cannot
be HTTP/1.x (kinds `http_*`), or that is still open past `max_head` bytes
(`http_head_too_long`). Header names compare case-insensitively; obsolete
line folding is joined with one space; a bare LF ends a line as CRLF does
(RFC 9112 2.2). Every string handed out is printable ASCII: other bytes
(and the backslash) appear as `\\xHH`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._buffer import ParseError

__all__ = [
    "MAX_HEAD",
    "MAX_HEADERS",
    "ConnectTarget",
    "HTTPRequest",
    "HTTPResponse",
    "looks_like_http_request",
    "looks_like_http_response",
    "parse_request_head",
    "parse_response_head",
]

MAX_HEAD = 16 * 1024  # h11's default limit for an incomplete head
MAX_HEADERS = 128

METHODS = (b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(rb"HTTP/1\.[0-9]")
_STATUS = re.compile(rb"(HTTP/1\.[0-9]) ([0-9]{3})(?: (.*))?")
_CERT_SUFFIXES = (".crt", ".cer", ".der", ".p7c")


_PLAIN = re.compile(rb"[ -\[\]-~]*")  # printable ASCII but the backslash


def _escape(raw: bytes) -> str:
    if _PLAIN.fullmatch(raw):
        return raw.decode("ascii")
    return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in raw)


Headers = tuple[tuple[str, str], ...]


def _find(headers: Headers, name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


@dataclass(frozen=True, slots=True)
class ConnectTarget:
    host: str  # an IPv6 literal without its brackets
    port: int


@dataclass(frozen=True, slots=True)
class HTTPRequest:
    method: str
    target: str
    version: str
    headers: Headers  # wire order, names as sent
    head_length: int  # bytes up to and including the empty line

    def header(self, name: str) -> str | None:
        """The first value of a header, by case-insensitive name."""
        return _find(self.headers, name)

    @property
    def host(self) -> str | None:
        return self.header("host")

    @property
    def user_agent(self) -> str | None:
        return self.header("user-agent")

    @property
    def connect_target(self) -> ConnectTarget | None:
        return _authority(self.target) if self.method == "CONNECT" else None

    @property
    def path(self) -> str:
        """The path of an origin-form or absolute-form target ("" for CONNECT, "*" for OPTIONS *)."""
        target = self.target
        if self.method == "CONNECT":
            return ""
        lowered = target.lower()
        for scheme in ("http://", "https://"):
            if lowered.startswith(scheme):
                rest = target[len(scheme) :]
                slash = rest.find("/")
                return rest[slash:] if slash >= 0 else "/"
        return target

    @property
    def _path_only(self) -> str:
        return self.path.split("?", 1)[0].split("#", 1)[0].lower()

    @property
    def is_ocsp(self) -> bool:
        """An OCSP query: POSTed application/ocsp-request, or a GET to an OCSP path or host.

        Apple's responders take GET /ocspNN-<issuer>/<base64 request>; other
        CAs' are usually named ocsp.<ca> and take the base64 at the root.
        """
        if self.method == "POST":
            content_type = (self.header("content-type") or "").split(";", 1)[0].strip().lower()
            return content_type == "application/ocsp-request"
        if self.method != "GET":
            return False
        host = (self.host or "").lower()
        return self._path_only.startswith("/ocsp") or host.startswith("ocsp")

    @property
    def is_crl(self) -> bool:
        return self.method == "GET" and self._path_only.endswith(".crl")

    @property
    def is_certificate_fetch(self) -> bool:
        """A GET of an issuer certificate (AIA caIssuers), as trustd does."""
        return self.method == "GET" and self._path_only.endswith(_CERT_SUFFIXES)


@dataclass(frozen=True, slots=True)
class HTTPResponse:
    version: str
    status: int
    reason: str
    headers: Headers
    head_length: int

    def header(self, name: str) -> str | None:
        return _find(self.headers, name)


def _authority(target: str) -> ConnectTarget:
    """host:port of a CONNECT (RFC 9112 3.2.3); the port is required."""
    if target.startswith("["):
        end = target.find("]")
        host, rest = target[1:end], target[end + 1 :]
        if end < 0 or not rest.startswith(":"):
            raise ParseError("http_bad_connect_target", target)
        port_text = rest[1:]
    else:
        host, sep, port_text = target.rpartition(":")
        if not sep:
            raise ParseError("http_bad_connect_target", target)
    if not host or not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5) \
            or not 0 < int(port_text) < 65536:
        raise ParseError("http_bad_connect_target", target)
    return ConnectTarget(host, int(port_text))


def _head_lines(data: bytes, max_head: int, weirds: list[str] | None = None) -> tuple[list[bytes], int] | None:
    """The lines of the head (no line ends) and its length, or None if incomplete.

    More than MAX_HEADERS lines raise; with `weirds` (a passive observer) the start line and
    the first MAX_HEADERS header lines are kept, the rest skipped and the kind noted once:
    a CONNECT with a flood of headers still names its target.
    """
    lines: list[bytes] = []
    dropping = False
    pos = 0
    while True:
        newline = data.find(b"\n", pos, max_head)
        if newline < 0:
            if len(data) >= max_head:
                raise ParseError("http_head_too_long", f"no end of head in {max_head} bytes")
            return None
        line = data[pos:newline]
        pos = newline + 1
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            if lines:
                return lines, pos
            continue  # empty lines before the start line are to be ignored (RFC 9112 2.2)
        if len(lines) > MAX_HEADERS:
            if weirds is None:
                raise ParseError("http_too_many_headers", f"more than {MAX_HEADERS}")
            if not dropping:
                dropping = True
                weirds.append("http_too_many_headers")
            continue
        lines.append(line)


def _headers(lines: list[bytes], weirds: list[str] | None) -> Headers:
    """The header fields; a malformed line raises, or with `weirds` is skipped and its kind noted there."""
    out: list[tuple[str, str]] = []
    skipping = False  # the folded lines of a skipped line go with it
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if skipping:
                continue
            if not out:
                _bad_line(weirds, "http_fold_without_header", "continuation line right after the start line")
                skipping = True
                continue
            name, value = out[-1]
            continuation = _escape(line.strip(b" \t"))
            out[-1] = (name, f"{value} {continuation}".strip())
            continue
        raw_name, colon, raw_value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(raw_name):
            _bad_line(weirds, "http_bad_header", _escape(line[:40]))
            skipping = True
            continue
        skipping = False
        out.append((raw_name.decode("ascii"), _escape(raw_value.strip(b" \t"))))
    return tuple(out)


def _bad_line(weirds: list[str] | None, kind: str, detail: str) -> None:
    if weirds is None:
        raise ParseError(kind, detail)
    weirds.append(kind)


def parse_request_head(data: bytes, *, max_head: int = MAX_HEAD, weirds: list[str] | None = None) -> HTTPRequest | None:
    """Parse the request head at the start of a client's stream.

    With `weirds`, a malformed header line (`Host : x`, a fold right after
    the start line) is skipped and its kind appended there, as a passive
    observer must: the server may well have accepted it. Without, it raises.
    """
    found = _head_lines(bytes(data), max_head, weirds)
    if found is None:
        return None
    lines, length = found
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1] or not _VERSION.fullmatch(parts[2]):
        raise ParseError("http_bad_request_line", _escape(lines[0][:80]))
    method, target, version = parts
    return HTTPRequest(method.decode("ascii"), _escape(target), version.decode("ascii"), _headers(lines[1:], weirds),
                       length)


def parse_response_head(data: bytes, *, max_head: int = MAX_HEAD, weirds: list[str] | None = None) -> HTTPResponse | None:
    """Parse the response head at the start of a server's (or proxy's) stream; `weirds` as for requests."""
    found = _head_lines(bytes(data), max_head, weirds)
    if found is None:
        return None
    lines, length = found
    match = _STATUS.fullmatch(lines[0])
    if match is None:
        raise ParseError("http_bad_status_line", _escape(lines[0][:80]))
    version, status, reason = match.groups()
    return HTTPResponse(version.decode("ascii"), int(status), _escape(reason or b""), _headers(lines[1:], weirds), length)


def looks_like_http_request(data: bytes) -> bool:
    """The stream starts with a known method and a space (content sniffing)."""
    head = bytes(data[:8])
    return any(head.startswith(method + b" ") for method in METHODS)


def looks_like_http_response(data: bytes) -> bool:
    """The stream starts like an HTTP/1.x status line: "HTTP/1.x NNN"."""
    head = bytes(data[:12])
    return len(head) == 12 and head.startswith(b"HTTP/1.") and head[8:9] == b" " and head[9:12].isdigit()
