"""`lic bench`: the click command. Parses options, calls the bench library, reports.

Register it in the main CLI with `main.add_command(bench)`; bad input raises LicError
subclasses, which the main CLI prints as `lic: error: <message>`.
"""
from __future__ import annotations

from pathlib import Path

import click

from . import BenchError

DEFAULT_CODECS = "jpeg,webp,avif,jxl"


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items


def _qualities(value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        qs = [float(v) for v in _split(value) or []]
    except ValueError:
        raise BenchError(f"--quality wants numbers separated by commas, got '{value}'") from None
    if not qs:
        raise BenchError("--quality is empty")
    return qs


def _check_out(path: Path | None, option: str) -> None:
    if path is not None and not path.parent.is_dir():
        raise BenchError(f"{option}: folder {path.parent} does not exist")


@click.command("bench")
@click.argument("folder", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--model", "models", default="all", show_default=True,
              help="Learned models, comma separated; 'all' or 'none'.")
@click.option("--quality", "qualities", default=None,
              help="Learned-model qualities, comma separated [default: 1..8]. "
                   "Baselines always use their own sweep.")
@click.option("--codec", "codecs", default=DEFAULT_CODECS, show_default=True,
              help="Pillow baselines: jpeg (4:4:4 and 4:2:0), jpeg-444, jpeg-420, webp, avif, "
                   "jxl (needs pillow_jxl); 'none' for none.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="Device for learned models.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch (torch.set_num_threads).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Write the run in CompressAI result layout (+ per-image rows, BD).")
@click.option("--json-dir", "json_dir", type=click.Path(path_type=Path), default=None,
              help="Write one CompressAI result file per codec and model into this existing "
                   "folder (NAME.json, what CompressAI's plotting reads).")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), default=None,
              help="Write per-image rows as CSV.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), default=None,
              help="Write an RD chart, e.g. rd.png (needs lccodec[plot]).")
@click.option("--anchor", "anchor_paths", multiple=True, type=click.Path(path_type=Path),
              help="CompressAI result file to compare against (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Use only the first N images (by name).")
@click.option("--progress/--no-progress", default=None,
              help="tqdm progress bar on stderr [default: when stderr is a terminal].")
def bench(folder: Path, models: str, qualities: str | None, codecs: str, device: str,
          threads: int | None, json_path: Path | None, json_dir: Path | None, csv_path: Path | None,
          plot_path: Path | None, anchor_paths: tuple[Path, ...], limit: int | None,
          progress: bool | None) -> None:
    """Measure codecs on the images in DIR: real files, bpp, PSNR, MS-SSIM, times, BD-rate."""
    from . import report
    from .anchors import load_curves, save_curve
    from .baselines import get_baselines
    from .plot import plot_rd, require_matplotlib
    from .runner import aggregate, list_images, load_rgb, open_learned, points_to_curves, \
        run_benchmark

    # Everything that can fail on bad input fails here, before the long run.
    quals = _qualities(qualities)
    for path, opt in ((json_path, "--json"), (csv_path, "--csv"), (plot_path, "--plot")):
        _check_out(path, opt)
    if json_dir is not None and not json_dir.is_dir():
        raise BenchError(f"--json-dir: folder {json_dir} does not exist")
    if plot_path is not None:
        require_matplotlib()
    anchors = [c for p in anchor_paths for c in load_curves(p)]
    files = list_images(folder, limit)
    codec_names = _split(codecs) or []
    if [n.lower() for n in codec_names] == ["none"]:
        codec_names = []
    baselines, notes = get_baselines(codec_names)
    model_names = _split(models) or []
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    learned = []
    if [m.lower() for m in model_names] != ["none"]:
        learned = open_learned(None if [m.lower() for m in model_names] == ["all"] else model_names,
                               quals, device)
    all_codecs = [*learned, *baselines]
    if not all_codecs:
        raise BenchError("nothing to run: no learned model and no baseline codec selected")
    descriptions = {c.name: c.description for c in all_codecs}
    images = [(p.name, load_rgb(p)) for p in files]
    meta = {"description": f"{len(images)} images from {folder}", "folder": str(folder),
            "images": [n for n, _ in images], "device_requested": device,
            **report.environment(device)}  # versions, the device actually used, threads

    rows: list = []

    def results() -> tuple[list, list, list]:
        points = aggregate(rows)
        curves = points_to_curves(points, descriptions)
        return points, curves, report.bd_comparisons(curves, anchors)

    def flush() -> None:
        if json_path is None and csv_path is None and json_dir is None:
            return
        points, curves, bd = results()
        if json_path is not None:
            report.write_json(json_path, report.run_document(points, rows, curves, bd, notes, meta))
        if csv_path is not None:
            report.write_csv(csv_path, rows)
        for curve in curves if json_dir is not None else []:
            save_curve(json_dir / f"{curve.name.replace('/', '_')}.json", curve)

    try:
        run_benchmark(all_codecs, images, on_row=rows.append, on_group=flush, progress=progress)
    finally:
        flush()  # also on Ctrl-C: what is done stays readable
    points, curves, bd = results()
    click.echo(report.summary_table(points, bd, notes), nl=False)
    if plot_path is not None:
        plot_rd(plot_path, [*curves, *anchors], title=meta["description"])
    mismatches = sum(p.mismatches for p in points)
    if mismatches:
        raise BenchError(f"{mismatches} decoded image(s) differ from the encoder's "
                         "reconstruction (see the mismatch column)")
