"""Specification of the denoise job's plan: canonical locations and every path that could lose data,
refused or left out on the driver before any work."""

import os

import fsspec
import pytest

from ansray.denoise.config import DenoiseConfig
from ansray.denoise.plan import PathSafetyError, list_inputs, plan_job, resolve_locations
from ansray.io.storage import storage_options_for


def config(inputs, output, model="model", **overrides) -> DenoiseConfig:
    inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
    return DenoiseConfig(inputs=inputs, output=output, model=model, **overrides)


def touch(path, data=b"RIFF"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_local_locations_become_absolute_on_the_driver(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    locations = resolve_locations(config("in/", "./out/../clean", manifest="m.jsonl", model="models/x"))
    assert locations.inputs == (str(tmp_path / "in"),)
    assert locations.output == str(tmp_path / "clean")
    assert locations.manifest == str(tmp_path / "m.jsonl")
    assert locations.model == str(tmp_path / "models" / "x")
    assert not locations.on_driver_node
    assert resolve_locations(config("local://in", "out")).on_driver_node


@pytest.mark.parametrize("output", ["in", "./in", "in/", "in/../in", "file://{tmp}/in", "{tmp}/in", "local://{tmp}/in"])
def test_an_output_that_is_the_input_is_refused_however_it_is_spelled(tmp_path, monkeypatch, output):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PathSafetyError, match="is input"):
        resolve_locations(config("in", output.format(tmp=tmp_path)))


@pytest.mark.parametrize("inputs", [("in/sub",), ("in/a.wav",), ("in/*.wav",), ("other", "./in/x/")])
def test_an_output_that_holds_an_input_is_refused(tmp_path, monkeypatch, inputs):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PathSafetyError, match="holds input"):
        resolve_locations(config(inputs, "in"))


@pytest.mark.parametrize("output", ["in/out", "./in/out/", "file://{tmp}/in/out", "{tmp}/in/./out", "in/x/../out"])
def test_outputs_below_an_input_are_never_listed_as_inputs(tmp_path, monkeypatch, output):
    monkeypatch.chdir(tmp_path)
    touch(tmp_path / "in" / "a.wav")
    touch(tmp_path / "in" / "out" / "a.wav")  # an earlier run's output
    touch(tmp_path / "in" / "out" / "out" / "a.wav")
    for spelling in ("in", "./in/", f"file://{tmp_path}/in", f"{tmp_path}/in/*.wav", f"{tmp_path}/in/**"):
        locations = resolve_locations(config(spelling, output.format(tmp=tmp_path)))
        assert [ref.uri for ref in list_inputs(locations)] == [str(tmp_path / "in" / "a.wav")], spelling


def test_outputs_named_in_a_manifest_are_not_taken_as_inputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    touch(tmp_path / "in" / "a.wav")
    touch(tmp_path / "clean" / "a.wav")
    (tmp_path / "list.txt").write_text("in/a.wav\nclean/a.wav\n")
    locations = resolve_locations(config("list.txt", "clean"))
    assert [ref.uri for ref in list_inputs(locations)] == [str(tmp_path / "in" / "a.wav")]


def test_inputs_whose_outputs_would_collide_each_get_an_error_naming_the_other(tmp_path):
    for name in ("x.flac", "x.ogg", "x.wav", "y.flac"):
        touch(tmp_path / "in" / name)
    job = config(str(tmp_path / "in"), str(tmp_path / "out"), output_format="wav")
    plan = plan_job(job, resolve_locations(job), previous={})
    assert [task.ref.key for task in plan.todo] == ["y.flac"]
    refused = {os.path.basename(row.input_filepath): row for row in plan.refused}
    assert sorted(refused) == ["x.flac", "x.ogg", "x.wav"]
    for name, row in refused.items():
        assert row.status == "error" and row.error_kind == "plan"
        others = {"x.flac", "x.ogg", "x.wav"} - {name}
        assert all(str(tmp_path / "in" / other) in row.error for other in others), row.error
        assert str(tmp_path / "out" / "x.wav") in row.error


def test_a_suffix_keeps_outputs_of_the_same_name_apart(tmp_path):
    for name in ("x.flac", "x.wav"):
        touch(tmp_path / "in" / name)
    job = config(str(tmp_path / "in"), str(tmp_path / "in-clean"), output_format="flac")
    plan = plan_job(job, resolve_locations(job), previous={})
    assert len(plan.refused) == 2  # x.wav -> x.flac collides with x.flac -> x.flac
    job = config(str(tmp_path / "in"), str(tmp_path / "in-clean"), output_format="same", suffix="_clean")
    plan = plan_job(job, resolve_locations(job), previous={})
    assert (len(plan.todo), len(plan.refused)) == (2, 0)


@pytest.mark.parametrize("suffix", ["/../../etc", "..", "a/b", "a\\b", ""])
def test_a_suffix_that_could_leave_the_output_root_is_refused(tmp_path, suffix):
    with pytest.raises(PathSafetyError, match="--suffix"):
        resolve_locations(config(str(tmp_path / "in"), str(tmp_path / "out"), suffix=suffix))


def test_a_manifest_entry_that_climbs_out_of_the_output_is_an_input_error_decided_at_plan_time():
    memory = fsspec.filesystem("memory")
    memory.pipe("/esc/a/x.wav", b"RIFF")
    memory.pipe("/esc/a/../y.wav", b"RIFF")  # object stores take `..` as a literal key
    memory.pipe("/esc/list.txt", b"memory://esc/a/x.wav\nmemory://esc/a/../y.wav\n")
    job = config("memory://esc/list.txt", "memory://esc-out")
    plan = plan_job(job, resolve_locations(job), previous={})
    assert [task.output for task in plan.todo] == ["memory://esc-out/a/x.wav"]
    (row,) = plan.refused
    assert row.error_kind == "input" and "climbs out" in row.error and row.input_filepath.endswith("a/../y.wav")
    # An input error is not retried while the input is unchanged.
    again = plan_job(job, resolve_locations(job), previous={row.input_filepath: row.to_dict()})
    assert [ref.uri for ref in again.resumed] == [row.input_filepath] and not again.refused


def test_relative_paths_are_refused_where_the_driver_runs_in_a_copy_of_the_working_dir(tmp_path):
    reason = "the driver runs in Ray's copy"
    with pytest.raises(PathSafetyError, match="relative output path 'out'"):
        resolve_locations(config(str(tmp_path / "in"), "out"), unsafe_relative=reason)
    assert resolve_locations(config(str(tmp_path), "s3://b/out"), unsafe_relative=reason).output == "s3://b/out"


def test_the_drivers_s3_endpoint_and_region_reach_every_task_but_credentials_do_not():
    environ = {"AWS_ENDPOINT_URL": "http://minio:9000", "AWS_DEFAULT_REGION": "eu-west-1",
               "AWS_SECRET_ACCESS_KEY": "secret", "AWS_ACCESS_KEY_ID": "id"}
    options = storage_options_for(["s3://b/in", "/local/out"], None, environ)
    assert options == {"client_kwargs": {"endpoint_url": "http://minio:9000", "region_name": "eu-west-1"}}
    given = {"client_kwargs": {"endpoint_url": "http://other:9000"}}
    assert storage_options_for(["s3://b/in"], given, environ)["client_kwargs"]["endpoint_url"] == "http://other:9000"
    assert storage_options_for(["/local/in", "/local/out"], None, environ) is None
    specific = environ | {"AWS_ENDPOINT_URL_S3": "http://s3-only:9000"}
    assert storage_options_for(["s3://b"], None, specific)["client_kwargs"]["endpoint_url"] == "http://s3-only:9000"
