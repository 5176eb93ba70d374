"""Inputs and metadata that could be read the wrong way: an H×W×K array with K not a channel count, float images
holding NaN or inf (arrays and PIL's float mode, handed over or from a TIFF file), class names empty or given twice
(in a card, and as a foreign model's classes=), and weights with NaN or inf (``--init`` and a checkpoint)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from edgecnn.card import ModelCard
from edgecnn.errors import ConfigError, ImageError, InputError, ModelFileError
from edgecnn.runtime import Predictor

MODEL = "models/fashion_bn/fashion_bn.fp32.onnx"


@pytest.fixture(scope="module")
def predictor():
    return Predictor(MODEL, backend="onnxruntime")


@pytest.mark.parametrize("shape", [(28, 28, 2), (28, 28, 5), (480, 640, 6), (64, 64, 16), (3, 28, 2), (30, 40, 29)])
def test_a_last_axis_that_is_no_channel_count_is_refused_with_how(predictor, shape):
    with pytest.raises(InputError, match=rf"{shape[-1]} channels.*N×H×W×1"):
        predictor.predict(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("shape", [(16, 28, 28), (3, 28, 28), (2, 28, 27), (28, 28, 28)])
def test_a_batch_of_grey_images_still_reads_as_one(predictor, shape):
    assert len(predictor.predict(np.zeros(shape, np.uint8))) == shape[0]
    assert len(predictor.predict(np.zeros((*shape, 1), np.uint8))) == shape[0]  # the unambiguous spelling


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_float_images_with_nan_or_inf_are_refused_in_every_form(predictor, tmp_path, value):
    pixels = np.full((28, 28), 0.5, np.float32)
    pixels[3, 4] = value
    for dtype in (np.float16, np.float32, np.float64):
        with pytest.raises(InputError, match="NaN or infinite"):
            predictor.predict(pixels.astype(dtype))
    with pytest.raises(ImageError, match="NaN or infinite"):
        predictor.predict(Image.fromarray(pixels * 255, "F"))
    Image.fromarray(pixels * 255, "F").save(tmp_path / "float.tif")
    with pytest.raises(ImageError, match=r"float\.tif: a float \(mode F\) image holding NaN or infinite"):
        predictor.predict(str(tmp_path / "float.tif"))


def _card(classes):
    card = ModelCard.from_dict(json.loads(json.dumps(Predictor(MODEL, backend="onnxruntime").card.to_dict())))
    return {**card.to_dict(), "class_names": classes}


@pytest.mark.parametrize(
    "classes, why",
    [(["a", "a"], "'a' more than once"), (["a", ""], "an empty name"), (["x", " ", "y"], "an empty name")],
)
def test_class_names_are_unique_and_named_at_load(classes, why):
    with pytest.raises(ModelFileError, match=why):
        ModelCard.from_dict(_card(classes), source="m.onnx")


def test_a_foreign_models_classes_are_checked_the_same_way(tmp_path):
    torch = pytest.importorskip("torch")
    from conftest import plain_torch_export

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 3)).eval()
    path = plain_torch_export(net, tmp_path / "plain.onnx", external_data=False)
    for classes in (["a", "b", "a"], ["a", "", "c"]):
        with pytest.raises(ConfigError, match="classes (names|has)"):
            Predictor(path, classes=classes, mean=[0.5], std=[0.5], backend="onnxruntime")
