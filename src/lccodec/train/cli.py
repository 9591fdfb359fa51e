"""`lic train`: the command-line face of :func:`lccodec.train.train` and the exporter."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..cli import LicCommand
from ..errors import LicError
from ..latents.base import RATE_INPUTS


def _parse_config(items: tuple[str, ...]) -> dict:
    """KEY=VALUE pairs (values parsed as JSON where they can be: 16, 0.5, [1,2])."""
    config = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LicError(f"--config expects KEY=VALUE, got '{item}'")
        try:
            config[key] = json.loads(value)
        except ValueError:
            config[key] = value
    return config


def _parse_qualities(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise LicError(f"--qualities expects integers like 1,4,8, got '{text}'") from None


@click.command("train", cls=LicCommand)
@click.option("--model", default="hyperprior", show_default=True, help="Model to train (registry name).")
@click.option("--config", "config_items", multiple=True, metavar="KEY=VALUE",
              help="Model config, e.g. --config N=128 --config M=192 (default: the model's own).")
@click.option("--data", type=click.Path(file_okay=False), help="Folder of training images.")
@click.option("--steps", type=click.IntRange(min=1), help="Planned total steps (sets the lr schedule).")
@click.option("--plan-minutes", type=click.FloatRange(min=0.05),
              help="Plan the schedule for this much device time in all (over chunks), not --steps.")
@click.option("--minutes", type=click.FloatRange(min=0.05),
              help="End this run after so many minutes (alone: the whole training gets this time).")
@click.option("--until", "stop_at", type=click.IntRange(min=1),
              help="End this run at this step, keeping the planned schedule (for chunks).")
@click.option("--qualities", help="Quality levels to train, e.g. 1,2,3 (default: all of the ladder); a level "
              "named twice is drawn twice as often, e.g. 1,2,3,4,5,6,7,7,8,8.")
@click.option("--batch", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--crop", default=256, show_default=True, type=int, help="Crop side (multiple of 64).")
@click.option("--lr", default=6e-4, show_default=True, type=float, help="Peak learning rate.")
@click.option("--warmup", type=click.IntRange(min=1), help="Warm-up steps (default: 5% of the plan, <= 1000).")
@click.option("--resume", type=click.Path(file_okay=False), help="Continue from this checkpoint folder.")
@click.option("--init", "init_weights", type=click.Path(dir_okay=False),
              help="Warm start a fresh run from this weights file (e.g. the hyperprior's).")
@click.option("--init-also", "init_also", type=click.Path(dir_okay=False), multiple=True,
              help="After --init, fill the modules it left fresh from this weights file where names "
                   "and shapes match (e.g. a model's own layers trained with another config). Repeatable.")
@click.option("--continue", "continue_from", type=click.Path(dir_okay=False),
              help="Continue training this weights file: its config, step count and minutes (Adam re-warms).")
@click.option("--freeze", help="Leave parameters with these name prefixes untrained, e.g. g_a,g_s.")
@click.option("--heads-only", is_flag=True,
              help="Train the entropy model alone with the rate as loss, on the frozen transforms "
                   "(the analysis runs without gradient; no synthesis).")
@click.option("--cache-analysis", is_flag=True,
              help="With --heads-only: analyse every training image once at the start and train on "
                   "crops of the analyses (a step runs the entropy model alone).")
@click.option("--cache-views", type=click.Choice(["1", "2", "4"]), default="2", show_default=True,
              help="Views of each image in the analysis cache: 1 as it is, 2 with its mirror image, "
                   "4 also upside down (more variety where images hold few crops).")
@click.option("--context-input", type=click.Choice(RATE_INPUTS), default="noise", show_default=True,
              help="Context and reference models: what the context sees in training, y plus noise, or "
                   "the rounded ŷ = round(y - mean) + mean the decoder sees (a first pass gives the mean).")
@click.option("--rate-input", type=click.Choice(RATE_INPUTS), default="noise", show_default=True,
              help="What y's rate is measured on: y plus noise (the usual proxy), or the rounded "
                   "residual round(y - mean) the coder spends bits on (the mean learns straight-through).")
@click.option("--checkpoint", type=click.Path(file_okay=False), help="Write checkpoints into this folder.")
@click.option("--checkpoint-kind", type=click.Choice(["full", "compact"]), default="full", show_default=True,
              help="full: fp32 + Adam state; compact: fp16 model only (re-warms Adam on resume).")
@click.option("--checkpoint-minutes", default=5.0, show_default=True, type=float)
@click.option("--export", "export_path", type=click.Path(dir_okay=False),
              help="Write the trained weights file here at the end (e.g. weights/hyperprior.safetensors).")
@click.option("--export-only", is_flag=True, help="Export the --resume checkpoint without training.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--compile/--no-compile", "use_compile", default=None,
              help="torch.compile the model (default: on where a C++ compiler is found, and on CUDA).")
@click.option("--bf16/--no-bf16", "bf16", default=None,
              help="bf16 autocast for the transforms (default: on CUDA and on CPUs with AMX/AVX512-BF16).")
@click.option("--channels-last/--no-channels-last", "channels_last", default=None,
              help="channels_last memory layout (default: on).")
@click.option("--schedule", type=click.Choice(["cosine", "constant"]), default="cosine", show_default=True,
              help="cosine: warm-up and decay over the plan; constant: warm-up, constant lr, and a "
                   "cool-down at the end of every run (the checkpoint keeps the undecayed state).")
@click.option("--cooldown-minutes", default=0.0, show_default=True, type=click.FloatRange(min=0.0),
              help="constant schedule: minutes of lr decay at the end of the run.")
@click.option("--stop-file", type=click.Path(dir_okay=False),
              help="constant schedule: when this file appears, cool down, checkpoint and stop.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--log-every", default=50, show_default=True, type=click.IntRange(min=1))
def train_command(
    model: str, config_items: tuple[str, ...], data: str | None, steps: int | None,
    plan_minutes: float | None, minutes: float | None, stop_at: int | None, qualities: str | None, batch: int, crop: int, lr: float, warmup: int | None,
    resume: str | None, init_weights: str | None, init_also: tuple[str, ...], continue_from: str | None, freeze: str | None, heads_only: bool, cache_analysis: bool, cache_views: str, context_input: str, rate_input: str, checkpoint: str | None, checkpoint_kind: str, checkpoint_minutes: float,
    export_path: str | None, export_only: bool, device: str, use_compile: bool | None,
    bf16: bool | None, channels_last: bool | None, schedule: str, cooldown_minutes: float,
    stop_file: str | None,
    threads: int | None, seed: int, log_every: int,
) -> None:
    """Train a model with variable rate (one run covers every quality) and export its weights.

    \b
    Examples:
      lic train --data ../shared/data/train --minutes 30 --export weights/hyperprior.safetensors
      lic train --data DIR --plan-minutes 24 --minutes 8 --resume ckpt --checkpoint ckpt
      lic train --export-only --resume ckpt --export weights/hyperprior.safetensors
      lic train --model reference --init weights/hyperprior.safetensors --data DIR --minutes 8
      lic train --model context --init weights/hyperprior.safetensors --heads-only --data DIR --minutes 60
    """
    from .export import export_checkpoint, export_model, make_manifest
    from .loop import TrainConfig, train

    if export_only:
        if not (resume and export_path):
            raise LicError("--export-only needs --resume CHECKPOINT and --export PATH")
        manifest = export_checkpoint(resume, export_path)
        click.echo(f"exported {export_path} (weights_id {manifest['weights_id']}, step {manifest['steps']})")
        return
    if not data:
        raise LicError("--data DIR is required for training")
    if export_path and not Path(export_path).resolve().parent.is_dir():
        raise LicError(f"cannot write '{export_path}': its folder does not exist")
    config = TrainConfig(
        model=model, model_config=_parse_config(config_items), data=data, steps=steps,
        plan_minutes=plan_minutes, minutes=minutes, stop_at=stop_at, qualities=_parse_qualities(qualities), batch=batch, crop=crop, lr=lr, warmup=warmup, device=device,
        compile=use_compile, bf16=bf16, channels_last=channels_last, schedule=schedule,
        cooldown_minutes=cooldown_minutes, stop_file=stop_file, threads=threads, seed=seed, log_every=log_every,
        checkpoint=checkpoint, checkpoint_kind=checkpoint_kind,
        checkpoint_minutes=checkpoint_minutes, resume=resume, init=init_weights, init_also=list(init_also) or None, continue_from=continue_from,
        freeze=[f for f in (freeze or "").split(",") if f] or None, heads_only=heads_only,
        cache_analysis=cache_analysis, cache_views=int(cache_views), context_input=context_input, rate_input=rate_input,
    )
    result = train(config, log=lambda line: click.echo(line, err=True))
    click.echo(f"{result.step} steps, {result.ms_per_step:.1f} ms/step on {result.device}")
    if export_path:
        manifest = export_model(result.model, export_path, make_manifest(result.meta))
        click.echo(f"exported {export_path} (weights_id {manifest['weights_id']})")


def main() -> None:
    """`python -m lccodec.train`: failures end in one `lic: error:` line (LicCommand)."""
    train_command.main(prog_name="python -m lccodec.train")
