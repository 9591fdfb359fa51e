#!/usr/bin/env bash
# Train a model on the lent accelerator in chunks of at most ~9 minutes (see docs/training.md).
#
# The device tool runs one command of at most 10 minutes on a bare machine, carrying at most
# 64 MiB of working tree, and returns at most 8 files of 16 MiB from $OUT. So a long training is
# a chain of chunks, each carrying the training set plus a compact checkpoint (fp16 model,
# byte-shuffled and deflated: ~11 MiB for the hyperprior) and returning the next one.
#
#   here:    benchmarks/train_device.sh prepare            # data -> data_local/, weights aside
#   device:  run(command="bash benchmarks/train_device.sh chunk", carry=["data_local"], timeout_s=600)
#   here:    benchmarks/train_device.sh collect FILES_AT   # the run's files_at folder
#            ... repeat chunk + collect until the log says the plan is done ...
#   here:    benchmarks/train_device.sh finish             # weights back, export the new weights
#
# Settings (environment, the same in every chunk of one training):
#   MODEL=hyperprior  CONFIG="N=128 M=192"  BATCH=16  CROP=256  LR=6e-4  SEED=0
#   PLAN_MINUTES=17   training time of the whole plan (device minutes, all chunks together)
#   CHUNK_MINUTES=8.5 training time of one chunk (the command adds ~0.5 min: imports, data, save)
#   DATA_MB=          prepare: copy at most this many MB of training images (larger models need
#                     room for their checkpoint: the reference model's is ~18 MiB, use DATA_MB=40)
#   INIT=             prepare: also copy this weights file to $LOCAL/init.safetensors; the first
#                     chunk warm-starts from it (e.g. INIT=weights/hyperprior.safetensors), and
#                     collect deletes it once a checkpoint exists
#   FREEZE=           parameter-name prefixes left untrained, e.g. FREEZE=g_a,g_s
# On the device they are passed in the command, e.g.
#   run(command="PLAN_MINUTES=17 bash benchmarks/train_device.sh chunk", carry=["data_local"])
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=${MODEL:-hyperprior}
CONFIG=${CONFIG:-"N=128 M=192"}
BATCH=${BATCH:-16}
CROP=${CROP:-256}
LR=${LR:-6e-4}
SEED=${SEED:-0}
PLAN_MINUTES=${PLAN_MINUTES:-17}
CHUNK_MINUTES=${CHUNK_MINUTES:-8.5}
DATA_SRC=${DATA_SRC:-../shared/data/train}
LOCAL=${LOCAL:-data_local}
ASIDE=runs/weights-aside
LIMIT_BYTES=$(( 64 * 1048576 - 262144 ))  # the 64 MiB that travels, less a margin
PY=${PY:-python3}  # here: the project venv's python; on the device: its python3 with torch

travelling_bytes() {  # what the device call carries: tracked + untracked-not-ignored + data_local
    local tree carried
    tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
    carried=$(du -sb "$LOCAL" 2>/dev/null | cut -f1 || echo 0)
    echo $(( tree + carried ))
}

check_size() {
    local size
    size=$(travelling_bytes)
    echo "working tree + $LOCAL: $(( size / 1024 )) KiB of $(( LIMIT_BYTES / 1024 )) KiB allowed"
    if [ "$size" -gt "$LIMIT_BYTES" ]; then
        echo "too large to travel: move other large files out of the working tree" >&2; return 1
    fi
}

