"""Exports a training run's best model (or a chosen checkpoint) as a ModelScope model dir.

python jobs/export_model.py --run STORAGE/NAME --output DIR [--storage-options JSON]
python jobs/export_model.py --checkpoint STORAGE/NAME/checkpoint-00004000/checkpoint.pt --output DIR

The output holds `configuration.json` and `pytorch_model.bin`: the denoise job's `--model` and
ModelScope's pipeline both load it.
"""

from __future__ import annotations

import argparse
import sys

from ansray.cli import JobArgumentParser, add_storage_flags, run_job
from ansray.model import load_model, save_model_dir, weights_digest
from ansray.training.checkpoints import export_model


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = JobArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="URI",
                        help="the run folder, STORAGE/NAME: its best model, else its latest checkpoint")
    source.add_argument("--checkpoint", metavar="URI", help="one checkpoint.pt (or any file load_model reads)")
    parser.add_argument("--output", required=True, metavar="DIR", help="model dir to write (local or remote)")
    add_storage_flags(parser)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors (default: one line)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.run:
        source = export_model(args.run, args.output, storage_options=args.storage_options,
                              dest_storage_options=args.storage_options)
    else:
        source = args.checkpoint
        save_model_dir(load_model(source, storage_options=args.storage_options), args.output, args.storage_options)
    model = load_model(args.output, storage_options=args.storage_options)
    print(f"exported {source} to {args.output} (weights {weights_digest(model)})")
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
