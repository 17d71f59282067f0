"""Specification of ansray.cluster: every job meets its Ray cluster the same way."""

import json

import ray

from ansray import cluster


def test_the_flag_wins_then_ray_address_then_a_local_ray(monkeypatch):
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda address=None, **kwargs: calls.append(address))
    monkeypatch.setenv("RAY_ADDRESS", "ray://from-env:10001")
    cluster.connect("ray://from-flag:10001")
    cluster.connect(None)
    monkeypatch.delenv("RAY_ADDRESS")
    cluster.connect(None)
    assert calls == ["ray://from-flag:10001", "ray://from-env:10001", "local"]
    assert cluster.is_remote_cluster("ray://x:1") and not cluster.is_remote_cluster(None)


def test_relative_paths_are_unsafe_only_in_a_driver_started_with_a_working_dir(monkeypatch):
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    assert cluster.relative_paths_are_unsafe() is None
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"runtime_env": {"pip": ["x"]}}))
    assert cluster.relative_paths_are_unsafe() is None
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"runtime_env": {"working_dir": "gcs://_ray_pkg.zip"}}))
    assert "temporary copy" in cluster.relative_paths_are_unsafe()
