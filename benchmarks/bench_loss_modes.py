"""Which loss keeps the output's sign and level: short training runs, one per loss mode, scored on
held-out noisy/clean pairs for the least-squares gain of the output onto the clean speech (must be
positive), the output's level against the clean speech's (within 1 dB) and SI-SNR improvement.

Every mode sees the same mixtures, made on the fly by the synthesis job's `synthesize_mixture` (1 s,
seeded), in a plain loop of the training job's `train_step`; scoring runs `ansray.enhance`, the
path users get (level normalised to -25 dBFS and restored).

python benchmarks/bench_loss_modes.py --clean DIR --noise DIR [--noise DIR ...] --test DIR
  [--modes SiSNR@0,SiSNR,Mix,SNR] [--size tiny] [--steps 300] [--batch-size 6] [--threads 2]
  [--snr-range -5,25] [--seed 0] [--test-every 1] [--results FILE.jsonl]

python benchmarks/bench_loss_modes.py --model SOURCE --test DIR    (scores a trained model, no training)

--test is a synthesis output (or any folder of DNS noisy/ + clean/ pairs). A mode written MODE@W sets
SiSNR's gain-term weight to W (SiSNR@0 is the sign- and scale-blind SI-SNR of starter model v1).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from pathlib import Path

import numpy as np
import torch

import ansray.model.loss as loss_module
from ansray.data.mix import MixConfig
from ansray.data.pairs import read_pair
from ansray.data.synthesis import SynthesisConfig, plan_synthesis, synthesize_mixture
from ansray.enhancement import enhance
from ansray.metrics import level_difference_db, projection_gain, si_sdr
from ansray.model import FRCRN, MODEL_SIZES, inference_model, load_model
from ansray.training.datasets import find_pairs
from ansray.training.step import StepSettings, freeze_unused_parameters, train_step


def parse_mode(text: str) -> tuple[str, float]:
    mode, _, weight = text.partition("@")
    return mode, float(weight) if weight else loss_module.GAIN_WEIGHT


def batches(plan, batch_size: int, steps: int, seed: int):
    """[B, T] (noisy, clean) float32 tensors: mixture indices drawn from `seed`, the same for every mode."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        noisy, clean = [], []
        while len(noisy) < batch_size:
            outcome = synthesize_mixture(plan, int(rng.integers(2**62)))
            if outcome.mixture is not None:
                noisy.append(outcome.mixture.noisy)
                clean.append(outcome.mixture.clean)
        yield torch.from_numpy(np.stack(noisy)), torch.from_numpy(np.stack(clean))


def generated_noise_fileids(test: str) -> set[int]:
    """Fileids of the test mixtures whose noise came from a `noise-generated` folder (ansray's
    generated noises), read from the synthesis manifest; empty without one."""
    manifest = Path(test) / "train.jsonl"
    if not manifest.exists():
        return set()
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    return {row["fileid"] for row in rows if any("noise-generated" in s["uri"] for s in row["noise_sources"])}


def fileid_of(uri: str) -> int:
    return int(re.search(r"fileid_(\d+)", uri).group(1))


def score(model: FRCRN, pairs, generated: set[int]) -> dict[str, float]:
    """Means and extremes over the test pairs of gain, level difference (dB) and SI-SNR improvement,
    and the improvement on real and on generated noises apart."""
    network = inference_model(model.eval())  # fused once, not once per pair
    gains, levels, improvements, is_generated = [], [], [], []
    for ref in pairs:
        is_generated.append(fileid_of(ref.noisy) in generated)
        noisy, clean = read_pair(ref)
        enhanced = enhance(noisy, 16000, network)
        gains.append(projection_gain(enhanced, clean))
        levels.append(level_difference_db(enhanced, clean))
        improvements.append(si_sdr(enhanced, clean) - si_sdr(noisy, clean))
    gains, levels, improvements = (np.array(v, dtype=np.float64) for v in (gains, levels, improvements))
    is_generated = np.array(is_generated, dtype=bool)
    return {
        "si_snri_real_noise": float(np.mean(improvements[~is_generated])),
        "si_snri_generated_noise": float(np.mean(improvements[is_generated])) if is_generated.any() else math.nan,
        "pairs": len(gains),
        "gain_mean": float(np.mean(gains)), "gain_min": float(np.min(gains)),
        "gain_positive_fraction": float(np.mean(gains > 0)),
        "level_db_mean": float(np.mean(levels)), "level_db_median": float(np.median(levels)),
        "level_within_1db_fraction": float(np.mean(np.abs(levels) <= 1.0)),
        "si_snri_mean": float(np.mean(improvements)), "si_snri_median": float(np.median(improvements)),
    }


