"""The `lic` command: a thin layer over the lccodec library.

Every failure ends in one line ``lic: error: …`` on stderr and a non-zero exit; ``--debug``
(anywhere on the command line) shows the traceback too. Outputs are written atomically, and
SIGINT, SIGTERM and SIGHUP leave no temp file behind.
"""
from __future__ import annotations

import json
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from . import __version__
from .default_model import DEFAULT_MODEL
from .errors import LicError, LicWarning
from .identity import identity

EXIT_ERROR = 1
EXIT_USAGE = 2

USAGE = """\
usage: lic encode IN [OUT] [-q QUALITY | --bpp BPP | --psnr DB | --size BYTES] [--weights FILE]
       lic decode IN.lic [OUT] [--weights FILE]
       lic encode|decode IN... -d DIR [-j JOBS]
       lic info FILE.lic | lic models | lic bench DIR | lic train ...
Without OUT the output goes beside IN (IN.lic, IN.png). 'lic --help' and
'lic COMMAND --help' tell more.
"""


def _warn(message: str) -> None:
    click.echo(f"lic: warning: {message}", err=True)


def _split_debug(args: Sequence[str]) -> tuple[list[str], bool]:
    """`args` without any --debug before a '--', and whether there was one."""
    args = list(args)
    end = args.index("--") if "--" in args else len(args)
    kept = [a for a in args[:end] if a != "--debug"]
    return kept + args[end:], len(kept) != end


def _discard_stdout() -> None:
    """After a failed write to stdout, point it at /dev/null so the exit flush cannot fail again."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass


def run_reporting_errors(invoke: Callable[[list[str]], Any], args: Sequence[str], debug: bool) -> Any:
    """Run `invoke(args)`, turning every failure into one `lic: error:` line and an exit code."""
    from .atomic import Terminated, terminate_on_signals

    def fail(message: str, code: int, show_traceback: bool = True) -> None:
        if debug and show_traceback:
            traceback.print_exc()
        click.echo(f"lic: error: {message}", err=True)
        _discard_stdout()
        sys.exit(code)

    try:
        with terminate_on_signals(), warnings.catch_warnings():
            warnings.simplefilter("ignore", LicWarning)  # the CLI prints them itself
            warnings.showwarning = lambda message, *_, **__: _warn(" ".join(str(message).split()))
            return invoke(list(args))
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt) as exc:
        cause = exc if isinstance(exc, Terminated) else exc.__cause__
        if isinstance(cause, Terminated):
            fail(f"terminated ({cause})", 128 + cause.signum, False)
        fail("interrupted", 130, False)
    except click.ClickException as exc:
        fail(exc.format_message(), EXIT_USAGE if isinstance(exc, click.UsageError) else EXIT_ERROR)
    except LicError as exc:
        fail(str(exc), EXIT_ERROR)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(EXIT_ERROR)
    except MemoryError:
        fail("out of memory", EXIT_ERROR)
    except Exception as exc:  # a bug: still one line, unless --debug
        fail(f"internal error: {type(exc).__name__}: {exc}"
             + ("" if debug else " (run with --debug for a traceback)"), EXIT_ERROR)


class LicCommand(click.Command):
    """A click command whose main() reports failures as `lic: error:` lines (for `python -m`)."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any) -> Any:
        args, debug = _split_debug(sys.argv[1:] if args is None else args)
        extra["standalone_mode"] = False
        return run_reporting_errors(lambda a: super(LicCommand, self).main(a, prog_name, **extra), args, debug)


class LazyGroup(click.Group):
    """The `lic` group: heavier subcommands (bench, train) are imported only when used, and
    main() reports failures as `lic: error:` lines, --debug being accepted anywhere."""

    lazy = {"bench": "lccodec.bench.cli:bench", "train": "lccodec.train.cli:train_command"}
    #: their lines in `lic --help`, so that the help imports neither (nor torch)
    lazy_help = {"bench": "Benchmark lic's models and other codecs on a folder of images.",
                 "train": "Train a model with variable rate and export its weights."}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.lazy_help[name] if name in self.lazy else
                 self.commands[name].get_short_help_str(formatter.width - 6 - len(name)))
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, attr = self.lazy[name].split(":")
            return getattr(__import__(module, fromlist=[attr]), attr)
        return super().get_command(ctx, name)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any) -> Any:
        args, debug = _split_debug(sys.argv[1:] if args is None else args)
        extra["standalone_mode"] = False
        return run_reporting_errors(lambda a: super(LazyGroup, self).main(a, prog_name, **extra),
                                    ["--debug", *args] if debug else args, debug)


