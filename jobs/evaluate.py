"""Measures enhanced audio against its noisy input and clean reference on Ray Data.

python jobs/evaluate.py --enhanced URI [--noisy URI] [--clean URI] --output URI
  [--metrics pesq,stoi,si_sdr,dnsmos] [--examples N] [--pair-by key|fileid] [--workers N]
  [--address ADDR] [--storage-options JSON]
"""

from __future__ import annotations

import argparse
import json
import logging
import os

import ray

from ansray.evaluation import PAIR_BY, EvaluationConfig, default_metrics, run_evaluation
from ansray.metrics import METRICS


def metric_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def add_input_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("inputs and output")
    group.add_argument("--enhanced", required=True, metavar="URI",
                       help="enhanced files: folder, prefix or glob; or the denoise job's manifest.jsonl, "
                            "whose input_filepath then gives the noisy files")
    group.add_argument("--noisy", metavar="URI", help="noisy inputs, paired with the enhanced files by key")
    group.add_argument("--clean", metavar="URI", help="clean references, paired by key (needed by pesq, stoi, si_sdr)")
    group.add_argument("--output", required=True, metavar="URI",
                       help="folder or bucket prefix for results.parquet/.csv, unpaired.csv, summary.md, plots/")
    group.add_argument("--pair-by", choices=PAIR_BY, default="key",
                       help="match files by relative key less the extension, or by DNS fileid_N (default: key)")


def add_metric_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("metrics")
    group.add_argument("--metrics", type=metric_list, default=None, metavar="LIST",
                       help=f"comma-separated, from {','.join(METRICS)} "
                            "(default: all with --clean, else dnsmos)")
    group.add_argument("--examples", type=int, default=3, metavar="N",
                       help="files to draw before/after spectrograms of (default: 3)")


def add_execution_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("execution")
    group.add_argument("--address", default=os.environ.get("RAY_ADDRESS"),
                       help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    group.add_argument("--workers", type=int, default=None,
                       help="scoring actors, one DNSMOS each (default: all CPUs)")
    group.add_argument("--storage-options", type=json.loads, default=None, metavar="JSON",
                       help="fsspec storage options, e.g. an S3 endpoint")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, with `config` built from them; a combination the config refuses is a usage error."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_input_flags(parser)
    add_metric_flags(parser)
    add_execution_flags(parser)
    args = parser.parse_args(argv)
    try:
        args.config = config_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    return args


def config_from_args(args: argparse.Namespace) -> EvaluationConfig:
    return EvaluationConfig(
        enhanced=args.enhanced,
        output=args.output,
        noisy=args.noisy,
        clean=args.clean,
        metrics=args.metrics or default_metrics(args.clean is not None),
        examples=args.examples,
        pair_by=args.pair_by,
    )


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    cfg = args.config
    if not ray.is_initialized():
        ray.init(address=args.address)
    report = run_evaluation(cfg, workers=args.workers, storage_options=args.storage_options)
    print(report.table)
    print(f"{report.scored} files scored, {len(report.errors)} failed, {len(report.unpaired)} unpaired "
          f"in {report.seconds:.0f} s")
    for key, reason in list(report.errors.items())[:5]:
        print(f"failed: {key}: {reason}")
    for unpaired in report.unpaired[:5]:
        print(f"unpaired {unpaired.role}: {unpaired.uri}: {unpaired.reason}")
    print(f"results in {cfg.output}")


if __name__ == "__main__":
    main()
