"""Specification of ansray.segments: planning, cutting and stitching segments, whole and streamed."""

import numpy as np
import pytest

from ansray.segments import (
    SegmentOptions,
    StitchInOrder,
    overlap_add,
    plan_segments,
    segment_weights,
    segments_in_order,
)
from ansray.testing.segments import cut_segment


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
