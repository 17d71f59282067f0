"""Denoise job throughput vs model-only throughput, and one actor's peak memory vs input length.

    python benchmarks/bench_denoise.py [--model-size tiny|small|official] [--files 50] [--file-seconds 2,30]
                                       [--lengths 1,10,60]

Prints figures; asserts nothing. Weights are random (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
import torch

from ansray.denoise import DenoiseConfig, SegmentEnhancer, run_denoise
from ansray.enhance import SegmentOptions, model_length
from ansray.io import audio_info, list_audio
from ansray.model import FRCRN, MODEL_SIZES, save_model_dir

FORMATS = [(16000, "WAV", "PCM_16", ".wav"), (44100, "FLAC", "PCM_24", ".flac"), (48000, "OGG", "VORBIS", ".ogg"),
           (8000, "WAV", "FLOAT", ".wav")]


def make_archive(root: str, files: int, shortest: float, longest: float) -> float:
    rng = np.random.default_rng(0)
    seconds = 0.0
    for i in range(files):
        rate, fmt, subtype, ext = FORMATS[i % len(FORMATS)]
        length = float(rng.uniform(shortest, longest))
        channels = 1 + i % 2
        sf.write(f"{root}/f{i:03d}{ext}", (0.1 * rng.standard_normal((int(rate * length), channels))).astype(np.float32),
                 rate, format=fmt, subtype=subtype)
        seconds += length * channels
    return seconds  # channel-seconds


def job_segment_lengths(root: str, options: SegmentOptions) -> list[int]:
    """The 16 kHz length of every (segment, channel) row the job feeds its actors for the files under `root`."""
    lengths = []
    for ref in list_audio(root):
        info = audio_info(ref.uri)
        plan = options.plan(model_length(info.frames, info.sample_rate), fit=options.batch_size == 1)
        lengths += [plan.segment] * (plan.count * info.channels)
    return lengths


def model_only(model: str, lengths: list[int], options: SegmentOptions, threads: int) -> float:
    """Wall seconds of one actor's __call__ on pre-decoded segments of `lengths`, batched as the job batches."""
    enhancer = SegmentEnhancer(model, threads=threads)
    rng = np.random.default_rng(1)
    batches = [lengths[i : i + options.batch_size] for i in range(0, len(lengths), options.batch_size)]
    audio = [(0.1 * rng.standard_normal((len(b), b[0]))).astype(np.float32) for b in batches]
    enhancer({"audio": audio[0].copy(), "segment": np.zeros(len(audio[0]), int)})  # warm-up
    start = time.perf_counter()
    for batch in audio:
        enhancer({"audio": batch, "segment": np.zeros(len(batch), int)})
    return time.perf_counter() - start


def actor_peak_memory(model: str, minutes: float, options: SegmentOptions, threads: int) -> float:
    """Peak RSS (MB) of a process that streams a `minutes`-long input through one actor, segment by segment."""
    code = f"""
import numpy as np, torch
from ansray.denoise import SegmentEnhancer
from ansray.enhance import SegmentOptions
options = SegmentOptions{tuple(vars(options).values())!r}
plan = options.plan(int({minutes} * 60 * 16000))
enhancer = SegmentEnhancer({model!r}, threads={threads})
rng = np.random.default_rng(0)
for first in range(0, plan.count, options.batch_size):
    n = min(options.batch_size, plan.count - first)
    enhancer({{"audio": (0.1 * rng.standard_normal((n, plan.segment))).astype(np.float32), "segment": np.arange(n)}})
# VmHWM, not getrusage's ru_maxrss: the latter keeps the parent's peak across fork and exec, and the
# parent here has just run a whole Ray job.
print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-size", choices=sorted(MODEL_SIZES), default="official")
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--file-seconds", default="2,30", help="the archive's shortest and longest file")
    parser.add_argument("--lengths", default="1,10,60", help="input minutes for the memory figure")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    options = SegmentOptions()
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model = f"{tmp}/model"
        save_model_dir(FRCRN(MODEL_SIZES[args.model_size]).eval(), model)
        os.makedirs(f"{tmp}/in")
        shortest, longest = (float(s) for s in args.file_seconds.split(","))
        audio = make_archive(f"{tmp}/in", args.files, shortest, longest)
        summary = run_denoise(DenoiseConfig(inputs=(f"{tmp}/in",), output=f"{tmp}/out", model=model, segments=options,
                                            cpus_per_actor=args.threads))
        job = audio / summary.wall_seconds  # channel-seconds, as the model sees them; Ray start-up included
        running = audio / (summary.wall_seconds - summary.startup_seconds)
        only = audio / model_only(model, job_segment_lengths(f"{tmp}/in", options), options, args.threads)
        print(f"load average {os.getloadavg()[0]:.1f}; model {args.model_size}; {args.files} files of "
              f"{shortest:g}-{longest:g} s, {audio / 3600:.3f} h of channel audio")
        print(f"job end to end: {job:.2f}x real time ({summary.line()}); "
              f"{running:.2f}x after {summary.startup_seconds:.1f} s of start-up (listing, model digest, Ray)")
        print(f"model only, same actor, the job's own segments pre-decoded: {only:.2f}x real time; "
              f"job reaches {100 * job / only:.0f}% of model-only end to end, {100 * running / only:.0f}% after start-up")
        for minutes in (float(m) for m in args.lengths.split(",")):
            print(f"one actor, {minutes:g} min input: peak RSS {actor_peak_memory(model, minutes, options, args.threads):.0f} MB")


if __name__ == "__main__":
    main()
