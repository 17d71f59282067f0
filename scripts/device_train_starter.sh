#!/usr/bin/env bash
# Trains starter model v2 on a GPU machine within a wall-clock budget, from the corpus chunks made by
# scripts/pack_corpus.py, and leaves the exported model dir (a tar in parts of 15 MiB:
# `cat starter-v2-model.tar.part-* | tar -xf -`), the latest checkpoint (last-checkpoint.tar.part-*,
# when it fits), the run's metrics and the log under $OUT.
# Run from anywhere; paths are relative to the repository root.
#
#   bash scripts/device_train_starter.sh [BUDGET_SECONDS]        (default 390: 6.5 minutes, all included)
#
# Settings (environment, defaults in brackets):
#   CHUNKS ['.device/corpus-*']  chunk folders      WORK [/tmp/ansray-starter-v2]  data and checkpoints
#   OUT [$WORK/out]              results            SIZE [small]    BATCH [32]     PRECISION [bfloat16]
#   LOSS [SNR]                   USE_GPU [1]        GENERATED_NOISE [1]            STEPS_PER_EPOCH [200]
#   VALID_SEGMENTS [256]         validation mixtures (made on the fly from the training sources, seed 21)
#   EXPORT_MARGIN [35]           seconds kept for stopping, exporting and packing after training
#   FRESH [0]                    1: start a new run; else a rerun continues the previous run's checkpoints
#   STOP_AT_STEP []              stop at this step instead of at the budget's end
#   PYTHON [python3]
#
# Stopping: training runs as a long schedule of STEPS_PER_EPOCH-step epochs; at the budget's end the
# job is interrupted, and the best model of the epochs finished so far (validated at each epoch's end)
# is exported. So the run ends within the budget wherever the GPU's rate falls.
set -euo pipefail
started=$(date +%s)
BUDGET=${1:-390}
cd "$(dirname "$0")/.."
REPO=$PWD
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# Ray Data redraws progress bars many times a second: they would bury the log that comes back.
export RAY_DATA_DISABLE_PROGRESS_BARS=1
PY=${PYTHON:-$(command -v python3 || command -v python)}
CHUNKS=${CHUNKS:-.device/corpus-*}
WORK=${WORK:-/tmp/ansray-starter-v2}
OUT=${OUT:-$WORK/out}
SIZE=${SIZE:-small}
BATCH=${BATCH:-32}
PRECISION=${PRECISION:-bfloat16}
LOSS=${LOSS:-SNR}
USE_GPU=${USE_GPU:-1}
GENERATED_NOISE=${GENERATED_NOISE:-1}
STEPS_PER_EPOCH=${STEPS_PER_EPOCH:-200}
VALID_SEGMENTS=${VALID_SEGMENTS:-256}
EXPORT_MARGIN=${EXPORT_MARGIN:-35}
FRESH=${FRESH:-0}
NAME=starter-v2
mkdir -p "$WORK" "$OUT"
LOG=$OUT/train.log
exec > >(tee -a "$LOG") 2>&1

elapsed() { echo $(( $(date +%s) - started )); }
echo "== $(date -u +%FT%TZ) budget ${BUDGET}s, size $SIZE, batch $BATCH, $PRECISION, loss $LOSS, gpu $USE_GPU"
"$PY" - <<'EOF' || true
import os, torch
print(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}"
      + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "") + f", {os.cpu_count()} CPUs")
EOF

# 1. Data: unpack the chunks that arrived (each once); stops with the names of any still missing.
[ "${SKIP_UNPACK:-0}" = 1 ] || "$PY" scripts/pack_corpus.py unpack "$CHUNKS" "$WORK/corpus"
DATA=$WORK/corpus
NOISE_FLAGS=(--noise "$DATA/train/noise")
if [ "$GENERATED_NOISE" = 1 ]; then NOISE_FLAGS+=(--noise "$DATA/train/noise-generated"); fi
echo "== data ready after $(elapsed)s: $(find "$DATA/train/clean" -type f | wc -l) speech files"

