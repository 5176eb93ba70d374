import dataclasses
import json
import pickle

import pytest
import torch

from edgecnn.config import TrainConfig, config_from_dict, config_to_dict
from edgecnn.errors import ConfigError, DeviceError, ModelFileError
from edgecnn.files import CHECKPOINT_NAME, atomic_path
from edgecnn.training.checkpoint import load_checkpoint
from edgecnn.training.loop import evaluate, fit, resume_config

REPORTS = ("checkpoint.pt", "metrics.json", "curves.png", "confusion.png")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, fashion):
    out = tmp_path_factory.mktemp("tiny")
    config = TrainConfig(arch="tiny", epochs=2, limit_train=2000, seed=3, device="cpu")
    return config, out, fit(config, out, data=fashion)


def test_tiny_learns_its_loss_falls(tiny_run, fashion):
    config, _, result = tiny_run
    from edgecnn.training.architectures import create

    torch.manual_seed(config.seed)
    untrained = create("tiny")
    before, _, _ = evaluate(untrained, fashion, fashion.test_images[:2000], fashion.test_labels[:2000])
    after, accuracy, _ = evaluate(result.model, fashion, fashion.test_images[:2000], fashion.test_labels[:2000])
    assert after < 0.7 * before
    assert result.epochs[1]["train_loss"] < result.epochs[0]["train_loss"]
    assert accuracy > 0.5  # 2,000 images, two epochs: far above the 10 % of guessing


