"""Decoder fuzzing: mutate valid .lic files and check that every decode is safe.

A decode is safe when it either succeeds (and returns an image of the size its header states)
or raises :class:`lccodec.errors.LicError` — never another exception — and finishes within a
time limit. The mutations are plain seeded random ones (no extra packages); tests/test_fuzz.py
runs a fixed sample of them in CI, ``benchmarks/fuzz_deep.py`` (or ``python -m lccodec.checks.fuzz``)
runs as many as you ask for::

    python benchmarks/fuzz_deep.py --cases 20000 --seed 1 --json fuzz.json
    python benchmarks/fuzz_deep.py --minutes 5

Coverage-guided fuzzing (atheris) is benchmarks/fuzz_coverage.py (`make fuzz`).

Mutations that must get past the CRC32 (field values, payload bytes, relabelled files) are
re-packed with a correct checksum, so they reach the stream table checks and the model.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import struct
import sys
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import lccodec

from PIL import Image

from .. import container
from ..container import MODES, Stream
from ..errors import LicError
from ..imageio import load_image
from ..metadata import Metadata

FIXED_SIZE = 28  # bytes of the fixed header, up to and including the params length
OFF_SIZE, OFF_MODE, OFF_COUNT, OFF_PLEN = 14, 22, 23, 26  # width+height (2 x u32), mode, streams, params length
ENTRY_SIZE = 9  # one stream table entry: kind (u8), byte length (u32), symbol count (u32)
CASE_LIMIT_S = 5.0
HUGE = (0xFFFFFFFF, 0x7FFFFFFF, 1 << 24, 65536 * 65536 - 1)

# (height, width, mode, quality): small images so that a decode takes tens of milliseconds
SEED_IMAGES = ((16, 16, "RGB", 1.0), (48, 64, "RGB", 8.0), (24, 40, "L", 3.0),
               (20, 24, "LA", 5.0), (17, 33, "RGBA", 2.5))


# ----------------------------------------------------------------------------- seeds
def seed_image(height: int, width: int, mode: str, seed: int = 0) -> np.ndarray:
    """A smooth textured uint8 image in `mode` (L, LA, RGB or RGBA), deterministic."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([128 + 80 * np.sin(xx / 7.0 + seed) * np.cos(yy / 5.0),
                    128 + 60 * np.cos((xx + yy) / 9.0),
                    110 + 70 * np.sin(yy / 4.0 - seed)], axis=2)
    rgb = np.clip(rgb + rng.normal(0, 8, rgb.shape), 0, 255).astype(np.uint8)
    alpha = (np.arange(width, dtype=np.uint16)[None, :] * 255 // max(width - 1, 1)).astype(np.uint8)
    alpha = np.repeat(alpha, height, axis=0)
    colour = rgb if mode.startswith("RGB") else rgb[..., :1]
    return np.concatenate([colour, alpha[..., None]], axis=2) if mode.endswith("A") else colour


def seed_metadata() -> Metadata:
    """A small ICC profile (its header and an empty tag table), EXIF and XMP that pass the rules."""
    icc = struct.pack(">I", 132) + bytes(32) + b"acsp" + bytes(92)
    exif = Image.Exif()
    exif[0x010F] = "lic fuzz"
    return Metadata(icc, exif.tobytes()[6:], '<x:xmpmeta xmlns:x="adobe:ns:meta/">é</x:xmpmeta>'.encode())


def make_seeds(device: str = "cpu", model: str = "hyperprior") -> list[bytes]:
    """Valid .lic files of every mode, small sizes and low and high qualities, and one with
    metadata (format version 2)."""
    codec = lccodec.open_model(model, device)
    lo, hi = codec.quality_range
    out = []
    for i, (h, w, mode, q) in enumerate(SEED_IMAGES):
        out.append(codec.encode(seed_image(h, w, mode, seed=i), min(max(q, lo), hi)).data)
    raster = load_image(seed_image(16, 24, "RGB", seed=9))
    raster.metadata = seed_metadata()
    out.append(codec.encode(raster, min(max(4.0, lo), hi)).data)
    return out


# ----------------------------------------------------------------------------- helpers
def fix_crc(data: bytes) -> bytes:
    """`data` with its last four bytes replaced by the CRC32 of everything before them."""
    body = bytes(data[:-4])
    return body + struct.pack("<I", zlib.crc32(body))


def table_end(data: bytes) -> int:
    """Offset of the first stream byte of a valid file."""
    plen, = struct.unpack_from("<H", data, OFF_PLEN)
    n = data[OFF_COUNT]
    return FIXED_SIZE + plen + ENTRY_SIZE * n


def repack(data: bytes, streams: list[Stream] | None = None, **fields) -> bytes:
    """Unpack a valid file, replace header fields and/or streams, pack with a correct CRC.

    The version byte stays the file's (or `version=`), even where the streams need the other.
    """
    header, old = container.unpack(data)
    streams = old if streams is None else streams
    version = fields.pop("version", header.version)
    packed = container.pack(dataclasses.replace(header, **fields, version=container.format_version(streams)), streams)
    return fix_crc(packed[:4] + bytes([version]) + packed[5:])


def set_u32(data: bytes, offset: int, value: int) -> bytes:
    return fix_crc(data[:offset] + struct.pack("<I", value) + data[offset + 4:])


def flip_bits(rng: random.Random, data: bytes, lo: int, hi: int, count: int) -> bytes:
    b = bytearray(data)
    for _ in range(count):
        i = rng.randrange(lo, hi)
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


# ----------------------------------------------------------------------------- mutators
# Each mutator yields (label, bytes). All are deterministic given the rng.
Mutator = Callable[[random.Random, bytes], Iterator[tuple[str, bytes]]]


def truncations(rng: random.Random, seed: bytes, payload_samples: int = 50) -> Iterator[tuple[str, bytes]]:
    """Every length up to the end of the stream table, a sample of payload lengths."""
    end = table_end(seed)
    for n in range(0, end + 5):
        yield f"truncate@{n}", seed[:n]
    for n in sorted(rng.sample(range(end + 5, len(seed)), min(payload_samples, len(seed) - end - 5))):
        yield f"truncate@{n}", seed[:n]
    yield "drop-crc", seed[:-4]
    yield "extra-byte", seed + b"\x00"
    yield "extra-byte-fixed-crc", fix_crc(seed[:-4] + b"\x00" + seed[-4:])


def bit_flips(rng: random.Random, seed: bytes, raw: int = 32, fixed: int = 20) -> Iterator[tuple[str, bytes]]:
    """1-3 bit flips in the header/table, payload and CRC; `fixed` of them get a correct CRC."""
    end = table_end(seed)
    regions = {"header": (0, end), "payload": (end, len(seed) - 4), "crc": (len(seed) - 4, len(seed))}
    for name, (lo, hi) in regions.items():
        if hi <= lo:
            continue
        for k in range(raw):
            mutated = flip_bits(rng, seed, lo, hi, rng.choice((1, 1, 2, 3)))
            yield f"flip-{name}", mutated
            if name != "crc" and k < fixed:
                yield f"flip-{name}-fixed-crc", fix_crc(mutated)


def random_inputs(rng: random.Random, seed: bytes, count: int = 24) -> Iterator[tuple[str, bytes]]:
    """Random bytes: bare, behind the magic, and as a whole header with a correct CRC."""
    for _ in range(count):
        n = rng.choice((0, 1, 3, 4, 5, 31, 32, 33, rng.randrange(0, 400)))
        yield "random", rng.randbytes(n)
        yield "random-magic", container.MAGIC + rng.randbytes(n)
        yield "random-after-version-fixed-crc", fix_crc(container.MAGIC + b"\x01\x00" + rng.randbytes(n + 30))
    end = table_end(seed)
    yield "random-payload-fixed-crc", fix_crc(seed[:end] + rng.randbytes(len(seed) - end))


def field_values(rng: random.Random, seed: bytes) -> Iterator[tuple[str, bytes]]:
    """Stream lengths, symbol counts, sizes and counts set to zero / huge with a correct CRC."""
    header, streams = container.unpack(seed)
    end = table_end(seed)
    entry0 = end - ENTRY_SIZE * len(streams)
    for i in range(len(streams)):
        for value in (0, 1, *HUGE, rng.randrange(1 << 32)):
            yield "stream-length", set_u32(seed, entry0 + ENTRY_SIZE * i + 1, value)
            yield "symbol-count", set_u32(seed, entry0 + ENTRY_SIZE * i + 5, value)
    # move bytes from one stream to the next: lengths still add up, so the model sees them
    if len(streams) >= 2:
        for delta in (-4, -1, 1, 4):
            a, b = streams[0], streams[1]
            if 0 <= len(a.data) + delta and 0 <= len(b.data) - delta:
                raw = bytearray(seed)
                struct.pack_into("<I", raw, entry0 + 1, len(a.data) + delta)
                struct.pack_into("<I", raw, entry0 + ENTRY_SIZE + 1, len(b.data) - delta)
                yield "shift-stream-boundary", fix_crc(bytes(raw))
    for w, h in ((0, header.height), (header.width, 0), (0, 0), (65535, 65535), (60000, 60000),
                 (0xFFFFFFFF, 1), (1, 0xFFFFFFFF), (container.MAX_SIDE, 1), (1, container.MAX_SIDE),
                 (16384, 16384), (16000, 16000), (header.width + 64, header.height),
                 (header.width, header.height + 1), (1, 1)):
        raw = bytearray(seed)
        struct.pack_into("<II", raw, OFF_SIZE, w, h)
        yield "size", fix_crc(bytes(raw))
    # a size in other 64-pixel blocks with symbol counts to match: reaches the entropy decoder
    blocks = -(-header.width // 64) * -(-header.height // 64)
    for w, h in ((128, 128), (200, 72)):
        scale = -(-w // 64) * -(-h // 64)
        resized = [Stream(s.kind, s.data, s.symbols * scale // blocks
                          if s.kind in (container.STREAM_Z, container.STREAM_Y) else s.symbols)
                   for s in streams]
        yield "size-and-symbol-counts", repack(seed, resized, width=w, height=h)
    for n in (0, 1, 15, 16, 17, 255):
        raw = bytearray(seed)
        raw[OFF_COUNT] = n
        yield "stream-count", fix_crc(bytes(raw))
    for plen in (1, 9, 0xFFFF):
        raw = bytearray(seed)
        struct.pack_into("<H", raw, OFF_PLEN, plen)
        yield "params-length", fix_crc(bytes(raw))
    for off, value in ((4, 0), (4, 2), (4, 255), (5, 1), (5, 0x80), (22, 4), (22, 255)):
        raw = bytearray(seed)
        raw[off] = value
        yield f"byte{off}={value}", fix_crc(bytes(raw))
    yield "params", repack(seed, params=rng.randbytes(rng.randrange(1, 64)))
    yield "layer-flags", repack(seed, layer_flags=rng.randrange(1 << 16))


def escape_garbage(rng: random.Random, seed: bytes, count: int = 4) -> Iterator[tuple[str, bytes]]:
    """The escape stream replaced by random varints / bytes, with random symbol counts."""
    _, streams = container.unpack(seed)
    other = [s for s in streams if s.kind != container.STREAM_ESCAPE]
    for _ in range(count):
        data = rng.choice((rng.randbytes(rng.randrange(0, 64)), b"\xff" * rng.randrange(1, 40),
                           b"\x80" * 11 + b"\x01"))
        symbols = rng.choice((0, 1, len(data), rng.randrange(1 << 32)))
        yield "escape-garbage", repack(seed, other + [Stream(container.STREAM_ESCAPE, data, symbols)])
    yield "escape-missing", repack(seed, other)


def stream_games(rng: random.Random, seed: bytes) -> Iterator[tuple[str, bytes]]:
    """Streams dropped, reordered, swapped, emptied, or extra unknown streams added."""
    _, streams = container.unpack(seed)
    for i in range(len(streams)):
        yield "drop-stream", repack(seed, streams[:i] + streams[i + 1:])
        emptied = list(streams)
        emptied[i] = Stream(streams[i].kind, b"", streams[i].symbols)
        yield "empty-stream", repack(seed, emptied)
        words = list(streams)
        words[i] = Stream(streams[i].kind, rng.randbytes(4 * rng.randrange(0, 30)), streams[i].symbols)
        yield "random-stream-words", repack(seed, words)
    yield "reversed-streams", repack(seed, streams[::-1])
    yield "unknown-stream", repack(seed, streams + [Stream(rng.randrange(5, 256), rng.randbytes(8), 3)])
    kinds = [s.kind for s in streams]
    if container.STREAM_Z in kinds and container.STREAM_Y in kinds:
        z = streams[kinds.index(container.STREAM_Z)]
        y = streams[kinds.index(container.STREAM_Y)]
        swapped = [Stream(s.kind, y.data if s.kind == z.kind else z.data if s.kind == y.kind else s.data,
                          s.symbols) for s in streams]
        yield "swap-z-y-data", repack(seed, swapped)
    if any(s.kind == container.STREAM_ALPHA for s in streams):
        bad = [Stream(s.kind, rng.randbytes(len(s.data)) if s.kind == container.STREAM_ALPHA else s.data,
                      s.symbols) for s in streams]
        yield "alpha-garbage", repack(seed, bad)


def metadata_games(rng: random.Random, seed: bytes) -> Iterator[tuple[str, bytes]]:
    """Metadata streams in a version 1 file, a version 2 file without them, and each metadata
    stream miscounted, emptied, truncated, replaced by random or non-UTF-8 bytes."""
    _, streams = container.unpack(seed)
    plain = [s for s in streams if s.kind not in container.METADATA_STREAMS]
    if len(plain) == len(streams):
        yield "metadata-in-version-1", repack(seed, streams + seed_metadata().to_streams()[:1], version=1)
        yield "version-2-without-metadata", repack(seed, version=2)
        return
    yield "version-2-without-metadata", repack(seed, plain)
    yield "metadata-in-version-1", repack(seed, version=1)
    for i, s in enumerate(streams):
        if s.kind not in container.METADATA_STREAMS:
            continue
        for label, data, symbols in (("miscounted", s.data, s.symbols + rng.choice((-1, 1, 1 << 31))),
                                     ("emptied", b"", 0), ("truncated", s.data[:len(s.data) // 2], len(s.data) // 2),
                                     ("random", rng.randbytes(len(s.data)), len(s.data)),
                                     ("not-utf8", b"\xff\xfe" + s.data, len(s.data) + 2)):
            changed = streams[:i] + [Stream(s.kind, data, symbols)] + streams[i + 1:]
            yield f"metadata-{container.METADATA_STREAMS[s.kind]}-{label}", repack(seed, changed)


def relabels(rng: random.Random, seed: bytes) -> Iterator[tuple[str, bytes]]:
    """A valid file relabelled as another model id, weights, mode or quality (correct CRC)."""
    header, _ = container.unpack(seed)
    for model_id in (0, 2, 3, 5, 999, 0xFFFF):
        yield "relabel-model", repack(seed, model_id=model_id)
    yield "relabel-weights", repack(seed, weights_id=header.weights_id ^ (1 << rng.randrange(32)))
    for mode in MODES:
        if mode != header.mode:
            yield "relabel-mode", repack(seed, mode=mode)
    for q8 in (1, 255, 256, 257, 2048, 2049, 0xFFFF, rng.randrange(256, 2049)):
        yield "relabel-quality", repack(seed, quality_q8=q8)


MUTATORS: dict[str, Mutator] = {
    "truncations": truncations, "bit_flips": bit_flips, "random_inputs": random_inputs,
    "field_values": field_values, "escape_garbage": escape_garbage,
    "stream_games": stream_games, "metadata_games": metadata_games, "relabels": relabels,
}


# ----------------------------------------------------------------------------- checking
@dataclass
class Finding:
    """An input whose decode broke the contract."""

    label: str
    problem: str
    data_hex: str
    traceback: str = ""


@dataclass
class Stats:
    cases: int = 0
    outcomes: Counter = field(default_factory=Counter)
    by_label: Counter = field(default_factory=Counter)
    max_seconds: float = 0.0
    slowest: str = ""
    findings: list[Finding] = field(default_factory=list)

    def summary(self) -> dict:
        return {"cases": self.cases, "outcomes": dict(self.outcomes), "labels": dict(self.by_label),
                "max_seconds": round(self.max_seconds, 4), "slowest": self.slowest,
                "findings": [dataclasses.asdict(f) for f in self.findings]}


def check_case(label: str, data: bytes, stats: Stats, limit_s: float = CASE_LIMIT_S) -> str:
    """Decode one input on the CPU; record its outcome and any contract violation."""
    start = time.perf_counter()
    try:
        image = lccodec.decode(data, device="cpu")
        header, _ = container.unpack(data)
        outcome = "decoded"
        if image.size != (header.width, header.height) or image.mode != header.mode:
            stats.findings.append(Finding(label, f"decoded {image.size} {image.mode}, header says "
                                          f"{header.width}x{header.height} {header.mode}", data.hex()))
    except LicError as exc:
        outcome = type(exc).__name__
        if not str(exc) or "\n" in str(exc):
            stats.findings.append(Finding(label, f"error message not one line: {exc!r}", data.hex()))
    except Exception as exc:  # the contract is broken: keep going, report it
        outcome = "BUG:" + type(exc).__name__
        stats.findings.append(Finding(label, f"{type(exc).__name__}: {exc}", data.hex(), traceback.format_exc()))
    seconds = time.perf_counter() - start
    if seconds > limit_s:
        stats.findings.append(Finding(label, f"took {seconds:.2f} s (limit {limit_s} s)", data.hex()))
    stats.cases += 1
    stats.outcomes[outcome] += 1
    stats.by_label[label.split("@")[0]] += 1
    if seconds > stats.max_seconds:
        stats.max_seconds, stats.slowest = seconds, label
    return outcome


def run_round(rng: random.Random, seeds: list[bytes], stats: Stats,
              mutators: dict[str, Mutator] = MUTATORS) -> None:
    """One pass of every mutator over every seed."""
    for seed in seeds:
        for mutate in mutators.values():
            for label, data in mutate(rng, seed):
                check_case(label, data, stats)


def havoc(rng: random.Random, seed: bytes) -> tuple[str, bytes]:
    """A stack of random edits (bytes, splices, u32 fields), CRC fixed half of the time."""
    b = bytearray(seed)
    for _ in range(rng.randrange(1, 6)):
        op = rng.randrange(5)
        if op == 0 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 1 and len(b) > 4:
            i = rng.randrange(len(b) - 4)
            struct.pack_into("<I", b, i, rng.choice((0, 1, *HUGE, rng.randrange(1 << 32))))
        elif op == 2 and b:
            i = rng.randrange(len(b))
            del b[i:i + rng.randrange(1, 9)]
        elif op == 3:
            i = rng.randrange(len(b) + 1)
            b[i:i] = rng.randbytes(rng.randrange(1, 9))
        elif b:
            i, j = sorted(rng.randrange(len(b)) for _ in range(2))
            b[i:j] = b[i:j][::-1]
    data = bytes(b)
    if len(data) >= 4 and rng.random() < 0.5:
        return "havoc-fixed-crc", fix_crc(data)
    return "havoc", data


def run_deep(cases: int, seed: int, minutes: float | None, progress: bool = True,
             model: str = "hyperprior") -> Stats:
    """Structured rounds first, then random stacked mutations until `cases` or `minutes`."""
    rng = random.Random(seed)
    seeds = make_seeds(model=model)
    stats = Stats()
    deadline = time.monotonic() + 60 * minutes if minutes else None
    run_round(rng, seeds, stats)
    last = time.monotonic()
    while stats.cases < cases and (deadline is None or time.monotonic() < deadline):
        base = rng.choice(seeds)
        if rng.random() < 0.3:
            mutate = rng.choice(list(MUTATORS.values()))
            for label, data in mutate(rng, base):
                check_case(label, data, stats)
        else:
            check_case(*havoc(rng, base), stats)
        if progress and time.monotonic() - last > 30:
            last = time.monotonic()
            print(f"  {stats.cases} cases, {len(stats.findings)} findings, "
                  f"max {stats.max_seconds:.2f} s", file=sys.stderr)
    return stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=10000, help="stop after this many cases")
    p.add_argument("--minutes", type=float, default=None, help="stop after this long")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="hyperprior", help="the model that makes the seed files")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--json", type=Path, default=None, help="write the summary here")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    stats = run_deep(args.cases, args.seed, args.minutes, model=args.model)
    summary = stats.summary() | {"model": args.model, "seed": args.seed, "seconds": round(time.perf_counter() - start, 1)}
    print(f"{stats.cases} cases in {summary['seconds']} s; outcomes {dict(stats.outcomes)}; "
          f"slowest {stats.max_seconds:.3f} s ({stats.slowest}); {len(stats.findings)} findings")
    for f in stats.findings[:20]:
        print(f"FINDING [{f.label}] {f.problem}\n  input: {f.data_hex[:200]}\n{f.traceback}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 1 if stats.findings else 0


if __name__ == "__main__":
    sys.exit(main())
