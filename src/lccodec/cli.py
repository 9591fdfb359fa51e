"""The `lic` command: a thin layer over the lccodec library.

Every failure ends in one line ``lic: error: …`` on stderr and a non-zero exit; ``--debug``
shows the traceback instead. Outputs are written atomically.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

import click

from . import __version__
from .errors import LicError

EXIT_ERROR = 1
EXIT_USAGE = 2


def _warn(message: str) -> None:
    click.echo(f"lic: warning: {message}", err=True)


def _read_input(path: str) -> bytes:
    """Bytes of a file, or of stdin for '-'."""
    if path == "-":
        return sys.stdin.buffer.read()
    p = Path(path)
    if p.is_dir():
        raise LicError(f"'{path}' is a directory")
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise LicError(f"no such file: '{path}'") from None
    except PermissionError:
        raise LicError(f"cannot read '{path}': permission denied") from None
    except OSError as exc:
        raise LicError(f"cannot read '{path}': {exc.strerror or exc}") from None


def _write_output(path: str, data: bytes) -> None:
    """Write bytes atomically to a file, or to stdout for '-'."""
    from .atomic import write_bytes_atomic

    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        write_bytes_atomic(path, data)


def _check_distinct(inp: str, out: str) -> None:
    from .atomic import same_file

    if inp != "-" and out != "-" and (
        os.path.abspath(inp) == os.path.abspath(out) or same_file(inp, out)
    ):
        raise LicError(f"input and output are the same file: '{inp}'")


class LazyGroup(click.Group):
    """A group whose heavier subcommands (bench, train) are imported only when used."""

    lazy = {"bench": "lccodec.bench.cli:bench", "train": "lccodec.train.cli:train_command"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, attr = self.lazy[name].split(":")
            return getattr(__import__(module, fromlist=[attr]), attr)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="lic", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """lic — a learned image codec.

    \b
      lic encode photo.png photo.lic --quality 4
      lic decode photo.lic out.png
      cat a.png | lic encode - - | lic decode - b.png
    """
    ctx.obj = {"debug": debug}


def _split_io(paths: tuple[str, ...], out_dir: str | None, suffix: str) -> list[tuple[str, str]]:
    """(source, destination) pairs: `IN OUT`, or many inputs with -o OUTDIR."""
    from .batch import output_paths

    if out_dir is None:
        if len(paths) != 2:
            raise click.UsageError("give IN and OUT, or several inputs with -o OUTDIR")
        return [(paths[0], paths[1])]
    if not paths:
        raise click.UsageError("no input files")
    if "-" in paths:
        raise click.UsageError("'-' (stdin) cannot be used with -o OUTDIR")
    return list(zip(paths, output_paths(paths, out_dir, suffix)))


def _report_batch(results: list, describe) -> None:
    """One line per success with -v, one `lic: error:` line per failure, non-zero if any failed."""
    failed = [r for r in results if r.error]
    for r in results:
        if r.error:
            click.echo(f"lic: error: {r.source}: {r.error}", err=True)
        else:
            for w in r.info.get("warnings", []):
                _warn(f"{r.source}: {w}")
            if describe:
                click.echo(describe(r), err=True)
    if failed:
        raise LicError(f"{len(failed)} of {len(results)} files failed: " + ", ".join(r.source for r in failed))


_DEVICE = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
_OUTDIR = click.option("-o", "--output-dir", "out_dir", type=click.Path(file_okay=False),
                       help="Write one output per input into this folder (many inputs).")
_JOBS = click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Files processed in parallel with -o.")


@cli.command()
@click.argument("paths", nargs=-1, metavar="IN OUT | IN... -o OUTDIR")
@click.option("--model", "-m", default="hyperprior", show_default=True, help="Model name (see `lic models`).")
@click.option("--quality", "-q", type=float, default=None, help="Quality, e.g. 1.0-8.0 (default 4).")
@click.option("--bpp", type=float, default=None, help="Target: largest file with at most this many bits per pixel.")
@click.option("--psnr", type=float, default=None, help="Target: smallest file with at least this PSNR (dB).")
@_DEVICE
@_OUTDIR
@_JOBS
@click.option("-v", "--verbose", is_flag=True, help="Report size, bpp and PSNR on stderr.")
def encode(paths: tuple[str, ...], model: str, quality: float | None, bpp: float | None,
           psnr: float | None, device: str, out_dir: str | None, jobs: int, verbose: bool) -> None:
    """Encode images to .lic files ('-' for stdin/stdout)."""
    from .batch import encode_file, run_many
    from .codec import open_model
    from .imageio import load_image

    if sum(v is not None for v in (quality, bpp, psnr)) > 1:
        raise click.UsageError("give only one of --quality, --bpp and --psnr")
    pairs = _split_io(paths, out_dir, ".lic")
    options = {"model": model, "quality": quality, "bpp": bpp, "psnr": psnr, "device": device}

    def describe(r) -> str:
        i = r.info
        return (f"{r.source} -> {r.destination}: {i['width']}x{i['height']} {i['mode']}, {model} "
                f"quality {i['quality']:.2f}, {i['bytes']} bytes, {i['bpp']:.4f} bpp, PSNR {i['psnr']:.2f} dB")

    if out_dir is not None:
        open_model(model, device)  # refuse an unknown model once, before any file
        results = run_many(encode_file, pairs, jobs, **options)
        _report_batch(results, describe if verbose or bpp or psnr else None)
        return
    inp, out = pairs[0]
    _check_distinct(inp, out)
    start = time.perf_counter()
    image = load_image(_read_input(inp) if inp == "-" else _existing(inp))
    for w in image.warnings:
        _warn(w)
    enc = open_model(model, device).encode(image, quality, bpp=bpp, psnr=psnr)
    for w in enc.warnings[len(image.warnings):]:
        _warn(w)
    _write_output(out, enc.data)
    if verbose or bpp is not None or psnr is not None:
        click.echo(
            f"{inp} -> {out}: {image.width}x{image.height} {image.mode}, {model} quality "
            f"{enc.quality:.2f}, {len(enc.data)} bytes, {enc.bpp:.4f} bpp, "
            f"PSNR {enc.psnr:.2f} dB, {time.perf_counter() - start:.2f} s",
            err=True,
        )


def _existing(path: str) -> str:
    if not Path(path).exists():
        raise LicError(f"no such file: '{path}'")
    return path


@cli.command()
@click.argument("paths", nargs=-1, metavar="IN OUT | IN... -o OUTDIR")
@click.option("--format", "fmt", default=None, help="Output image format (png, ppm, bmp, tiff, webp...); default from OUT's extension, PNG for stdout and -o.")
@_DEVICE
@_OUTDIR
@_JOBS
@click.option("--max-pixels", type=click.IntRange(min=1), default=None,
              help="Refuse files declaring more pixels than this (default 134217728).")
@click.option("-v", "--verbose", is_flag=True, help="Report what was decoded on stderr.")
def decode(paths: tuple[str, ...], fmt: str | None, device: str, out_dir: str | None, jobs: int,
           max_pixels: int | None, verbose: bool) -> None:
    """Decode .lic files to images ('-' for stdin/stdout)."""
    import io

    from . import decode as decode_image
    from .batch import decode_file, run_many, save_decoded
    from .imageio import save_image

    pairs = _split_io(paths, out_dir, "." + (fmt or "png").lower())

    def describe(r) -> str:
        return f"{r.source} -> {r.destination}: {r.info['width']}x{r.info['height']} {r.info['mode']}"

    if out_dir is not None:
        _report_batch(run_many(decode_file, pairs, jobs, fmt=fmt, device=device, max_pixels=max_pixels), describe if verbose else None)
        return
    inp, out = pairs[0]
    _check_distinct(inp, out)
    start = time.perf_counter()
    image = decode_image(_read_input(inp), device=device, max_pixels=max_pixels)
    if out == "-":
        buf = io.BytesIO()
        save_image(image, buf, format=fmt or "PNG")
        _write_output("-", buf.getvalue())
    else:
        save_decoded(image, out, fmt)
    if verbose:
        click.echo(f"{inp} -> {out}: {image.width}x{image.height} {image.mode}, "
                   f"{time.perf_counter() - start:.2f} s", err=True)


@cli.command()
@click.argument("file", metavar="FILE.lic")
@click.option("--json", "as_json", is_flag=True, help="Print the fields as JSON.")
def info(file: str, as_json: bool) -> None:
    """Print every header field of a .lic file."""
    from .container import describe, unpack

    header, streams = unpack(_read_input(file))
    fields = describe(header, streams)
    if as_json:
        click.echo(json.dumps(fields, indent=2))
        return
    for key, value in fields.items():
        if key == "streams":
            click.echo("streams:")
            for s in value:
                click.echo("  " + ", ".join(f"{k}={v}" for k, v in s.items()))
        else:
            click.echo(f"{key}: {value}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def models(as_json: bool) -> None:
    """List the models, their quality range and weights size."""
    from . import list_models

    rows = list_models()
    if as_json:
        click.echo(json.dumps([
            {"name": m.name, "id": m.model_id, "quality": list(m.quality_range),
             "weights_bytes": m.weights_bytes, "weights_id": f"{m.weights_id:08x}",
             "description": m.description} for m in rows], indent=2))
        return
    click.echo(f"{'model':<14}{'id':>3}  {'quality':<10}{'weights':>10}  description")
    for m in rows:
        lo, hi = m.quality_range
        click.echo(f"{m.name:<14}{m.model_id:>3}  {lo:g}-{hi:g}{'':<6}{m.weights_bytes / 1e6:>8.1f}MB  {m.description}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning every failure into one line on stderr."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="lic", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("lic: error: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"lic: error: {exc.format_message()}", err=True)
        sys.exit(EXIT_USAGE if isinstance(exc, click.UsageError) else EXIT_ERROR)
    except LicError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"lic: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        click.echo("lic: error: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(EXIT_ERROR)
    except MemoryError:
        click.echo("lic: error: out of memory", err=True)
        sys.exit(EXIT_ERROR)
    except Exception as exc:  # a bug: still one line, unless --debug
        if debug:
            traceback.print_exc()
        click.echo(f"lic: error: internal error: {type(exc).__name__}: {exc} (run with --debug for a traceback)", err=True)
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":
    main()
