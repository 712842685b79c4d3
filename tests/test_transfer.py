"""Transfer learning: torchvision state dicts into the zoo's torchvision architectures, --init-from torchvision,
a head of other classes left out, and a frozen backbone's features computed once.

The torchvision weights are a torchvision model of random weights saved by the test (``weights=None``); nothing
downloads: torch.hub's network access is cut, as on a machine offline.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.error
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
import torchvision.models
from image_fixtures import write_folder

from zoo_train.checkpoint import CheckpointError, load_checkpoint
from zoo_train.cli import main as train_main
from zoo_train.registry import get_entry
from zoo_train.trainer import Run, TrainConfig, train
from zoo_train.transfer import SourceWeights, file_weights, initialise_from, read_source

TORCHVISION_BUILDERS = {"resnet18": torchvision.models.resnet18, "mobilenet-v3-small": torchvision.models.mobilenet_v3_small}
STEMS = {"resnet18": "conv1.weight", "mobilenet-v3-small": "features.0.0.weight"}
HEADS = {"resnet18": ["fc.weight", "fc.bias"], "mobilenet-v3-small": ["classifier.3.weight", "classifier.3.bias"]}
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}  # torchvision's weights' transforms


@pytest.fixture(autouse=True)
def _offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # torch.hub's cache in the test's folder (empty), the decode cache too, and no network: every download fails.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))

    def no_network(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "urlopen", no_network)


def torchvision_state_dict(name: str, path: Path) -> dict[str, torch.Tensor]:
    torch.manual_seed(7)
    state = TORCHVISION_BUILDERS[name](weights=None).state_dict()
    torch.save(state, path)
    return state


@pytest.mark.parametrize("name", sorted(TORCHVISION_BUILDERS))
def test_a_torchvision_state_dict_loads_by_name_with_a_grey_stem_and_a_new_head(tmp_path, name):
    saved = torchvision_state_dict(name, tmp_path / "imagenet.pth")
    entry = get_entry(name)
    assert entry.torchvision_weights  # what --init-from torchvision would download
    model = entry.build(in_channels=1, num_classes=4, image_size=32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = initialise_from(model, file_weights(tmp_path / "imagenet.pth"), name, labels=["a", "b", "c", "d"])

    state = model.state_dict()
    stem, head = STEMS[name], HEADS[name]
    assert report.fresh == head
    assert [line.split(":")[0] for line in report.skipped] == head
    assert "shape [1000" in report.skipped[0]
    assert report.adapted == [f"{stem}: 3 -> 1 input channels, summed over RGB"]
    torch.testing.assert_close(state[stem], saved[stem].sum(dim=1, keepdim=True))
    for key, tensor in saved.items():
        if key not in head and key != stem:
            assert torch.equal(state[key], tensor), key  # loaded as saved, running statistics included
    for key in head:
        assert torch.equal(state[key], before[key])  # the new head keeps its fresh initialisation
    assert len(report.loaded) == len(saved) - len(head)


def test_an_rgb_model_takes_the_stem_as_it_is(tmp_path):
    saved = torchvision_state_dict("resnet18", tmp_path / "imagenet.pth")
    model = get_entry("resnet18").build(in_channels=3, num_classes=1000, image_size=32)
    report = initialise_from(model, file_weights(tmp_path / "imagenet.pth"), "resnet18", labels=None)
    assert report.skipped == [] and report.fresh == [] and report.adapted == []
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())


def test_a_grey_stem_is_repeated_into_rgb_keeping_the_response_to_grey_images():
    grey = nn.Conv2d(1, 4, 3, bias=False)
    rgb = nn.Conv2d(3, 4, 3, bias=False)
    source = SourceWeights(where="grey.pth", tensors={"weight": grey.weight.detach()})
    report = initialise_from(rgb, source, "conv", labels=None)
    assert report.adapted == ["weight: 1 -> 3 input channels, repeated and scaled"]
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(rgb(x.expand(-1, 3, -1, -1)), grey(x))


def test_a_head_for_as_many_other_classes_is_left_out():
    model = get_entry("lenet5").build(in_channels=1, num_classes=2, image_size=28)
    donor = get_entry("lenet5").build(in_channels=1, num_classes=2, image_size=28)
    tensors = {k: v for k, v in donor.state_dict().items()}
    same = initialise_from(model, SourceWeights("run", tensors, labels=["cat", "dog"]), "lenet5", labels=["cat", "dog"])
    assert same.skipped == [] and same.fresh == []
    other = initialise_from(model, SourceWeights("run", tensors, labels=["pear", "plum"]), "lenet5", labels=["cat", "dog"])
    assert other.fresh == ["head.weight", "head.bias"]
    assert other.skipped[0] == "head.weight: the head of other classes (pear, plum)"


def test_init_from_a_torchvision_file_trains_a_frozen_mobilenet_on_grey_photos(tmp_path, capsys):
    saved = torchvision_state_dict("mobilenet-v3-small", tmp_path / "mobilenet.pth")
    root = write_folder(tmp_path / "photos", per_class=4, grey=True)
    args = ["mobilenet-v3-small", "--data", str(root), "--preset", "smoke", "--image-size", "32", "--workers", "0"]
    args += ["--out", str(tmp_path / "runs"), "--max-steps", "1", "--quiet", "--init-from", str(tmp_path / "mobilenet.pth")]
    assert train_main([*args, "--freeze", "backbone"]) == 0
    assert "features.0.0.weight: 3 -> 1 input channels" in capsys.readouterr().err
    run = tmp_path / "runs" / "mobilenet-v3-small"
    record = json.loads((run / "run.json").read_text())
    assert record["config"]["in_channels"] == 1 and record["init_from"]["fresh"] == HEADS["mobilenet-v3-small"]
    checkpoint = load_checkpoint(run / "checkpoints" / "last.pt")
    weights = checkpoint["state_dict"]
    # Grey inputs normalised as ImageNet's RGB, averaged over the colours (as the summed stem sees them).
    image = checkpoint["meta"]["preprocessing"]["image"]
    assert image["mean"] == pytest.approx([sum(IMAGENET["mean"]) / 3])
    assert image["std"] == pytest.approx([sum(IMAGENET["std"]) / 3])
    assert record["data"].endswith("inputs normalised with the pretrained weights' mean and std")
    assert torch.equal(weights["features.3.block.1.0.weight"], saved["features.3.block.1.0.weight"])
    assert torch.equal(weights["features.3.block.1.1.running_mean"], saved["features.3.block.1.1.running_mean"])


def test_a_source_says_how_its_inputs_were_normalised(tmp_path):
    torchvision_state_dict("resnet18", tmp_path / "imagenet.pth")
    normalisation = read_source(str(tmp_path / "imagenet.pth"), get_entry("resnet18")).normalisation
    assert normalisation is not None
    assert {key: pytest.approx(values) for key, values in normalisation.items()} == IMAGENET
    # A plain state dict of a zoo architecture says nothing: the run keeps its data's statistics.
    torch.save(get_entry("lenet5").build(in_channels=1, num_classes=2, image_size=28).state_dict(), tmp_path / "lenet.pth")
    assert read_source(str(tmp_path / "lenet.pth"), get_entry("lenet5")).normalisation is None


def test_a_run_from_a_zoo_checkpoint_normalises_as_its_source_also_when_resumed(tmp_path, capsys):
    source = small_run(tmp_path, write_folder(tmp_path / "colour", per_class=6), "source")
    source_image = load_checkpoint(source / "checkpoints" / "last.pt")["meta"]["preprocessing"]["image"]
    grey = write_folder(tmp_path / "grey", per_class=6, grey=True)
    run = small_run(tmp_path, grey, "fine-tuned", init_from=source)
    image = load_checkpoint(run / "checkpoints" / "last.pt")["meta"]["preprocessing"]["image"]
    assert image["mean"] == pytest.approx([sum(source_image["mean"]) / 3])
    assert image["std"] == pytest.approx([sum(source_image["std"]) / 3])
    assert source_image["channels"] == 3 and image["channels"] == 1
    capsys.readouterr()
    small_run(tmp_path, grey, "fine-tuned", resume=True, epochs=2)
    assert "data_options" not in capsys.readouterr().err  # only epochs 1 -> 2 changed
    resumed = load_checkpoint(run / "checkpoints" / "last.pt")
    assert resumed["meta"]["preprocessing"]["image"] == image and resumed["train_state"]["epoch"] == 2


def small_run(tmp_path: Path, root: Path, name: str, epochs: int = 1, **changes: Any) -> Path:
    config = TrainConfig(
        model="simple-cnn",
        preset="smoke",
        data=str(root),
        out=tmp_path / "runs",
        run_name=name,
        epochs=epochs,
        batch_size=8,
        show_progress=False,
        model_overrides={"widths": (4, 8, 8), "hidden": 16},
        data_options={"image_size": 16, "workers": 0},
    )
    return train(dataclasses.replace(config, **changes))


def test_init_from_torchvision_offline_is_one_line_and_writes_nothing(tmp_path, capsys):
    root = write_folder(tmp_path / "photos", per_class=3)
    args = ["resnet18", "--data", str(root), "--preset", "smoke", "--image-size", "32", "--workers", "0"]
    assert train_main([*args, "--out", str(tmp_path / "runs"), "--quiet", "--init-from", "torchvision"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "--init-from torchvision: cannot download ResNet18_Weights.IMAGENET1K_V1 for resnet18" in err
    assert "Temporary failure in name resolution" in err and "--init-from resnet18-" in err
    assert not (tmp_path / "runs").exists()


def test_init_from_torchvision_for_a_zoo_architecture_is_refused_before_reading_data(tmp_path, capsys):
    args = ["lenet5", "--data", str(tmp_path / "not-there"), "--out", str(tmp_path / "runs"), "--quiet"]
    assert train_main([*args, "--init-from", "torchvision"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--init-from torchvision: lenet5 is not a torchvision architecture (those are: mobilenet-v3-small, resnet18)" in err
    assert not (tmp_path / "runs").exists()
    with pytest.raises(CheckpointError, match="not a torchvision architecture"):
        read_source("torchvision", get_entry("simple-cnn"))


# ------------------------------------------------------------------------------------ a frozen backbone's features, once
def frozen_run(tmp_path: Path, root: Path, name: str, cache: bool, epochs: int = 1) -> Path:
    return small_run(
        tmp_path,
        root,
        name,
        epochs,
        model_overrides={"widths": (4, 8, 8), "hidden": 16, "dropout": 0.5},
        freeze="backbone",
        augment=False,
        cache_features=cache,
        precision="fp32",  # the comparison's tolerance is fp32's (auto may pick bf16 on a CPU with AMX)
    )


def test_a_head_trained_on_cached_features_matches_one_trained_through_the_backbone(tmp_path):
    root = write_folder(tmp_path / "photos", per_class=10)
    cached = frozen_run(tmp_path, root, "cached", cache=True)
    computed = frozen_run(tmp_path, root, "computed", cache=False)
    assert json.loads((cached / "run.json").read_text())["features_cached"] is True
    assert json.loads((computed / "run.json").read_text())["features_cached"] is False
    a = load_checkpoint(cached / "checkpoints" / "last.pt")["state_dict"]
    b = load_checkpoint(computed / "checkpoints" / "last.pt")["state_dict"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    figures = [
        [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "epoch"]
        for run in (cached, computed)
    ]
    for key in ("train_loss", "val_loss", "val_accuracy"):
        assert figures[0][0][key] == pytest.approx(figures[1][0][key], rel=1e-5), key


def test_the_backbone_sees_each_image_once_however_many_epochs(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "photos", per_class=10)
    seen: dict[str, int] = {}
    real_prepare_steps, real_finish = Run.prepare_steps, Run.finish

    def count_stem_inputs(run: Run) -> None:
        stem = next(m for m in run.model.modules() if isinstance(m, nn.Conv2d))
        name = str(run.cfg.run_name)
        seen[name] = 0
        stem.register_forward_hook(lambda _m, args, _out: seen.__setitem__(name, seen[name] + len(args[0])))
        real_prepare_steps(run)

    def stop_counting(run: Run) -> None:
        seen[f"{run.cfg.run_name} images"] = len(run.data.train) + len(run.data.val)  # type: ignore[arg-type]
        seen[f"{run.cfg.run_name} final"] = seen[str(run.cfg.run_name)]
        real_finish(run)

    monkeypatch.setattr(Run, "prepare_steps", count_stem_inputs)
    monkeypatch.setattr(Run, "finish", stop_counting)
    frozen_run(tmp_path, root, "cached", cache=True, epochs=3)
    frozen_run(tmp_path, root, "computed", cache=False, epochs=3)
    images = seen["cached images"]
    assert images == 30
    assert seen["cached final"] == images  # once each, before the first epoch
    assert seen["computed final"] == 3 * images  # every epoch again
