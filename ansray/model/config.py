"""FRCRN configuration: defaults are those of ModelScope's released `damo/speech_frcrn_ans_cirm_16k`."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

WINDOW_TYPES = ("hanning", "hann", "none")


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
        if not self.complex:
            raise ValueError("FRCRN is complex-valued: complex=False has no working reference model")
        if self.log_amp:
            raise ValueError("log_amp=True is not used by FRCRN's forward pass; refusing a silent no-op")
        if self.padding_mode != "zeros":
            raise ValueError(f"padding_mode {self.padding_mode!r} is not supported (only 'zeros')")
        if self.model_depth < 4 or self.model_depth % 2:
            raise ValueError(f"model_depth must be an even number >= 4, got {self.model_depth}")
        if self.win_type.lower() not in WINDOW_TYPES:
            raise ValueError(f"win_type must be one of {WINDOW_TYPES}, got {self.win_type!r}")
        if self.win_len > self.fft_len:
            raise ValueError(f"win_len {self.win_len} exceeds fft_len {self.fft_len}")
        if self.channels < 8 or self.channels % 8:
            raise ValueError(f"channels must be a multiple of 8 (squeeze-excitation reduction), got {self.channels}")

    @property
    def freq_bins(self) -> int:
        return self.fft_len // 2 + 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "FRCRNConfig":
        """Builds a config from a `model` section, ignoring keys that don't belong (`type`, ...)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def from_json(cls, path_or_text) -> "FRCRNConfig":
        """Reads ModelScope's `configuration.json` (a path, or its text) and uses its `model` section."""
        text = str(path_or_text)
        if not text.lstrip().startswith("{"):
            with open(text, encoding="utf-8") as f:
                text = f.read()
        document = json.loads(text)
        return cls.from_dict(document.get("model", document))


# Sizes the trainer offers: the released model, and narrower copies of the same architecture.
MODEL_SIZES = {
    "official": FRCRNConfig(),
    "small": FRCRNConfig(channels=64),
    "tiny": FRCRNConfig(channels=16, model_depth=10),
}
