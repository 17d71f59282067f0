"""DNS-style mixing: SNR, level, clipping, activity thresholds, clip building and determinism."""

import numpy as np
import pytest

from ansray.data.mix import (
    ClipBuildError,
    MixConfig,
    active_fraction,
    build_clip,
    draw_reverb,
    level_db,
    measure_snr,
    mix,
    mixture_rng,
)
from ansray.data.rir import synthetic_rir
from ansray.data.synthetic import synthetic_noise, synthetic_speech

SR = 16000


def speech(seed, seconds=3.0):
    return synthetic_speech(np.random.default_rng(seed), seconds, SR)


def noise(seed, seconds=3.0, colour="pink"):
    return synthetic_noise(np.random.default_rng(seed), seconds, SR, colour)


def reader(sources):
    return lambda source, start, frames: sources[source][start : start + frames]


@pytest.mark.parametrize(
    "cfg",
    [MixConfig(), MixConfig.icassp2021(), MixConfig(snr_lower=-10, snr_upper=0)],
    ids=["dns2020", "dns2021-segmental-reverb", "negative-snr"],
)
def test_realised_snr_equals_meta_within_a_tenth_of_a_db(cfg):
    for index in range(30):
        rng = mixture_rng(7, index)
        rir = synthetic_rir(rng, 0.5) if draw_reverb(rng, cfg, 1) is not None else None
        noisy, clean, noise_scaled, meta = mix(speech(index), noise(100 + index), rng, cfg, rir)
        assert abs(measure_snr(clean, noise_scaled, cfg) - meta.snr) < 0.1
        np.testing.assert_allclose(noisy, clean + noise_scaled, atol=1e-6)
        assert meta.reverb == (cfg.percent_for_adding_reverb > 0)


def test_level_lies_in_range_and_equals_the_drawn_target_unless_clipped():
    cfg = MixConfig()
    for index in range(50):
        noisy, _, _, meta = mix(speech(index), noise(index), mixture_rng(3, index), cfg)
        assert cfg.target_level_lower <= meta.target_level < cfg.target_level_upper
        assert abs(level_db(noisy) - meta.level) < 0.01
        if meta.clipped:
            assert meta.level < meta.target_level
        else:
            assert abs(meta.level - meta.target_level) < 0.01


def test_snr_and_level_are_integers_with_upper_bound_exclusive():
    cfg = MixConfig(snr_lower=0, snr_upper=3, target_level_lower=-20, target_level_upper=-18)
    clean, noise_ = speech(1, 0.5), noise(2, 0.5)
    metas = [mix(clean, noise_, mixture_rng(0, i), cfg)[3] for i in range(200)]
    assert {m.snr for m in metas} == {0.0, 1.0, 2.0}
    assert {m.target_level for m in metas} == {-20, -19}


def test_snr_grid_of_total_snrlevels_includes_both_bounds():
    cfg = MixConfig(snr_lower=0, snr_upper=20, total_snrlevels=5)
    clean, noise_ = speech(1, 0.5), noise(2, 0.5)
    snrs = {mix(clean, noise_, mixture_rng(0, i), cfg)[3].snr for i in range(200)}
    assert snrs == {0.0, 5.0, 10.0, 15.0, 20.0}


