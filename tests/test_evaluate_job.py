"""Specification of jobs/evaluate.py and ansray.evaluation: pairing by key and by the denoise manifest, the
t-interval, and end-to-end runs on speech mixed with noise, where the "enhanced" files are the same
speech with less noise, so every metric must rise; several systems side by side, with the RNNoise
baseline and word error rates from PocketSphinx and from a plug-in recogniser."""

import contextlib
import importlib.util
import io
import json
import os
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import ray
import soundfile

from ansray.evaluation import (
    EvaluationConfig,
    default_metrics,
    estimate,
    pair_files,
    render_systems_table,
    run_evaluation,
    summarize_systems,
)
from ansray.evaluation.scoring import TRANSCRIPT_COLUMNS
from ansray.evaluation.summary import t_quantile
from ansray.io import encode_audio, fs_for, resample, write_bytes_atomic
from ansray.metrics import METRIC_COLUMNS

TESTS = Path(__file__).parent
SPEECH_CLIP = TESTS / "fixtures" / "speech" / "198-209-0000.ogg"
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
    # Ray workers import the plug-in recogniser tests/fake_recognizer.py by name, as they would a user's.
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
        # address="local": a Ray of its own, never a cluster that `ray start` left running on this machine.
        ray.init(address="local", num_cpus=2, include_dashboard=False)
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


def put_audio(root: str, name: str, signal: np.ndarray, storage_options=None, format="WAV", rate=RATE) -> str:
    uri = f"{root}/{name}"
    subtype = "PCM_16"
    write_bytes_atomic(uri, encode_audio(np.clip(signal, -1, 1), rate, format, subtype), storage_options)
    return uri