def test_run_writes_four_real_artifacts(tiny_run):
    _, out, result = tiny_run
    for name in REPORTS:
        assert (out / name).stat().st_size > 1000, name
    for name in ("curves.png", "confusion.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] == result.test_accuracy
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds", "samples_per_s"):
        assert key in metrics["epochs"][0]
    assert not any(k.startswith("test") for e in metrics["epochs"] for k in e)  # the test set: once, at the end
    best = max(metrics["epochs"], key=lambda e: (e["val_accuracy"], -e["val_loss"]))
    assert metrics["best_epoch"] == best["epoch"] == result.best_epoch
    assert metrics["val_accuracy"] == best["val_accuracy"]
    assert sum(map(sum, metrics["confusion"])) == 10000
    assert not list(out.glob(".*.tmp"))  # no temp file left beside the artifacts


def test_checkpoint_round_trip_with_weights_only(tiny_run, fashion):
    config, out, result = tiny_run
    state = torch.load(out / CHECKPOINT_NAME, weights_only=True)  # plain data + tensors only
    assert state["card"]["arch"] == "tiny" and state["epoch"] == 2
    assert config_from_dict(TrainConfig, state["config"]) == config
    assert state["card"]["class_names"] == list(fashion.class_names)
    assert state["card"]["normalization"] == {"mean": [0.286], "std": [0.353]}
    assert state["history"] == result.epochs
    loaded = load_checkpoint(out)  # the typed view of the same file
    assert loaded.config == config and loaded.epoch == 2 and list(loaded.history) == result.epochs
    assert loaded.card == result.card and loaded.card.input_shape == (1, 28, 28)
    assert loaded.card.metrics["test_accuracy"] == result.test_accuracy and loaded.card.metrics["epochs"] == 2
    assert loaded.card.lineage.data_checksum == fashion.checksum() and len(loaded.card.lineage.config_hash) == 64
    restored = loaded.build_model()
    assert all(
        torch.equal(a, b)
        for a, b in zip(restored.state_dict().values(), result.model.state_dict().values(), strict=True)
    )
    x = fashion.normalize(fashion.test_images[:64])
    with torch.no_grad():
        assert torch.equal(restored(x), result.model(x))


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


SCHEDULED = dict(optimizer="adamw", schedule="onecycle", weight_decay=0.05, label_smoothing=0.1, augment="affine")


@pytest.mark.parametrize("recipe", [{}, SCHEDULED], ids=["constant", "onecycle-affine"])
def test_interrupt_and_resume_is_bit_identical(tmp_path, mnist, recipe):
    # mnist_cnn3 has dropout, so the global RNG state must survive the interruption too; the one-cycle run
    # is cut mid-schedule, with the augmentation's generator mid-stream
    config = TrainConfig(
        arch="mnist_cnn3", dataset="mnist", epochs=3, limit_train=600, val_size=500, seed=11, device="cpu", **recipe
    )
    mnist = dataclasses.replace(mnist, test_images=mnist.test_images[:1000], test_labels=mnist.test_labels[:1000])
    straight = fit(config, tmp_path / "straight", data=mnist)

    def interrupt(epoch, step):
        if epoch == 2 and step == 9:  # mid-way through the second epoch
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(config, tmp_path / "cut", data=mnist, on_step=interrupt)
    assert load_checkpoint(tmp_path / "cut").epoch == 1
    resumed = fit(config, tmp_path / "cut", data=mnist, resume=True)
    a, b = _weights(straight.model), _weights(resumed.model)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed.epochs == [
        {**e, "seconds": r["seconds"], "train_seconds": r["train_seconds"], "samples_per_s": r["samples_per_s"]}
        for e, r in zip(straight.epochs, resumed.epochs, strict=True)
    ]
    cut = load_checkpoint(tmp_path / "cut").optimizer_state["state"]
    whole = load_checkpoint(tmp_path / "straight").optimizer_state["state"]
    assert all(torch.equal(cut[k]["exp_avg"], whole[k]["exp_avg"]) for k in whole)
    assert resumed.best_epoch == straight.best_epoch and resumed.test_accuracy == straight.test_accuracy


@pytest.mark.parametrize("recipe", [{}, SCHEDULED], ids=["constant", "onecycle-affine"])
def test_a_run_killed_mid_epoch_resumes_from_its_mid_epoch_checkpoint_bit_identically(tmp_path, mnist, recipe):
    # 600 images, batch 100: 6 steps an epoch; checkpoints at steps 4, 8 (mid-epoch) and at epoch ends; the run
    # dies at step 11, in epoch 2, and resumes from step 8 — batch 2 of epoch 2, dropout and augmentation mid-stream
    base = dict(arch="mnist_cnn3", dataset="mnist", epochs=3, limit_train=600, val_size=500, seed=11, device="cpu")
    mnist = dataclasses.replace(mnist, test_images=mnist.test_images[:1000], test_labels=mnist.test_labels[:1000])
    straight = fit(TrainConfig(**base, **recipe), tmp_path / "straight", data=mnist)
    config = TrainConfig(**base, **recipe, checkpoint_every=4)

    def die(epoch, step):
        if step == 11:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(config, tmp_path / "cut", data=mnist, on_step=die)
    saved = load_checkpoint(tmp_path / "cut")
    assert saved.epoch == 1 and saved.step == 8 and saved.position["batches"] == 2
    resumed = fit(config, tmp_path / "cut", data=mnist, resume=True)
    a, b = _weights(straight.model), _weights(resumed.model)
    assert all(torch.equal(a[key], b[key]) for key in a)
    timing = ("seconds", "train_seconds", "samples_per_s")
    assert [{k: v for k, v in e.items() if k not in timing} for e in resumed.epochs] == [
        {k: v for k, v in e.items() if k not in timing} for e in straight.epochs
    ]
    assert load_checkpoint(tmp_path / "cut").position is None  # finished: at an epoch's end
    assert resumed.card.lineage.config_hash == straight.card.lineage.config_hash  # checkpointing is not the model


def test_the_test_set_never_reaches_a_choice(tmp_path, fashion):
    """Shuffle the test labels: every choice (the epoch kept, early stopping) stays the same, only the final
    test figure changes."""
    config = TrainConfig(arch="tiny", epochs=4, limit_train=1500, val_size=1000, seed=2, device="cpu", lr=3e-3)
    scrambled = fashion.test_labels[
        torch.randperm(len(fashion.test_labels), generator=torch.Generator().manual_seed(0))
    ]
    runs = [
        fit(config, tmp_path / name, data=dataclasses.replace(fashion, test_labels=labels))
        for name, labels in (("true", fashion.test_labels), ("scrambled", scrambled))
    ]
    strip = [[{k: v for k, v in e.items() if "seconds" not in k and "per_s" not in k} for e in r.epochs] for r in runs]
    assert strip[0] == strip[1] and runs[0].best_epoch == runs[1].best_epoch
    a, b = _weights(runs[0].model), _weights(runs[1].model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert runs[0].test_accuracy > 0.5 > 0.2 > runs[1].test_accuracy  # the test figure did see the labels


def test_the_best_epoch_is_kept_and_the_last_one_resumed(tmp_path, fashion):
    config = TrainConfig(arch="tiny", epochs=3, limit_train=1000, val_size=1000, seed=4, device="cpu", lr=0.05)
    result = fit(config, tmp_path, data=fashion)
    saved = load_checkpoint(tmp_path)
    best = max(result.epochs, key=lambda e: (e["val_accuracy"], -e["val_loss"]))["epoch"]
    assert saved.best_epoch == result.best_epoch == best and saved.epoch == 3
    built, kept = _weights(saved.build_model()), _weights(result.model)
    assert all(torch.equal(built[k], kept[k]) for k in built)
    _, accuracy, _ = evaluate(result.model, fashion, fashion.test_images, fashion.test_labels)
    assert accuracy == result.test_accuracy
    assert saved.last_state.keys() == saved.model_state.keys()
    if best != 3:
        assert not all(torch.equal(saved.last_state[k], saved.model_state[k]) for k in saved.model_state)


def test_patience_stops_a_stalled_run(tmp_path, fashion):
    config = TrainConfig(arch="tiny", epochs=10, limit_train=300, val_size=500, patience=2, lr=1e-12, device="cpu")
    result = fit(config, tmp_path, data=fashion)
    assert result.best_epoch == 1 and [e["epoch"] for e in result.epochs] == [1, 2, 3]
    again = fit(config, tmp_path, data=fashion, resume=True)  # resuming a stopped run trains no more
    assert len(again.epochs) == 3


def test_resume_continues_to_more_epochs(tiny_run, tmp_path, fashion):
    config, out, _ = tiny_run
    import shutil

    shutil.copytree(out, tmp_path / "run")
    longer = resume_config(tmp_path / "run", {"epochs": 3})
    result = fit(longer, tmp_path / "run", data=fashion, resume=True)
    assert [e["epoch"] for e in result.epochs] == [1, 2, 3]


def test_resume_refuses_a_different_run(tiny_run, fashion):
    config, out, _ = tiny_run
    with pytest.raises(ConfigError, match="lr"):
        fit(TrainConfig(**{**config_to_dict(config), "lr": 0.5}), out, data=fashion, resume=True)
    with pytest.raises(ConfigError, match="already has 2"):
        fit(TrainConfig(**{**config_to_dict(config), "epochs": 1}), out, data=fashion, resume=True)


def test_resume_without_checkpoint_is_a_model_file_error(tmp_path, fashion):
    with pytest.raises(ModelFileError, match="no checkpoint"):
        fit(TrainConfig(arch="tiny", epochs=1, limit_train=100), tmp_path, data=fashion, resume=True)


@pytest.mark.parametrize("content", [b"", b"garbage" * 50, pickle.dumps({"format": "x"}, protocol=2)])
def test_corrupt_or_foreign_checkpoints_are_refused(tmp_path, content):
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(content)
    with pytest.raises(ModelFileError):
        load_checkpoint(path)


def test_checkpoint_with_arbitrary_pickle_is_not_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(tmp_path / 'pwned')!r}, 'w').write('pwned')",))

    path = tmp_path / CHECKPOINT_NAME
    torch.save({"format": "edgecnn-checkpoint-3", "payload": Evil()}, path)
    with pytest.raises(ModelFileError):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_same_seed_same_weights_different_seed_different_weights(fashion, tmp_path):
    def run(seed, name):
        config = TrainConfig(arch="tiny", epochs=1, limit_train=300, seed=seed, device="cpu")
        return _weights(fit(config, tmp_path / name, data=fashion).model)

    a, b, c = run(5, "a"), run(5, "b"), run(6, "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_cuda_request_without_cuda_is_a_device_error(tmp_path, fashion):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the refusal cannot be observed here")
    with pytest.raises(DeviceError, match="no CUDA"):
        fit(TrainConfig(arch="tiny", epochs=1, device="cuda"), tmp_path, data=fashion)


