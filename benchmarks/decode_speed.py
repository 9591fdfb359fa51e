"""Decode time of the wavefront models against the hyperprior (the speed goals of issues 4, 5).

Encodes one image per size with each model, then times `Codec.decode` of the real bytes
(checking each decode against the encoder's reconstruction) and, for the wavefront models
(context, reference), the latent decode alone. Reports the median of --repeats runs; the
machine may be shared, so say so when quoting the numbers.

    python benchmarks/decode_speed.py                       # kodim23 + 1080p, CPU, 2 threads
    python benchmarks/decode_speed.py --models context,reference --device cuda --json out.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import lccodec
from lccodec import container
from lccodec.coding import EscapeReader

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


def _image(size: str) -> tuple[str, np.ndarray]:
    """('kodim23', 768×512) from Kodak if present, else synthetic; 1080p is Kodak upscaled."""
    w, h = (int(v) for v in size.split("x"))
    src = KODAK / "kodim23.png"
    if src.is_file():
        im = Image.open(src).convert("RGB")
        name = "kodim23" if im.size == (w, h) else f"kodim23 resized to {w}x{h}"
        return name, np.asarray(im.resize((w, h), Image.BICUBIC) if im.size != (w, h) else im)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([128 + 80 * np.sin(xx / 37.0) * np.cos(yy / 23.0),
                     128 + 60 * np.cos((xx + yy) / 49.0), 110 + 70 * np.sin(yy / 31.0)], axis=2)
    return f"synthetic {w}x{h}", np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="768x512,1920x1080")
    ap.add_argument("--quality", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default="hyperprior,context,reference")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    codecs = {name: lccodec.open_model(name, args.device) for name in args.models.split(",")}
    results = []
    for size in args.sizes.split(","):
        name, pixels = _image(size)
        row = {"image": name, "size": size, "device": args.device, "threads": args.threads}
        for model, codec in codecs.items():
            enc = codec.encode(pixels, args.quality)
            if not np.array_equal(codec.decode(enc.data), enc.reconstruction):
                raise SystemExit(f"{model}: decode differs from the encoder's reconstruction")
            row[f"{model}_bpp"] = round(enc.bpp, 4)
            row[f"{model}_decode_s"] = round(_median_time(lambda: codec.decode(enc.data), args.repeats), 3)
            if model in ("context", "reference"):
                header, streams = container.unpack(enc.data)
                by = {s.kind: s for s in streams}
                padded = (-(-header.height // 64) * 64, -(-header.width // 64) * 64)
                lat = lambda: codec.model.decode_latents(  # noqa: E731
                    by, padded, EscapeReader(by[container.STREAM_ESCAPE].data))
                row[f"{model}_latents_s"] = round(_median_time(lat, args.repeats), 3)
                h, w = padded[0] // 16, padded[1] // 16
                row["wavefront_steps"] = 3 * h + w - 3
        for a, b in (("context", "hyperprior"), ("reference", "context")):
            if f"{a}_decode_s" in row and f"{b}_decode_s" in row:
                row[f"{a}_vs_{b}"] = round(row[f"{a}_decode_s"] / row[f"{b}_decode_s"], 2)
        results.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
