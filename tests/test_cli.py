"""Specification of what every job shares on its command line: flags, ranges, and errors as one line."""

import subprocess
import sys
from pathlib import Path

import pytest

from ansray.cli import EXIT_MODEL, EXIT_STORAGE, EXIT_USAGE, JobArgumentParser, float_range, int_range, run_job
from ansray.io.errors import StorageError
from ansray.model import CheckpointError
from models import save_tiny_model

REPO = Path(__file__).resolve().parents[1]


def parser() -> JobArgumentParser:
    parser = JobArgumentParser(prog="job")
    parser.add_argument("--output", required=True)
    parser.add_argument("--snr-range", type=int_range, default=(0, 40))
    parser.add_argument("--t60-range", type=float_range, default=(0.3, 1.3))
    return parser


def test_a_mistyped_flag_is_named_with_the_flag_it_meant(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["--ouput", "x"])
    assert "unknown flag --ouput (did you mean --output?)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser().parse_args(["--out", "x"])  # no prefix matching


def test_ranges_take_negative_bounds_with_or_without_equals():
    args = parser().parse_args(["--output", "o", "--snr-range", "-5,20", "--t60-range=-0.5,1"])
    assert args.snr_range == (-5, 20) and args.t60_range == (-0.5, 1.0)


@pytest.mark.parametrize("text", ["5", "a,b", "20,-5"])
def test_a_range_that_is_not_lo_hi_is_a_usage_error(text):
    with pytest.raises(SystemExit):
        parser().parse_args(["--output", "o", "--snr-range", text])


@pytest.mark.parametrize("error, code", [(CheckpointError("m.bin", "empty file"), EXIT_MODEL),
                                         (StorageError("s3://b", "cannot connect"), EXIT_STORAGE),
                                         (ValueError("bad flag value"), EXIT_USAGE),
                                         (FileNotFoundError("in/ does not exist"), EXIT_USAGE)])
def test_errors_a_user_can_act_on_are_one_line_with_their_own_exit_code(capsys, error, code):
    def main(argv):
        raise error

    assert run_job(main, []) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err


def test_unexpected_errors_and_debug_show_the_traceback(capsys):
    def main(argv):
        raise KeyError("bug")

    assert run_job(main, []) == 1
    assert "Traceback" in capsys.readouterr().err

    def usage(argv):
        raise ValueError("bad")

    assert run_job(usage, ["--debug"]) == EXIT_USAGE
    assert "Traceback" in capsys.readouterr().err


def test_the_denoise_job_reports_a_missing_input_and_a_bad_model_in_one_line(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"")
    model = save_tiny_model(tmp_path / "tiny")
    for argv, code, text in ((["--input", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o"), "--model",
                               model], EXIT_USAGE, "nowhere does not exist"),
                             (["--input", str(tmp_path), "--output", str(tmp_path / "o"), "--model",
                               str(tmp_path / "model.bin")], EXIT_MODEL, "model.bin")):
        done = subprocess.run([sys.executable, str(REPO / "jobs" / "denoise.py"), *argv], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == code, done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith("error: ") and text in done.stderr
        assert "Traceback" not in done.stderr
