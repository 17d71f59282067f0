"""Throughput of DNS-style synthesis: hours of mixtures generated per CPU-core-hour.

Makes a synthetic corpus in a temporary folder, then measures (1) one core in process, without Ray,
and (2) the Ray Data job on `--workers` local workers, start-up and planning included.

python benchmarks/bench_synthesize.py [--count 96] [--workers N] [--layout dns|shards] [--reverb]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
import soundfile as sf

from ansray.data.layouts import write_dns_mixture
from ansray.data.mix import MixConfig
from ansray.data.rir import synthetic_rir
from ansray.data.synthesis import SynthesisConfig, plan_synthesis, run_synthesis, synthesize_mixture
from ansray.data.synthetic import NOISE_COLOURS, synthetic_noise, synthetic_speech

SR = 16000


def make_corpus(root: Path, seed: int = 0) -> None:
    """40 speech-like files of 4-14 s, 8 noise files of 20 s, 8 RIRs with T60 0.3-1.2 s."""
    rng = np.random.default_rng(seed)
    for folder in ("clean", "noise", "rir"):
        (root / folder).mkdir(parents=True)
    for i in range(40):
        sf.write(root / f"clean/utt{i:03d}.wav", synthetic_speech(rng, rng.uniform(4, 14), SR), SR, subtype="PCM_16")
    for i in range(8):
        noise = synthetic_noise(rng, 20.0, SR, NOISE_COLOURS[i % len(NOISE_COLOURS)])
        sf.write(root / f"noise/noise{i}.flac", noise, SR)
    for i, t60 in enumerate(np.linspace(0.3, 1.2, 8)):
        sf.write(root / f"rir/rir{i}.wav", 0.9 * synthetic_rir(rng, t60, SR), SR, subtype="FLOAT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=96, help="30 s mixtures for the Ray run")
    parser.add_argument("--single-core-count", type=int, default=24, help="30 s mixtures for the in-process run")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--layout", choices=("dns", "shards"), default="dns")
    parser.add_argument("--reverb", action="store_true", help="reverberate every clip (ICASSP 2021 style)")
    args = parser.parse_args()

    mix = MixConfig.icassp2021() if args.reverb else MixConfig()
    with tempfile.TemporaryDirectory(prefix="bench-synthesize-") as folder:
        root = Path(folder)
        make_corpus(root)

        def config(output: str, count: int) -> SynthesisConfig:
            return SynthesisConfig(clean=(str(root / "clean"),), noise=(str(root / "noise"),),
                                   rir=(str(root / "rir"),), output=str(root / output), count=count,
                                   mix=mix, layout=args.layout)

        cfg = config("single", args.single_core_count)
        plan = plan_synthesis(cfg)
        started = time.perf_counter()
        for index in range(cfg.mixture_count):
            write_dns_mixture(cfg.output, synthesize_mixture(plan, index).mixture)
        seconds = time.perf_counter() - started
        hours = cfg.mixture_count * mix.audio_length / 3600
        print(f"one core, in process (dns layout): {hours / (seconds / 3600):.0f} h of mixtures per core-hour "
              f"({seconds / cfg.mixture_count * 1000:.0f} ms per 30 s mixture, reverb={args.reverb})")

        ray.init(address="local", num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        summary = run_synthesis(config("ray", args.count), workers=args.workers)
        core_hours = summary.seconds * args.workers / 3600
        print(f"Ray Data job, {args.workers} workers, {args.layout} layout: {summary.hours / core_hours:.0f} h of "
              f"mixtures per core-hour ({summary.hours:.2f} h in {summary.seconds:.1f} s, start-up included)")
        ray.shutdown()


if __name__ == "__main__":
    main()
