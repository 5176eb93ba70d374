"""``--init``: fine-tuning from the zoo's weights (or any safetensors file), with a new head when needed."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import save_file

from edgecnn.config import TrainConfig
from edgecnn.errors import ConfigError, ModelFileError
from edgecnn.training.checkpoint import load_checkpoint
from edgecnn.training.init import load_initial_weights
from edgecnn.training.loop import fit


def _five_classes(data, count=2000):
    """Fashion-MNIST's last five classes (sandal … ankle boot) relabelled 0–4: a new 5-class task."""
    keep = data.train_labels >= 5
    images, labels = data.train_images[keep][:count], data.train_labels[keep][:count] - 5
    test = data.test_labels >= 5
    return dataclasses.replace(
        data,
        name="five-classes",
        train_images=images,
        train_labels=labels,
        test_images=data.test_images[test],
        test_labels=data.test_labels[test] - 5,
        class_names=data.class_names[5:],
    )


def test_zoo_init_fine_tunes_a_five_class_head_and_its_loss_falls(tmp_path, fashion):
    data = _five_classes(fashion)
    config = TrainConfig(arch="fashion_bn", epochs=2, val_size=200, init="zoo:fashion_bn", lr=5e-4, device="cpu")
    result = fit(config, tmp_path, data=data)
    losses = [e["train_loss"] for e in result.epochs]
    assert losses[1] < losses[0]
    zoo = load_initial_weights("zoo:fashion_bn", "fashion_bn")
    scratch = fit(dataclasses.replace(config, init=None), tmp_path / "scratch", data=data)
    # the zoo's features carry over: one epoch from them beats one epoch from random weights
    assert result.epochs[0]["val_accuracy"] > scratch.epochs[0]["val_accuracy"]
    assert result.test_accuracy > 0.9
    head = [k for k, v in zoo.items() if v.ndim and v.shape[0] == 10]  # the head: weight and bias
    assert head and all(result.model.state_dict()[k].shape[0] == 5 for k in head)
    assert load_checkpoint(tmp_path).config.init == "zoo:fashion_bn"


def test_init_from_a_safetensors_file_starts_from_exactly_those_weights(tmp_path, fashion, checkpoints):
    from edgecnn.training.architectures import create
    from edgecnn.training.init import apply_initial_weights

    saved = load_checkpoint(checkpoints("tiny", "fashion-mnist"))
    path = tmp_path / "tiny.safetensors"
    card = json.dumps(saved.card.to_dict())
    save_file({k: v.contiguous() for k, v in saved.model_state.items()}, str(path), metadata={"edgecnn.card": card})
    model = create("tiny")
    assert apply_initial_weights(model, load_initial_weights(str(path), "tiny"), source=str(path)) == []
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.model_state.items())
    config = TrainConfig(arch="tiny", epochs=1, limit_train=300, val_size=100, seed=1, device="cpu")
    tuned = fit(dataclasses.replace(config, init=str(path)), tmp_path / "tuned", data=fashion)
    scratch = fit(config, tmp_path / "scratch", data=fashion)
    assert tuned.epochs[0]["train_loss"] < 0.8 * scratch.epochs[0]["train_loss"]


def test_init_refuses_weights_of_another_net_and_bad_files(tmp_path, fashion):
    with pytest.raises(ConfigError, match="holds fashion_bn weights.*--arch fashion_bn"):
        fit(TrainConfig(arch="keras_same", epochs=1, limit_train=50, init="zoo:fashion_bn"), tmp_path, data=fashion)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(ModelFileError, match="not a readable safetensors"):
        load_initial_weights(str(bad), "tiny")
    with pytest.raises(ModelFileError, match="no such file"):
        load_initial_weights(str(tmp_path / "absent.safetensors"), "tiny")
    with pytest.raises(ConfigError, match="not one of its ONNX variants"):
        load_initial_weights("zoo:fashion_bn:int8", "fashion_bn")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_init_refuses_weights_with_nan_or_inf_naming_the_tensor(tmp_path, checkpoints, bad):
    from conftest import run_cli

    state = {k: v.clone().contiguous() for k, v in load_checkpoint(checkpoints("tiny")).model_state.items()}
    name = sorted(state)[-1]
    state[name].view(-1)[0] = bad
    save_file(state, tmp_path / "bad.safetensors")
    with pytest.raises(ModelFileError, match=f"NaN or infinite values in {name}"):
        load_initial_weights(str(tmp_path / "bad.safetensors"), "tiny")
    train = ("train", "--arch", "tiny", "--dataset", "mnist", "--epochs", "1", "--limit-train", "300")
    proc = run_cli(*train, "--init", str(tmp_path / "bad.safetensors"), "--out", str(tmp_path / "run"))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and name in proc.stderr, proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_resumed_run_takes_its_weights_from_its_checkpoint_not_from_init(tmp_path, fashion, checkpoints):
    saved = load_checkpoint(checkpoints("tiny", "fashion-mnist"))
    path = tmp_path / "start.safetensors"
    save_file({k: v.contiguous() for k, v in saved.model_state.items()}, str(path))
    config = TrainConfig(arch="tiny", epochs=1, limit_train=200, val_size=100, init=str(path), device="cpu")
    fit(config, tmp_path / "run", data=fashion)
    path.unlink()  # the init file is gone (moved, or a zoo elsewhere): resuming must not need it
    resumed = fit(dataclasses.replace(config, epochs=2), tmp_path / "run", data=fashion, resume=True)
    assert [e["epoch"] for e in resumed.epochs] == [1, 2]
