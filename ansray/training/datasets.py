"""Ray Data ingest for training: (noisy, clean) segments of equal length, decoded in CPU tasks.

Training sets come as pairs (a synthesis output, any tree of DNS `noisy/` + `clean/` folders, Parquet
shards, or a JSONL manifest with `input_filepath` / `target_filepath`) or are mixed on the fly from
clean and noise sources with the synthesis job's own `synthesize_mixture`. Each pair is cut into
segments of `segment_frames` samples, as ModelScope's FRCRN trainer cuts 1 s crops; file order is
shuffled again every epoch and segments are mixed in the trainers' local shuffle buffer.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from ansray.data.layouts import decode_shard_batch
from ansray.data.pairs import PairRef, list_pairs, list_shards, read_pair
from ansray.data.synthesis import SynthesisConfig, SynthesisPlan, plan_synthesis, synthesize_mixture
from ansray.io import AudioDecodeError, exists, join_uri, list_audio, resample

from .config import TrainConfig
from ansray.io.arrow import arrow_filesystem

log = logging.getLogger(__name__)

SYNTHESIS_CONFIG = "synthesis.json"  # marks the root of a synthesis job's output
PAIR_SIDES = ("noisy", "clean")
FILES_PER_TASK = 4  # pairs decoded per Ray Data task: small, so decoding spreads over the CPUs


class TrainingDataError(ValueError):
    """A training or validation source that holds no usable pairs; the message names the URI."""


@dataclass(frozen=True)
class PairSet:
    """The pairs of one split: file pairs (manifest or DNS folders) or Parquet shards, never both."""

    uri: str
    pairs: tuple[PairRef, ...] = ()
    shards: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.pairs) or len(self.shards)


# ---------------------------------------------------------------------------------------------
# Finding pairs


def find_pairs(uri: str, storage_options: dict | None = None) -> PairSet:
    """The pairs named by `uri`:
    - `*.jsonl`: a manifest (NeMo audio-to-audio: `input_filepath`, `target_filepath`);
    - `*.parquet`, or a folder holding `.parquet` files: synthesis shards;
    - a synthesis output root (it holds `synthesis.json`): its `train/` split;
    - any other folder: every `noisy/` + `clean/` folder pair below it, matched on `fileid_N`.
    """
    if uri.endswith(".jsonl"):
        return PairSet(uri, pairs=tuple(list_pairs(uri, storage_options=storage_options)))
    if uri.endswith(".parquet"):
        return PairSet(uri, shards=(uri,))
    if exists(join_uri(uri, SYNTHESIS_CONFIG), storage_options):
        return find_pairs(join_uri(uri, "train"), storage_options)
    shards = list_shards(uri, storage_options=storage_options)
    if shards:
        return PairSet(uri, shards=tuple(shards))
    pairs = []
    for folder in dns_folders(uri, storage_options):
        pairs.extend(list_pairs(folder, storage_options=storage_options))
    if not pairs:
        raise TrainingDataError(f"{uri}: no noisy/clean pairs, shards or manifest found")
    return PairSet(uri, pairs=tuple(pairs))


def default_valid_uri(train_uri: str, storage_options: dict | None = None) -> str | None:
    """The `valid/` split of a synthesis output given as training data, when it has one."""
    if train_uri.endswith((".jsonl", ".parquet")) or not exists(join_uri(train_uri, SYNTHESIS_CONFIG), storage_options):
        return None
    valid = join_uri(train_uri, "valid")
    return valid if exists(valid, storage_options) else None


def dns_folders(root: str, storage_options: dict | None = None) -> list[str]:
    """Every folder below `root` (itself included) that holds both `noisy/` and `clean/`, sorted."""
    sides: dict[str, set[str]] = {}
    for ref in list_audio(root, storage_options=storage_options):
        parts = ref.key.split("/")
        for depth in range(len(parts) - 1, -1, -1):
            if parts[depth] in PAIR_SIDES:
                sides.setdefault("/".join(parts[:depth]), set()).add(parts[depth])
                break
    return [root if not prefix else join_uri(root, prefix)
            for prefix, found in sorted(sides.items()) if found == set(PAIR_SIDES)]


def hold_out(pairs: PairSet, every: int = 20) -> tuple[PairSet, PairSet]:
    """(train, valid): every `every`-th pair held out for validation, when no validation set is
    given (ModelScope holds out 3000 of DNS's segments). Needs at least two pairs."""
    items = pairs.pairs or pairs.shards
    if len(items) < 2:
        raise TrainingDataError(f"{pairs.uri}: cannot hold out a validation pair from {len(items)} pair(s); "
                                f"give --valid-data")
    valid = items[::every] if len(items) > every else items[:1]
    train = tuple(item for item in items if item not in set(valid))
    field = "pairs" if pairs.pairs else "shards"
    return (dataclasses.replace(pairs, **{field: train}), dataclasses.replace(pairs, **{field: tuple(valid)}))


# ---------------------------------------------------------------------------------------------
# Segments


def cut_segments(
    noisy: np.ndarray, clean: np.ndarray, frames: int, mode: str = "fixed", rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cuts a pair [T] into segments ([N, frames], [N, frames]) float32.

    "fixed" cuts from sample 0 without overlap and drops the remainder, as ModelScope does.
    "random" starts at a random offset below `frames` (the crops differ every epoch). A pair
    shorter than one segment gives one segment, zero-padded. Noisy and clean are trimmed to the
    shorter of the two first.
    """
    length = min(len(noisy), len(clean))
    noisy, clean = np.asarray(noisy[:length], np.float32), np.asarray(clean[:length], np.float32)
    if length < frames:
        pad = (0, frames - length)
        return np.pad(noisy, pad)[None], np.pad(clean, pad)[None]
    offset = 0
    if mode == "random":
        rng = rng or np.random.default_rng()
        offset = int(rng.integers(0, min(frames, length - frames + 1)))
    count = (length - offset) // frames
    end = offset + count * frames
    return noisy[offset:end].reshape(count, frames), clean[offset:end].reshape(count, frames)


def _segment_batch(pairs: list[tuple[np.ndarray, np.ndarray]], frames: int, mode: str) -> dict[str, np.ndarray]:
    # Fresh entropy on each call: random crops are new every epoch, and no two tasks repeat them.
    rng = np.random.default_rng()
    cut = [cut_segments(noisy, clean, frames, mode, rng) for noisy, clean in pairs]
    empty = np.zeros((0, frames), np.float32)
    return {
        "noisy": np.concatenate([n for n, _ in cut]) if cut else empty,
        "clean": np.concatenate([c for _, c in cut]) if cut else empty,
    }


def pair_segments(batch: dict[str, np.ndarray], *, frames: int, mode: str, sample_rate: int,
                  storage_options: dict | None = None) -> dict[str, np.ndarray]:
    """Ray Data batch function: rows of (noisy URI, clean URI) -> rows of segments.

    A pair that cannot be decoded is logged and skipped: one bad file must not stop a long run.
    """
    pairs = []
    for noisy_uri, clean_uri in zip(batch["noisy"], batch["clean"]):
        try:
            pairs.append(read_pair(PairRef(str(noisy_uri), str(clean_uri)), sample_rate=sample_rate,
                                   storage_options=storage_options))
        except AudioDecodeError as error:
            log.warning("training pair skipped: %s", error)
    return _segment_batch(pairs, frames, mode)


def shard_segments(batch: dict, *, frames: int, mode: str, sample_rate: int) -> dict[str, np.ndarray]:
    """Ray Data batch function: rows of a synthesis Parquet shard -> rows of segments."""
    decoded = decode_shard_batch(batch)
    pairs = [(resample(noisy, rate, sample_rate), resample(clean, rate, sample_rate))
             for noisy, clean, rate in zip(decoded["noisy"], decoded["clean"], decoded["sample_rate"])]
    return _segment_batch(pairs, frames, mode)


def mixture_segments(batch: dict[str, np.ndarray], *, plan: SynthesisPlan, random_draws: bool,
                     storage_options: dict | None = None) -> dict[str, np.ndarray]:
    """Ray Data batch function: one mixture per row, `plan.config.mix.audio_length` long, made by
    the synthesis job's `synthesize_mixture`.

    With `random_draws` (training) each row draws a random mixture index, so every step sees new
    mixtures; without (validation), the row's id is the index, so the set is the same every epoch.
    """
    rng = np.random.default_rng()
    frames = plan.config.mix.clip_frames
    noisy, clean = [], []
    for row in batch["id"]:
        index = int(rng.integers(2**62)) if random_draws else int(row)
        outcome = synthesize_mixture(plan, index, storage_options)
        if outcome.mixture is None:
            log.warning("on-the-fly mixture skipped: %s", outcome.error)
            continue
        noisy.append(outcome.mixture.noisy[:frames])
        clean.append(outcome.mixture.clean[:frames])
    empty = np.zeros((0, frames), np.float32)
    return {"noisy": np.stack(noisy) if noisy else empty, "clean": np.stack(clean) if clean else empty}


# ---------------------------------------------------------------------------------------------
# Datasets


def pairs_dataset(pairs: PairSet, cfg: TrainConfig, *, mode: str, shuffle: bool):
    """A Ray Dataset of segments {"noisy": [frames], "clean": [frames]} from a pair set.

    With `shuffle`, the order of files (or shards) is drawn again at every execution, i.e. every
    epoch, from `cfg.seed` and the execution index.
    """
    import ray.data

    frames, rate = cfg.segment_frames, cfg.sample_rate
    if pairs.shards:
        filesystem, _ = arrow_filesystem(pairs.shards[0], cfg.storage_options)
        paths = [arrow_filesystem(uri, cfg.storage_options)[1] for uri in pairs.shards]
        shuffle_files = ray.data.FileShuffleConfig(seed=cfg.seed, reseed_after_execution=True) if shuffle else None
        dataset = ray.data.read_parquet(paths, filesystem=filesystem, shuffle=shuffle_files)
        return dataset.map_batches(shard_segments, fn_kwargs={"frames": frames, "mode": mode, "sample_rate": rate},
                                   batch_format="numpy")
    rows = [{"noisy": ref.noisy, "clean": ref.clean} for ref in pairs.pairs]
    dataset = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // FILES_PER_TASK)))
    if shuffle:
        dataset = dataset.random_shuffle(seed=ray.data.RandomSeedConfig(seed=cfg.seed, reseed_after_execution=True))
    return dataset.map_batches(
        pair_segments, batch_size=FILES_PER_TASK, batch_format="numpy",
        fn_kwargs={"frames": frames, "mode": mode, "sample_rate": rate, "storage_options": cfg.storage_options},
    )


def mixing_plan(cfg: TrainConfig, seed: int) -> SynthesisPlan:
    """The synthesis plan of on-the-fly mixing: the probed sources, and clips one segment long.
    Nothing is written: the plan's output is never used."""
    mix = dataclasses.replace(cfg.mix, audio_length=cfg.segment_seconds, sample_rate=cfg.sample_rate)
    synthesis = SynthesisConfig(clean=cfg.clean, noise=cfg.noise, rir=cfg.rir, output="(on the fly)",
                                count=1, seed=seed, mix=mix)
    return plan_synthesis(synthesis, cfg.storage_options)


def mixing_dataset(plan: SynthesisPlan, rows: int, cfg: TrainConfig, *, random_draws: bool):
    """A Ray Dataset of `rows` mixtures, made in CPU tasks."""
    import ray.data

    blocks = max(1, min(rows // 64, 256))
    return ray.data.range(rows, override_num_blocks=blocks).map_batches(
        mixture_segments, batch_size=16, batch_format="numpy",
        fn_kwargs={"plan": plan, "random_draws": random_draws, "storage_options": cfg.storage_options},
    )


def build_datasets(cfg: TrainConfig) -> dict:
    """{"train": Dataset, "valid": Dataset} for `TorchTrainer(datasets=...)`.

    The validation set is cut in fixed segments, limited to `cfg.valid_segments` (the recipe's 200
    iterations at batch 12) and materialized once, in a deterministic order. Without validation
    data, it is held out from the training pairs (or mixed with a fixed seed on the fly).
    """
    if cfg.mixes_on_the_fly:
        plan = mixing_plan(cfg, cfg.seed)
        rows_per_epoch = cfg.steps_per_epoch * cfg.batch_size * cfg.num_workers
        train = mixing_dataset(plan, rows_per_epoch, cfg, random_draws=True)
        if cfg.valid_data:
            valid = pairs_dataset(find_pairs(cfg.valid_data, cfg.storage_options), cfg, mode="fixed", shuffle=False)
        else:
            # A seed of its own, so the validation mixtures are not among the training draws' streams.
            valid_plan = dataclasses.replace(plan, config=dataclasses.replace(plan.config, seed=cfg.seed + 1))
            valid = mixing_dataset(valid_plan, cfg.valid_segments, cfg, random_draws=False)
    else:
        train_pairs = find_pairs(cfg.train_data, cfg.storage_options)
        valid_uri = cfg.valid_data or default_valid_uri(cfg.train_data, cfg.storage_options)
        if valid_uri:
            valid_pairs = find_pairs(valid_uri, cfg.storage_options)
        else:
            train_pairs, valid_pairs = hold_out(train_pairs)
            log.info("no validation data given: holding out %d of %d pairs of %s", len(valid_pairs),
                     len(train_pairs) + len(valid_pairs), cfg.train_data)
        log.info("training pairs: %d from %s; validation pairs: %d from %s", len(train_pairs), train_pairs.uri,
                 len(valid_pairs), valid_pairs.uri)
        train = pairs_dataset(train_pairs, cfg, mode=cfg.segment_mode, shuffle=True)
        valid = pairs_dataset(valid_pairs, cfg, mode="fixed", shuffle=False)
    return {"train": train, "valid": materialize_in_order(valid.limit(cfg.valid_segments))}


def materialize_in_order(dataset):
    """Materializes `dataset` with its row order kept, so every run validates on the same segments."""
    import ray.data

    context = ray.data.DataContext.get_current()
    preserve_order = context.execution_options.preserve_order
    context.execution_options.preserve_order = True
    try:
        return dataset.materialize()
    finally:
        context.execution_options.preserve_order = preserve_order

