"""Cross-machine exactness: encode on one device, decode on another, compare.

For every image, every model in ``lccodec.models.MODELS`` whose weights are installed and qualities 1, 3, 5 and 8, the image
is encoded on ``--encode-device`` and the bytes are decoded by several decoders: one on
``--decode-device`` and, unless ``--no-perturb``, three CPU decoders with other settings
(torch threads 1, threads 2, the whole model converted to channels_last, and to contiguous
NCHW — one of these is the codec's own default, the other a perturbation). For each decoder:

* the decoded latents (``model.decode_latents``: ẑ, the y residuals, the exact means and the
  scale-table indices) must be identical to the encoder's — those decoded on the encoding
  device, and, for models that expose the hyperprior steps, those the encoder itself computed;
* the decoded image must equal the encoder's reconstruction within ±1 per sample.

Prints the counts and writes a JSON summary; exits 1 on any latent mismatch or pixel difference
above 1. ``benchmarks/cross_machine.py`` (or ``python -m lccodec.checks.cross_machine``) runs it.
Examples::

    python benchmarks/cross_machine.py --encode-device cuda --decode-device cpu --limit 4
    python benchmarks/cross_machine.py --encode-device cpu --decode-device cpu --crop 256
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..codec import Codec
from ..errors import ModelError
from ..imageio import RasterImage, from_planes, load_image
from ..latents.hyperprior import HyperpriorLatentCodec
from ..models import MODELS, model_by_name, weights_path

DEFAULT_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "kodak"  # beside a checkout
DEFAULT_QUALITIES = (1.0, 3.0, 5.0, 8.0)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class Variant:
    """One decoder configuration."""

    name: str
    device: str
    threads: int | None = None  # None: leave torch's setting alone
    memory_format: str | None = None  # "channels_last" / "contiguous": convert the whole model


@contextlib.contextmanager
def settings(variant: Variant) -> Iterator[None]:
    before = torch.get_num_threads()
    if variant.threads:
        torch.set_num_threads(variant.threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def variants(decode_device: str, perturb: bool = True) -> list[Variant]:
    out = [Variant(f"{decode_device}", decode_device)]
    if perturb:
        out += [Variant("cpu-threads1", "cpu", threads=1), Variant("cpu-threads2", "cpu", threads=2),
                Variant("cpu-channels_last", "cpu", memory_format="channels_last"),
                Variant("cpu-contiguous", "cpu", memory_format="contiguous")]
    return out


def make_codec(model: str, variant: Variant) -> Codec:
    """A fresh (uncached) codec, so that a perturbation touches no other decoder."""
    codec = Codec(model_by_name(model), variant.device)
    if variant.memory_format:
        fmt = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
        codec.model.to(memory_format=fmt[variant.memory_format])
    return codec


def installed_models() -> list[str]:
    """The models of MODELS whose weights are present."""
    out = []
    for name, spec in MODELS.items():
        try:
            weights_path(spec)
        except ModelError:
            continue
        out.append(name)
    return out


def decoded_latents(codec: Codec, data: bytes) -> dict[str, torch.Tensor]:
    """What the decoder's exact integer path recovers from the bytes."""
    inputs = codec.latent_inputs(data)
    with torch.inference_mode():
        return codec.model.decode_latents(inputs.streams, inputs.padded_hw, inputs.escapes,
                                          inputs.header.layer_flags, inputs.header.params)


def encoder_latents(codec: Codec, image: RasterImage, quality: float) -> dict[str, torch.Tensor] | None:
    """The latents as the encoder computes them (models with the hyperprior's latent codec), else
    None.

    Mirrors the codec's ``compress`` step by step: y = g_a(x)·gain(q); ẑ = round(h_a(y)) on the
    encoding device; mean and index from the exact h_s; residual = round(y − mean).
    """
    model = codec.model
    latent_codec = model.latent_codec
    if not isinstance(latent_codec, HyperpriorLatentCodec):
        return None
    with torch.inference_mode():
        analysis = codec.analyze(image)
        y = model.apply_gain(analysis, quality).float()
        z_hat = torch.round(latent_codec.hyper.h_a(y)).cpu().to(torch.int64)
        mean, index = latent_codec.entropy_params(z_hat)
        residual = torch.round(y.cpu() - mean).to(torch.int64)
    return {"z_hat": z_hat, "residual": residual, "mean": mean,
            "index": torch.from_numpy(np.asarray(index)).view(*residual.shape)}


