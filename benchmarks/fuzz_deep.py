"""Decoder fuzzing beyond the test suite's sample: `lccodec.checks.fuzz` (see its docstring).

    python benchmarks/fuzz_deep.py --cases 20000 --seed 1 --json fuzz.json
    python benchmarks/fuzz_deep.py --minutes 5 --model reference

Coverage-guided fuzzing (atheris): benchmarks/fuzz_coverage.py, `make fuzz`.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

from lccodec.checks.fuzz import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
