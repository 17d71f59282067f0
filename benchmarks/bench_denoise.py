"""Denoise job throughput vs model-only throughput, and one actor's peak memory vs input length.

    python benchmarks/bench_denoise.py [--model-size tiny|small|official] [--files 50] [--file-seconds 2,30]
                                       [--lengths 1,10,60]

Prints figures; asserts nothing. Weights are random (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
import torch

from ansray.denoise import DenoiseConfig, SegmentEnhancer, run_denoise
from ansray.enhance import MODEL_RATE, SegmentOptions
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


def model_only(model: str, segments: int, options: SegmentOptions, threads: int) -> float:
    """Seconds of 16 kHz audio per wall second through one actor's __call__ on pre-decoded segments."""
    enhancer = SegmentEnhancer(model, threads=threads)
    batch = np.random.default_rng(1).standard_normal((options.batch_size, options.plan(0).segment)).astype(np.float32) * 0.1
    enhancer({"audio": batch.copy(), "segment": np.zeros(len(batch), int)})
    start, done = time.perf_counter(), 0
    while done < segments:
        enhancer({"audio": batch.copy(), "segment": np.zeros(len(batch), int)})
        done += len(batch)
    hop = options.plan(10**9).hop
    return done * hop / MODEL_RATE / (time.perf_counter() - start)


def actor_peak_memory(model: str, minutes: float, options: SegmentOptions, threads: int) -> float:
    """Peak RSS (MB) of a process that streams a `minutes`-long input through one actor, segment by segment."""
    code = f"""
import resource, numpy as np, torch
from ansray.denoise import SegmentEnhancer
from ansray.enhance import SegmentOptions
options = SegmentOptions{tuple(vars(options).values())!r}
plan = options.plan(int({minutes} * 60 * 16000))
enhancer = SegmentEnhancer({model!r}, threads={threads})
rng = np.random.default_rng(0)
for first in range(0, plan.count, options.batch_size):
    n = min(options.batch_size, plan.count - first)
    enhancer({{"audio": (0.1 * rng.standard_normal((n, plan.segment))).astype(np.float32), "segment": np.arange(n)}})
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
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
        only = model_only(model, 8 * options.batch_size, options, args.threads)
        print(f"load average {os.getloadavg()[0]:.1f}; model {args.model_size}; {args.files} files of "
              f"{shortest:g}-{longest:g} s, {audio / 3600:.3f} h of channel audio")
        print(f"job end to end: {job:.2f}x real time ({summary.line()}); "
              f"{running:.2f}x after {summary.startup_seconds:.1f} s of start-up (listing, model digest, Ray)")
        print(f"model only, same actor: {only:.2f}x real time; job reaches {100 * job / only:.0f}% of model-only "
              f"end to end, {100 * running / only:.0f}% after start-up")
        for minutes in (float(m) for m in args.lengths.split(",")):
            print(f"one actor, {minutes:g} min input: peak RSS {actor_peak_memory(model, minutes, options, args.threads):.0f} MB")


if __name__ == "__main__":
    main()
