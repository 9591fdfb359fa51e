"""Files that docs/format.md says a decoder refuses are refused, for every model (issue 15).

Each rule is checked on the conformance vectors of every model (tests/vectors: small files and
test weights, so decoding is quick) through the Codec, and once through the CLI (one
`lic: error:` line, exit ≠ 0) on a file of the shipped hyperprior. The metadata streams (format
version 2) are checked the same way.
"""
from __future__ import annotations

import dataclasses
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from lccodec import container
from lccodec.container import (
    STREAM_ALPHA, STREAM_ESCAPE, STREAM_EXIF, STREAM_ICC, STREAM_NAMES, STREAM_XMP, STREAM_Y, STREAM_Y2,
    STREAM_Y3, STREAM_Z, STREAM_Z2, Stream,
)
from lccodec.errors import FormatError
from lccodec.metadata import MAX_BYTES

from conftest import photo_like, run_cli

VECTORS_DIR = Path(__file__).resolve().parent / "vectors"
sys.path.insert(0, str(VECTORS_DIR))
import regenerate  # noqa: E402

VECTORS = json.loads((VECTORS_DIR / "vectors.json").read_text())["vectors"]
MODELS = ("hyperprior", "context", "reference", "hierarchical", "coarse2fine")
#: the latent stream kinds of each model's richest vector
LATENT_KINDS = {"hyperprior": (STREAM_Z, STREAM_Y), "context": (STREAM_Z, STREAM_Y), "reference": (STREAM_Z, STREAM_Y),
                "hierarchical": (STREAM_Z, STREAM_Y, STREAM_Y3, STREAM_Y2), "coarse2fine": (STREAM_Z2, STREAM_Z, STREAM_Y)}
OTHER_KINDS = {"hyperprior": (STREAM_Y3, STREAM_Y2, STREAM_Z2), "context": (STREAM_Z2, STREAM_Y3),
               "reference": (STREAM_Y2, STREAM_Z2), "hierarchical": (STREAM_Z2,), "coarse2fine": (STREAM_Y3, STREAM_Y2)}
EXTRA_WORD = b"\x01\x00\x00\x00"


@pytest.fixture(scope="module")
def codecs():
    return {name: regenerate.open_codec(name) for name in MODELS}


def _vector(model: str, *, alpha: bool | None = None, kinds: tuple[int, ...] = ()) -> bytes:
    """The largest vector of `model` (with / without alpha) holding the stream `kinds`."""
    found = []
    for v in VECTORS:
        data = (VECTORS_DIR / v["file"]).read_bytes()
        _, streams = container.unpack(data)
        have = {s.kind for s in streams}
        if v["model"] == model and set(kinds) <= have and (alpha is None or (STREAM_ALPHA in have) == alpha):
            found.append(data)
    return max(found, key=len)


def _with(data: bytes, change=None, add: list[Stream] = (), drop: int | None = None, **fields) -> bytes:
    """The file with its streams changed, dropped or added and header fields replaced; the
    version is the one its streams need."""
    header, streams = container.unpack(data)
    streams = [change(s) if change else s for s in streams if s.kind != drop] + list(add)
    fields.setdefault("version", container.format_version(streams))
    return container.pack(dataclasses.replace(header, **fields), streams)


def _stream(data: bytes, kind: int) -> Stream:
    return next(s for s in container.unpack(data)[1] if s.kind == kind)


