"""Registry-wide model checks (timm-style): every image classifier builds, runs forward/backward and traces."""

import pytest
import torch

from zoo_train.registry import (
    BY_THOROUGHNESS,
    OPTIONAL_PRESETS,
    PRESETS,
    Recipe,
    get_entry,
    get_model,
    list_models,
    register_model,
)

IMAGE_MODELS = list_models(task="image-classification")
SHAPES = [(1, 10, 28), (3, 100, 32)]


def test_registry_lists_the_image_zoo_sorted():
    assert {"lenet5", "cifar-lenet", "simple-cnn", "resnet-cifar", "scratch-cnn"} <= set(IMAGE_MODELS)
    assert list_models() == sorted(list_models())


def test_registry_refuses_duplicates_and_unknown_names():
    recipes = {p: Recipe() for p in ("smoke", "quick", "full")}
    with pytest.raises(ValueError, match="already registered under the name 'lenet5'"):
        register_model("lenet5", task="image-classification", config_cls=dict, default_dataset="x", recipes=recipes)(lambda: None)
    with pytest.raises(ValueError, match="unknown model 'no-such-model'"):
        get_model("no-such-model")
    with pytest.raises(ValueError, match="lacks recipes"):
        register_model("new-model", task="t", config_cls=dict, default_dataset="x", recipes={})
    with pytest.raises(ValueError, match=r"unknown presets \['long'\]"):
        register_model("new-model", task="t", config_cls=dict, default_dataset="x", recipes={**recipes, "long": Recipe()})


def test_every_preset_has_a_rank_of_thoroughness():
    # A preset added to the registry but not ranked would lose to every other run of its model in the reports.
    assert sorted(BY_THOROUGHNESS) == sorted(PRESETS + OPTIONAL_PRESETS)


@pytest.mark.parametrize("name", list_models())
def test_every_entry_has_task_dataset_and_three_recipes(name):
    entry = get_entry(name)
    assert entry.task and entry.default_dataset and entry.description
    assert all(entry.recipe(p).epochs >= 1 for p in ("smoke", "quick", "full"))


@pytest.mark.parametrize("name", IMAGE_MODELS)
@pytest.mark.parametrize("channels,classes,size", SHAPES)
def test_image_classifier_shapes_follow_the_dataset(name, channels, classes, size):
    model = get_model(name, in_channels=channels, num_classes=classes, image_size=size).eval()
    x = torch.rand(2, channels, size, size)
    assert model(x).shape == (2, classes)
    assert model.features(x).shape[0] == 2


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_image_classifier_backward_and_trace(name):
    entry = get_entry(name)
    model = entry.build(in_channels=1, num_classes=10, image_size=28, **entry.tiny_config)
    x = torch.rand(4, 1, 28, 28)
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    traced = torch.jit.trace(model, x)
    torch.testing.assert_close(traced(x[:3]), model(x[:3]))


def test_lenet5_matches_seed_004_on_32px_grey():
    model = get_model("lenet5", in_channels=1, num_classes=10, image_size=32)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(1, 6, (5, 5)), (6, 16, (5, 5))]
    assert [(layer.in_features, layer.out_features) for layer in linears] == [(400, 120), (120, 84), (84, 10)]


def test_cifar_lenet_matches_seed_000():
    model = get_model("cifar-lenet", in_channels=3, num_classes=100, image_size=32)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linears] == [(1600, 384), (384, 192), (192, 100)]


def test_scratch_cnn_uses_no_torch_layers():
    model = get_model("scratch-cnn", in_channels=1, num_classes=10, image_size=28)
    assert not any(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in model.modules())


@pytest.mark.parametrize("name", list_models())
def test_every_entry_states_its_quality_target(name):
    targets = get_entry(name).targets
    assert targets, f"{name} has no quality target for its full recipe"
    for target in targets:
        assert target.met({}) is None  # nothing measured is not a pass


def test_quality_target_bounds():
    from zoo_train.registry import QualityTarget

    assert QualityTarget("acc", at_least=0.9).met({"acc": 0.9}) is True
    assert QualityTarget("acc", at_least=0.9).met({"acc": 0.8986}) is False
    assert QualityTarget("loss", at_most=1.5).met({"loss": 1.51}) is False
    below = QualityTarget("fid", below="fid_untrained", fraction=0.25)
    assert below.met({"fid": 20.0, "fid_untrained": 100.0}) is True
    assert below.met({"fid": 30.0, "fid_untrained": 100.0}) is False
    assert below.met({"fid": 20.0, "fid_untrained": None}) is None
    assert below.describe() == "fid < 0.25 x fid_untrained"