def run(mode_text: str, args: argparse.Namespace, plan, pairs, generated: set[int]) -> dict:
    mode, weight = parse_mode(mode_text)
    loss_module.GAIN_WEIGHT = weight
    torch.manual_seed(args.seed)
    model = FRCRN(MODEL_SIZES[args.size])
    freeze_unused_parameters(model)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=1e-5)
    settings = StepSettings(loss_mode=mode)
    before = score(model, pairs, generated)
    started = time.perf_counter()
    losses = []
    for step, (noisy, clean) in enumerate(batches(plan, args.batch_size, args.steps, args.seed), 1):
        result = train_step(model, optimizer, noisy, clean, settings)
        losses.append(-result.sisnr)
        if step % 50 == 0:
            print(f"  {mode_text} step {step}: train SI-SNR {np.mean(losses[-50:]):.2f} dB", flush=True)
    seconds = time.perf_counter() - started
    after = score(model, pairs, generated)
    return {"mode": mode_text, "size": args.size, "steps": args.steps, "batch_size": args.batch_size,
            "noise": args.noise, "train_seconds": round(seconds, 1), "init_gain_mean": before["gain_mean"],
            **after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="append", default=[])
    parser.add_argument("--noise", action="append", default=[])
    parser.add_argument("--model", help="score this model (anything load_model reads) instead of training")
    parser.add_argument("--test", required=True, help="held-out noisy/clean pairs")
    parser.add_argument("--modes", default="SiSNR@0,SiSNR,Mix,SNR")
    parser.add_argument("--size", default="tiny", choices=sorted(MODEL_SIZES))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--snr-range", default="-5,25")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-every", type=int, default=1, help="score every N-th test pair only")
    parser.add_argument("--results", help="append one JSON line per mode here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pairs = find_pairs(args.test).pairs[:: args.test_every]
    generated = generated_noise_fileids(args.test)
    if args.model:
        row = score(load_model(args.model), pairs, generated)
        print(json.dumps({"model": args.model, **row}, indent=1))
        return
    if not args.clean or not args.noise:
        parser.error("training needs --clean and --noise (or give --model to score a trained model)")
    low, high = (int(v) for v in args.snr_range.split(","))
    mix = MixConfig(audio_length=1.0, snr_lower=low, snr_upper=high)
    plan = plan_synthesis(SynthesisConfig(clean=tuple(args.clean), noise=tuple(args.noise), output="(in memory)",
                                          count=1, seed=args.seed, mix=mix))
    print("| mode | steps x batch | train s | gain mean (min) | gain > 0 | level dB mean (median) | "
          "within 1 dB | SI-SNRi mean (median) | SI-SNRi real / generated noise | gain at init |")
    print("|---|---|---:|---|---:|---|---:|---|---|---:|")
    for mode_text in args.modes.split(","):
        row = run(mode_text, args, plan, pairs, generated)
        if args.results:
            with open(args.results, "a", encoding="utf-8") as results:
                results.write(json.dumps(row) + "\n")
        print(f"| {row['mode']} | {row['steps']} x {row['batch_size']} | {row['train_seconds']:.0f} | "
              f"{row['gain_mean']:.2f} ({row['gain_min']:.2f}) | {row['gain_positive_fraction']:.0%} | "
              f"{row['level_db_mean']:+.2f} ({row['level_db_median']:+.2f}) | {row['level_within_1db_fraction']:.0%} | "
              f"{row['si_snri_mean']:.2f} ({row['si_snri_median']:.2f}) | "
              f"{row['si_snri_real_noise']:.2f} / {row['si_snri_generated_noise']:.2f} | {row['init_gain_mean']:.2f} |", flush=True)
        assert math.isfinite(row["gain_mean"])


if __name__ == "__main__":
    main()
