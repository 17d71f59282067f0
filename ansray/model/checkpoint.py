"""Loading and saving FRCRN weights in every layout users hold, strictly and safely.

Layouts: ModelScope's released bare `state_dict` (1692 keys: every UNet block registered twice, as
`unet.encoder0.*` and `unet.encoders.0.*`), ModelScope-trainer checkpoints (`{"state_dict":
{"model.<key>": ...}}`), DDP `module.` prefixes, and ansray's own `{"model": ..., "config": ...}`.
ModelScope loads with `strict=False`, so a mismatched key silently leaves random weights; here any
mismatch is an error that names the keys and the file, and nothing is ever partly loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import posixpath
import re

import torch

from ansray.io.errors import LocatedError
from ansray.io.storage import exists, fs_for, join_uri, read_bytes, write_bytes_atomic

from .config import FRCRNConfig
from .frcrn import FRCRN

CONFIG_NAME = "configuration.json"
WEIGHTS_NAME = "pytorch_model.bin"
CHECKPOINT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
# Wrappers that prefix every key: ModelScope's trainer (`model.`), DDP (`module.`), torch.compile.
KEY_PREFIXES = ("model.", "module.", "_orig_mod.")
# The reference registers each block under two names: `<single>{i}` and `<list>.{i}`, in this order.
ALIAS_LISTS = (
    ("decoder", "decoders"),
    ("encoder", "encoders"),
    ("se_layer_enc", "se_layers_enc"),
    ("se_layer_dec", "se_layers_dec"),
    ("fsmn_enc", "fsmn_enc"),
    ("fsmn_dec", "fsmn_dec"),
)
MODELSCOPE_TYPE = "speech_frcrn_ans_cirm_16k"


class CheckpointError(LocatedError):
    """A checkpoint that cannot be loaded exactly; the message names the file and the reason."""

    @property
    def source(self) -> str:
        return self.uri


def alias_of(key: str) -> str | None:
    """The canonical key of a reference alias (`unet.encoders.3.x` -> `unet.encoder3.x`), else None."""
    match = re.match(r"^(unet2?)\.(\w+)\.(\d+)\.(.*)$", key)
    if not match:
        return None
    unet, list_name, index, rest = match.groups()
    for single, listed in ALIAS_LISTS:
        if list_name == listed:
            return f"{unet}.{single}{index}.{rest}"
    return None


def reference_state_dict(model: FRCRN) -> dict[str, torch.Tensor]:
    """The model's weights under every reference key, in the reference's order; aliases share storage."""
    canonical = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for unet in ("", "unet.", "unet2."):
        own = [k for k in canonical if (k.startswith(unet) if unet else not k.startswith("unet"))]
        out.update((k, canonical[k]) for k in own)
        if not unet:
            continue
        for single, listed in ALIAS_LISTS:
            pattern = re.compile(rf"^{re.escape(unet)}{single}(\d+)\.(.*)$")
            for key in own:
                match = pattern.match(key)
                if match:
                    out[f"{unet}{listed}.{match.group(1)}.{match.group(2)}"] = canonical[key]
    return out


def canonical_weights(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Folds aliases into their canonical keys, requiring every alias to equal its canonical value."""
    out = {k: v for k, v in state.items() if alias_of(k) is None}
    unequal = []
    for key, value in state.items():
        canonical = alias_of(key)
        if canonical is None:
            continue
        if canonical not in out:
            out[canonical] = value
        elif out[canonical].shape != value.shape or not torch.equal(out[canonical], value):
            unequal.append(f"{key} != {canonical}")
    if unequal:
        raise CheckpointError(source, f"aliased keys hold different values: {', '.join(sorted(unequal)[:10])}")
    return out


def unwrap_checkpoint(payload, source: str) -> tuple[dict[str, torch.Tensor], dict | None]:
    """(state_dict with wrapper prefixes removed, config dict if the checkpoint carries one)."""
    config = None
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        payload = payload["state_dict"]
    elif isinstance(payload, dict) and isinstance(payload.get("model"), dict):
        config = payload.get("config")
        payload = payload["model"]
    if not isinstance(payload, dict) or not payload or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload.items()
    ):
        raise CheckpointError(source, "not an FRCRN state_dict (expected a mapping of names to tensors)")
    stripped = True
    while stripped:
        stripped = False
        for prefix in KEY_PREFIXES:
            if all(k.startswith(prefix) for k in payload):
                payload = {k[len(prefix):]: v for k, v in payload.items()}
                stripped = True
    return payload, config


