#!/usr/bin/env bash
# Issue 20's GPU measurement as one command on the GPU machine, from the repository root with
# .device/wheels carried (scripts/device_wheels.sh builds it):
#   1. installs the carried wheels (scripts/device_setup.sh);
#   2. benchmarks/bench_gpu.py: inference grid, parity, reference, training, tuning variants;
#   3. the denoise job end to end on ~200 generated files (wav/flac/ogg, 8-48 kHz, mono/stereo, 2-30 s)
#      with an official-size model of random weights (keeping polarity, as the job requires), nvidia-smi
#      sampling the GPU meanwhile;
#   4. a summary: the job's x real time against the model-only figure at the same batch and precision.
# Logs and results go to $OUT (7 files at most). DEVICE_BENCH_CPU=1 runs the same steps on a CPU with
# tiny sizes and no nvidia-smi, to check the script; there the setup runs only if DEVICE_WHEELS names
# wheels for the local Python (PYTHON_VERSION=3.11 scripts/device_wheels.sh DIR builds them).
# Knobs: BENCH_BUDGET (bench_gpu seconds, default 170), DENOISE_FILES (200), DENOISE_TIMEOUT (s, 150; 600 on CPU),
# DENOISE_CPUS (a Ray of that many CPUs through `ray start` and --address, instead of the job's own local
# Ray over every CPU), DENOISE_FLAGS (more flags for the job).
set -uo pipefail

OUT=${OUT:-out/device_gpu_bench}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
say() { echo "== $*" | tee -a "$SUMMARY"; }
export PYTHONUNBUFFERED=1
cpu_mode=${DEVICE_BENCH_CPU:-0}

if [[ $cpu_mode != 1 || -n ${DEVICE_WHEELS:-} ]]; then
  if ! . scripts/device_setup.sh "${DEVICE_WHEELS:-.device/wheels}" > "$OUT/setup.log" 2>&1; then
    say "setup failed:"; cat "$OUT/setup.log"; exit 1
  fi
  cat "$OUT/setup.log"
fi
if [[ $cpu_mode == 1 ]]; then
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  bench_flags=(--device cpu --quick)
  budget=${BENCH_BUDGET:-600}
  files=${DENOISE_FILES:-6} longest=4 size=tiny precision=fp32 batch=2 gpus=0 job_timeout=${DENOISE_TIMEOUT:-600}
  job_flags=(--gpus-per-actor 0 --cpus-per-actor 1 --batch-size 2 --dtype float32)
else
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv | tee -a "$SUMMARY"
  bench_flags=(--device cuda)
  budget=${BENCH_BUDGET:-170}
  files=${DENOISE_FILES:-200} longest=30 size=official precision=bf16 batch=32 gpus=1 job_timeout=${DENOISE_TIMEOUT:-150}
  job_flags=(--gpus-per-actor 1 --cpus-per-actor 1 --batch-size 32 --dtype bfloat16)
fi
say "$(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GB memory, python $(python3 -c 'import sys; print(sys.version.split()[0])')"

say "bench_gpu.py, budget ${budget} s"
timeout --kill-after=10 $((budget + 120)) python3 benchmarks/bench_gpu.py "${bench_flags[@]}" --budget "$budget" \
  --out "$OUT" 2>&1 | tee "$OUT/bench_gpu.log" | grep --line-buffered -E '^\[|^bench_gpu'
say "bench_gpu.py ended at ${SECONDS} s"

# The archive (written by every CPU) and the model, outside $OUT.
work=$(mktemp -d /tmp/denoise-bench.XXXX)
python3 - "$work" "$files" "$longest" "$size" > "$work/corpus.json" <<'EOF'
import json, os, sys, time
from multiprocessing import Pool
sys.path.insert(0, "benchmarks")
import torch
from bench_denoise import make_archive
from ansray.model import FRCRN, MODEL_SIZES, save_model_dir
from ansray.model.polarity import keep_polarity

