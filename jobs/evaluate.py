"""Measures enhanced audio against its noisy input and clean reference on Ray Data.

python jobs/evaluate.py --enhanced [NAME=]URI [--enhanced NAME=URI ...] [--noisy URI] [--clean URI]
  --output URI [--metrics pesq,stoi,si_sdr,dnsmos] [--baseline rnnoise]
  [--asr pocketsphinx|module.path:name] [--asr-options JSON] [--transcripts FILE]
  [--examples N] [--pair-by key|fileid] [--workers N] [--address ADDR] [--storage-options JSON]
"""

from __future__ import annotations

import argparse
import sys

from ansray import cluster
from ansray.baselines import BASELINES
from ansray.cli import JobArgumentParser, add_cluster_flags, add_storage_flags, configure_logging, json_object, run_job
from ansray.evaluation import ENHANCED, PAIR_BY, EvaluationConfig, default_metrics, run_evaluation
from ansray.evaluation.pairing import SYSTEM_NAME
from ansray.metrics import METRICS


def metric_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def enhanced_set(text: str) -> tuple[str | None, str]:
    """`NAME=URI` -> (NAME, URI); a plain URI -> (None, URI). Text before the first `=` that is not a
    system name (it holds `/` or `:`) belongs to the URI."""
    name, separator, uri = text.partition("=")
    if separator and SYSTEM_NAME.fullmatch(name):
        return name, uri
    return None, text


def add_input_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("inputs and output")
    group.add_argument("--enhanced", type=enhanced_set, action="append", default=[], metavar="[NAME=]URI",
                       help="enhanced files: folder, prefix or glob; or the denoise job's manifest.jsonl, "
                            "whose input_filepath then gives the noisy files. Repeat as NAME=URI for several "
                            "systems side by side, in the tables and plots in the order given "
                            f"(say full=out0 att12=out12); a single plain URI is named {ENHANCED!r}. "
                            "Required unless --baseline is given")
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
    group.add_argument("--baseline", action="append", default=[], choices=sorted(BASELINES),
                       help="also run this denoiser on the noisy files and show it as a system of that name "
                            "(rnnoise: RNNoise with the model pyrnnoise bundles, at 48 kHz, its delay "
                            "compensated; needs the baseline extra). Repeatable (default: none)")


def add_asr_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("word error rate")
    group.add_argument("--asr", metavar="SPEC",
                       help="transcribe the clean, noisy and enhanced files and report WER (default: off). "
                            "SPEC is 'pocketsphinx' (its bundled US English model; the asr extra) or "
                            "'module.path:name' naming a recogniser, a callable taking float32 mono audio at "
                            "16 kHz and returning its text, or a factory of one, called once per worker with "
                            "--asr-options as keyword arguments (load the model there); a callable is taken as "
                            "a factory when --asr-options is given or it has no required argument. The module "
                            "must be importable on every Ray node")
    group.add_argument("--asr-options", type=json_object, default=None, metavar="JSON",
                       help="keyword arguments for the recogniser factory, e.g. '{\"model_dir\": \"/models/x\"}' "
                            "(default: none)")
    group.add_argument("--transcripts", metavar="FILE",
                       help="reference texts: 'ID text' lines (LibriSpeech .trans.txt, Kaldi text) or JSONL "
                            "with audio_filepath and text (NeMo); an entry fits the file whose path ends with "
                            "its ID less the extension. Default: the text of a NeMo manifest given as --clean "
                            "or --noisy, else the recogniser's transcript of the clean file")


def add_execution_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("execution")
    group.add_argument("--workers", type=int, default=None,
                       help="scoring actors, one DNSMOS and one recogniser each (default: all CPUs)")
    add_storage_flags(group)
    add_cluster_flags(group)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, with `config` built from them; a combination the config refuses is a usage error."""
    parser = JobArgumentParser(description=__doc__.splitlines()[0])
    add_input_flags(parser)
    add_metric_flags(parser)
    add_asr_flags(parser)
    add_execution_flags(parser)
    args = parser.parse_args(argv)
    try:
        args.config = config_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    return args


def config_from_args(args: argparse.Namespace) -> EvaluationConfig:
    names = [name for name, _ in args.enhanced]
    if len(args.enhanced) > 1 and None in names:
        raise ValueError("name each enhanced set when giving several: --enhanced NAME=URI")
    if len(args.enhanced) == 1 and names[0] is None:
        enhanced = args.enhanced[0][1]
    else:
        enhanced = dict(args.enhanced)
        if len(enhanced) < len(args.enhanced):
            raise ValueError(f"each enhanced set needs its own name, got {names}")
    return EvaluationConfig(
        enhanced=enhanced,
        output=args.output,
        noisy=args.noisy,
        clean=args.clean,
        metrics=args.metrics or default_metrics(args.clean is not None),
        examples=args.examples,
        pair_by=args.pair_by,
        baselines=tuple(dict.fromkeys(args.baseline)),
        asr=args.asr,
        asr_options=args.asr_options,
        transcripts=args.transcripts,
    )


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = parse_args(argv)
    cfg = args.config
    cluster.connect(args.address)
    report = run_evaluation(cfg, workers=args.workers, storage_options=args.storage_options)
    print(report.table)
    systems = len(cfg.system_names)
    print(f"{report.scored} files scored{f' over {systems} systems' if systems > 1 else ''}, "
          f"{len(report.errors)} failed, {len(report.unpaired)} unpaired in {report.seconds:.0f} s")
    for (key, system), reason in list(report.errors.items())[:5]:
        print(f"failed: {key} ({system}): {reason}")
    for unpaired in report.unpaired[:5]:
        print(f"unpaired {unpaired.role}: {unpaired.uri}: {unpaired.reason}")
    print(f"results in {cfg.output}")
    return 0


if __name__ == "__main__":
    sys.exit(run_job(main))
