"""FRCRN: the network, its STFT, loss, checkpoints and a fused inference path."""

from .batch import enhance_batch, inference_model
from .checkpoint import CheckpointError, load_model, model_from_weights, model_weights, save_model_dir, weights_digest
from .config import MODEL_SIZES, FRCRNConfig
from .frcrn import FRCRN, FRCRNOutput
from . import fused
from .fused import FRCRNInference, InferenceOutput
from .loss import frcrn_loss, si_snr

__all__ = [
    "FRCRN",
    "FRCRNConfig",
    "FRCRNInference",
    "FRCRNOutput",
    "InferenceOutput",
    "CheckpointError",
    "MODEL_SIZES",
    "enhance_batch",
    "frcrn_loss",
    "fused",
    "inference_model",
    "load_model",
    "model_from_weights",
    "model_weights",
    "save_model_dir",
    "si_snr",
    "weights_digest",
]
