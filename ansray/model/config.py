"""FRCRN configuration: defaults are those of ModelScope's released `damo/speech_frcrn_ans_cirm_16k`."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

WINDOW_TYPES = ("hanning", "hann", "none")
# Every UNet encoder but the deepest has a 5-row frequency kernel at stride 2; the deepest one's
# kernel spans the rows left, so that the bottleneck has one.
ENCODER_FREQ_KERNEL = 5
FREQ_STRIDE = 2
# Field annotations are strings (postponed evaluation); a config read from JSON is checked against them.
FIELD_TYPES = {"bool": bool, "int": int, "str": str}


@dataclass(frozen=True)
class FRCRNConfig:
    """Architecture and STFT settings, named as in ModelScope's `configuration.json` `model` section.

    `channels` is an ansray extension (the reference fixes every layer at 128): the official
    model has `channels=128`; smaller values give the reduced-width models used for CPU training.
    `model_complexity` is accepted for compatibility and unused, as in the reference at depth 14.
    """

    complex: bool = True
    model_complexity: int = 45
    model_depth: int = 14
    log_amp: bool = False
    padding_mode: str = "zeros"
    win_len: int = 640
    win_inc: int = 320
    fft_len: int = 640
    win_type: str = "hanning"
    channels: int = 128

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value, expected = getattr(self, field.name), FIELD_TYPES.get(field.type, field.type)
            # bool is a subclass of int, but `true` for a width (or 1 for a flag) is a mistake, not a value.
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ValueError(f"{field.name} must be {'an' if expected is int else 'a'} {expected.__name__}, "
                                 f"got {value!r}")
        if not self.complex:
            raise ValueError("FRCRN is complex-valued: complex=False has no working reference model")
        if self.log_amp:
            raise ValueError("log_amp=True is not used by FRCRN's forward pass; refusing a silent no-op")
        if self.padding_mode != "zeros":
            raise ValueError(f"padding_mode {self.padding_mode!r} is not supported (only 'zeros')")
        if self.win_type.lower() not in WINDOW_TYPES:
            raise ValueError(f"win_type must be one of {WINDOW_TYPES}, got {self.win_type!r}")
        if self.win_len < 1:
            raise ValueError(f"win_len must be at least 1, got {self.win_len}")
        if not 1 <= self.win_inc <= self.win_len:
            # A hop longer than the window leaves samples that no frame covers.
            raise ValueError(f"win_inc must be between 1 and win_len {self.win_len}, got {self.win_inc}")
        if self.win_len > self.fft_len:
            raise ValueError(f"win_len {self.win_len} exceeds fft_len {self.fft_len}")
        if self.model_depth < 4 or self.model_depth % 2:
            raise ValueError(f"model_depth must be an even number >= 4, got {self.model_depth}")
        deepest = 2 * len(frequency_heights(self.freq_bins))
        if self.model_depth > deepest:
            raise ValueError(f"model_depth {self.model_depth} is too deep for fft_len {self.fft_len} "
                             f"({self.freq_bins} frequency rows allow at most {deepest})")
        if self.channels < 8 or self.channels % 8:
            raise ValueError(f"channels must be a multiple of 8 (squeeze-excitation reduction), got {self.channels}")

    @property
    def sample_rate(self) -> int:
        """The rate the model hears: every FRCRN release and this project's training run at 16 kHz
        (the STFT sizes are in samples of it), so it is a fact of the model, not a setting."""
        return 16000

    @property
    def hop(self) -> int:
        """STFT hop in samples; lengths that are a multiple of it come back from the model unchanged."""
        return self.win_inc

    @property
    def freq_bins(self) -> int:
        return self.fft_len // 2 + 1

    @property
    def unet_heights(self) -> tuple[int, ...]:
        """Frequency rows entering each UNet encoder, then the bottleneck's one:
        (321, 159, 78, 37, 17, 7, 2, 1) for the released model."""
        return (*frequency_heights(self.freq_bins)[: self.model_depth // 2], 1)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "FRCRNConfig":
        """Builds a config from a `model` section, ignoring keys that don't belong (`type`, ...)."""
        if not isinstance(values, dict):
            raise ValueError(f"a model configuration must be a JSON object, got {type(values).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def from_json(cls, text_or_path: str | os.PathLike) -> "FRCRNConfig":
        """Reads ModelScope's `configuration.json` and uses its `model` section.

        A `str` is always the JSON text, never a file name (a config's content must not be able to
        name a file to open); pass a `pathlib.Path` to read a file.
        """
        if isinstance(text_or_path, os.PathLike):
            text_or_path = Path(text_or_path).read_text(encoding="utf-8")
        document = json.loads(text_or_path)
        if not isinstance(document, dict):
            raise ValueError(f"configuration must be a JSON object, got {type(document).__name__}")
        return cls.from_dict(document.get("model", document))


def frequency_heights(freq_bins: int) -> list[int]:
    """Rows entering each encoder, down to the deepest encoder the rows allow ([321, 159, ..., 2] for 321)."""
    heights = [freq_bins]
    while heights[-1] >= ENCODER_FREQ_KERNEL:
        heights.append((heights[-1] - ENCODER_FREQ_KERNEL) // FREQ_STRIDE + 1)
    return heights


# Sizes the trainer offers: the released model, and narrower copies of the same architecture.
MODEL_SIZES = {
    "official": FRCRNConfig(),
    "small": FRCRNConfig(channels=64),
    "tiny": FRCRNConfig(channels=16, model_depth=10),
}
