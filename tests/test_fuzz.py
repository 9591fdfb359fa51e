"""Decoder fuzzing: every mutated .lic input is decoded or refused with a LicError, quickly.

The mutations come from lccodec.checks.fuzz (seeded, plain random; no extra packages):
truncations at every header offset and a sample of payload offsets, bit flips, random bytes,
zero / huge field values re-packed with a correct CRC, escape-stream garbage, stream-table games
and valid files relabelled as another model, weights, mode or quality.
"""
from __future__ import annotations

import random
import resource
import struct
import sys
import time
import tracemalloc

import pytest

from conftest import run_cli as _run

import lccodec
from lccodec import container
from lccodec.checks import fuzz as fd
from lccodec.errors import FormatError, LicError

MIN_CASES = 2000


@pytest.fixture(scope="module")
def seeds() -> list[bytes]:
    return fd.make_seeds("cpu")


def _report(stats) -> str:
    lines = [f"{len(stats.findings)} contract violations in {stats.cases} cases"]
    for f in stats.findings[:5]:
        lines.append(f"[{f.label}] {f.problem}\n  input: {f.data_hex}\n{f.traceback}")
    return "\n".join(lines)


@pytest.mark.parametrize("category", list(fd.MUTATORS))
def test_mutated_inputs_decode_or_raise_lic_error(category, seeds):
    rng = random.Random(f"lic-fuzz-{category}")
    stats = fd.Stats()
    for seed in seeds:
        for label, data in fd.MUTATORS[category](rng, seed):
            fd.check_case(label, data, stats)
    assert not stats.findings, _report(stats)
    assert stats.max_seconds < fd.CASE_LIMIT_S, stats.slowest
    assert sum(n for k, n in stats.outcomes.items() if k != "decoded") > 0  # they do reach checks


def test_fuzz_case_count(seeds):
    """The parametrized test above decodes at least MIN_CASES inputs (counted without decoding,
    with the same seeded generators)."""
    totals = {}
    for category, mutate in fd.MUTATORS.items():
        rng = random.Random(f"lic-fuzz-{category}")
        totals[category] = sum(1 for seed in seeds for _ in mutate(rng, seed))
    assert sum(totals.values()) >= MIN_CASES, totals


def test_unmutated_seeds_decode(seeds):
    for data in seeds:
        header, _ = container.unpack(data)
        image = lccodec.decode(data, device="cpu")
        assert image.size == (header.width, header.height) and image.mode == header.mode


def _maxrss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


@pytest.mark.parametrize("width,height", [(60000, 60000), (16000, 16000), (65535, 4096),
                                          (container.MAX_SIDE, 1), (1, container.MAX_SIDE)])
def test_huge_declared_size_refused_before_allocating(seeds, width, height):
    """A tiny payload claiming a huge image fails on the size or symbol-count check at once."""
    data = seeds[0]
    raw = bytearray(data)
    struct.pack_into("<II", raw, fd.OFF_SIZE, width, height)
    data = fd.fix_crc(bytes(raw))
    lccodec.decode(seeds[0], device="cpu")  # warm up: model loaded, tables built
    rss = _maxrss_bytes()
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(FormatError, match="exceeds the limit|symbol count"):
            lccodec.decode(data, device="cpu")
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seconds < 0.5
    assert peak < 1 << 20  # Python/numpy allocations during the refusal: under 1 MiB
    assert _maxrss_bytes() - rss < 64 << 20


def test_huge_escape_symbol_count_is_cheap(seeds):
    header, streams = container.unpack(seeds[0])
    streams = [s if s.kind != container.STREAM_ESCAPE else container.Stream(s.kind, s.data, 0xFFFFFFFF)
               for s in streams]
    start = time.perf_counter()
    with pytest.raises(FormatError):
        lccodec.decode(container.pack(header, streams), device="cpu")
    assert time.perf_counter() - start < fd.CASE_LIMIT_S


def test_non_bytes_input_is_refused():
    for value in ("x.lic", None, 12, [1, 2, 3]):
        with pytest.raises(LicError):
            lccodec.decode(value, device="cpu")


# --------------------------------------------------------------------------- the CLI path


def test_cli_decode_of_mutated_files(seeds, tmp_path, capsys):
    rng = random.Random(5)
    cases = [("truncated", seeds[1][:40]), ("random", rng.randbytes(100)),
             ("flipped", fd.flip_bits(rng, seeds[1], 30, 60, 1)),
             ("huge", next(d for label, d in fd.field_values(rng, seeds[0]) if label == "size"
                           and struct.unpack_from("<I", d, fd.OFF_SIZE)[0] == 65535)),
             ("model", fd.repack(seeds[2], model_id=77)),
             ("weights", fd.repack(seeds[2], weights_id=1)),
             ("alpha", next(d for label, d in fd.stream_games(rng, seeds[3]) if label == "alpha-garbage")),
             ("escape", next(d for label, d in fd.escape_garbage(rng, seeds[4]) if label == "escape-garbage"))]
    for name, data in cases:
        src, out = tmp_path / f"{name}.lic", tmp_path / f"{name}.png"
        src.write_bytes(data)
        code, stdout, err = _run(["decode", str(src), str(out)], capsys)
        if code == 0:  # a valid-CRC mutation may legitimately decode
            assert err == "" and out.is_file(), name
            continue
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("lic: error: "), (name, err)
        assert "internal error" not in err and "Traceback" not in err, (name, err)
        assert not out.exists() and list(tmp_path.glob(f"*{name}*.tmp*")) == [], name
        code, _, err = _run(["info", str(src)], capsys)
        assert code == 0 or (len(err.strip().splitlines()) == 1 and err.startswith("lic: error: ")), err
