"""What a training run is: `TrainConfig`, whose defaults are FRCRN's published training recipe.

Sources of the defaults: ModelScope `damo/speech_frcrn_ans_cirm_16k` `configuration.json` (`train`
section) and ClearerVoice-Studio's FRCRN_SE_16K recipe; each field below names its source.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from ansray.data.mix import MixConfig
from ansray.model import MODEL_SIZES, FRCRNConfig
from ansray.model.loss import LOSS_MODES
from ansray.precision import canonical_precision

SEGMENT_MODES = ("fixed", "random")

# ModelScope configuration.json, train section, and ClearerVoice FRCRN_SE_16K.
RECIPE_LR = 1e-3  # optimizer.lr (ModelScope); ClearerVoice init_learning_rate
RECIPE_FINETUNE_LR = 1e-4  # ClearerVoice: learning rate when fine-tuning from released weights
RECIPE_WEIGHT_DECAY = 1e-5  # optimizer.weight_decay, on all parameters
RECIPE_CLIP_GRAD_NORM = 10.0  # optimizer grad_clip max_norm
RECIPE_BATCH_SIZE = 12  # batch_size_per_gpu
RECIPE_SEGMENT_SECONDS = 1.0  # 16000-sample crops, cut without overlap, remainder dropped
RECIPE_EPOCHS = 200  # max_epochs
RECIPE_STEPS_PER_EPOCH = 2000  # train_iters_per_epoch
RECIPE_SEED = 20  # seed
RECIPE_LR_FACTOR = 0.98  # ReduceLROnPlateau(mode="min", factor=0.98, patience=2) on valid avg_loss
RECIPE_LR_PATIENCE = 2
RECIPE_VALID_SEGMENTS = 200 * 12  # evaluation: 200 iterations at batch 12, every epoch
RECIPE_LOSS_MODE = "Mix"  # FRCRN.loss mode of the released model


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a run computes, plus where it runs and stores.

    Data comes either from pairs (`train_data`, `valid_data`: a synthesis output, a DNS folder with
    `noisy/` and `clean/`, Parquet shards, or a JSONL manifest with `input_filepath` and
    `target_filepath`) or is mixed on the fly from `clean` and `noise` (and `rir`) sources with
    `mix`. `lr=None` means the recipe's: 1e-3 from scratch, 1e-4 when `init` fine-tunes.
    `stop_at_step` ends this invocation early (a rerun continues); it is not part of the run's
    identity.
    """

    storage: str
    name: str
    train_data: str | None = None
    valid_data: str | None = None
    clean: tuple[str, ...] = ()
    noise: tuple[str, ...] = ()
    rir: tuple[str, ...] = ()
    mix: MixConfig = field(default_factory=MixConfig)

    model: FRCRNConfig | None = None
    init: str | None = None

    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0

    batch_size: int = RECIPE_BATCH_SIZE
    segment_seconds: float = RECIPE_SEGMENT_SECONDS
    segment_mode: str = "fixed"
    shuffle_buffer_segments: int = 256
    epochs: int = RECIPE_EPOCHS
    steps_per_epoch: int = RECIPE_STEPS_PER_EPOCH
    lr: float | None = None
    weight_decay: float = RECIPE_WEIGHT_DECAY
    clip_grad_norm: float = RECIPE_CLIP_GRAD_NORM
    loss_mode: str = RECIPE_LOSS_MODE
    lr_factor: float = RECIPE_LR_FACTOR
    lr_patience: int = RECIPE_LR_PATIENCE
    precision: str = "float32"  # or bfloat16, float16 (ansray.precision; fp32, bf16, fp16 are aliases)
    seed: int = RECIPE_SEED
    sample_rate: int = 16000

    valid_segments: int = RECIPE_VALID_SEGMENTS
    quality_metrics: bool = True

    checkpoint_every_steps: int = 500
    keep_checkpoints: int = 3
    max_failures: int = 3
    stop_at_step: int | None = None
    storage_options: dict | None = None

    def __post_init__(self):
        if (self.train_data is None) == (not self.clean and not self.noise):
            raise ValueError("give either train_data, or clean and noise sources for on-the-fly mixing")
        if (self.clean or self.noise) and not (self.clean and self.noise):
            raise ValueError("on-the-fly mixing needs both clean and noise sources")
        if self.rir and not (self.clean and self.noise):
            raise ValueError("rir sources only apply to on-the-fly mixing (clean and noise)")
        object.__setattr__(self, "precision", canonical_precision(self.precision))
        if self.precision == "float16" and not self.use_gpu:
            raise ValueError("float16 needs a GPU (loss scaling); use bfloat16 or float32 on CPU")
        if self.segment_mode not in SEGMENT_MODES:
            raise ValueError(f"segment_mode must be one of {SEGMENT_MODES}, got {self.segment_mode!r}")
        if self.loss_mode not in LOSS_MODES:
            raise ValueError(f"loss_mode must be one of {LOSS_MODES}, got {self.loss_mode!r}")
        for name in ("num_workers", "batch_size", "epochs", "steps_per_epoch", "checkpoint_every_steps",
                     "keep_checkpoints", "valid_segments"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_failures < -1:
            raise ValueError(f"max_failures must be >= 0, or -1 for unlimited, got {self.max_failures}")
        if self.segment_frames < self.model_config.win_len:
            raise ValueError(f"segment_seconds {self.segment_seconds} is shorter than one STFT window "
                             f"({self.model_config.win_len} samples)")
        if self.stop_at_step is not None and self.stop_at_step < 1:
            raise ValueError(f"stop_at_step must be at least 1, got {self.stop_at_step}")

    @property
    def model_config(self) -> FRCRNConfig:
        """The architecture to build; with `init` and no explicit model, `load_model` reads it from the source."""
        return self.model or MODEL_SIZES["official"]

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return RECIPE_FINETUNE_LR if self.init else RECIPE_LR

    @property
    def segment_frames(self) -> int:
        return int(round(self.segment_seconds * self.sample_rate))

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def final_step(self) -> int:
        """The step this invocation ends at, with a checkpoint: `total_steps`, or `stop_at_step` if sooner."""
        return min(self.total_steps, self.stop_at_step or self.total_steps)

    @property
    def mixes_on_the_fly(self) -> bool:
        return bool(self.clean)

    @property
    def run_uri(self) -> str:
        """Where Ray Train writes this run: `<storage>/<name>`."""
        return self.storage.rstrip("/") + "/" + self.name

    def to_dict(self) -> dict:
        """JSON-ready; credentials in `storage_options` are left out."""
        values = dataclasses.asdict(self)
        values["storage_options"] = None
        return json.loads(json.dumps(values))

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        values = dict(values)
        values["mix"] = MixConfig(**values.get("mix", {}))
        if values.get("model") is not None:
            values["model"] = FRCRNConfig.from_dict(values["model"])
        for name in ("clean", "noise", "rir"):
            values[name] = tuple(values.get(name) or ())
        return cls(**values)

    def identity(self) -> dict:
        """The fields that decide what the run computes; a resumed run warns when they changed."""
        values = self.to_dict()
        for name in ("storage", "name", "num_workers", "use_gpu", "cpus_per_worker", "max_failures",
                     "stop_at_step", "storage_options", "epochs", "checkpoint_every_steps",
                     "keep_checkpoints", "quality_metrics"):
            values.pop(name)
        return values