# 2. Training, interrupted at the budget's end (a rerun resumes from the latest checkpoint).
if [ "$FRESH" = 1 ]; then rm -rf "$WORK/runs/$NAME"; fi
GPU_FLAGS=()
if [ "$USE_GPU" = 1 ]; then GPU_FLAGS=(--use-gpu); fi
STOP_FLAGS=()
if [ -n "${STOP_AT_STEP:-}" ]; then STOP_FLAGS=(--stop-at-step "$STOP_AT_STEP"); fi
train_seconds=$(( BUDGET - EXPORT_MARGIN - $(elapsed) ))
if [ "$train_seconds" -lt 30 ]; then echo "only ${train_seconds}s left for training: raise the budget"; exit 1; fi
echo "== training for at most ${train_seconds}s"
train_started=$(date +%s)
set +e
timeout --signal=INT --kill-after=20 "$train_seconds" "$PY" jobs/train.py \
  --clean "$DATA/train/clean" "${NOISE_FLAGS[@]}" --snr-range=-5,25 \
  --segment-seconds 1.0 --segment-mode random --valid-segments "$VALID_SEGMENTS" --no-quality-metrics \
  --model-size "$SIZE" --batch-size "$BATCH" --precision "$PRECISION" --loss-mode "$LOSS" --seed 20 \
  --num-workers 1 "${GPU_FLAGS[@]}" --cpus-per-worker 1 \
  --epochs 10000 --steps-per-epoch "$STEPS_PER_EPOCH" --checkpoint-every-steps "$STEPS_PER_EPOCH" \
  --keep-checkpoints 2 "${STOP_FLAGS[@]}" --storage "$WORK/runs" --name "$NAME" --max-failures 0
status=$?
set -e
train_wall=$(( $(date +%s) - train_started ))
echo "== training ended with status $status after ${train_wall}s (124/130: stopped at the budget, as planned)"

# 3. Export the best model, pack it, and print what the run reached.
rm -rf "$WORK/starter-v2"
"$PY" jobs/export_model.py --run "$WORK/runs/$NAME" --output "$WORK/starter-v2"
# Files come back from the device at 16 MiB at most: the small model's dir (18.6 MB) travels in parts.
rm -f "$OUT"/starter-v2-model.tar.part-*
tar -C "$WORK" -cf - starter-v2 | split -b 15m - "$OUT/starter-v2-model.tar.part-"
cp "$WORK/runs/$NAME/best/metrics.json" "$OUT/best-metrics.json" 2>/dev/null || true
# The latest checkpoint (weights, optimizer and random state of the last step; jobs/export_model.py
# --checkpoint or jobs/train.py --init read it) comes back too when it fits beside the model: 8 files
# and 64 MiB in all (small: 18.6 MB of model and 45 MB of checkpoint in 5 parts, plus 3 small files).
latest=$(ls -d "$WORK/runs/$NAME"/checkpoint-* 2>/dev/null | sort | tail -1)
if [ -n "$latest" ]; then
  bytes=$(( $(du -sb "$latest" | cut -f1) + $(du -cb "$OUT"/starter-v2-model.tar.part-* | tail -1 | cut -f1) ))
  if [ "$bytes" -lt 66000000 ]; then  # 64 MiB is 67.1 MB; the logs take the rest
    tar -C "$(dirname "$latest")" -cf - "$(basename "$latest")" | split -b 15m - "$OUT/last-checkpoint.tar.part-"
  else
    echo "== the latest checkpoint ($latest) would not fit in what comes back; left on the machine"
  fi
fi
"$PY" - "$LOG" "$BATCH" "$train_wall" "$OUT/progress.json" <<'EOF'
# The run's reports, from the log: Ray Train prints each one as a Python dict.
import ast, datetime, json, re, sys
log, batch, wall, dest = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
text = open(log, encoding="utf-8", errors="replace").read()
reports = {}
for match in re.finditer(r"TrainingReport\(checkpoint=.*?metrics=(\{.*?\}), validation", text):
    metrics = ast.literal_eval(match.group(1))
    reports[metrics["step"]] = metrics
rows = [reports[step] for step in sorted(reports)]
json.dump(rows, open(dest, "w"), indent=1)
for r in rows:
    print(f"step {r['step']:>6}: valid SI-SNRi {r.get('valid_si_snr_improvement', float('nan')):.2f} dB, "
          f"train SI-SNR {r.get('train_si_snr', float('nan')):.2f} dB, {r.get('samples_per_second', float('nan')):.1f} samples/s")
stamps = re.findall(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) INFO ansray.training: (starting|resuming|epoch)", text)
if rows and len(stamps) >= 2:
    when = [datetime.datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s, _ in stamps]
    first, last = rows[0].get("resumed_from_step", 0), rows[-1]["step"]
    seconds = (when[-1] - when[0]).total_seconds()
    print(f"reached step {last}: {last - first} steps x {batch} = {(last - first) * batch} samples in {seconds:.0f} s "
          f"from the first step to the last report ({(last - first) * batch / seconds:.1f} samples/s, validation "
          f"included); training wall time {wall:.0f} s, start-up included")
EOF
ls -la "$OUT"
echo "== done after $(elapsed)s of a ${BUDGET}s budget"
