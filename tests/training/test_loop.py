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
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds", "samples_per_s"):
        assert key in metrics["epochs"][0]
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


def test_interrupt_and_resume_is_bit_identical(tmp_path, mnist):
    # mnist_cnn3 has dropout, so the global RNG state must survive the interruption too
    config = TrainConfig(arch="mnist_cnn3", dataset="mnist", epochs=3, limit_train=600, seed=11, device="cpu")
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
    torch.save({"format": "edgecnn-checkpoint-2", "payload": Evil()}, path)
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
