"""Ablation: what the global reference adds to the reference model's own context + hyperprior.

``train`` runs `lic train` for the reference model with the reference path switched off (its
features are zero in training), with otherwise the same settings as the shipped run, so the two
runs see the same batches and noise. ``evaluate`` encodes and decodes Kodak images with a
weights file, the reference on or off (off: the search finds no candidate, in encoder and
decoder alike), checks decode == encoder reconstruction, and prints mean bpp / PSNR per quality.

    python benchmarks/reference_ablation.py train --out /tmp/noref.safetensors -- --data DIR --steps 700 ...
    python benchmarks/reference_ablation.py evaluate WEIGHTS [--off] [--images 24] [--quality 1,4,8] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


def switch_reference_off() -> None:
    """Zero reference features in training, and no candidates in the exact search."""
    from lccodec.exact.reference_search import ExactSearch
    from lccodec.latents.reference import ReferenceLatentCodec

    ReferenceLatentCodec.reference_features = lambda self, y, lik: torch.zeros_like(y)

    def no_match(self, pos, queries):
        return np.full(len(pos), -1, dtype=np.int64), np.zeros(len(pos), dtype=np.int64)

    ExactSearch.find = no_match


def train(out: str, argv: list[str]) -> None:
    from lccodec.train.cli import train_command

    switch_reference_off()
    train_command.main(["--model", "reference", "--export", out, *argv], standalone_mode=False)


def evaluate(weights: str, off: bool, images: int, qualities: list[float]) -> dict:
    from lccodec.codec import Codec
    from lccodec.imageio import load_image
    from lccodec.models import model_by_name
    from lccodec.models.registry import MODELS, weights_path
    from lccodec.weights_parts import merge

    if off:
        switch_reference_off()
    folder = tempfile.mkdtemp()
    try:
        merge(Path(weights), Path(folder) / "reference.safetensors")  # standalone, wherever its part is
        for name in MODELS:  # the codec needs only the reference weights
            if name != "reference":
                try:
                    os.symlink(weights_path(model_by_name(name)), Path(folder) / f"{name}.safetensors")
                except Exception:
                    pass
        os.environ["LIC_WEIGHTS_DIR"] = folder
        codec = Codec(model_by_name("reference"), "cpu")
        files = sorted(KODAK.glob("*.png"))[:images]
        result = {"weights": f"{codec.weights_id:08x}", "reference": not off, "images": len(files)}
        for q in qualities:
            bpp, psnr = [], []
            for path in files:
                enc = codec.encode(load_image(path), quality=q)
                if not np.array_equal(codec.decode(enc.data), enc.reconstruction):
                    raise SystemExit(f"{path.name} q{q}: decode differs from the reconstruction")
                bpp.append(enc.bpp)
                psnr.append(enc.psnr)
            result[f"q{q:g}"] = {"bpp": round(float(np.mean(bpp)), 4), "psnr": round(float(np.mean(psnr)), 3)}
            print(json.dumps({"q": q, **result[f"q{q:g}"]}), flush=True)
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", required=True)
    t.add_argument("rest", nargs=argparse.REMAINDER)
    e = sub.add_parser("evaluate")
    e.add_argument("weights")
    e.add_argument("--off", action="store_true")
    e.add_argument("--images", type=int, default=24)
    e.add_argument("--quality", default="1,4,8")
    e.add_argument("--json")
    e.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(getattr(args, "threads", 2))
    if args.cmd == "train":
        train(args.out, [a for a in args.rest if a != "--"])
    else:
        result = evaluate(args.weights, args.off, args.images, [float(q) for q in args.quality.split(",")])
        print(json.dumps(result))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    sys.exit(main())
