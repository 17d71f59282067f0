"""load_model accepts every checkpoint layout users hold, strictly, and save_model_dir round-trips."""

import io
import json
import os

import pytest
import torch

from ansray.model import MODEL_SIZES, FRCRN, CheckpointError, FRCRNConfig, load_model, save_model_dir
from ansray.model.checkpoint import CONFIG_NAME, WEIGHTS_NAME, reference_state_dict
from ansray.testing.parity_fixture import canonical_state_dict, key_table, reference_state_dict as released_state_dict


def save(obj, path) -> str:
    torch.save(obj, path)
    return str(path)


def assert_holds_fixture_weights(model: FRCRN):
    expected = canonical_state_dict()
    state = model.state_dict()
    assert set(state) == set(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


@pytest.fixture(scope="module")
def released():
    return released_state_dict()


def test_released_bare_state_dict_with_all_aliases_loads(tmp_path, released):
    assert len(released) == 1692
    model = load_model(save(released, tmp_path / "pytorch_model.bin"))
    assert not model.training
    assert_holds_fixture_weights(model)


def test_modelscope_model_dir_loads_with_its_configuration(tmp_path, released):
    save(released, tmp_path / WEIGHTS_NAME)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({
        "framework": "pytorch",
        "model": {"type": "speech_frcrn_ans_cirm_16k", "complex": True, "model_complexity": 45,
                  "model_depth": 14, "log_amp": False, "padding_mode": "zeros", "win_len": 640,
                  "win_inc": 320, "fft_len": 640, "win_type": "hann"},
    }))
    assert_holds_fixture_weights(load_model(str(tmp_path)))


def test_modelscope_trainer_checkpoint_loads(tmp_path, released):
    wrapped = {"state_dict": {f"model.{k}": v for k, v in released.items()}, "epoch": 3}
    assert_holds_fixture_weights(load_model(save(wrapped, tmp_path / "trainer.pth")))


def test_ddp_module_prefix_loads(tmp_path, released):
    wrapped = {f"module.{k}": v for k, v in released.items()}
    assert_holds_fixture_weights(load_model(save(wrapped, tmp_path / "ddp.pt")))


def test_ansray_training_checkpoint_loads_with_its_config(tmp_path):
    config = MODEL_SIZES["tiny"]
    model = FRCRN(config)
    payload = {"model": model.state_dict(), "config": config.to_dict(), "step": 7}
    loaded = load_model(save(payload, tmp_path / "checkpoint.pt"))
    assert loaded.config == config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_model_loads_from_object_storage(s3_bucket, s3_storage_options, released):
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_storage_options)
    buffer = io.BytesIO()
    torch.save(released, buffer)
    fs.pipe(f"{s3_bucket}/models/frcrn/{WEIGHTS_NAME}", buffer.getvalue())
    model = load_model(f"{s3_bucket}/models/frcrn/", storage_options=s3_storage_options)
    assert_holds_fixture_weights(model)


def test_missing_key_is_named(tmp_path, released):
    broken = dict(released)
    del broken["unet2.linear.conv_im.bias"]
    with pytest.raises(CheckpointError, match=r"missing keys.*unet2\.linear\.conv_im\.bias") as error:
        load_model(save(broken, tmp_path / "missing.bin"))
    assert "missing.bin" in str(error.value)


def test_extra_key_is_named(tmp_path, released):
    broken = dict(released) | {"unet.extra_head.weight": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"unexpected keys.*unet\.extra_head\.weight"):
        load_model(save(broken, tmp_path / "extra.bin"))


def test_mismatched_aliases_are_refused(tmp_path, released):
    broken = dict(released)
    broken["unet.encoders.2.conv.conv_re.weight"] = broken["unet.encoders.2.conv.conv_re.weight"] + 1e-3
    with pytest.raises(CheckpointError, match=r"aliased keys hold different values.*encoders\.2"):
        load_model(save(broken, tmp_path / "aliases.bin"))


