"""Denoise an audio archive, storage to storage, with FRCRN on Ray Data.

    python jobs/denoise.py --input s3://bucket/raw/ --output s3://bucket/clean/ --model ./frcrn_dir

Also runs unchanged under `ray job submit -- python jobs/denoise.py ...` (give absolute paths or URIs
there). Local paths are made absolute here, on the driver; on a cluster of several nodes they must be on
a filesystem every node mounts at the same path (checked at start), or use `local://PATH` to read and
write on the driver's node only. Outputs never overwrite inputs: an output that is or holds an input is
refused, and files inside the output are never taken as inputs. Two inputs whose outputs would have the
same name (`x.flac` and `x.ogg` with `--output-format wav`) are both refused with an error row naming
the other; rename one, or use `--suffix` or `--output-format same`.
"""

from __future__ import annotations

import argparse
import sys

from ansray.cli import JobArgumentParser, add_cluster_flags, add_storage_flags, configure_logging, run_job
from ansray.denoise import DenoiseConfig, run_denoise
from ansray.denoise.files import IF_WORSE, OUTPUT_FORMATS, Finishing
from ansray.denoise.quality import QUALITY_MEASURES
from ansray.model.starter import STARTER_MODEL_DIR
from ansray.precision import PRECISIONS
from ansray.segments import SegmentOptions


def parse_actors(text: str) -> tuple[int, int]:
    parts = [int(p) for p in text.split(",")]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not 1 <= parts[0] <= parts[1]:
        raise argparse.ArgumentTypeError(f"--actors takes N or MIN,MAX with 1 <= MIN <= MAX, got {text!r}")
    return parts[0], parts[1]


def add_segment_flags(parser: argparse.ArgumentParser) -> None:
    defaults = SegmentOptions()
    parser.add_argument("--segment-seconds", type=float, default=defaults.segment_seconds,
                        help="segment length on the 16 kHz timeline (default: %(default)s)")
    parser.add_argument("--overlap-seconds", type=float, default=defaults.overlap_seconds,
                        help="overlap between consecutive segments, cross-faded (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help="segments per model call (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = JobArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", action="append", required=True,
                        help="a directory/prefix, glob, audio URI or manifest (.txt/.jsonl); repeatable")
    parser.add_argument("--output", required=True, help="output root; the input tree is mirrored under it")
    parser.add_argument("--model", default=str(STARTER_MODEL_DIR),
                        help="ModelScope model dir, checkpoint file or URI (default: the bundled starter model)")
    parser.add_argument("--manifest", default=None,
                        help="manifest JSONL URI (default: <output>/_ansray/manifest.jsonl)")
    parser.add_argument("--actors", type=parse_actors, default=(1, 1),
                        help="FRCRN actors: N, or MIN,MAX to autoscale (default: 1)")
    parser.add_argument("--gpus-per-actor", type=float, default=0.0,
                        help="GPUs per actor; 0 runs CPU actors (default: %(default)s)")
    parser.add_argument("--cpus-per-actor", type=float, default=1.0,
                        help="CPUs per actor, also its torch thread count on CPU (default: %(default)s)")
    add_segment_flags(parser)
    parser.add_argument("--dtype", choices=sorted(PRECISIONS), default="float32",
                        help="autocast dtype for the model; bfloat16/float16 are meant for GPUs (default: %(default)s)")
    parser.add_argument("--output-format", choices=OUTPUT_FORMATS, default="same",
                        help="'same' keeps each input's format and subtype (default: %(default)s)")
    parser.add_argument("--suffix", default=None, help="added to output names before the extension (default: none)")
    parser.add_argument("--overwrite", action="store_true", help="reprocess inputs already done (default: resume)")
    parser.add_argument("--mixdown", action="store_true",
                        help="downmix to mono before enhancing (default: every channel is enhanced and kept)")
    parser.add_argument("--limit", type=int, default=None, help="process at most N inputs (default: all)")
    parser.add_argument("--quality", action="append", choices=QUALITY_MEASURES, default=[],
                        help="score input and output in the manifest: 'dnsmos' adds DNSMOS SIG/BAK/OVRL/P.808 "
                             "before and after (needs the eval extra; default: none)")
    parser.add_argument("--attenuation-limit", type=float, default=None, metavar="DB",
                        help="attenuate noise by at most DB: the output is g * input + (1 - g) * enhanced with "
                             "g = 10^(-DB/20), per channel at the source rate (as DeepFilterNet's --atten-lim). "
                             "Default: none, full suppression")
    parser.add_argument("--if-worse", choices=IF_WORSE, default=None,
                        help="where DNSMOS OVRL of the output is below the input's (needs --quality dnsmos): "
                             "keep-input writes the input unchanged, attenuate writes the output mixed at "
                             "--if-worse-limit; the manifest records it (output_source). Default: off")
    parser.add_argument("--if-worse-limit", type=float, default=Finishing.if_worse_limit_db, metavar="DB",
                        help="the attenuation limit of --if-worse attenuate (default: %(default)s)")
    add_storage_flags(parser)
    add_cluster_flags(parser)
    return parser


def config_from_args(args: argparse.Namespace) -> DenoiseConfig:
    return DenoiseConfig(
        inputs=tuple(args.input),
        output=args.output,
        model=args.model,
        manifest=args.manifest,
        actors=args.actors,
        gpus_per_actor=args.gpus_per_actor,
        cpus_per_actor=args.cpus_per_actor,
        segments=SegmentOptions(args.segment_seconds, args.overlap_seconds, args.batch_size),
        dtype=args.dtype,
        output_format=args.output_format,
        suffix=args.suffix,
        overwrite=args.overwrite,
        mixdown=args.mixdown,
        limit=args.limit,
        storage_options=args.storage_options,
        address=args.address,
        quality=tuple(args.quality),
        attenuation_limit_db=args.attenuation_limit,
        if_worse=args.if_worse,
        if_worse_limit_db=args.if_worse_limit,
    )


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = build_parser().parse_args(argv)
    summary = run_denoise(config_from_args(args))
    print(summary.line())
    return 0 if summary.error == 0 else 1


if __name__ == "__main__":
    sys.exit(run_job(main))