def _refused(codec, data: bytes, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        codec.decode(data)


def test_the_vectors_decode(codecs):
    """The unmutated files decode: the refusals below are the mutations'."""
    for model in MODELS:
        codecs[model].decode(_vector(model))


# ------------------------------------------------------------- latent streams end exactly
def _replaced(data: bytes, kind: int, words: bytes) -> bytes:
    """`data` with the stream `kind` holding `words`, its symbol count kept."""
    return _with(data, lambda s: Stream(s.kind, words, s.symbols) if s.kind == kind else s)


@pytest.mark.parametrize("model", MODELS)
def test_unused_words_inside_every_latent_stream_are_refused(codecs, model):
    """A word below the stream (read last) leaves state unused; a word above it (read first)
    leaves words or state unused, or reaches the escapes."""
    data = _vector(model, kinds=LATENT_KINDS[model])
    for kind in LATENT_KINDS[model]:
        name = STREAM_NAMES[kind]
        before = _replaced(data, kind, EXTRA_WORD + _stream(data, kind).data)
        _refused(codecs[model], before, f"the {name} stream does not end at its last symbol")
        after = _replaced(data, kind, _stream(data, kind).data + EXTRA_WORD)
        _refused(codecs[model], after, "stream|escape")


@pytest.mark.parametrize("model", MODELS)
def test_every_emptied_latent_stream_is_refused(codecs, model):
    """An empty ANS stream would decode as bin 0 after bin 0 (constriction reads nothing from
    state 0): each latent stream of every vector, emptied, is refused as running out."""
    for vector in (v for v in VECTORS if v["model"] == model):
        data = (VECTORS_DIR / vector["file"]).read_bytes()
        for stream in container.unpack(data)[1]:
            if stream.kind in (STREAM_ESCAPE, STREAM_ALPHA):
                continue
            _refused(codecs[model], _replaced(data, stream.kind, b""),
                     f"^corrupt: the {STREAM_NAMES[stream.kind]} stream ends before its last symbol; "
                     f"the streams do not fit the {model} model named in the header$")


@pytest.mark.parametrize("model", MODELS)
def test_every_cut_short_latent_stream_is_refused(codecs, model):
    """Words cut from either end of each latent stream (ANS reads the last word first, so
    cutting the first words takes its last symbols' data): refused, naming the stream."""
    data = _vector(model, kinds=LATENT_KINDS[model])
    for kind in LATENT_KINDS[model]:
        name, words = STREAM_NAMES[kind], _stream(data, kind).data
        n = len(words) // 4
        for cut in sorted({1, 2, n // 2, n - 1} & set(range(1, n))):
            _refused(codecs[model], _replaced(data, kind, words[4 * cut:]),
                     rf"^corrupt: the {name} stream (ends before|does not end at) its last symbol")
            _refused(codecs[model], _replaced(data, kind, words[:-4 * cut]),
                     rf"^corrupt: the {name} stream |^corrupt: escape")


@pytest.mark.parametrize("source, target", [("hyperprior", "context"), ("context", "hyperprior")])
def test_a_file_relabelled_as_another_model_is_told_its_streams_do_not_fit(codecs, source, target):
    """Same stream kinds, flags and (no) params: only the tables tell the models apart."""
    header, streams = container.unpack(_vector(source))
    codec = codecs[target]
    relabelled = dataclasses.replace(header, model_id=codec.spec.model_id, weights_id=codec.weights_id)
    _refused(codec, container.pack(relabelled, streams),
             f"^corrupt: the z stream .*; the streams do not fit the {target} model named in the header$")


# ------------------------------------------------------------------------ escape stream
@pytest.mark.parametrize("model", MODELS)
def test_escape_bytes_beyond_the_escaped_values_are_refused(codecs, model):
    data = _vector(model)
    escape = _stream(data, STREAM_ESCAPE)
    assert escape.symbols > 0  # the vector escapes values
    longer = _with(data, lambda s: Stream(s.kind, s.data + b"\x02", s.symbols) if s.kind == STREAM_ESCAPE else s)
    _refused(codecs[model], longer, "escape stream holds more data than its values")
    fewer = _with(data, lambda s: Stream(s.kind, s.data, s.symbols - 1) if s.kind == STREAM_ESCAPE else s)
    _refused(codecs[model], fewer, "escape count does not match")


@pytest.mark.parametrize("model", MODELS)
def test_escape_bytes_with_an_escape_count_of_0_are_refused(codecs, model):
    data = min((VECTORS_DIR / v["file"]).read_bytes() for v in VECTORS if v["model"] == model
               and _stream((VECTORS_DIR / v["file"]).read_bytes(), STREAM_ESCAPE).symbols == 0)
    codecs[model].decode(data)
    garbage = _with(data, lambda s: Stream(s.kind, b"\x04\x06", 0) if s.kind == STREAM_ESCAPE else s)
    _refused(codecs[model], garbage, "escape stream holds more data than its values")


@pytest.mark.parametrize("model", MODELS)
def test_a_missing_or_overlong_escape_stream_is_refused(codecs, model):
    data = _vector(model)
    _refused(codecs[model], _with(data, drop=STREAM_ESCAPE), "escape stream is missing")
    huge = _with(data, lambda s: Stream(s.kind, s.data, len(s.data) + 1) if s.kind == STREAM_ESCAPE else s)
    _refused(codecs[model], huge, "declares .* values in .* bytes")


# --------------------------------------------------------------------- stream kinds
@pytest.mark.parametrize("model", MODELS)
def test_unknown_stream_kinds_are_refused(codecs, model):
    data = _vector(model)
    for kind in (11, 200):
        _refused(codecs[model], _with(data, add=[Stream(kind, b"\x00" * 8, 3)]),
                 f"^corrupt: an unknown stream \\(kind {kind}\\) does not belong")


@pytest.mark.parametrize("model", MODELS)
def test_other_models_stream_kinds_are_refused(codecs, model):
    data = _vector(model)
    for kind in OTHER_KINDS[model]:
        _refused(codecs[model], _with(data, add=[Stream(kind, EXTRA_WORD, 1)]), "does not belong|not announce")


# --------------------------------------------------------------------------- alpha
@pytest.mark.parametrize("model", MODELS)
def test_an_alpha_stream_in_an_l_or_rgb_file_is_refused(codecs, model):
    plain = _vector(model, alpha=False)
    alpha = _stream(_vector(model, alpha=True), STREAM_ALPHA)
    _refused(codecs[model], _with(plain, add=[alpha]), "an alpha stream in a file of mode (L|RGB)")


@pytest.mark.parametrize("model", MODELS)
def test_a_wrong_alpha_symbol_count_is_refused(codecs, model):
    data = _vector(model, alpha=True)
    for delta in (-1, 1):
        bad = _with(data, lambda s: Stream(s.kind, s.data, s.symbols + delta) if s.kind == STREAM_ALPHA else s)
        _refused(codecs[model], bad, "alpha stream declares")
    _refused(codecs[model], _with(data, drop=STREAM_ALPHA), "alpha stream is missing")


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(png):
        n, kind = struct.unpack_from(">I4s", png, pos)
        out.append((kind, png[pos + 8:pos + 8 + n]))
        pos += 12 + n
    return out


def _png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b))
                                         for k, b in chunks)