case "${1:-}" in
prepare)
    [ -d "$DATA_SRC" ] || { echo "no training data at $DATA_SRC" >&2; exit 1; }
    git check-ignore -q "$LOCAL/" || { echo "$LOCAL/ must be git-ignored" >&2; exit 1; }
    mkdir -p "$LOCAL/train" "$ASIDE"
    if [ -n "${DATA_MB:-}" ]; then  # the first files (sorted by name) up to DATA_MB
        budget=$(( DATA_MB * 1000000 ))
        for f in "$DATA_SRC"/*; do
            size=$(stat -c %s "$f")
            [ "$size" -gt "$budget" ] && break
            budget=$(( budget - size ))
            cp -u "$f" "$LOCAL/train/"
        done
        echo "copied $(ls "$LOCAL/train" | wc -l) images"
    else
        cp -u "$DATA_SRC"/* "$LOCAL/train/"
    fi
    # merged: a shipped file may leave its transforms to a part beside it (lccodec.weights_parts)
    [ -n "${INIT:-}" ] && PYTHONPATH=src "$PY" -m lccodec.weights_parts merge "$INIT" "$LOCAL/init.safetensors"
    for f in weights/*.safetensors; do [ -e "$f" ] && mv "$f" "$ASIDE/"; done
    check_size
    [ -f "$LOCAL/ckpt/checkpoint.json" ] && echo "next chunk resumes $LOCAL/ckpt" || echo "next chunk starts a fresh run"
    ;;
chunk)  # runs on the device machine
    : "${OUT:?chunk runs on the device machine, where OUT is set}"

    # The training never entropy-codes; lccodec.models imports constriction all the same, and
    # the device image does not have it: give it an inert stand-in there.
    if ! "$PY" -c "import constriction" 2>/dev/null; then
        mkdir -p /tmp/lic-stub/constriction
        printf '%s\n' '"""Stand-in: constriction is not installed here (training only)."""' \
            'def __getattr__(name):' \
            '    raise ImportError("constriction is not installed on this machine")' \
            > /tmp/lic-stub/constriction/__init__.py
        export PYTHONPATH=/tmp/lic-stub
    fi
    export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    resume=()
    if [ -f "$LOCAL/ckpt/checkpoint.json" ]; then
        resume=(--resume "$LOCAL/ckpt")
    elif [ -f "$LOCAL/init.safetensors" ]; then
        resume=(--init "$LOCAL/init.safetensors")
    fi
    [ -n "${FREEZE:-}" ] && resume+=(--freeze "$FREEZE")
    config=()
    for kv in $CONFIG; do config+=(--config "$kv"); done
    mkdir -p "$OUT/ckpt"
    nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true
    set -o pipefail
    "$PY" -m lccodec.train --model "$MODEL" "${config[@]}" --data "$LOCAL/train" \
        --batch "$BATCH" --crop "$CROP" --lr "$LR" --seed "$SEED" \
        --plan-minutes "$PLAN_MINUTES" --minutes "$CHUNK_MINUTES" "${resume[@]}" \
        --checkpoint "$OUT/ckpt" --checkpoint-kind compact --checkpoint-minutes 3 \
        --log-every 200 2>&1 | tee "$OUT/train.log"
    ls -l "$OUT/ckpt"
    ;;
collect)  # $2: the files_at folder of the last run
    src=${2:?usage: collect FILES_AT}
    [ -f "$src/ckpt/checkpoint.json" ] || { echo "no checkpoint in $src/ckpt" >&2; exit 1; }
    rm -rf "$LOCAL/ckpt.new"
    mkdir -p "$LOCAL/ckpt.new" runs
    cp "$src"/ckpt/* "$LOCAL/ckpt.new/"
    rm -rf "$LOCAL/ckpt.old"
    [ -d "$LOCAL/ckpt" ] && mv "$LOCAL/ckpt" "$LOCAL/ckpt.old"
    mv "$LOCAL/ckpt.new" "$LOCAL/ckpt"
    rm -rf "$LOCAL/ckpt.old" "$LOCAL/init.safetensors"
    [ -f "$src/train.log" ] && cat "$src/train.log" >> runs/device-train.log
    python3 - "$LOCAL/ckpt/checkpoint.json" <<'EOF'
import json, sys
i = json.load(open(sys.argv[1]))
done = i["planned_steps"] is not None and i["step"] >= i["planned_steps"]
print(f"checkpoint at step {i['step']} of {i['planned_steps']}, "
      f"{i['device_seconds'] / 60:.1f} device-minutes{' - plan complete' if done else ''}")
EOF
    check_size
    ;;
finish)  # put the weights back, then export the trained model over the old weights
    for f in "$ASIDE"/*.safetensors; do [ -e "$f" ] && mv "$f" weights/; done
    PYTHONPATH=src "$PY" -m lccodec.train --export-only --resume "$LOCAL/ckpt" \
        --export "weights/$MODEL.safetensors"
    ls -l "weights/$MODEL.safetensors"
    ;;
*)
    sed -n '2,28p' "$0"
    exit 2
    ;;
esac
