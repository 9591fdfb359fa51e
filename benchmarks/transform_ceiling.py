"""The transform ceiling of weights files on Kodak (issue 28).

The ceiling is the PSNR of the unrounded round trip at the top quality's gain,
synthesis(inverse_gain(apply_gain(analysis(x), 8), 8)): no model on these transforms can code
an image better (lccodec.train.evaluation). Prints, per file, the mean and the minimum over the
images (with the worst image's name) and the same round trip through the linear path alone.

    python benchmarks/transform_ceiling.py weights/hyperprior.safetensors [MORE.safetensors ...] \
        --kodak ../shared/data/kodak [--json benchmarks/results/ceiling.json] [--threads 2]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import torch

from lccodec.train.evaluation import read_images, weights_ceiling


@click.command()
@click.argument("weights", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kodak", default="../shared/data/kodak", show_default=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the figures here.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch.")
def main(weights: tuple[Path, ...], kodak: Path, json_path: Path | None, threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
    images = read_images(kodak)
    if not images:
        sys.exit(f"no PNG images in {kodak}")
    rows = []
    for path in weights:
        row = weights_ceiling(path, images)
        rows.append(row)
        linear = "n/a" if row["linear_path_mean_db"] is None else f"{row['linear_path_mean_db']:.2f} dB"
        click.echo(f"{path}  {row['model']} {row['weights_id']}: ceiling {row['ceiling_mean_db']:.2f} dB mean, "
                   f"{row['ceiling_min_db']:.2f} dB min ({row['worst_image']}), linear path alone {linear}")
    if json_path:
        json_path.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
