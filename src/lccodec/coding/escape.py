"""The escape stream: values a table cannot code, as zigzag LEB128 varints in decode order."""
from __future__ import annotations

from collections.abc import Iterable

from ..errors import StreamError

MAX_VARINT_BYTES = 10


class EscapeWriter:
    """Collects escaped integers; :meth:`getvalue` returns the stream bytes."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.count = 0

    def write(self, values: Iterable[int]) -> None:
        for v in values:
            v = int(v)
            u = (v << 1) if v >= 0 else ((-v << 1) - 1)
            while True:
                byte = u & 0x7F
                u >>= 7
                if u:
                    self._buf.append(byte | 0x80)
                else:
                    self._buf.append(byte)
                    break
            self.count += 1

    def getvalue(self) -> bytes:
        return bytes(self._buf)


class EscapeReader:
    """Reads escaped integers back; running past the end is a StreamError."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0
        self.count = 0

    def read(self, n: int) -> list[int]:
        out = []
        data, pos = self._data, self._pos
        for _ in range(n):
            u = shift = 0
            for i in range(MAX_VARINT_BYTES + 1):
                if pos >= len(data) or i == MAX_VARINT_BYTES:
                    raise StreamError("corrupt: escape stream ends early")
                byte = data[pos]
                pos += 1
                u |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            if u >> 63:
                raise StreamError("corrupt: escaped value out of range")
            out.append((u >> 1) if not u & 1 else -((u + 1) >> 1))
        self._pos = pos
        self.count += n
        return out

    @property
    def exhausted(self) -> bool:
        return self._pos == len(self._data)
