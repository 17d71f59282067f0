"""Peak memory of reading a 1-hour 48 kHz file in 30 s windows with read_audio.

Target (issue 3): peak RSS growth below 2x one window's float32 size plus a constant.
Usage: python benchmarks/bench_read_memory.py [--channels 1] [--format WAV|FLAC] [--minutes 60]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

RATE = 48000
WINDOW_SECONDS = 30
SUBTYPE = "PCM_16"


def write_long_file(path: str, minutes: float, channels: int, format: str) -> None:
    """Streams a tone-plus-noise file to disk block by block; write_audio would hold it all in memory."""
    rng = np.random.default_rng(0)
    block = RATE * 10
    with sf.SoundFile(path, "w", samplerate=RATE, channels=channels, format=format, subtype=SUBTYPE) as sound:
        for begin in range(0, int(minutes * 60 * RATE), block):
            time_axis = (begin + np.arange(block)) / RATE
            signal = 0.3 * np.sin(2 * np.pi * 440 * time_axis)[:, None] + 0.05 * rng.standard_normal(
                (block, channels)
            )
            sound.write(signal.astype(np.float32))


def reset_peak_rss() -> None:
    """Sets the peak to the current RSS, so that import-time transients don't hide the reader's peak."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def rss_bytes(field: str) -> int:
    """VmHWM (peak) or VmRSS (current) from /proc/self/status."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} missing from /proc/self/status")


def measure_reads(path: str) -> None:
    """Runs in a fresh process, so that the peak RSS is the reader's alone."""
    from ansray.io import audio_info, read_audio

    info = audio_info(path)
    window_frames = WINDOW_SECONDS * info.sample_rate
    window_bytes = window_frames * info.channels * 4
    reset_peak_rss()
    baseline = rss_bytes("VmRSS")
    started = time.perf_counter()
    windows = 0
    for start in range(0, info.frames, window_frames):
        data, _, _ = read_audio(path, start=start, frames=window_frames)
        windows += 1
        del data
    seconds = time.perf_counter() - started
    growth = rss_bytes("VmHWM") - baseline
    mib = 2**20
    print(
        f"file: {info.format}/{info.subtype}, {info.channels} ch, {info.duration / 60:.1f} min, "
        f"{os.path.getsize(path) / mib:.0f} MiB on disk"
    )
    print(
        f"windows read: {windows} x {WINDOW_SECONDS} s in {seconds:.1f} s "
        f"({info.duration / seconds:.0f}x real time)"
    )
    print(f"one window (float32): {window_bytes / mib:.1f} MiB")
    print(f"RSS before reading: {baseline / mib:.1f} MiB")
    print(
        f"peak RSS growth while reading: {growth / mib:.1f} MiB "
        f"= {growth / window_bytes:.2f} windows (target: < 2 windows + a constant)"
    )
    print(f"RSS after reading: {rss_bytes('VmRSS') / mib:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--format", default="WAV", choices=["WAV", "FLAC"])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the child process's input file
    args = parser.parse_args()
    if args.measure:
        measure_reads(args.measure)
        return
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"long.{args.format.lower()}")
        started = time.perf_counter()
        write_long_file(path, args.minutes, args.channels, args.format)
        print(f"wrote {path} in {time.perf_counter() - started:.1f} s")
        repository = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        environment = dict(os.environ, PYTHONPATH=repository)
        subprocess.run([sys.executable, __file__, "--measure", path], check=True, env=environment)


if __name__ == "__main__":
    main()
