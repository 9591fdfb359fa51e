"""The Kodak RD chart of docs/results.md from result files (CompressAI layout), no re-run.

Our models' curves come from `benchmarks/results/kodak-MODEL.json` (written by each training
round's measurement), the Pillow baselines from `benchmarks/results/kodak-pillow-baselines.json`,
the published curves from `../shared/anchors/kodak`.

    python benchmarks/plot_results.py --out docs/results-kodak.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

from lccodec.bench.anchors import Curve, load_curves
from lccodec.bench.plot import plot_rd

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = ("hyperprior", "context", "reference", "hierarchical", "coarse2fine")
BASELINES = ("jpeg-420", "webp", "avif")
ANCHORS = {  # file in the anchors folder -> label
    "compressai-mbt2018-mean_mse_cuda.json": "CompressAI mbt2018-mean (anchor)",
    "compressai-mbt2018_mse_cuda.json": "CompressAI mbt2018 (anchor)",
    "av1.json": "AV1 (anchor)",
    "vtm.json": "VTM (anchor)",
}


def curves(anchors: Path, max_bpp: float) -> list[Curve]:
    """Our models (solid), the Pillow baselines (solid), the anchors (dashed), cut at max_bpp."""
    out: list[Curve] = []
    for model in MODELS:
        path = RESULTS / f"kodak-{model}.json"
        if path.is_file():
            for c in load_curves(path):
                c.name, c.is_anchor = f"lic {model}", False
                out.append(c)
    baselines = RESULTS / "kodak-pillow-baselines.json"
    if baselines.is_file():
        for c in load_curves(baselines):
            if c.name in BASELINES:
                c.name, c.is_anchor = f"{c.name} (Pillow)", False
                out.append(c)
    for file, label in ANCHORS.items():
        if (anchors / file).is_file():
            c = load_curves(anchors / file)[0]
            c.name = label
            out.append(c)
    for c in out:
        keep = [i for i, b in enumerate(c.bpp) if b <= max_bpp]
        c.bpp, c.psnr = [c.bpp[i] for i in keep], [c.psnr[i] for i in keep]
    return [c for c in out if c.bpp]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchors", type=Path, default=Path("../shared/anchors/kodak"))
    parser.add_argument("--out", type=Path, default=Path("docs/results-kodak.png"))
    parser.add_argument("--max-bpp", type=float, default=3.0)
    args = parser.parse_args()
    plot_rd(args.out, curves(args.anchors, args.max_bpp), "Kodak (24 images), PSNR RGB, real bitstreams")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