def _alpha_variants(png: bytes):
    """(label, mutated alpha PNG, expected message) for every PNG rule."""
    chunks = _chunks(png)
    ihdr = chunks[0][1]
    idat = b"".join(b for k, b in chunks if k == b"IDAT")
    width, height = struct.unpack(">II", ihdr[:8])
    yield "bytes after IEND", png + b"\x00", "follow the alpha PNG's IEND"
    yield "missing IEND", png[:-12], "no IEND"
    bad_crc = bytearray(png)
    bad_crc[-20] ^= 1  # inside the last IDAT's data
    yield "bad chunk CRC", bytes(bad_crc), "bad CRC"
    yield "not a PNG", b"GIF89a" + png[6:], "not a PNG"
    yield "truncated chunk", png[:40], "truncated|bad CRC"
    yield "extra chunk", _png(chunks[:1] + [(b"tEXt", b"a\x00b")] + chunks[1:]), "unexpected alpha PNG chunk"
    yield "no IDAT", _png([chunks[0], chunks[-1]]), "unexpected alpha PNG chunk"
    yield "RGB IHDR", _png([(b"IHDR", ihdr[:9] + b"\x02" + ihdr[10:])] + chunks[1:]), "not an 8-bit grayscale"
    yield "other size", _png([(b"IHDR", struct.pack(">II", width + 1, height) + ihdr[8:])] + chunks[1:]), "not an 8-bit"
    raw = zlib.decompress(idat)
    yield "data after zlib", _png([chunks[0], (b"IDAT", idat + b"\x00\x01"), chunks[-1]]), "not exactly the image's rows"
    yield "short rows", _png([chunks[0], (b"IDAT", zlib.compress(raw[:-1])), chunks[-1]]), "not exactly the image's rows"
    yield "bad filter", _png([chunks[0], (b"IDAT", zlib.compress(b"\x07" + raw[1:])), chunks[-1]]), "unknown row filter"


