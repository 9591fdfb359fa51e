"""Coding integer symbols, each with the table its index names, in one constriction stream.

Symbols arrive in groups (all of a latent at once, or one wavefront step at a time). Within a
group they are coded by table: the decoder, which knows every symbol's table index before it
decodes (from the hyper-synthesis or the context step), decodes the group's table-0 symbols, then
table 1, ... each with one vectorised constriction call; within a table, symbols keep their flat
order. Values a table cannot hold are escaped (see :mod:`.escape`) in that same decode order.
The stream is one ANS word sequence (little-endian u32) holding group 0, then group 1, ...
"""
from __future__ import annotations

import numpy as np

from ..errors import FormatError
from .escape import EscapeReader, EscapeWriter
from .tables import CdfTables


def by_table(index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, tables, counts): positions sorted by table (stable), each used table and its count."""
    order = np.argsort(index, kind="stable")
    tables, counts = np.unique(index[order], return_counts=True)
    return order, tables, counts


class IndexedEncoder:
    """Collects groups of symbols (escapes are written at once, in decode order); :meth:`finish`
    codes them all into the stream's bytes."""

    def __init__(self, tables: CdfTables, escapes: EscapeWriter) -> None:
        self.tables, self.escapes = tables, escapes
        self.count = 0  # symbols so far
        self._groups: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, values: np.ndarray, index: np.ndarray) -> None:
        """One group: `values` (int) coded with tables `index` (int), both flat."""
        values = np.asarray(values, dtype=np.int64).ravel()
        index = np.asarray(index, dtype=np.int64).ravel()
        if values.shape != index.shape:
            raise ValueError("values and index differ in size")
        order, used, counts = by_table(index)
        values, index = values[order], index[order]
        bins = values - self.tables.lo[index]
        esc_bin = self.tables.bins[index] - 1
        escaped = (bins < 0) | (bins >= esc_bin)
        self.escapes.write(values[escaped].tolist())
        self._groups.append((np.where(escaped, esc_bin, bins).astype(np.int32), used, counts))
        self.count += int(values.size)

    def finish(self) -> bytes:
        """The stream: every group, coded in reverse so that the decoder reads group 0 first."""
        import constriction  # imported on first use: training machines need not have it

        coder = constriction.stream.stack.AnsCoder()
        for bins, used, counts in reversed(self._groups):
            ends = np.cumsum(counts)
            for k, end, n in zip(used[::-1], ends[::-1], counts[::-1]):
                coder.encode_reverse(bins[end - n : end], self.tables.model(int(k)))
        return coder.get_compressed().astype("<u4", copy=False).tobytes()


class IndexedDecoder:
    """Reads groups back in the encoder's order; :meth:`finish` refuses words left over.

    `what` names the stream in error messages. Malformed word sequences are a FormatError.
    """

    def __init__(self, data: bytes, tables: CdfTables, escapes: EscapeReader, what: str) -> None:
        import constriction

        if len(data) % 4:
            raise FormatError(f"corrupt: the {what} stream is not a whole number of words")
        self.tables, self.escapes, self.what = tables, escapes, what
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        try:
            self._coder = constriction.stream.stack.AnsCoder(words)
        except Exception as exc:  # constriction refuses some word sequences outright
            raise self._corrupt(exc) from None

    def _corrupt(self, exc: Exception) -> FormatError:
        return FormatError(f"corrupt: the {self.what} stream cannot be decoded ({exc})")

    def decode(self, index: np.ndarray) -> np.ndarray:
        """One group's int64 values, in the flat order of `index`, escapes resolved."""
        index = np.asarray(index, dtype=np.int64).ravel()
        order, used, counts = by_table(index)
        try:
            parts = [np.asarray(self._coder.decode(self.tables.model(int(k)), int(n)), dtype=np.int64)
                     for k, n in zip(used, counts)]
        except Exception as exc:  # constriction raises on malformed word sequences
            raise self._corrupt(exc) from None
        bins = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        sorted_index = index[order]
        values = bins + self.tables.lo[sorted_index]
        esc = np.flatnonzero(bins == self.tables.bins[sorted_index] - 1)
        if esc.size:
            values[esc] = self.escapes.read(esc.size)
        out = np.empty_like(values)
        out[order] = values
        return out

    def finish(self) -> None:
        """Every word must have been used: a stream that holds more than its symbols is corrupt."""
        if not self._coder.is_empty():
            raise FormatError(f"corrupt: the {self.what} stream holds more data than its symbols")


def encode_indexed(
    values: np.ndarray, index: np.ndarray, tables: CdfTables, escapes: EscapeWriter
) -> tuple[bytes, int]:
    """Encode `values` (flat int) with tables `index` (flat int) as one group; return (bytes,
    symbol count)."""
    encoder = IndexedEncoder(tables, escapes)
    encoder.add(values, index)
    return encoder.finish(), encoder.count


def decode_indexed(
    data: bytes, index: np.ndarray, tables: CdfTables, escapes: EscapeReader, what: str = "entropy-coded"
) -> np.ndarray:
    """Inverse of :func:`encode_indexed`: the int64 values, in flat order. The stream must end
    with its last symbol (FormatError otherwise)."""
    decoder = IndexedDecoder(data, tables, escapes, what)
    values = decoder.decode(index)
    decoder.finish()
    return values
