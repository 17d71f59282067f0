"""The Kubernetes examples in deploy/: they parse, the RayJob's entrypoint is a valid denoise command,
and the CronJob submits exactly that RayJob."""

import importlib.util
import shlex
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
JOBS = Path(__file__).resolve().parents[1] / "jobs"


def documents(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def denoise_job():
    spec = importlib.util.spec_from_file_location("denoise_job", JOBS / "denoise.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_rayjob_entrypoint_is_a_denoise_command_the_job_accepts():
    (rayjob,) = documents("rayjob.yaml")
    assert (rayjob["apiVersion"], rayjob["kind"]) == ("ray.io/v1", "RayJob")
    command = shlex.split(rayjob["spec"]["entrypoint"])
    assert command[:2] == ["python", "/app/jobs/denoise.py"]
    job = denoise_job()
    config = job.config_from_args(job.build_parser().parse_args(command[2:]))
    assert config.output.startswith("s3://") and all(uri.startswith("s3://") for uri in config.inputs)
    assert config.model.startswith("s3://"), "no node may need a local model path"
    workers = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    gpus = {int(group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]) for group in workers}
    assert config.gpus_per_actor > 0 and config.gpus_per_actor <= min(gpus)
    assert config.actors[1] <= sum(group["maxReplicas"] for group in workers)


def test_the_cronjob_submits_the_rayjob_nightly_without_overlapping_runs():
    kinds = {doc["kind"]: doc for doc in documents("cronjob.yaml")}
    cron = kinds["CronJob"]
    assert cron["spec"]["schedule"] == "0 2 * * *" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    script = pod["containers"][0]["command"][-1]
    (rayjob,) = documents("rayjob.yaml")
    assert "kubectl create -f /manifests/rayjob.yaml" in script
    assert f"kubectl get rayjob {rayjob['metadata']['name']}" in script
    assert f"kubectl delete rayjob {rayjob['metadata']['name']}" in script
    assert pod["volumes"][0]["configMap"]["name"] == "ansray-rayjob"
    assert "--from-file=rayjob.yaml=deploy/rayjob.yaml" in (DEPLOY / "cronjob.yaml").read_text()
    role = kinds["Role"]["rules"][0]
    assert role["resources"] == ["rayjobs"] and {"create", "get", "delete"} <= set(role["verbs"])
    assert kinds["RoleBinding"]["subjects"][0]["name"] == pod["serviceAccountName"]
