"""Training speed on this machine: ms/step and Mpixel/s of the paths `lic train` can take.

Each path runs the project's own loop (`lccodec.train.train`) for a few warm-up steps (compile)
and then times `--steps` steps of the same configuration (default: hyperprior N=128/M=192,
batch 8 of 256², 2 threads, one quality). Run it on an idle machine; any other work on the
cores changes the numbers.

    python benchmarks/train_speed.py --data ../shared/data/train
    python benchmarks/train_speed.py --data DIR --paths fast --config linear_path=true --json out.json
    python benchmarks/train_speed.py --data DIR --paths fast,heads --model context   # heads-only vs full
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from lccodec.train import TrainConfig, train

PATHS = {
    "fp32": {"bf16": False, "channels_last": False, "compile": False},
    "bf16+cl": {"bf16": True, "channels_last": True, "compile": False},
    "fast": {"bf16": True, "channels_last": True, "compile": True},  # the default on this CPU
    # the entropy model alone on frozen transforms (--heads-only): no synthesis, no backward through g_a
    "heads": {"bf16": True, "channels_last": True, "compile": True, "heads_only": True},
    # the same on analyses computed once (--cache-analysis): the entropy model alone
    "heads-cache": {"bf16": True, "channels_last": True, "compile": True, "heads_only": True,
                    "cache_analysis": True},
}
WARMUP_STEPS = 5  # compilation and allocator warm-up; the loop's own timing starts after 3


def time_path(name: str, args: argparse.Namespace, model_config: dict) -> dict:
    config = TrainConfig(
        model=args.model, model_config=model_config, data=args.data, steps=10**6,
        stop_at=WARMUP_STEPS + args.steps, batch=args.batch, crop=args.crop, threads=args.threads,
        qualities=[args.quality], log_every=10**6, **PATHS[name],
    )
    t0 = time.perf_counter()
    result = train(config, log=lambda line: None)
    ms = result.ms_per_step
    return {
        "path": name, "ms_per_step": round(ms, 1),
        "mpixel_per_s": round(args.batch * args.crop**2 / (ms / 1e3) / 1e6, 3),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder of training images")
    parser.add_argument("--model", default="hyperprior")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--paths", default="fp32,bf16+cl,fast", help=f"any of {', '.join(PATHS)}")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per path")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quality", type=int, default=4)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    model_config = {}
    for item in args.config:
        key, _, value = item.partition("=")
        model_config[key] = json.loads(value)
    rows = []
    for name in args.paths.split(","):
        row = time_path(name, args, model_config)
        rows.append(row)
        print(f"{name:10s} {row['ms_per_step']:8.1f} ms/step  {row['mpixel_per_s']:6.3f} Mpixel/s")
    base = next((r for r in rows if r["path"] == "fp32"), None)
    if base:
        for r in rows:
            r["vs_fp32"] = round(r["ms_per_step"] / base["ms_per_step"], 3)
        print("  ".join(f"{r['path']}: {r['vs_fp32']:.2f}x" for r in rows))
    doc = {
        "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
        "model": args.model, "model_config": model_config, "batch": args.batch, "crop": args.crop,
        "threads": args.threads, "timed_steps": args.steps, "paths": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
