"""What every ansray job shares on its command line: cluster and storage flags, logging, and failures
reported as one line with an exit code of their own (the traceback only with `--debug`)."""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import sys
import traceback
from collections.abc import Callable

# Exit codes: 1 is left to jobs that ran but failed on some files.
EXIT_USAGE = 2  # flags, paths or configuration refused (argparse's own code)
EXIT_MODEL = 3  # the model cannot be loaded
EXIT_STORAGE = 4  # storage cannot be reached, read or written
EXIT_INTERRUPTED = 130


def int_range(text: str) -> tuple[int, int]:
    """argparse type for `LO,HI` integers (negative ones too: `--snr-range -5,20`)."""
    return _pair(text, int)


def float_range(text: str) -> tuple[float, float]:
    """argparse type for `LO,HI` numbers."""
    return _pair(text, float)


def _pair(text: str, kind: type) -> tuple:
    parts = text.split(",")
    try:
        low, high = (kind(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI, got {text!r}") from None
    if low > high:
        raise argparse.ArgumentTypeError(f"LO must not exceed HI, got {text!r}")
    return low, high


class JobArgumentParser(argparse.ArgumentParser):
    """argparse without prefix matching (`--out` is not `--output`), naming the flag a typo meant, and
    taking `LO,HI` ranges that start with a minus sign (argparse would read `-5,20` as a flag)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        arguments = sys.argv[1:] if args is None else list(args)
        known = {flag for action in self._actions for flag in action.option_strings}
        ranges = {flag for action in self._actions if action.type in (int_range, float_range)
                  for flag in action.option_strings}
        attached, tokens = [], iter(arguments)
        for token in tokens:
            if token == "--":
                attached += [token, *tokens]
                break
            flag = token.split("=", 1)[0]
            if flag.startswith("--") and flag not in known:
                close = difflib.get_close_matches(flag, sorted(known), n=1)
                self.error(f"unknown flag {flag}" + (f" (did you mean {close[0]}?)" if close else ""))
            attached.append(f"{token}={next(tokens, '')}" if token in ranges else token)
        return super().parse_known_args(attached, namespace)


def json_object(text: str) -> dict:
    """argparse type for a JSON object flag."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray started for the job)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors (default: one line)")


def add_storage_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage-options", type=json_object, default=None, metavar="JSON",
                        help="fsspec/s3fs options for every URI, e.g. '{\"client_kwargs\": {\"endpoint_url\": "
                             "\"http://minio:9000\"}}'. Passed to every task; credentials are better left to each "
                             "node's own AWS_* environment, profile or instance role (default: none)")


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")


def exit_code(error: BaseException) -> int | None:
    """The exit code of an error a user can act on, or None for an unexpected one (a bug)."""
    from ansray.io.errors import StorageError
    from ansray.model import CheckpointError

    if isinstance(error, CheckpointError):
        return EXIT_MODEL
    if isinstance(error, StorageError):
        return EXIT_STORAGE
    if isinstance(error, (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, ImportError)):
        return EXIT_USAGE
    if isinstance(error, OSError):
        return EXIT_STORAGE
    return None


def run_job(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Runs a job's `main`; an error a user can act on is one line on stderr and its exit code."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        return main(argv)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - every failure ends as one line; --debug shows the traceback
        code = exit_code(error)
        if debug or code is None:
            traceback.print_exc()
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return code or 1
