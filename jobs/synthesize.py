"""Generates a DNS Challenge-style noisy/clean training set on Ray Data.

python jobs/synthesize.py --clean URI [--clean URI ...] --noise URI [--rir URI] --output URI
  --hours H | --count N [--seed N] [--audio-length S] [--snr-range LO,HI] [--level-range LO,HI]
  [--reverb-fraction F] [--layout dns|shards] [--valid-fraction F] [--address ADDR]
"""

from __future__ import annotations

import argparse
import sys

from ansray import cluster
from ansray.cli import (JobArgumentParser, add_cluster_flags, add_storage_flags, configure_logging, float_range,
                        int_range, run_job)
from ansray.data.layouts import LAYOUTS, SHARD_ENCODINGS
from ansray.data.mix import REVERB_TARGETS, MixConfig
from ansray.data.synthesis import SynthesisConfig, run_synthesis


def add_source_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sources and output")
    group.add_argument("--clean", action="append", required=True, metavar="URI",
                       help="clean speech: folder, glob, manifest or file (repeatable)")
    group.add_argument("--noise", action="append", required=True, metavar="URI", help="noise (repeatable)")
    group.add_argument("--rir", action="append", default=[], metavar="URI", help="room impulse responses (repeatable)")
    group.add_argument("--output", required=True, metavar="URI", help="folder or bucket prefix to write to")
    size = group.add_mutually_exclusive_group(required=True)
    size.add_argument("--hours", type=float, help="hours of mixtures to generate")
    size.add_argument("--count", type=int, help="number of mixtures to generate")
    group.add_argument("--layout", choices=LAYOUTS, default="dns")
    group.add_argument("--valid-fraction", type=float, default=0.0, help="fraction of mixtures in valid/")
    group.add_argument("--shard-mb", type=float, default=256.0, help="target Parquet shard size (shards layout)")
    group.add_argument("--shard-encoding", choices=SHARD_ENCODINGS, default="flac")


def add_mix_flags(parser: argparse.ArgumentParser) -> None:
    defaults = MixConfig()
    group = parser.add_argument_group("mixing (DNS Challenge semantics; defaults: Interspeech 2020)")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--audio-length", type=float, default=defaults.audio_length, help="clip length, seconds")
    group.add_argument("--snr-range", type=int_range, default=(defaults.snr_lower, defaults.snr_upper),
                       metavar="LO,HI", help="SNR in dB, integers drawn from LO..HI-1")
    group.add_argument("--snr-levels", type=int, default=None,
                       help="draw the SNR from this many evenly spaced levels from LO to HI instead")
    group.add_argument("--level-range", type=int_range,
                       default=(defaults.target_level_lower, defaults.target_level_upper),
                       metavar="LO,HI", help="mixture level in dBFS, integers drawn from LO..HI-1")
    group.add_argument("--segmental-snr", action="store_true",
                       help="measure the SNR over active noise windows (ICASSP 2021 mixer)")
    group.add_argument("--reverb-fraction", type=float, default=defaults.percent_for_adding_reverb,
                       help="fraction of clean clips convolved with a random RIR")
    group.add_argument("--reverb-target", choices=REVERB_TARGETS, default=defaults.reverb_target,
                       help="clean target of reverberant mixtures (DNS 2021 writes the reverberant one)")
    group.add_argument("--rir-t60-range", type=float_range, default=(0.3, 1.3), metavar="LO,HI",
                       help="keep RIRs whose T60 lies in this range, seconds")


def add_ray_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("execution")
    group.add_argument("--workers", type=int, default=None, help="actor pool size (default: all CPUs)")
    add_storage_flags(group)
    add_cluster_flags(group)


def config_from_args(args: argparse.Namespace) -> SynthesisConfig:
    mix = MixConfig(
        audio_length=args.audio_length,
        snr_lower=args.snr_range[0],
        snr_upper=args.snr_range[1],
        total_snrlevels=args.snr_levels,
        target_level_lower=args.level_range[0],
        target_level_upper=args.level_range[1],
        segmental_snr=args.segmental_snr,
        percent_for_adding_reverb=args.reverb_fraction,
        reverb_target=args.reverb_target,
    )
    return SynthesisConfig(
        clean=tuple(args.clean),
        noise=tuple(args.noise),
        rir=tuple(args.rir),
        output=args.output,
        count=args.count,
        hours=args.hours,
        seed=args.seed,
        mix=mix,
        layout=args.layout,
        valid_fraction=args.valid_fraction,
        rir_t60_range=args.rir_t60_range,
        shard_encoding=args.shard_encoding,
        shard_mb=args.shard_mb,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = JobArgumentParser(description=__doc__.splitlines()[0])
    add_source_flags(parser)
    add_mix_flags(parser)
    add_ray_flags(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = parse_args(argv)
    cfg = config_from_args(args)
    cluster.connect(args.address)
    summary = run_synthesis(cfg, workers=args.workers, storage_options=args.storage_options)
    print(f"{summary.written} mixtures written, {summary.resumed} kept from an earlier run, "
          f"{summary.failed} failed; {summary.hours:.2f} h in {summary.seconds:.0f} s")
    print(f"bad sources skipped: {len(summary.bad_sources)}; skipped pieces: {summary.skipped_pieces}")
    for split, uri in summary.manifests.items():
        print(f"{split} manifest: {uri}")
    return 0 if summary.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(run_job(main))
