"""Can on-the-fly mixing feed a GPU? One-second training mixtures per second per CPU core, made as
jobs/train.py makes them (`synthesize_mixture` in Ray Data tasks), from the given sources.

Prints (1) the rate of `synthesize_mixture` in this process on one core, and (2) the rate of the
training job's own Ray Data stream (`build_datasets(...)["train"]`) on a local Ray with --cpus CPUs,
start-up excluded, and the cores a training rate of --need samples/s would take.

python benchmarks/bench_mixing_rate.py --clean DIR --noise DIR [--noise DIR ...] [--cpus 2] [--rows 3000]
  [--need 300]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def in_process_rate(plan, count: int) -> float:
    from ansray.data.synthesis import synthesize_mixture

    for index in range(5):  # warm the decoders' caches
        synthesize_mixture(plan, index)
    started = time.perf_counter()
    for index in range(count):
        synthesize_mixture(plan, 1000 + index)
    return count / (time.perf_counter() - started)


def ray_data_rate(cfg, cpus: int, rows: int) -> float:
    import ray

    from ansray.training.datasets import build_datasets

    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        train = build_datasets(cfg)["train"]
        seen, started = 0, None
        for batch in train.iter_batches(batch_size=64, batch_format="numpy"):
            if started is None:  # the first batch carries the pipeline's start-up
                started = time.perf_counter()
                continue
            seen += len(batch["noisy"])
            if seen >= rows:
                break
        return seen / (time.perf_counter() - started)
    finally:
        ray.shutdown()


def main() -> None:
    from ansray.data.mix import MixConfig
    from ansray.training.config import TrainConfig
    from ansray.training.datasets import mixing_plan

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="append", required=True)
    parser.add_argument("--noise", action="append", required=True)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--single-core-count", type=int, default=300)
    parser.add_argument("--need", type=float, default=300.0, help="training samples/s to feed")
    args = parser.parse_args()
    cfg = TrainConfig(storage="/tmp/unused", name="bench", clean=tuple(args.clean), noise=tuple(args.noise),
                      mix=MixConfig(snr_lower=-5, snr_upper=25), segment_seconds=1.0, batch_size=32,
                      steps_per_epoch=max(1, args.rows // 32 + 4), valid_segments=32)
    one_core = in_process_rate(mixing_plan(cfg, cfg.seed), args.single_core_count)
    print(f"in process, one core: {one_core:.0f} mixtures/s (1 s each)")
    stream = ray_data_rate(cfg, args.cpus, args.rows)
    per_core = stream / args.cpus
    print(f"Ray Data stream on {args.cpus} CPUs: {stream:.0f} mixtures/s, {per_core:.0f} per CPU")
    print(f"feeding {args.need:.0f} samples/s takes {int(np.ceil(args.need / per_core))} CPUs at that rate")


if __name__ == "__main__":
    main()
