"""In-process enhancement: segments, level, stitching, and the segment reader the job uses."""

import numpy as np
import pytest
import soundfile as sf
import torch

from ansray.denoise import files
from ansray.denoise.files import plan_file, read_segments
from ansray.enhancement import MODEL_RATE, SegmentOptions, enhance, enhance_batch, inference_model, model_length
from ansray.io import audio_info, list_audio, read_audio, resample
from ansray.level import level_gains
from ansray.metrics import si_sdr
from ansray.model import FRCRN, MODEL_SIZES
from ansray.segments import (
    StitchInOrder,
    cut_segment,
    overlap_add,
    plan_segments,
    segment_weights,
    segments_in_order,
)
from frcrn_fixture import FIXTURE_DIR, canonical_state_dict

SPEECH = FIXTURE_DIR.parent / "speech" / "198-209-0000.ogg"


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return inference_model(FRCRN(MODEL_SIZES["tiny"]).eval())


@pytest.mark.parametrize("fit", [False, True])
@pytest.mark.parametrize("num_samples", [0, 1, 5000, 160000, 543210])
def test_cut_and_overlap_add_reconstruct_the_signal_exactly(num_samples, fit):
    plan = plan_segments(num_samples, 160000, 16000, fit=fit)
    signal = np.random.default_rng(0).standard_normal((2, num_samples)).astype(np.float32)
    stitched = overlap_add([cut_segment(signal, plan, j) for j in range(plan.count)], plan)
    np.testing.assert_allclose(stitched, signal, atol=1e-6)


@pytest.mark.parametrize("fit", [False, True])
@pytest.mark.parametrize("num_samples", [1, 5000, 160000, 543210])
@pytest.mark.parametrize("chunk", [1000, 70001, 10**6])
def test_streamed_cutting_and_stitching_equal_the_whole_signal_forms(num_samples, fit, chunk):
    plan = plan_segments(num_samples, 160000, 16000, fit=fit)
    signal = np.random.default_rng(0).standard_normal((2, num_samples)).astype(np.float32)
    chunks = (signal[:, a : a + chunk] for a in range(0, num_samples, chunk))
    segments = list(segments_in_order(chunks, plan, (2,)))
    assert len(segments) == plan.count
    for j, segment in enumerate(segments):
        np.testing.assert_array_equal(segment, cut_segment(signal, plan, j))
    # Stitching in order hands out each finished stretch once; together they are the weighted sum of
    # all segments at their places, bit for bit.
    processed = [np.sin(segment) for segment in segments]  # anything that differs across an overlap
    summed = np.zeros((2, (plan.count - 1) * plan.hop + plan.segment), np.float32)
    for j, segment in enumerate(processed):
        summed[:, j * plan.hop : j * plan.hop + plan.segment] += segment * segment_weights(plan, j)
    stitch = StitchInOrder(plan)
    streamed = np.concatenate([stitch.add(segment) for segment in processed], axis=-1)
    np.testing.assert_array_equal(streamed, summed[:, plan.edge : plan.edge + num_samples])
    np.testing.assert_array_equal(overlap_add(processed, plan), streamed)
    with pytest.raises(ValueError, match="already added"):
        stitch.add(processed[0])


def test_a_stream_shorter_than_its_plan_is_an_error():
    plan = plan_segments(50000, 16000, 4800)
    with pytest.raises(ValueError, match="ended at sample 40000 of 50000"):
        list(segments_in_order([np.zeros(40000, np.float32)], plan))


def test_crossfade_weights_sum_to_one_everywhere():
    plan = plan_segments(500000, 96000, 16000)
    total = np.zeros((plan.count - 1) * plan.hop + plan.segment)
    for j in range(plan.count):
        total[j * plan.hop : j * plan.hop + plan.segment] += segment_weights(plan, j)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_short_signals_are_padded_into_one_segment_not_dropped():
    plan = plan_segments(4800, 160000, 16000)
    assert plan.count == 1 and plan.segment == 160000


