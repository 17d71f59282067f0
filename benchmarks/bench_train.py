"""Training throughput: samples/s per worker of FRCRN's training step through Ray Train (the job's
own `train_loop_per_worker`, data through Ray Data and `get_dataset_shard`), against the same
`train_step` in a plain PyTorch loop without Ray. Target (issue 6): Ray overhead <= 10%.

Both sides train on the same in-memory synthetic mixtures, so decoding is left out of both and the
difference is what Ray Train, Ray Data iteration and (with several workers) DDP cost.

Usage: python benchmarks/bench_train.py [--sizes official,small] [--batch-size 2] [--segment-seconds 1]
         [--steps 3] [--threads 2] [--precisions float32[,bfloat16]] [--use-gpu] [--workers 1[,2,...]]
On a GPU: --use-gpu --batch-size 12 --precisions float32,bfloat16 --workers 1,<gpus>.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

from ansray.data.mix import MixConfig, mix, mixture_rng
from ansray.data.synthetic import synthetic_noise, synthetic_speech
from ansray.model import FRCRN, MODEL_SIZES
from ansray.training.config import TrainConfig
from ansray.training.step import StepSettings, freeze_unused_parameters, train_step

POOL = 32  # distinct segments, cycled


def mixtures(count: int, seconds: float, sample_rate: int = 16000) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean) [count, T] float32 DNS-style mixtures of synthetic speech and noise."""
    cfg = MixConfig(audio_length=seconds, snr_lower=-5, snr_upper=20)
    noisy, clean = [], []
    for index in range(count):
        rng = mixture_rng(0, index)
        speech = synthetic_speech(rng, seconds, sample_rate)
        noise = synthetic_noise(rng, seconds, sample_rate, colour=("white", "pink", "brown")[index % 3])
        y, s, _, _ = mix(speech, noise, rng, cfg)
        noisy.append(y)
        clean.append(s)
    return np.stack(noisy), np.stack(clean)


def plain_loop(size: str, noisy: np.ndarray, clean: np.ndarray, *, batch: int, steps: int, warmup: int,
               threads: int, device: str, precision: str) -> float:
    """samples/s of `train_step` in a bare loop: model, Adam, batches already in memory."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = FRCRN(MODEL_SIZES[size]).to(device)
    freeze_unused_parameters(model)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=1e-5)
    settings = StepSettings(precision=precision)
    x, y = torch.from_numpy(noisy).to(device), torch.from_numpy(clean).to(device)
    started = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            synchronize(device)
            started = time.perf_counter()
        rows = [(step * batch + i) % len(x) for i in range(batch)]
        train_step(model, optimizer, x[rows], y[rows], settings)
    synchronize(device)
    return batch * steps / (time.perf_counter() - started)


def ray_loop(size: str, noisy: np.ndarray, clean: np.ndarray, *, batch: int, steps: int, threads: int,
             workers: int, use_gpu: bool, precision: str, seconds: float) -> float:
    """samples/s per worker of the job's training loop on Ray Train: two epochs of `steps` steps;
    the second epoch's throughput (the loop meters the steps, data included, and leaves out
    validation and checkpoints) is the figure."""
    import ray.data
    from ray.train.torch import TorchTrainer

    from ansray.training.loop import train_loop_per_worker
    from ansray.training.trainer import run_config, scaling_config

    # One pass long enough for both epochs: a pass that ends every few steps would time Ray Data
    # starting new passes, which a real training set does once in thousands of steps.
    rows = [{"noisy": noisy[i % len(noisy)], "clean": clean[i % len(clean)]}
            for i in range(batch * workers * (2 * steps + 2))]
    datasets = {"train": ray.data.from_items(rows).materialize(),
                "valid": ray.data.from_items(rows[: batch * workers]).materialize()}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as storage:
        cfg = TrainConfig(storage=storage, name=f"{size}-{workers}-{precision}", train_data="(in memory)",
                          model=MODEL_SIZES[size], num_workers=workers, use_gpu=use_gpu, cpus_per_worker=threads,
                          batch_size=batch, segment_seconds=seconds, epochs=2, steps_per_epoch=steps,
                          precision=precision, quality_metrics=False, valid_segments=batch * workers,
                          checkpoint_every_steps=10 * steps, keep_checkpoints=1, max_failures=0)
        trainer = TorchTrainer(train_loop_per_worker, train_loop_config={"config": cfg.to_dict()},
                               scaling_config=scaling_config(cfg), run_config=run_config(cfg), datasets=datasets)
        result = trainer.fit()
    return float(result.metrics["samples_per_second"])


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="official,small")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--segment-seconds", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=3, help="timed steps (Ray: per epoch, after a warm-up epoch)")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="CPU threads per worker")
    parser.add_argument("--precisions", default="float32")
    parser.add_argument("--workers", default="1", help="comma-separated worker counts for Ray")
    parser.add_argument("--use-gpu", action="store_true")
    args = parser.parse_args()

    import ray

    workers = [int(w) for w in args.workers.split(",")]
    device = "cuda" if args.use_gpu else "cpu"
    ray.init(address="local", num_cpus=max(workers) * args.threads, num_gpus=max(workers) if args.use_gpu else 0,
             logging_level="WARNING")
    noisy, clean = mixtures(POOL, args.segment_seconds)
    where = torch.cuda.get_device_name() if args.use_gpu else f"CPU, {args.threads} threads per worker"
    print(f"FRCRN training step, batch {args.batch_size} x {args.segment_seconds:g} s, {where}")
    print(f"{'size':9} {'precision':9} {'loop':14} {'workers':>7} {'samples/s/worker':>17} {'vs plain':>9}")
    for size in args.sizes.split(","):
        for precision in args.precisions.split(","):
            plain = plain_loop(size, noisy, clean, batch=args.batch_size, steps=args.steps, warmup=1,
                               threads=args.threads, device=device, precision=precision)
            print(f"{size:9} {precision:9} {'plain PyTorch':14} {1:>7} {plain:>17.2f} {'':>9}", flush=True)
            for count in workers:
                ray_rate = ray_loop(size, noisy, clean, batch=args.batch_size, steps=args.steps,
                                    threads=args.threads, workers=count, use_gpu=args.use_gpu,
                                    precision=precision, seconds=args.segment_seconds)
                change = (ray_rate / plain - 1) * 100
                print(f"{size:9} {precision:9} {'Ray Train':14} {count:>7} {ray_rate:>17.2f} {change:>+8.1f}%",
                      flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