@pytest.mark.parametrize("model", MODELS)
def test_a_malformed_alpha_png_is_refused(codecs, model):
    data = _vector(model, alpha=True)
    png = _stream(data, STREAM_ALPHA).data
    assert _png(_chunks(png)) == png  # the helpers rebuild the shipped layout exactly
    for label, bad, message in _alpha_variants(png):
        mutated = _with(data, lambda s: Stream(s.kind, bad, s.symbols) if s.kind == STREAM_ALPHA else s)
        with pytest.raises(FormatError, match=message):
            codecs[model].decode(mutated)


# ------------------------------------------------------------------------ metadata
def _metadata_variants():
    """(label, a metadata stream that breaks a rule, expected message) for every rule."""
    icc = struct.pack(">I", 132) + bytes(32) + b"acsp" + bytes(92)
    exif = b"II*\x00\x08\x00\x00\x00\x00\x00"
    yield "miscounted", Stream(STREAM_ICC, icc, len(icc) + 1), "the icc stream declares 133 symbols in 132 bytes"
    yield "empty", Stream(STREAM_XMP, b"", 0), "the xmp stream is empty"
    yield "truncated ICC", Stream(STREAM_ICC, icc[:100], 100), "the icc stream is not an ICC profile"
    yield "ICC cut short", Stream(STREAM_ICC, struct.pack(">I", 588) + icc[4:], 132), "declares 588 bytes but holds 132"
    yield "not an ICC", Stream(STREAM_ICC, b"\x00" * 200, 200), "is not an ICC profile"
    yield "EXIF without TIFF header", Stream(STREAM_EXIF, b"Exif\x00\x00" + exif, 16), "does not begin with a TIFF header"
    yield "XMP not UTF-8", Stream(STREAM_XMP, "<x>é</x>".encode("latin-1"), 8), "the xmp stream is not UTF-8"


def test_every_metadata_rule_is_kept_on_every_model(codecs):
    for model in MODELS:
        data = _vector(model)
        for label, stream, message in _metadata_variants():
            _refused(codecs[model], _with(data, add=[stream]), message)


def test_a_metadata_stream_above_16_mib_is_refused(codecs):
    big = Stream(STREAM_XMP, b" " * (MAX_BYTES + 1), MAX_BYTES + 1)
    _refused(codecs["hyperprior"], _with(_vector("hyperprior"), add=[big]),
             f"the xmp stream is {MAX_BYTES + 1} bytes, above the limit of {MAX_BYTES}")


def test_version_and_metadata_must_agree(codecs):
    data = _vector("hyperprior")
    xmp = Stream(STREAM_XMP, b"<x/>", 4)
    with_xmp = _with(data, add=[xmp])
    codecs["hyperprior"].decode(with_xmp)  # metadata decodes, and to the same pixels
    assert np.array_equal(codecs["hyperprior"].decode(with_xmp), codecs["hyperprior"].decode(data))
    body = bytearray(with_xmp[:-4])
    body[4] = 1
    _refused(codecs["hyperprior"], bytes(body) + struct.pack("<I", zlib.crc32(body)), "in a format version 1 file")
    body = bytearray(data[:-4])
    body[4] = 2
    _refused(codecs["hyperprior"], bytes(body) + struct.pack("<I", zlib.crc32(body)), "version 2 file without a metadata")