def load_payload(data: bytes, source: str):
    """The object a checkpoint file holds; CheckpointError when it is empty, corrupt or would run code."""
    if not data:
        raise CheckpointError(source, "empty file (0 bytes)")
    try:
        # weights_only: a checkpoint is data; unpickling must never be able to run code.
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(source, f"refused to unpickle (weights_only=True): {error}") from None
    except (RuntimeError, EOFError, ValueError, OSError) as error:
        reason = str(error) or type(error).__name__
        raise CheckpointError(source, f"unreadable or truncated checkpoint ({len(data)} bytes): {reason}") from None


def _stft_geometry(config: FRCRNConfig) -> tuple[int, int, int]:
    return (2 * config.freq_bins, 1, config.win_len)


def weights_geometry(state: dict[str, torch.Tensor]) -> tuple[int, int] | None:
    """(channels, model_depth) read off the weights, or None when they hold no first encoder."""
    width = state.get("unet.encoder0.conv.conv_re.weight")
    if width is None or width.dim() == 0:
        return None
    depth = 2 * sum(1 for k in state if re.match(r"^unet\.encoder\d+\.conv\.conv_re\.weight$", k))
    return int(width.shape[0]), depth


def infer_config(state: dict[str, torch.Tensor], base: FRCRNConfig) -> FRCRNConfig:
    """Width and depth from the weights, for bare checkpoints that come without a configuration."""
    geometry = weights_geometry(state)
    if geometry is None:
        return base
    channels, depth = geometry
    return FRCRNConfig.from_dict(base.to_dict() | {"channels": channels, "model_depth": depth})


def check_config_fits_weights(state: dict[str, torch.Tensor], config: FRCRNConfig, source: str,
                              config_source: str | None = None) -> None:
    """Refuses a config whose STFT, width or depth are not the weights', then compares every key,
    shape and kind of number with a network built on the meta device, which allocates nothing.

    A configuration is untrusted text: built first, `channels: 1048576` would ask for terabytes.
    Once this passes, the network is exactly as large as the checkpoint already in memory. A
    mismatch names `config_source` (the configuration file) when the config came from one.
    """

    def config_mismatch(reason: str) -> CheckpointError:
        if config_source is None:
            return CheckpointError(source, reason)
        return CheckpointError(config_source, f"{reason} (weights: {source})")

    stft = state.get("stft.weight")
    if stft is None:
        raise CheckpointError(source, "missing keys (1): stft.weight")
    if tuple(stft.shape) != _stft_geometry(config):
        raise config_mismatch(f"stft.weight has shape {list(stft.shape)}, but the config (win_len={config.win_len}, "
                              f"fft_len={config.fft_len}) needs {list(_stft_geometry(config))}")
    geometry = weights_geometry(state)
    if geometry is not None and geometry != (config.channels, config.model_depth):
        raise config_mismatch(f"the config has channels={config.channels}, model_depth={config.model_depth}; "
                              f"the weights have channels={geometry[0]}, model_depth={geometry[1]}")
    with torch.device("meta"):
        expected = FRCRN(config).state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:10])}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:10])}")
        raise CheckpointError(source, "; ".join(parts))
    wrong = [f"{k} {list(state[k].shape)} vs {list(v.shape)}" for k, v in expected.items() if state[k].shape != v.shape]
    if wrong:
        raise CheckpointError(source, f"shape mismatch (checkpoint vs config): {', '.join(wrong[:10])}")
    # load_state_dict would silently cast integers into float weights: a sign of some other tensor.
    kinds = [f"{k} ({state[k].dtype})" for k, v in expected.items()
             if state[k].is_floating_point() != v.is_floating_point()]
    if kinds:
        raise CheckpointError(source, f"integer tensors where FRCRN has floating-point weights, or the reverse "
                                      f"({len(kinds)}): {', '.join(kinds[:10])}")