def run_job(*flags: str) -> str:
    """Runs jobs/evaluate.py with `flags`; what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        load_job().main(list(flags))
    return printed.getvalue()


def table_rows(markdown: str, header_start: str) -> dict[str, list[str]]:
    """The rows of the markdown table whose header starts with `header_start`, by first cell."""
    lines = markdown.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith(header_start))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


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
        "plots/systems.png",
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
        "plots/distributions.png", "plots/spectrograms/clip0.png", "plots/systems.png", "results.csv",
        "results.parquet", "summary.md", "unpaired.csv",
    ]
    assert fs.cat_file(f"{path}/plots/distributions.png").startswith(PNG_SIGNATURE)
    assert report.summaries["enhanced"][0].difference.mean == pytest.approx(15.0, abs=0.5)


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
    for plot in ("plots/distributions.png", "plots/spectrograms/clip0.png", "plots/systems.png"):
        assert (tmp_path / "out" / plot).read_bytes().startswith(PNG_SIGNATURE)


# ---------------------------------------------------------------------------------------------
# Several systems side by side, the RNNoise baseline, and word error rates

SYSTEM_RATE = 48000  # the plug-in recogniser must still get 16 kHz
ATTENUATIONS = {"att6": 6.0, "att12": 12.0}  # the enhanced sets: the noisy input with this much less noise
SYSTEMS = [*ATTENUATIONS, "rnnoise"]
TRANSCRIBED_KEY = "a/two"  # the one file with a reference transcript, all "soft": the others use the clean speech's
PLUG_IN = "fake_recognizer:make_recognizer"


@pytest.fixture(scope="module")
def systems_evaluation(ray_cluster, tmp_path_factory):
    """One run over four 48 kHz files with two enhanced sets named by their attenuation, the RNNoise
    baseline, and the plug-in recogniser, which logs its constructions and calls: (output folder,
    printed text, recogniser log folder)."""
    root = tmp_path_factory.mktemp("systems")
    for key, (clean, noisy, _) in zip(KEYS, speech_set(len(KEYS))):
        clean, noisy = (resample(signal, RATE, SYSTEM_RATE) for signal in (clean, noisy))
        put_audio(f"{root}/clean", f"{key}.wav", clean, rate=SYSTEM_RATE)
        put_audio(f"{root}/noisy", f"{key}.wav", noisy, rate=SYSTEM_RATE)
        for name, attenuation in ATTENUATIONS.items():
            enhanced = clean + (noisy - clean) * 10 ** (-attenuation / 20)
            put_audio(f"{root}/{name}", f"{key}.flac", enhanced, format="FLAC", rate=SYSTEM_RATE)
    words = int(CLIP_SECONDS * 10)
    (root / "texts.txt").write_text(f"{TRANSCRIBED_KEY.split('/')[-1]} {' '.join(['SOFT'] * words)}\n")
    logs = root / "recogniser-logs"
    logs.mkdir()
    output = root / "out"
    printed = run_job(
        *[flag for name in ATTENUATIONS for flag in ("--enhanced", f"{name}={root / name}")],
        "--noisy", str(root / "noisy"), "--clean", str(root / "clean"), "--output", str(output),
        "--metrics", "si_sdr,pesq", "--baseline", "rnnoise", "--examples", "1",
        "--asr", PLUG_IN, "--asr-options", json.dumps({"log_dir": str(logs)}), "--transcripts", str(root / "texts.txt"),
    )
    return output, printed, logs


def test_results_have_a_row_per_file_and_system_in_the_order_given(systems_evaluation):
    output, printed, _ = systems_evaluation
    results = pd.read_parquet(output / "results.parquet")
    assert list(zip(results["key"], results["system"])) == [
        (f"{key}.flac", system) for key in sorted(KEYS) for system in SYSTEMS
    ]
    assert results["error"].isna().all()
    assert set(TRANSCRIPT_COLUMNS) <= set(results.columns)
    assert results.loc[results["system"] == "rnnoise", "enhanced_filepath"].isna().all()
    assert results.loc[results["system"] == "att6", "enhanced_filepath"].str.endswith(".flac").all()
    # The noisy input is scored once per file: its columns repeat in that file's rows.
    assert (results.groupby("key")[["noisy_si_sdr", "noisy_pesq_wb", "noisy_wer"]].nunique() == 1).all().all()
    assert (results["sample_rate"] == SYSTEM_RATE).all()
    assert "12 files scored over 3 systems, 0 failed, 0 unpaired" in printed


def test_each_system_is_scored_against_the_same_noisy_input(systems_evaluation):
    output, _, _ = systems_evaluation
    results = pd.read_parquet(output / "results.parquet")
    by_system = results.pivot(index="key", columns="system", values="si_sdr")
    noisy = results.groupby("key")["noisy_si_sdr"].first()
    assert np.allclose(noisy, 0.0, atol=0.5)
    for name, attenuation in ATTENUATIONS.items():
        assert np.allclose(by_system[name], attenuation, atol=0.5), name
    assert (by_system["rnnoise"] > noisy + 2.0).all()  # aligned: a delay left in would sink it below 0 dB
    assert np.allclose(results["si_sdr_improvement"], results["si_sdr"] - results["noisy_si_sdr"], atol=1e-6)


def test_summary_has_a_row_per_system_with_each_mean_and_gain(systems_evaluation):
    output, printed, _ = systems_evaluation
    summary = (output / "summary.md").read_text()
    rows = table_rows(summary, "| System | Files |")
    assert list(rows) == ["noisy", "clean", *SYSTEMS]
    header = next(line for line in summary.splitlines() if line.startswith("| System | Files |"))
    assert header == "| System | Files | PESQ-WB | SI-SDR (dB) | WER (%) |"
    assert all(cell.count("[") == 1 and "Δ" not in cell for cell in rows["noisy"][1:])
    assert rows["clean"][1:3] == ["-", "-"]  # the clean speech has a WER only
    for system in SYSTEMS:
        files, *cells = rows[system]
        assert files == str(len(KEYS))
        assert all(cell.count("[") == 2 and " (Δ " in cell for cell in cells), (system, cells)
    gain = rows["att12"][2].split("(Δ ")[1]
    assert float(gain.split("[")[0]) == pytest.approx(12.0, abs=0.5)
    for system in SYSTEMS:
        assert f"## {system}: every metric" in summary
    assert "- rnnoise: baseline, run here on the noisy files" in summary
    assert f"recogniser `{PLUG_IN}`" in summary
    assert "1 given, 3 from the clean speech (whose WER is then 0), 0 missing" in summary
    assert "Lower is better for WER" in summary
    assert "| att12 |" in printed


def test_systems_plot_is_drawn_beside_the_distributions(systems_evaluation):
    output, _, _ = systems_evaluation
    summary = (output / "summary.md").read_text()
    for plot in ("plots/systems.png", "plots/distributions.png", "plots/spectrograms/a/one.png"):
        assert f"![{plot}]({plot})" in summary
        image = matplotlib.image.imread(output / plot)
        assert image.shape[0] > 200 and image.shape[1] > 300 and image.std() > 0.05, plot


def test_plug_in_recogniser_is_built_once_per_worker_and_hears_16_khz(systems_evaluation):
    _, _, logs = systems_evaluation
    built = list(logs.iterdir())
    assert 1 <= len(built) <= 2  # two workers, four files
    calls = [int(length) for log in built for length in log.read_text().split()]
    assert len(calls) == len(KEYS) * (2 + len(SYSTEMS))  # clean, noisy and each system, once each
    assert set(calls) == {int(CLIP_SECONDS * 16000)}


def test_wer_reference_is_the_transcript_where_given_else_the_clean_speech(systems_evaluation):
    output, _, _ = systems_evaluation
    results = pd.read_parquet(output / "results.parquet").drop_duplicates("key").set_index("key")
    given = results.loc[f"{TRANSCRIBED_KEY}.flac"]
    assert given["reference_source"] == "transcript"
    assert set(given["reference_text"].split()) == {"SOFT"}
    assert given["clean_wer"] > 0
    others = results.drop(index=f"{TRANSCRIBED_KEY}.flac")
    assert (others["reference_source"] == "clean speech").all()
    assert (others["reference_text"] == others["clean_transcript"]).all()
    assert (others["clean_wer"] == 0).all() and others["clean_wer_error"].isna().all()


def test_wer_falls_with_the_noise_left(systems_evaluation):
    output, _, _ = systems_evaluation
    results = pd.read_parquet(output / "results.parquet")
    results = results[results["reference_source"] == "clean speech"]
    wer = results.pivot(index="key", columns="system", values="wer")
    noisy = results.groupby("key")["noisy_wer"].first()
    assert (noisy > 0).all()
    assert (wer["att12"] < noisy).all() and (wer["att12"] <= wer["att6"]).all()
    assert results["transcript"].str.fullmatch(r"(loud|soft)( (loud|soft))*").all()


@pytest.fixture(scope="module")
def pocketsphinx_evaluation(ray_cluster, tmp_path_factory):
    """One run of PocketSphinx over one file of real speech with white noise at 20 dB SNR, where RNNoise
    is the only system: the results table."""
    root = tmp_path_factory.mktemp("pocketsphinx")
    speech, _ = soundfile.read(SPEECH_CLIP, dtype="float64")
    clean = speech[: int(CLIP_SECONDS * RATE)]
    noise = np.random.default_rng(0).standard_normal(len(clean)) * np.sqrt(np.mean(clean**2)) * 10 ** (-20 / 20)
    put_audio(f"{root}/clean", "utterance.wav", clean)
    put_audio(f"{root}/noisy", "utterance.wav", clean + noise)
    run_job("--baseline", "rnnoise", "--noisy", str(root / "noisy"), "--clean", str(root / "clean"),
            "--output", str(root / "out"), "--metrics", "si_sdr", "--asr", "pocketsphinx", "--examples", "0")
    return pd.read_parquet(root / "out" / "results.parquet")


def test_pocketsphinx_wer_is_zero_on_clean_speech_and_above_zero_on_noisy_speech(pocketsphinx_evaluation):
    [row] = pocketsphinx_evaluation.to_dict("records")
    assert len(row["clean_transcript"].split()) >= 8, row["clean_transcript"]
    assert row["reference_source"] == "clean speech" and row["reference_text"] == row["clean_transcript"]
    assert row["clean_wer"] == 0.0
    assert row["noisy_wer"] > 0.0 and row["noisy_wer_error"] is None
    assert np.isfinite(row["wer"]) and row["transcript"]


def test_rnnoise_baseline_alone_is_a_system_scored_on_the_noisy_files(pocketsphinx_evaluation):
    [row] = pocketsphinx_evaluation.to_dict("records")
    assert row["system"] == "rnnoise" and row["enhanced_filepath"] is None and row["error"] is None
    assert row["key"] == "utterance.wav" and row["duration"] == pytest.approx(CLIP_SECONDS)
    # At 20 dB SNR RNNoise costs SI-SDR (as suppressors do), but only aligned output keeps it this high.
    assert row["si_sdr"] > 10.0


# ---------------------------------------------------------------------------------------------
# Pairing


def touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")  # pairing lists files; it never decodes them


def test_files_pair_by_relative_key_whatever_their_extension(tmp_path):
    touch(tmp_path, "enh/x/a.flac", "enh/b.wav", "noisy/x/a.wav", "noisy/b.wav", "clean/x/a.wav", "clean/b.ogg")
    pairing = pair_files(str(tmp_path / "enh"), str(tmp_path / "noisy"), str(tmp_path / "clean"))
    paired = [(item.key, Path(item.enhanced["enhanced"]).name, Path(item.noisy).name, Path(item.clean).name)
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
        ("a/one.wav", {"enhanced": "/out/a/one.wav"}, "/archive/a/one.wav", "one.wav"),
        ("two.wav", {"enhanced": "/out/two.flac"}, "/archive/two.wav", "two.wav"),
    ]
    reported = {(Path(u.uri).name, u.role): u.reason for u in pairing.unpaired}
    assert reported == {
        ("three.wav", "noisy"): "the denoise job failed on it: not decodable",
        ("three.wav", "clean"): "no enhanced or noisy file matches 'three'",
    }


def test_several_enhanced_sets_pair_with_the_same_noisy_files(tmp_path):
    touch(tmp_path, "full/a.flac", "full/b.flac", "att12/a.wav", "att12/b.wav", "att12/c.wav",
          "noisy/a.wav", "noisy/b.wav", "noisy/c.wav")
    pairing = pair_files({"full": str(tmp_path / "full"), "att12": str(tmp_path / "att12")}, str(tmp_path / "noisy"))
    assert [(item.key, {name: Path(uri).name for name, uri in item.enhanced.items()}) for item in pairing.items] == [
        ("a.flac", {"full": "a.flac", "att12": "a.wav"}),  # the first system's key names the file
        ("b.flac", {"full": "b.flac", "att12": "b.wav"}),
    ]
    assert {(Path(u.uri).parent.name, u.role, u.reason) for u in pairing.unpaired} == {
        ("att12", "att12", "no full file matches 'c'"), ("noisy", "noisy", "no full file matches 'c'"),
    }


def test_denoise_manifests_of_several_runs_share_their_inputs(tmp_path):
    def manifest(name: str, outputs: dict[str, str | None]) -> str:
        rows = [{"audio_filepath": output, "input_filepath": f"/archive/{key}.wav",
                 "status": "ok" if output else "error", "error": None if output else "too short"}
                for key, output in outputs.items()]
        path = tmp_path / name / "manifest.jsonl"
        path.parent.mkdir()
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return str(path)

    systems = {
        "full": manifest("full", {"x/one": "/full/x/one.wav", "two": "/full/two.wav"}),
        "att6": manifest("att6", {"x/one": "/att6/x/one.wav", "two": None}),
    }
    pairing = pair_files(systems)
    assert [(item.key, item.noisy, item.enhanced) for item in pairing.items] == [
        ("x/one.wav", "/archive/x/one.wav", {"full": "/full/x/one.wav", "att6": "/att6/x/one.wav"}),
    ]
    assert {(u.uri, u.role, u.reason) for u in pairing.unpaired} == {
        ("/archive/two.wav", "noisy", "att6: the denoise job failed on it: too short"),
        ("/full/two.wav", "full", "no att6 file matches 'two'"),
        ("/archive/two.wav", "noisy", "no att6 file matches 'two'"),
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


@pytest.mark.parametrize("flags, expected", [
    (["--enhanced", "out"], "out"),
    (["--enhanced", "s3://bucket/run=3/"], "s3://bucket/run=3/"),  # an = inside a URI is not a name
    (["--enhanced", "runs/att=6"], "runs/att=6"),
    (["--enhanced", "v1=out1", "--enhanced", "v2=s3://b/k=v"], {"v1": "out1", "v2": "s3://b/k=v"}),
    (["--enhanced", "att12=out"], {"att12": "out"}),
])
def test_enhanced_flag_names_systems_and_keeps_a_plain_uri(flags, expected):
    config = load_job().parse_args([*flags, "--output", "o", "--noisy", "n"]).config
    assert config.enhanced == expected
    assert config.systems == ({"enhanced": expected} if isinstance(expected, str) else expected)


@pytest.mark.parametrize("flags, message", [
    (["--enhanced", "a", "--enhanced", "b"], "name each enhanced set when giving several"),
    (["--enhanced", "v=a", "--enhanced", "v=b"], "each enhanced set needs its own name"),
    (["--enhanced", "noisy=a"], "system name 'noisy' is taken by the noisy files"),
    (["--enhanced", "rnnoise=a", "--baseline", "rnnoise"], "system name 'rnnoise' is given twice"),
    (["--output", "o"], "nothing to evaluate: give an enhanced set or a baseline"),
    (["--baseline", "rnnoise", "--clean", "c", "--metrics", "si_sdr"], "baselines run on the noisy files"),
    (["--enhanced", "e", "--asr", "pocketsphinx"], "word error rates need reference text"),
    (["--enhanced", "e", "--clean", "c", "--asr", "no_such_module_here:x"], "cannot import 'no_such_module_here'"),
    (["--enhanced", "e", "--transcripts", "t.txt"], "give asr too"),
])
def test_flags_that_cannot_be_evaluated_are_usage_errors(flags, message, capsys):
    flags = flags if "--output" in flags else [*flags, "--output", "o"]
    with pytest.raises(SystemExit):
        load_job().parse_args(flags)
    assert message in capsys.readouterr().err


def test_systems_table_gives_each_system_its_mean_and_paired_gain():
    results = pd.DataFrame({
        "key": ["a", "a", "b", "b", "c", "c"],
        "system": ["v1", "v2"] * 3,
        "error": [None] * 6,
        "pesq_wb": [2.0, 3.0, 2.5, 3.5, 3.0, 4.0],
        "noisy_pesq_wb": [1.0, 1.0, 1.5, 1.5, 2.0, 2.0],
        "wer": [10.0, 5.0, 20.0, 10.0, 30.0, 15.0],
        "noisy_wer": [20.0, 20.0, 30.0, 30.0, 40.0, 40.0],
        "clean_wer": [0.0] * 6,
    })
    per_system, rows = summarize_systems(results, ["pesq_wb", "wer"], ["v1", "v2"])
    assert [row.system for row in rows] == ["noisy", "clean", "v1", "v2"]
    assert [summary.difference.mean for summary in per_system["v2"]] == pytest.approx([2.0, -20.0])
    table = render_systems_table(rows)
    # v1 gains exactly 1.0 PESQ and -10 WER on every file: intervals of zero width.
    assert table.splitlines()[0] == "| System | Files | PESQ-WB | WER (%) |"
    assert "| noisy | 3 | 1.50 [0.26, 2.74] | 30.0 [5.2, 54.8] |" in table
    assert "| clean | 3 | - | 0.0 [0.0, 0.0] |" in table
    assert ("| v1 | 3 | 2.50 [1.26, 3.74] (Δ +1.00 [+1.00, +1.00]) | 20.0 [-4.8, 44.8] (Δ -10.0 [-10.0, -10.0]) |"
            in table)
