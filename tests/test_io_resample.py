"""Specification of ansray.io.resample: flat passband, no aliasing or imaging, any layout."""

import numpy as np
import pytest
from scipy.signal import chirp, welch

from ansray.io import StreamResampler, resample


def sweep(rate, seconds=4.0, low=20.0, high=None):
    """A logarithmic sine sweep [frames], float32, covering low..high Hz (default: to 0.96 Nyquist)."""
    time = np.arange(int(rate * seconds)) / rate
    high = 0.48 * rate if high is None else high
    return (0.5 * chirp(time, low, time[-1], high, method="logarithmic")).astype(np.float32)


def tone(rate, frequency, seconds=1.0):
    time = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * frequency * time)).astype(np.float32)


def band_energy_db(signal, rate, low, high):
    frequencies, power = welch(signal, rate, nperseg=4096)
    band = (frequencies >= low) & (frequencies <= high)
    return 10 * np.log10(power[band].sum())


@pytest.mark.parametrize("low, high, tolerance_db", [(0, 7500, 0.1), (0, 7000, 0.01), (7000, 7500, 0.1)])
def test_round_trip_48k_16k_48k_keeps_the_speech_band(low, high, tolerance_db):
    original = sweep(48000)

    back = resample(resample(original, 48000, 16000), 16000, 48000)

    change = band_energy_db(back, 48000, low, high) - band_energy_db(original, 48000, low, high)
    assert abs(change) < tolerance_db


@pytest.mark.parametrize(
    "from_rate, to_rate", [(48000, 16000), (44100, 16000), (96000, 8000), (22050, 16000)]
)
def test_downsampling_removes_what_the_new_rate_cannot_hold(from_rate, to_rate):
    just_above_nyquist = tone(from_rate, 0.51 * to_rate)  # would alias to 0.49 * to_rate

    aliased = resample(just_above_nyquist, from_rate, to_rate)

    # 120 dB: 24 dB under the noise floor of 16-bit audio.
    middle = aliased[to_rate // 10 : -to_rate // 10]
    assert 10 * np.log10(np.mean(middle**2) / np.mean(just_above_nyquist**2)) < -120


@pytest.mark.parametrize("relative_frequency", [0.1, 0.3])
@pytest.mark.parametrize("from_rate, to_rate", [(16000, 48000), (8000, 44100), (22050, 96000)])
def test_an_upsampled_tone_equals_the_tone_sampled_at_the_new_rate(from_rate, to_rate, relative_frequency):
    frequency = relative_frequency * from_rate

    upsampled = resample(tone(from_rate, frequency), from_rate, to_rate)

    # Any image, gain error or delay shows up in the difference.
    ideal = tone(to_rate, frequency)
    middle = slice(to_rate // 10, -to_rate // 10)
    error = np.mean((upsampled[middle] - ideal[middle]) ** 2) / np.mean(ideal[middle] ** 2)
    assert 10 * np.log10(error) < -110


@pytest.mark.parametrize("from_rate, to_rate", [(44100, 16000), (16000, 22050), (8000, 48000)])
def test_a_tone_keeps_its_level_across_rates(from_rate, to_rate):
    converted = resample(tone(from_rate, 1000.0), from_rate, to_rate)

    middle = converted[to_rate // 10 : -to_rate // 10]
    assert 10 * np.log10(np.mean(middle**2) / 0.125) == pytest.approx(0.0, abs=0.01)
    assert len(converted) == pytest.approx(to_rate, abs=1)


def test_channels_are_resampled_independently():
    stereo = np.stack([tone(48000, 440.0), sweep(48000, seconds=1.0)], axis=1)

    converted = resample(stereo, 48000, 16000)

    assert converted.shape == (16000, 2)
    for channel in range(2):
        np.testing.assert_allclose(
            converted[:, channel], resample(stereo[:, channel], 48000, 16000), atol=1e-6
        )


def test_output_is_float32_whatever_the_input_float_type():
    assert resample(tone(16000, 440.0).astype(np.float64), 16000, 8000).dtype == np.float32
    assert resample(tone(16000, 440.0), 16000, 8000).dtype == np.float32


def test_equal_rates_return_the_input_unchanged():
    signal = sweep(16000, seconds=0.5)

    assert resample(signal, 16000, 16000) is signal
    np.testing.assert_array_equal(resample(signal.astype(np.float64), 16000, 16000), signal)


def test_non_positive_rates_are_refused():
    with pytest.raises(ValueError):
        resample(tone(16000, 440.0), 16000, 0)


@pytest.mark.parametrize("from_rate, to_rate", [(44100, 16000), (16000, 48000), (8000, 16000), (16000, 16000)])
@pytest.mark.parametrize("channels", [1, 2])
def test_streamed_chunks_equal_the_whole_signal_resampled(from_rate, to_rate, channels):
    data = np.random.default_rng(channels).standard_normal((from_rate * 3 + 17, channels)).astype(np.float32)
    stream = StreamResampler(from_rate, to_rate, channels)
    cuts = [0, 1, 5000, 5001, 40000, len(data)]
    pieces = [stream.push(data[a:b], last=b == len(data)) for a, b in zip(cuts, cuts[1:])]
    np.testing.assert_array_equal(np.concatenate(pieces), resample(data, from_rate, to_rate))


def test_stream_refuses_chunks_of_another_channel_count():
    with pytest.raises(ValueError, match=r"\[frames, 2\]"):
        StreamResampler(44100, 16000, 2).push(np.zeros((100, 1), np.float32))
