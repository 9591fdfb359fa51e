"""The training loop: variable-rate rate-distortion training of any registered model.

Each step draws one quality level q (uniform over the model's λ ladder), a batch of random crops,
and minimises ``λ_q·255²·MSE + bpp``. The learning rate follows a linear warm-up and a cosine
decay over the *planned* number of steps, a pure function of the step, so a run cut into chunks
(``minutes`` per chunk, ``resume`` from the last checkpoint) follows the same schedule as one run.
Batches and noise are seeded by (seed, step): resuming from a full checkpoint continues exactly.

On CUDA: the data sit on the GPU, the transforms run in bf16 autocast (their last layer and all
entropy-model arithmetic in fp32), channels_last, ``torch.compile`` (optional), TF32 allowed for
the duration of the run only.
"""
from __future__ import annotations

import contextlib
import functools
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import LicError
from ..latents.base import RATE_INPUTS
from .analysis_cache import CACHE_VIEWS, AnalysisCache
from .checkpoint import load_checkpoint, read_index, save_checkpoint
from .data import CropSampler, CropSpec, image_files, load_images
from .evaluation import EVAL_MINUTES, evaluator

PROBE_STEPS = 20  # steps timed to turn a --minutes budget into a planned step count
REWARM_STEPS = 100  # lr ramp after resuming without optimizer state
CONSTANT_WARMUP = 500  # warm-up steps of the constant schedule
SPIKE_FACTOR = 4.0  # a step whose loss exceeds this × the running loss of its quality is skipped
SPIKE_WARMUP = 20  # steps of a quality before its running loss is trusted
LADDER_EVERY = 10  # log the per-quality running bpp/PSNR every this many log lines
SPIKE_LIMIT = 50  # this many skipped steps in a row end the run (it has diverged)


@dataclass
class TrainConfig:
    """Everything that defines a run.

    The schedule is planned in steps: ``steps`` fixes the total; otherwise ``plan_minutes`` (the
    device time of the whole training, across chunks) or, for a single run, ``minutes`` is turned
    into steps from the measured speed and re-estimated as the run goes. ``minutes`` and
    ``stop_at`` only end this run (a chunk); the next one resumes the same plan.
    """

    model: str = "hyperprior"
    model_config: dict = field(default_factory=dict)
    data: str = ""
    steps: int | None = None
    plan_minutes: float | None = None
    minutes: float | None = None
    stop_at: int | None = None
    qualities: list[int] | None = None  # the levels drawn from (1-based); default: all
    batch: int = 16
    crop: int = 256
    min_scale: float = 0.6
    lr: float = 6e-4
    final_lr_ratio: float = 0.01
    warmup: int | None = None
    clip: float = 1.0
    device: str = "auto"
    compile: bool | None = None  # None: wherever available (see fast_path_defaults)
    channels_last: bool | None = None  # None: on
    bf16: bool | None = None  # None: wherever bf16 is fast (CUDA, a CPU with AVX512-BF16/AMX)
    threads: int | None = None
    seed: int = 0
    log_every: int = 50
    checkpoint: str | None = None
    checkpoint_kind: str = "full"
    checkpoint_minutes: float = 5.0
    resume: str | None = None
    init: str | None = None  # warm start a fresh run from this weights file
    init_also: list[str] | None = None  # then copy these files' tensors of the same name and shape
    continue_from: str | None = None  # continue training a weights file (its steps, minutes, config)
    freeze: list[str] | None = None  # parameter-name prefixes left untrained
    heads_only: bool = False  # train the entropy model alone, rate only, on the frozen transforms
    cache_analysis: bool = False  # heads-only: analyse every image once, sample latent crops
    cache_views: int = CACHE_VIEWS  # the analysis cache's views of each image (1, 2 or 4)
    context_input: str = "noise"  # context models: what the context sees ("noise" or "rounded" ŷ)
    rate_input: str = "noise"  # what y's rate is measured on ("noise" or the "rounded" residual)
    schedule: str = "cosine"  # or "constant": warm-up, constant lr, a cool-down at the run's end
    cooldown_minutes: float = 0.0  # "constant": the last minutes of --minutes, decaying the lr
    cooldown_steps: int | None = None  # "constant": the cool-down in steps (else from the minutes)
    stop_file: str | None = None  # "constant": when this file appears, cool down and stop


