"""Specification of ansray.io.audio: faithful round trips, windowed reads, typed decode errors."""

import io
import pickle
import struct

import numpy as np
import pytest
import soundfile as sf

import ansray.io.audio
import ansray.io.storage
from ansray.io import (
    AudioDecodeError,
    AudioInfo,
    audio_info,
    downmix,
    encode_audio,
    exists,
    fs_for,
    join_uri,
    list_audio,
    read_audio,
    write_audio,
    write_bytes_atomic,
)

RATES = [8000, 16000, 22050, 44100, 48000, 96000]
CODECS = [
    ("WAV", "PCM_16"),
    ("WAV", "PCM_24"),
    ("WAV", "FLOAT"),
    ("FLAC", "PCM_16"),
    ("FLAC", "PCM_24"),
    ("OGG", "VORBIS"),
]
EXTENSIONS = {"WAV": "wav", "FLAC": "flac", "OGG": "ogg"}
GRID_BITS = {"PCM_16": 16, "PCM_24": 24}


def tones(rate, channels, seconds=0.1, subtype="FLOAT"):
    """[frames, channels]: a different tone in each channel, on the subtype's sample grid."""
    time = np.arange(int(rate * seconds)) / rate
    data = np.stack([0.5 * np.sin(2 * np.pi * (220 + 110 * c) * time) for c in range(channels)], 1)
    if subtype in GRID_BITS:
        scale = 2 ** (GRID_BITS[subtype] - 1)
        data = np.round(data * scale) / scale
    return data.astype(np.float32)


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("format, subtype", CODECS)
@pytest.mark.parametrize("rate", RATES)
def test_round_trip_keeps_rate_channels_format_subtype_and_samples(rate, format, subtype, channels):
    uri = f"memory://round-trip/{rate}-{subtype}-{channels}.{EXTENSIONS[format]}"
    written = tones(rate, channels, subtype=subtype)

    write_audio(uri, written, rate, format=format, subtype=subtype)
    data, read_rate, info = read_audio(uri)

    assert info == AudioInfo(format, subtype, rate, channels, len(written))
    assert read_rate == rate and data.dtype == np.float32 and data.shape == written.shape
    if subtype == "VORBIS":
        # Vorbis maps 6 channels to 5.1 and low-passes the sixth (LFE) channel.
        kept = written[:, :5]
        error = np.sum((data[:, :5] - kept) ** 2, axis=0) / np.sum(kept**2, axis=0)
        assert np.all(10 * np.log10(error) < -20)
    else:
        np.testing.assert_array_equal(data, written)


def test_round_trip_works_on_every_storage(storage_root):
    root, options = storage_root
    uri = join_uri(root, "nested/take.flac")
    written = tones(48000, 2, subtype="PCM_24")

    write_audio(uri, written, 48000, format="FLAC", subtype="PCM_24", storage_options=options)
    data, rate, info = read_audio(uri, storage_options=options)

    np.testing.assert_array_equal(data, written)
    assert rate == 48000
    assert audio_info(uri, storage_options=options) == info == AudioInfo("FLAC", "PCM_24", 48000, 2, 4800)


def test_format_and_subtype_names_are_case_insensitive():
    write_audio("memory://case/a.flac", tones(16000, 1), 16000, format="flac", subtype="pcm_16")

    assert audio_info("memory://case/a.flac") == AudioInfo("FLAC", "PCM_16", 16000, 1, 1600)


WINDOWS = [(0, 100), (1000, 2500), (9950, 200), (10000, 10), (7000, None), (None, 300)]


