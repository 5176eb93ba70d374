import pytest
import torch

from edgecnn.errors import ArchError, EdgeCNNError
from edgecnn.training.architectures import count_parameters, create, list_archs, register

EXPECTED_PARAMETERS = {
    "mnist_cnn3": 1_379_557,
    "convnet5": 3_199_106,
    "keras_conv2": 203_434,
    "fashion_bn": 29_034,
    "keras_same": 257_162,
    "keras_valid": 93_322,
}


def test_registry_holds_the_seed_nets_and_tiny():
    assert set(list_archs()) == set(EXPECTED_PARAMETERS) | {"tiny"}


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMETERS))
def test_parameter_counts_match_the_tutorials(name):
    assert count_parameters(create(name)) == EXPECTED_PARAMETERS[name]


def test_tiny_is_a_few_thousand_parameters():
    assert 1_000 <= count_parameters(create("tiny")) <= 10_000


@pytest.mark.parametrize("name", list_archs())
def test_every_net_gives_logits_of_shape_n_by_classes(name, fashion):
    model = create(name).eval()
    x = fashion.normalize(fashion.test_images[:5])
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (5, 10)
    assert torch.isfinite(logits).all()
    # logits, not probabilities: rows do not sum to one
    assert not torch.allclose(logits.sum(1), torch.ones(5))


@pytest.mark.parametrize("name", list_archs())
def test_builders_follow_channels_classes_and_input_size(name):
    model = create(name, num_classes=4, in_channels=3, input_size=(32, 32)).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)


def test_unknown_arch_lists_the_valid_names():
    with pytest.raises(ArchError) as info:
        create("resnet9000")
    message = str(info.value)
    assert "resnet9000" in message
    for name in list_archs():
        assert name in message
    assert isinstance(info.value, EdgeCNNError)


def test_input_too_small_for_the_net_is_an_arch_error():
    with pytest.raises(ArchError, match="cannot take"):
        create("keras_valid", input_size=(8, 8))


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register("tiny", summary="again")(lambda **kw: None)


def test_building_does_not_touch_batchnorm_statistics():
    model = create("fashion_bn")
    bn = model.features[1]
    assert torch.equal(bn.running_mean, torch.zeros(16))
    assert int(bn.num_batches_tracked) == 0
