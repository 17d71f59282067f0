"""load_model accepts every checkpoint layout users hold, strictly, and save_model_dir round-trips."""

import io
import json
import os

import pytest
import torch

from ansray.model import MODEL_SIZES, FRCRN, CheckpointError, FRCRNConfig, load_model, save_model_dir
from ansray.model.checkpoint import CONFIG_NAME, WEIGHTS_NAME, reference_state_dict
from frcrn_fixture import canonical_state_dict, key_table, reference_state_dict as released_state_dict


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
        assert FRCRNConfig.from_json(str(path)) == FRCRNConfig(win_type=name)
    assert FRCRNConfig() == FRCRNConfig(
        complex=True, model_complexity=45, model_depth=14, log_amp=False, padding_mode="zeros",
        win_len=640, win_inc=320, fft_len=640, win_type="hanning",
    )


def test_unsupported_config_values_fail_loudly():
    with pytest.raises(ValueError, match="model_depth"):
        FRCRNConfig(model_depth=7)
    with pytest.raises(ValueError, match="win_type"):
        FRCRNConfig(win_type="blackman")
