"""The user-space half of the default filter: the first segments of every TCP flow, then only events.

The kernel filter (`bpf.py`) passes every TCP segment that carries data,
because what the analysis must see of a connection is its *start* (a
ClientHello with a post-quantum key share spans two segments; a TLS 1.2
server flight with its certificate chain spans three to eight; the TLS 1.3
server flight whose size gives interception away spans several) and classic
BPF cannot count segments per flow. `HeadKeeper` can: for each direction of
each TCP connection it keeps the first `head_segments` data segments, and
after that only segments that still say something:

* a payload of at most `small` bytes (TLS alerts, close_notify, Finished,
  HTTP/2 control frames, interactive keystrokes);
* a payload that starts a TLS record (0x14-0x17, then 0x03) or an HTTP
  request or response line (keep-alive connections, CONNECT tunnels);
* DNS over TCP (port 53), whole.

What it sheds is the bulk: full-sized segments in the middle of long
transfers. Shed segments are counted (`shed`, `shed_bytes`), never silent.

Per-flow state is one dict entry per direction (a packed address/port key
and a counter), dropped at FIN/RST and, past `max_flows`, oldest first (a
flow forgotten that way only has more of its segments kept).

Non-TCP packets, fragments, and frames this module cannot read are always
kept: the kernel filter chose them, and the decoder counts what is odd.
"""

from __future__ import annotations

from collections.abc import Callable

from analyzer.capture.decode import LINK_DECODERS

__all__ = ["DEFAULT_HEAD_SEGMENTS", "DEFAULT_SMALL_TCP", "HeadKeeper", "tcp_segment_matters"]

DEFAULT_HEAD_SEGMENTS = 12
"""Data segments kept from the start of each direction of a TCP connection."""

DEFAULT_SMALL_TCP = 160
"""Payload bytes at or below which a TCP segment is always kept. A TLS alert is
7 bytes (encrypted: 24-31), a TLS 1.3 Finished record 50-80."""

_HTTP_STARTS = frozenset((b"GET ", b"POST", b"HEAD", b"PUT ", b"CONN", b"OPTI", b"DELE", b"PATC", b"HTTP"))
_SYN, _FIN, _RST = 0x02, 0x01, 0x04
_TRIM_FRACTION = 4  # past max_flows, forget the oldest quarter at once (amortised)


def tcp_segment_matters(payload: bytes, sport: int, dport: int, small: int = DEFAULT_SMALL_TCP) -> bool:
    """The stateless part: is this data segment worth keeping wherever it falls in its flow?"""
    n = len(payload)
    if n <= small or sport == 53 or dport == 53:
        return True
    b0 = payload[0]
    if 0x14 <= b0 <= 0x17 and payload[1:2] == b"\x03":
        return True
    return payload[:4] in _HTTP_STARTS


class HeadKeeper:
    """Decides, per captured frame, whether it reaches the engine (see the module docstring)."""

    __slots__ = ("_count", "_extra", "_ip_off", "flows_forgotten", "head_segments", "linktype", "max_flows",
                 "shed", "shed_bytes", "small")

    def __init__(self, linktype: int, head_segments: int = DEFAULT_HEAD_SEGMENTS, small: int = DEFAULT_SMALL_TCP,
                 max_flows: int = 262_144, extra: Callable[[bytes], bool] | None = None) -> None:
        if head_segments < 0 or small < 0 or max_flows < 1:
            raise ValueError("head_segments and small must be >= 0, max_flows >= 1")
        self.linktype = linktype
        self.head_segments = head_segments
        self.small = small
        self.max_flows = max_flows
        self._extra = extra  # a user filter (--bpf-also) whose packets are never shed
        self._count: dict[bytes, int] = {}
        self._ip_off = self._link_finder(linktype)
        self.shed = 0
        self.shed_bytes = 0
        self.flows_forgotten = 0

    @staticmethod
    def _link_finder(linktype: int) -> Callable[[bytes], tuple[int, int] | None]:
        decoder = LINK_DECODERS.get(linktype)

        def find(d: bytes) -> tuple[int, int] | None:
            # Untagged Ethernet first: nearly every frame on a span port.
            if linktype == 1 and len(d) >= 14 and d[12] in (0x08, 0x86):
                et = (d[12] << 8) | d[13]
                if et == 0x0800 or et == 0x86DD:
                    return et, 14
            if decoder is None:
                return None
            try:
                link = decoder(d, 0)
            except Exception:  # noqa: BLE001 - decode.py's private weird: the engine counts it
                return None
            return None if link is None else (link[0], link[1])

        return find

    def __len__(self) -> int:
        return len(self._count)

    def keep(self, d: bytes) -> bool:
        """True: hand this frame to the engine (and the --write file).

        The hot path of live capture (every TCP data segment passes through it):
        untagged Ethernet/IPv4 is inlined, the payload is never copied, and the
        stateless rules read single bytes in place.
        """
        n = len(d)
        if self.linktype == 1 and n >= 54 and d[12] == 8 and d[13] == 0:
            ip = 14
            v4 = True
        else:
            link = self._ip_off(d)
            if link is None:
                return True
            ip = link[1]
            v4 = link[0] == 0x0800
        if v4:
            if n < ip + 20 or d[ip + 9] != 6 or d[ip + 6] & 0x3F or d[ip + 7]:
                return True  # not TCP, or a fragment
            ihl = (d[ip] & 0x0F) << 2
            tcp = ip + ihl
            end = ip + ((d[ip + 2] << 8) | d[ip + 3])
            key = d[ip + 12:ip + 24] if ihl == 20 else d[ip + 12:ip + 20] + d[tcp:tcp + 4]
        else:
            if n < ip + 40 or d[ip + 6] != 6:
                return True  # not TCP, or behind extension headers
            tcp = ip + 40
            end = tcp + ((d[ip + 4] << 8) | d[ip + 5])
            key = d[ip + 8:tcp + 4]
        if n < tcp + 20:
            return True
        flags = d[tcp + 13]
        count = self._count
        if flags & 0x07:  # FIN, SYN, RST
            if flags & _SYN:
                count[key] = 0  # a new connection on this 5-tuple starts counting afresh
                self._bound()
            else:
                count.pop(key, None)
            return True
        start = tcp + ((d[tcp + 12] >> 4) << 2)
        end = min(end, n)  # snaplen cut: judge what we have
        plen = end - start
        if plen <= 0:
            return True  # the kernel filter passes no pure ACK; keep what it chose
        seen = count.get(key, 0)
        if seen < self.head_segments:
            count[key] = seen + 1
            if seen == 0 and len(count) > self.max_flows:
                self._bound()
            return True
        # tcp_segment_matters(), inlined.
        if plen <= self.small:
            return True
        b0 = d[start]
        if 0x14 <= b0 <= 0x17 and plen > 1 and d[start + 1] == 0x03:
            return True
        if d[start:start + 4] in _HTTP_STARTS:
            return True
        if d[tcp + 1] == 53 and d[tcp] == 0 or d[tcp + 3] == 53 and d[tcp + 2] == 0:
            return True
        if self._extra is not None and self._extra(d):
            return True
        self.shed += 1
        self.shed_bytes += n
        return False

    def _bound(self) -> None:
        count = self._count
        if len(count) <= self.max_flows:
            return
        drop = max(1, len(count) // _TRIM_FRACTION)
        for k in list(count)[:drop]:  # insertion order: the oldest flows first
            del count[k]
        self.flows_forgotten += drop
