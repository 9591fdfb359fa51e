import json
import random
import struct
import zlib

import pytest

from lccodec import container as c
from lccodec.errors import FormatError


def _header(**kw):
    base = dict(model_id=1, weights_id=0xDEADBEEF, quality_q8=c.quality_to_q8(2.5), width=64,
                height=48, mode="RGBA", layer_flags=c.LAYER_Z | c.LAYER_Y, params=b"\x07\x00")
    base.update(kw)
    return c.Header(**base)


STREAMS = [c.Stream(c.STREAM_Z, b"zz", 12), c.Stream(c.STREAM_Y, b"yyyyy", 300),
           c.Stream(c.STREAM_ESCAPE, b"", 0), c.Stream(c.STREAM_ALPHA, b"alpha", 3072)]


def _valid():
    return c.pack(_header(), STREAMS)


def _recrc(body: bytes) -> bytes:
    """Re-seal bytes (minus their old CRC) with a fresh CRC, to reach checks after the CRC."""
    return body + struct.pack("<I", zlib.crc32(body))


def _patch(data: bytes, offset: int, fmt: str, value) -> bytes:
    body = bytearray(data[:-4])
    struct.pack_into(fmt, body, offset, value)
    return _recrc(bytes(body))


def test_round_trip_every_field():
    h = _header()
    data = c.pack(h, STREAMS)
    h2, streams = c.unpack(data)
    assert h2 == h
    assert streams == STREAMS
    assert h2.quality == 2.5
    assert data[:4] == c.MAGIC and data[4] == 1
    assert len(data) == 28 + 2 + 9 * 4 + 12 + 4


@pytest.mark.parametrize("mode", c.MODES)
def test_round_trip_modes_and_no_streams(mode):
    h = _header(mode=mode, params=b"", layer_flags=0, width=1, height=65535 * 4, model_id=5)
    assert c.unpack(c.pack(h, [])) == (h, [])


def test_quality_to_q8():
    assert c.quality_to_q8(1.0) == 256
    assert c.Header.quality_to_q8(0.5) == 128
    for bad in (0, -1, 256, 1e-4):
        with pytest.raises(ValueError):
            c.quality_to_q8(bad)


@pytest.mark.parametrize("kw", [dict(model_id=70000), dict(weights_id=-1), dict(quality_q8=0),
                                dict(width=0), dict(height=65535 * 4 + 1), dict(mode="CMYK"),
                                dict(layer_flags=1 << 16), dict(params=b"x" * 65536),
                                dict(version=2), dict(version=0)])
def test_pack_rejects_bad_header(kw):
    with pytest.raises(ValueError):
        c.pack(_header(**kw), [])


def test_pack_rejects_bad_streams():
    with pytest.raises(ValueError, match="duplicate"):
        c.pack(_header(), [c.Stream(1, b"", 0), c.Stream(1, b"", 0)])
    with pytest.raises(ValueError, match="at most 16"):
        c.pack(_header(), [c.Stream(k, b"", 0) for k in range(1, 18)])
    with pytest.raises(ValueError):
        c.pack(_header(), [c.Stream(0, b"", 0)])
    with pytest.raises(ValueError):
        c.pack(_header(), [c.Stream(1, b"", -1)])


def test_refuses_bad_magic():
    with pytest.raises(FormatError, match="not a .lic file"):
        c.unpack(b"\x89PNG\r\n\x1a\n" + bytes(40))
    with pytest.raises(FormatError, match="not a .lic file"):
        c.unpack(b"hi")


def test_refuses_too_short():
    with pytest.raises(FormatError, match="truncated"):
        c.unpack(c.MAGIC + bytes(10))


def test_refuses_other_version():
    data = _patch(_valid(), 4, "<B", 3)
    with pytest.raises(FormatError, match=r"unsupported format version 3 \(this lic reads versions 1 and 2; "
                                          r"a newer lic reads it\)"):
        c.unpack(data)


# ------------------------------------------------------------------ metadata and version 2
ICC = c.Stream(c.STREAM_ICC, b"icc", 3)  # the container checks kinds and versions, not contents


def test_files_without_metadata_are_version_1_and_with_metadata_version_2():
    plain = _valid()
    assert plain[4] == 1 and c.format_version(STREAMS) == 1
    h = _header(version=2)
    data = c.pack(h, STREAMS + [ICC])
    assert data[4] == 2 and c.unpack(data) == (h, STREAMS + [ICC])
    assert len(data) == len(plain) + 9 + 3  # the same layout: one more table entry and its bytes
    assert c.describe(*c.unpack(data))["metadata"] == [{"kind": "icc", "bytes": 3}]
    assert c.describe(*c.unpack(plain))["metadata"] == []


def test_pack_writes_the_version_the_streams_need():
    with pytest.raises(ValueError, match="format version 2 file, not 1"):
        c.pack(_header(), STREAMS + [ICC])
    with pytest.raises(ValueError, match="format version 1 file, not 2"):
        c.pack(_header(version=2), STREAMS)


