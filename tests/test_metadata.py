"""ICC profiles, EXIF and XMP travel through a .lic file byte for byte (issue 30).

The fixtures are made here: a Display P3 ICC v4 profile built field by field (littlecms reads it
back as "Display P3"), EXIF from Pillow, XMP text. Decoding writes them into JPEG, PNG, WebP
and TIFF outputs; bad metadata is dropped with a warning; the pixels never depend on it.
"""
from __future__ import annotations

import io
import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

import lccodec
from lccodec import container
from lccodec.imageio import load_image
from lccodec.metadata import MAX_BYTES, Metadata, exif_upright, read_metadata

from conftest import photo_like, run_cli

XMP = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
       '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
       'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="1" dc:title="Crème brûlée"/>'
       '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>').encode("utf-8")


# ----------------------------------------------------------------------------- fixtures
def _s15(*values: float) -> bytes:
    return b"".join(struct.pack(">i", round(v * 65536)) for v in values)


def display_p3_profile() -> bytes:
    """An ICC v4 display profile with Display P3's primaries (D50-adapted) and the sRGB curve."""
    text = "Display P3".encode("utf-16-be")
    desc = b"mluc" + bytes(4) + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(text), 28) + text
    cprt = b"mluc" + bytes(4) + struct.pack(">II2s2sII", 1, 12, b"en", b"US", 6, 28) + "CC0".encode("utf-16-be")
    trc = b"para" + bytes(4) + struct.pack(">HH", 3, 0) + _s15(2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
    tags = [(b"desc", desc), (b"cprt", cprt), (b"wtpt", b"XYZ " + bytes(4) + _s15(0.9642, 1.0, 0.8249)),
            (b"rXYZ", b"XYZ " + bytes(4) + _s15(0.5151, 0.2412, -0.0011)),
            (b"gXYZ", b"XYZ " + bytes(4) + _s15(0.2919, 0.6922, 0.0419)),
            (b"bXYZ", b"XYZ " + bytes(4) + _s15(0.1572, 0.0666, 0.7841)),
            (b"rTRC", trc), (b"gTRC", trc), (b"bTRC", trc)]
    offset, table, body = 128 + 4 + 12 * len(tags), b"", b""
    for sig, data in tags:
        data += bytes(-len(data) % 4)
        table += struct.pack(">4sII", sig, offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I4sI4s4s4s", size, b"lcms", 0x04300000, b"mntr", b"RGB ", b"XYZ ")
              + struct.pack(">6H", 2026, 12, 7, 0, 0, 0) + b"acsp" + b"APPL" + bytes(24)  # …, intent 0
              + _s15(0.9642, 1.0, 0.8249) + b"lic " + bytes(44))
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def camera_exif(orientation: int | None = None) -> bytes:
    """EXIF as a camera writes it (with JPEG's Exif\\0\\0 prefix): make, model, a date, a GPS IFD."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Lic Camera Co.", "LC-1"
    if orientation:
        exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0x9003] = "2026:12:07 10:00:00"
    exif.get_ifd(0x8825)[0x0001] = "N"
    return exif.tobytes()


P3 = display_p3_profile()


def _image(height: int = 24, width: int = 40) -> Image.Image:
    return Image.fromarray(photo_like(height, width, seed=5))


def _file(path: Path, **options) -> Path:
    _image().save(path, **options)
    return path


def _metadata_of(path: Path) -> Metadata:
    with Image.open(path) as im:
        found, notes = read_metadata(im)
    assert notes == []
    return found


def test_the_display_p3_fixture_is_a_real_profile():
    profile = ImageCms.ImageCmsProfile(io.BytesIO(P3))
    assert profile.profile.profile_description == "Display P3"
    assert profile.profile.xcolor_space == "RGB "


# ----------------------------------------------------------------------------- round trips
def test_a_jpeg_with_display_p3_and_exif_keeps_every_byte(tmp_path, capsys):
    source = _file(tmp_path / "p3.jpg", icc_profile=P3, exif=camera_exif(), quality=95)
    with Image.open(source) as im:
        icc, exif = im.info["icc_profile"], im.info["exif"]
    assert icc == P3
    code, _, err = run_cli(["encode", str(source), str(tmp_path / "p3.lic"), "-m", "hyperprior"], capsys)
    assert code == 0 and err == ""
    data = (tmp_path / "p3.lic").read_bytes()
    assert data[4] == 2  # format version 2: it carries metadata
    for ext in ("jpg", "png", "webp", "tiff"):
        out = tmp_path / f"out.{ext}"
        code, _, err = run_cli(["decode", str(tmp_path / "p3.lic"), str(out)], capsys)
        assert code == 0 and err == "", (ext, err)
        kept = _metadata_of(out)
        assert kept.icc == icc, ext
        assert kept.exif == exif[6:], ext  # the TIFF structure after JPEG's Exif\0\0
    with Image.open(tmp_path / "out.jpg") as im:
        assert im.info["exif"] == exif and im.info["icc_profile"] == P3  # the JPEG's own segments


def test_a_png_with_iccp_keeps_every_byte(tmp_path, capsys):
    source = _file(tmp_path / "p3.png", icc_profile=P3)
    encoded = lccodec.open_model("hyperprior", "cpu").encode(str(source))
    assert encoded.metadata == Metadata(icc=P3) and encoded.warnings == []
    image = lccodec.decode(encoded.data, device="cpu")
    assert image.info["icc_profile"] == P3 and set(image.info) == {"icc_profile"}
    (tmp_path / "p3.lic").write_bytes(encoded.data)
    assert run_cli(["decode", str(tmp_path / "p3.lic"), str(tmp_path / "out.png")], capsys)[0] == 0
    assert _metadata_of(tmp_path / "out.png") == Metadata(icc=P3)


def test_a_webp_with_xmp_keeps_every_byte(tmp_path, capsys):
    source = _file(tmp_path / "x.webp", xmp=XMP, lossless=True)
    lic = tmp_path / "x.lic"
    assert run_cli(["encode", str(source), str(lic), "-m", "hyperprior"], capsys)[:1] == (0,)
    assert run_cli(["decode", str(lic), str(tmp_path / "out.webp")], capsys)[0] == 0
    assert _metadata_of(tmp_path / "out.webp") == Metadata(xmp=XMP)
    image = lccodec.decode(lic, device="cpu")
    assert image.info == {"xmp": XMP}


def test_metadata_changes_no_pixel_and_files_without_it_keep_their_bytes(tmp_path):
    plain, tagged = tmp_path / "plain.png", tmp_path / "tagged.png"
    _file(plain)
    _file(tagged, icc_profile=P3, exif=camera_exif())
    codec = lccodec.open_model("hyperprior", "cpu")
    a, b = codec.encode(str(plain)), codec.encode(str(tagged))
    assert a.data[4] == 1 and b.data[4] == 2
    assert np.array_equal(codec.decode(a.data), codec.decode(b.data))
    assert np.array_equal(a.reconstruction, b.reconstruction)
    assert codec.encode(load_image(str(tagged), strip=True)).data == a.data  # stripped: version 1, same bytes


def test_exif_orientation_is_applied_and_stored_as_1(tmp_path):
    exif = camera_exif(orientation=6)
    turned_xmp = XMP.replace(b'Orientation="1"', b'Orientation="6"')
    source = _file(tmp_path / "turned.jpg", exif=exif, xmp=turned_xmp, quality=95)
    raster = load_image(str(source))
    assert (raster.width, raster.height) == (24, 40)  # turned upright
    stored = raster.metadata.exif
    assert len(stored) == len(exif) - 6
    assert sum(x != y for x, y in zip(stored, exif[6:])) == 1  # only the orientation value
    parsed = Image.Exif()
    parsed.load(stored)
    assert parsed[0x0112] == 1 and parsed[0x010F] == "Lic Camera Co."
    assert raster.metadata.xmp == XMP  # tiff:Orientation="1" too


def test_exif_upright_sets_the_orientation_only_and_gives_up_on_what_it_cannot_read():
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 3, "x"
    for tiff in (exif.tobytes()[6:], exif.tobytes(8)[6:]):  # both byte orders Pillow writes
        upright = exif_upright(tiff)
        parsed = Image.Exif()
        parsed.load(upright)
        assert parsed[0x0112] == 1 and sum(a != b for a, b in zip(tiff, upright)) == 1
    assert exif_upright(exif.tobytes()[6:14]) is None  # IFD0 lies past the end


# ----------------------------------------------------------------------------- bad metadata
def _warned(tmp_path, capsys, source: Path, kind: str, why: str) -> Metadata:
    lic = tmp_path / (source.name + ".lic")
    code, _, err = run_cli(["encode", str(source), str(lic), "-m", "hyperprior"], capsys)
    lines = err.strip().splitlines()
    assert code == 0 and len(lines) == 1, err
    assert lines[0].startswith(f"lic: warning: {kind} dropped: it {why}") and f"--strip" in lines[0], err
    header, streams = container.unpack(lic.read_bytes())
    return Metadata.from_streams({s.kind: s for s in streams})


def test_a_truncated_icc_profile_is_dropped_with_a_warning(tmp_path, capsys):
    source = _file(tmp_path / "cut.jpg", icc_profile=P3[:300], exif=camera_exif())
    kept = _warned(tmp_path, capsys, source, "ICC profile", f"declares {len(P3)} bytes but holds 300")
    assert kept.icc is None and kept.exif is not None  # the rest is kept


def test_a_50_mb_exif_is_dropped_with_a_warning(tmp_path, capsys):
    huge = b"MM\x00*\x00\x00\x00\x08\x00\x00" + bytes(50_000_000)
    source = _file(tmp_path / "huge.png", exif=huge, icc_profile=P3)
    kept = _warned(tmp_path, capsys, source, "EXIF", f"is {len(huge)} bytes, above the limit of {MAX_BYTES}")
    assert kept == Metadata(icc=P3)


def test_an_xmp_that_is_not_utf8_is_dropped_with_a_warning(tmp_path, capsys):
    source = _file(tmp_path / "latin.webp", xmp=XMP.decode("utf-8").encode("latin-1", "replace"))
    assert _warned(tmp_path, capsys, source, "XMP", "is not UTF-8") == Metadata()
    assert (tmp_path / "latin.webp.lic").read_bytes()[4] == 1  # nothing kept: version 1


def test_an_exif_without_a_tiff_header_is_dropped(tmp_path, capsys):
    source = _file(tmp_path / "junk.webp", exif=b"Exif\x00\x00junk-not-tiff")
    assert _warned(tmp_path, capsys, source, "EXIF", "does not begin with a TIFF header") == Metadata()


# ----------------------------------------------------------------------------- --strip
def test_strip_drops_all_or_the_kinds_named(tmp_path, capsys):
    source = _file(tmp_path / "all.webp", icc_profile=P3, exif=camera_exif(), xmp=XMP)
    cases = {(): ("icc", "exif", "xmp"), ("--strip",): (), ("--strip", "icc,exif"): ("xmp",),
             ("--strip", "xmp"): ("icc", "exif"), ("--strip=all",): ()}
    for i, (flags, kept) in enumerate(cases.items()):
        out = tmp_path / f"{i}.lic"
        code, _, err = run_cli(["encode", str(source), str(out), "-m", "hyperprior", *flags], capsys)
        assert code == 0 and err == "", (flags, err)
        fields = container.describe(*container.unpack(out.read_bytes()))
        assert tuple(m["kind"] for m in fields["metadata"]) == kept, flags


def test_a_bare_strip_before_the_input_strips_all(tmp_path, capsys):
    source = _file(tmp_path / "a.png", icc_profile=P3)
    code, _, err = run_cli(["encode", "--strip", str(source), "-m", "hyperprior"], capsys)
    assert code == 0 and err == ""
    assert container.unpack((tmp_path / "a.lic").read_bytes())[0].version == 1


def test_strip_refuses_an_unknown_kind(tmp_path, capsys):
    source = _file(tmp_path / "a.png")
    code, _, err = run_cli(["encode", str(source), "--strip", "icc,gps"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "cannot strip 'gps'" in lines[0], err
    with pytest.raises(lccodec.LicError, match="cannot strip 'gps'"):
        lccodec.encode(str(source), strip="gps", device="cpu")


def test_the_api_strips_by_name():
    data = io.BytesIO()
    _image().save(data, format="WEBP", icc_profile=P3, xmp=XMP)
    assert load_image(data.getvalue(), strip=["icc"]).metadata == Metadata(xmp=XMP)
    assert load_image(data.getvalue(), strip="all").metadata == Metadata()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # kept metadata warns about nothing
        lic = lccodec.encode(data.getvalue(), model="hyperprior", device="cpu")
    assert lccodec.decode(lic, device="cpu").info == {"icc_profile": P3, "xmp": XMP}
    assert lccodec.Metadata is Metadata


# ----------------------------------------------------------------------------- TIFF, other outputs
def test_a_plain_8bit_tiff_gets_no_warning_and_a_tiff_exif_is_carried(tmp_path, capsys):
    plain = _file(tmp_path / "plain.tif")
    code, _, err = run_cli(["encode", str(plain), str(tmp_path / "plain.lic"), "-m", "hyperprior"], capsys)
    assert code == 0 and err == ""
    assert container.unpack((tmp_path / "plain.lic").read_bytes())[0].version == 1
    tagged = _file(tmp_path / "tagged.tif", exif=camera_exif(), icc_profile=P3)
    kept = load_image(str(tagged)).metadata
    exif = Image.Exif()
    exif.load(kept.exif)
    assert kept.icc == P3 and exif[0x010F] == "Lic Camera Co." and exif.get_ifd(0x8769)[0x9003]
    assert 0x0100 not in exif  # the TIFF's own layout tags are not EXIF


def test_outputs_that_cannot_hold_metadata_say_so(tmp_path, capsys):
    source = _file(tmp_path / "a.png", icc_profile=P3, exif=camera_exif())
    lic = tmp_path / "a.lic"
    assert run_cli(["encode", str(source), str(lic), "-m", "hyperprior"], capsys)[0] == 0
    code, _, err = run_cli(["decode", str(lic), str(tmp_path / "a.bmp")], capsys)
    assert code == 0 and err.strip() == ("lic: warning: ICC profile and EXIF not written: "
                                         "lic cannot put them in BMP files")
    code, _, err = run_cli(["decode", str(lic), str(tmp_path / "b.bmp"), "--quiet"], capsys)
    assert code == 0 and err == ""


def test_info_lists_the_metadata(tmp_path, capsys):
    source = _file(tmp_path / "a.webp", icc_profile=P3, xmp=XMP)
    lic = tmp_path / "a.lic"
    assert run_cli(["encode", str(source), str(lic), "-m", "hyperprior"], capsys)[0] == 0
    code, text, _ = run_cli(["info", str(lic)], capsys)
    assert code == 0 and f"metadata: icc {len(P3)} bytes, xmp {len(XMP)} bytes\n" in text
    assert "format_version: 2\n" in text
    code, text, _ = run_cli(["info", str(lic), "--json"], capsys)
    assert json.loads(text)["metadata"] == [{"kind": "icc", "bytes": len(P3)}, {"kind": "xmp", "bytes": len(XMP)}]