@dataclass
class TrainResult:
    model: nn.Module
    step: int
    planned_steps: int
    device: str
    device_seconds: float
    history: list[dict]
    ms_per_step: float
    meta: dict  # the checkpoint index fields (step, plan, devices, data, config): see export
    evaluations: list[dict] = field(default_factory=list)  # every evaluation: step, ceiling, points


@dataclass
class Plan:
    """The planned total of steps: fixed, or derived from a device-time budget and the speed."""

    steps: int | None
    seconds: float | None = None  # device-time budget of the whole training (None: fixed)
    speed: float | None = None  # smoothed seconds per step

    def update(self, step: int, used_seconds: float, seconds_per_step: float) -> None:
        if self.seconds is None:
            return
        self.speed = seconds_per_step if self.speed is None else 0.7 * self.speed + 0.3 * seconds_per_step
        self.steps = step + max(1, int((self.seconds - used_seconds) / self.speed))

    def total_for_lr(self, step: int) -> int:
        return self.steps or step + PROBE_STEPS * 50  # before the first estimate: a long plan


def lr_at(step: int, total: int, warmup: int, base: float, final_ratio: float) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to base·final_ratio at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * t)))


def cooldown_lr(done: int, length: int, base: float, final_ratio: float) -> float:
    """The cool-down of a constant schedule: linear from `base` to base·final_ratio over `length` steps."""
    t = min(1.0, done / max(1, length))
    return base * (1.0 - (1.0 - final_ratio) * t)


