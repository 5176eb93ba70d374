import numpy as np
import pytest

from edgecnn.card import Lineage, ModelCard, Normalization
from edgecnn.errors import ModelFileError
from edgecnn.runtime.metadata import SCHEMA, InputSpec, ModelMetadata, decode, encode
from edgecnn.runtime.preprocess import normalize, to_graph_input

CARD = ModelCard(
    arch="fashion_bn",
    class_names=("T-shirt/top", "Trouser"),
    input_shape=(1, 28, 28),
    normalization=Normalization((0.286,), (0.353,)),
    dataset="fashion-mnist",
    metrics={"test_accuracy": 0.8712, "epochs": 1.0},
    lineage=Lineage("a" * 64, "b" * 64, "0.1.0"),
)
META = ModelMetadata(
    card=CARD,
    input=InputSpec((1, 28, 28)),
    quantization={"mode": "static", "calibration": {"samples": 500}},
    parity={"passed": True, "max_abs": 0.01},
    version="0.1.0",
)


def test_round_trip():
    props = encode(META)
    assert all(k.startswith("edgecnn.") and isinstance(v, str) for k, v in props.items())
    assert props["edgecnn.schema"] == SCHEMA
    assert decode(props) == META
    assert props["edgecnn.arch"] == "fashion_bn"  # plain text where Netron shows it


def test_card_round_trips_through_plain_data():
    assert ModelCard.from_dict(CARD.to_dict()) == CARD
    with pytest.raises(ModelFileError, match="input_shape.*3 whole numbers"):
        ModelCard.from_dict({**CARD.to_dict(), "input_shape": [28, 28]}, source="x")


def test_baked_input_layouts():
    assert InputSpec((1, 28, 28), baked=True).layout == "NHW"
    assert InputSpec((3, 32, 32), baked=True).to_dict()["layout"] == "NHWC"
    assert InputSpec((3, 32, 32)).to_dict() == {
        "name": "input",
        "layout": "NCHW",
        "dtype": "float32",
        "shape": [3, 32, 32],
        "baked": False,
    }


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: p.clear(), "no edgecnn metadata"),
        (lambda p: p.update({"edgecnn.schema": "99"}), "schema '99'"),
        (lambda p: p.update({"edgecnn.normalization": "[]"}), "normalization.*mapping"),
        (lambda p: p.update({"edgecnn.input": "{not json"}), "edgecnn.input is not valid JSON"),
        (lambda p: p.pop("edgecnn.class_names"), "lacks edgecnn.class_names"),
    ],
)
def test_bad_metadata_is_a_model_file_error(mutate, message):
    props = encode(META)
    mutate(props)
    with pytest.raises(ModelFileError, match=message):
        decode(props, source="m.onnx")


def test_numpy_normalize_is_bit_identical_to_the_training_path(fashion):
    images = fashion.test_images[:32]
    ours = normalize(images.numpy(), fashion.normalization.mean, fashion.normalization.std)
    assert np.array_equal(ours, fashion.normalize(images).numpy())
    baked = to_graph_input(images.numpy(), InputSpec((1, 28, 28), baked=True), [0.5], [0.5])
    assert baked.dtype == np.uint8 and baked.shape == (32, 28, 28)
