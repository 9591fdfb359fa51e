"""Peak memory and time of encoding and decoding one large photo-like image on the CPU.

    python benchmarks/memory.py --size 4096 [--model hyperprior] [--quality 4] [--threads 2]

Encode and decode run in separate child processes so each peak RSS is its own.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def photo_like(size: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients + texture + noise: compresses like a photo, not like flat colour."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.stack([
        128 + 90 * np.sin(9 * xx + 3 * yy) * np.cos(7 * yy),
        128 + 70 * np.cos(13 * (xx + yy)),
        120 + 80 * np.sin(11 * yy - 5 * xx),
    ], axis=2)
    img += rng.normal(0, 8, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def child(step: str, src: str, dst: str, model: str, quality: float, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    import lccodec

    start = time.perf_counter()
    if step == "encode":
        Path(dst).write_bytes(lccodec.encode(src, model=model, quality=quality, device="cpu"))
    else:
        lccodec.decode(Path(src).read_bytes(), device="cpu").save(dst)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(json.dumps({"step": step, "seconds": seconds, "peak_rss_gib": peak}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--model", default="hyperprior")
    ap.add_argument("--quality", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", default="/tmp/lic-memory")
    ap.add_argument("--child", nargs=3, metavar=("STEP", "SRC", "DST"))
    a = ap.parse_args()
    if a.child:
        child(*a.child, a.model, a.quality, a.threads)
        return
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    png = work / f"photo{a.size}.png"
    if not png.exists():
        Image.fromarray(photo_like(a.size)).save(png, compress_level=1)
    lic, out = work / f"photo{a.size}.lic", work / f"photo{a.size}.out.png"
    results = []
    for step, src, dst in (("encode", png, lic), ("decode", lic, out)):
        cmd = [sys.executable, __file__, "--model", a.model, "--quality", str(a.quality),
               "--threads", str(a.threads), "--child", step, str(src), str(dst)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{step} failed: {proc.stderr.strip().splitlines()[-1:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    bpp = lic.stat().st_size * 8 / a.size**2
    for r in results:
        print(f"{a.size}x{a.size} {a.model} q{a.quality:g} {r['step']}: {r['seconds']:.1f} s, "
              f"peak RSS {r['peak_rss_gib']:.2f} GiB")
    print(f"file: {lic.stat().st_size} bytes, {bpp:.3f} bpp")


if __name__ == "__main__":
    main()
