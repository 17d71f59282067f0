"""Inference speed and memory of ansray's FRCRN path against the reference arithmetic (issue 8).

CPU (the default). Each figure comes from a fresh process with `--threads` torch threads:
  - the reference arithmetic (ansray/testing/reference_frcrn.py: the unfused network, fp32, batch 1, whole
    file, default malloc) and ansray (`ansray.enhance`, segmented, FRCRNInference), same weights, same input;
  - RTF = wall seconds / audio seconds, the minimum of `--repeats` runs after a warm-up, with the load
    average; peak RSS of the process (VmHWM) during the timed runs, which includes the model and the input
    signal already in memory (the baseline, printed for the memory rows);
  - correctness while timing: ansray's network on one segment against the reference network within the
    parity tolerance (1e-4 of max|reference|), and the SI-SDR of ansray's whole-input output against
    the reference's one-pass output (segmenting changes the squeeze-excitation averages).
GPU figures (throughput by precision and batch, parity, tuning) come from bench_gpu.py.

Weights are the parity fixture's random ones (ansray/testing/parity_fixture.py): the arithmetic, hence the cost,
is the released model's. With random weights the whole-input SI-SDR measures the weights' chaos, not the
arithmetic (see `edge_control`); `--weights` times trained ones instead (a model dir or checkpoint, e.g.
the starter model), for which that figure means what it says. The input is the speech fixture, tiled to
length, plus a little noise.

    python benchmarks/bench_inference.py [--threads 2] [--seconds 4 30 600] [--memory-minutes 60] [--memory-size tiny]
    python benchmarks/bench_inference.py --weights ansray/assets/starter --seconds 4 30 --memory-minutes

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ansray.enhancement import enhance
from ansray.metrics.si_sdr import si_sdr
from ansray.allocator import retain_freed_memory
from ansray.model import FRCRN, MODEL_SIZES, FRCRNInference, load_model
from ansray.segments import MODEL_RATE, SegmentOptions
from ansray.testing.parity_fixture import canonical_state_dict
from ansray.testing.reference_frcrn import reference_enhance

ROOT = Path(__file__).resolve().parent.parent
SPEECH = ROOT / "tests" / "fixtures" / "speech" / "198-209-0000.ogg"
PARITY_TOLERANCE = 1e-4  # times max|reference|, from the parity fixture's README
# The reference runs whole files; at 73 MB per second of audio (issue 8) longer ones don't fit here.
REFERENCE_MAX_SECONDS = 60


def speech_signal(seconds: float) -> np.ndarray:
    """The speech fixture tiled to `seconds` at 16 kHz, plus white noise at about 20 dB SNR."""
    speech, rate = sf.read(SPEECH, dtype="float32")
    if rate != MODEL_RATE:
        raise ValueError(f"{SPEECH} is at {rate} Hz, expected {MODEL_RATE}")
    length = int(seconds * MODEL_RATE)
    signal = np.resize(speech, length)
    # float32 throughout and in place: at 60 minutes a float64 temporary alone would be 460 MB of the
    # process's peak memory, which is what the memory rows measure.
    signal += np.random.default_rng(0).standard_normal(length, dtype=np.float32) * (0.1 * float(np.sqrt(np.mean(speech**2))))
    return signal


def reference_model(device: str = "cpu", size: str = "official", weights: str | None = None) -> FRCRN:
    """`weights` if given; else the fixture's at the official size, random ones of its shape at a smaller size."""
    if weights is not None:
        return load_model(weights, device=device)
    if size != "official":
        torch.manual_seed(0)
        return FRCRN(MODEL_SIZES[size]).eval().to(device)
    model = FRCRN().eval()
    model.load_state_dict(canonical_state_dict(), strict=True)
    return model.to(device)


def memory_mb(field: str) -> float:
    """VmHWM (peak) or VmRSS (current) of this process, in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} missing from /proc/self/status")


def reset_peak_memory() -> None:
    """Restarts VmHWM at the current RSS (Linux), so that the peak is the timed run's, not the input's making."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")