def test_wrong_stft_shape_is_refused(tmp_path, released):
    broken = dict(released)
    broken["stft.weight"] = torch.zeros(514, 1, 400)  # a 400/100/512 model's kernel
    with pytest.raises(CheckpointError, match=r"stft\.weight has shape \[514, 1, 400\]"):
        load_model(save(broken, tmp_path / "stft.bin"))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = save({"stft.weight": Exploit()}, tmp_path / "evil.bin")
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        load_model(path)
    assert not marker.exists()


def test_truncated_file_is_refused(tmp_path, released):
    buffer = io.BytesIO()
    torch.save(released, buffer)
    path = tmp_path / "truncated.bin"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(CheckpointError, match="truncated.bin"):
        load_model(str(path))


def test_save_model_dir_writes_reference_keys_and_round_trips_exactly(tmp_path, released):
    model = load_model(save(released, tmp_path / "released.bin"))
    save_model_dir(model, str(tmp_path / "export"))
    written = torch.load(tmp_path / "export" / WEIGHTS_NAME, weights_only=True)
    # What ModelScope's FRCRN(strict=True) checks: the same keys and shapes as its own state_dict.
    assert [(k, tuple(v.shape)) for k, v in written.items()] == [(k, s) for k, s, _ in key_table()]
    configuration = json.loads((tmp_path / "export" / CONFIG_NAME).read_text())
    assert configuration["model"]["model_depth"] == 14 and configuration["model"]["win_len"] == 640
    again = load_model(str(tmp_path / "export"))
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


@pytest.mark.parametrize("size", ["small", "tiny"])
def test_reduced_models_round_trip_and_infer_their_shape_without_configuration(tmp_path, size):
    model = FRCRN(MODEL_SIZES[size])
    torch.save(reference_state_dict(model), tmp_path / "bare.bin")
    loaded = load_model(str(tmp_path / "bare.bin"))
    assert loaded.config.channels == MODEL_SIZES[size].channels
    assert loaded.config.model_depth == MODEL_SIZES[size].model_depth


def test_config_reads_modelscope_json_and_both_window_names(tmp_path):
    for name in ("hanning", "hann"):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"model": {"type": "x", "win_type": name, "unknown_key": 1}}))
        assert FRCRNConfig.from_json(path) == FRCRNConfig(win_type=name)
    assert FRCRNConfig() == FRCRNConfig(
        complex=True, model_complexity=45, model_depth=14, log_amp=False, padding_mode="zeros",
        win_len=640, win_inc=320, fft_len=640, win_type="hanning",
    )


def test_unsupported_config_values_fail_loudly():
    with pytest.raises(ValueError, match="model_depth"):
        FRCRNConfig(model_depth=7)
    with pytest.raises(ValueError, match="win_type"):
        FRCRNConfig(win_type="blackman")


# ---------------------------------------------------------------------------------------------
# Untrusted configurations and weights (issue 19): refused with the file and the reason, before
# anything large is built.


def tiny_model_dir(folder, config_changes: dict | None = None, state: dict | None = None) -> str:
    """A ModelScope-style dir holding a tiny FRCRN's weights (or `state`), and a configuration.json
    with `config_changes` applied to the model section when given."""
    torch.manual_seed(0)
    model = FRCRN(MODEL_SIZES["tiny"])
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state if state is not None else reference_state_dict(model), folder / WEIGHTS_NAME)
    if config_changes is not None:
        section = {"type": "speech_frcrn_ans_cirm_16k"} | model.config.to_dict() | config_changes
        (folder / CONFIG_NAME).write_text(json.dumps({"framework": "pytorch", "model": section}))
    return str(folder)


@pytest.fixture
def no_full_size_builds(monkeypatch):
    """Fails the test if load_model builds a real (not meta-device) network wider than the weights."""
    import ansray.model.checkpoint as checkpoint

    real = checkpoint.FRCRN

    def guarded(config=None):
        if torch.get_default_device().type != "meta" and config.channels > MODEL_SIZES["tiny"].channels:
            raise AssertionError(f"a {config.channels}-channel network was built before the config was checked")
        return real(config)

    monkeypatch.setattr(checkpoint, "FRCRN", guarded)