# ------------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def shipped_rgba():
    """A small RGBA file of the shipped hyperprior (the CLI decodes with the shipped weights)."""
    import lccodec

    rgb = photo_like(40, 56, seed=3)
    alpha = np.tile(np.linspace(0, 255, 56).astype(np.uint8), (40, 1))
    return lccodec.open_model("hyperprior", "cpu").encode(np.dstack([rgb, alpha]), 6.0).data


def _cli_cases(data: bytes) -> list[tuple[str, bytes]]:
    alpha = _stream(data, STREAM_ALPHA)
    rgb = _with(data, drop=STREAM_ALPHA, mode="RGB")
    cases = [
        ("unused z words", _with(data, lambda s: Stream(s.kind, EXTRA_WORD + s.data, s.symbols) if s.kind == STREAM_Z else s)),
        ("unused y words", _with(data, lambda s: Stream(s.kind, EXTRA_WORD + s.data, s.symbols) if s.kind == STREAM_Y else s)),
        ("emptied z", _replaced(data, STREAM_Z, b"")),
        ("emptied y", _replaced(data, STREAM_Y, b"")),
        ("cut-short y", _replaced(data, STREAM_Y, _stream(data, STREAM_Y).data[4:])),
        ("escape bytes left", _with(data, lambda s: Stream(s.kind, s.data + b"\x02", s.symbols) if s.kind == STREAM_ESCAPE else s)),
        ("unknown kind", _with(data, add=[Stream(11, b"\x00" * 4, 1)])),
        ("other model's kind", _with(data, add=[Stream(STREAM_Y3, EXTRA_WORD, 1)])),
        ("alpha in RGB", _with(rgb, add=[alpha])),
        ("alpha count", _with(data, lambda s: Stream(s.kind, s.data, s.symbols - 1) if s.kind == STREAM_ALPHA else s)),
    ]
    for label, bad, _ in _alpha_variants(alpha.data):
        cases.append((f"alpha PNG: {label}", _with(data, lambda s, bad=bad: Stream(s.kind, bad, s.symbols) if s.kind == STREAM_ALPHA else s)))
    for label, stream, _ in _metadata_variants():
        cases.append((f"metadata: {label}", _with(data, add=[stream])))
    return cases


def test_every_refusal_is_one_error_line_from_the_cli(shipped_rgba, tmp_path, capsys):
    code, _, err = run_cli(["decode", str(_write(tmp_path / "ok.lic", shipped_rgba)), str(tmp_path / "ok.png")], capsys)
    assert code == 0, err
    for i, (label, data) in enumerate(_cli_cases(shipped_rgba)):
        out = tmp_path / f"{i}.png"
        code, stdout, err = run_cli(["decode", str(_write(tmp_path / f"{i}.lic", data)), str(out)], capsys)
        lines = err.strip().splitlines()
        assert code != 0 and len(lines) == 1 and lines[0].startswith("lic: error: corrupt"), (label, err)
        assert "internal error" not in err and not out.exists(), label


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_pillow_alpha_pngs_pass_the_strict_reader():
    """What the encoder writes (Pillow, any size) passes; multi-IDAT files included."""
    from lccodec.side_streams import alpha_from_png, alpha_to_png

    for h, w in ((1, 1), (3, 700), (400, 300)):
        plane = np.random.default_rng(h).integers(0, 256, (h, w)).astype(np.uint8)
        png = alpha_to_png(plane)
        assert np.array_equal(alpha_from_png(png, w, h), plane)
    assert sum(k == b"IDAT" for k, _ in _chunks(png)) > 1
