"""Training rounds: training that continues from session to session on whatever machine.

A round starts (or continues) a model's training in the background with the constant schedule,
and ends with a cooled export, a Kodak measurement with real bitstreams, the shipped weights
replaced atomically, and one row in the model card's training log::

    python -m lccodec.train.rounds start --model hyperprior --data ../shared/data/train
    python -m lccodec.train.rounds status
    python -m lccodec.train.rounds stop --model hyperprior --kodak ../shared/data/kodak
    python -m lccodec.train.rounds release weights/hyperprior.safetensors   # its release row

`make train` / `make train-stop` call these. A round continues from, in order: the local
checkpoint `runs/<model>/ck` (the undecayed state kept at the start of the last cool-down), the
shipped weights file when it was trained with the model's recipe (Adam re-warms), or a fresh
model with the recipe. Only git survives between machines, so the shipped file must always be a
valid place to continue from: it is a cooled model with its step count and minutes recorded.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from ..errors import LicError

#: The hyperprior's transforms, which the other models share (frozen by their recipes).
TRANSFORMS = "g_a.,g_s.,g_a_linear.,g_s_linear.,gain.,inv_gain."
#: The hyperprior's entropy model of y (z's analysis and synthesis, z's density).
HYPER_PATH = "h_a.,h_s.,z_density."
#: What a fresh model of each name trains with (the project's measured choice; docs/training.md).
#: "init": the weights file (in the repository) a fresh model warm starts from; "heads_only":
#: every run of the model trains its entropy model alone on the frozen transforms (issue 13),
#: "cache_analysis": on analyses computed once per image; "freeze": parameter-name prefixes
#: left untrained (`lic train --freeze`), with the full loss; "init_config": the config the init
#: file must hold (default: "config"); "continue_lr": the learning rate when a round continues the
#: shipped weights (default: "lr"); "qualities": the levels a step draws from, a level named n
#: times drawn n times as often (default: all, uniformly).
RECIPES: dict[str, dict] = {
    # lr 2e-4 from round 3 on: at 5e-4 the loss stayed flat from step ~6k to 23.5k (round 2);
    # issue 28: the transforms on the coded rate too, and the top qualities drawn more often (A/B
    # of 2026-12-07, ~213 steps each from 14b13e50: ceiling +0.24 dB against +0.04 uniform)
    "hyperprior": {"config": {"linear_path": True}, "batch": 8, "crop": 256, "lr": 2e-4,
                   "rate_input": "rounded", "qualities": [1, 2, 3, 4, 5, 6, 6, 7, 7, 7, 8, 8, 8, 8]},
    "context": {"config": {"linear_path": True}, "batch": 16, "crop": 256, "lr": 5e-4,
                "init": "weights/hyperprior.safetensors", "heads_only": True, "cache_analysis": True},
    # 320² crops (20×20 latents; 707 of the 716 training photos hold one): the search needs room;
    # no hyper residual, so the fresh model takes the context model's entropy parameters exactly;
    # 4 cache views: at 320² only scale 1.0 of most photos holds a crop (1,440 analyses with 2);
    # the context sees rounded ŷ: continuing on noisy y drifted +5.8 % in round 3, rounded −0.1 %;
    # y's rate on the coded residual round(y − μ) (round 4: the noisy proxy reads 0.579 bpp of y at
    # q1 where the coder spends 0.423)
    "reference": {"config": {"linear_path": True, "hyper_residual": False}, "batch": 16, "crop": 320,
                  "lr": 5e-4, "init": "weights/context.safetensors", "init_config": {"linear_path": True},
                  "heads_only": True, "cache_analysis": True, "cache_views": 4, "context_input": "rounded",
                  "rate_input": "rounded", "continue_lr": 2e-4},
    # the second hyper level on the frozen transforms (its aggregation into g_s stays zero); h_s at
    # the hyperprior's full width (K=288: y codes exactly like the hyperprior at step 0, as HC's)
    "coarse2fine": {"config": {"linear_path": True, "K": 288}, "batch": 16, "crop": 256, "lr": 5e-4,
                    "init": "weights/hyperprior.safetensors", "init_config": {"linear_path": True},
                    "heads_only": True, "cache_analysis": True, "rate_input": "rounded"},
    # y3, y2 come from analysis heads of their own: the full loss, the shared transforms frozen;
    # h_s at the hyperprior's full width (K=288: y4 codes exactly like the hyperprior at step 0;
    # the pruned K=96 cost 30 % at q1), HC's own layers (head3, c3, ...) from the shipped K=96 file;
    # the hyper path frozen too (round 2): y4 keeps coding exactly like the hyperprior
    "hierarchical": {"config": {"linear_path": True, "K": 288}, "batch": 8, "crop": 256, "lr": 5e-4,
                     "init": "weights/hyperprior.safetensors", "init_config": {"linear_path": True},
                     "init_also": "weights/hierarchical.safetensors", "freeze": f"{TRANSFORMS},{HYPER_PATH}"},
}
DEFAULT_RECIPE = {"config": {}, "batch": 8, "crop": 256, "lr": 6e-4}

#: The curves every training-log row is compared against (files in shared/anchors/kodak).
LOG_ANCHORS = {
    "mbt2018-mean": "compressai-mbt2018-mean_mse_cuda.json",
    "WebP": "webp.json",
    "AV1": "av1.json",
}
#: The other models are compared with our own hyperprior first (its last round's results file).
OWN_HYPERPRIOR = ("our hyperprior", "benchmarks/results/kodak-hyperprior.json")
LOG_HEADING = "## Training log"


def log_curves(model: str, anchors: Path, repo: Path) -> dict[str, Path]:
    """The curves a model's training-log rows compare with, by column name."""
    curves = {name: anchors / file for name, file in LOG_ANCHORS.items()}
    if model == "hyperprior":
        return curves
    return {OWN_HYPERPRIOR[0]: repo / OWN_HYPERPRIOR[1], "mbt2018-mean": curves["mbt2018-mean"], "AV1": curves["AV1"]}


