"""The shipped zoo (models/): every file as the index says, every figure as its card says, every goal met.

No training here: the models are read, run on the full real test sets, and compared with their cards.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from edgecnn.runtime import Predictor

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
# issue 11's goal table: test accuracy of the shipped torch model (int8 within 0.3 pp of it)
GOALS = {
    "mnist_cnn3": ("mnist", 0.9945),
    "convnet5": ("mnist", 0.9945),
    "keras_conv2": ("mnist", 0.990),
    "keras_valid": ("mnist", 0.993),
    "fashion_bn": ("fashion-mnist", 0.915),
    "keras_same": ("fashion-mnist", 0.930),
}
CARD_SECTIONS = (
    "## Intended use and input",
    "## Data",
    "## Recipe",
    "## Accuracy",
    "## Per-class test accuracy",
    "## Model",
    "## Latency on the build machine",
    "## Rebuild",
    "## Known limitations",
)


def _index() -> dict:
    return json.loads((MODELS / "index.json").read_text())


def _card(name: str) -> dict:
    return json.loads((MODELS / name / "card.json").read_text())


def test_the_zoo_holds_the_six_seed_nets_and_stays_under_60_mb():
    assert set(_index()["nets"]) == set(GOALS)
    total = sum(p.stat().st_size for p in MODELS.rglob("*") if p.is_file())
    assert total < 60 * 1024**2, f"models/ is {total / 1024**2:.1f} MiB"


def test_every_file_is_indexed_present_and_matches_its_sha256():
    files = _index()["files"]
    on_disk = {p.relative_to(MODELS).as_posix() for p in MODELS.rglob("*") if p.is_file()} - {"index.json"}
    assert on_disk == set(files)
    for relative, entry in files.items():
        data = (MODELS / relative).read_bytes()
        assert len(data) == entry["size"] and hashlib.sha256(data).hexdigest() == entry["sha256"], relative


@pytest.mark.parametrize("name", sorted(GOALS))
def test_each_model_scores_its_card_on_the_full_test_set_and_meets_its_goal(name, mnist, fashion):
    dataset, goal = GOALS[name]
    data = mnist if dataset == "mnist" else fashion
    card, entry = _card(name), _index()["nets"][name]
    x = data.normalize(data.test_images).numpy()
    truth = data.test_labels.numpy()
    predicted = {}
    for variant in ("fp32", "int8"):
        predictor = Predictor.from_zoo(name, variant)
        predicted[variant] = np.concatenate([predictor.logits(x[i : i + 500]).argmax(1) for i in range(0, len(x), 500)])
        accuracy = float((predicted[variant] == truth).mean())
        assert abs(accuracy - card["accuracy"]["test"][variant]) <= 0.0005, (variant, accuracy)  # ±0.05 pp
        assert entry["test_accuracy"][variant] == card["accuracy"]["test"][variant]
    torch_accuracy = card["accuracy"]["test"]["torch"]
    assert torch_accuracy >= goal
    assert float((predicted["int8"] == truth).mean()) >= torch_accuracy - 0.003
    assert float((predicted["int8"] == predicted["fp32"]).mean()) >= 0.99
    default = "int8" if card["int8"]["chosen_by"] == "auto" else "fp32"  # auto's choice: int8 only where faster
    assert entry["default"] == default and Predictor.from_zoo(name).path.name == f"{name}.{default}.onnx"


@pytest.mark.parametrize("name", sorted(GOALS))
def test_each_card_holds_every_field(name):
    card = _card(name)
    assert card["dataset"] == GOALS[name][0] and card["goal"] == GOALS[name][1]
    for split in ("val", "test"):
        assert set(card["accuracy"][split]) >= {"torch", "fp32", "int8", "samples"}
    assert card["accuracy"]["val"]["samples"] == 5000 and card["accuracy"]["test"]["samples"] == 10000
    assert all(len(v) == 10 for v in card["accuracy"]["per_class"].values())
    assert card["net"]["parameters"] > 0 and card["net"]["macs"] > card["net"]["parameters"] / 2
    assert len(card["net"]["data_sha256"]) == 64 and card["published"] and card["use"]
    assert set(card["recipes"]) == {"edgecnn", "tutorial"}
    assert all(card["recipes"][r]["test_accuracy"] > 0.5 for r in card["recipes"])
    for variant in ("fp32", "int8"):
        assert {"b1", "b64"} <= set(card["latency"]["rows"][variant])
    assert {"cpu", "onnxruntime", "cores"} <= set(card["latency"]["environment"])
    text = (MODELS / name / "card.md").read_text()
    for section in CARD_SECTIONS:
        assert section in text, section
    assert f"tools/build_zoo.py --only {name}" in text and f"{100 * card['accuracy']['test']['int8']:.2f} %" in text
    for extra in ("curves.png", "confusion.png", f"{name}.safetensors", f"{name}.fp32.onnx", f"{name}.int8.onnx"):
        assert (MODELS / name / extra).stat().st_size > 0


def test_the_zoo_readme_is_generated_from_the_cards():
    text = (MODELS / "README.md").read_text()
    for name in GOALS:
        card = _card(name)
        assert f"[`{name}`]({name}/card.md)" in text
        assert f"{100 * card['accuracy']['test']['int8']:.2f} %" in text


def test_zoo_names_work_in_predict_info_and_bench_without_torch(tmp_path, fashion):
    from PIL import Image

    image = tmp_path / "item.png"
    Image.fromarray(fashion.test_images[0, 0].numpy()).save(image)
    expected = fashion.class_names[int(fashion.test_labels[0])]
    predicted = run_cli("predict", "zoo:keras_same", str(image), "--json", block_torch=True)
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)[0]["label"] == expected
    shown = run_cli("info", "zoo:fashion_bn:fp32", "--json", block_torch=True)
    assert shown.returncode == 0 and json.loads(shown.stdout)["edgecnn"]["card"]["arch"] == "fashion_bn"
    timed = run_cli(
        "bench", "zoo:keras_valid", "--iters", "5", "--batch-sizes", "1", "--cold-runs", "0", block_torch=True
    )
    assert timed.returncode == 0, timed.stderr
