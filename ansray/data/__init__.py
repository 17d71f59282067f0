"""Training data for FRCRN, DNS Challenge style.

mix.py: activity detection, clip building and SNR mixing (shared by synthesis and on-the-fly mixing);
rir.py: synthetic RIRs and T60; sources.py: probing and reading source corpora; layouts.py: the dns
and shards output layouts; synthesis.py: the Ray Data synthesis job's library; pairs.py: reading a
set back as (noisy, clean) pairs; synthetic.py: speech- and noise-like signals for tests and demos;
noises.py: babble, music, hum, clicks, traffic, office and other noises for starter corpora.
"""

from ansray.data.mix import (
    Clip,
    ClipBuildError,
    MixConfig,
    MixMeta,
    Piece,
    active_fraction,
    build_clip,
    draw_reverb,
    measure_snr,
    mix,
    mixture_rng,
    normalize_rms,
)

__all__ = [
    "Clip",
    "ClipBuildError",
    "MixConfig",
    "MixMeta",
    "Piece",
    "active_fraction",
    "build_clip",
    "draw_reverb",
    "measure_snr",
    "mix",
    "mixture_rng",
    "normalize_rms",
]
