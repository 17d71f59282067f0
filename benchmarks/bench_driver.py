"""What the denoise job's driver does per second of audio: its CPU time, and the bytes it receives.

    python benchmarks/bench_driver.py [--files 40] [--seconds 10,60] [--repeats 2]

The model is an identity (the segments come back unchanged), so the figures are the pipeline's own and
not the model's. Driver CPU is this process's user+system time (Ray Data's executor runs in the
driver's process): over the whole `run_denoise`, and over the pipeline alone (while the driver iterates
the dataset's results), which leaves out the fixed costs of start-up (listing, loading and checking the
model, Ray). Bytes received are the payloads the driver pulls out of Ray: the batches it iterates and the
results it gets. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import tempfile

import numpy as np
import ray
import soundfile as sf
import torch

from ansray.denoise import DenoiseConfig, run_denoise
from ansray.model import FRCRN, MODEL_SIZES, save_model_dir
from ansray.model.polarity import keep_polarity

RECEIVED = {"bytes": 0, "pipeline_cpu": 0.0}


class IdentityEnhancer:
    """Returns the segments unchanged: the job's costs without the model's."""

    def __init__(self, **_):
        pass

    def __call__(self, batch: dict) -> dict:
        if "entries" not in batch:  # the pipeline before bundles: one row per segment and channel
            batch["enhanced"] = batch["audio"]
        return batch


def payload_bytes(value) -> int:
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return sum(payload_bytes(item) for item in value)
        return value.nbytes
    if isinstance(value, dict):
        return sum(payload_bytes(item) for item in value.values())
    if isinstance(value, (bytes, str)):
        return len(value)
    return len(pickle.dumps(value))


def count_received() -> None:
    """Counts what the driver receives through `Dataset.iter_batches` and `ray.get`."""
    iter_batches = ray.data.Dataset.iter_batches

    def counted_iter_batches(self, *args, **kwargs):
        started = cpu_seconds()
        try:
            for batch in iter_batches(self, *args, **kwargs):
                RECEIVED["bytes"] += payload_bytes(batch)
                yield batch
        finally:
            RECEIVED["pipeline_cpu"] += cpu_seconds() - started

    get = ray.get

    def counted_get(refs, *args, **kwargs):
        values = get(refs, *args, **kwargs)
        RECEIVED["bytes"] += payload_bytes(values) if not isinstance(values, list) else sum(map(payload_bytes, values))
        return values

    ray.data.Dataset.iter_batches = counted_iter_batches
    ray.get = counted_get


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_archive(root: str, files: int, seconds: float) -> float:
    rng = np.random.default_rng(0)
    os.makedirs(root)
    for i in range(files):
        sf.write(f"{root}/f{i:04d}.wav", (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000,
                 subtype="PCM_16")
    return files * seconds


def measure(tmp: str, model: str, files: int, seconds: float, tag: str) -> dict:
    """Driver CPU seconds (whole job, pipeline alone), audio and wall seconds, bytes received, of one job."""
    inputs = f"{tmp}/{tag}-in"
    audio = make_archive(inputs, files, seconds)
    RECEIVED.update(bytes=0, pipeline_cpu=0.0)
    before = cpu_seconds()
    summary = run_denoise(DenoiseConfig(inputs=(inputs,), output=f"{tmp}/{tag}-out", model=model),
                          enhancer_cls=IdentityEnhancer)
    assert summary.ok == files, summary.line()
    return {"cpu": cpu_seconds() - before, "pipeline_cpu": RECEIVED["pipeline_cpu"], "audio": audio,
            "wall": summary.wall_seconds, "bytes": RECEIVED["bytes"], "files": files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", default="200,40", help="files in the archive, for each length")
    parser.add_argument("--seconds", default="10,60", help="file lengths to measure")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR")
    count_received()
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model = f"{tmp}/model"
        save_model_dir(keep_polarity(FRCRN(MODEL_SIZES["tiny"]).eval()), model)
        measure(tmp, model, 2, 1.0, "warm-up")
        print(f"load average {os.getloadavg()[0]:.1f}; identity model; {os.cpu_count()} CPUs")
        for files, seconds in zip((int(f) for f in args.files.split(",")), (float(s) for s in args.seconds.split(","))):
            for repeat in range(args.repeats):
                run = measure(tmp, model, files, seconds, f"s{seconds:g}-{repeat}")
                print(f"{files} files of {seconds:g} s: driver CPU per audio second {1000 * run['pipeline_cpu'] / run['audio']:.3f} "
                      f"ms in the pipeline, {1000 * run['cpu'] / run['audio']:.3f} ms over the whole job "
                      f"({run['cpu']:.2f} s, wall {run['wall']:.1f} s); received {run['bytes'] / files / 1000:.1f} kB "
                      f"per file ({run['bytes'] / run['audio'] / 1000:.2f} kB per audio second)")


if __name__ == "__main__":
    main()
