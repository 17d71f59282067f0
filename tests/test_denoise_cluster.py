"""The denoise job on a real multi-node Ray cluster: several raylets on this machine (`ray.cluster_utils`),
each starting its workers in a folder of its own, none of them the driver's.

Each test runs the job while a worker node is removed mid-run, then checks where every output landed,
that each was written once and recorded once, and that a rerun skips everything.
"""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray
import soundfile as sf
from ray.cluster_utils import Cluster

from ansray.denoise import DenoiseConfig, run_denoise
from ansray.segments import SegmentOptions
from models import save_tiny_model

SEGMENTS = SegmentOptions(segment_seconds=4.0, overlap_seconds=0.5, batch_size=1)
FILES = {f"talk{i:02d}.wav": 3.0 + (i % 4) for i in range(10)} | {"long/lecture.flac": 40.0}
# What each node finds in its own environment: credentials of its own, and an endpoint that is not the
# job's (a closed local port), so a task that missed the driver's endpoint would fail, never reach AWS.
NODE_ENVIRONMENT = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node (1 CPU) and a worker node (2 CPUs), each with its own working directory."""
    root = tmp_path_factory.mktemp("cluster")
    if ray.is_initialized():
        ray.shutdown()
    here = os.getcwd()
    with pytest.MonkeyPatch.context() as environment:
        for name, value in NODE_ENVIRONMENT.items():
            environment.setenv(name, value)
        environment.delenv("AWS_ENDPOINT_URL_S3", raising=False)
        (root / "head").mkdir()
        os.chdir(root / "head")
        nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        (root / "worker-a").mkdir()
        os.chdir(root / "worker-a")
        nodes.add_node(num_cpus=2)
        os.chdir(here)
    ray.init(address=nodes.address, logging_level="ERROR")
    nodes.wait_for_nodes()
    nodes.root = root
    yield nodes
    ray.shutdown()
    nodes.shutdown()


def add_worker(cluster, name: str):
    """A further 2-CPU worker node, started in a folder of its own, to be removed mid-run."""
    folder = cluster.root / name
    folder.mkdir()
    here = os.getcwd()
    with pytest.MonkeyPatch.context() as environment:
        for variable, value in NODE_ENVIRONMENT.items():
            environment.setenv(variable, value)
        os.chdir(folder)
        try:
            node = cluster.add_node(num_cpus=2)
        finally:
            os.chdir(here)
    cluster.wait_for_nodes()
    return node


class NodeRemoval(threading.Thread):
    """Removes `node` as soon as `progress()` (outputs written so far) shows the job under way, and
    records how far the job had got."""

    def __init__(self, cluster, node, progress):
        super().__init__(daemon=True)
        self.cluster, self.node, self.progress = cluster, node, progress
        self.outputs_before_removal = None
        self.start()

    def run(self):
        deadline = time.monotonic() + 300
        while self.progress() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.cluster.remove_node(self.node, allow_graceful=False)
        self.outputs_before_removal = self.progress()

    def check_mid_run(self):
        self.join()
        assert 0 < self.outputs_before_removal < len(FILES), "the node should be removed while the job runs"


def make_model(folder: Path) -> None:
    save_tiny_model(folder)


def write_inputs(folder: Path) -> None:
    rng = np.random.default_rng(3)
    for key, seconds in FILES.items():
        (folder / key).parent.mkdir(parents=True, exist_ok=True)
        rate = 16000 if key.endswith(".wav") else 44100
        sf.write(folder / key, (0.1 * rng.standard_normal(int(rate * seconds))).astype(np.float32), rate)


def appended_rows(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]


def check_written_once_and_recorded_once(rows: list[dict], inputs: list[str]) -> None:
    assert sorted(row["input_filepath"] for row in rows) == sorted(inputs)
    assert all(row["status"] == "ok" for row in rows), [row["error"] for row in rows if row["status"] != "ok"]


def test_relative_local_paths_and_model_land_beside_the_driver_on_a_multi_node_cluster(cluster, monkeypatch):
    driver = cluster.root / "driver-local"
    (driver / "in").mkdir(parents=True)
    write_inputs(driver / "in")
    make_model(driver / "mymodel")
    monkeypatch.chdir(driver)
    node = add_worker(cluster, "worker-local")
    outputs = [driver / "out" / key for key in FILES]
    inodes: dict[Path, int] = {}

    def outputs_seen() -> int:
        for path in outputs:  # each write replaces the file, so a second write changes its inode
            if path.exists():
                inodes.setdefault(path, path.stat().st_ino)
        return len(inodes)

    removal = NodeRemoval(cluster, node, outputs_seen)
    config = DenoiseConfig(inputs=("in",), output="out", model="mymodel", segments=SEGMENTS)
    summary = run_denoise(config)
    removal.check_mid_run()
    outputs_seen()

    assert (summary.ok, summary.error) == (len(FILES), 0), summary.errors
    for path in outputs:
        assert sf.info(path).frames == sf.info(driver / "in" / path.relative_to(driver / "out")).frames
        assert path.stat().st_ino == inodes[path], f"{path} was written twice"
    for other in ("head", "worker-a", "worker-local"):
        assert not list((cluster.root / other).rglob("*.wav")), f"outputs leaked into {other}'s working directory"
    rows = appended_rows(driver / "out" / "_ansray" / "manifest.jsonl")
    check_written_once_and_recorded_once(rows, [str(driver / "in" / key) for key in FILES])
    assert all(row["audio_filepath"].startswith(str(driver / "out") + "/") for row in rows)

    again = run_denoise(config)
    assert (again.ok, again.error, again.skipped) == (0, 0, len(FILES))


@pytest.mark.parametrize("endpoint_from", ["flag", "driver-environment"])
def test_s3_to_s3_reaches_the_drivers_endpoint_from_every_node(cluster, s3_endpoint, _s3_admin, monkeypatch,
                                                               endpoint_from, tmp_path):
    bucket = f"cluster-{endpoint_from}-{os.getpid()}"
    _s3_admin.call_s3("create_bucket", Bucket=bucket)
    # Every PUT makes a version: a file written twice would show two.
    _s3_admin.call_s3("put_bucket_versioning", Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    write_inputs(tmp_path)
    for key in FILES:
        _s3_admin.put(str(tmp_path / key), f"{bucket}/raw/{key}")
    make_model(tmp_path / "model")
    if endpoint_from == "flag":
        monkeypatch.delenv("AWS_ENDPOINT_URL")
        storage_options = {"client_kwargs": {"endpoint_url": s3_endpoint}}
    else:
        assert os.environ["AWS_ENDPOINT_URL"] == s3_endpoint
        storage_options = None
    node = add_worker(cluster, f"worker-{endpoint_from}")

    def outputs_seen() -> int:
        listing = _s3_admin.call_s3("list_objects_v2", Bucket=bucket, Prefix="clean/")
        return sum(item["Key"].endswith((".wav", ".flac")) for item in listing.get("Contents", []))

    removal = NodeRemoval(cluster, node, outputs_seen)
    config = DenoiseConfig(inputs=(f"s3://{bucket}/raw",), output=f"s3://{bucket}/clean", model=str(tmp_path / "model"),
                           segments=SEGMENTS, storage_options=storage_options)
    summary = run_denoise(config)
    removal.check_mid_run()

    assert (summary.ok, summary.error) == (len(FILES), 0), summary.errors
    versions = _s3_admin.call_s3("list_object_versions", Bucket=bucket, Prefix="clean/")["Versions"]
    written = {}
    for version in versions:
        written[version["Key"]] = written.get(version["Key"], 0) + 1
    for key in FILES:
        assert written.get(f"clean/{key}") == 1, (key, written.get(f"clean/{key}"))
    staged = _s3_admin.call_s3("list_objects_v2", Bucket=bucket, Prefix="clean/_ansray/parts/").get("Contents", [])
    assert not staged, "staged pieces are removed once joined"
    manifest = _s3_admin.cat(f"{bucket}/clean/_ansray/manifest.jsonl").decode().splitlines()
    check_written_once_and_recorded_once([json.loads(line) for line in manifest],
                                         [f"s3://{bucket}/raw/{key}" for key in FILES])

    again = run_denoise(config)
    assert (again.ok, again.error, again.skipped) == (0, 0, len(FILES))


def test_every_node_is_asked_whether_it_sees_the_jobs_local_paths(cluster, tmp_path, monkeypatch):
    from ansray import cluster as ray_cluster
    from ansray.denoise.pipeline import check_cluster
    from ansray.denoise.plan import PathSafetyError, resolve_locations

    missing = ray_cluster.paths_missing_on_nodes([str(tmp_path), str(tmp_path / "nowhere")])
    assert len(missing) == len(ray_cluster.alive_nodes()) >= 2
    assert all(paths == [str(tmp_path / "nowhere")] for paths in missing.values())

    # A node that cannot see the output (no shared filesystem) stops the job before any work.
    config = DenoiseConfig(inputs=(str(tmp_path / "in"),), output=str(tmp_path / "out"), model="m", segments=SEGMENTS)
    (tmp_path / "in").mkdir()
    monkeypatch.setattr(ray_cluster, "paths_missing_on_nodes", lambda paths: {"10.0.0.7 abcdef12": [paths[-1]]})
    with pytest.raises(PathSafetyError, match="not visible on node 10.0.0.7 .* shared by every node"):
        check_cluster(config, resolve_locations(config))


def test_a_job_without_an_address_starts_its_own_ray_beside_a_running_cluster(cluster):
    """The Cluster has written its address where `ray.init()` without one would find and join it."""
    environment = {name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"}
    connect_and_report = ("import ray; from ansray import cluster; cluster.connect(None); "
                          "print(ray.get_runtime_context().gcs_address); ray.shutdown()")
    job = subprocess.run([sys.executable, "-c", connect_and_report], env=environment, capture_output=True,
                         text=True, timeout=120, check=True)
    joined = job.stdout.strip().splitlines()[-1]
    assert joined and joined != cluster.address
