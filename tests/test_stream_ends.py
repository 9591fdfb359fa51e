"""A latent stream ends exactly with its last symbol (docs/format.md, rule 17), at the coding level.

constriction's ANS coder in state 0 with every word read decodes bin 0 without reading anything,
so an emptied or cut-short stream would read as a run of bin 0s. The decoder refuses a stream
whose last symbol comes from that exhausted coder; the encoder never ends a stream on bin 0 (it
escapes it), so no file it writes is refused. The files of every model: tests/test_refusals.py.
"""
from __future__ import annotations

import numpy as np
import pytest

from lccodec.coding import CdfTables, EscapeReader, EscapeWriter, IndexedDecoder, IndexedEncoder, encode_indexed
from lccodec.errors import FormatError

TABLES = CdfTables(np.array([1, 700, 300, 20, 1, 1000, 5]), np.array([0, 4, 7]), np.array([-2, 0]))


def _encode(groups: list[tuple[np.ndarray, np.ndarray]], tables: CdfTables = TABLES) -> tuple[bytes, bytes]:
    escapes = EscapeWriter()
    encoder = IndexedEncoder(tables, escapes)
    for values, index in groups:
        encoder.add(values, index)
    return encoder.finish(), escapes.getvalue()


def _decode(data: bytes, escape_bytes: bytes, indices: list[np.ndarray], tables: CdfTables = TABLES) -> list[np.ndarray]:
    escapes = EscapeReader(escape_bytes)
    decoder = IndexedDecoder(data, tables, escapes, "y")
    out = [decoder.decode(index) for index in indices]
    decoder.finish()
    assert escapes.exhausted
    return out


def _raw_ans(bins: np.ndarray, table: int) -> bytes:
    """What an encoder that does not escape a final bin 0 writes: plain constriction."""
    import constriction

    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(bins.astype(np.int32), TABLES.model(table))
    return coder.get_compressed().astype("<u4").tobytes()


def test_a_stream_of_bin_0s_is_not_empty_and_decodes():
    values, index = np.full(5, -2), np.zeros(5, dtype=np.int64)  # -2 is bin 0 of table 0
    assert _raw_ans(np.zeros(5), 0) == b""  # plain ANS codes it into nothing
    data, escape_bytes = _encode([(values, index)])
    assert data and EscapeReader(escape_bytes).read(1) == [-2]  # the last symbol is escaped
    assert np.array_equal(_decode(data, escape_bytes, [index])[0], values)


def test_a_stream_ending_on_bin_0_without_the_escape_is_refused():
    bins = np.array([2, 1, 0])  # the last decoded symbol is bin 0: read from the exhausted coder
    with pytest.raises(FormatError, match="^corrupt: the y stream ends before its last symbol$"):
        _decode(_raw_ans(bins, 0), b"", [np.zeros(3, dtype=np.int64)])
    assert np.array_equal(_decode(_raw_ans(bins[:2], 0), b"", [np.zeros(2, dtype=np.int64)])[0], [0, -1])


def test_an_emptied_stream_is_refused_before_its_first_group():
    index = np.zeros(4, dtype=np.int64)
    decoder = IndexedDecoder(b"", TABLES, EscapeReader(b""), "z")
    with pytest.raises(FormatError, match="the z stream ends before its last symbol"):
        decoder.decode(index)


def test_a_group_after_the_streams_data_is_refused():
    escapes = EscapeWriter()
    data, _ = encode_indexed(np.array([0, 1, 2]), np.zeros(3, dtype=np.int64), TABLES, escapes)
    decoder = IndexedDecoder(data, TABLES, EscapeReader(escapes.getvalue()), "y")
    decoder.decode(np.zeros(3, dtype=np.int64))
    with pytest.raises(FormatError, match="the y stream ends before its last symbol"):
        decoder.decode(np.ones(2, dtype=np.int64))


def test_random_streams_always_decode():
    """Encoder output is never refused: random tables, groups (some empty) and values, with runs
    of bin 0 at the ends, escapes, and one-value tables."""
    rng = np.random.default_rng(33)
    for _ in range(400):
        sizes = rng.integers(2, 7, int(rng.integers(1, 5)))
        counts = np.concatenate([np.r_[1, rng.integers(1, 1 << 20, s - 1)] for s in sizes])
        tables = CdfTables(counts, np.r_[0, np.cumsum(sizes)], rng.integers(-3, 3, len(sizes)))
        groups = []
        for _ in range(int(rng.integers(1, 4))):
            index = rng.integers(0, len(sizes), int(rng.integers(0, 6)))
            offsets = 0 if rng.random() < 0.4 else rng.integers(-2, 8, index.size)
            groups.append((tables.lo[index] + offsets, index))
        data, escape_bytes = _encode(groups, tables)
        decoded = _decode(data, escape_bytes, [index for _, index in groups], tables)
        assert all(np.array_equal(d, v) for d, (v, _) in zip(decoded, groups))
