"""Builds the bundled examples/: one real speech clip mixed with real recorded noise, as archives hold them.

    python scripts/make_examples.py [--shared ../shared/audio] [--output examples]

- speech-whale-ocean.ogg: 44.1 kHz mono, the LibriSpeech clip with the Glacier Bay hydrophone recording
  (humpback song and ocean noise, high-passed at 100 Hz to drop its sub-audible rumble) at 5 dB SNR;
- speech-jazz.ogg: 44.1 kHz stereo, the same clip on both channels with a stereo jazz excerpt at 10 dB SNR.

The sources and their licences are in the shared audio folder; examples/*.LICENSE.txt copy them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, sosfiltfilt

from ansray.io.resample import resample

RATE = 44100


def at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """speech + noise scaled to `snr_db` (power over the whole clip), both [T] or [T, C]."""
    noise = noise[: len(speech)]
    gain = np.sqrt(np.mean(speech**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return speech + gain * noise


def peak_normalised(signal: np.ndarray, peak: float = 0.5) -> np.ndarray:
    return (signal * (peak / np.abs(signal).max())).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "audio")
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parents[1] / "examples")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)

    speech, rate = sf.read(args.shared / "198-209-0000.ogg", dtype="float32")
    speech = resample(speech[:, None], rate, RATE)[:, 0].astype(np.float64)

    whale, rate = sf.read(args.shared / "glacier-bay-humpback.ogg", dtype="float64")
    whale = sosfiltfilt(butter(4, 100, "highpass", fs=rate, output="sos"), whale)
    whale = whale[5 * rate :]  # past the recording's fade-in
    sf.write(args.output / "speech-whale-ocean.ogg", peak_normalised(at_snr(speech, whale, 5.0)), RATE,
             format="OGG", subtype="VORBIS")

    music, rate = sf.read(args.shared / "vibe-ace-music.ogg", dtype="float64")  # stereo
    both = np.stack([speech, speech], axis=1)
    sf.write(args.output / "speech-jazz.ogg", peak_normalised(at_snr(both, music[10 * rate :], 10.0)), RATE,
             format="OGG", subtype="VORBIS")


if __name__ == "__main__":
    main()