def best_of(repeats: int, run):
    """(min wall seconds, last result) of `repeats` calls."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return min(times), result


# ---------------------------------------------------------------- CPU workers (one per process)


def run_worker(args) -> dict:
    torch.set_num_threads(args.threads)
    seconds = args.seconds[0]
    signal = speech_signal(seconds)
    model = reference_model(size=args.size, weights=args.weights)
    report = {"kind": args.worker, "seconds": seconds, "threads": args.threads}
    if args.worker == "reference":
        reference_enhance(model, signal[:MODEL_RATE])  # warm-up: oneDNN primitive creation
        baseline = memory_mb("VmRSS")
        reset_peak_memory()
        wall, out = best_of(args.repeats, lambda: reference_enhance(model, signal))
        if args.control:
            report["edge_control_db"] = edge_control(model, signal, out)
    else:
        options = SegmentOptions(args.segment, args.overlap, args.batch)
        retain_freed_memory()  # as the job's actors do
        network = FRCRNInference.from_model(model)
        if args.check_segment:
            report["segment_parity"] = segment_parity(model, network, signal, args.segment)
        del model  # a job's actor holds only the inference network
        enhance(signal[:MODEL_RATE], MODEL_RATE, network, **vars(options))  # warm-up
        baseline = memory_mb("VmRSS")
        reset_peak_memory()
        wall, out = best_of(args.repeats, lambda: enhance(signal, MODEL_RATE, network, **vars(options)))
        report.update(segment=args.segment, overlap=args.overlap, batch=args.batch)
        if args.reference:
            report["si_sdr_vs_reference_db"] = si_sdr(out, np.load(args.reference))
    if args.save:
        np.save(args.save, out)
    report.update(
        rtf=wall / seconds,
        wall_s=wall,
        peak_rss_mb=memory_mb("VmHWM"),
        baseline_rss_mb=baseline,
        load=os.getloadavg(),
    )
    return report


def segment_parity(model: FRCRN, network: FRCRNInference, signal: np.ndarray, seconds: float | None) -> float:
    """max|ansray - reference| / (tolerance * max|reference|) on the first segment: <= 1 is parity."""
    length = len(signal) if seconds is None else min(len(signal), int(seconds * MODEL_RATE))
    segment = torch.from_numpy(signal[: length // 320 * 320])[None]
    with torch.inference_mode():
        ours = network(segment).wav
        theirs = model(segment).wav_l2
    return float((ours - theirs).abs().max() / (PARITY_TOLERANCE * theirs.abs().max()))


def edge_control(model: FRCRN, signal: np.ndarray, out: np.ndarray) -> float:
    """SI-SDR of the reference against itself given 40 ms of zeros at both ends (as `enhance` pads).

    With random weights the squeeze-excitation gates make the network chaotic: this tiny change of
    context moves the output as much as segmenting does, so whole-input SI-SDR figures between two
    contexts measure the weights, not the arithmetic. `segment_parity` checks the arithmetic.
    """
    edge = np.zeros(640, dtype=np.float32)
    padded = reference_enhance(model, np.concatenate([edge, signal, edge]))
    return float(si_sdr(padded[len(edge) : len(edge) + len(signal)], out))


def spawn(worker: str, seconds: float, args, **extra) -> dict:
    command = [sys.executable, __file__, "--worker", worker, "--seconds", str(seconds), "--threads", str(args.threads)]
    for key, value in extra.items():
        if value is True:
            command.append("--" + key.replace("_", "-"))
        elif value not in (None, False):
            command += ["--" + key.replace("_", "-"), str(value)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_benchmark(args) -> None:
    segment = dict(segment="none" if args.segment is None else args.segment, overlap=args.overlap, batch=args.batch)
    print(f"CPU: {cpu_name()}, {args.threads} threads, torch {torch.__version__}; "
          f"ansray segments {args.segment} s, overlap {args.overlap} s, batch {args.batch}; "
          f"weights {args.weights or 'the fixture (random, official size)'}")
    print(f"{'input':>8} {'reference RTF':>14} {'ansray RTF':>11} {'speed-up':>9} {'ref peak MB':>12} "
          f"{'ansray peak MB':>15} {'SI-SDR dB':>10} {'segment parity':>15}  load (ref / ansray)")
    ref_control = None
    with tempfile.TemporaryDirectory() as tmp:
        for i, seconds in enumerate(args.seconds):
            ref = None
            if seconds <= REFERENCE_MAX_SECONDS:
                saved = f"{tmp}/reference_{seconds}.npy"
                ref = spawn("reference", seconds, args, repeats=args.repeats, save=saved, control=i == 0,
                            weights=args.weights)
                ref_control = ref.get("edge_control_db", ref_control)
            ours = spawn("ansray", seconds, args, repeats=args.repeats if seconds <= 60 else 1,
                         reference=ref and saved, check_segment=i == 0, weights=args.weights, **segment)
            print(
                f"{seconds:>7g}s {fmt(ref, 'rtf', '.3f'):>14} {ours['rtf']:>11.3f} "
                f"{fmt(ref and {'x': ref['rtf'] / ours['rtf']}, 'x', '.2f'):>9} {fmt(ref, 'peak_rss_mb', '.0f'):>12} "
                f"{ours['peak_rss_mb']:>15.0f} {fmt(ours, 'si_sdr_vs_reference_db', '.1f'):>10} "
                f"{fmt(ours, 'segment_parity', '.3f'):>15}  {fmt_load(ref)} / {fmt_load(ours)}",
                flush=True,
            )
        if ref_control is not None:
            weights = "random weights: see edge_control" if args.weights is None else f"weights {args.weights}"
            print(f"control: the reference against itself with 40 ms of zeros at both ends, {args.seconds[0]:g} s input: "
                  f"SI-SDR {ref_control:.1f} dB ({weights})")
        for minutes in args.memory_minutes:
            ours = spawn("ansray", minutes * 60, args, repeats=1, size=args.memory_size, **segment)
            print(f"memory, {minutes:g} min input, {args.memory_size} model: ansray peak RSS {ours['peak_rss_mb']:.0f} MB "
                  f"(model loaded: {ours['baseline_rss_mb']:.0f} MB), RTF {ours['rtf']:.3f}, load {fmt_load(ours)}",
                  flush=True)


def fmt(report: dict | None, key: str, spec: str) -> str:
    return "-" if not report or key not in report else format(report[key], spec)


def fmt_load(report: dict | None) -> str:
    return "-" if not report else "/".join(f"{x:.1f}" for x in report["load"])


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def seconds_or_none(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, nargs="*", default=[4, 30, 600])
    parser.add_argument("--memory-minutes", type=float, nargs="*", default=[60],
                        help="inputs timed once more for peak memory only (the --seconds rows print it too)")
    parser.add_argument("--memory-size", default="official", choices=["official", "small", "tiny"],
                        help="model size of the memory-only rows: a smaller one shows how memory grows with "
                             "input length (signal buffers) in a fraction of the time")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights", help="model dir or checkpoint for the speed rows (default: the fixture's random "
                        "weights at the official size)")
    parser.add_argument("--segment", type=seconds_or_none, default=SegmentOptions.segment_seconds,
                        help="ansray's segment length in seconds, or 'none' for one pass")
    parser.add_argument("--overlap", type=float, default=SegmentOptions.overlap_seconds)
    parser.add_argument("--batch", type=int, default=SegmentOptions.batch_size)
    parser.add_argument("--worker", choices=["reference", "ansray"], help=argparse.SUPPRESS)
    parser.add_argument("--size", default="official", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    parser.add_argument("--check-segment", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--control", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args)))
    else:
        cpu_benchmark(args)


if __name__ == "__main__":
    main()