def same_latents(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    """Names of the latents that differ (empty: identical)."""
    return [k for k in a if k not in b or a[k].shape != b[k].shape or not torch.equal(a[k].cpu(), b[k].cpu())]


def check_image(encoder: Codec, decoders: list[tuple[Variant, Codec]], name: str,
                image: RasterImage, quality: float) -> dict:
    """Encode once, decode with every decoder; one record of the comparisons."""
    enc = encoder.encode(image, quality)
    reference = decoded_latents(encoder, enc.data)
    truth = encoder_latents(encoder, image, quality)
    record = {"image": name, "model": encoder.spec.name, "quality": quality, "bytes": len(enc.data),
              "encoder_truth_mismatch": None if truth is None else same_latents(truth, reference),
              "decoders": {}}
    recon = enc.reconstruction.astype(np.int16)
    for variant, codec in decoders:
        with settings(variant):
            lat = decoded_latents(codec, enc.data)
            pixels = codec.decode(enc.data).astype(np.int16)
        diff = int(np.abs(pixels - recon).max()) if pixels.shape == recon.shape else 255
        record["decoders"][variant.name] = {
            "latent_mismatch": same_latents(reference, lat),
            "max_pixel_diff": diff,
            "pixels_identical": bool(pixels.shape == recon.shape and diff == 0),
        }
    return record


def summarise(records: list[dict], meta: dict) -> dict:
    per_variant: dict[str, dict] = {}
    for r in records:
        for name, d in r["decoders"].items():
            v = per_variant.setdefault(name, {"checked": 0, "latent_mismatches": 0,
                                              "max_pixel_diff": 0, "pixels_identical": 0})
            v["checked"] += 1
            v["latent_mismatches"] += bool(d["latent_mismatch"])
            v["max_pixel_diff"] = max(v["max_pixel_diff"], d["max_pixel_diff"])
            v["pixels_identical"] += d["pixels_identical"]
    truth = [r["encoder_truth_mismatch"] for r in records if r["encoder_truth_mismatch"] is not None]
    ok = (all(v["latent_mismatches"] == 0 and v["max_pixel_diff"] <= 1 for v in per_variant.values())
          and not any(truth))
    return meta | {
        "cases": len(records),
        "images": len({r["image"] for r in records}),
        "models": sorted({r["model"] for r in records}),
        "qualities": sorted({r["quality"] for r in records}),
        "encoder_truth_checked": len(truth),
        "encoder_truth_mismatches": sum(bool(t) for t in truth),
        "decoders": per_variant,
        "latent_mismatches": sum(v["latent_mismatches"] for v in per_variant.values()),
        "max_pixel_diff": max((v["max_pixel_diff"] for v in per_variant.values()), default=0),
        "ok": ok,
    }


def run(images: list[tuple[str, RasterImage]], *, models: list[str] | None = None,
        qualities: tuple[float, ...] = DEFAULT_QUALITIES, encode_device: str = "cpu",
        decode_device: str = "cpu", perturb: bool = True, log=None) -> tuple[dict, list[dict]]:
    """Check every image × model × quality; returns (summary, per-case records)."""
    start = time.perf_counter()
    records = []
    for model in models or installed_models():
        encoder = make_codec(model, Variant("encoder", encode_device))
        decoders = [(v, make_codec(model, v)) for v in variants(decode_device, perturb)]
        lo, hi = encoder.quality_range
        for name, image in images:
            for q in qualities:
                if not lo <= q <= hi:
                    continue
                records.append(check_image(encoder, decoders, name, image, q))
                if log:
                    worst = max(d["max_pixel_diff"] for d in records[-1]["decoders"].values())
                    bad = [n for n, d in records[-1]["decoders"].items() if d["latent_mismatch"]]
                    log(f"{model} {name} q{q:g}: {records[-1]['bytes']} B, max diff {worst}"
                        + (f", LATENT MISMATCH in {bad}" if bad else ""))
    meta = {"encode_device": encode_device, "decode_device": decode_device,
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "seconds": round(time.perf_counter() - start, 1)}
    return summarise(records, meta), records


def load_folder(folder: Path, limit: int | None, crop: int | None) -> list[tuple[str, RasterImage]]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not files:
        raise SystemExit(f"no images in {folder}")
    out = []
    for p in files:
        img = load_image(p)
        if crop:
            alpha = None if img.alpha is None else img.alpha[:crop, :crop]
            img = from_planes(img.pixels[:crop, :crop], alpha, img.mode)
        out.append((p.name, img))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", nargs="?", type=Path, default=DEFAULT_DATA,
                   help=f"images to encode (default {DEFAULT_DATA})")
    p.add_argument("--encode-device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--decode-device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--models", default=None, help="comma-separated (default: every model with weights)")
    p.add_argument("--qualities", default=",".join(f"{q:g}" for q in DEFAULT_QUALITIES))
    p.add_argument("--limit", type=int, default=None, help="use the first N images")
    p.add_argument("--crop", type=int, default=None, help="crop each image to its top-left CROPxCROP")
    p.add_argument("--no-perturb", action="store_true", help="skip the CPU thread / channels_last decoders")
    p.add_argument("--json", type=Path, default=Path("cross_machine.json"), help="summary file")
    p.add_argument("--details", action="store_true", help="also write every case to the JSON")
    args = p.parse_args(argv)
    images = load_folder(args.folder, args.limit, args.crop)
    qualities = tuple(float(q) for q in args.qualities.split(","))
    models = args.models.split(",") if args.models else installed_models()
    summary, records = run(images, models=models, qualities=qualities,
                           encode_device=args.encode_device, decode_device=args.decode_device,
                           perturb=not args.no_perturb, log=lambda m: print(m, file=sys.stderr))
    if args.details:
        summary["records"] = records
    args.json.write_text(json.dumps(summary, indent=2))
    n_models, n_q = len(summary["models"]), len(summary["qualities"])
    print(f"{summary['images']} images x {n_q} qualities x {n_models} models = {summary['cases']} encodes, "
          f"encoded on {args.encode_device}, decoded by {len(summary['decoders'])} decoders "
          f"({', '.join(summary['decoders'])}) in {summary['seconds']} s")
    for name, v in summary["decoders"].items():
        print(f"  {name:<18} checked {v['checked']}, latent mismatches {v['latent_mismatches']}, "
              f"max pixel diff {v['max_pixel_diff']}, bit-identical images {v['pixels_identical']}")
    print(f"encoder-computed latents checked {summary['encoder_truth_checked']}, "
          f"mismatches {summary['encoder_truth_mismatches']}")
    print(("OK" if summary["ok"] else "FAIL") + f": summary in {args.json}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