def test_config_validation_names_every_problem():
    with pytest.raises(ConfigError) as info:
        TrainConfig(epochs=0, batch_size=0, optimizer="lbfgs")
    assert all(word in str(info.value) for word in ("epochs", "batch_size", "optimizer"))


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "model.bin"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_fashion_bn_one_epoch_reaches_85_percent(tmp_path, fashion):
    result = fit(TrainConfig(arch="fashion_bn", epochs=1, seed=0, device="cpu"), tmp_path, data=fashion)
    assert result.test_accuracy >= 0.85
    for name in REPORTS:
        assert (tmp_path / name).is_file()


def test_a_diverging_run_stops_with_a_clear_error_and_keeps_the_last_good_epoch(tmp_path, fashion, monkeypatch):
    """A blow-up in epoch 2 (as a too-high learning rate makes one): the weights are made infinite mid-epoch."""
    import edgecnn.training.loop as loop
    from edgecnn.errors import TrainingError

    start, runs = loop._start, []
    monkeypatch.setattr(loop, "_start", lambda *args, **kwargs: runs.append(start(*args, **kwargs)) or runs[-1])

    def poison(epoch, step):
        if epoch == 2:
            with torch.no_grad():
                next(runs[-1].model.parameters()).fill_(float("inf"))

    config = TrainConfig(arch="tiny", epochs=3, limit_train=300, seed=0, device="cpu")
    with pytest.raises(TrainingError, match="diverged in epoch 2.*epoch 1 is kept"):
        fit(config, tmp_path, data=fashion, on_step=poison)
    assert load_checkpoint(tmp_path).epoch == 1  # the good epoch, not the poisoned one


@pytest.mark.parametrize(
    "bad",
    [
        dict(lr=float("inf")),
        dict(lr=float("nan")),
        dict(seed=2**70),
        dict(seed=-1),
        dict(batch_size=10**9),
        dict(lr="fast"),
        dict(epochs=2.5),
        dict(momentum=1.5),
    ],
)
def test_numbers_are_finite_whole_and_in_range(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        TrainConfig(**bad)
