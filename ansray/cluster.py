"""How every ansray job meets its Ray cluster: one connection policy, and the facts a job checks about it.

`--address` (or `$RAY_ADDRESS`) names a running cluster; without either a job starts a local Ray.
Under `ray job submit` the driver runs inside Ray's copy of the working dir, so relative paths there
name that copy: `relative_paths_are_unsafe` tells a job to refuse them.
"""

from __future__ import annotations

import json
import logging
import os

log = logging.getLogger(__name__)

# Set by Ray in the environment of a driver started by `ray job submit`: its runtime_env.
_JOB_CONFIG_VARIABLE = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def connect(address: str | None = None) -> None:
    """Connects this process to `address`, else `$RAY_ADDRESS`, else a new local Ray (no-op if connected)."""
    import ray

    if ray.is_initialized():
        return
    # Without an address Ray would join the cluster a `ray start` (or a test's Cluster) last left on this
    # machine, which the job would then take for a local Ray of its own: "local" always starts a new one.
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)


def is_remote_cluster(address: str | None = None) -> bool:
    """Whether the job joins a cluster that exists without it (which may still grow), not a local Ray it made."""
    return bool(address or os.environ.get("RAY_ADDRESS"))


def relative_paths_are_unsafe() -> str | None:
    """Why relative local paths would go astray in this driver, or None where they are safe."""
    try:
        runtime_env = json.loads(os.environ.get(_JOB_CONFIG_VARIABLE) or "{}").get("runtime_env") or {}
    except (json.JSONDecodeError, AttributeError):
        return None
    if runtime_env.get("working_dir"):
        return ("under `ray job submit --working-dir` the driver runs in Ray's temporary copy of that folder, "
                f"{os.getcwd()}, so a relative path would read or write there")
    return None


def alive_nodes() -> list[dict]:
    """The cluster's live nodes, as `ray.nodes()` describes them."""
    import ray

    return [node for node in ray.nodes() if node.get("Alive")]


def driver_node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def pinned_to_driver_node() -> dict:
    """Ray options that run a task on the driver's own node only: Ray Data's rule for `local://` paths,
    expressed as Ray Data does it, with the node-id label."""
    from ray._raylet import RAY_NODE_ID_KEY

    return {"label_selector": {RAY_NODE_ID_KEY: driver_node_id()}}


def paths_missing_on_nodes(paths: list[str]) -> dict[str, list[str]]:
    """For each live node that cannot see every one of the local `paths`, the paths it lacks.

    One tiny task per node, pinned there. A path seen by the driver but not by a node means the job's
    local paths are not on a filesystem shared by the whole cluster.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    def missing(candidates: list[str]) -> list[str]:
        return [path for path in candidates if not os.path.exists(path)]

    probes = {}
    for node in alive_nodes():
        strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        probes[node["NodeManagerAddress"] + " " + node["NodeID"][:8]] = missing.options(
            scheduling_strategy=strategy).remote(paths)
    results = dict(zip(probes, ray.get(list(probes.values()))))
    return {node: lacking for node, lacking in results.items() if lacking}
