"""Specification of ansray.denoise.files: a file's segments, read from storage, equal the whole file resampled."""

import numpy as np
import pytest
import soundfile as sf

from ansray.denoise import files
from ansray.denoise.files import plan_file, read_segments
from ansray.io import audio_info, list_audio, read_audio, resample
from ansray.segments import MODEL_RATE, SegmentOptions, model_length
from ansray.testing.segments import cut_segment


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