def test_clipping_scales_all_three_signals_together_below_threshold():
    # A peaky clean signal at a loud level must clip: one click 60 dB above a quiet tone.
    clean = 0.001 * np.sin(2 * np.pi * 200 * np.arange(SR) / SR)
    clean[SR // 2] = 1.0
    cfg = MixConfig(snr_lower=30, snr_upper=31, target_level_lower=-16, target_level_upper=-15)
    noisy, clean_out, noise_out, meta = mix(clean, noise(5, 1.0), mixture_rng(0, 0), cfg)
    assert meta.clipped
    for signal in (noisy, clean_out, noise_out):
        assert np.max(np.abs(signal)) < cfg.clipping_threshold
    assert np.max(np.abs(np.concatenate([noisy, clean_out, noise_out]))) > 0.98
    assert abs(measure_snr(clean_out, noise_out, cfg) - 30.0) < 0.1
    assert meta.level < meta.target_level


def test_active_fraction_separates_speech_from_silence():
    assert active_fraction(speech(0)) > 0.6
    assert active_fraction(np.zeros(SR)) == 0.0
    half = np.concatenate([speech(0, 2.0), 1e-6 * noise(0, 2.0)])
    assert 0.3 < active_fraction(half) < 0.6


def test_clean_activity_threshold_skips_silent_clean_sources():
    cfg = MixConfig(audio_length=21.0)  # five whole 4 s sources and their gaps: nothing is cropped
    mostly_silent = np.concatenate([speech(1, 0.5), 1e-5 * noise(1, 3.5)])  # activity about 0.15
    sources = [speech(0, 4.0), mostly_silent, np.zeros(4 * SR, dtype=np.float32)]
    clip = build_clip([len(s) for s in sources], reader(sources), mixture_rng(0, 0), cfg,
                      activity_threshold=cfg.clean_activity_threshold)
    assert [(p.source, p.start) for p in clip.pieces] == [(0, 0)] * 5
    assert dict(clip.skipped) == {1: "inactive", 2: "silent"}
    assert clip.audio.shape == (cfg.clip_frames,)


def test_noise_activity_threshold_zero_accepts_quiet_noise():
    cfg = MixConfig(audio_length=2.0)
    sources = [1e-5 * noise(1, 3.0)]
    clip = build_clip([len(s) for s in sources], reader(sources), mixture_rng(0, 0), cfg,
                      activity_threshold=cfg.noise_activity_threshold)
    assert not clip.skipped and len(clip.pieces) == 1


def test_clipped_sources_are_skipped():
    cfg = MixConfig(audio_length=2.0)
    loud = speech(2, 3.0) * 2.0
    sources = [speech(0, 3.0), loud]
    clip = build_clip([len(s) for s in sources], reader(sources), mixture_rng(0, 4), cfg, activity_threshold=0.0)
    assert {p.source for p in clip.pieces} == {0}
    assert all(reason == "clipped" for source, reason in clip.skipped if source == 1)


def test_short_sources_are_joined_with_silence_and_a_single_noise_is_looped():
    cfg = MixConfig(audio_length=3.9, silence_length=0.2)
    sources = [noise(9, 1.0, "white")]
    clip = build_clip([SR], reader(sources), mixture_rng(0, 0), cfg, activity_threshold=0.0)
    assert [p.frames for p in clip.pieces] == [SR, SR, SR, int(0.3 * SR)]
    assert clip.pieces[3].start > 0
    gap = clip.audio[SR : SR + cfg.silence_frames]
    assert not np.any(gap)
    np.testing.assert_array_equal(clip.audio[SR + cfg.silence_frames : 2 * SR + cfg.silence_frames], sources[0])


def test_long_sources_are_cropped_at_random_offsets():
    cfg = MixConfig(audio_length=1.0)
    sources = [speech(0, 10.0)]
    starts = {build_clip([10 * SR], reader(sources), mixture_rng(0, i), cfg, activity_threshold=0.0).pieces[0].start
              for i in range(10)}
    assert len(starts) == 10 and all(0 <= s < 9 * SR for s in starts)


def test_unreadable_source_is_skipped_and_reported():
    cfg = MixConfig(audio_length=2.0)
    good = speech(0, 3.0)

    def read(source, start, frames):
        if source == 1:
            raise OSError("truncated FLAC frame")
        return good[start : start + frames]

    clip = build_clip([3 * SR, 3 * SR], read, mixture_rng(0, 1), cfg, activity_threshold=0.0, unreadable=(OSError,))
    assert {p.source for p in clip.pieces} == {0}
    assert all(source == 1 and "truncated FLAC frame" in reason for source, reason in clip.skipped)


def test_only_unusable_sources_raise_clip_build_error():
    cfg = MixConfig(audio_length=1.0, max_source_tries=5)
    sources = [np.zeros(SR, dtype=np.float32)]
    with pytest.raises(ClipBuildError, match="5 sources skipped"):
        build_clip([SR], reader(sources), mixture_rng(0, 0), cfg, activity_threshold=0.6)


def test_mixtures_depend_only_on_seed_and_index_not_on_call_order():
    cfg = MixConfig.icassp2021(audio_length=2.0, percent_for_adding_reverb=0.5)
    cleans = [speech(s, 4.0) for s in range(3)]
    noises = [noise(s, 1.5) for s in range(2)]

    def make(index):
        rng = mixture_rng(11, index)
        clean = build_clip([len(c) for c in cleans], reader(cleans), rng, cfg, activity_threshold=0.6)
        noise_clip = build_clip([len(n) for n in noises], reader(noises), rng, cfg, activity_threshold=0.0)
        rir_index = draw_reverb(rng, cfg, 2)
        rir = None if rir_index is None else synthetic_rir(np.random.default_rng(rir_index), 0.4)
        return mix(clean.audio, noise_clip.audio, rng, cfg, rir)

    forward = [make(i) for i in range(8)]
    backward = [make(i) for i in reversed(range(8))][::-1]
    for a, b in zip(forward, backward, strict=True):
        for x, y in zip(a[:3], b[:3], strict=True):
            assert x.tobytes() == y.tobytes()
        assert a[3] == b[3]
    assert len({f[3].snr for f in forward} | {f[3].target_level for f in forward}) > 2


def test_mixture_rng_equals_spawned_seed_sequence():
    spawned = np.random.SeedSequence(5).spawn(4)
    for index, child in enumerate(spawned):
        assert mixture_rng(5, index).integers(1 << 62) == np.random.default_rng(child).integers(1 << 62)
    assert mixture_rng(5, 0).integers(1 << 62) != mixture_rng(6, 0).integers(1 << 62)


@pytest.mark.parametrize("target", ["reverberant", "early", "dry"])
def test_reverb_target_is_the_clean_convolved_with_the_chosen_part_of_the_rir(target):
    cfg = MixConfig(percent_for_adding_reverb=1.0, reverb_target=target)
    rir = synthetic_rir(np.random.default_rng(0), 0.3)
    direct = int(np.argmax(np.abs(rir)))
    kept = {
        "reverberant": rir,
        "early": rir[: direct + int(0.05 * SR) + 1],
        "dry": np.eye(1, direct + 1, direct)[0] * rir[direct],
    }[target]
    source = speech(3, 1.0)
    noisy, clean, noise_scaled, meta = mix(source, noise(3, 1.0), mixture_rng(0, 0), cfg, rir)
    assert meta.reverb and meta.reverb_target == target
    expected = meta.clean_gain * np.convolve(source.astype(np.float64), kept)[: len(source)]
    np.testing.assert_allclose(clean, expected, atol=1e-6)
    reverberant = meta.clean_gain * np.convolve(source.astype(np.float64), rir)[: len(source)]
    np.testing.assert_allclose(noisy - noise_scaled, reverberant, atol=1e-6)
    assert abs(measure_snr(reverberant, noise_scaled, cfg) - meta.snr) < 0.1


def test_config_rejects_empty_ranges():
    with pytest.raises(ValueError, match="upper is exclusive"):
        MixConfig(snr_lower=5, snr_upper=5)
    with pytest.raises(ValueError, match="reverb_target"):
        MixConfig(reverb_target="wet")
    with pytest.raises(ValueError, match="fraction"):
        MixConfig(percent_for_adding_reverb=50)


def test_segmental_mixer_falls_back_to_global_rms_when_speech_is_silent_where_noise_is_active():
    cfg = MixConfig.icassp2021(percent_for_adding_reverb=0.0)
    clean = np.concatenate([speech(0, 1.0), np.zeros(SR, dtype=np.float32)])
    noise_ = np.concatenate([1e-4 * noise(0, 1.0), noise(1, 1.0)])  # active only in the second half
    noisy, clean_out, noise_out, meta = mix(clean, noise_, mixture_rng(0, 0), cfg)
    assert np.all(np.isfinite(noisy))
    assert abs(measure_snr(clean_out, noise_out, cfg) - meta.snr) < 0.1
