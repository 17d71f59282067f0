"""Specification of jobs/evaluate.py and ansray.evaluation: pairing by key and by the denoise manifest, the
t-interval, and an end-to-end run on speech mixed with noise, where the "enhanced" files are the same
speech with 15 dB less noise, so every metric must rise."""

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import ray
import soundfile

from ansray.evaluation import EvaluationConfig, default_metrics, estimate, pair_files, run_evaluation
from ansray.evaluation.summary import t_quantile
from ansray.io import encode_audio, fs_for, write_bytes_atomic
from ansray.metrics import METRIC_COLUMNS

SPEECH_CLIP = Path(__file__).parent / "fixtures" / "speech" / "198-209-0000.ogg"
JOB = Path(__file__).parents[1] / "jobs" / "evaluate.py"
RATE = 16000
CLIP_SECONDS = 4.6  # DNSMOS repeats it to 9.2 s: one 9.01 s window per signal
KEYS = ["a/one", "a/two", "b/three", "four"]
CORRUPT_KEY = "five"  # its enhanced file is not audio
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Each must rise when the same speech carries 15 dB less white noise. DNSMOS SIG rates the speech alone.
IMPROVED_COLUMNS = ["si_sdr", "pesq_wb", "pesq_nb", "stoi", "estoi", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"]


def load_job():
    spec = importlib.util.spec_from_file_location("evaluate_job", JOB)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def speech_set(count: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(clean, noisy at 0 dB SNR, less noisy at 15 dB SNR) clips from different parts of the speech."""
    speech, rate = soundfile.read(SPEECH_CLIP, dtype="float64")
    assert rate == RATE
    rng = np.random.default_rng(seed)
    clip = int(CLIP_SECONDS * RATE)
    starts = np.linspace(0, len(speech) - clip, count).astype(int)
    clips = []
    for start in starts:
        clean = 0.5 * speech[start : start + clip] / np.max(np.abs(speech[start : start + clip]))
        noise = rng.standard_normal(clip) * np.sqrt(np.mean(clean**2))  # 0 dB SNR
        clips.append((clean, clean + noise, clean + noise * 10 ** (-15 / 20)))
    return clips


def put_audio(root: str, name: str, signal: np.ndarray, storage_options=None, format="WAV") -> str:
    uri = f"{root}/{name}"
    subtype = "PCM_16"
    write_bytes_atomic(uri, encode_audio(np.clip(signal, -1, 1), RATE, format, subtype), storage_options)
    return uri


@pytest.fixture(scope="module")
def evaluation(ray_cluster, tmp_path_factory):
    """One run of the job over four good files (enhanced as FLAC, inputs as WAV), one corrupt enhanced
    file and one noisy file without an enhanced partner: (output folder, printed text)."""
    root = tmp_path_factory.mktemp("evaluation")
    for key, (clean, noisy, enhanced) in zip(KEYS, speech_set(len(KEYS))):
        put_audio(f"{root}/clean", f"{key}.wav", clean)
        put_audio(f"{root}/noisy", f"{key}.wav", noisy)
        put_audio(f"{root}/enhanced", f"{key}.flac", enhanced, format="FLAC")
    clean, noisy, _ = speech_set(1, seed=1)[0]
    put_audio(f"{root}/clean", f"{CORRUPT_KEY}.wav", clean)
    put_audio(f"{root}/noisy", f"{CORRUPT_KEY}.wav", noisy)
    (root / "enhanced" / f"{CORRUPT_KEY}.flac").write_bytes(b"fLaC but not really" * 100)
    put_audio(f"{root}/noisy", "orphan.wav", noisy)

    output = root / "out"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        load_job().main([
            "--enhanced", str(root / "enhanced"), "--noisy", str(root / "noisy"), "--clean", str(root / "clean"),
            "--output", str(output), "--metrics", "pesq,stoi,si_sdr,dnsmos", "--examples", "2",
        ])
    return output, printed.getvalue()


def test_every_output_file_is_written(evaluation):
    output, _ = evaluation
    written = sorted(str(path.relative_to(output)) for path in output.rglob("*") if path.is_file())
    assert written == [
        "plots/distributions.png",
        "plots/spectrograms/a/one.png",
        "plots/spectrograms/a/two.png",
        "results.csv",
        "results.parquet",
        "summary.md",
        "unpaired.csv",
    ]


def test_plots_are_valid_png_images(evaluation):
    output, _ = evaluation
    for path in (output / "plots").rglob("*.png"):
        assert path.read_bytes().startswith(PNG_SIGNATURE), path
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300, path
        assert image.std() > 0.05, f"{path} is blank"


def test_results_have_one_row_per_enhanced_file_with_every_metric_column(evaluation):
    output, _ = evaluation
    parquet = pd.read_parquet(output / "results.parquet")
    csv = pd.read_csv(output / "results.csv")
    metric_columns = [column for columns in METRIC_COLUMNS.values() for column in columns]
    for table in (parquet, csv):
        assert list(table["key"]) == sorted(f"{key}.flac" for key in KEYS + [CORRUPT_KEY])
        for column in metric_columns:
            assert {column, f"{column}_error", f"noisy_{column}", f"noisy_{column}_error"} <= set(table.columns)
        assert {"enhanced_filepath", "noisy_filepath", "clean_filepath", "duration", "error"} <= set(table.columns)
    good = parquet[parquet["key"] != f"{CORRUPT_KEY}.flac"]
    assert good["error"].isna().all()
    assert np.isfinite(good[metric_columns].to_numpy(dtype=float)).all()
    assert np.allclose(good["duration"], CLIP_SECONDS)
    assert np.allclose(csv.set_index("key")["si_sdr"].dropna(), parquet.set_index("key")["si_sdr"].dropna())


def test_less_noise_scores_higher_on_every_file(evaluation):
    output, _ = evaluation
    results = pd.read_parquet(output / "results.parquet")
    good = results[results["key"] != f"{CORRUPT_KEY}.flac"]
    for column in IMPROVED_COLUMNS:
        difference = good[column] - good[f"noisy_{column}"]
        assert (difference > 0).all(), f"{column}: {difference.tolist()}"
    # 0 dB and 15 dB of white noise against the clean reference.
    assert np.allclose(good["noisy_si_sdr"], 0.0, atol=0.5)
    assert np.allclose(good["si_sdr"], 15.0, atol=0.5)
    assert np.allclose(good["si_sdr_improvement"], good["si_sdr"] - good["noisy_si_sdr"])


def test_corrupt_file_becomes_an_error_row(evaluation):
    output, printed = evaluation
    row = pd.read_parquet(output / "results.parquet").set_index("key").loc[f"{CORRUPT_KEY}.flac"]
    assert row["error"].startswith("unreadable:") and f"{CORRUPT_KEY}.flac" in row["error"]
    assert np.isnan(row["si_sdr"]) and np.isnan(row["dnsmos_ovrl"])
    assert f"failed: {CORRUPT_KEY}" in printed


def test_file_without_partner_is_reported(evaluation):
    output, printed = evaluation
    unpaired = pd.read_csv(output / "unpaired.csv")
    assert len(unpaired) == 1
    assert unpaired.loc[0, "uri"].endswith("noisy/orphan.wav") and unpaired.loc[0, "role"] == "noisy"
    assert "no enhanced or clean file" in unpaired.loc[0, "reason"]
    assert "orphan.wav" in (output / "summary.md").read_text()
    assert "1 unpaired" in printed


def test_summary_holds_the_table_with_a_row_per_metric(evaluation):
    output, printed = evaluation
    summary = (output / "summary.md").read_text()
    assert "| Metric | Files | Noisy mean [95% CI] | Noisy median | Enhanced mean [95% CI] | Enhanced median" in summary
    for label in ("SI-SDR (dB)", "PESQ-WB", "PESQ-NB", "STOI", "ESTOI", "DNSMOS SIG", "DNSMOS BAK",
                  "DNSMOS OVRL", "DNSMOS P.808"):
        row = next(line for line in summary.splitlines() if line.startswith(f"| {label} |"))
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1] == str(len(KEYS)) and len(cells) == 8, row
        assert all("[" in cell for cell in (cells[2], cells[4], cells[6])), row  # every mean has its CI
    si_sdr_delta = next(line for line in summary.splitlines() if line.startswith("| SI-SDR (dB) |")).split("|")[7]
    assert float(si_sdr_delta.split("[")[0]) == pytest.approx(15.0, abs=0.5)
    assert "![plots/distributions.png](plots/distributions.png)" in summary
    assert "| SI-SDR (dB) |" in printed and "4 files scored, 1 failed, 1 unpaired" in printed


def test_evaluation_from_denoise_manifest_on_s3(ray_cluster, s3_bucket, s3_storage_options):
    options = s3_storage_options
    lines = []
    for index, (clean, noisy, enhanced) in enumerate(speech_set(2)):
        lines.append({
            "audio_filepath": put_audio(f"{s3_bucket}/denoised", f"clip{index}.wav", enhanced, options),
            "input_filepath": put_audio(f"{s3_bucket}/archive", f"clip{index}.wav", noisy, options),
            "status": "ok",
        })
        put_audio(f"{s3_bucket}/clean", f"clip{index}.wav", clean, options)
    manifest = f"{s3_bucket}/denoised/_ansray/manifest.jsonl"
    write_bytes_atomic(manifest, "".join(json.dumps(line) + "\n" for line in lines).encode(), options)

    cfg = EvaluationConfig(enhanced=manifest, clean=f"{s3_bucket}/clean", output=f"{s3_bucket}/report",
                           metrics=("si_sdr",), examples=1)
    report = run_evaluation(cfg, storage_options=options)

    assert report.scored == 2 and not report.errors and not report.unpaired
    fs, path = fs_for(f"{s3_bucket}/report", options)
    assert sorted(p[len(path) + 1 :] for p in fs.find(path)) == [
        "plots/distributions.png", "plots/spectrograms/clip0.png", "results.csv", "results.parquet",
        "summary.md", "unpaired.csv",
    ]
    assert fs.cat_file(f"{path}/plots/distributions.png").startswith(PNG_SIGNATURE)
    assert report.summaries[0].difference.mean == pytest.approx(15.0, abs=0.5)


def test_enhanced_files_alone_are_rated_by_dnsmos(ray_cluster, tmp_path):
    for index, (_, _, enhanced) in enumerate(speech_set(2)):
        put_audio(str(tmp_path / "enhanced"), f"clip{index}.wav", enhanced)
    cfg = EvaluationConfig(enhanced=str(tmp_path / "enhanced"), output=str(tmp_path / "out"),
                           metrics=default_metrics(has_clean=False), examples=1)
    report = run_evaluation(cfg)

    results = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert list(results["key"]) == ["clip0.wav", "clip1.wav"] and results["noisy_filepath"].isna().all()
    assert not any(column.startswith("noisy_dnsmos") for column in results.columns)
    assert results["dnsmos_ovrl"].between(1, 5).all()
    row = next(line for line in report.table.splitlines() if line.startswith("| DNSMOS OVRL |"))
    assert row.count("| - |") == 2  # noisy and difference: nothing to show
    for plot in ("plots/distributions.png", "plots/spectrograms/clip0.png"):
        assert (tmp_path / "out" / plot).read_bytes().startswith(PNG_SIGNATURE)


# ---------------------------------------------------------------------------------------------
# Pairing


def touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")  # pairing lists files; it never decodes them


def test_files_pair_by_relative_key_whatever_their_extension(tmp_path):
    touch(tmp_path, "enh/x/a.flac", "enh/b.wav", "noisy/x/a.wav", "noisy/b.wav", "clean/x/a.wav", "clean/b.ogg")
    pairing = pair_files(str(tmp_path / "enh"), str(tmp_path / "noisy"), str(tmp_path / "clean"))
    paired = [(item.key, Path(item.enhanced).name, Path(item.noisy).name, Path(item.clean).name)
              for item in pairing.items]
    assert paired == [("b.wav", "b.wav", "b.wav", "b.ogg"), ("x/a.flac", "a.flac", "a.wav", "a.wav")]
    assert pairing.unpaired == []


def test_files_missing_a_partner_or_sharing_a_key_are_reported(tmp_path):
    touch(tmp_path, "enh/a.wav", "enh/only_enhanced.wav", "enh/twice.wav", "enh/twice.flac",
          "noisy/a.wav", "noisy/only_noisy.wav", "noisy/twice.wav")
    pairing = pair_files(str(tmp_path / "enh"), str(tmp_path / "noisy"))
    assert [item.key for item in pairing.items] == ["a.wav"]
    reported = {(Path(u.uri).name, u.role): u.reason for u in pairing.unpaired}
    assert reported[("only_enhanced.wav", "enhanced")] == "no noisy file matches 'only_enhanced'"
    assert reported[("only_noisy.wav", "noisy")] == "no enhanced file matches 'only_noisy'"
    assert reported[("twice.wav", "enhanced")].startswith("ambiguous: twice.flac, twice.wav")
    assert ("twice.wav", "noisy") in reported  # its enhanced partner is ambiguous
    assert len(pairing.unpaired) == 5


def test_dns_files_pair_by_fileid(tmp_path):
    touch(tmp_path, "enh/book_noise_snr5_tl-25_fileid_7.wav", "enh/book_noise_snr0_tl-30_fileid_12.wav",
          "clean/clean_fileid_7.wav", "clean/clean_fileid_12.wav", "clean/readme_notes.wav")
    pairing = pair_files(str(tmp_path / "enh"), clean=str(tmp_path / "clean"), pair_by="fileid")
    assert [Path(item.clean).name for item in pairing.items] == ["clean_fileid_12.wav", "clean_fileid_7.wav"]
    assert [(Path(u.uri).name, u.reason) for u in pairing.unpaired] == [
        ("readme_notes.wav", "no fileid_N in the name 'readme_notes.wav'")
    ]


def test_denoise_manifest_pairs_outputs_with_inputs_and_reports_failures(tmp_path):
    touch(tmp_path, "clean/a/one.wav", "clean/two.wav", "clean/three.wav")
    rows = [
        {"audio_filepath": None, "input_filepath": "/archive/a/one.wav", "status": "error", "error": "worker died"},
        {"audio_filepath": "/out/a/one.wav", "input_filepath": "/archive/a/one.wav", "status": "ok"},  # rerun
        {"audio_filepath": "/out/two.flac", "input_filepath": "/archive/two.wav", "status": "ok"},
        {"audio_filepath": None, "input_filepath": "/archive/three.wav", "status": "error", "error": "not decodable"},
    ]
    manifest = tmp_path / "manifest.jsonl"
    torn_last_line = '{"audio_filepath": "/out/fo'  # the denoise job was killed mid-row
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows) + torn_last_line)
    pairing = pair_files(str(manifest), clean=str(tmp_path / "clean"))
    assert [(item.key, item.enhanced, item.noisy, Path(item.clean).name) for item in pairing.items] == [
        ("a/one.wav", "/out/a/one.wav", "/archive/a/one.wav", "one.wav"),
        ("two.wav", "/out/two.flac", "/archive/two.wav", "two.wav"),
    ]
    reported = {(Path(u.uri).name, u.role): u.reason for u in pairing.unpaired}
    assert reported == {
        ("three.wav", "noisy"): "the denoise job failed on it: not decodable",
        ("three.wav", "clean"): "no enhanced or noisy file matches 'three'",
    }


# ---------------------------------------------------------------------------------------------
# Statistics and configuration


def test_t_interval_of_one_to_five_is_three_plus_minus_1_963():
    # mean 3, s = sqrt(2.5), t(0.975, 4) = 2.776445: half width 2.776445 * sqrt(2.5 / 5) = 1.963243.
    result = estimate([1.0, 2.0, 3.0, 4.0, 5.0, float("nan")])
    assert (result.count, result.mean, result.median) == (5, 3.0, 3.0)
    assert result.ci_low == pytest.approx(1.036757, abs=1e-6)
    assert result.ci_high == pytest.approx(4.963243, abs=1e-6)


@pytest.mark.parametrize("degrees, quantile", [(1, 12.706205), (2, 4.302653), (4, 2.776445), (30, 2.042272),
                                               (1000, 1.962339)])
def test_t_quantile_matches_the_table(degrees, quantile):
    assert t_quantile(0.975, degrees) == pytest.approx(quantile, abs=1e-6)


def test_one_value_has_no_interval():
    result = estimate([2.5])
    assert result.mean == 2.5 and np.isnan(result.ci_low) and np.isnan(result.ci_high)
    assert estimate([]).count == 0


def test_config_refuses_what_cannot_be_evaluated():
    with pytest.raises(ValueError, match="clean reference"):
        EvaluationConfig(enhanced="e", output="o", noisy="n", metrics=("pesq", "dnsmos"))
    with pytest.raises(ValueError, match="metrics must be some of"):
        EvaluationConfig(enhanced="e", output="o", clean="c", metrics=("mos",))
    with pytest.raises(ValueError, match="drop noisy"):
        EvaluationConfig(enhanced="out/_ansray/manifest.jsonl", output="o", noisy="n", metrics=("dnsmos",))