@pytest.mark.parametrize("seconds", [0.3, 4.0, 9.9, 10.0, 30.0, 61.7])
def test_fitted_segments_keep_the_count_and_cover_the_signal_with_least_padding(seconds):
    num_samples = int(seconds * 16000)
    fixed = plan_segments(num_samples, 160000, 16000)
    fitted = plan_segments(num_samples, 160000, 16000, fit=True)
    covered = (fitted.count - 1) * fitted.hop + fitted.segment
    assert fitted.count == fixed.count and fitted.segment <= fixed.segment
    assert fitted.segment % 320 == 0 and covered >= num_samples + 2 * fitted.edge
    assert covered - 320 * fitted.count < num_samples + 2 * fitted.edge or fitted.segment == 640  # one hop short would not cover
    if fitted.count > 1:
        assert fitted.overlap == fixed.overlap


def test_segment_lengths_are_multiples_of_the_stft_hop():
    plan = SegmentOptions(segment_seconds=7.01, overlap_seconds=0.77).plan(100000)
    assert plan.segment % 320 == 0 and plan.overlap % 320 == 0


def test_level_gain_matches_modelscope_audio_norm():
    x = np.random.default_rng(1).standard_normal(48000) * np.linspace(0.01, 0.3, 48000)
    # ModelScope's audio_norm, written out: two successive scalings.
    y = x * (10 ** (-25 / 20) / np.sqrt(np.mean(x**2)))
    power = y**2
    y = y * (10 ** (-25 / 20) / np.sqrt(power[power > power.mean()].mean()))
    np.testing.assert_allclose(x[:, None] * level_gains(x[:, None].astype(np.float32)), y[:, None], rtol=1e-4)


def test_level_gain_measured_in_windows_equals_the_whole_signal_at_once():
    x = (np.random.default_rng(2).standard_normal((48001, 2)) * np.linspace(0.01, 0.3, 48001)[:, None]).astype(np.float32)
    np.testing.assert_allclose(level_gains(x, window=1000), level_gains(x, window=len(x)), rtol=1e-6)


def test_silent_channel_keeps_unit_gain():
    assert level_gains(np.zeros((1000, 1), np.float32))[0] == 1.0


@pytest.mark.parametrize("whole_file_seconds", [60.0, 0.0], ids=["decoded-once", "window-by-window"])
@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_segments_read_from_storage_equal_the_whole_file_resampled(tmp_path, monkeypatch, rate, whole_file_seconds):
    data = (0.1 * np.random.default_rng(rate).standard_normal((rate * 23, 2))).astype(np.float32)
    sf.write(tmp_path / "x.wav", data, rate, subtype="FLOAT")
    (ref,) = list_audio(str(tmp_path / "x.wav"))
    options = SegmentOptions(segment_seconds=4.0, overlap_seconds=0.5)
    monkeypatch.setattr(files, "WHOLE_FILE_SECONDS", whole_file_seconds)
    decodes = []
    monkeypatch.setattr(files, "read_audio", lambda *a, **k: decodes.append(k) or read_audio(*a, **k))

    reader = files.SourceReader(ref, audio_info(ref.uri))
    plan = plan_file(ref, reader.info, str(tmp_path / "out"), options, reader=reader)
    whole = resample(data * np.asarray(plan.gains, np.float32), rate, MODEL_RATE).T
    assert whole.shape[1] == model_length(len(data), rate) == plan.model_samples
    for j in range(plan.segments.count):
        np.testing.assert_allclose(read_segments(plan, j, reader=reader), cut_segment(whole, plan.segments, j), atol=1e-6)
    # Decoded once, or once per level window (30 s: one per pass) and per segment.
    assert len(decodes) == (1 if whole_file_seconds else 2 + plan.segments.count)


def test_enhance_keeps_shape_rate_and_length(tiny_model):
    for shape, rate in (((44100 * 3,), 44100), ((8000 * 2, 2), 8000), ((333,), 16000)):
        data = (0.1 * np.random.default_rng(0).standard_normal(shape)).astype(np.float32)
        out = enhance(data, rate, tiny_model, segment_seconds=2.0, overlap_seconds=0.5)
        assert out.shape == data.shape and out.dtype == np.float32