def check_finite(state: dict[str, torch.Tensor], source: str) -> None:
    """Refuses NaN or Inf anywhere: such a model turns every input into NaN."""
    bad = sorted(k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if bad:
        raise CheckpointError(source, f"non-finite values (NaN or Inf) in keys ({len(bad)}): {', '.join(bad[:10])}")


def build_from_state(state: dict[str, torch.Tensor], config: FRCRNConfig, source: str,
                     config_source: str | None = None) -> FRCRN:
    """An FRCRN holding exactly `state` (canonical keys): every key present, none left over, shapes
    and kinds of number equal, all checked before the network is built."""
    check_config_fits_weights(state, config, source, config_source)
    model = FRCRN(config)
    model.load_state_dict(state, strict=True)
    return model


def _is_model_dir(uri: str, storage_options: dict | None) -> bool:
    fs, path = fs_for(uri, storage_options)
    return fs.isdir(path)


def load_model(
    source: str,
    *,
    device: str | torch.device = "cpu",
    config: FRCRNConfig | None = None,
    storage_options: dict | None = None,
) -> FRCRN:
    """Loads an FRCRN in eval mode from a ModelScope model dir, a checkpoint file, or any fsspec URI.

    The configuration comes from `config`, else `configuration.json` in (or beside) the source, else
    the checkpoint itself (ansray checkpoints carry theirs), else the released model's defaults with
    width and depth read off the weights.
    """
    source = str(source)
    if _is_model_dir(source, storage_options):
        weights_uri, folder = join_uri(source, WEIGHTS_NAME), source.rstrip("/")
    else:
        weights_uri, folder = source, posixpath.dirname(source.rstrip("/")) or "."
    try:
        data = read_bytes(weights_uri, storage_options)
    except (FileNotFoundError, IsADirectoryError, PermissionError, OSError) as error:
        raise CheckpointError(weights_uri, f"cannot read checkpoint: {error}") from None
    state, carried = unwrap_checkpoint(load_payload(data, weights_uri), weights_uri)
    check_finite(state, weights_uri)  # first: NaN != NaN would read as unequal aliases
    state = canonical_weights(state, weights_uri)
    config_source = None
    if config is None:
        config, config_source = resolve_config(state, carried, folder, weights_uri, storage_options)
    model = build_from_state(state, config, weights_uri, config_source)
    return model.to(device).eval()


def resolve_config(state: dict[str, torch.Tensor], carried, folder: str, weights_uri: str,
                   storage_options: dict | None) -> tuple[FRCRNConfig, str | None]:
    """(config, the configuration file it came from or None): `configuration.json` in `folder`, else
    the checkpoint's own config, else one inferred from the weights. A config that is not valid is a
    CheckpointError naming the file it came from."""
    config_uri = join_uri(folder, CONFIG_NAME)
    if exists(config_uri, storage_options):
        try:
            return FRCRNConfig.from_json(read_bytes(config_uri, storage_options).decode("utf-8")), config_uri
        except (ValueError, TypeError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise CheckpointError(config_uri, f"invalid configuration: {error}") from None
    try:
        return (FRCRNConfig.from_dict(carried) if carried is not None else infer_config(state, FRCRNConfig())), None
    except (ValueError, TypeError) as error:
        what = "configuration carried in the checkpoint" if carried is not None else "architecture of the weights"
        raise CheckpointError(weights_uri, f"invalid {what}: {error}") from None


def configuration_json(config: FRCRNConfig) -> dict:
    """A ModelScope `configuration.json` for `config` (the `train` section is the released recipe)."""
    model_section = {"type": MODELSCOPE_TYPE} | config.to_dict()
    return {
        "framework": "pytorch",
        "task": "acoustic-noise-suppression",
        "pipeline": {"type": MODELSCOPE_TYPE},
        "model": model_section,
        "preprocessor": {},
    }


def save_model_dir(model: FRCRN, dest: str, storage_options: dict | None = None) -> None:
    """Writes `configuration.json` + `pytorch_model.bin` (reference keys, aliases included) under `dest`.

    The weights are written before the configuration, each atomically, so a reader that finds the
    configuration finds complete weights.
    """
    buffer = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in reference_state_dict(model).items()}
    torch.save(state, buffer)
    write_bytes_atomic(join_uri(dest, WEIGHTS_NAME), buffer.getvalue(), storage_options)
    text = json.dumps(configuration_json(model.config), indent=2) + "\n"
    write_bytes_atomic(join_uri(dest, CONFIG_NAME), text.encode("utf-8"), storage_options)


def model_weights(model: FRCRN) -> dict:
    """The model as plain data (config and float arrays): what a job ships to its workers through Ray's
    object store, so that no worker needs the checkpoint's path."""
    return {
        "config": model.config.to_dict(),
        "state": {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()},
    }


def model_from_weights(weights: dict, device: str | torch.device = "cpu") -> FRCRN:
    """The FRCRN that `model_weights` described, in eval mode on `device`."""
    state = {k: torch.from_numpy(v.copy()) for k, v in weights["state"].items()}
    model = build_from_state(state, FRCRNConfig.from_dict(weights["config"]), "model shipped by the driver")
    return model.to(device).eval()


def weights_digest(model: FRCRN) -> str:
    """A short content hash of the weights, recorded with every output the model produced."""
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