@pytest.mark.parametrize(
    "format, subtype", [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_24"), ("OGG", "VORBIS")]
)
def test_windowed_read_equals_slice_of_full_read(format, subtype, tmp_path):
    uri = str(tmp_path / f"take.{EXTENSIONS[format]}")
    write_audio(
        uri, tones(16000, 2, seconds=10000 / 16000, subtype=subtype), 16000, format=format, subtype=subtype
    )
    full, _, _ = read_audio(uri)

    for start, frames in WINDOWS:
        window, _, info = read_audio(uri, start=start, frames=frames)
        begin = start or 0
        np.testing.assert_array_equal(window, full[begin : None if frames is None else begin + frames])
        assert info.frames == 10000


def test_windowed_read_on_every_storage(storage_root):
    root, options = storage_root
    uri = join_uri(root, "take.wav")
    write_audio(uri, tones(8000, 2, seconds=1), 8000, format="WAV", subtype="PCM_16", storage_options=options)
    full, _, _ = read_audio(uri, storage_options=options)

    window, _, _ = read_audio(uri, start=4321, frames=1234, storage_options=options)

    np.testing.assert_array_equal(window, full[4321:5555])


def test_negative_windows_are_refused(tmp_path):
    uri = str(tmp_path / "take.wav")
    write_audio(uri, tones(8000, 1), 8000, format="WAV", subtype="PCM_16")

    with pytest.raises(ValueError):
        read_audio(uri, start=-1)
    with pytest.raises(ValueError):
        read_audio(uri, frames=-5)


def test_a_window_fetches_about_its_own_bytes_not_the_whole_file(tmp_path, monkeypatch):
    uri = str(tmp_path / "long.wav")
    write_audio(uri, np.zeros((16000 * 60, 1), np.float32), 16000, format="WAV", subtype="PCM_16")
    opened = []

    def counting_open_input(uri, storage_options=None):
        file = CountingReader(ansray.io.storage.open_input(uri, storage_options))
        opened.append(file)
        return file

    monkeypatch.setattr(ansray.io.audio, "open_input", counting_open_input)
    read_audio(uri, start=16000 * 30, frames=16000)

    window_bytes = 16000 * 2
    assert opened[0].bytes_read < 2 * window_bytes + 65536


class CountingReader(io.RawIOBase):
    def __init__(self, file):
        self.file, self.bytes_read = file, 0

    def readinto(self, buffer):
        count = self.file.readinto(buffer)
        self.bytes_read += count
        return count

    def seek(self, offset, whence=io.SEEK_SET):
        return self.file.seek(offset, whence)

    def tell(self):
        return self.file.tell()

    def readable(self):
        return True

    def seekable(self):
        return True

    def close(self):
        self.file.close()
        super().close()


def good_bytes(format="WAV", subtype="PCM_16", data=None):
    data = tones(16000, 2, seconds=3) if data is None else data
    return encode_audio(data, 16000, format, subtype)


def with_wav_format_tag(tag):
    raw = bytearray(good_bytes())
    fmt = raw.find(b"fmt ")
    raw[fmt + 8 : fmt + 10] = struct.pack("<H", tag)
    return bytes(raw)


def float_wav_with(value):
    data = tones(16000, 1)
    data[100] = value
    encoded = io.BytesIO()  # encode_audio itself refuses NaN and Inf
    sf.write(encoded, data, 16000, format="WAV", subtype="FLOAT")
    return encoded.getvalue()


def cut(raw, fraction=2 / 3):
    return raw[: int(len(raw) * fraction)]


BAD_INPUTS = {
    "empty file": ("take.wav", lambda: b"", "empty"),
    "zero-frame file": ("take.wav", lambda: good_bytes(data=np.zeros((0, 2), np.float32)), "no audio frames"),
    "truncated wav": ("take.wav", lambda: cut(good_bytes()), "truncated"),
    "truncated flac": ("take.flac", lambda: cut(good_bytes("FLAC", "PCM_16")), "not decodable"),
    "ogg cut between pages": ("take.ogg", lambda: cut(good_bytes("OGG", "VORBIS"), 0.5), "truncated"),
    "ogg cut inside a page": ("take.ogg", lambda: cut(good_bytes("OGG", "VORBIS"), 0.9), "truncated"),
    "text with an audio extension": (
        "take.wav",
        lambda: b"this is a README, not audio\n" * 20,
        "not decodable",
    ),
    "unsupported codec": ("take.wav", lambda: with_wav_format_tag(0x1234), "not decodable"),
    "NaN samples": ("take.wav", lambda: float_wav_with(np.nan), "NaN"),
    "Inf samples": ("take.wav", lambda: float_wav_with(np.inf), "Inf"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_each_unusable_input_raises_audio_decode_error_naming_the_uri(case, storage_root):
    root, options = storage_root
    name, make_bytes, reason = BAD_INPUTS[case]
    uri = join_uri(root, name)
    write_bytes_atomic(uri, make_bytes(), options)

    with pytest.raises(AudioDecodeError) as raised:
        read_audio(uri, storage_options=options)

    assert raised.value.uri == uri
    assert uri in str(raised.value) and reason in str(raised.value)
    assert reason in raised.value.reason


@pytest.mark.parametrize(
    "case",
    [
        "empty file",
        "zero-frame file",
        "truncated wav",
        "ogg cut inside a page",
        "text with an audio extension",
        "unsupported codec",
    ],
)
def test_audio_info_refuses_what_the_header_shows_to_be_unusable(case, tmp_path):
    name, make_bytes, reason = BAD_INPUTS[case]
    uri = str(tmp_path / name)
    write_bytes_atomic(uri, make_bytes())

    with pytest.raises(AudioDecodeError, match=reason):
        audio_info(uri)


def test_a_missing_object_raises_audio_decode_error(storage_root):
    root, options = storage_root
    uri = join_uri(root, "never-written.wav")

    with pytest.raises(AudioDecodeError, match="not found") as raised:
        read_audio(uri, storage_options=options)
    assert raised.value.uri == uri and uri in str(raised.value)


def test_an_object_removed_after_listing_raises_audio_decode_error(storage_root):
    root, options = storage_root
    write_audio(
        join_uri(root, "take.wav"),
        tones(8000, 1),
        8000,
        format="WAV",
        subtype="PCM_16",
        storage_options=options,
    )
    [ref] = list_audio(root, storage_options=options)
    fs, path = fs_for(ref.uri, options)
    fs.rm_file(path)

    with pytest.raises(AudioDecodeError, match="not found") as raised:
        read_audio(ref.uri, storage_options=options)
    assert ref.uri in str(raised.value)


def test_an_object_we_may_not_read_raises_audio_decode_error(monkeypatch):
    uri = "memory://forbidden/take.wav"
    write_audio(uri, tones(8000, 1), 8000, format="WAV", subtype="PCM_16")
    fs, _ = fs_for(uri)

    def refuse(*args, **kwargs):
        raise PermissionError("Access Denied")  # what s3fs raises for an S3 403

    monkeypatch.setattr(fs, "_open", refuse)

    with pytest.raises(AudioDecodeError, match="permission denied") as raised:
        read_audio(uri)
    assert uri in str(raised.value)


def test_audio_decode_error_survives_pickling_as_ray_ships_it():
    error = pickle.loads(pickle.dumps(AudioDecodeError("s3://b/x.wav", "truncated data")))

    assert (error.uri, error.reason) == ("s3://b/x.wav", "truncated data")
    assert str(error) == "s3://b/x.wav: truncated data"


@pytest.mark.parametrize(
    "format, subtype, peak, trough",
    [
        ("WAV", "PCM_16", 32767, -32768),
        ("FLAC", "PCM_16", 32767, -32768),
        ("WAV", "PCM_24", 8388607, -8388608),
        ("FLAC", "PCM_24", 8388607, -8388608),
    ],
)
def test_pcm_conversion_clips_loud_peaks_instead_of_wrapping(format, subtype, peak, trough):
    data = np.array([[1.5], [-1.5], [1.0], [-1.0], [0.5]], np.float32)
    samples, _ = sf.read(io.BytesIO(encode_audio(data, 16000, format, subtype)), dtype="int32")

    half = 2 ** (GRID_BITS[subtype] - 2)
    assert list(samples >> (32 - GRID_BITS[subtype])) == [peak, trough, peak, trough, half]


def test_float_files_keep_samples_beyond_full_scale(tmp_path):
    uri = str(tmp_path / "hot.wav")
    write_audio(uri, np.array([1.5, -2.0, 0.25], np.float32), 8000, format="WAV", subtype="FLOAT")

    data, _, _ = read_audio(uri)

    assert data[:, 0].tolist() == [1.5, -2.0, 0.25]


def test_writing_nan_samples_is_refused_and_writes_nothing(tmp_path):
    uri = str(tmp_path / "bad.wav")

    with pytest.raises(ValueError, match="NaN"):
        write_audio(uri, np.array([0.0, np.nan], np.float32), 8000, format="WAV", subtype="PCM_16")
    assert not exists(uri)


def test_a_subtype_the_format_cannot_hold_is_refused():
    with pytest.raises(ValueError, match="FLAC"):
        encode_audio(tones(8000, 1), 8000, "FLAC", "FLOAT")


def test_encoded_flac_bytes_decode_to_the_same_samples():
    data = tones(16000, 2, subtype="PCM_16")

    decoded, rate = sf.read(io.BytesIO(encode_audio(data, 16000, "FLAC", "PCM_16")), dtype="float32")

    assert rate == 16000
    np.testing.assert_array_equal(decoded, data)


def test_mono_one_dimensional_input_is_written_as_one_channel(tmp_path):
    uri = str(tmp_path / "mono.wav")
    write_audio(uri, tones(8000, 1)[:, 0], 8000, format="WAV", subtype="PCM_16")

    assert audio_info(uri).channels == 1


def test_channels_keep_their_order(tmp_path):
    uri = str(tmp_path / "six.wav")
    data = np.tile(np.arange(6, dtype=np.float32) / 8, (100, 1))
    write_audio(uri, data, 8000, format="WAV", subtype="FLOAT")

    read, _, _ = read_audio(uri)

    np.testing.assert_array_equal(read, data)


def test_downmix_averages_channels_into_one():
    data = np.array([[1.0, 0.5], [-1.0, 0.0]], np.float32)

    np.testing.assert_array_equal(downmix(data), [[0.75], [-0.5]])
    assert downmix(data[:, 0]).shape == (2, 1)
    assert downmix(data).dtype == np.float32


def test_duration_is_frames_over_rate():
    assert AudioInfo("WAV", "PCM_16", 22050, 2, 44100).duration == 2.0
