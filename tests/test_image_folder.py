"""Training on a folder of the user's own images: layouts, labels, bad data, the decode cache, folder -> bundle -> runtime.

Folders are written in the tests with Pillow in real formats (JPEG, PNG, WebP, GIF, BMP, 16-bit TIFF/PNG, grey,
RGBA, EXIF-rotated), at varied sizes; each class is a bright band at its own place on noise, so it is learnable.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from image_fixtures import CLASSES, class_image, write_class_folder, write_folder
from PIL import Image

import zoo_runtime
import zoo_train.data.image_folder as image_folder
from zoo_runtime.cli import main as run_main
from zoo_runtime.pixels import RESIZE_CENTER_CROP, decode_image_file
from zoo_runtime.tasks.image_classification import ImageSpec, read_image_file
from zoo_train.checkpoint import load_checkpoint
from zoo_train.cli import main as train_main
from zoo_train.data.errors import DataError
from zoo_train.data.image_folder import FolderOptions, load_image_folder, scan_folder, stratified_split
from zoo_train.registry import get_entry, list_models
from zoo_train.trainer import TrainConfig, train


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The decode cache defaults to the user's cache folder: never the real one in a test.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def train_cli(tmp_path: Path, data: Path, *extra: str) -> int:
    return train_main(
        [
            "lenet5",
            "--data",
            str(data),
            "--preset",
            "smoke",
            "--out",
            str(tmp_path / "runs"),
            "--image-size",
            "16",
            "--workers",
            "0",
            "--quiet",
            "--set",
            "conv_channels=[4,8]",
            "--set",
            "fc_sizes=[16,16]",
            *extra,
        ]
    )


# ------------------------------------------------------------------------------------ scanning and splitting
def test_flat_folder_classes_are_sorted_names_and_strays_are_ignored_and_counted(tmp_path):
    root = write_folder(tmp_path / "photos", per_class=4)
    (root / "README.txt").write_text("not an image")
    (root / "Äpfel" / "notes.csv").write_text("a,b")
    (root / "birch" / ".DS_Store").write_bytes(b"\0\1")
    (root / ".hidden-class").mkdir()
    (root / ".hidden-class" / "x.png").write_bytes(b"")
    scan = scan_folder(root)
    assert scan.classes == CLASSES
    assert scan.train_folder == root
    assert sorted(scan.files) == ["train"]
    assert len(scan.files["train"]) == 12
    assert scan.hidden == 2 and scan.not_images == 1 and scan.loose == 1
    assert not scan.unreadable


def test_train_val_test_subfolders_are_used_as_given(tmp_path):
    root = write_folder(tmp_path / "photos", per_class=4, splits=("train", "val", "test"))
    data = load_image_folder(root, FolderOptions(image_size=16, workers=0), seed=0)
    assert data.has_val_folder
    assert {split: len(pos) for split, pos in data.positions.items()} == {"train": 12, "val": 12, "test": 12}
    assert data.report["class_counts"]["test"] == dict.fromkeys(CLASSES, 4)


def test_without_val_the_split_is_stratified_and_seeded():
    labels = np.repeat(np.arange(3), [20, 10, 3])
    train_a, val_a = stratified_split(labels, seed=1)
    train_b, val_b = stratified_split(labels, seed=1)
    _, val_c = stratified_split(labels, seed=2)
    assert np.array_equal(val_a, val_b) and np.array_equal(train_a, train_b)
    assert not np.array_equal(val_a, val_c)
    assert np.bincount(labels[val_a]).tolist() == [2, 1, 1]  # a tenth of each class, at least one
    assert sorted(np.concatenate([train_a, val_a]).tolist()) == list(range(len(labels)))


def test_class_counts_and_imbalance_reach_the_summary_and_the_report(tmp_path):
    root = write_folder(tmp_path / "photos", per_class=10)
    write_class_folder(root / "猫", 2, 30, seed=7)  # 30 files, overwriting the 10 of the same names
    assert train_cli(tmp_path, root) == 0
    run = tmp_path / "runs" / "lenet5"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["class_counts"]["train"] == {"Äpfel": 9, "birch": 9, "猫": 27}
    assert summary["class_imbalance"] == 3.0
    assert summary["metric"] == "val_accuracy" and "only validation figures" in summary["split"]
    assert "only validation figures" in summary["data"] and "猫 27" in summary["data"]
    report = json.loads((run / "classification_report.json").read_text())
    assert set(report["classes"]) == set(CLASSES)
    assert report["dataset"]["class_counts"]["val"] == {"Äpfel": 1, "birch": 1, "猫": 3}


@pytest.mark.parametrize("flag, augmented", [((), False), (("--augment",), True), (("--no-augment",), False)])
def test_augmentation_is_the_recipes_unless_a_flag_says(tmp_path, flag, augmented):
    root = write_folder(tmp_path / "photos", per_class=4)
    assert train_cli(tmp_path, root, "--max-steps", "1", *flag) == 0  # smoke, as quick, trains without augmentation
    assert json.loads((tmp_path / "runs" / "lenet5" / "run.json").read_text())["recipe"]["augment"] is augmented


# ------------------------------------------------------------------------------------ pixels
def test_sixteen_bit_grey_is_scaled_to_eight_bits_not_clipped(tmp_path):
    wide = np.full((10, 12), 32896, dtype=np.uint16)  # 128 * 257
    wide[:, :6] = 65535
    for suffix in ("png", "tiff"):
        Image.fromarray(wide).save(tmp_path / f"deep.{suffix}")
        pixels = decode_image_file(tmp_path / f"deep.{suffix}", "L", 12, 10)
        assert pixels.shape == (10, 12, 1)
        assert pixels[:, :6].min() == 255 and pixels[:, 6:].max() == 128 and pixels[:, 6:].min() == 128


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[:, :16] = 255  # white on the left as stored
    exif = Image.Exif()
    exif[0x0112] = 3  # rotate 180 degrees to show: white on the right
    Image.fromarray(pixels).save(tmp_path / "turned.jpg", exif=exif, quality=95)
    shown = decode_image_file(tmp_path / "turned.jpg", "L", 32, 32)
    assert shown[:, :16].mean() < 30 and shown[:, 16:].mean() > 225


def test_center_crop_keeps_proportions(tmp_path):
    pixels = np.zeros((20, 60, 3), dtype=np.uint8)
    pixels[:, 20:40] = 255  # a white centre square in a wide image
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    cropped = decode_image_file(tmp_path / "wide.png", "L", 10, 10, RESIZE_CENTER_CROP)
    # The centred square only (its edge columns blend a little with what lies beside it), not the sides squeezed in.
    assert cropped[:, 1:-1].min() == 255 and cropped.mean() > 240
    stretched = decode_image_file(tmp_path / "wide.png", "L", 10, 10)
    assert stretched[:, :2].max() == 0


def test_color_auto_is_grey_only_when_every_file_is_grey(tmp_path):
    grey = write_folder(tmp_path / "grey", per_class=3, grey=True)
    assert load_image_folder(grey, FolderOptions(image_size=16, workers=0), seed=0).color == "L"
    assert load_image_folder(grey, FolderOptions(image_size=16, color="rgb", workers=0), seed=0).color == "RGB"
    Image.fromarray(class_image(0, 20, 20, 5)).save(grey / "birch" / "colour.png")
    mixed = load_image_folder(grey, FolderOptions(image_size=16, workers=0), seed=0)
    assert mixed.color == "RGB" and mixed.pixels.shape[1:] == (16, 16, 3)
    colour = write_folder(tmp_path / "colour", per_class=3)
    assert load_image_folder(colour, FolderOptions(image_size=16, color="gray", workers=0), seed=0).pixels.shape[3] == 1


@pytest.mark.parametrize("color", ["RGB", "L"])
def test_training_and_runtime_see_the_same_pixels(tmp_path, color):
    """Odd sizes, grey into RGB, RGBA, palette GIF, 16-bit and EXIF-rotated files: within 1/255 (here: equal)."""
    root = tmp_path / "photos"
    files = []
    for k, name in enumerate(CLASSES):
        folder = root / name
        folder.mkdir(parents=True)
        base = class_image(k, 37, 53, seed=k)
        exif = Image.Exif()
        exif[0x0112] = 6
        variants = {
            "odd.jpg": Image.fromarray(base),
            "grey.png": Image.fromarray(base).convert("L"),
            "alpha.png": Image.fromarray(base).convert("RGBA"),
            "palette.gif": Image.fromarray(base),
            "deep.png": Image.fromarray(base[:, :, 0].astype(np.uint16) * 257),
        }
        for file_name, image in variants.items():
            image.save(folder / file_name)
        Image.fromarray(base).save(folder / "turned.jpg", exif=exif)
        files += sorted(folder.iterdir())
    data = load_image_folder(root, FolderOptions(image_size=24, color={"RGB": "rgb", "L": "gray"}[color], workers=0), seed=0)
    spec = ImageSpec(
        {
            "preprocessing": {
                "image": {
                    "channels": 3 if color == "RGB" else 1,
                    "height": 24,
                    "width": 24,
                    "color": color,
                    "resize": "center-crop",
                }
            }
        },
        [],
    )
    scan_order = [path for path, _ in scan_folder(root).files["train"]]
    for position, path in enumerate(scan_order):
        trained_on = data.pixels[position].transpose(2, 0, 1).astype(np.float32) / 255.0
        runtime = read_image_file(path, spec)
        assert np.abs(trained_on - runtime).max() <= 1 / 255, path.name


# ------------------------------------------------------------------------------------ bad data
def _bad(tmp_path: Path, case: str) -> Path:
    root = tmp_path / "bad"
    if case == "missing":
        return root
    if case == "a file":
        root.write_text("x")
        return root
    root.mkdir()
    if case == "empty":
        (root / "cats").mkdir()
        (root / "cats" / "notes.txt").write_text("x")
    elif case == "one class":
        write_class_folder(root / "cats", 0, 4, seed=1)
    elif case == "one image in a class":
        write_class_folder(root / "cats", 0, 4, seed=1)
        write_class_folder(root / "dogs", 1, 1, seed=2)
    elif case == "many unreadable":
        write_class_folder(root / "cats", 0, 10, seed=1)
        write_class_folder(root / "dogs", 1, 10, seed=2)
        (root / "dogs" / "cut.jpg").write_bytes((root / "cats" / "img000.jpg").read_bytes()[:200])  # truncated
        (root / "dogs" / "fake.png").write_bytes(b"this is text")
    elif case == "val class not in train":
        write_class_folder(root / "train" / "cats", 0, 3, seed=1)
        write_class_folder(root / "train" / "dogs", 1, 3, seed=2)
        write_class_folder(root / "val" / "owls", 2, 3, seed=3)
    elif case == "val without train":
        write_class_folder(root / "val" / "cats", 0, 3, seed=1)
        write_class_folder(root / "test" / "cats", 0, 3, seed=1)
    return root


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no such folder"),
        ("a file", "not a folder"),
        ("empty", "holds no images in class folders"),
        ("one class", "at least 2 class folders, found 1"),
        ("one image in a class", "at least 2 usable images; too few in dogs (1)"),
        ("many unreadable", "2 of 22 image files cannot be read"),
        ("val class not in train", "owls are not in"),
        ("val without train", "no train/ folder"),
    ],
)
def test_bad_folders_are_one_line_errors_exit_2_and_write_no_run(tmp_path, capsys, case, message):
    root = _bad(tmp_path, case)
    assert train_cli(tmp_path, root) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert message in err and "Traceback" not in err
    assert str(root) in err
    assert not (tmp_path / "runs").exists()


def test_a_few_unreadable_files_are_skipped_counted_and_named(tmp_path):
    root = write_folder(tmp_path / "photos", per_class=12)
    (root / "birch" / "cut.jpg").write_bytes((root / "birch" / "img000.jpg").read_bytes()[:300])
    data = load_image_folder(root, FolderOptions(image_size=16, workers=0), seed=0)
    assert data.report["unreadable_files"] == 1
    assert data.report["unreadable_named"][0].startswith("birch/cut.jpg: ")
    assert sum(len(p) for p in data.positions.values()) == 36


def test_folder_flags_with_a_named_dataset_or_another_task_are_usage_errors(tmp_path, capsys):
    with pytest.raises(DataError, match="--image-size: only for a folder of images"):
        load_named_dataset_with_folder_options("fashion-mnist", {"image_size": 32})
    with pytest.raises(SystemExit) as stop:
        train_main(["char-gpt", "--color", "rgb", "--out", str(tmp_path)])
    assert stop.value.code == 2 and "for one image classifier" in capsys.readouterr().err


def load_named_dataset_with_folder_options(name: str, options: dict) -> None:
    from zoo_train.tasks.base import get_task

    entry = get_entry("lenet5")
    get_task(entry.task).load_data(entry, entry.recipe("smoke").replace(data_options=options), name, None, 0)


# ------------------------------------------------------------------------------------ streaming with the cache
def test_a_folder_over_the_memory_budget_streams_from_a_cache_decoded_once(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "photos", per_class=8)
    decodes: list[Path] = []
    real_decode = image_folder.decode_image_file

    def counting_decode(path, *args, **kwargs):
        decodes.append(Path(path))
        return real_decode(path, *args, **kwargs)

    monkeypatch.setattr(image_folder, "decode_image_file", counting_decode)
    cache = tmp_path / "cache"
    options = {"image_size": 16, "memory_budget_mb": 0.001, "cache_dir": cache, "workers": 0}

    def run(name: str) -> Path:
        return train(
            TrainConfig(
                model="lenet5",
                preset="smoke",
                data=str(root),
                out=tmp_path / "runs",
                run_name=name,
                epochs=2,
                show_progress=False,
                model_overrides={"conv_channels": (4, 8), "fc_sizes": (16, 16)},
                data_options=options,
            )
        )

    first = run("first")
    assert sorted(decodes) == sorted(path for path in root.rglob("*.*"))  # every file once, not once per epoch
    summary = json.loads((first / "summary.json").read_text())
    assert summary["streamed_from_cache"] and summary["epochs_run"] == 2
    assert "streamed from a decoded-image cache" in summary["data"]
    assert len(list(cache.glob("*.u8"))) == 1 and not list(cache.glob("*.partial"))

    assert summary["files_decoded"] == 24
    decodes.clear()
    second = run("second")
    assert decodes == []  # the same folder again: all pixels come from the cache
    assert json.loads((second / "summary.json").read_text())["files_decoded"] == 0

    (root / "birch" / "img000.jpg").touch()  # a changed file (its time) is a new key: decoded again
    run("third")
    assert len(decodes) == 24


def test_streamed_and_resident_folders_give_the_same_pixels(tmp_path):
    root = write_folder(tmp_path / "photos", per_class=5)
    resident = load_image_folder(root, FolderOptions(image_size=16, workers=0), seed=3)
    streamed = load_image_folder(
        root, FolderOptions(image_size=16, memory_budget_mb=0.001, cache_dir=tmp_path / "c", workers=2), seed=3
    )
    assert resident.cache_file is None and streamed.cache_file is not None
    assert np.array_equal(np.asarray(streamed.pixels), resident.pixels)
    for split in ("train", "val"):
        assert np.array_equal(streamed.positions[split], resident.positions[split])


# ------------------------------------------------------------------------------------ every classifier, and end to end
@pytest.mark.parametrize("name", list_models("image-classification"))
def test_every_image_classifier_trains_on_a_colour_folder(tmp_path, name):
    root = write_folder(tmp_path / "photos", per_class=4)
    run = train(
        TrainConfig(
            model=name,
            preset="smoke",
            data=str(root),
            out=tmp_path / "runs",
            max_steps=1,
            show_progress=False,
            model_overrides=dict(get_entry(name).tiny_config),
            data_options={"image_size": 32, "workers": 0},
        )
    )
    state = load_checkpoint(run / "checkpoints" / "best.pt")
    assert state["meta"]["labels"] == CLASSES
    assert state["config"]["in_channels"] == 3 and state["config"]["image_size"] == 32


def test_folder_to_bundle_to_runtime_classify(tmp_path, capsys):
    from zoo_export import export_checkpoint

    root = write_folder(tmp_path / "photos", per_class=6, splits=("train", "val", "test"))
    assert train_cli(tmp_path, root, "--color", "rgb") == 0
    run = tmp_path / "runs" / "lenet5"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["metric"] == "test_accuracy" and summary["split"] == "the folder's test/ images"
    result = export_checkpoint(run / "checkpoints" / "best.pt", quantize="int8")  # calibrated on the folder's images
    assert result.passed and result.bundle is not None
    assert (result.bundle / "model.int8.onnx").is_file()
    manifest = json.loads((result.bundle / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["labels"] == CLASSES
    assert manifest["preprocessing"]["image"]["resize"] == "center-crop"

    # The runtime's logits for a photo are the trained model's for the pixels it trained on.
    photo = sorted((root / "test" / "猫").iterdir())[1]
    model = zoo_runtime.load(result.bundle)
    state = load_checkpoint(run / "checkpoints" / "best.pt")
    torch_model = get_entry("lenet5").build(**state["config"]).eval()
    torch_model.load_state_dict(state["state_dict"])
    image = state["meta"]["preprocessing"]["image"]
    pixels = decode_image_file(photo, "RGB", 16, 16, RESIZE_CENTER_CROP)
    x = torch.from_numpy(pixels.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    x = (x - torch.tensor(image["mean"]).view(1, -1, 1, 1)) / torch.tensor(image["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        expected = torch_model(x).numpy()
    assert np.allclose(model.logits([str(photo)]), expected, atol=1e-4)
    top = model.classify([str(photo)], top_k=3)[0]
    assert sorted(p.label for p in top) == CLASSES

    # docs/EMBEDDING.md's numpy preprocessing (no zoo_runtime) gives the runtime's input and logits.
    embedding = (Path(__file__).parents[1] / "docs" / "EMBEDDING.md").read_text(encoding="utf-8")
    snippet = embedding.split("### The preprocessing of an image classifier")[1].split("```python")[1].split("```")[0]
    snippet = snippet.replace('"export/', f'"{result.bundle}/').replace('"photo.jpg"', f'"{photo}"')
    namespace: dict = {}
    exec(compile(snippet, "docs/EMBEDDING.md", "exec"), namespace)
    assert np.abs(namespace["x"] - model.preprocess([str(photo)])).max() <= 1 / 255
    assert np.allclose(namespace["logits"], model.logits([str(photo)]), atol=1e-5)

    capsys.readouterr()
    assert run_main([str(result.bundle), "--image", str(photo), "--top-k", "3"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in CLASSES)


# ------------------------------------------------------------------------------------ starting from other weights
TINY_LENET = {"conv_channels": (4, 8), "fc_sizes": (16, 16)}


def tiny_run(tmp_path: Path, data: Path, name: str, **changes) -> Path:
    config = TrainConfig(
        model="lenet5",
        preset="smoke",
        data=str(data),
        out=tmp_path / "runs",
        run_name=name,
        max_steps=2,
        show_progress=False,
        model_overrides=TINY_LENET,
        data_options={"image_size": 16, "workers": 0, "color": "rgb"},
    )
    for key, value in changes.items():
        setattr(config, key, value)
    return train(config)


def test_init_from_a_run_with_other_classes_loads_the_backbone_and_a_frozen_backbone_stays_put(tmp_path, capsys):
    three = write_folder(tmp_path / "three", per_class=4)
    two = tmp_path / "two"
    for k, name in enumerate(["pear", "plum"]):
        write_class_folder(two / name, k, 4, seed=50 + k)
    source = tiny_run(tmp_path, three, "source")
    tuned = tiny_run(tmp_path, two, "tuned", init_from=source, freeze="backbone")

    record = json.loads((tuned / "run.json").read_text())
    head = ["head.weight", "head.bias"]  # LeNet's last Linear: 3 classes there, 2 here
    assert record["init_from"]["fresh"] == head
    assert [line.split(":")[0] for line in record["init_from"]["skipped"]] == head
    assert "shape [3, 16], lenet5 has [2, 16]" in record["init_from"]["skipped"][0]
    assert record["trained_parameters"] == 16 * 2 + 2
    assert "--init-from" in capsys.readouterr().err

    before = load_checkpoint(source / "checkpoints" / "last.pt")["state_dict"]
    after = load_checkpoint(tuned / "checkpoints" / "last.pt")["state_dict"]
    for name, tensor in after.items():
        if name not in head:
            assert torch.equal(tensor, before[name]), name  # the frozen backbone did not move


def test_init_from_a_plain_state_dict_loads_every_matching_tensor(tmp_path):
    root = write_folder(tmp_path / "photos", per_class=4)
    donor = get_entry("lenet5").build(in_channels=3, num_classes=3, image_size=16, **TINY_LENET)
    # Saved through a DataParallel-style wrapper: names prefixed by "module.", which are matched without it.
    torch.save({f"module.{k}": v for k, v in donor.state_dict().items()}, tmp_path / "weights.pth")
    run = tiny_run(tmp_path, root, "from-pth", init_from=tmp_path / "weights.pth")
    record = json.loads((run / "run.json").read_text())["init_from"]
    assert record["loaded"] == len(donor.state_dict()) and record["skipped"] == [] and record["fresh"] == []


@pytest.mark.parametrize(
    ("source", "message"),
    [("missing.pt", "no such checkpoint or state dict file"), ("unrelated.pth", "none of its 1 tensors fits lenet5")],
)
def test_init_from_what_cannot_be_used_is_a_one_line_error_before_any_run(tmp_path, capsys, source, message):
    root = write_folder(tmp_path / "photos", per_class=3)
    torch.save({"encoder.weight": torch.zeros(3)}, tmp_path / "unrelated.pth")
    assert train_cli(tmp_path, root, "--init-from", str(tmp_path / source)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name", list_models("image-classification"))
def test_every_image_classifier_exports_in_colour_at_an_odd_size_with_parity(tmp_path, name):
    from zoo_export import export_checkpoint
    from zoo_export.synthetic import write_checkpoint

    config = {**get_entry(name).tiny_config, "in_channels": 3, "image_size": 37, "num_classes": 5}
    checkpoint = write_checkpoint(name, tmp_path / name / "checkpoints" / "best.pt", config=config)
    result = export_checkpoint(checkpoint)
    assert result.passed, f"{result.status}: {result.error}"
    manifest = json.loads((result.bundle / "manifest.json").read_text())
    assert manifest["graphs"]["model"]["inputs"][0]["shape"] == ["batch", 3, 37, 37]
