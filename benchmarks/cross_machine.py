"""Cross-machine exactness: encode on one device, decode on another, compare
(`lccodec.checks.cross_machine`, see its docstring).

    python benchmarks/cross_machine.py --encode-device cuda --decode-device cpu --limit 4
    python benchmarks/cross_machine.py --encode-device cpu --decode-device cpu --crop 256
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

from lccodec.checks.cross_machine import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