def default_warmup(total: int) -> int:
    return max(1, min(1000, total // 20))


def fast_path_defaults(device: torch.device) -> dict[str, bool]:
    """Which of bf16 autocast, channels_last and torch.compile a run uses unless told otherwise.

    CUDA: all three. CPU: bf16 where oneDNN has fast bf16 kernels (AVX512-BF16 or AMX),
    channels_last always, torch.compile where a C++ compiler is on PATH (inductor needs one).
    """
    if device.type == "cuda":
        return {"bf16": True, "channels_last": True, "compile": True}
    import shutil

    try:
        bf16 = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        bf16 = False
    compiler = any(shutil.which(c) for c in ("g++", "c++", "clang++"))
    return {"bf16": bf16, "channels_last": True, "compile": compiler}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise LicError(f"unknown device '{name}'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LicError("device 'cuda' asked for, but no CUDA device is available")
    return device


def rd_loss(out: dict, x: torch.Tensor, lam: torch.Tensor,
            num_pixels: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, bpp, mse) per batch: mean over images of λ·255²·MSE + rate, with per-image λ.

    bpp is the coded rate (out["likelihoods"]). The rate in the loss weighs each term by
    out["rate_weights"] (default 1) and adds out["aux_likelihoods"] (progressive models).
    `num_pixels`: the pixels per image when x is not the image (a batch of cached analyses).
    """
    num_pixels = num_pixels or x.shape[2] * x.shape[3]
    weights = out.get("rate_weights", {})

    def bpp_of(lik: torch.Tensor) -> torch.Tensor:
        return -torch.log2(lik.float()).flatten(1).sum(1) / num_pixels

    coded = {k: bpp_of(v) for k, v in out["likelihoods"].items()}
    aux = {k: bpp_of(v) for k, v in out.get("aux_likelihoods", {}).items()}
    bpp = sum(coded.values())
    rate = sum(weights.get(k, 1.0) * v for k, v in {**coded, **aux}.items())
    if "x_hat" not in out:  # heads-only training: the rate alone (no distortion to report)
        return rate.mean(), bpp.mean(), torch.full((), math.nan, device=x.device)
    mse = (out["x_hat"].float() - x.float()).square().flatten(1).mean(1)
    loss = (lam * 255.0**2 * mse + rate).mean()
    return loss, bpp.mean(), mse.mean()


class SpikeGuard:
    """Skips the update of a step whose loss is not finite or spikes above SPIKE_FACTOR × the
    running loss of its quality level (an exploding step would otherwise wreck the weights)."""

    def __init__(self) -> None:
        self.running: dict[int, float] = {}
        self.seen: dict[int, int] = {}
        self.skipped = 0
        self.in_a_row = 0

    def accept(self, quality: int, loss: torch.Tensor) -> bool:
        value = float(loss.detach())
        ref = self.running.get(quality)
        ok = math.isfinite(value) and (
            ref is None or self.seen[quality] < SPIKE_WARMUP or value <= SPIKE_FACTOR * ref
        )
        if ok:
            self.running[quality] = value if ref is None else 0.9 * ref + 0.1 * value
            self.seen[quality] = self.seen.get(quality, 0) + 1
            self.in_a_row = 0
        else:
            self.skipped += 1
            self.in_a_row += 1
        return ok


def _autocast_forward(forward: Callable, device_type: str, enabled: bool) -> Callable:
    @functools.wraps(forward)
    def run(x, *args, **kwargs):
        if not enabled:
            x = x.float()
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=enabled):
            return forward(x, *args, **kwargs)

    return run


def enable_mixed_precision(model: nn.Module, device_type: str) -> None:
    """bf16 autocast for the model's transforms (its nn.Sequential children), on this instance.

    The last layer of each transform but the synthesis g_s runs in fp32 on fp32 input, so
    latents, means and scales keep full precision, and everything outside the transforms (noise,
    likelihoods) stays fp32. g_s ends in bf16: its output is the image, where bf16's relative
    error (2^-9, about 0.1 % of the MSE at 36 dB) does not matter, and its last, full-resolution
    layer in fp32 cost about 9 % of a hyperprior step (eager, CPU time, 2026-12-03).
    Parameters and state_dict are untouched: checkpoints and exports do not see it.
    """
    for name, child in model.named_children():
        if isinstance(child, nn.Sequential) and len(child) > 1:
            child.forward = _autocast_forward(child.forward, device_type, True)
            if name != "g_s":
                last = child[-1]
                last.forward = _autocast_forward(last.forward, device_type, False)


def data_summary(folder: str, images: list[torch.Tensor]) -> dict:
    """Name, count, pixels and a digest (names and sizes) of the training folder."""
    crc = 0
    for p in image_files(folder):
        crc = zlib.crc32(f"{p.name}|{p.stat().st_size}".encode(), crc)
    pixels = sum(int(im.shape[1] * im.shape[2]) for im in images)
    return {"folder": Path(folder).name, "images": len(images), "pixels": pixels, "digest": f"{crc:08x}"}


@contextlib.contextmanager
def _tf32(enabled: bool):
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    if enabled:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def make_optimizer(model: nn.Module, lr: float, fused: bool = True) -> torch.optim.Adam:
    """Adam with two groups: the transforms, and the z density (named 'entropy').

    `fused` (the default, CPU and CUDA): one kernel over all parameters. On this 2-core CPU the
    default per-tensor Adam took about 4x longer for the hyperprior's 7.3 M parameters (about
    120 against 30 ms per step on one thread, measured beside a training run)."""
    entropy = [p for n, p in model.named_parameters() if n.startswith("z_density.") and p.requires_grad]
    ids = {id(p) for p in entropy}
    main = [p for p in model.parameters() if id(p) not in ids and p.requires_grad]
    groups = [{"params": main, "name": "main"}]
    if entropy:
        groups.append({"params": entropy, "name": "entropy"})
    return torch.optim.Adam(groups, lr=lr, fused=fused or None)


def warm_start(model: nn.Module, weights: str) -> str:
    """Initialise `model` from a weights file: its own `warm_start` if it has one, else every
    tensor of the same name and shape. Returns a short description."""
    from ..weights_io import copy_matching, weights_state

    if not Path(weights).is_file():
        raise LicError(f"--init: no weights file '{weights}'")
    if hasattr(model, "warm_start"):
        copied = model.warm_start(weights)
        if not isinstance(copied, list):
            return f"{type(model).__name__}.warm_start"
        # names like "h_s.2 (pruned)" stand for a layer fitted from a differently shaped one
        fitted = tuple(c.split(" ")[0] + "." for c in copied if " " in c)
        fresh = sorted({n.split(".")[0] for n in model.state_dict() if n not in copied and not n.startswith(fitted)})
        return (f"{type(model).__name__}.warm_start: {len(copied)} tensors copied or fitted; "
                f"fresh: {', '.join(fresh) or 'none'}")
    same = copy_matching(model, weights_state(weights))
    return f"{len(same)} of {len(model.state_dict())} tensors copied"


def copy_also(model: nn.Module, weights: str, init: str) -> str:
    """Fill what the warm start from `init` left fresh: copy every tensor of `weights` that
    `model` has with the same name and shape, in a module `init` does not hold (so a network the
    warm start took from `init`, such as h_s, is never mixed). Returns which modules it reached."""
    from ..weights_io import copy_matching, weights_state

    if not Path(weights).is_file():
        raise LicError(f"--init-also: no weights file '{weights}'")
    taken = {n.split(".")[0] for n in weights_state(init)}
    state = {k: v for k, v in weights_state(weights).items() if k.split(".")[0] not in taken}
    copied = copy_matching(model, state)
    if not copied:
        raise LicError(f"--init-also: '{weights}' holds nothing {init} left fresh (same names and shapes)")
    return f"{len(copied)} tensors copied ({', '.join(sorted({n.split('.')[0] for n in copied}))})"


def _continuation_index(weights: str) -> dict:
    """Checkpoint-index fields of a weights file, to continue training it: its model, config,
    steps and device time from the manifest; no optimizer state."""
    from ..weights_io import read_metadata

    if not Path(weights).is_file():
        raise LicError(f"--continue: no weights file '{weights}'")
    meta = read_metadata(weights)
    manifest = meta.get("manifest", {})
    return {
        "weights": weights, "model": meta.get("model"), "model_config": meta.get("config", {}),
        "step": int(manifest.get("steps", 0)),
        "device_seconds": float(manifest.get("device_minutes", 0.0)) * 60.0,
        "devices": [d for d in str(manifest.get("device", "")).split(", ") if d and d != "unknown"],
        "optimizer_loaded": False,
    }


def set_quantisation_switch(codec: object, model: str, name: str, value: str, missing: str) -> None:
    """Set the training switch `name` ("context_input" or "rate_input": "noise" or "rounded") of a
    latent codec; "rounded" is refused, saying `missing`, where the codec has no such switch."""
    if value not in RATE_INPUTS:
        raise LicError(f"unknown --{name.replace('_', '-')} '{value}' ({' or '.join(RATE_INPUTS)})")
    if value == "rounded":
        if not hasattr(codec, name):
            raise LicError(f"--{name.replace('_', '-')} rounded: {model} {missing}")
        setattr(codec, name, value)


def _setup_model(config: TrainConfig, device: torch.device, log: Callable[[str], None]):
    """Model, optimizer and the state to resume from (a fresh run when config.resume is None)."""
    from ..models import build_model, model_by_name  # lazy: models import the entropy coder

    index = read_index(config.resume) if config.resume else {}
    if config.continue_from and not index:
        index = _continuation_index(config.continue_from)
    spec = model_by_name(index.get("model", config.model))
    torch.manual_seed(config.seed)  # the initial weights
    model = build_model(spec, index.get("model_config", config.model_config))
    if index.get("weights"):
        from ..weights_io import copy_matching, weights_state

        state = weights_state(index["weights"])
        if len(copy_matching(model, state)) != len(model.state_dict()):
            raise LicError(f"cannot continue from '{index['weights']}': it does not hold every tensor of {spec.name}")
        log(f"continuing {index['weights']} at step {index['step']} (Adam re-warms)")
    elif config.init and not index:
        log(f"warm start from {config.init}: {warm_start(model, config.init)}")
        for also in config.init_also or []:
            log(f"then from {also}: {copy_also(model, also, config.init)}")
    elif config.init_also:
        raise LicError("--init-also goes with --init (a fresh run)")
    frozen = [n for n, p in model.named_parameters() if any(n.startswith(f) for f in config.freeze or [])]
    if config.freeze and not frozen:
        raise LicError(f"--freeze {','.join(config.freeze)} matches no parameter of {spec.name}")
    if config.heads_only:
        if not model.heads_on_frozen_transforms:
            raise LicError(f"{spec.name} cannot train its entropy model alone (--heads-only): "
                           "part of its analysis is its own; train it with --freeze and the full loss")
        frozen += [n for n, _ in model.named_parameters() if n.split(".")[0] in model.transform_modules]
    set_quantisation_switch(model.latent_codec, spec.name, "context_input", config.context_input,
                            "has no context to feed rounded latents")
    set_quantisation_switch(model.latent_codec, spec.name, "rate_input", config.rate_input,
                            "has no rounded rate (its latents are layered)")
    for name, p in model.named_parameters():
        p.requires_grad_(name not in frozen)
    model = model.to(device)
    optimizer = make_optimizer(model, config.lr)
    if index and not index.get("weights"):
        index = load_checkpoint(config.resume, model, optimizer)
        log(f"resumed at step {index['step']} from {config.resume} ({index['kind']} checkpoint)")
    return model, optimizer, index


def train(config: TrainConfig, log: Callable[[str], None] = print) -> TrainResult:
    """Run (or continue) training as `config` says; returns the trained model and statistics."""
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    cuda = device.type == "cuda"
    fast = fast_path_defaults(device)
    use_compile = fast["compile"] if config.compile is None else config.compile
    use_cl = fast["channels_last"] if config.channels_last is None else config.channels_last
    use_bf16 = fast["bf16"] if config.bf16 is None else config.bf16
    if config.batch < 1 or config.crop < 64 or config.crop % 64:
        raise LicError("--batch must be >= 1 and --crop a multiple of 64")
    if config.schedule not in ("cosine", "constant"):
        raise LicError(f"unknown schedule '{config.schedule}' (cosine or constant)")
    constant = config.schedule == "constant"

    model, optimizer, index = _setup_model(config, device, log)
    step = int(index.get("step", 0))
    base_seconds = float(index.get("device_seconds", 0.0))
    devices = list(index.get("devices", []))
    warmup = config.warmup or index.get("warmup")
    rewarm_from = step if index and not index["optimizer_loaded"] else None
    if constant:  # the lr does not depend on a plan; the run ends on time, a step or the stop file
        if not (config.steps or config.minutes or config.stop_at or config.stop_file):
            raise LicError("the constant schedule needs an end: --steps, --minutes, --until or --stop-file")
        # the plan counts the whole training's device time: what earlier runs used plus this run's
        plan = Plan(config.steps, base_seconds + config.minutes * 60.0 if config.minutes and not config.steps else None)
    elif config.steps:
        plan = Plan(config.steps)
    elif config.plan_minutes or index.get("plan_seconds"):
        seconds = config.plan_minutes * 60.0 if config.plan_minutes else index["plan_seconds"]
        plan = Plan(index.get("planned_steps"), seconds)
    elif index.get("planned_steps"):
        plan = Plan(index["planned_steps"])
    elif config.minutes:
        plan = Plan(None, config.minutes * 60.0)
    else:
        raise LicError("give --steps or --plan-minutes (the planned total) or --minutes (this run)")

    if config.cache_analysis and not config.heads_only:
        raise LicError("--cache-analysis goes with --heads-only (the analysis must be frozen)")
    images = load_images(config.data, device)
    data = data_summary(config.data, images)
    evaluate = evaluator(images, log)  # the ceiling and real files on held-in images (issue 28)
    sampler = CropSampler(images, CropSpec(size=config.crop, min_scale=config.min_scale), config.seed)
    lambdas = torch.tensor(model.lambdas, dtype=torch.float32, device=device)
    levels = len(model.lambdas)
    qualities = list(config.qualities or range(1, levels + 1))
    if any(not 1 <= q <= levels for q in qualities):
        raise LicError(f"qualities must lie in 1..{levels}")
    log(
        f"training {model.name} {({k: v for k, v in model.config.items() if k != 'lambdas'})} on {device} "
        f"({data['images']} images, {data['pixels'] / 1e6:.0f} Mpixel), batch {config.batch}, "
        f"crop {config.crop}, bf16 {use_bf16}, channels_last {use_cl}, compile {use_compile}"
        + (", entropy model only (rate, frozen transforms)" if config.heads_only else "")
    )
    if use_cl:
        model = model.to(memory_format=torch.channels_last)
    if use_bf16:
        enable_mixed_precision(model, device.type)
    cache = None
    if config.cache_analysis:
        t0 = time.perf_counter()
        cache = AnalysisCache.build(model.analyze, images, config.crop, config.seed, views=config.cache_views)
        log(f"analysis cache: {len(cache.latents)} analyses, {cache.nbytes / 2**20:.0f} MiB, "
            f"{time.perf_counter() - t0:.0f} s")
        del images, sampler
    # heads-only: no synthesis, no backward through g_a; with the cache, no analysis either
    step_fn = model.rates_of_analysis if cache else model.rates if config.heads_only else model
    forward = torch.compile(step_fn) if use_compile else step_fn
    model.train()
    label = torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)"
    if label not in devices:
        devices.append(label)

    start = time.perf_counter()

    eval_seconds = 0.0  # spent on evaluations: not training device time

    def used_seconds() -> float:
        return base_seconds + time.perf_counter() - start - eval_seconds

    def run_meta() -> dict:
        return {
            "step": step, "planned_steps": plan.steps, "plan_seconds": plan.seconds,
            "warmup": warmup, "model": model.name, "model_config": model.config,
            "device_seconds": used_seconds(), "devices": devices, "data": data,
            "train_config": asdict(config),
        }

    def ckpt() -> None:
        if config.checkpoint:
            save_checkpoint(config.checkpoint, model, optimizer, run_meta(), config.checkpoint_kind)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    history: list[dict] = []
    evaluations: list[dict] = []  # the ceiling and real-file points (evaluation.Evaluation) by step
    guard = SpikeGuard()
    ladder: dict[int, torch.Tensor] = {}  # per quality: running (loss, bpp, PSNR)
    start_step, last_ckpt, last_eval, t_timed = step, start, start, None
    cool_from: int | None = None  # constant schedule: the step its cool-down began
    cool_steps = 0

    def cooldown_due() -> bool:
        if config.stop_file and Path(config.stop_file).exists():
            return True
        if config.minutes is not None:
            return time.perf_counter() - start >= (config.minutes - config.cooldown_minutes) * 60.0
        end = config.stop_at or config.steps
        return end is not None and step >= end - cool_estimate()

    def cool_estimate() -> int:
        if config.cooldown_steps is not None:
            return config.cooldown_steps
        speed = plan.speed or (history[-1]["ms_per_step"] / 1e3 if history else None)
        return int(config.cooldown_minutes * 60.0 / speed) if speed else 0
    sums = torch.zeros(3, device=device)  # loss, bpp, psnr over the log window
    window_n, window_ok, window_t = 0, 0, start

    with _tf32(cuda):
        while constant or plan.steps is None or step < plan.steps:
            if constant:
                if cool_from is None and cooldown_due():
                    ckpt()  # the undecayed state: the next run continues from here
                    cool_from, cool_steps = step, cool_estimate()
                    log(f"cool-down: {cool_steps} steps from step {step} (checkpoint kept at {step})")
                if cool_from is not None and step - cool_from >= cool_steps:
                    break
            elif config.minutes is not None and time.perf_counter() - start >= config.minutes * 60.0:
                break
            elif config.stop_at is not None and step >= config.stop_at:
                break
            torch.manual_seed((config.seed * 1_000_003 + step) % (2**63))  # the noise of this step
            q = int(np.random.default_rng([config.seed, step, 1]).choice(qualities))
            x = cache.batch(step, config.batch, config.crop // 16) if cache else sampler.batch(step, config.batch)
            if use_cl:
                x = x.contiguous(memory_format=torch.channels_last)
            quality = torch.full((config.batch,), float(q), device=device)
            total = plan.total_for_lr(step)
            if constant:
                lr = config.lr * min(1.0, (step + 1) / (warmup or CONSTANT_WARMUP))
                if cool_from is not None:
                    lr = cooldown_lr(step - cool_from, cool_steps, config.lr, config.final_lr_ratio)
            else:
                lr = lr_at(step, total, warmup or default_warmup(total), config.lr, config.final_lr_ratio)
            if rewarm_from is not None:
                lr *= min(1.0, (step - rewarm_from + 1) / REWARM_STEPS)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if hasattr(model, "set_progress"):  # progressive models change rate weights
                model.set_progress(step / max(1, total))

            loss, bpp, mse = rd_loss(forward(x, quality), x, lambdas[q - 1].expand(config.batch), config.crop**2)
            optimizer.zero_grad(set_to_none=True)
            accepted = guard.accept(q, loss)
            if accepted:
                loss.backward()
                if config.clip:
                    nn.utils.clip_grad_norm_(model.parameters(), config.clip)
                optimizer.step()
            elif guard.in_a_row >= SPIKE_LIMIT:
                raise LicError(
                    f"training diverged: {SPIKE_LIMIT} steps in a row with a loss spike at step {step}; "
                    "resume from the last checkpoint with a lower --lr"
                )
            step += 1
            if accepted:
                point = torch.stack([loss.detach(), bpp.detach(), -10.0 * torch.log10(mse.detach().clamp_min(1e-10))])
                sums += point
                window_ok += 1
                ladder[q] = point if q not in ladder else 0.9 * ladder[q] + 0.1 * point
            window_n += 1

            if step - start_step == 3:  # the first steps include compilation and warm-up
                sync()
                t_timed = time.perf_counter()
            elif step - start_step == 3 + PROBE_STEPS and plan.seconds is not None:
                sync()
                plan.update(step, used_seconds(), (time.perf_counter() - t_timed) / PROBE_STEPS)
                warmup = warmup or (CONSTANT_WARMUP if constant else default_warmup(plan.steps))
                log(f"planned {plan.steps} steps ({plan.speed * 1e3:.0f} ms/step measured, warm-up {warmup})")

            if step % config.log_every == 0 or step == plan.steps:
                sync()
                now = time.perf_counter()
                if not window_ok:  # every step of the window was skipped (the guard ends a run that keeps doing so)
                    window_n, window_t = 0, now
                    continue
                loss_v, bpp_v, psnr_v = (sums / window_ok).tolist()
                entry = {"step": step, "lr": lr, "loss": loss_v, "bpp": bpp_v, "psnr": psnr_v,
                         "ms_per_step": (now - window_t) * 1e3 / window_n, "skipped": guard.skipped}
                if not math.isfinite(loss_v):
                    raise LicError(
                        f"training diverged (loss is not finite) at step {step}; "
                        "lower --lr or resume from the last checkpoint"
                    )
                history.append(entry)
                if step - window_n >= start_step + 3 + PROBE_STEPS:  # a window of steady steps
                    plan.update(step, used_seconds(), entry["ms_per_step"] / 1e3)
                log(
                    f"step {step}/{plan.steps or '?'}  lr {lr:.2e}  loss {loss_v:.4f}  "
                    f"bpp {bpp_v:.4f}  psnr {psnr_v:.2f}  {entry['ms_per_step']:.1f} ms/step"
                    + (f"  ({guard.skipped} spike steps skipped)" if guard.skipped else "")
                )
                if step % (LADDER_EVERY * config.log_every) == 0 and ladder:
                    log("ladder  " + "  ".join(
                        f"q{k} {v[1]:.3f}/{v[2]:.2f}" for k, v in sorted((k, v.tolist()) for k, v in ladder.items())
                    ) + "  (running bpp/PSNR per quality)")
                sums.zero_()
                window_n, window_ok, window_t = 0, 0, now
                if config.checkpoint and cool_from is None and now - last_ckpt >= config.checkpoint_minutes * 60.0:
                    ckpt()
                    last_ckpt = time.perf_counter()
                if now - last_eval >= EVAL_MINUTES * 60.0:
                    if (result := evaluate(model)) is not None:
                        evaluations.append({"step": step, **asdict(result)})
                    last_eval = window_t = time.perf_counter()  # the evaluation is not step time
                    eval_seconds += last_eval - now

    sync()
    elapsed = time.perf_counter() - start
    if t_timed is not None and step - start_step > 3:
        ms = (time.perf_counter() - t_timed) * 1e3 / (step - start_step - 3)
    else:
        ms = elapsed * 1e3 / max(1, step - start_step)
    if cool_from is None:
        ckpt()
    log(f"stopped at step {step}/{plan.steps}: {elapsed / 60:.1f} min, {ms:.1f} ms/step this run")
    seconds, meta = used_seconds(), run_meta()  # the training's device time, without the evaluation
    if (result := evaluate(model)) is not None:
        evaluations.append({"step": step, **asdict(result)})
    return TrainResult(
        model=model, step=step, planned_steps=plan.steps or step, device=label,
        device_seconds=seconds, history=history, ms_per_step=ms, meta=meta, evaluations=evaluations,
    )
