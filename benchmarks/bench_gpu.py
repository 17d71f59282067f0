"""FRCRN on a GPU in one time-boxed run: inference throughput, parity, the reference, training, tuning.

    python benchmarks/bench_gpu.py [--out DIR] [--budget 240]          # on a CUDA machine
    python benchmarks/bench_gpu.py --device cpu --quick --out DIR      # the same code paths, tiny sizes

The parts run in this order, each with a share of --budget seconds; each figure is printed and appended
to DIR/bench_gpu.jsonl as it comes, so a run stopped early keeps what it measured, and the tables are
printed at the end (and written to DIR/bench_gpu.md):
  parity     fp32 with TF32 off, fused and unfused network, against the parity fixture (tolerance 1e-4 of
             max|reference|; printed as the fraction of it used);
  quality    bf16, fp16, bf16 with stage 1 in fp32, and TF32 against fp32 through `enhance` on the speech
             clip plus noise: SI-SDR (bar 30 dB) and the least-squares gain, which checks the level and
             polarity SI-SDR ignores; with the fixture's random weights (official size: chaotic, so low
             figures may be the weights) and the starter model's trained ones (tiny size);
  grid       `enhance_batch` (pinned host copy in, copy back out) in seconds of audio per wall second, at
             fp32 (TF32 off), bf16 and fp16 x batches of 10 s segments, timed with CUDA events (median
             after a warm-up); the network alone on device-resident input; peak GPU memory; TFLOP/s from
             torch's FLOP count of the network;
  reference  ansray/testing/reference_frcrn.py on the device (batch 1, whole files, as ModelScope runs it,
             with torch's default flags and with TF32 off), and ansray's `enhance` on the same files;
  train      samples/s of bench_train.py's plain PyTorch loop at fp32 and bf16 (torch's default flags);
  variants   at bf16 (and fp32) and one batch, against the network alone: cuDNN autotuning, FSMN row-step
             sizes, TF32, stage 1 in fp32, one CUDA graph of the fixed-shape network, pinned host buffers
             with both copies on side streams overlapping compute;
  compile    torch.compile of the UNets in a child process that compiles while the parts above run
             and times after them, within the budget.
Weights: the parity fixture's (official size, random values); --quick times a tiny random model.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ansray.enhancement import enhance
from ansray.metrics.si_sdr import si_sdr
from ansray.allocator import retain_freed_memory
from ansray.model import FRCRN, MODEL_SIZES, FRCRNInference, enhance_batch, inference_model, load_model
from ansray.model.fused import FSMN_CHUNK_ROWS, FSMN_CHUNK_ROWS_DEFAULT
from ansray.model.starter import STARTER_MODEL_DIR
from ansray.precision import ALIASES, AUTOCAST_DTYPES
from ansray.segments import MODEL_HOP, MODEL_RATE
from ansray.testing.parity_fixture import cases
from ansray.testing.reference_frcrn import reference_enhance
from bench_inference import PARITY_TOLERANCE, reference_model, speech_signal
from bench_train import mixtures, plain_loop

# Short labels, as in RESULTS.md's tables, in the grid's order: headline first.
DTYPE_NAMES = {label: ALIASES[label] for label in ("bf16", "fp16", "fp32")}
PRECISIONS = {label: AUTOCAST_DTYPES[name] for label, name in DTYPE_NAMES.items()}
SI_SDR_BAR = 30.0
COMPILE_THREADS = 4  # of the GPU machine's 16 CPUs, for torch.compile beside the parts being timed
# torch's own defaults: cuDNN convolutions may use TF32, matrix products may not.
TORCH_DEFAULT_TF32 = {"matmul": False, "cudnn": True}


@dataclass(frozen=True)
class Sizes:
    model: str  # MODEL_SIZES key of the timed network
    segment_seconds: float
    batches: tuple[int, ...]
    measure_seconds: float  # timed calls per figure: as many as fit in this, at least 2
    parity_cases: tuple[int, ...]
    quality_seconds: float
    reference_seconds: tuple[float, ...]
    train_size: str
    train_pool: int  # distinct training mixtures, cycled
    train_batch: int
    train_steps: int
    variant_batch: int
    overlap_batches: int
    fsmn_rows: tuple[int, ...]


FULL = Sizes(model="official", segment_seconds=10.0, batches=(8, 16, 32, 64), measure_seconds=1.5,
             parity_cases=(1, 2, 3), quality_seconds=13.9, reference_seconds=(4, 30, 120),
             train_size="official", train_pool=32, train_batch=12, train_steps=10,  # bench_train's GPU setting
             variant_batch=32, overlap_batches=4, fsmn_rows=(1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24))
QUICK = Sizes(model="tiny", segment_seconds=1.0, batches=(1, 2), measure_seconds=0.05, parity_cases=(1,),
              quality_seconds=1.0, reference_seconds=(1,), train_size="tiny", train_pool=4, train_batch=2,
              train_steps=1, variant_batch=2, overlap_batches=3, fsmn_rows=(1 << 10, 1 << 12))
# Shares of --budget; a part ends early when its share or the whole budget is spent.
SHARES = {"parity": 0.06, "quality": 0.08, "grid": 0.33, "reference": 0.1, "train": 0.12, "variants": 0.25}


class Recorder:
    """Prints each figure and appends it to DIR/bench_gpu.jsonl at once."""

    def __init__(self, out: Path | None):
        self.rows: list[dict] = []
        self.path = out / "bench_gpu.jsonl" if out else None

    def add(self, part: str, text: str, **figures) -> None:
        row = {"part": part, "text": text, **figures}
        self.rows.append(row)
        print(f"[{part}] {text}", flush=True)
        if self.path:
            with open(self.path, "a") as out:
                out.write(json.dumps(row) + "\n")


@dataclass
class Context:
    device: torch.device
    sizes: Sizes
    record: Recorder
    fixture_model: FRCRN  # official size, fixture weights, unfused, on the device
    fixture_network: FRCRNInference
    timed_model: FRCRN  # the size the throughput parts time
    network: FRCRNInference
    gflop_per_audio_second: float
    args: argparse.Namespace


# ---------------------------------------------------------------- timing and device state


def seconds_of(device: torch.device, run) -> float:
    """Seconds of one `run()`: CUDA events around it on a GPU (the device timeline from before its first
    launch to after its last, host gaps included), else the wall clock."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def median_seconds(device: torch.device, run, measure_seconds: float, warmup: int = 1) -> float:
    """Median of as many timed calls as fit in `measure_seconds` (2 to 20), after `warmup` calls."""
    for _ in range(warmup):
        first = seconds_of(device, run)
    calls = int(min(20, max(2, measure_seconds // max(first, 1e-6))))
    return statistics.median(seconds_of(device, run) for _ in range(calls))


@contextmanager
def flags(tf32: bool | dict = False, cudnn_benchmark: bool = False):
    """TF32 (both kinds, or {"matmul": .., "cudnn": ..}) and cuDNN autotuning for the block, restored after."""
    tf32 = tf32 if isinstance(tf32, dict) else {"matmul": tf32, "cudnn": tf32}
    backends = torch.backends
    saved = (backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32, backends.cudnn.benchmark)
    backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32 = tf32["matmul"], tf32["cudnn"]
    backends.cudnn.benchmark = cudnn_benchmark
    try:
        yield
    finally:
        backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32, backends.cudnn.benchmark = saved


@contextmanager
def fsmn_step_rows(device: torch.device, rows: int | None):
    """The FSMN row-step size on `device` for the block (None: the library's own)."""
    table = FSMN_CHUNK_ROWS
    saved = table.get(device.type)
    if rows is not None:
        table[device.type] = rows
    try:
        yield
    finally:
        if saved is None:
            table.pop(device.type, None)
        else:
            table[device.type] = saved


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 1e9 if device.type == "cuda" else None


def number(x: float) -> str:
    """Whole numbers from 100 up, three significant digits below (the CPU's figures are small)."""
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


def gb_text(gb: float | None) -> str:
    return "-" if gb is None else f"{gb:.1f} GB"


def run_network(network, audio: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    with torch.inference_mode(), torch.autocast(audio.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        return network(audio).wav


def measured(ctx: "Context", part: str, label: str, deadline: float, measure, fsmn_rows: int | None = None,
             **flag_settings):
    """(measure(), peak GPU GB) under `flags(**flag_settings)` and the FSMN step `fsmn_rows`, the peak reset
    first; None, recorded, when the part's time share is spent or the GPU runs out of memory."""
    if time.monotonic() > deadline:
        ctx.record.add(part, f"{label} skipped: time share spent", setting=label, skipped=True)
        return None
    reset_peak(ctx.device)
    try:
        with flags(**flag_settings), fsmn_step_rows(ctx.device, fsmn_rows):
            result = measure()
    except torch.cuda.OutOfMemoryError:
        ctx.record.add(part, f"{label}: out of GPU memory", setting=label, oom=True)
        return None
    return result, peak_gb(ctx.device)


def segment_samples(sizes: Sizes) -> int:
    return int(sizes.segment_seconds * MODEL_RATE) // MODEL_HOP * MODEL_HOP


def segment_batch(sizes: Sizes, batch: int) -> np.ndarray:
    """[batch, segment] rows cut from consecutive stretches of speech plus noise (no two rows alike)."""
    samples = segment_samples(sizes)
    return speech_signal(batch * samples / MODEL_RATE)[: batch * samples].reshape(batch, samples)


def network_flops(network: FRCRNInference, device: torch.device, sizes: Sizes) -> float:
    """Convolution and matrix-product FLOP of the network per second of audio (torch's count, one segment)."""
    audio = torch.from_numpy(segment_batch(sizes, 1)).to(device)
    counter = FlopCounterMode(display=False)
    with counter:
        run_network(network, audio, None)
    return counter.get_total_flops() / sizes.segment_seconds


# ---------------------------------------------------------------- parts


def part_parity(ctx: Context, deadline: float) -> None:
    fixture = cases()
    scale = PARITY_TOLERANCE
    with flags(tf32=False):
        for case in ctx.sizes.parity_cases:
            if time.monotonic() > deadline:
                ctx.record.add("parity", f"case {case} skipped: time share spent", case=case, skipped=True)
                continue
            noisy = torch.from_numpy(fixture[f"case{case}_input"]).to(ctx.device)
            with torch.inference_mode():
                fused = ctx.fixture_network(noisy, stage1=True)
                plain = ctx.fixture_model(noisy)
            pairs = {"fused wav_l2": (fused.wav, "wav_l2"), "fused wav_l1": (fused.wav_l1, "wav_l1"),
                     "fused mask_l2": (fused.mask, "mask_l2"), "unfused wav_l2": (plain.wav_l2, "wav_l2"),
                     "unfused mask_l2": (plain.mask_l2, "mask_l2")}
            used = {}
            for name, (got, key) in pairs.items():
                want = fixture[f"case{case}_{key}"]
                used[name] = float(np.abs(got.float().cpu().numpy() - want).max() / (scale * np.abs(want).max()))
            worst = max(used.values())
            verdict = "within tolerance" if worst <= 1 else f"OVER the tolerance ({worst:.2f}x)"
            ctx.record.add("parity", f"fp32 case {case}: share of the tolerance used: "
                           + ", ".join(f"{k} {v:.3f}" for k, v in used.items()) + f"; {verdict}",
                           case=case, used=used, ok=worst <= 1)


QUALITY_SETTINGS = {  # name: (enhance dtype, first UNet in autocast, TF32)
    "bf16": ("bfloat16", True, False),
    "fp16": ("float16", True, False),
    "bf16, stage 1 in fp32": ("bfloat16", False, False),
    "tf32": ("float32", True, True),
}


def part_quality(ctx: Context, deadline: float) -> None:
    speech = speech_signal(ctx.sizes.quality_seconds)
    starter = inference_model(load_model(str(STARTER_MODEL_DIR), device=ctx.device))
    for label, network in (("starter model (tiny, trained)", starter),
                           ("fixture weights (official size, random)", ctx.fixture_network)):
        with flags(tf32=False):
            strict = enhance(speech, MODEL_RATE, network, batch_size=8, dtype="float32")
        for name, (dtype, stage1, tf32) in QUALITY_SETTINGS.items():
            if time.monotonic() > deadline:
                ctx.record.add("quality", f"{label}, {name} skipped: time share spent", skipped=True)
                continue
            network.stage1_in_autocast = stage1
            try:
                with flags(tf32=tf32):
                    out = enhance(speech, MODEL_RATE, network, batch_size=8, dtype=dtype)
            finally:
                network.stage1_in_autocast = True
            db = float(si_sdr(out, strict))
            gain = float(np.dot(out, strict) / np.dot(strict, strict))  # 1 when level and polarity are kept
            verdict = "meets the bar" if db >= SI_SDR_BAR else f"{SI_SDR_BAR - db:.1f} dB below the bar"
            ctx.record.add("quality", f"{label}: {name} vs fp32 on {len(speech) / MODEL_RATE:.1f} s of speech: "
                           f"SI-SDR {db:.1f} dB ({verdict} of {SI_SDR_BAR:g}), gain {gain:.4f}",
                           weights=label, setting=name, si_sdr_db=db, gain=gain)


def part_grid(ctx: Context, deadline: float) -> None:
    sizes, device = ctx.sizes, ctx.device
    rows = segment_batch(sizes, max(sizes.batches))
    for precision, dtype in PRECISIONS.items():
        for batch in sizes.batches:
            host = np.ascontiguousarray(rows[:batch])
            audio = torch.from_numpy(host).to(device)
            audio_seconds = batch * sizes.segment_seconds

            def both():
                end_to_end = median_seconds(device, lambda: enhance_batch(ctx.network, host, DTYPE_NAMES[precision]),
                                            sizes.measure_seconds)
                return end_to_end, median_seconds(device, lambda: run_network(ctx.network, audio, dtype),
                                                  sizes.measure_seconds)

            result = measured(ctx, "grid", f"{precision} batch {batch}", deadline, both, tf32=False)
            if result is None:
                continue
            (end_to_end, alone), gb = result
            xrt, xrt_alone = audio_seconds / end_to_end, audio_seconds / alone
            tflops = xrt_alone * ctx.gflop_per_audio_second / 1e3
            ctx.record.add("grid", f"{precision} batch {batch}: enhance_batch {number(xrt)}x real time "
                           f"({end_to_end * 1e3:.1f} ms per call), network alone {number(xrt_alone)}x "
                           f"({tflops:.3g} TFLOP/s), peak {gb_text(gb)}",
                           xrt=xrt, xrt_network=xrt_alone, seconds=end_to_end, network_seconds=alone,
                           tflops=tflops, peak_gb=gb, precision=precision, batch=batch)


def part_reference(ctx: Context, deadline: float) -> None:
    device, model = ctx.device, ctx.timed_model
    reference_enhance(model, speech_signal(ctx.sizes.reference_seconds[0]))  # warm-up
    for seconds in ctx.sizes.reference_seconds:
        signal = speech_signal(seconds)
        runs = (("reference (batch 1, whole file), torch's default flags (cuDNN TF32 on)",
                 lambda: reference_enhance(model, signal), TORCH_DEFAULT_TF32),
                ("reference (batch 1, whole file), TF32 off", lambda: reference_enhance(model, signal), False),
                ("ansray enhance fp32, TF32 off, batch 8",
                 lambda: enhance(signal, MODEL_RATE, ctx.network, batch_size=8, dtype="float32"), False),
                ("ansray enhance bf16, batch 8",
                 lambda: enhance(signal, MODEL_RATE, ctx.network, batch_size=8, dtype="bfloat16"), False))
        for label, run, tf32 in runs:
            result = measured(ctx, "reference", f"{label}, {seconds:g} s file", deadline,
                              lambda: median_seconds(device, run, 0.0, warmup=1), tf32=tf32)
            if result is None:
                continue
            wall, gb = result
            ctx.record.add("reference", f"{label}, {seconds:g} s file: {number(seconds / wall)}x real time, "
                           f"peak {gb_text(gb)}", run=label, file_seconds=seconds, xrt=seconds / wall, peak_gb=gb)


def part_train(ctx: Context, deadline: float) -> None:
    sizes, device = ctx.sizes, ctx.device
    noisy, clean = mixtures(sizes.train_pool, 1.0)  # 1 s mixtures, as bench_train makes them
    for precision in ("fp32", "bf16"):
        result = measured(ctx, "train", precision, deadline, lambda: plain_loop(
            sizes.train_size, noisy, clean, batch=sizes.train_batch, steps=sizes.train_steps, warmup=1,
            threads=torch.get_num_threads(), device=device.type, precision=precision), tf32=TORCH_DEFAULT_TF32)
        if result is None:
            continue
        rate, gb = result
        ctx.record.add("train", f"{sizes.train_size} size, {precision}, batch {sizes.train_batch} x 1 s, "
                       f"{sizes.train_steps} steps after 1: {number(rate)} samples/s per GPU, peak {gb_text(gb)}",
                       size=sizes.train_size, precision=precision, samples_per_second=rate, peak_gb=gb)


def captured(network: FRCRNInference, audio: torch.Tensor, dtype: torch.dtype | None):
    """One CUDA graph of the network on `audio`'s shape: run(x) copies x in, replays, returns the output buffer."""
    static_in = audio.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):  # builds the cast weights and cuFFT plans outside the capture
            run_network(network, static_in, dtype)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = run_network(network, static_in, dtype)

    def run(x: torch.Tensor) -> torch.Tensor:
        static_in.copy_(x)
        graph.replay()
        return static_out

    return run, graph


def overlapped(network: FRCRNInference, batches: list[np.ndarray], dtype: str) -> list[np.ndarray]:
    """`enhance_batch` over consecutive batches with both copies on side streams into pinned buffers:
    batch i + 1 goes in, and batch i - 1 comes out, while batch i computes."""
    device = next(network.parameters()).device
    compute, copy_in, copy_out = torch.cuda.current_stream(), torch.cuda.Stream(), torch.cuda.Stream()
    shape = batches[0].shape
    pinned_in = [torch.empty(shape, pin_memory=True) for _ in range(2)]
    pinned_out = [torch.empty(shape, pin_memory=True) for _ in range(2)]
    uploaded, copied_out = [None, None], [None, None]
    cast = AUTOCAST_DTYPES[dtype]

    def upload(i: int):
        slot = i % 2
        if uploaded[slot] is not None:
            uploaded[slot][1].synchronize()  # the pinned buffer's previous copy has left it
        pinned_in[slot].numpy()[:] = batches[i]
        with torch.cuda.stream(copy_in):
            on_device = pinned_in[slot].to(device, non_blocking=True)
            done = torch.cuda.Event()
            done.record(copy_in)
        uploaded[slot] = (on_device, done)

    results = [None] * len(batches)

    def collect(i: int):
        copied_out[i % 2].synchronize()
        results[i] = pinned_out[i % 2].numpy().copy()

    upload(0)
    for i in range(len(batches)):
        on_device, done = uploaded[i % 2]
        compute.wait_event(done)
        on_device.record_stream(compute)
        if i + 1 < len(batches):
            upload(i + 1)
        out = run_network(network, on_device, cast).float()
        if i >= 2:
            collect(i - 2)  # its pinned output buffer is about to be reused
        finished = torch.cuda.Event()
        finished.record(compute)
        with torch.cuda.stream(copy_out):
            copy_out.wait_event(finished)
            pinned_out[i % 2].copy_(out, non_blocking=True)
            out.record_stream(copy_out)
            event = torch.cuda.Event()
            event.record(copy_out)
        copied_out[i % 2] = event
    for i in range(max(0, len(batches) - 2), len(batches)):
        collect(i)
    return results


def part_variants(ctx: Context, deadline: float) -> None:
    sizes, device, network = ctx.sizes, ctx.device, ctx.network
    batch = sizes.variant_batch
    host = segment_batch(sizes, batch)
    audio = torch.from_numpy(host).to(device)
    audio_seconds = batch * sizes.segment_seconds
    baselines: dict[str, float] = {}
    cuda = device.type == "cuda"

    def measure(label: str, run, precision: str, tf32=False, cudnn_benchmark=False, fsmn_rows=None,
                per_call_seconds: float = audio_seconds, **extra) -> float | None:
        try:
            result = measured(ctx, "variants", label, deadline,
                              lambda: median_seconds(device, run, sizes.measure_seconds),
                              fsmn_rows=fsmn_rows, tf32=tf32, cudnn_benchmark=cudnn_benchmark)
        except Exception as error:  # noqa: BLE001 - one failing variant must not cost the others
            traceback.print_exc()
            ctx.record.add("variants", f"{label}: failed ({type(error).__name__}: {str(error)[:200]})",
                           variant=label, failed=True)
            return None
        if result is None:
            return None
        wall, gb = result
        xrt = per_call_seconds / wall
        base = baselines.get(precision)
        versus = f" = {xrt / base:.2f}x the {precision} baseline" if base else ""
        ctx.record.add("variants", f"{label}, {precision}, batch {batch}: {number(xrt)}x real time{versus}, "
                       f"peak {gb_text(gb)}", variant=label, precision=precision, batch=batch, xrt=xrt,
                       ratio=xrt / base if base else None, peak_gb=gb, **extra)
        return xrt

    def alone(dtype):
        return lambda: run_network(network, audio, dtype)

    for precision in ("bf16", "fp32"):
        baselines[precision] = measure("baseline: network alone, cudnn.benchmark off, default FSMN step",
                                       alone(PRECISIONS[precision]), precision)
    bf16 = PRECISIONS["bf16"]
    benchmark_on = measure("cuDNN autotuning (cudnn.benchmark)", alone(bf16), "bf16", cudnn_benchmark=True)
    steps = {}
    default_rows = FSMN_CHUNK_ROWS.get(device.type, FSMN_CHUNK_ROWS_DEFAULT)
    for rows in sizes.fsmn_rows:
        note = " (the default: a repeat of the baseline)" if rows == default_rows else ""
        steps[rows] = measure(f"FSMN step {rows} rows{note}", alone(bf16), "bf16", fsmn_rows=rows, fsmn_rows_value=rows)
    graph_xrt = None
    if cuda:
        try:
            run, graph = captured(network, audio, bf16)
            graph_xrt = measure("CUDA graph of the network", lambda: run(audio), "bf16")
            del run, graph
        except Exception as error:  # noqa: BLE001 - capture can fail on an op that syncs; report and go on
            traceback.print_exc()
            ctx.record.add("variants", f"CUDA graph: capture failed ({type(error).__name__}: {str(error)[:200]})",
                           variant="CUDA graph", failed=True)
        batches = [segment_batch(sizes, batch * sizes.overlap_batches)[i * batch : (i + 1) * batch]
                   for i in range(sizes.overlap_batches)]
        stream_seconds = audio_seconds * len(batches)
        measure(f"enhance_batch over {len(batches)} batches, one after another",
                lambda: [enhance_batch(network, b, "bfloat16") for b in batches], "bf16", per_call_seconds=stream_seconds)
        measure(f"pinned buffers, copies overlapping compute, over {len(batches)} batches",
                lambda: overlapped(network, batches, "bfloat16"), "bf16", per_call_seconds=stream_seconds)
    else:
        ctx.record.add("variants", "CUDA graph and overlapped copies: not on CPU", skipped=True)
    measure("TF32 matrix products and convolutions", alone(None), "fp32", tf32=True)
    measure("cuDNN autotuning (cudnn.benchmark)", alone(None), "fp32", cudnn_benchmark=True)
    network.stage1_in_autocast = False
    try:
        measure("stage 1 in fp32 (TF32 off), stage 2 in bf16", alone(bf16), "bf16")
    finally:
        network.stage1_in_autocast = True
    # The best of the kept-able settings together.
    timed_steps = {rows: x for rows, x in steps.items() if x}
    best_rows = max(timed_steps, key=timed_steps.get) if timed_steps else None
    use_benchmark = bool(benchmark_on and baselines.get("bf16") and benchmark_on > baselines["bf16"])
    label = f"combined: cudnn.benchmark {'on' if use_benchmark else 'off'}, FSMN step {best_rows or 'default'}"
    if graph_xrt:
        try:
            with flags(cudnn_benchmark=use_benchmark), fsmn_step_rows(device, best_rows):
                run, graph = captured(network, audio, bf16)
            measure(label + ", CUDA graph", lambda: run(audio), "bf16", cudnn_benchmark=use_benchmark, fsmn_rows=best_rows)
            del run, graph
        except Exception:  # noqa: BLE001
            traceback.print_exc()
    else:
        measure(label, alone(bf16), "bf16", cudnn_benchmark=use_benchmark, fsmn_rows=best_rows)


class CompileChild:
    """torch.compile of the UNets (bf16, the variants' batch) in a child process, started before the other
    parts so that compiling, CPU work on COMPILE_THREADS threads, overlaps them. It runs the network once
    eagerly as it starts and once compiled when compiling ends; it times eager and compiled calls only
    after `finish` releases it, so that its GPU work stays out of the other parts' figures."""

    def __init__(self, args: argparse.Namespace, deadline: float):
        """`deadline` (time.time()) ends the child wherever it is, as does the end of this process."""
        self.dir = Path(tempfile.mkdtemp(prefix="bench-gpu-compile-"))
        self.release = self.dir / "release"
        command = [sys.executable, __file__, "--worker", "compile", "--device", args.device,
                   "--release", str(self.release), "--deadline", str(deadline)] + (["--quick"] if args.quick else [])
        env = os.environ | {"TORCHINDUCTOR_COMPILE_THREADS": str(COMPILE_THREADS)}
        self.started = time.monotonic()
        with open(self.dir / "stderr", "w") as stderr:
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)

    def finish(self, record: Recorder, seconds: float) -> None:
        """Releases the child to time, waits at most `seconds` for it, and records what it says."""
        self.release.touch()
        try:
            out, _ = self.process.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        result = lines[-1] if lines else {}
        since = time.monotonic() - self.started
        if "xrt" in result:
            record.add("compile", f"torch.compile of the two UNets (default mode, static shapes), bf16, "
                       f"batch {result['batch']}: "
                       f"{result['compile_s']:.0f} s to compile beside the other parts; {number(result['xrt'])}x "
                       f"real time against {number(result['xrt_eager'])}x eager in the same process "
                       f"({result['xrt'] / result['xrt_eager']:.2f}x)", **result)
        elif self.process.returncode > 0:
            error = (self.dir / "stderr").read_text().strip().splitlines() or ["(no output)"]
            print("\n".join(error[-40:]), flush=True)  # into this run's log
            last = next((line for line in reversed(error) if "Error" in line), error[-1])
            record.add("compile", f"torch.compile failed (exit {self.process.returncode}): {last.strip()[:300]}",
                       failed=True)
        else:
            state = "compiled, not timed" if "compile_s" in result else "still compiling"
            record.add("compile", f"torch.compile: {state} {since:.0f} s after it started; stopped",
                       timed_out=True, **result)
        shutil.rmtree(self.dir, ignore_errors=True)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def exit_with_parent(deadline: float) -> None:
    """Ends this process, wherever it is (compiling, say), once its parent has gone or at `deadline`: a
    child left behind would hold CPUs and GPU memory through the runs that follow."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent and time.time() < deadline:
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def compile_worker(args) -> None:
    exit_with_parent(args.deadline)
    device = torch.device(args.device)
    sizes = QUICK if args.quick else FULL
    model = timed_model(sizes, device)
    eager, compiled = FRCRNInference.from_model(model), FRCRNInference.from_model(model)
    audio = torch.from_numpy(segment_batch(sizes, sizes.variant_batch)).to(device)
    dtype = PRECISIONS["bf16"]
    audio_seconds = sizes.variant_batch * sizes.segment_seconds
    for network in (eager, compiled):
        run_network(network, audio, dtype)  # builds the bf16 UNets, which are then compiled in place
    # The two UNets, where the arithmetic is: the whole network failed at run time in inductor (torch
    # 2.13, CPU: a size assertion), and with automatic dynamic shapes at compile time ("Invalid ranges").
    # With static shapes each layer shape compiles its own frame: dozens of them.
    from torch import _dynamo

    for limit in ("recompile_limit", "cache_size_limit"):
        if hasattr(_dynamo.config, limit):
            setattr(_dynamo.config, limit, 128)
    for unet in set(compiled.unets(dtype)):
        unet.compile(dynamic=False)
    started = time.perf_counter()
    run_network(compiled, audio, dtype)
    if device.type == "cuda":
        torch.cuda.synchronize()
    compile_s = time.perf_counter() - started
    print(json.dumps({"batch": sizes.variant_batch, "compile_s": compile_s}), flush=True)
    release = Path(args.release)
    while not release.exists():
        time.sleep(0.2)
    eager_s = median_seconds(device, lambda: run_network(eager, audio, dtype), sizes.measure_seconds)
    compiled_s = median_seconds(device, lambda: run_network(compiled, audio, dtype), sizes.measure_seconds)
    print(json.dumps({"batch": sizes.variant_batch, "compile_s": compile_s, "xrt": audio_seconds / compiled_s,
                      "xrt_eager": audio_seconds / eager_s}), flush=True)


# ---------------------------------------------------------------- report


def tables(rows: list[dict], header: str) -> str:
    grid = [r for r in rows if r["part"] == "grid" and "xrt" in r]
    lines = [header, "", "| precision | batch | enhance_batch x real time | network alone x real time | TFLOP/s "
             "| GPU peak |", "|---|---:|---:|---:|---:|---:|"]
    for r in grid:
        lines.append(f"| {r['precision']} | {r['batch']} | {number(r['xrt'])} | {number(r['xrt_network'])} | "
                     f"{r['tflops']:.3g} | {gb_text(r['peak_gb'])} |")
    for part in ("setup", "parity", "quality", "reference", "train", "variants", "compile", "error"):
        texts = [r["text"] for r in rows if r["part"] == part]
        if texts:
            lines += ["", f"{part}:"] + [f"- {t}" for t in texts]
    return "\n".join(lines) + "\n"


def timed_model(sizes: Sizes, device: torch.device) -> FRCRN:
    if sizes.model == "official":
        return reference_model(str(device))
    torch.manual_seed(0)
    return FRCRN(MODEL_SIZES[sizes.model]).eval().to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="tiny model, 1 s segments, small batches (a CPU check)")
    parser.add_argument("--budget", type=float, default=240, help="seconds for all parts together (default: %(default)s)")
    parser.add_argument("--compile-timeout", type=float, default=60,
                        help="most seconds to wait for the torch.compile child after the other parts, within the "
                             "budget (default: %(default)s)")
    parser.add_argument("--parts", default="parity,quality,grid,reference,train,variants,compile",
                        help="comma-separated parts to run (default: all)")
    parser.add_argument("--out", type=Path, help="directory for bench_gpu.jsonl and bench_gpu.md")
    parser.add_argument("--worker", choices=["compile"], help=argparse.SUPPRESS)
    parser.add_argument("--release", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        compile_worker(args)
        return
    started = time.monotonic()
    wanted = args.parts.split(",")
    compile_child = CompileChild(args, time.time() + args.budget + 30) if "compile" in wanted else None
    try:
        run_parts(args, wanted, started, compile_child)
    finally:
        if compile_child:
            compile_child.stop()


def run_parts(args: argparse.Namespace, wanted: list[str], started: float, compile_child: CompileChild | None) -> None:
    end = started + args.budget
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    sizes = QUICK if args.quick else FULL
    record = Recorder(args.out)
    if device.type == "cuda":
        where = (f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
                 f"cuDNN {torch.backends.cudnn.version()}")
    else:
        where = f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
        retain_freed_memory()  # as the job's actors do on CPU
    print(f"bench_gpu: {where}; budget {args.budget:g} s; timed model {sizes.model}", flush=True)

    fixture_model = reference_model(str(device))
    fixture_network = FRCRNInference.from_model(fixture_model)
    model = fixture_model if sizes.model == "official" else timed_model(sizes, device)
    network = fixture_network if model is fixture_model else FRCRNInference.from_model(model)
    gflop = network_flops(network, device, sizes) / 1e9
    record.add("setup", f"{where}; network arithmetic {gflop:.1f} GFLOP per second of audio "
               f"(convolutions and matrix products, torch's count)", gflop_per_audio_second=gflop)
    ctx = Context(device, sizes, record, fixture_model, fixture_network, model, network, gflop, args)

    parts = {"parity": part_parity, "quality": part_quality, "grid": part_grid, "reference": part_reference,
             "train": part_train, "variants": part_variants}
    for name, part in parts.items():
        if name not in wanted:
            continue
        now = time.monotonic()
        if now >= end:
            record.add(name, "skipped: budget spent", skipped=True)
            continue
        part_started = now
        try:
            part(ctx, min(end, now + SHARES[name] * args.budget))
        except Exception as error:  # noqa: BLE001 - a lease is short: report, and go on to the next part
            traceback.print_exc()
            record.add("error", f"{name} failed: {type(error).__name__}: {str(error)[:300]}", failed_part=name)
        print(f"[{name}] {time.monotonic() - part_started:.1f} s", flush=True)
        reset_peak(device)
    if compile_child:
        compile_child.finish(record, max(15.0, min(args.compile_timeout, end - time.monotonic())))
    report = tables(record.rows, f"bench_gpu: {where}; {time.monotonic() - started:.0f} s")
    print("\n" + report, flush=True)
    if args.out:
        (args.out / "bench_gpu.md").write_text(report)


if __name__ == "__main__":
    main()
