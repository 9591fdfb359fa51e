"""File-level operations and running them over many files at once.

:func:`encode_file` and :func:`decode_file` are what `lic encode` / `lic decode` do for one
file ('-' names stdin or stdout); :func:`run_many` runs one of them over many (source,
destination) pairs, optionally in worker processes, so that one failure does not stop the rest.
"""
from __future__ import annotations

import io
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from .errors import LicError, LicWarning
from .files import STDIO, check_paths, read_input, write_output


@dataclass
class FileResult:
    """The outcome of one file: a summary dict on success, an error message on failure."""

    source: str
    destination: str
    info: dict | None = None
    error: str | None = None


def encode_file(source: str, destination: str, model: str | None = None, quality: float | None = None,
                bpp: float | None = None, psnr: float | None = None, device: str = "auto", *,
                size: int | None = None, strip: bool | str | Iterable[str] = False,
                weights: str | None = None, max_pixels: int | None = None, overwrite: bool = True,
                force: bool = False) -> dict:
    """Encode an image file to a .lic file (atomically); returns what was reached.

    `model` None: the model of `weights` if given, else DEFAULT_MODEL. `weights`: encode with
    this weights file instead of the shipped one. `strip` drops the image's metadata (True: ICC,
    EXIF and XMP; or the kinds named); `max_pixels` (default 2^27) refuses larger images before
    any work; `overwrite=False` refuses an existing destination; `force` allows binary output to
    a terminal.
    """
    from .container import DEFAULT_MAX_PIXELS
    from .imageio import load_image

    check_paths(source, destination, overwrite=overwrite, force=force)
    start = time.perf_counter()
    image = load_image(read_input(source) if source == STDIO else source, strip=strip,
                       max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels)
    from .codec import open_model  # torch: only once the paths and the image are good

    codec = open_model(model, device, weights)
    enc = codec.encode(image, quality, bpp=bpp, psnr=psnr, size=size)
    write_output(destination, enc.data)
    return {"width": image.width, "height": image.height, "mode": image.mode, "bytes": len(enc.data),
            "bpp": enc.bpp, "psnr": enc.psnr, "quality": enc.quality, "warnings": enc.warnings,
            "model": codec.spec.name, "seconds": time.perf_counter() - start}


def decode_file(source: str, destination: str, fmt: str | None = None, device: str = "auto",
                max_pixels: int | None = None, *, weights: str | None = None, overwrite: bool = True,
                force: bool = False) -> dict:
    """Decode a .lic file to an image file (atomically; format from `fmt`, else the extension;
    with the weights file `weights` instead of the shipped one, if given). The file's metadata
    goes into the output where its format can hold it; a format without alpha gets the image
    flattened onto white, one that cannot hold the image is refused before decoding."""
    from . import decode
    from .container import DEFAULT_MAX_PIXELS, unpack
    from .errors import ImageError
    from .imageio import output_format, output_mode, save_image
    from .metadata import read_metadata

    check_paths(source, destination, overwrite=overwrite, force=force)
    fmt = output_format(destination if destination != STDIO else "", fmt)  # refuse a bad one first
    start = time.perf_counter()
    data = read_input(source)
    try:
        output_mode(unpack(data, max_pixels=max_pixels or DEFAULT_MAX_PIXELS)[0].mode, fmt)
    except ImageError as exc:
        raise ImageError(f"cannot write '{destination}': {exc}") from None
    image = decode(data, device=device, max_pixels=max_pixels, weights=weights)
    metadata, _ = read_metadata(image)  # what the file carries, as decode put it in image.info
    if destination == STDIO:
        buf = io.BytesIO()
        notes = save_image(image, buf, format=fmt, metadata=metadata)
        write_output(STDIO, buf.getvalue())
    else:
        notes = save_image(image, destination, format=fmt, metadata=metadata)
    return {"width": image.width, "height": image.height, "mode": image.mode, "warnings": notes,
            "seconds": time.perf_counter() - start}


def output_paths(sources: Sequence[str], out_dir: str, suffix: str) -> list[str]:
    """OUTDIR/<stem><suffix> for each source; refuses two sources that map to one output."""
    if not Path(out_dir).is_dir():
        raise LicError(f"output folder '{out_dir}' does not exist")
    outs = [str(Path(out_dir) / (Path(s).stem + suffix)) for s in sources]
    seen: dict[str, str] = {}
    for s, o in zip(sources, outs):
        if o in seen:
            raise LicError(f"'{seen[o]}' and '{s}' would both be written to '{o}'")
        seen[o] = s
    return outs


def _worker_init(threads: int) -> None:
    import torch

    from .atomic import install_signal_handlers

    torch.set_num_threads(threads)
    install_signal_handlers()  # SIGTERM/SIGHUP remove a worker's temp file too
    warnings.simplefilter("ignore", LicWarning)  # they come back in FileResult.info["warnings"]


def _call(fn: Callable[..., dict], source: str, destination: str, kwargs: dict) -> FileResult:
    try:
        return FileResult(source, destination, info=fn(source, destination, **kwargs))
    except LicError as exc:
        return FileResult(source, destination, error=str(exc))
    except MemoryError:
        return FileResult(source, destination, error="out of memory")
    except Exception as exc:  # one bad file must not stop the rest
        return FileResult(source, destination, error=f"internal error: {type(exc).__name__}: {exc}")


def run_many(fn: Callable[..., dict], pairs: Sequence[tuple[str, str]], jobs: int = 1,
             progress: bool | None = None, threads: int | None = None, **kwargs) -> list[FileResult]:
    """Run `fn(source, destination, **kwargs)` for every pair; results in input order.

    `jobs` files run in parallel worker processes, each with `threads` torch threads (default:
    the CPU count shared among the workers).
    """
    from tqdm import tqdm

    bar = tqdm(total=len(pairs), unit="file", disable=None if progress is None else not progress)
    results: list[FileResult | None] = [None] * len(pairs)
    try:
        if jobs <= 1:
            for i, (s, d) in enumerate(pairs):
                results[i] = _call(fn, s, d, kwargs)
                bar.update()
        else:
            per_worker = threads or max(1, (os.cpu_count() or 1) // jobs)
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init,
                                     initargs=(per_worker,)) as pool:
                futures = {pool.submit(_call, fn, s, d, kwargs): i for i, (s, d) in enumerate(pairs)}
                for fut in as_completed(futures):
                    results[futures[fut]] = fut.result()
                    bar.update()
    finally:
        bar.close()
    return [r for r in results if r is not None]
