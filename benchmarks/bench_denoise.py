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
from ansray.io import audio_info, list_audio
from ansray.model import FRCRN, MODEL_SIZES, load_model, model_weights, save_model_dir
from ansray.model.polarity import keep_polarity
from ansray.segments import SegmentOptions, model_length

FORMATS = [(16000, "WAV", "PCM_16", ".wav"), (44100, "FLAC", "PCM_24", ".flac"), (48000, "OGG", "VORBIS", ".ogg"),
           (8000, "WAV", "FLOAT", ".wav")]


def make_archive(root: str, files: int, shortest: float, longest: float, first: int = 0) -> float:
    """Writes files number `first` to `first + files - 1` of noise under `root`, formats and channels
    cycling; returns their channel-seconds. Calls with different `first` can write one archive in parallel."""
    rng = np.random.default_rng(first)
    seconds = 0.0
    for i in range(first, first + files):
        rate, fmt, subtype, ext = FORMATS[i % len(FORMATS)]
        length = float(rng.uniform(shortest, longest))
        channels = 1 + i % 2
        sf.write(f"{root}/f{i:03d}{ext}", (0.1 * rng.standard_normal((int(rate * length), channels))).astype(np.float32),
                 rate, format=fmt, subtype=subtype)
        seconds += length * channels
    return seconds  # channel-seconds


def job_segment_lengths(root: str, options: SegmentOptions) -> list[int]:
    """The 16 kHz length of every (segment, channel) the job feeds its actors for the files under `root`."""
    lengths = []
    for ref in list_audio(root):
        info = audio_info(ref.uri)
        plan = options.plan(model_length(info.frames, info.sample_rate), fit=options.batch_size == 1)
        lengths += [plan.segment] * (plan.count * info.channels)
    return lengths


def model_only(model: str, lengths: list[int], options: SegmentOptions, threads: int) -> float:
    """Wall seconds of the job's actor running pre-decoded segments of `lengths` through the model, `batch_size`
    at a time and grouped by length, as it does with the segments of the bundles it is called with."""
    enhancer = SegmentEnhancer(model_weights(load_model(model)), threads=threads, batch_size=options.batch_size)
    rng = np.random.default_rng(1)
    groups = {length: (0.1 * rng.standard_normal((lengths.count(length), length))).astype(np.float32)
              for length in sorted(set(lengths))}
    enhancer.enhance(groups[min(groups)][:1].copy())  # warm-up
    start = time.perf_counter()
    for segments in groups.values():
        enhancer.enhance(segments)
    return time.perf_counter() - start


def actor_peak_memory(model: str, minutes: float, options: SegmentOptions, threads: int) -> float:
    """Peak RSS (MB) of a process whose actor is called with every bundle of a `minutes`-long mono input,
    as the job cuts it: pieces of a long file, at most a bundle's worth of segments each."""
    code = f"""
import numpy as np
from ansray.denoise.bundles import Bundle, Entry, as_batch
from ansray.denoise.enhancer import SegmentEnhancer
from ansray.denoise.files import FilePlan
from ansray.denoise.pipeline import BUNDLE_SEGMENTS
from ansray.io import AudioInfo, AudioRef
from ansray.model import load_model, model_weights
from ansray.segments import SegmentOptions
options = SegmentOptions{tuple(vars(options).values())!r}
segments = options.plan(int({minutes} * 60 * 16000))
info = AudioInfo("WAV", "PCM_16", 16000, 1, segments.num_samples)
plan = FilePlan(AudioRef("in.wav", "in.wav", 0, ""), info, "out.wav", "WAV", "PCM_16", (1.0,), False, segments)
enhancer = SegmentEnhancer(model_weights(load_model({model!r})), threads={threads}, batch_size=options.batch_size)
rng = np.random.default_rng(0)
capacity = max(BUNDLE_SEGMENTS, 2 * options.batch_size)
for first in range(0, segments.count, capacity):
    count = min(capacity, segments.count - first)
    audio = (0.1 * rng.standard_normal(count * segments.segment)).astype(np.float32)
    enhancer(as_batch([Bundle([Entry(0, plan.to_dict(), first, count)], audio)]))
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
        save_model_dir(keep_polarity(FRCRN(MODEL_SIZES[args.model_size]).eval()), model)
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
