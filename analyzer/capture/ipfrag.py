"""IPv4 and IPv6 fragment reassembly in a bounded table.

Fragments are keyed by the caller (IPv4: src, dst, protocol, id; IPv6: src,
dst, id) and kept until every byte from 0 to the end given by the last
fragment (MF clear) has arrived; then the datagram's payload is returned.

Limits, each counted as a weird when hit, never silently:
- "ip_fragment_timeout": a datagram still incomplete `timeout` seconds
  (packet time) after its first fragment is dropped;
- "ip_fragment_table_full": a new datagram when `max_datagrams` are pending
  evicts the oldest one, and so does a fragment that takes the bytes held by
  all pending datagrams past `max_bytes` (4096 datagrams of 64 KiB would
  otherwise hold 256 MiB);
- "ip_fragment_too_large": a fragment ending past `max_size` drops the datagram;
- "ip_fragment_too_many": more than `max_fragments` pieces drops the datagram.

Overlap policy: first come, first kept. Bytes already received are never
overwritten by a later fragment ("ip_fragment_overlap" counts every fragment
that overlaps earlier data, "ip_fragment_inconsistent" those whose overlapping
bytes differ, the classic evasion trick). A second, different end of datagram
counts "ip_fragment_inconsistent" and the first end is kept.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["FragmentTable"]

M = TypeVar("M")


class _Datagram(Generic[M]):
    __slots__ = ("buf", "first_ts", "meta", "pieces", "spans", "total")

    def __init__(self, ts: float) -> None:
        self.first_ts = ts
        self.buf = bytearray()
        self.spans: list[tuple[int, int]] = []  # received byte ranges, sorted and merged
        self.total: int | None = None
        self.meta: M | None = None
        self.pieces = 0


class FragmentTable(Generic[M]):
    """Pending datagrams, oldest first. Time is packet time, passed in."""

    def __init__(
        self,
        max_datagrams: int = 4096,
        timeout: float = 30.0,
        max_size: int = 65535,
        max_fragments: int = 512,
        max_bytes: int = 16 << 20,
    ) -> None:
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.held = 0
        """Bytes of the pending datagrams' buffers."""
        self.timeout = timeout
        self.max_size = max_size
        self.max_fragments = max_fragments
        self._pending: OrderedDict[Hashable, _Datagram[M]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def expire(self, now: float, weird: Counter[str] | None = None) -> int:
        """Drop datagrams whose first fragment is older than the timeout; return how many."""
        pending = self._pending
        dropped = 0
        while pending:
            key, dgram = next(iter(pending.items()))
            if dgram.first_ts + self.timeout >= now:
                break
            del pending[key]
            self.held -= len(dgram.buf)
            dropped += 1
        if dropped and weird is not None:
            weird["ip_fragment_timeout"] += dropped
        return dropped

    def flush(self, weird: Counter[str] | None = None) -> int:
        """Forget every pending datagram (end of capture); counted as timeouts."""
        dropped = len(self._pending)
        self._pending.clear()
        self.held = 0
        if dropped and weird is not None:
            weird["ip_fragment_timeout"] += dropped
        return dropped

    def add(
        self,
        key: Hashable,
        offset: int,
        more: bool,
        data: bytes,
        ts: float,
        meta: M,
        weird: Counter[str] | None = None,
    ) -> tuple[M, bytes] | None:
        """Add one fragment; return (meta of the first fragment, payload) once complete.

        `meta` is whatever the caller needs to rebuild the packet (header
        fields); the one given with the offset-0 fragment is returned.
        """
        self.expire(ts, weird)
        pending = self._pending
        dgram = pending.get(key)
        if dgram is None:
            if len(pending) >= self.max_datagrams:
                self.held -= len(pending.popitem(last=False)[1].buf)
                if weird is not None:
                    weird["ip_fragment_table_full"] += 1
            dgram = pending[key] = _Datagram(ts)
        end = offset + len(data)
        dgram.pieces += 1
        if end > self.max_size or dgram.pieces > self.max_fragments:
            del pending[key]
            self.held -= len(dgram.buf)
            if weird is not None:
                weird["ip_fragment_too_large" if end > self.max_size else "ip_fragment_too_many"] += 1
            return None
        if offset == 0 and dgram.meta is None:
            dgram.meta = meta  # first come, first kept, like the bytes
        if not more:
            if dgram.total is None:
                dgram.total = end
            elif dgram.total != end and weird is not None:
                weird["ip_fragment_inconsistent"] += 1
        had = len(dgram.buf)
        self._store(dgram, offset, end, data, weird)
        self.held += len(dgram.buf) - had
        while self.held > self.max_bytes and len(pending) > 1:
            oldest = iter(pending.items())
            old_key, old = next(oldest)
            if old is dgram:  # the datagram this fragment belongs to stays: the next oldest goes
                old_key, old = next(oldest)
            del pending[old_key]
            self.held -= len(old.buf)
            if weird is not None:
                weird["ip_fragment_table_full"] += 1
        total = dgram.total
        first = dgram.spans[0]
        if total is None or first[0] != 0 or first[1] < total or dgram.meta is None:
            return None
        del pending[key]
        self.held -= len(dgram.buf)
        return dgram.meta, bytes(dgram.buf[:total])

    @staticmethod
    def _store(dgram: _Datagram[M], offset: int, end: int, data: bytes, weird: Counter[str] | None) -> None:
        """Copy the bytes of [offset, end) not received yet; merge the spans."""
        buf = dgram.buf
        if len(buf) < end:
            buf.extend(bytes(end - len(buf)))
        cursor = offset
        overlap = inconsistent = False
        merged: list[tuple[int, int]] = []
        new_start, new_end = offset, end
        for start, stop in dgram.spans:
            if stop < offset or start > end:
                merged.append((start, stop))
                continue
            # This span touches or overlaps the new fragment.
            lo, hi = max(start, offset), min(stop, end)
            if lo < hi:
                overlap = True
                if buf[lo:hi] != data[lo - offset : hi - offset]:
                    inconsistent = True
                if cursor < lo:
                    buf[cursor:lo] = data[cursor - offset : lo - offset]
                cursor = max(cursor, hi)
            new_start, new_end = min(new_start, start), max(new_end, stop)
        if cursor < end:
            # Fill what lies after the last overlapping span; spans sorted, so
            # no received byte lies in [cursor, end) any more.
            buf[cursor:end] = data[cursor - offset :]
        merged.append((new_start, new_end))
        merged.sort()
        dgram.spans = merged
        if weird is not None:
            if overlap:
                weird["ip_fragment_overlap"] += 1
            if inconsistent:
                weird["ip_fragment_inconsistent"] += 1