@pytest.mark.parametrize("rate, channels, batch", [(44100, 2, 3), (16000, 1, 1), (8000, 1, 2)])
def test_streamed_enhance_equals_each_step_on_the_whole_signal(tiny_model, rate, channels, batch):
    """enhance streams (resample, cut, stitch, resample back chunk by chunk); the result must be that of
    the same steps applied to whole arrays, so streaming changes memory and nothing else."""
    data = (0.1 * np.random.default_rng(rate).standard_normal((int(rate * 7.3), channels))).astype(np.float32)
    gains = level_gains(data)
    plan = SegmentOptions(2.0, 0.5).plan(model_length(len(data), rate), fit=True)
    at_model_rate = resample(data * gains, rate, MODEL_RATE).T
    segments = [cut_segment(at_model_rate, plan, j) for j in range(plan.count)]
    enhanced = [enhance_batch(tiny_model, segment) for segment in segments]
    whole = resample(np.ascontiguousarray(overlap_add(enhanced, plan).T), MODEL_RATE, rate)[: len(data)] / gains
    streamed = enhance(data, rate, tiny_model, segment_seconds=2.0, overlap_seconds=0.5, batch_size=batch)
    np.testing.assert_allclose(streamed, whole, atol=1e-6)


def test_non_finite_input_is_refused(tiny_model):
    data = np.zeros(16000, np.float32)
    data[12345] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        enhance(data, 16000, tiny_model)


def test_stereo_channels_are_enhanced_independently(tiny_model):
    rng = np.random.default_rng(3)
    stereo = (0.1 * rng.standard_normal((16000 * 5, 2))).astype(np.float32)
    stereo[:, 1] *= 0.2
    together = enhance(stereo, 16000, tiny_model, segment_seconds=2.0, overlap_seconds=0.5)
    for channel in range(2):
        alone = enhance(stereo[:, channel], 16000, tiny_model, segment_seconds=2.0, overlap_seconds=0.5)
        np.testing.assert_allclose(together[:, channel], alone, atol=1e-5)


def test_output_level_follows_the_input_level(tiny_model):
    data = (0.1 * np.random.default_rng(4).standard_normal(16000 * 3)).astype(np.float32)
    quiet = enhance(data * 0.01, 16000, tiny_model)
    loud = enhance(data, 16000, tiny_model)
    np.testing.assert_allclose(quiet * 100, loud, rtol=1e-3, atol=1e-6)


def test_stitched_output_matches_one_pass_on_noisy_speech():
    """Segmentation changes FRCRN's squeeze-excitation averages, so equality is impossible; the
    issue's bar is >= 30 dB SI-SDR against one pass at the default settings, with smooth boundaries."""
    model = FRCRN().eval()
    model.load_state_dict(canonical_state_dict(), strict=True)
    network = inference_model(model)
    speech, rate = sf.read(SPEECH, dtype="float32")
    assert rate == MODEL_RATE
    speech = np.concatenate([speech, speech[: int(3.5 * rate)]])  # 17.4 s
    noise = np.random.default_rng(1).standard_normal(len(speech)).astype(np.float32)
    noisy = speech + 0.05 * np.abs(speech).max() * noise
    one_pass = enhance(noisy, rate, network, segment_seconds=None)
    defaults = SegmentOptions()
    stitched = enhance(noisy, rate, network, fit_segments=False)  # the job's fixed length, for batches > 1
    assert si_sdr(stitched, one_pass) >= 30.0
    assert si_sdr(enhance(noisy, rate, network), one_pass) >= 30.0  # fitted to the signal, as the job does at batch 1
    plan = defaults.plan(len(noisy))
    assert plan.count >= 2
    jumps, reference_jumps = np.abs(np.diff(stitched)), np.abs(np.diff(one_pass))
    for j in range(1, plan.count):
        start = plan.start(j)
        boundary = jumps[start : start + plan.overlap].max()
        # The signal's own sample-to-sample range: the one-pass output's within a second of the
        # cross-fade. 10% over it is what a 30 dB match allows; a splice click would be far above.
        local = reference_jumps[max(start - rate, 0) : start + plan.overlap + rate].max()
        assert boundary <= 1.1 * local, f"boundary {j}: jump {boundary} above the local range {local}"
