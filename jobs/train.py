"""Trains FRCRN on Ray Train with DDP, from scratch or fine-tuned, on pairs or mixtures made on the fly.

python jobs/train.py --train-data URI [--valid-data URI] --storage URI --name RUN
  [--init SOURCE] [--config configuration.json | --model-size official|small|tiny]
  [--num-workers N] [--use-gpu] [--cpus-per-worker F] [--batch-size N] [--segment-seconds S]
  [--epochs N] [--steps-per-epoch N] [--lr F] [--weight-decay F] [--clip-grad-norm F]
  [--precision float32|bfloat16|float16] [--checkpoint-every-steps N] [--max-failures N]
  [--export DIR] [--address ADDR]
python jobs/train.py --clean URI --noise URI [--rir URI] --storage URI --name RUN ...   (mixing on the fly)

Rerunning the same command continues the run from its latest checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys

from ansray import cluster
from ansray.cli import (JobArgumentParser, add_cluster_flags, add_storage_flags, configure_logging, int_range,
                        run_job)
from ansray.data.mix import MixConfig
from ansray.io import read_bytes
from ansray.model import MODEL_SIZES, FRCRNConfig
from ansray.training.checkpoints import export_model
from ansray.precision import PRECISIONS, canonical_precision
from ansray.training.config import LOSS_MODES, SEGMENT_MODES, TrainConfig
from ansray.training.trainer import cpus_per_worker_that_fit, run_training

DEFAULTS = TrainConfig(storage="", name="", train_data="")


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data (pairs, or mixing on the fly)")
    group.add_argument("--train-data", metavar="URI",
                       help="synthesis output, folder of DNS noisy/+clean/ pairs, Parquet shards, or JSONL manifest "
                            "with input_filepath/target_filepath")
    group.add_argument("--valid-data", metavar="URI",
                       help="validation pairs (default: a synthesis output's valid/ split, else 1 in 20 training "
                            "pairs held out)")
    group.add_argument("--clean", action="append", default=[], metavar="URI", help="clean speech to mix on the fly")
    group.add_argument("--noise", action="append", default=[], metavar="URI", help="noise to mix on the fly")
    group.add_argument("--rir", action="append", default=[], metavar="URI", help="room impulse responses (on the fly)")
    group.add_argument("--snr-range", type=int_range, default=(DEFAULTS.mix.snr_lower, DEFAULTS.mix.snr_upper),
                       metavar="LO,HI", help="on-the-fly SNR in dB, integers LO..HI-1 (DNS 2020: 0,40)")
    group.add_argument("--reverb-fraction", type=float, default=None,
                       help="fraction of on-the-fly mixtures reverberated (default: 1 with --rir, as DNS 2021)")
    group.add_argument("--segment-seconds", type=float, default=DEFAULTS.segment_seconds,
                       help="crop length (default %(default)s; ModelScope: 1 s)")
    group.add_argument("--segment-mode", choices=SEGMENT_MODES, default=DEFAULTS.segment_mode,
                       help="fixed: crops from sample 0, remainder dropped (ModelScope); random: a new random "
                            "offset every epoch")
    group.add_argument("--valid-segments", type=int, default=DEFAULTS.valid_segments,
                       help="validation segments (default %(default)s: ModelScope's 200 iterations at batch 12)")
    group.add_argument("--no-quality-metrics", dest="quality_metrics", action="store_false",
                       help="skip PESQ and STOI in validation (they need the eval extra)")


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    which = group.add_mutually_exclusive_group()
    which.add_argument("--config", metavar="JSON", help="a ModelScope configuration.json (its model section)")
    which.add_argument("--model-size", choices=sorted(MODEL_SIZES),
                       help="official (the released architecture, default), small or tiny")
    group.add_argument("--init", metavar="SOURCE",
                       help="weights to fine-tune: the released model dir, any ansray export or checkpoint")


def precision_name(text: str) -> str:
    """argparse type for --precision: a name of `ansray.precision`, aliases made canonical."""
    try:
        return canonical_precision(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_optimization_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("optimisation (defaults: the FRCRN recipe)")
    group.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size,
                       help="per worker (default %(default)s: ModelScope's 12 per GPU)")
    group.add_argument("--epochs", type=int, default=DEFAULTS.epochs,
                       help="default %(default)s: ModelScope's max_epochs")
    group.add_argument("--steps-per-epoch", type=int, default=DEFAULTS.steps_per_epoch,
                       help="default %(default)s: ModelScope's train_iters_per_epoch")
    group.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3, or 1e-4 with --init)")
    group.add_argument("--weight-decay", type=float, default=DEFAULTS.weight_decay, help="default %(default)s, on all "
                       "parameters (ModelScope, ClearerVoice)")
    group.add_argument("--clip-grad-norm", type=float, default=DEFAULTS.clip_grad_norm,
                       help="max gradient norm (default %(default)s: ModelScope, ClearerVoice)")
    group.add_argument("--loss-mode", choices=LOSS_MODES, default=DEFAULTS.loss_mode,
                       help="Mix: mask MSEs minus SI-SNR (default, the released model's); SiSNR: minus SI-SNR plus "
                            "a term pinning the output's gain on the clean speech to 1 (SI-SNR alone is blind to sign "
                            "and scale); SNR: minus the plain SNR; SNR+Spectral: also minus the SNR of power-law compressed "
                            "spectra; SNR+Spectral+Residual: also plus the compressed level of the noise the mask lets "
                            "through (pushes towards more suppression)")
    group.add_argument("--precision", type=precision_name, choices=PRECISIONS, default=DEFAULTS.precision,
                       help="float32 (default), or bfloat16/float16 autocast (float16 on GPU only); the former "
                            "spellings fp32, bf16 and fp16 are accepted and mean the same")
    group.add_argument("--seed", type=int, default=DEFAULTS.seed, help="default %(default)s: ModelScope's")


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run, checkpoints and cluster")
    group.add_argument("--storage", required=True, metavar="URI", help="local folder or s3:// prefix for checkpoints")
    group.add_argument("--name", required=True, help="run name: checkpoints go to STORAGE/NAME")
    group.add_argument("--num-workers", type=int, default=DEFAULTS.num_workers,
                       help="DDP workers (default %(default)s)")
    group.add_argument("--use-gpu", action="store_true")
    group.add_argument("--cpus-per-worker", type=float, default=None,
                       help=f"default {DEFAULTS.cpus_per_worker:g}, or on a local Ray what leaves one CPU for "
                            f"Ray Data to decode audio")
    group.add_argument("--checkpoint-every-steps", type=int, default=DEFAULTS.checkpoint_every_steps,
                       help="also checkpoint every N steps (default %(default)s; always at each epoch end)")
    group.add_argument("--keep-checkpoints", type=int, default=DEFAULTS.keep_checkpoints,
                       help="keep the last N checkpoints (default %(default)s; the best model is kept apart)")
    group.add_argument("--max-failures", type=int, default=DEFAULTS.max_failures,
                       help="restarts from the latest checkpoint after a worker dies "
                            "(default %(default)s; -1: unlimited)")
    group.add_argument("--stop-at-step", type=int, default=None,
                       help="stop this invocation at step N, with a checkpoint; rerun without it to continue")
    group.add_argument("--export", metavar="DIR", help="write the best model as a ModelScope model dir at the end")
    add_storage_flags(group)
    add_cluster_flags(group)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = JobArgumentParser(description=__doc__.splitlines()[0])
    add_data_flags(parser)
    add_model_flags(parser)
    add_optimization_flags(parser)
    add_run_flags(parser)
    return parser.parse_args(argv)


def model_config(args: argparse.Namespace) -> FRCRNConfig | None:
    if args.config:
        return FRCRNConfig.from_json(read_bytes(args.config, args.storage_options).decode("utf-8"))
    if args.model_size:
        return MODEL_SIZES[args.model_size]
    return None  # the released architecture, or whatever --init holds


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    reverb = args.reverb_fraction if args.reverb_fraction is not None else (1.0 if args.rir else 0.0)
    mix = MixConfig(snr_lower=args.snr_range[0], snr_upper=args.snr_range[1], percent_for_adding_reverb=reverb)
    return TrainConfig(
        storage=args.storage, name=args.name, train_data=args.train_data, valid_data=args.valid_data,
        clean=tuple(args.clean), noise=tuple(args.noise), rir=tuple(args.rir), mix=mix,
        model=model_config(args), init=args.init,
        num_workers=args.num_workers, use_gpu=args.use_gpu,
        cpus_per_worker=args.cpus_per_worker if args.cpus_per_worker is not None else DEFAULTS.cpus_per_worker,
        batch_size=args.batch_size, segment_seconds=args.segment_seconds, segment_mode=args.segment_mode,
        epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, lr=args.lr, weight_decay=args.weight_decay,
        clip_grad_norm=args.clip_grad_norm, loss_mode=args.loss_mode, precision=args.precision, seed=args.seed,
        valid_segments=args.valid_segments, quality_metrics=args.quality_metrics,
        checkpoint_every_steps=args.checkpoint_every_steps, keep_checkpoints=args.keep_checkpoints,
        max_failures=args.max_failures, stop_at_step=args.stop_at_step, storage_options=args.storage_options,
    )


def fit_to_this_machine(cfg: TrainConfig, requested: float | None) -> TrainConfig:
    """On a local Ray, which cannot grow, one CPU must stay free for Ray Data or training waits forever:
    fits the workers' CPUs to the machine, or fails at once when --cpus-per-worker leaves none."""
    import ray

    cpus = ray.cluster_resources().get("CPU", 0)
    fits = cpus_per_worker_that_fit(cfg.num_workers, cpus)
    if requested is None and 0 < fits < cfg.cpus_per_worker:
        logging.getLogger("ansray.training").info("--cpus-per-worker %g: %d workers on this machine's %g CPUs, "
                                                  "one left for Ray Data", fits, cfg.num_workers, cpus)
        return dataclasses.replace(cfg, cpus_per_worker=fits)
    if fits <= 0:
        raise SystemExit(f"train.py: error: this machine has {cpus:g} CPUs: training needs one more than its "
                         f"workers take, for Ray Data to decode audio")
    if cfg.cpus_per_worker > fits:
        raise SystemExit(f"train.py: error: --num-workers {cfg.num_workers} x --cpus-per-worker "
                         f"{cfg.cpus_per_worker:g} leave none of this machine's {cpus:g} CPUs for Ray Data to decode "
                         f"audio, and training would wait forever; use --cpus-per-worker {fits:g} or fewer workers")
    return cfg