def log_columns(names: tuple[str, ...] = tuple(LOG_ANCHORS)) -> tuple[str, ...]:
    return ("date", "steps", "CPU-min", "q1 bpp / dB", "q4 bpp / dB", "q8 bpp / dB", "ceiling dB",
            *(f"BD vs {n}" for n in names), "weights_id")


LOG_COLUMNS = log_columns()


@dataclass(frozen=True)
class RunFolder:
    """The git-ignored folder of one model's rounds: checkpoint, log, pid, stop file, export."""

    model: str
    root: Path = field(default=Path("runs"))

    @property
    def path(self) -> Path:
        return self.root / self.model

    @property
    def checkpoint(self) -> Path:
        return self.path / "ck"

    @property
    def log(self) -> Path:
        return self.path / "train.log"

    @property
    def pid(self) -> Path:
        return self.path / "train.pid"

    @property
    def stop_file(self) -> Path:
        return self.path / "STOP"

    @property
    def export(self) -> Path:
        return self.path / f"{self.model}.safetensors"


def shipped_weights(model: str, repo: Path) -> Path:
    return repo / "weights" / f"{model}.safetensors"


def running_pid(run: RunFolder) -> int | None:
    """The pid of the round's training process if it is still alive."""
    try:
        pid = int(run.pid.read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def _trained_with_recipe(weights: Path, recipe: dict) -> bool:
    """Whether a weights file is a continuation point for the recipe (same config keys)."""
    from ..weights_io import read_metadata

    if not weights.is_file():
        return False
    try:
        config = read_metadata(weights).get("config", {})
    except LicError:
        return False
    return all(config.get(k) == v for k, v in recipe["config"].items())


def _transforms(model: str, source: Path) -> dict | None:
    """The transform tensors (the model's transform_modules) of a weights file or a checkpoint
    folder, as float32; None when it cannot be read."""
    from ..models import build_model, model_by_name
    from ..weights_io import weights_state
    from .checkpoint import load_checkpoint, read_index

    spec = model_by_name(model)
    prefixes = tuple(f"{m}." for m in spec.factory.transform_modules)
    try:
        if source.is_dir():
            net = build_model(spec, read_index(source).get("model_config") or {})
            load_checkpoint(source, net)
            state = net.state_dict()
        else:
            state = weights_state(source)
    except LicError:
        return None
    return {k: v.float() for k, v in state.items() if k.startswith(prefixes)}


def _other_transforms(ours: dict | None, theirs: dict | None) -> bool:
    """Whether two readable sets of transform tensors differ on the names they share (GSDN has
    tensors of its own): entropy heads trained on other transforms are not worth continuing."""
    import torch

    if ours is None or theirs is None:
        return False  # unreadable: the training itself reports what is wrong
    names = [k for k in ours if k in theirs]
    return not names or any(ours[k].shape != theirs[k].shape or not torch.equal(ours[k], theirs[k]) for k in names)


def train_argv(run: RunFolder, data: str, minutes: float, cooldown: float, repo: Path,
               threads: int | None = None) -> tuple[list[str], str]:
    """The `lic train` command line of a round and where it starts from (for the log).

    A round on frozen transforms (heads only, or a recipe's "freeze") continues a local checkpoint
    or the shipped weights only while they hold the transforms of the recipe's init file; a stale
    local checkpoint is moved to ck.stale."""
    recipe = RECIPES.get(run.model, DEFAULT_RECIPE)
    argv = [
        sys.executable, "-m", "lccodec.train", "--model", run.model, "--data", data,
        "--schedule", "constant", "--minutes", f"{minutes:g}", "--cooldown-minutes", f"{cooldown:g}",
        "--stop-file", str(run.stop_file), "--checkpoint", str(run.checkpoint),
        "--export", str(run.export), "--batch", str(recipe["batch"]), "--crop", str(recipe["crop"]),
        "--lr", f"{recipe['lr']:g}",
    ]
    if threads:
        argv += ["--threads", str(threads)]
    if recipe.get("heads_only"):
        argv += ["--heads-only"] + (["--cache-analysis"] if recipe.get("cache_analysis") else [])
        if recipe.get("cache_views"):
            argv += ["--cache-views", str(recipe["cache_views"])]
    if recipe.get("context_input"):
        argv += ["--context-input", recipe["context_input"]]
    if recipe.get("rate_input"):
        argv += ["--rate-input", recipe["rate_input"]]
    if recipe.get("freeze"):
        argv += ["--freeze", recipe["freeze"]]
    if recipe.get("qualities"):  # a level named n times is drawn n times as often
        argv += ["--qualities", ",".join(str(q) for q in recipe["qualities"])]
    shipped = shipped_weights(run.model, repo)
    init = repo / recipe["init"] if recipe.get("init") else None
    # heads on frozen transforms: what continues must hold the init file's transforms
    heads_on_init = (recipe.get("heads_only") or recipe.get("freeze")) and init is not None and init.is_file()
    fresh_transforms = _transforms(run.model, init) if heads_on_init else None
    stale = ""
    if (run.checkpoint / "checkpoint.json").is_file():
        if fresh_transforms is None or not _other_transforms(_transforms(run.model, run.checkpoint),
                                                             fresh_transforms):
            return argv + ["--resume", str(run.checkpoint)], f"local checkpoint {run.checkpoint}"
        aside = run.path / "ck.stale"
        shutil.rmtree(aside, ignore_errors=True)
        run.checkpoint.rename(aside)
        stale = f" (the local checkpoint was trained on other transforms: moved to {aside})"
    if _trained_with_recipe(shipped, recipe) and _manifest(shipped).get("steps"):
        if fresh_transforms is None or not _other_transforms(_transforms(run.model, shipped), fresh_transforms):
            if recipe.get("continue_lr"):
                argv[argv.index("--lr") + 1] = f"{recipe['continue_lr']:g}"
            return argv + ["--continue", str(shipped)], f"shipped weights {shipped}{stale}"
        stale += f" (the shipped {run.model} was trained on other transforms)"
    for key, value in recipe["config"].items():
        argv += ["--config", f"{key}={json.dumps(value)}"]
    if init is not None:
        init_config = recipe.get("init_config", recipe["config"])
        if not _trained_with_recipe(init, {"config": init_config}):
            raise LicError(f"a fresh {run.model} warm starts from {init}, which is missing or not trained "
                           f"with {init_config}")
        argv += ["--init", str(init)]
        also = repo / recipe["init_also"] if recipe.get("init_also") else None
        if also is not None and also.is_file() and _manifest(also).get("steps"):
            argv += ["--init-also", str(also)]
            stale += f", then from {also} where the shapes match"
        return argv, f"a fresh model warm started from {init}{stale}"
    return argv, "a fresh model"


def _manifest(weights: Path) -> dict:
    from ..weights_io import read_metadata

    return read_metadata(weights).get("manifest", {})


def start(run: RunFolder, data: str, minutes: float, cooldown: float, repo: Path,
          threads: int | None = None) -> str:
    """Start a round in the background; returns a one-line description."""
    from .data import image_files

    if running_pid(run):
        raise LicError(f"a {run.model} round is already running (pid {running_pid(run)}); stop it first")
    if cooldown >= minutes:
        raise LicError("--cooldown-minutes must be shorter than --minutes")
    image_files(data)  # a missing or empty folder fails here, not in the background
    run.path.mkdir(parents=True, exist_ok=True)
    run.stop_file.unlink(missing_ok=True)
    argv, origin = train_argv(run, data, minutes, cooldown, repo, threads)
    with open(run.log, "ab") as log:
        log.write(f"\n# round started {_now()} from {origin}: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=repo)
    run.pid.write_text(f"{proc.pid} {time.time():.0f}\n")
    _prefer(proc.pid)
    return f"started {run.model} round (pid {proc.pid}) from {origin}; log: {run.log}"


ROUND_AUTOGROUP_NICE = -10


def _prefer(pid: int) -> None:
    """Best effort: give the round's scheduler group priority over other sessions' work.

    Linux schedules each session (autogroup) fairly against the others, whatever the processes'
    own nice values, so a test run in another terminal would take half the cores; a negative
    autogroup nice (root or CAP_SYS_NICE) keeps the round at full speed beside light work."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(f"{ROUND_AUTOGROUP_NICE}\n")


def stop(run: RunFolder, timeout_minutes: float = 60.0) -> None:
    """Ask the round to cool down and stop (the stop file), then wait for its export."""
    pid = running_pid(run)
    if pid is None:
        raise LicError(f"no {run.model} round is running (no live pid in {run.pid})")
    run.stop_file.touch()
    deadline = time.monotonic() + timeout_minutes * 60.0
    while running_pid(run):
        if time.monotonic() > deadline:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
            raise LicError(f"the {run.model} round did not finish its cool-down in {timeout_minutes:g} min")
        time.sleep(5.0)
    started = float(run.pid.read_text().split()[1])
    if not run.export.is_file() or run.export.stat().st_mtime < started:
        raise LicError(f"the {run.model} round ended without an export; see {run.log}")


def bd_against(reference: Path, curve) -> float | None:
    """BD-rate (PSNR) of `curve` against the first curve of the results file `reference`;
    None when the PSNR ranges do not overlap."""
    from ..bench.anchors import load_curves
    from ..bench.bdrate import bd_rate

    ref = load_curves(reference)[0]
    try:
        return bd_rate(ref.bpp, ref.psnr, curve.bpp, curve.psnr)
    except ValueError:
        return None


def measure_kodak(run: RunFolder, kodak: str, anchors: Path, out_json: Path,
                  threads: int = 2, curves: dict[str, Path] | None = None) -> dict:
    """Bench the round's export on Kodak (q1..8, real bitstreams) into `out_json`; returns the
    training-log row (points, the transform ceiling, and BD-rates against `curves`, default
    LOG_ANCHORS)."""
    from ..bench.anchors import load_curves
    from .evaluation import read_images, weights_ceiling

    argv = [
        sys.executable, "-m", "lccodec.cli", "bench", kodak, "--model", run.model, "--codec", "none",
        "--quality", "1,2,3,4,5,6,7,8", "--threads", str(threads), "--device", "cpu",
        "--json", str(out_json), "--no-progress",
        *[a for f in LOG_ANCHORS.values() for a in ("--anchor", str(anchors / f))],
    ]
    curves = curves or {name: anchors / file for name, file in LOG_ANCHORS.items()}
    env = {**os.environ, "LIC_WEIGHTS_DIR": str(run.path)}
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise LicError(f"Kodak measurement failed: {done.stderr.strip().splitlines()[-1:]}")
    curve = load_curves(out_json)[0]
    row = {"points": {int(q): (b, p) for q, b, p in zip(range(1, 9), curve.bpp, curve.psnr)},
           "ceiling": weights_ceiling(run.export, read_images(kodak))["ceiling_mean_db"]}
    for name, file in curves.items():
        if not file.is_file():
            row[name] = f"n/a (no {file.name})"
            continue
        row[name] = bd_against(file, curve)  # None: no overlap of the PSNR ranges
    return row


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def log_row(row: dict, manifest: dict, weights_id: str, names: tuple[str, ...] = tuple(LOG_ANCHORS),
            note: str = "") -> str:
    """One markdown row of the training log (BD-rates against the curves `names`; `note` follows
    the weights_id)."""
    def point(q: int) -> str:
        b, p = row["points"][q]
        return f"{b:.3f} / {p:.2f}"

    def bd(name: str) -> str:
        value = row.get(name)
        return "no overlap" if value is None else value if isinstance(value, str) else f"{value:+.1f} %"

    ceiling = row.get("ceiling")
    cells = [
        manifest.get("date", _now())[:10], str(manifest.get("steps", "?")),
        f"{manifest.get('device_minutes', 0):.0f}", point(1), point(4), point(8),
        "—" if ceiling is None else f"{ceiling:.2f}",
        *(bd(n) for n in names), f"`{weights_id}`" + (f" ({note})" if note else ""),
    ]
    return "| " + " | ".join(cells) + " |"


def append_log(card: Path, line: str, columns: tuple[str, ...] = LOG_COLUMNS) -> None:
    """Append a row to the model card's training-log table, the first table under its heading
    (created at the end if missing)."""
    from ..atomic import write_bytes_atomic

    text = card.read_text(encoding="utf-8") if card.is_file() else f"# Model card: {card.stem}\n"
    if LOG_HEADING not in text:
        header = "| " + " | ".join(columns) + " |\n|" + " --- |" * len(columns) + "\n"
        text = text.rstrip("\n") + (
            f"\n\n{LOG_HEADING}\n\nOne row per training round: Kodak (24 images, real bitstreams, "
            "PSNR-RGB), BD-rate of the PSNR curve (negative = fewer bits than the anchor).\n\n"
            + header
        )
    head, _, tail = text.partition(LOG_HEADING)
    lines = tail.split("\n")
    first = next(i for i, s in enumerate(lines) if s.startswith("|"))
    last = next((i - 1 for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines) - 1)
    lines.insert(last + 1, line)
    write_bytes_atomic(card, (head + LOG_HEADING + "\n".join(lines)).encode("utf-8"))


def record_release(weights: Path, repo: Path) -> str:
    """Add the row of the weights file `weights` to `repo`'s release table
    (src/lccodec/released_weights.py; commit None: the commit that adds it), unless it has one.
    Returns the row."""
    from .. import __version__
    from ..atomic import write_bytes_atomic
    from ..released_weights import TABLE_PATH, Release, release_row
    from ..weights_io import SHARED_FIELD, identify, read_metadata

    meta, identity = read_metadata(weights), identify(weights)
    model = meta.get("model")
    table = repo / TABLE_PATH
    text = table.read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.lstrip().startswith(f'Release("{model}", "{identity.hex}"'):
            return line.strip()
    marker = ")  # new rows go above this line"
    if marker not in text:
        raise LicError(f"cannot add a row to {table}: no line '{marker}'")
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    row = release_row(Release(str(model), identity.hex, identity.sha256, __version__, None, day,
                              meta.get(SHARED_FIELD)))
    write_bytes_atomic(table, text.replace(marker, f"{row}\n{marker}", 1).encode("utf-8"))
    return row.strip()


def against_shipped(measured: Path, shipped_results: Path) -> float | None:
    """BD-rate (PSNR) of a round's Kodak curve against the shipped weights' curve (their results
    file); None when there is no shipped curve or the curves do not overlap."""
    from ..bench.anchors import load_curves

    if not shipped_results.is_file():
        return None
    return bd_against(shipped_results, load_curves(measured)[0])


def finish(run: RunFolder, kodak: str, anchors: Path, repo: Path, threads: int = 2) -> str:
    """Measure the export; install it as the shipped weights (atomically) unless it codes Kodak
    worse than them (a positive BD-rate against their results file); log the round either way,
    and record installed weights in the release table."""
    from ..atomic import write_bytes_atomic
    from ..released_weights import TABLE_PATH
    from ..weights_io import read_metadata
    from ..weights_parts import share

    if not run.export.is_file():
        raise LicError(f"no export at {run.export}")
    meta = read_metadata(run.export)
    out_json = repo / "benchmarks" / "results" / f"kodak-{run.model}.json"
    measured = run.path / f"kodak-{run.model}.json"
    curves = log_curves(run.model, anchors, repo)
    row = measure_kodak(run, kodak, anchors, measured, threads, curves)
    weights_id = meta.get("weights_id", "?")
    versus = against_shipped(measured, out_json)
    ship = versus is None or versus <= 0.0
    note = "" if ship else f"not shipped: {versus:+.1f} % against the shipped weights"
    line = log_row(row, meta.get("manifest", {}), weights_id, tuple(curves), note)
    if ship:
        write_bytes_atomic(out_json, measured.read_bytes())
        write_bytes_atomic(shipped_weights(run.model, repo), run.export.read_bytes())
        share(shipped_weights(run.model, repo).parent)  # the hyperprior's transforms, stored once
    append_log(repo / "docs" / "models" / f"{run.model}.md", line, log_columns(tuple(curves)))
    if ship and (repo / TABLE_PATH).is_file():
        record_release(shipped_weights(run.model, repo), repo)
    return line if ship else (f"{line}\nnot installed: the export codes Kodak {versus:+.1f} % (BD-rate) against "
                              f"the shipped weights; its results are in {measured}")


@click.group("rounds")
def rounds_command() -> None:
    """Training rounds: start, status, stop (cool down, export, measure Kodak, log)."""


def _repo() -> Path:
    return Path.cwd()


@rounds_command.command("start")
@click.option("--model", default="hyperprior", show_default=True)
@click.option("--data", required=True, type=click.Path(file_okay=False))
@click.option("--minutes", default=175.0, show_default=True, type=click.FloatRange(min=1.0),
              help="The run's length, cool-down included (it also stops earlier on `stop`).")
@click.option("--cooldown-minutes", default=25.0, show_default=True, type=click.FloatRange(min=0.0))
@click.option("--threads", type=click.IntRange(min=1))
def start_command(model: str, data: str, minutes: float, cooldown_minutes: float, threads: int | None) -> None:
    """Start or continue MODEL's training in the background."""
    from ..models import model_by_name

    _run(lambda: click.echo(start(RunFolder(model_by_name(model).name), data, minutes,
                                  cooldown_minutes, _repo(), threads)))


@rounds_command.command("status")
@click.option("--model", default="hyperprior", show_default=True)
def status_command(model: str) -> None:
    """Whether a round runs, and the last lines of its log."""
    run = RunFolder(model)
    pid = running_pid(run)
    click.echo(f"{model}: {'running, pid ' + str(pid) if pid else 'not running'}")
    if run.log.is_file():
        lines = [s for s in run.log.read_text(errors="replace").splitlines() if s.startswith(("step", "cool", "stop", "#"))]
        click.echo("\n".join(lines[-3:]))


@rounds_command.command("stop")
@click.option("--model", default="hyperprior", show_default=True)
@click.option("--kodak", default="../shared/data/kodak", show_default=True, type=click.Path(file_okay=False))
@click.option("--anchors", default="../shared/anchors/kodak", show_default=True, type=click.Path(file_okay=False))
@click.option("--threads", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--no-wait", is_flag=True, help="The run has already ended: only measure, install and log.")
def stop_command(model: str, kodak: str, anchors: str, threads: int, no_wait: bool) -> None:
    """Cool down and stop MODEL's round, measure Kodak, install the weights, log the round."""
    run = RunFolder(model)

    def go() -> None:
        if not no_wait:
            stop(run)
        click.echo(finish(run, kodak, Path(anchors), _repo(), threads))

    _run(go)


@rounds_command.command("release")
@click.argument("weights", type=click.Path(dir_okay=False, exists=True))
def release_command(weights: str) -> None:
    """Add WEIGHTS (weights/MODEL.safetensors) to the release table; commit both together."""
    _run(lambda: click.echo(record_release(Path(weights), _repo())))


def _run(fn) -> None:
    try:
        fn()
    except LicError as exc:
        click.echo(f"lic: error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    rounds_command(prog_name="python -m lccodec.train.rounds")
