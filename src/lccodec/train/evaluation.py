"""What a training run measures besides its loss: the transform ceiling and real files.

The **transform ceiling** is the PSNR of the unrounded round trip at the top quality's gain,
``synthesis(inverse_gain(apply_gain(analysis(x), q), q))``: what the shared transforms can
reconstruct before any latent is quantised. No model on these transforms codes an image better
than its ceiling, however many bits it spends (issue 28). The **linear path alone** is the same
round trip through the block-linear path only (``g_a_linear`` → ``g_s_linear``).

The real-file points export the model being trained (fp16, integer tables: what would ship) to
a temporary file and encode with the codec: the bpp of the bytes and the PSNR of what the
decoder reconstructs, never a proxy.
"""
from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

EVAL_IMAGES = 4  # held-in training images, spread over the sorted folder
EVAL_SIDE = 512  # each cut to its centre, at most EVAL_SIDE × EVAL_SIDE (a multiple of 64)
EVAL_QUALITIES = (2, 7)  # the real-file points: a low and a high rate
EVAL_MINUTES = 15.0  # a training run evaluates this often, and at its end


def psnr_of(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """PSNR (dB, 8-bit scale) of x̂ against x, both in [0, 1], after x̂ is rounded to 8 bits."""
    ref = x.float().mul(255.0).round()
    out = x_hat.float().clamp(0.0, 1.0).mul(255.0).round()
    mse = float((out - ref).square().mean())
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def has_shared_transforms(model: nn.Module) -> bool:
    """Whether the model has the shared transforms the ceiling is defined on."""
    return all(hasattr(model, a) for a in ("analysis", "synthesis", "apply_gain", "inverse_gain"))


@torch.no_grad()
def round_trip(model: nn.Module, x: torch.Tensor, quality: float | None = None,
               linear_only: bool = False) -> torch.Tensor:
    """The unrounded round trip of a padded (1, 3, H, W) image at `quality` (default: the top).

    `linear_only`: through the linear path alone (the model must have one)."""
    quality = float(len(model.lambdas)) if quality is None else quality
    if linear_only:
        if getattr(model, "g_a_linear", None) is None:
            raise ValueError(f"{model.name} has no linear path")
        analysis, synthesis = model.g_a_linear, model.g_s_linear
    else:
        analysis, synthesis = model.analysis, model.synthesis
    x = x.float()
    y = model.apply_gain(analysis(x).float(), quality)
    return synthesis(model.inverse_gain(y, quality)).float().clamp(0.0, 1.0)


def pad_to(x: torch.Tensor, stride: int) -> torch.Tensor:
    """A (1, 3, H, W) image padded (replicate) to a multiple of `stride`, as the codec pads."""
    h, w = x.shape[-2:]
    return torch.nn.functional.pad(x, (0, (-w) % stride, 0, (-h) % stride), mode="replicate")


def ceiling_psnr(model: nn.Module, pixels: np.ndarray, linear_only: bool = False) -> float:
    """The transform ceiling (dB) of one H × W × 3 uint8 image, measured on its own pixels."""
    device = next(model.parameters()).device
    x = torch.from_numpy(np.array(pixels, dtype=np.uint8)).to(device).permute(2, 0, 1)[None].float().div(255.0)
    h, w = x.shape[-2:]
    x_hat = round_trip(model, pad_to(x, model.stride), linear_only=linear_only)
    return psnr_of(x, x_hat[..., :h, :w])


def read_images(folder: str | Path) -> dict[str, np.ndarray]:
    """The PNG images of a folder (Kodak), by name: H × W × 3 uint8."""
    from PIL import Image

    return {p.stem: np.asarray(Image.open(p).convert("RGB")) for p in sorted(Path(folder).glob("*.png"))}


def weights_ceiling(weights: str | Path, images: dict[str, np.ndarray]) -> dict:
    """The ceiling of a weights file over `images` (name -> H × W × 3 uint8): mean, minimum
    (and its image), the linear path alone (None without one), and every image's."""
    from ..codec import load_model
    from ..models import model_by_name
    from ..weights_io import read_metadata

    model, meta = load_model(model_by_name(read_metadata(weights)["model"]), Path(weights))
    model.eval()
    per_image = {name: ceiling_psnr(model, px) for name, px in images.items()}
    worst = min(per_image, key=per_image.__getitem__)
    linear = ([ceiling_psnr(model, px, linear_only=True) for px in images.values()]
              if getattr(model, "g_a_linear", None) is not None else [])
    return {
        "weights": str(weights), "model": model.name, "weights_id": meta["identity"].hex,
        "images": len(images), "ceiling_mean_db": float(np.mean(list(per_image.values()))),
        "ceiling_min_db": per_image[worst], "worst_image": worst,
        "linear_path_mean_db": float(np.mean(linear)) if linear else None,
        "per_image_db": per_image,
    }


def eval_images(images: Sequence[torch.Tensor], count: int = EVAL_IMAGES, side: int = EVAL_SIDE) -> list[np.ndarray]:
    """`count` training images (uint8 (3, H, W) tensors) spread over the list, each cut to its
    centre (at most `side`², multiples of 64): H × W × 3 uint8 arrays."""
    picks = np.linspace(0, len(images) - 1, num=min(count, len(images))).round().astype(int)
    out = []
    for i in dict.fromkeys(picks.tolist()):
        im = images[i].cpu()
        h, w = (min(side, s - s % 64) or s for s in im.shape[1:])
        top, left = (im.shape[1] - h) // 2, (im.shape[2] - w) // 2
        out.append(im[:, top: top + h, left: left + w].permute(1, 2, 0).contiguous().numpy())
    return out


@dataclass
class Evaluation:
    """One evaluation of a model: its ceiling and real-file points on the same images."""

    ceiling_db: float | None  # mean transform ceiling (None: the model has no shared transforms)
    points: dict[int, tuple[float, float]] = field(default_factory=dict)  # q -> (bpp, PSNR), means

    def line(self) -> str:
        ceiling = "n/a" if self.ceiling_db is None else f"{self.ceiling_db:.2f} dB"
        files = "  ".join(f"q{q} {b:.3f}/{p:.2f}" for q, (b, p) in sorted(self.points.items()))
        return f"eval  ceiling {ceiling}  real files {files} (bpp/PSNR)"


def real_file_points(model: nn.Module, images: Sequence[np.ndarray],
                     qualities: Sequence[int] = EVAL_QUALITIES) -> dict[int, tuple[float, float]]:
    """Mean (bpp, PSNR) of real files of `images` at each quality, coded by `model` exported as
    it would ship (fp16 weights, integer tables)."""
    from ..codec import Codec
    from ..imageio import RasterImage
    from ..models import model_by_name
    from .export import export_model

    with tempfile.TemporaryDirectory(prefix="lic-eval-") as tmp:
        path = Path(tmp) / "eval.safetensors"
        export_model(model, path, {"purpose": "evaluation during training"})
        codec = Codec(model_by_name(model.name), "cpu", weights=path)
        points = {}
        for q in qualities:
            encs = [codec.encode(RasterImage(im, None, "RGB"), quality=float(q)) for im in images]
            points[q] = (float(np.mean([e.bpp for e in encs])), float(np.mean([e.psnr for e in encs])))
    return points


def evaluate(model: nn.Module, images: Sequence[np.ndarray], qualities: Sequence[int] = EVAL_QUALITIES) -> Evaluation:
    """The ceiling and the real-file points of `model` (training mode restored afterwards)."""
    was_training = model.training
    model.eval()
    try:
        ceiling = (float(np.mean([ceiling_psnr(model, im) for im in images]))
                   if has_shared_transforms(model) else None)
        return Evaluation(ceiling, real_file_points(model, images, qualities))
    finally:
        model.train(was_training)


def evaluator(images: Sequence[torch.Tensor], log: Callable[[str], None]) -> Callable[[nn.Module], Evaluation | None]:
    """A function that evaluates a model on held-in `images` and logs the line (or, should the
    measurement fail, why: it never ends the training run)."""
    held = eval_images(images)

    def run(model: nn.Module) -> Evaluation | None:
        try:
            result = evaluate(model, held)
        except Exception as exc:  # noqa: BLE001 -- a measurement must never end a training run
            log(f"eval failed: {type(exc).__name__}: {exc}")
            return None
        log(result.line())
        return result

    return run
