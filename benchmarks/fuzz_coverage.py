"""Coverage-guided fuzzing of the .lic container parser and every model's decoder (atheris).

libFuzzer (through atheris) mutates inputs and keeps those that reach new branches of lccodec's
Python code, which is instrumented; torch, numpy and constriction are not. Two targets:

- ``container``: ``container.unpack`` and ``describe`` alone (tens of thousands of inputs a second);
- ``decode``: ``lccodec.decode`` of the whole file with the conformance vectors' small weights
  (tests/vectors/weights), so a decode takes milliseconds and never depends on the shipped weights.

An input is one control byte and a file. Control bit 0 re-computes the file's CRC32 and bit 1
sets its weights_id to that of the vector weights of the model its header names, so that
mutations reach the stream tables and the model instead of stopping at the checksum; with
both bits clear the file is taken as it is. A finding is any exception but ``LicError`` (libFuzzer
writes the input to ``crash-*``), a decode over ``-timeout`` seconds, or more than ``-rss_limit_mb``.

    python benchmarks/fuzz_coverage.py decode --seconds 3600 runs/fuzz-corpus tests/fuzz-corpus
    python benchmarks/fuzz_coverage.py container --seconds 60 /tmp/new tests/fuzz-corpus
    python benchmarks/fuzz_coverage.py seeds tests/fuzz-corpus   # (re)write the committed seeds

The first corpus folder receives what the run finds; the others are read. `make fuzz` runs the
decode target for an hour (FUZZ_SECONDS) into runs/fuzz-corpus (git-ignored).
"""
from __future__ import annotations

import hashlib
import importlib
import json
import pkgutil
import random
import struct
import sys
import zlib
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "vectors"
FIX_CRC, VECTOR_WEIGHTS = 1, 2  # control-byte bits
OFF_MODEL, OFF_WEIGHTS_ID = 6, 8
#: lccodec modules the decoder never reaches (training, benchmarks, CLI, checks): not instrumented
SKIP = ("lccodec.train", "lccodec.bench", "lccodec.checks", "lccodec.cli", "lccodec.demo", "lccodec.batch")

with atheris.instrument_imports(include=["lccodec"]):
    import lccodec

    for info in pkgutil.walk_packages(lccodec.__path__, "lccodec."):
        if not info.name.startswith(SKIP):
            importlib.import_module(info.name)

from lccodec import container  # noqa: E402
from lccodec.errors import LicError  # noqa: E402
from lccodec.models import model_by_name  # noqa: E402
from lccodec.weights_io import identify  # noqa: E402


def vector_weights() -> dict[int, tuple[Path, int]]:
    """model id -> (the conformance vectors' weights file, its weights_id)."""
    out = {}
    for path in sorted((VECTORS / "weights").glob("*.safetensors")):
        out[model_by_name(path.stem).model_id] = (path, identify(path).weights_id)
    return out


WEIGHTS = vector_weights()


def prepare(data: bytes) -> tuple[bytes, Path | None]:
    """The file an input stands for (control byte applied) and the weights to decode it with."""
    if not data:
        return b"", None
    control, body = data[0], bytearray(data[1:])
    model_id = struct.unpack_from("<H", body, OFF_MODEL)[0] if len(body) >= OFF_MODEL + 2 else None
    path, weights_id = WEIGHTS.get(model_id, (None, None))
    if control & VECTOR_WEIGHTS and weights_id is not None and len(body) >= OFF_WEIGHTS_ID + 4:
        struct.pack_into("<I", body, OFF_WEIGHTS_ID, weights_id)
    if control & FIX_CRC and len(body) >= 4:
        struct.pack_into("<I", body, len(body) - 4, zlib.crc32(bytes(body[:-4])))
    return bytes(body), path


def fuzz_container(data: bytes) -> None:
    body, _ = prepare(data)
    try:
        header, streams = container.unpack(body)
        container.describe(header, streams)
    except LicError:
        return
    assert header.width >= 1 and header.height >= 1


def fuzz_decode(data: bytes) -> None:
    body, weights = prepare(data)
    try:
        image = lccodec.decode(body, device="cpu", weights=weights)
    except LicError:
        return
    header, _ = container.unpack(body)
    if image.size != (header.width, header.height):
        raise AssertionError(f"decoded {image.size}, header says {header.width}x{header.height}")


def write_seeds(folder: Path, mutations: int = 3, seed: int = 0) -> int:
    """The committed corpus: every conformance vector (as it is, and with both control bits),
    plus `mutations` structured mutations of each (lccodec.checks.fuzz's kinds). Returns the count."""
    from lccodec.checks.fuzz import MUTATORS

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    entries = json.loads((VECTORS / "vectors.json").read_text())["vectors"]
    inputs = []
    for entry in entries:
        file = (VECTORS / entry["file"]).read_bytes()
        inputs += [bytes([0]) + file, bytes([FIX_CRC | VECTOR_WEIGHTS]) + file]
        for name in rng.sample(sorted(MUTATORS), mutations):
            cases = list(MUTATORS[name](rng, file))
            _label, mutated = rng.choice(cases)
            inputs.append(bytes([rng.choice((0, FIX_CRC, FIX_CRC | VECTOR_WEIGHTS))]) + mutated)
    for data in inputs:
        (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)
    return len(inputs)


def main(argv: list[str]) -> int:
    usage = "usage: fuzz_coverage.py {decode|container} [--seconds S] CORPUS... [libFuzzer flags] | seeds FOLDER"
    if len(argv) < 2 or argv[1] not in ("decode", "container", "seeds"):
        print(usage, file=sys.stderr)
        return 2
    if argv[1] == "seeds":
        print(f"{write_seeds(Path(argv[2]))} seed inputs written to {argv[2]}")
        return 0
    rest = argv[2:]
    if "--seconds" in rest:
        i = rest.index("--seconds")
        rest[i:i + 2] = [f"-max_total_time={int(rest[i + 1])}"]
    corpora = [a for a in rest if not a.startswith("-")]
    if corpora:
        Path(corpora[0]).mkdir(parents=True, exist_ok=True)  # where new inputs go
    import torch

    torch.set_num_threads(1)
    flags = ["-timeout=10", "-rss_limit_mb=3072", "-print_final_stats=1", "-max_len=65536"]
    atheris.Setup([argv[0], *flags, *rest], fuzz_decode if argv[1] == "decode" else fuzz_container)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