@pytest.mark.parametrize("kind", sorted(c.METADATA_STREAMS))
def test_a_metadata_stream_in_a_version_1_file_is_refused(kind):
    data = c.pack(_header(version=2), STREAMS + [c.Stream(kind, b"m", 1)])
    with pytest.raises(FormatError, match=f"a {c.METADATA_STREAMS[kind]} stream in a format version 1 file "
                                          r"\(metadata needs version 2\)"):
        c.unpack(_patch(data, 4, "<B", 1))


def test_a_version_2_file_without_metadata_is_refused():
    with pytest.raises(FormatError, match="a format version 2 file without a metadata stream"):
        c.unpack(_patch(_valid(), 4, "<B", 2))


def test_a_reader_of_version_1_only_names_version_2(monkeypatch):
    """What lic 0.1.0 (VERSIONS = (1,)) says of a file with metadata: its version, not corruption."""
    data = c.pack(_header(version=2), STREAMS + [ICC])
    monkeypatch.setattr(c, "VERSIONS", (1,))
    with pytest.raises(FormatError, match=r"^unsupported format version 2 \(this lic reads versions? 1"):
        c.unpack(data)


def test_refuses_reserved_flags():
    with pytest.raises(FormatError, match="reserved flags"):
        c.unpack(_patch(_valid(), 5, "<B", 1))


def test_refuses_checksum_mismatch():
    data = bytearray(_valid())
    data[-6] ^= 0x40  # inside the payload
    with pytest.raises(FormatError, match="corrupt: checksum mismatch"):
        c.unpack(bytes(data))


def test_refuses_truncated_payload():
    data = _valid()
    with pytest.raises(FormatError, match="truncated file"):
        c.unpack(data[:-3])


@pytest.mark.parametrize("w,h", [(0, 10), (10, 0)])
def test_refuses_zero_size(w, h):
    data = _patch(_patch(_valid(), 14, "<I", w), 18, "<I", h)
    with pytest.raises(FormatError, match="must be positive"):
        c.unpack(data)


def test_refuses_absurd_size():
    with pytest.raises(FormatError, match="exceeds the limit"):
        c.unpack(_patch(_valid(), 14, "<I", 65535 * 4 + 1))
    with pytest.raises(FormatError, match="exceeds the limit"):
        c.unpack(_valid(), max_pixels=64 * 48 - 1)
    c.unpack(_valid(), max_pixels=64 * 48)


def test_refuses_unknown_mode():
    with pytest.raises(FormatError, match="unknown image mode code 4"):
        c.unpack(_patch(_valid(), 22, "<B", 4))


def test_refuses_too_many_streams():
    with pytest.raises(FormatError, match="too many streams: 17"):
        c.unpack(_patch(_valid(), 23, "<B", 17))


def test_refuses_duplicate_kinds():
    table = 28 + 2
    data = _patch(_valid(), table + 9, "<B", c.STREAM_Z)  # second entry becomes kind z too
    with pytest.raises(FormatError, match="duplicate stream kinds"):
        c.unpack(data)


def test_refuses_lengths_that_do_not_add_up():
    table = 28 + 2
    with pytest.raises(FormatError, match="add up to"):
        c.unpack(_patch(_valid(), table + 1, "<I", 1))  # z stream: 2 bytes declared as 1
    # one stream fewer in the table: its entry bytes count as payload and the sums disagree
    with pytest.raises(FormatError):
        c.unpack(_patch(_valid(), 23, "<B", 3))


def test_every_truncation_is_a_format_error():
    data = _valid()
    for k in range(len(data)):
        with pytest.raises(FormatError):
            c.unpack(data[:k])


def test_random_bit_flips_are_format_errors():
    data = _valid()
    rng = random.Random(1234)
    for _ in range(500):
        bad = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
        if bytes(bad) == data:
            continue
        with pytest.raises(FormatError):
            c.unpack(bytes(bad))


def test_describe():
    data = _valid()
    h, streams = c.unpack(data)
    d = c.describe(h, streams)
    json.dumps(d)
    assert d["model"] == "hyperprior" and d["model_id"] == 1
    assert d["weights_id"] == 0xDEADBEEF and d["weights_id_hex"] == "deadbeef"
    assert d["quality"] == 2.5 and d["quality_q8"] == 640
    assert (d["width"], d["height"], d["mode"]) == (64, 48, "RGBA")
    assert d["layers"] == ["z", "y"]
    assert d["params"] == "0700"
    assert [s["name"] for s in d["streams"]] == ["z", "y", "escape", "alpha"]
    assert [s["bytes"] for s in d["streams"]] == [2, 5, 0, 5]
    assert [s["symbols"] for s in d["streams"]] == [12, 300, 0, 3072]
    assert d["total_bytes"] == len(data)
    assert d["bpp"] == pytest.approx(len(data) * 8 / (64 * 48))


def test_describe_unknown_ids():
    h = _header(model_id=99, layer_flags=c.LAYER_Z2 | (1 << 9))
    d = c.describe(h, [c.Stream(77, b"q", 1)])
    assert d["model"] == "unknown (99)"
    assert d["layers"] == ["z2", "bit9"]
    assert d["streams"][0]["name"] == "kind77"
