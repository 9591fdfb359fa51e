"""Coding integer symbols, each with the table its index names, in one constriction stream.

Symbols are grouped by table: the decoder, which knows every symbol's table index before it
decodes (from the hyper-synthesis or the context step), decodes group 0, then group 1, ... each
with one vectorised constriction call; within a group, symbols keep their flat order. Values a
table cannot hold are escaped (see :mod:`.escape`) in that same decode order.
"""
from __future__ import annotations

import numpy as np

from ..errors import FormatError
from .escape import EscapeReader, EscapeWriter
from .tables import CdfTables


def _groups(index: np.ndarray, size: int) -> list[tuple[int, np.ndarray]]:
    """(table, positions) for each table used, in ascending table order."""
    order = np.argsort(index, kind="stable")
    sorted_idx = index[order]
    bounds = np.searchsorted(sorted_idx, np.arange(size + 1))
    return [
        (k, order[bounds[k] : bounds[k + 1]])
        for k in range(size)
        if bounds[k + 1] > bounds[k]
    ]


def encode_indexed(
    values: np.ndarray, index: np.ndarray, tables: CdfTables, escapes: EscapeWriter
) -> tuple[bytes, int]:
    """Encode `values` (flat int) with tables `index` (flat int); return (bytes, symbol count)."""
    values = np.asarray(values, dtype=np.int64).ravel()
    index = np.asarray(index, dtype=np.int64).ravel()
    if values.shape != index.shape:
        raise ValueError("values and index differ in size")
    bins = values - tables.lo[index]
    esc_bin = tables.bins[index] - 1
    escaped = (bins < 0) | (bins >= esc_bin)
    bins = np.where(escaped, esc_bin, bins).astype(np.int32)
    import constriction
    groups = _groups(index, tables.size)
    for _, pos in groups:
        escapes.write(values[pos][escaped[pos]].tolist())
    coder = constriction.stream.stack.AnsCoder()
    for k, pos in reversed(groups):
        coder.encode_reverse(bins[pos], tables.model(k))
    words = coder.get_compressed().astype("<u4", copy=False)
    return words.tobytes(), int(values.size)


def decode_indexed(
    data: bytes, index: np.ndarray, tables: CdfTables, escapes: EscapeReader
) -> np.ndarray:
    """Inverse of :func:`encode_indexed`: the int64 values, in flat order."""
    index = np.asarray(index, dtype=np.int64).ravel()
    if len(data) % 4:
        raise FormatError("corrupt: entropy-coded stream is not a whole number of words")
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    values = np.empty(index.size, dtype=np.int64)
    import constriction

    try:
        coder = constriction.stream.stack.AnsCoder(words)
        for k, pos in _groups(index, tables.size):
            bins = np.asarray(coder.decode(tables.model(k), len(pos)), dtype=np.int64)
            vals = bins + tables.lo[k]
            esc = np.flatnonzero(bins == tables.bins[k] - 1)
            if esc.size:
                vals[esc] = escapes.read(esc.size)
            values[pos] = vals
    except FormatError:
        raise
    except Exception as exc:  # constriction raises on malformed word sequences
        raise FormatError(f"corrupt: entropy-coded stream cannot be decoded ({exc})") from None
    return values
