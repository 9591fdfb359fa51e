"""`python -m lccodec.demo ORIGINAL FILE.lic DECODED`: print bpp and PSNR of a real round trip."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .metrics import psnr
from .imageio import load_image


def main(argv: list[str]) -> int:
    original, lic_file, decoded = argv
    a = load_image(original)
    b = load_image(decoded)
    size = Path(lic_file).stat().st_size
    bpp = size * 8 / (a.width * a.height)
    same_shape = a.pixels.shape == b.pixels.shape
    value = psnr(a.pixels, b.pixels) if same_shape else float("nan")
    print(f"demo: {original} {a.width}x{a.height} -> {size} bytes = {bpp:.3f} bpp, PSNR {value:.2f} dB")
    return 0 if same_shape and np.isfinite(bpp) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
