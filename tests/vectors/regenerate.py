"""Regenerate the conformance vectors in this folder (tests/vectors/).

    PYTHONPATH=src python tests/vectors/regenerate.py            # vectors from the committed weights
    PYTHONPATH=src python tests/vectors/regenerate.py --weights  # also new test weights (seeded)

For each of the five models: small random test weights (``weights/MODEL.safetensors``, made once
from a fixed seed, independent of the shipped weights), a few small ``.lic`` files of several
sizes, modes, qualities and layer sets, and in ``vectors.json`` the SHA-256 of every file and of
the image (and of the exact latents) it must decode to. tests/test_vectors.py decodes them.

A change of a digest is a change of the bitstream format (docs/format.md): regenerate only for
a deliberate format change, and say so in the commit.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "weights"
MANIFEST = HERE / "vectors.json"

#: Test-weight configs: tiny, so the five weights files stay near 250 KB each (mostly tables).
TINY = {"N": 8, "M": 12}
CONFIGS = {
    "hyperprior": TINY,
    "context": TINY,
    "reference": TINY,
    "hierarchical": {**TINY, "K": 8, "K3": 8, "K2": 8},
    "coarse2fine": {**TINY, "K": 8, "N2": 8, "A": 8},
}
#: Larger random weights where a path would otherwise code only zeros: the analysis output (so y
#: has a real image's magnitude), the hyper-analysis (so ẑ varies), the context and reference
#: paths, the hierarchical heads.
HYPER = {"g_a.6.weight": 30.0, "h_a.4.weight": 40.0, "h_s.4.weight": 3.0}
BOOSTS = {
    "hyperprior": HYPER,
    "context": {**HYPER, "context_prediction.weight": 4.0},
    "reference": {**HYPER, "context_prediction.weight": 4.0, "transfer.weight": 8.0, "embed.weight": 8.0},
    "hierarchical": {**HYPER, "head3.weight": 30.0, "head2.weight": 30.0},
    "coarse2fine": {**HYPER, "h_a2.2.weight": 20.0, "h_s2.2.weight": 3.0},
}
#: (name, height, width, mode, quality, extra): extra is layer flags (hierarchical) or a search
#: window (reference) that differs from what the encoder would choose.
CASES = {
    "hyperprior": [("rgb48x72-q1", 48, 72, "RGB", 1.0, None), ("l33x21-q4.75", 33, 21, "L", 4.75, None),
                   ("rgba70x90-q8", 70, 90, "RGBA", 8.0, None)],
    "context": [("rgb48x72-q1", 48, 72, "RGB", 1.0, None), ("la33x21-q4.75", 33, 21, "LA", 4.75, None),
                ("rgb100x140-q8", 100, 140, "RGB", 8.0, None)],
    "reference": [("rgb48x72-q1", 48, 72, "RGB", 1.0, None), ("l33x21-q4.75", 33, 21, "L", 4.75, None),
                  ("rgb100x200-q8", 100, 200, "RGB", 8.0, None),
                  ("rgba100x200-q6-window2x3", 100, 200, "RGBA", 6.0, (2, 3))],
    "hierarchical": [("rgb48x72-q1", 48, 72, "RGB", 1.0, None), ("l33x21-q4.75", 33, 21, "L", 4.75, None),
                     ("rgba70x90-q8", 70, 90, "RGBA", 8.0, None),
                     ("rgb70x90-q6.5-z-y4-y2", 70, 90, "RGB", 6.5, "z|y4|y2")],
    "coarse2fine": [("rgb48x72-q1", 48, 72, "RGB", 1.0, None), ("la33x21-q4.75", 33, 21, "LA", 4.75, None),
                    ("rgb150x70-q8", 150, 70, "RGB", 8.0, None)],
}


def vector_image(height: int, width: int, mode: str, seed: int) -> np.ndarray:
    """A smooth textured uint8 image in `mode`, deterministic."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    rgb = np.stack([128 + 80 * np.sin(xx / 7.0 + seed) * np.cos(yy / 5.0),
                    128 + 60 * np.cos((xx + yy) / 9.0),
                    110 + 70 * np.sin(yy / 4.0 - seed)], axis=2)
    rgb = np.clip(np.round(rgb + rng.integers(-12, 13, rgb.shape)), 0, 255).astype(np.uint8)
    alpha = (np.arange(width)[None, :] * 255 // max(width - 1, 1) ^ (np.arange(height)[:, None] * 7 % 64))
    alpha = alpha.astype(np.uint8)
    colour = rgb if mode.startswith("RGB") else rgb[..., :1]
    return np.concatenate([colour, alpha[..., None]], axis=2) if mode.endswith("A") else colour


def pixels_sha256(pixels: np.ndarray) -> str:
    """SHA-256 of a decoded image: its H x W x C uint8 samples in row-major order."""
    return hashlib.sha256(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()).hexdigest()


def latents_sha256(latents: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the exact decoded latents (names in order; float means as integers × 256)."""
    h = hashlib.sha256()
    for name in sorted(latents):
        t = latents[name].detach().cpu()
        t = (t.double() * 256).round().to(torch.int64) if t.is_floating_point() else t.to(torch.int64)
        h.update(f"{name}|{tuple(t.shape)}|".encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def platform_tag() -> str:
    """Where the image digests were made: the float synthesis may differ by ±1 elsewhere."""
    return f"torch {torch.__version__} {platform.machine()} {torch.backends.cpu.get_cpu_capability()}"


def make_weights(name: str) -> None:
    from lccodec.models import build_model, model_by_name
    from lccodec.weights_io import save_weights

    torch.manual_seed(1000 + sorted(CONFIGS).index(name))
    model = build_model(model_by_name(name), CONFIGS[name]).eval()
    with torch.no_grad():
        params = dict(model.named_parameters())
        for key, factor in BOOSTS.get(name, {}).items():
            params[key].mul_(factor)
    WEIGHTS.mkdir(exist_ok=True)
    save_weights(WEIGHTS / f"{name}.safetensors", model, model.build_tables(),
                 {"note": "conformance test weights: random, seeded; see tests/vectors/regenerate.py"})


def open_codec(name: str):
    """A Codec over the test weights (not the shipped ones, and not the cached codec)."""
    import os

    from lccodec.codec import Codec
    from lccodec.models import model_by_name

    before = os.environ.get("LIC_WEIGHTS_DIR")
    os.environ["LIC_WEIGHTS_DIR"] = str(WEIGHTS)
    try:
        return Codec(model_by_name(name), "cpu")
    finally:
        if before is None:
            del os.environ["LIC_WEIGHTS_DIR"]
        else:
            os.environ["LIC_WEIGHTS_DIR"] = before


def decoded_latents(codec, data: bytes) -> dict[str, torch.Tensor]:
    """The exact latents the decoder recovers from `data`."""
    inputs = codec.latent_inputs(data)
    with torch.inference_mode():
        return codec.model.decode_latents(inputs.streams, inputs.padded_hw, inputs.escapes,
                                          inputs.header.layer_flags, inputs.header.params)


def encode_case(codec, pixels: np.ndarray, quality: float, extra) -> bytes:
    """Encode with the encoder's own choices, or with forced layer flags / search window."""
    from lccodec.imageio import load_image

    if extra is None:
        return codec.encode(pixels, quality).data
    if isinstance(extra, tuple):  # the reference model's search window
        from lccodec.exact.reference_search import Window

        saved = codec.model.window
        codec.model.window = Window(*extra)
        try:
            return codec.encode(pixels, quality).data
        finally:
            codec.model.window = saved
    from lccodec.container import LAYER_NAMES

    flags = sum(bit for bit, n in LAYER_NAMES.items() if n in extra.split("|"))
    from lccodec import container
    from lccodec.coding import EscapeWriter
    from lccodec.container import STREAM_ESCAPE, Header, Stream

    raster = load_image(pixels)
    with torch.inference_mode():
        _, analysis = codec._prepare(raster)
        escapes = EscapeWriter()
        streams, flags, _ = codec.model.compress(analysis, quality, escapes, False, layers=flags)
    streams.append(Stream(STREAM_ESCAPE, escapes.getvalue(), escapes.count))
    assert raster.alpha is None
    header = Header(codec.spec.model_id, codec.weights_id, round(quality * 256), raster.width,
                    raster.height, raster.mode, flags)
    return container.pack(header, streams)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", action="store_true", help="make new seeded test weights first")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # the image digests are made (and checked) on one thread
    vectors = []
    for seed, (name, cases) in enumerate(CASES.items()):
        if args.weights or not (WEIGHTS / f"{name}.safetensors").is_file():
            make_weights(name)
        codec = open_codec(name)
        for case, h, w, mode, quality, extra in cases:
            data = encode_case(codec, vector_image(h, w, mode, seed), quality, extra)
            path = HERE / name / f"{case}.lic"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            pixels = codec.decode(data)
            vectors.append({
                "file": f"{name}/{case}.lic", "model": name, "weights_id": f"{codec.weights_id:08x}",
                "lic_sha256": hashlib.sha256(data).hexdigest(),
                "width": w, "height": h, "mode": mode,
                "image_sha256": pixels_sha256(pixels),
                "latents_sha256": latents_sha256(decoded_latents(codec, data)),
            })
            print(f"{vectors[-1]['file']}: {len(data)} bytes", file=sys.stderr)
    MANIFEST.write_text(json.dumps({"platform": platform_tag(), "vectors": vectors}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