@click.group(cls=LazyGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="lic", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show a traceback on errors (also after a subcommand).")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """lic — a learned image codec.

    \b
      lic encode photo.png                       # -> photo.lic beside it
      lic encode photo.png -o small.lic --size 20000
      lic decode photo.lic out.png
      cat a.png | lic encode - - | lic decode - b.png
    """
    ctx.obj = {"debug": debug}
    if ctx.invoked_subcommand is None:
        click.echo(USAGE, nl=False)


# ---------------------------------------------------------------------------- encode / decode

def _plan(paths: tuple[str, ...], output: str | None, out_dir: str | None,
          suffix: str) -> tuple[list[tuple[str, str]], str]:
    """(source, destination) pairs and the form used: 'beside', 'given', 'positional' or 'folder'.

    IN (output beside it), IN OUT, IN -o OUT, IN... -d DIR, IN... -o DIR (DIR exists).
    """
    from .batch import output_paths
    from .files import STDIO

    if output is not None and out_dir is not None:
        raise click.UsageError("give -o OUT or -d DIR, not both")
    if output is not None and Path(output).is_dir():
        output, out_dir = None, output
    if not paths:
        raise click.UsageError("no input files (give IN [OUT], IN -o OUT or IN... -d DIR)")
    if out_dir is not None:
        if STDIO in paths:
            raise click.UsageError("'-' (stdin) cannot be used with an output folder")
        return list(zip(paths, output_paths(paths, out_dir, suffix))), "folder"
    if output is not None:
        if len(paths) > 1:
            raise LicError(f"output folder '{output}' does not exist" if not Path(output).exists()
                           else f"'{output}' is not a folder: several inputs need -d DIR")
        return [(paths[0], output)], "given"
    if len(paths) == 2:
        return [(paths[0], paths[1])], "positional"
    if len(paths) > 2:
        raise click.UsageError(f"{len(paths)} inputs: give an output folder with -d DIR")
    source = paths[0]
    if source == STDIO:
        return [(STDIO, STDIO)], "given"
    if Path(source).is_dir():
        raise click.UsageError(f"'{source}' is a directory: give IN and OUT files, or IN... -d DIR")
    return [(source, str(Path(source).with_suffix(suffix)))], "beside"


def _run(fn: Callable[..., dict], pairs: list[tuple[str, str]], form: str, *, jobs: int,
         threads: int | None, force: bool, quiet: bool, describe: Callable[[Any], str] | None,
         **options: Any) -> None:
    """Run `fn` on one pair (errors raise) or on many (each failure one line, then a summary).

    Outputs whose names lic chose (beside IN, in -d DIR) are not overwritten without `force`.
    """
    from .batch import FileResult, run_many

    options.update(overwrite=force or form not in ("beside", "folder"), force=force)
    if jobs > 1 and len(pairs) < 2 and not quiet:
        _warn("-j/--jobs runs several files in parallel and has no effect on one; "
              "--threads N sets the threads one file uses")
    if threads is not None and (form != "folder" or jobs <= 1):  # workers set their own
        import torch

        torch.set_num_threads(threads)
    if form != "folder":
        source, destination = pairs[0]
        results = [FileResult(source, destination, info=fn(source, destination, **options))]
    else:
        results = run_many(fn, pairs, jobs, threads=threads, **options)
    failed = [r for r in results if r.error]
    for r in results:
        if r.error:
            named = f"'{r.source}'" in r.error  # most messages name the file already
            click.echo(f"lic: error: {r.error if named else f'{r.source}: {r.error}'}", err=True)
            continue
        if not quiet:
            for w in r.info.get("warnings", []):
                _warn(w if form != "folder" else f"{r.source}: {w}")
        if describe:
            click.echo(describe(r), err=True)
    if failed:
        raise LicError(f"{len(failed)} of {len(results)} files failed: " + ", ".join(r.source for r in failed))


def _io_options(fn: Callable) -> Callable:
    """The options encode and decode share, in the order --help lists them."""
    for option in reversed([
        click.option("-o", "--output", "output", metavar="OUT",
                     help="Output file (one input), or an existing folder (like -d)."),
        click.option("-d", "--output-dir", "out_dir", type=click.Path(file_okay=False),
                     help="Write one output per input into this existing folder."),
        click.option("-f", "--force", is_flag=True,
                     help="Overwrite an output lic names itself (beside IN, or in -d DIR); "
                          "allow binary output to a terminal."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
        click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="Torch threads per file [default: all cores, shared among -j workers]."),
        click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Files processed in parallel (worker processes); for many inputs."),
        click.option("-v", "--verbose", is_flag=True, help="Report what was done on stderr."),
        click.option("--quiet", is_flag=True, help="No warnings."),
    ]):
        fn = option(fn)
    return fn


def _strip_option(value: str | None) -> frozenset[str]:
    from .metadata import strip_kinds

    try:
        return strip_kinds(value)
    except LicError as exc:
        raise click.BadParameter(str(exc), param_hint="'--strip'") from None


class EncodeCommand(click.Command):
    """`lic encode`: ``--strip`` takes the next word as the kinds to strip only when it is a word
    list that names no file (``--strip icc,exif``); before an input (``--strip photo.png``) it
    strips all."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        for i, arg in enumerate(args[:end]):
            following = args[i + 1] if i + 1 < end else ""
            if arg == "--strip" and not (re.fullmatch(r"[A-Za-z]+(,[A-Za-z]+)*", following)
                                         and not os.path.exists(following)):
                args = [*args[:i], "--strip=all", *args[i + 1:]]
        return super().parse_args(ctx, args)


@cli.command(cls=EncodeCommand)
@click.argument("paths", nargs=-1, metavar="IN [OUT] | IN -o OUT | IN... -d DIR")
@click.option("--model", "-m", default=None,
              help=f"Model name (see `lic models`, which says why the default is the default) "
                   f"[default: {DEFAULT_MODEL}; with --weights, the model of that file].")
@click.option("--quality", "-q", type=float, default=None, help="Quality, e.g. 1.0-8.0 (default 4).")
@click.option("--bpp", type=float, default=None, help="Target: largest file with at most this many bits per pixel.")
@click.option("--size", type=click.IntRange(min=1), default=None, metavar="BYTES",
              help="Target: largest file of at most this many bytes.")
@click.option("--psnr", type=float, default=None, help="Target: smallest file with at least this PSNR (dB).")
@click.option("--strip", is_flag=False, flag_value="all", default=None, metavar="[KINDS]",
              callback=lambda ctx, param, value: _strip_option(value),
              help="Drop the image's metadata (ICC profile, EXIF, XMP; kept by default): all of it, "
                   "or the kinds named, e.g. --strip icc,exif.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None,
              help="Refuse images of more pixels than this, before reading them (default 134217728).")
@click.option("--weights", metavar="FILE", default=None,
              help="Encode with this weights file instead of the shipped one (e.g. one `lic train` "
                   "exported); decode the files with `lic decode --weights FILE`.")
@_io_options
def encode(paths: tuple[str, ...], model: str | None, quality: float | None, bpp: float | None,
           size: int | None, psnr: float | None, strip: frozenset[str], max_pixels: int | None,
           weights: str | None,
           output: str | None, out_dir: str | None,
           force: bool, device: str, threads: int | None, jobs: int, verbose: bool, quiet: bool) -> None:
    """Encode images to .lic files ('-' for stdin/stdout)."""
    from .atomic import same_file
    from .batch import encode_file
    from .imageio import IMAGE_SUFFIXES

    if sum(v is not None for v in (quality, bpp, psnr, size)) > 1:
        raise click.UsageError("give only one of --quality, --bpp, --psnr and --size")
    if model is not None:
        identity(model)  # an unknown name is refused here, before torch is imported
    pairs, form = _plan(paths, output, out_dir, ".lic")
    (source, destination) = pairs[0]
    if form == "positional" and Path(destination).suffix.lower() in IMAGE_SUFFIXES \
            and not same_file(source, destination):
        raise click.UsageError(f"'{destination}' looks like an image, not an output .lic file: "
                               "several inputs need -d DIR (-o OUT names the output)")
    if form == "folder":
        from .codec import open_model

        open_model(model, device, weights)  # refuse an unknown model or bad weights once, before any file

    def describe(r: Any) -> str:
        i = r.info
        return (f"{r.source} -> {r.destination}: {i['width']}x{i['height']} {i['mode']}, {i['model']} "
                f"quality {i['quality']:.2f}, {i['bytes']} bytes, {i['bpp']:.4f} bpp, "
                f"PSNR {i['psnr']:.2f} dB, {i['seconds']:.2f} s")

    targeted = any(v is not None for v in (bpp, psnr, size))
    _run(encode_file, pairs, form, jobs=jobs, threads=threads, force=force, quiet=quiet,
         describe=describe if verbose or (targeted and not quiet) else None,
         model=model, quality=quality, bpp=bpp, psnr=psnr, size=size, device=device, strip=strip,
         weights=weights, max_pixels=max_pixels)


@cli.command()
@click.argument("paths", nargs=-1, metavar="IN.lic [OUT] | IN.lic -o OUT | IN... -d DIR")
@click.option("--format", "fmt", default=None,
              help="Output image format (png, jpeg, webp, bmp, tiff, ppm...); default from OUT's "
                   "extension, PNG for stdout and when lic names the output.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None,
              help="Refuse files declaring more pixels than this (default 134217728).")
@click.option("--weights", metavar="FILE", default=None,
              help="Decode with this weights file instead of the shipped one (files made with an "
                   "older release: docs/weights.md).")
@_io_options
def decode(paths: tuple[str, ...], fmt: str | None, max_pixels: int | None, weights: str | None,
           output: str | None, out_dir: str | None, force: bool, device: str, threads: int | None,
           jobs: int, verbose: bool, quiet: bool) -> None:
    """Decode .lic files to images ('-' for stdin/stdout)."""
    from .batch import decode_file
    from .imageio import format_suffix, image_format

    if fmt is not None:
        fmt = image_format(fmt)
    pairs, form = _plan(paths, output, out_dir, format_suffix(fmt or "png"))

    def describe(r: Any) -> str:
        i = r.info
        return f"{r.source} -> {r.destination}: {i['width']}x{i['height']} {i['mode']}, {i['seconds']:.2f} s"

    _run(decode_file, pairs, form, jobs=jobs, threads=threads, force=force, quiet=quiet,
         describe=describe if verbose else None, fmt=fmt, device=device, max_pixels=max_pixels,
         weights=weights)


# ---------------------------------------------------------------------------- info / models

@cli.command()
@click.argument("file", metavar="FILE.lic")
@click.option("--json", "as_json", is_flag=True, help="Print the fields as JSON.")
def info(file: str, as_json: bool) -> None:
    """Print every header field of a .lic file, and the lic release whose weights made it."""
    from .container import describe, unpack
    from .files import read_input
    from .released_weights import find_release

    header, streams = unpack(read_input(file))
    fields = describe(header, streams)
    release = find_release(fields["model"], header.weights_id)
    fields["weights_release"] = None if release is None else {
        "version": release.version, "commit": release.commit, "date": release.date}
    if as_json:
        click.echo(json.dumps(fields, indent=2))
        return
    for line in info_lines(fields, release):
        click.echo(line)


def info_lines(fields: dict, release: Any) -> list[str]:
    """`lic info`'s text: one field a line, with the layers, params and metadata spelled out."""
    from .container import LAYER_MEANINGS
    from .identity import BY_NAME

    layout = BY_NAME[fields["model"]].params if fields["model"] in BY_NAME else None
    named = layout.names if layout else ()
    lines = []
    for key, value in fields.items():
        if key in named:
            continue  # shown with the params
        if key == "layers":
            value = ", ".join(f"{n} ({LAYER_MEANINGS.get(n, 'reserved bit')})" for n in value) or "none"
        elif key == "params":
            size = len(value) // 2
            given = ", ".join(f"{n} {fields[n]}" for n in named if n in fields)
            value = ("none (this model's files carry no parameters)" if not size else
                     f"{value} ({size} bytes of model parameters, hex" + (f": {given})" if given else ")"))
        elif key == "metadata":
            value = ", ".join(f"{m['kind']} {m['bytes']} bytes" for m in value) or "none"
        elif key == "streams":
            lines.append("streams:")
            lines += ["  " + ", ".join(f"{k}={v}" for k, v in s.items()) for s in value]
            continue
        elif key == "weights_release":
            value = (f"{release.describe()}, {release.date}" if release else
                     "none (weights no lic release shipped: decode with --weights FILE)")
        lines.append(f"{key}: {value}")
    return lines


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def models(as_json: bool) -> None:
    """List the models, their quality range and weights size."""
    from . import list_models
    from .default_model import REASON

    rows = list_models()
    if as_json:
        click.echo(json.dumps([
            {"name": m.name, "id": m.model_id, "default": m.name == DEFAULT_MODEL, "quality": list(m.quality_range),
             "weights_bytes": m.weights_bytes, "weights_id": f"{m.weights_id:08x}",
             "weights_sha256": m.weights_sha256, "weights_legacy_id": m.weights_legacy_id,
             "description": m.description} for m in rows], indent=2))
        return
    click.echo(f"{'model':<14}{'id':>3}  {'quality':<10}{'weights':>10}  description")
    for m in rows:
        lo, hi = m.quality_range
        name = f"{m.name}*" if m.name == DEFAULT_MODEL else m.name
        click.echo(f"{name:<14}{m.model_id:>3}  {lo:g}-{hi:g}{'':<6}{m.weights_bytes / 1e6:>8.1f}MB  {m.description}")
    if any(m.name == DEFAULT_MODEL for m in rows):
        click.echo(f"* the default (lic encode without --model): {REASON}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning every failure into one line on stderr."""
    cli.main(argv, prog_name="lic")


if __name__ == "__main__":
    main()