def main(argv: list[str] | None = None):
    configure_logging()
    args = parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as error:
        raise SystemExit(f"train.py: error: {error}") from None
    cluster.connect(args.address)
    if not cluster.is_remote_cluster(args.address):
        cfg = fit_to_this_machine(cfg, args.cpus_per_worker)
    summary = run_training(cfg)
    metrics = summary.metrics
    print(f"run {summary.run_uri}: step {metrics.get('step')} of {cfg.total_steps}, "
          f"{metrics.get('skipped_steps', 'unknown')} skipped steps")
    print(f"latest checkpoint: {summary.checkpoint}")
    if summary.checkpoint is None or metrics.get("step", -1) < cfg.final_step:
        # Ray's result holds the latest checkpoint's metrics: a run whose state turned non-finite
        # wrote none after that, and must not look like a success.
        raise SystemExit(f"train.py: error: {summary.run_uri}: the run ended without a checkpoint of step "
                         f"{cfg.final_step} (see the errors above)")
    best = summary.best_metrics
    if best and math.isfinite(best.get("valid_si_snr_improvement", math.nan)):
        print(f"best model: {summary.best_model} (epoch {best['epoch']}, "
              f"SI-SNRi {best['valid_si_snr_improvement']:.2f} dB)")
    if args.export:
        source = export_model(summary.run_uri, args.export, storage_options=cfg.storage_options,
                              dest_storage_options=cfg.storage_options)
        print(f"exported {source} to {args.export}")
    return summary


def command(argv: list[str] | None = None) -> int:
    """`main` as a command: its summary is for callers in Python."""
    main(argv)
    return 0


if __name__ == "__main__":
    sys.exit(run_job(command))
