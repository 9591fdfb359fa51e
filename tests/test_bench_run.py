"""lic bench end to end: runner with a fake learned codec, reports, and the click command."""
import csv
import json
import math
import zlib
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import lccodec
from lccodec.bench import BenchError
from lccodec.bench.cli import bench
from lccodec.bench.report import bd_comparisons, run_document, summary_table, write_csv
from lccodec.bench.runner import aggregate, list_images, points_to_curves, run_benchmark
from lccodec.errors import ImageError, ModelError


@dataclass
class Encoded:
    data: bytes
    reconstruction: np.ndarray
    quality: float


class FakeCodec:
    """Quantize with step 2**(8 - quality), zlib the result; decode inverts it exactly."""

    def __init__(self, name="fake", qualities=(1.0, 2.0), buggy=False):
        self.name, self.qualities, self.buggy, self.description = name, list(qualities), buggy, ""

    def encode(self, image, quality):
        step = 2 ** (8 - int(quality))
        q = (image // step).astype(np.uint8)
        h, w, _ = image.shape
        data = bytes([int(quality)]) + h.to_bytes(2, "big") + w.to_bytes(2, "big") + zlib.compress(q)
        return Encoded(data, self._recon(q, step), float(quality))

    def decode(self, data):
        step = 2 ** (8 - data[0])
        h, w = int.from_bytes(data[1:3], "big"), int.from_bytes(data[3:5], "big")
        q = np.frombuffer(zlib.decompress(data[5:]), np.uint8).reshape(h, w, 3)
        out = self._recon(q, step)
        if self.buggy:
            out[0, 0, 0] ^= 1
        return out

    @staticmethod
    def _recon(q, step):
        return np.clip(q.astype(int) * step + step // 2, 0, 255).astype(np.uint8)


def _images(n=2, h=20, w=24):
    rng = np.random.default_rng(0)
    return [(f"im{i}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for i in range(n)]


def test_runner_rows_and_aggregates():
    images = _images()
    groups = []
    rows = run_benchmark([FakeCodec()], images, on_group=lambda: groups.append(1), progress=False)
    assert [(r.quality, r.image) for r in rows] == [(1.0, "im0.png"), (1.0, "im1.png"),
                                                    (2.0, "im0.png"), (2.0, "im1.png")]
    assert len(groups) == 2 and all(r.match is True for r in rows)
    r = rows[0]
    assert r.bpp == pytest.approx(r.bytes * 8 / (20 * 24)) and (r.width, r.height) == (24, 20)
    points = aggregate(rows)
    assert [(p.codec, p.quality, p.images, p.mismatches) for p in points] == [
        ("fake", 1.0, 2, 0), ("fake", 2.0, 2, 0)]
    assert points[0].bpp == pytest.approx((rows[0].bpp + rows[1].bpp) / 2)
    assert points[0].psnr == pytest.approx((rows[0].psnr + rows[1].psnr) / 2)
    assert points[1].psnr > points[0].psnr and points[1].bpp > points[0].bpp
    assert math.isnan(points[0].ms_ssim)  # images too small for MS-SSIM


def test_runner_times_encode_and_decode_apart(monkeypatch):
    """On a fake clock that only the codec advances, times are exact: the encode is timed
    without the decode and vice versa, and the aggregates are the median and the mean."""
    from lccodec.bench import runner

    now = [0.0]
    monkeypatch.setattr(runner, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    costs = {"im0.png": (0.5, 0.25), "im1.png": (1.5, 0.25), "im2.png": (4.0, 1.0)}

    class Timed(FakeCodec):
        def encode(self, image, quality):
            now[0] += costs[self.current][0]
            return super().encode(image, quality)

        def decode(self, data):
            now[0] += costs[self.current][1]
            return super().decode(data)

    codec = Timed(qualities=[1.0])

    def code_one(c, image, q, name, _real=runner.code_one):
        codec.current = name
        return _real(c, image, q, name)

    monkeypatch.setattr(runner, "code_one", code_one)
    rows = runner.run_benchmark([codec], _images(3), progress=False)
    assert [(r.encode_s, r.decode_s) for r in rows] == list(costs.values())
    (p,) = aggregate(rows)
    assert (p.encode_s_median, p.encode_s_mean) == (1.5, 2.0)
    assert (p.decode_s_median, p.decode_s_mean) == (0.25, 0.5)


def test_runner_counts_mismatches_loudly():
    rows = run_benchmark([FakeCodec(buggy=True)], _images(), progress=False)
    points = aggregate(rows)
    assert [p.mismatches for p in points] == [2, 2]
    assert "!! 4 decode(s) differ" in summary_table(points)


def test_run_document_layout_and_csv(tmp_path):
    rows = run_benchmark([FakeCodec("a", [1, 2, 3, 4, 5]), FakeCodec("b", [2, 3, 4, 5, 6])],
                         _images(), progress=False)
    points = aggregate(rows)
    curves = points_to_curves(points)
    bd = bd_comparisons(curves)
    assert [(b.test, b.anchor) for b in bd] == [("a", "b")]  # each pair once
    assert bd[0].bd_rate_psnr is not None and bd[0].bd_rate_msssim is None
    doc = run_document(points, rows, curves, bd, ["a note"], {"description": "2 images"})
    text = json.dumps(doc, allow_nan=False)  # strict JSON: NaN written as null
    doc = json.loads(text)
    assert [c["name"] for c in doc["codecs"]] == ["a", "b"]
    res = doc["codecs"][0]["results"]
    for key in ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time", "quality"):
        assert len(res[key]) == 5
    assert res["ms-ssim-rgb"][0] is None and len(doc["rows"]) == 20 and doc["mismatches"] == 0
    write_csv(tmp_path / "r.csv", rows)
    with open(tmp_path / "r.csv", newline="") as f:
        got = list(csv.DictReader(f))
    assert len(got) == 20 and got[0]["codec"] == "a" and got[0]["image"] == "im0.png"
    assert got[0]["ms_ssim"] == "" and float(got[0]["bpp"]) == pytest.approx(rows[0].bpp)


def test_list_images_sorted_limited_and_empty(tmp_path):
    for n in ("b.png", "a.jpg", "c.txt"):
        (tmp_path / n).write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.png"]
    assert [p.name for p in list_images(tmp_path, 1)] == ["a.jpg"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no images"):
        list_images(tmp_path / "empty")


# --- CLI -------------------------------------------------------------------------------------

@pytest.fixture
def img_dir(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for name, arr in _images(2, 32, 40):
        Image.fromarray(arr).save(d / name)
    return d


def test_cli_baselines_only(img_dir, tmp_path):
    out_json, out_csv = tmp_path / "run.json", tmp_path / "run.csv"
    res = CliRunner().invoke(bench, [str(img_dir), "--codec", "jpeg", "--model", "none",
                                     "--json", str(out_json), "--csv", str(out_csv)])
    assert res.exit_code == 0, res.output
    assert "jpeg-444" in res.stdout and "jpeg-444 vs jpeg-420" in res.stdout
    doc = json.loads(out_json.read_text())
    assert [c["name"] for c in doc["codecs"]] == ["jpeg-444", "jpeg-420"]
    assert doc["meta"]["images"] == ["im0.png", "im1.png"]
    n = len(doc["codecs"][0]["results"]["bpp"])
    assert len(doc["rows"]) == 2 * n * 2
    assert len(out_csv.read_text().splitlines()) == 1 + 2 * n * 2
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left behind


def _fake_models(monkeypatch, buggy=False):
    info = SimpleNamespace(name="fake", model_id=1, quality_range=(1, 8), weights_bytes=0,
                           description="fake model")
    monkeypatch.setattr(lccodec, "list_models", lambda: [info], raising=False)
    monkeypatch.setattr(lccodec, "open_model", lambda name, device="auto": FakeCodec(buggy=buggy),
                        raising=False)


def test_cli_learned_model_and_errors(img_dir, tmp_path, monkeypatch):
    _fake_models(monkeypatch)
    res = CliRunner().invoke(bench, [str(img_dir), "--codec", "none", "--quality", "1,2,3",
                                     "--json", str(tmp_path / "r.json"), "--limit", "1"])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["codecs"][0]["results"]["quality"] == [1.0, 2.0, 3.0]
    assert doc["codecs"][0]["description"] == "fake model" and len(doc["rows"]) == 3

    res = CliRunner().invoke(bench, [str(img_dir), "--codec", "none", "--model", "nope"])
    assert isinstance(res.exception, ModelError) and "unknown model 'nope'" in str(res.exception)
    res = CliRunner().invoke(bench, [str(img_dir), "--codec", "none", "--quality", "9"])
    assert isinstance(res.exception, ModelError) and "outside" in str(res.exception)
    res = CliRunner().invoke(bench, [str(img_dir), "--codec", "png", "--model", "none"])
    assert isinstance(res.exception, BenchError) and "unknown codec 'png'" in str(res.exception)
    res = CliRunner().invoke(bench, [str(img_dir), "--codec", "none", "--model", "none"])
    assert isinstance(res.exception, BenchError) and "nothing to run" in str(res.exception)
    res = CliRunner().invoke(bench, [str(tmp_path / "nowhere"), "--model", "none"])
    assert isinstance(res.exception, ImageError)
    res = CliRunner().invoke(bench, [str(img_dir), "--model", "none", "--codec", "jpeg",
                                     "--anchor", str(tmp_path / "missing.json")])
    assert isinstance(res.exception, BenchError) and "cannot read anchor" in str(res.exception)


def test_cli_mismatch_is_an_error_after_writing(img_dir, tmp_path, monkeypatch):
    _fake_models(monkeypatch, buggy=True)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(bench, [str(img_dir), "--codec", "none", "--quality", "1,2",
                                     "--json", str(out)])
    assert isinstance(res.exception, BenchError) and "differ" in str(res.exception)
    assert json.loads(out.read_text())["mismatches"] == 4


def test_cli_interrupt_leaves_readable_results(img_dir, tmp_path, monkeypatch):
    class Interrupted(FakeCodec):
        def encode(self, image, quality):
            if quality == 2:
                raise KeyboardInterrupt
            return super().encode(image, quality)

    _fake_models(monkeypatch)
    monkeypatch.setattr(lccodec, "open_model", lambda name, device="auto": Interrupted())
    out, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    res = CliRunner().invoke(bench, [str(img_dir), "--codec", "none", "--quality", "1,2",
                                     "--json", str(out), "--csv", str(out_csv)])
    assert res.exit_code != 0
    assert len(json.loads(out.read_text())["rows"]) == 2
    assert len(out_csv.read_text().splitlines()) == 3


def test_cli_plot_without_matplotlib(img_dir, tmp_path):
    try:
        import matplotlib  # noqa: F401
        pytest.skip("matplotlib is installed")
    except ImportError:
        pass
    res = CliRunner().invoke(bench, [str(img_dir), "--model", "none", "--codec", "jpeg",
                                     "--plot", str(tmp_path / "rd.png"),
                                     "--json", str(tmp_path / "r.json")])
    assert isinstance(res.exception, BenchError)
    assert str(res.exception) == "--plot needs matplotlib: pip install 'lccodec[plot]'"
    assert not (tmp_path / "r.json").exists()  # failed before doing any work


def test_cli_plot_with_matplotlib(img_dir, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "rd.png"
    res = CliRunner().invoke(bench, [str(img_dir), "--model", "none", "--codec", "jpeg-420",
                                     "--plot", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_json_dir_writes_one_compressai_file_per_codec(img_dir, tmp_path):
    from lccodec.bench.anchors import load_curves

    out = tmp_path / "curves"
    out.mkdir()
    res = CliRunner().invoke(bench, [str(img_dir), "--codec", "jpeg", "--model", "none",
                                     "--json-dir", str(out)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["jpeg-420.json", "jpeg-444.json"]
    doc = json.loads((out / "jpeg-444.json").read_text())
    assert set(doc) == {"name", "description", "results"} and doc["name"] == "jpeg-444"
    assert {"bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"} <= set(doc["results"])
    assert [c.name for c in load_curves(out / "jpeg-420.json")] == ["jpeg-420"]
    res = CliRunner().invoke(bench, [str(img_dir), "--codec", "jpeg", "--model", "none",
                                     "--json-dir", str(tmp_path / "missing")])
    assert isinstance(res.exception, BenchError) and "--json-dir" in str(res.exception)


def test_cli_records_versions_and_the_device_used(img_dir, tmp_path):
    res = CliRunner().invoke(bench, [str(img_dir), "--codec", "jpeg-420", "--model", "none",
                                     "--device", "auto", "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "r.json").read_text())["meta"]
    assert set(meta["versions"]) >= {"lic", "torch", "Pillow", "libjpeg", "libwebp", "libavif"}
    assert meta["versions"]["lic"] == lccodec.__version__ and meta["versions"]["libjpeg"]
    assert meta["device"] in ("cpu", "cuda:0", "cuda") and meta["device_requested"] == "auto"
    assert meta["threads"] >= 1


def test_bd_says_why_it_is_not_available():
    rows = run_benchmark([FakeCodec("a", [1, 2, 3]), FakeCodec("b", [2, 3, 4, 5, 6])],
                         _images(), progress=False)
    points = aggregate(rows)
    (bd,) = bd_comparisons(points_to_curves(points))
    assert bd.bd_rate_psnr is None and bd.why.startswith("a has 3 rate-distortion point(s)")
    assert "needs at least 4" in summary_table(points, [bd])


def test_bd_never_compares_a_codec_with_itself():
    rows = run_benchmark([FakeCodec("a", [1, 2, 3, 4, 5]), FakeCodec("b", [2, 3, 4, 5, 6])],
                         _images(), progress=False)
    curves = points_to_curves(aggregate(rows))
    again = points_to_curves(aggregate(rows))  # the same run loaded back as anchors
    for c in again:
        c.is_anchor = True
    pairs = [(b.test, b.anchor) for b in bd_comparisons(curves, again)]
    assert pairs == [("a", "b"), ("a", "b"), ("b", "a")]
    shifted = points_to_curves(aggregate(rows))[0]
    shifted.bpp = [v * 1.1 for v in shifted.bpp]  # an older run of the same codec
    assert [(b.test, b.anchor) for b in bd_comparisons(curves[:1], [shifted])] == [("a", "a (anchor)")]


def test_cli_opens_each_model_once(img_dir, tmp_path, monkeypatch):
    _fake_models(monkeypatch)
    res = CliRunner().invoke(bench, [str(img_dir), "--codec", "none", "--model", "fake,fake",
                                     "--quality", "1,2,3,4", "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [c["name"] for c in doc["codecs"]] == ["fake"] and doc["bd"] == []


def test_cli_jpeg_xl_baseline(img_dir, tmp_path):
    pytest.importorskip("pillow_jxl")
    res = CliRunner().invoke(bench, [str(img_dir), "--model", "none", "--codec", "jxl",
                                     "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert [c["name"] for c in json.loads((tmp_path / "r.json").read_text())["codecs"]] == ["jxl"]


def test_bench_extra_is_installed_by_make():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pyproject = (root / "pyproject.toml").read_text()
    extra = next(line for line in pyproject.splitlines() if line.startswith("bench = "))
    assert "matplotlib" in extra and "pillow-jxl-plugin" in extra
    assert "-e '.[test,bench]'" in (root / "Makefile").read_text()
