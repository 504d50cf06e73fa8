"""A read cursor over bytes whose short reads raise one error.

Modelled on aioquic's Buffer: parsers pull fields through it and carry no
bounds checks of their own; any truncation surfaces as `ParseError`.
"""

from __future__ import annotations


class ParseError(ValueError):
    """Malformed or truncated protocol data. `kind` names the weird to count."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


class Buffer:
    __slots__ = ("_data", "_pos", "_end", "_what")

    def __init__(self, data: bytes | memoryview, what: str = "truncated") -> None:
        self._data = bytes(data)
        self._pos = 0
        self._end = len(self._data)
        self._what = what

    @property
    def pos(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def eof(self) -> bool:
        return self._pos >= self._end

    def _need(self, n: int) -> int:
        start = self._pos
        if n < 0 or start + n > self._end:
            raise ParseError(self._what, f"need {n} bytes at offset {start}, have {self._end - start}")
        self._pos = start + n
        return start

    def pull_bytes(self, n: int) -> bytes:
        start = self._need(n)
        return self._data[start : start + n]

    def pull_uint8(self) -> int:
        start = self._need(1)
        return self._data[start]

    def pull_uint16(self) -> int:
        start = self._need(2)
        return int.from_bytes(self._data[start : start + 2], "big")

    def pull_uint24(self) -> int:
        start = self._need(3)
        return int.from_bytes(self._data[start : start + 3], "big")

    def pull_uint32(self) -> int:
        start = self._need(4)
        return int.from_bytes(self._data[start : start + 4], "big")

    def pull_uint64(self) -> int:
        start = self._need(8)
        return int.from_bytes(self._data[start : start + 8], "big")

    def pull_varint(self) -> int:
        """QUIC variable-length integer (RFC 9000 section 16)."""
        first = self.pull_uint8()
        length = 1 << (first >> 6)
        value = first & 0x3F
        for _ in range(length - 1):
            value = (value << 8) | self.pull_uint8()
        return value

    def pull_vector(self, length_size: int) -> bytes:
        """A length-prefixed opaque vector (TLS style), length of 1, 2 or 3 bytes."""
        if length_size == 1:
            n = self.pull_uint8()
        elif length_size == 2:
            n = self.pull_uint16()
        elif length_size == 3:
            n = self.pull_uint24()
        else:  # pragma: no cover - programming error
            raise ValueError(length_size)
        return self.pull_bytes(n)

    def sub(self, n: int) -> "Buffer":
        """A cursor over the next n bytes; this one moves past them."""
        return Buffer(self.pull_bytes(n), self._what)

    def rest(self) -> bytes:
        start = self._pos
        self._pos = self._end
        return self._data[start:]
