"""Coding integer symbols, each with the table its index names, in one constriction stream.

Symbols arrive in groups (all of a latent at once, or one wavefront step at a time). Within a
group they are coded by table: the decoder, which knows every symbol's table index before it
decodes (from the hyper-synthesis or the context step), decodes the group's table-0 symbols, then
table 1, ... each with one vectorised constriction call; within a table, symbols keep their flat
order. Values a table cannot hold are escaped (see :mod:`.escape`) in that same decode order, and so
is a stream's last symbol when it is bin 0 (see :class:`IndexedDecoder`). The stream is one ANS
word sequence (little-endian u32) holding group 0, then group 1, ...
"""
from __future__ import annotations

import numpy as np

from ..errors import FormatError, StreamError
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
        self._escapes_after_add = escapes.count  # what the escape stream held after the last add

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
        self._escapes_after_add = self.escapes.count

    def _end_off_bin_0(self) -> None:
        """Code the stream's last symbol as an escape if it is bin 0 of its table.

        ANS codes bin 0 from the empty state into nothing, so a stream ending on bin 0 would be
        one whose last symbol a decoder reads from an exhausted coder: the sign of a stream that
        ran out, which decoders refuse (docs/format.md). Its value goes to the escape stream, last
        of this stream's escapes, so no other stream may have written escapes since the last add.
        """
        last = next((g for g in reversed(self._groups) if g[0].size), None)
        if last is None or last[0][-1] != 0:
            return
        if self.escapes.count != self._escapes_after_add:
            raise RuntimeError("escapes were written between this stream's last group and its finish")
        bins, used, _ = last
        table = int(used[-1])
        bins[-1] = self.tables.bins[table] - 1
        self.escapes.write([int(self.tables.lo[table])])
        self._escapes_after_add = self.escapes.count

    def finish(self) -> bytes:
        """The stream: every group, coded in reverse so that the decoder reads group 0 first.
        Its last symbol is never bin 0 (see :meth:`_end_off_bin_0`)."""
        import constriction  # imported on first use: training machines need not have it

        self._end_off_bin_0()
        coder = constriction.stream.stack.AnsCoder()
        for bins, used, counts in reversed(self._groups):
            ends = np.cumsum(counts)
            for k, end, n in zip(used[::-1], ends[::-1], counts[::-1]):
                coder.encode_reverse(bins[end - n : end], self.tables.model(int(k)))
        return coder.get_compressed().astype("<u4", copy=False).tobytes()


class IndexedDecoder:
    """Reads groups back in the encoder's order; refuses a stream that does not end exactly with
    its last symbol (docs/format.md, rule 17).

    Running out: constriction's ANS coder with state 0 and every word read (``pos() == (0, 0)``,
    exhausted) decodes bin 0 without reading anything and stays exhausted, so an emptied or
    cut-short stream would read as a run of bin 0s. A stream ran out when its decoder is
    exhausted with symbols still to decode (checked before each group), which is the case exactly
    when it ends exhausted after a bin 0 (checked by :meth:`finish`): from any other state, bin 0
    leads to a state above 0. No valid stream is refused: the encoder never ends a stream on bin
    0 (:meth:`IndexedEncoder.finish`), so its last symbol is decoded from a state above 0.

    `what` names the stream in error messages. A length that is not whole words is a FormatError,
    words that do not decode exactly to the symbols a StreamError.
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
        self._last_bin = -1  # the bin of the last symbol decoded so far (-1: none yet)

    def _corrupt(self, exc: Exception) -> StreamError:
        return StreamError(f"corrupt: the {self.what} stream cannot be decoded ({exc})")

    def _ran_out(self) -> StreamError:
        return StreamError(f"corrupt: the {self.what} stream ends before its last symbol")

    def decode(self, index: np.ndarray) -> np.ndarray:
        """One group's int64 values, in the flat order of `index`, escapes resolved."""
        index = np.asarray(index, dtype=np.int64).ravel()
        order, used, counts = by_table(index)
        if index.size and self._coder.pos() == (0, 0):  # exhausted, yet symbols remain
            raise self._ran_out()
        try:
            parts = [np.asarray(self._coder.decode(self.tables.model(int(k)), int(n)), dtype=np.int64)
                     for k, n in zip(used, counts)]
        except Exception as exc:  # constriction raises on malformed word sequences
            raise self._corrupt(exc) from None
        bins = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        if bins.size:
            self._last_bin = int(bins[-1])
        sorted_index = index[order]
        values = bins + self.tables.lo[sorted_index]
        esc = np.flatnonzero(bins == self.tables.bins[sorted_index] - 1)
        if esc.size:
            values[esc] = self.escapes.read(esc.size)
        out = np.empty_like(values)
        out[order] = values
        return out

    def finish(self) -> None:
        """The stream must end with its last symbol: not before it (that symbol decoded from the
        exhausted coder), not after it (words left unread, or a state the symbols did not use up)."""
        words, state = self._coder.pos()
        if words == 0 and state == 0:
            if self._last_bin == 0:
                raise self._ran_out()
            return
        if words:
            raise StreamError(f"corrupt: the {self.what} stream holds more data than its symbols")
        raise StreamError(f"corrupt: the {self.what} stream does not end at its last symbol")


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
