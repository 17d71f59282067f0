"""Specification of ansray.enhance: in-process enhancement of one signal, streamed."""

import numpy as np
import pytest
import soundfile as sf
import torch

from ansray.enhancement import enhance
from ansray.io import resample
from ansray.level import level_gains
from ansray.metrics import si_sdr
from ansray.model import FRCRN, MODEL_SIZES, enhance_batch, inference_model
from ansray.segments import MODEL_RATE, SegmentOptions, model_length, overlap_add
from ansray.testing.segments import cut_segment
from ansray.testing.parity_fixture import FIXTURE_DIR, canonical_state_dict

SPEECH = FIXTURE_DIR.parent / "speech" / "198-209-0000.ogg"


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return inference_model(FRCRN(MODEL_SIZES["tiny"]).eval())


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