root, files, longest, size = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
started = time.perf_counter()
os.makedirs(f"{root}/in")
per_worker = -(-files // os.cpu_count())
with Pool() as pool:
    seconds = sum(pool.starmap(make_archive, [(f"{root}/in", min(per_worker, files - first), 2.0, longest, first)
                                              for first in range(0, files, per_worker)]))
torch.manual_seed(0)
save_model_dir(keep_polarity(FRCRN(MODEL_SIZES[size]).eval()), f"{root}/model")  # the job refuses inverting models
print(json.dumps({"files": len(os.listdir(f"{root}/in")), "channel_seconds": round(seconds, 1), "model_size": size,
                  "seconds_to_make": round(time.perf_counter() - started, 1)}))
EOF
say "archive and model: $(cat "$work/corpus.json")"

address=()
if [[ -n ${DENOISE_CPUS:-} ]]; then
  python3 -m ray.scripts.scripts start --head --num-cpus "$DENOISE_CPUS" --num-gpus "$gpus" \
    --include-dashboard false > "$work/ray_start.log" 2>&1 || { say "ray start failed:"; cat "$work/ray_start.log"; }
  address=(--address auto)
fi
sampler=
if [[ $cpu_mode != 1 ]]; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 200 \
    > "$OUT/gpu_util.csv" &
  sampler=$!
fi
say "denoise job: ${job_flags[*]} ${address[*]} ${DENOISE_FLAGS:-}"
job_started=$(date +%s.%N)
# shellcheck disable=SC2086 # DENOISE_FLAGS is a list of flags
timeout --kill-after=10 "$job_timeout" python3 jobs/denoise.py --input "$work/in" --output "$work/out" \
  --model "$work/model" --actors 1 "${job_flags[@]}" "${address[@]}" ${DENOISE_FLAGS:-} > "$OUT/denoise.log" 2>&1
job_rc=$?
job_ended=$(date +%s.%N)
[[ -n $sampler ]] && kill "$sampler"
[[ -n ${DENOISE_CPUS:-} ]] && python3 -m ray.scripts.scripts stop > /dev/null 2>&1
say "denoise job exit $job_rc: $(grep -E '^files ok' "$OUT/denoise.log" | tail -1)"
[[ $job_rc == 0 ]] || tail -20 "$OUT/denoise.log"

python3 - "$OUT" "$work/corpus.json" "$job_started" "$job_ended" "$precision" "$batch" "${DENOISE_CPUS:-$(nproc)}" \
  <<'EOF' | tee -a "$SUMMARY"
import datetime, json, re, sys
from pathlib import Path

out, corpus_file = Path(sys.argv[1]), Path(sys.argv[2])
wall = float(sys.argv[4]) - float(sys.argv[3])
precision, batch, cpus = sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
corpus = json.loads(corpus_file.read_text() or "{}") if corpus_file.exists() else {}
x = lambda value: f"{value:.0f}x" if value >= 100 else f"{value:.3g}x"  # the CPU check's figures are small
bench = out / "bench_gpu.jsonl"
rows = [json.loads(line) for line in bench.read_text().splitlines()] if bench.exists() else []
model_only = next((r for r in rows if r["part"] == "grid" and r.get("precision") == precision
                   and r.get("batch") == batch and "xrt" in r), None)
line = next((l for l in reversed((out / "denoise.log").read_text().splitlines()) if l.startswith("files ok")), "")
hours = re.search(r"([\d.]+) h of audio", line)
print(f"denoise job: {corpus.get('files')} files; Ray had {cpus} CPUs, 1 for the actor and {cpus - 1} for the CPU "
      f"tasks; {wall:.1f} s from launch to exit (Python, listing, model digest and Ray start-up included)")
if hours:
    print(f"  file audio {float(hours.group(1)) * 3600:.0f} s: {x(float(hours.group(1)) * 3600 / wall)} real time end to end")
channel_seconds = corpus.get("channel_seconds")
if channel_seconds:
    print(f"  channel audio (what the model runs) {channel_seconds:.0f} s: {x(channel_seconds / wall)} real time end to end")
if model_only and channel_seconds:
    print(f"  model only, enhance_batch {precision} batch {batch}: {x(model_only['xrt'])} (network alone "
          f"{x(model_only['xrt_network'])}): the job end to end reaches {100 * channel_seconds / wall / model_only['xrt']:.0f}% of it")
util = out / "gpu_util.csv"
samples = []
for row in util.read_text().splitlines() if util.exists() else []:
    parts = [p.strip() for p in row.split(",")]
    if len(parts) == 3 and parts[1].isdigit():
        stamp = datetime.datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
        samples.append((stamp, int(parts[1]), int(parts[2])))
if samples:
    busy = [i for i, (_, u, _) in enumerate(samples) if u > 0]
    window = samples[busy[0] : busy[-1] + 1] if busy else []
    span = window[-1][0] - window[0][0] if len(window) > 1 else 0.0
    mean = lambda values: sum(values) / max(1, len(values))
    print(f"  GPU utilisation, {len(samples)} samples: mean {mean([u for _, u, _ in samples]):.0f}% over the whole job; "
          f"busy from {window[0][0] - samples[0][0]:.1f} s for {span:.1f} s, mean {mean([u for _, u, _ in window]):.0f}% "
          f"there, {100 * mean([u >= 90 for _, u, _ in window]):.0f}% of its samples at >= 90%; "
          f"memory up to {max(m for _, _, m in samples)} MiB" if window else "  GPU utilisation: never above 0%")
    if span and channel_seconds:
        print(f"  channel audio over the GPU's busy span: {x(channel_seconds / span)} real time")
EOF
rm -rf "$work"
say "done in ${SECONDS} s; results in $OUT"
if [[ -f $OUT/bench_gpu.md ]]; then
  cat "$OUT/bench_gpu.md"
else  # bench_gpu.py was stopped: its figures so far
  python3 -c "import json, sys; [print(json.loads(l)['text']) for l in open(sys.argv[1])]" "$OUT/bench_gpu.jsonl"
fi
echo; cat "$SUMMARY"
