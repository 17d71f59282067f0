"""What a denoise job is asked to do: `DenoiseConfig`, filled from the job's flags."""

from __future__ import annotations

from dataclasses import dataclass, field

from ansray.denoise.files import Finishing
from ansray.segments import SegmentOptions


@dataclass(frozen=True)
class DenoiseConfig:
    inputs: tuple[str, ...]
    output: str
    model: str
    manifest: str | None = None
    actors: tuple[int, int] = (1, 1)
    gpus_per_actor: float = 0.0
    cpus_per_actor: float = 1.0
    segments: SegmentOptions = field(default_factory=SegmentOptions)
    dtype: str = "float32"
    output_format: str = "same"
    suffix: str | None = None
    overwrite: bool = False
    mixdown: bool = False
    limit: int | None = None
    storage_options: dict | None = None
    address: str | None = None
    quality: tuple[str, ...] = ()  # no-reference scores of input and output in the manifest: "dnsmos"
    attenuation_limit_db: float | None = None  # None: full suppression, as the model does it
    if_worse: str | None = None  # "keep-input" or "attenuate" where DNSMOS OVRL drops (needs "dnsmos")
    if_worse_limit_db: float = 6.0

    @property
    def finishing(self) -> Finishing:
        return Finishing(self.quality, self.attenuation_limit_db, self.if_worse, self.if_worse_limit_db)
