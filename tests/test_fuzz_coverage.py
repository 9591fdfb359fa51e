"""Coverage-guided fuzzing in CI: 60 s of atheris from the committed corpus (tests/fuzz-corpus)
over the container parser and every model's decoder (benchmarks/fuzz_coverage.py; `make fuzz`
runs the hour-long version). A finding is any exception but LicError, a hang or a memory blow-up."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris is installed by the test extra (make test)")

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "fuzz-corpus"


@pytest.mark.parametrize("target, seconds", [("container", 15), ("decode", 45)])
def test_coverage_guided_fuzzing_finds_nothing(target, seconds, tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fuzz_coverage.py"), target, "--seconds", str(seconds),
         f"-artifact_prefix={tmp_path}/", str(tmp_path / "new"), str(CORPUS)],
        capture_output=True, text=True, timeout=seconds + 240, cwd=tmp_path,
    )
    tail = "\n".join(run.stderr.splitlines()[-25:])
    assert run.returncode == 0, tail
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*")), tail
    assert "Done " in run.stderr and "DONE   cov:" in run.stderr, tail


def test_the_committed_corpus_holds_every_conformance_vector():
    import json

    vectors = json.loads((ROOT / "tests" / "vectors" / "vectors.json").read_text())["vectors"]
    corpus = {p.read_bytes()[1:] for p in CORPUS.iterdir()}
    assert all((ROOT / "tests" / "vectors" / v["file"]).read_bytes() in corpus for v in vectors)