@pytest.mark.parametrize("channels", [4096, 1048576])
def test_config_wider_than_the_weights_is_refused_before_anything_is_built(tmp_path, no_full_size_builds, channels):
    folder = tiny_model_dir(tmp_path / "model", {"channels": channels})
    with pytest.raises(CheckpointError, match=rf"channels={channels}.*the weights have channels=16") as error:
        load_model(folder)
    assert error.value.source == str(tmp_path / "model" / CONFIG_NAME)


def test_model_depth_beyond_what_the_fft_allows_is_a_checkpoint_error(tmp_path):
    folder = tiny_model_dir(tmp_path / "model", {"model_depth": 1000})
    with pytest.raises(CheckpointError, match=r"model_depth 1000 is too deep for fft_len 640.*at most 14") as error:
        load_model(folder)
    assert error.value.source.endswith(CONFIG_NAME)


@pytest.mark.parametrize("changes, reason", [
    ({"win_inc": 0}, r"win_inc must be between 1 and win_len 640, got 0"),
    ({"win_inc": -320}, r"win_inc must be between 1 and win_len 640, got -320"),
    ({"win_inc": 641}, r"win_inc must be between 1 and win_len 640, got 641"),
    ({"win_len": 0}, r"win_len must be at least 1"),
    ({"channels": "16"}, r"channels must be an int, got '16'"),
    ({"channels": True}, r"channels must be an int, got True"),
    ({"win_inc": 320.0}, r"win_inc must be an int, got 320.0"),
    ({"complex": 1}, r"complex must be a bool, got 1"),
    ({"win_type": None}, r"win_type must be a str, got None"),
])
def test_configuration_values_of_the_wrong_type_or_range_are_refused(tmp_path, changes, reason):
    folder = tiny_model_dir(tmp_path / "model", changes)
    with pytest.raises(CheckpointError, match=reason) as error:
        load_model(folder)
    assert error.value.source.endswith(CONFIG_NAME)


def test_configuration_that_is_not_a_json_object_is_never_opened_as_a_path(tmp_path, monkeypatch):
    folder = tiny_model_dir(tmp_path / "model")
    (tmp_path / "model" / CONFIG_NAME).write_text("[1,2,3]")
    # A file named like the content, in the working directory: reading it would be a path traversal.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "[1,2,3]").write_text(json.dumps({"model": MODEL_SIZES["tiny"].to_dict()}))
    with pytest.raises(CheckpointError, match=r"configuration must be a JSON object, got list") as error:
        load_model(folder)
    assert error.value.source.endswith(CONFIG_NAME)
    with pytest.raises(ValueError, match="JSON object"):
        FRCRNConfig.from_json(json.dumps({"model": [1, 2, 3]}))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_at_load(tmp_path, value):
    torch.manual_seed(0)
    state = reference_state_dict(FRCRN(MODEL_SIZES["tiny"]))
    state["unet2.decoder1.bn.bn_im.running_var"][3] = value  # its alias `decoders.1` shares the storage
    path = save(state, tmp_path / "nonfinite.bin")
    with pytest.raises(CheckpointError, match=r"non-finite values \(NaN or Inf\).*unet2\.decoder1\.bn\.bn_im"):
        load_model(path)


def test_integer_weights_are_refused(tmp_path):
    torch.manual_seed(0)
    state = {k: (1000 * v).round().to(torch.int64) if v.is_floating_point() else v
             for k, v in reference_state_dict(FRCRN(MODEL_SIZES["tiny"])).items()}
    path = save(state, tmp_path / "integers.bin")
    with pytest.raises(CheckpointError, match=r"integers.bin: integer tensors where FRCRN has floating-point weights"):
        load_model(path)


def test_empty_checkpoint_file_says_it_is_empty(tmp_path):
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.bin: empty file \(0 bytes\)$"):
        load_model(str(path))


def test_checkpoint_errors_survive_pickling_with_file_and_reason():
    """Ray sends a worker's exception to the driver pickled; it must arrive as itself."""
    import pickle

    error = pickle.loads(pickle.dumps(CheckpointError("runs/a/checkpoint.pt", "empty file (0 bytes)")))
    assert isinstance(error, CheckpointError) and str(error) == "runs/a/checkpoint.pt: empty file (0 bytes)"
    assert (error.source, error.reason) == ("runs/a/checkpoint.pt", "empty file (0 bytes)")
