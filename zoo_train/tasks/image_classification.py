"""Image classification: data as uint8 tensors, batch augmentation, accuracy, per-class report."""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from zoo_runtime import schema
from zoo_runtime.contract import ImageClassificationMeta
from zoo_train.data.augment import augment_batch
from zoo_train.data.errors import DataError
from zoo_train.data.image_folder import (
    CachedImages,
    FolderOptions,
    ImageFolderData,
    class_count_line,
    load_image_folder,
)
from zoo_train.data.images import IMAGE_DATASETS, Augmentation, augmentation_for, idx_folder, load_image_arrays
from zoo_train.registry import ModelEntry, Recipe
from zoo_train.tasks.base import BatchLoader, DeviceLoader, Task, TaskData, dataset_size, predict_classes, register_task

VAL_FRACTION = 0.1
NOMINAL_SHAPES = {
    "fashion-mnist": {"in_channels": 1, "num_classes": 10, "image_size": 28},
    "mnist": {"in_channels": 1, "num_classes": 10, "image_size": 28},
    "cifar10": {"in_channels": 3, "num_classes": 10, "image_size": 32},
    "cifar100": {"in_channels": 3, "num_classes": 100, "image_size": 32},
}


def split_train_val(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed, seeded hold-out of the training split for validation; the test split stays untouched."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(n * VAL_FRACTION))
    return order[n_val:], order[:n_val]


def to_nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def dataset_labels(dataset: Dataset) -> torch.Tensor:
    """The int64 labels of an in-memory TensorDataset or of a cached image folder's dataset."""
    if isinstance(dataset, CachedImages):
        return dataset.labels
    if not isinstance(dataset, TensorDataset):
        raise TypeError(f"no labels in a {type(dataset).__name__}: expected image tensors or a cached image folder")
    return dataset.tensors[1]


def is_image_folder(name: str, options: dict[str, Any]) -> bool:
    """Whether --data names a folder of image files (not a known dataset, not a folder of IDX files)."""
    if name in IMAGE_DATASETS:
        return False
    path = Path(name)
    looks_like_a_path = path.exists() or os.sep in name or bool(FOLDER_ONLY_OPTIONS & set(options))
    return looks_like_a_path and idx_folder(path) is None


# data_options that only an image folder takes, with the zoo-train flags that set them.
FOLDER_FLAGS = {
    "image_size": "--image-size",
    "color": "--color",
    "memory_budget_mb": "--memory-budget",
    "cache_dir": "--decode-cache",
    "workers": "--workers",
}
FOLDER_ONLY_OPTIONS = frozenset(FOLDER_FLAGS)


def pixel_statistics(pixels: np.ndarray, positions: np.ndarray, most: int = 2048) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (0..1) of training images (``most`` of them, evenly spaced, for large folders)."""
    pick = np.sort(positions)[np.linspace(0, len(positions) - 1, min(most, len(positions))).astype(int)]
    sample = pixels[pick].astype(np.float32) / 255.0
    return sample.mean(axis=(0, 1, 2)).tolist(), (sample.std(axis=(0, 1, 2)) + 1e-6).tolist()


def input_normalisation(
    options: Mapping[str, Any], channels: int, statistics: Callable[[], tuple[list[float], list[float]]]
) -> tuple[list[float], list[float]]:
    """The per-channel mean and std the model's inputs are normalised with.

    Pretrained weights' own (``data_options["normalisation"]``, set by --init-from; averaged over the colours for a grey
    model of RGB weights, repeated for the reverse), else the training images' ``statistics()``.
    """
    given = options.get("normalisation")
    if given is None:
        return statistics()

    def fit(values: list[float]) -> list[float]:
        return list(values) if len(values) == channels else [sum(values) / len(values)] * channels

    return fit(given["mean"]), fit(given["std"])


def normalisation_note(options: Mapping[str, Any]) -> str:
    return "; inputs normalised with the pretrained weights' mean and std" if "normalisation" in options else ""


class ImageBatchTransform:
    """uint8 NCHW -> float 0..1 -> augmentation (train only) -> normalised."""

    def __init__(self, mean: list[float], std: list[float], augmentation: Any, augment: bool):
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)
        self.augmentation = augmentation
        self.augment = augment

    def __call__(self, batch: tuple[torch.Tensor, torch.Tensor], train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = batch
        x = images.float() / 255.0
        if train and self.augment:
            x = augment_batch(x, self.augmentation)
        return (x - self.mean.to(x.device)) / self.std.to(x.device), labels


class ImageClassification(Task):
    name = schema.TASK_IMAGE_CLASSIFICATION
    primary_metric = "val_accuracy"
    mode = "max"
    caches_frozen_features = True
    cpu_bf16_pays = True

    def nominal_model_config(self, dataset: str) -> dict[str, Any]:
        return dict(NOMINAL_SHAPES.get(dataset, {}))

    def load_data(self, entry: ModelEntry, recipe: Recipe, data: str | None, data_dir: Path | None, seed: int) -> TaskData:
        name = data or entry.default_dataset
        options = dict(recipe.data_options)
        if is_image_folder(name, options):
            return self.load_folder(Path(name), recipe, seed)
        given = sorted(FOLDER_ONLY_OPTIONS & set(options))
        if given:
            flags = ", ".join(FOLDER_FLAGS[key] for key in given)
            raise DataError(f"{flags}: only for a folder of images (--data PATH), not for the {name} dataset")
        arrays = load_image_arrays(name, data_dir)
        train_idx, val_idx = split_train_val(len(arrays.train_images), seed)
        if recipe.limit_train:
            train_idx = train_idx[: recipe.limit_train]
        if recipe.limit_eval:
            val_idx = val_idx[: recipe.limit_eval]
        test_images, test_labels = arrays.test_images, arrays.test_labels

        def statistics() -> tuple[list[float], list[float]]:
            pixels = arrays.train_images[train_idx].astype(np.float32) / 255.0
            return pixels.mean(axis=(0, 1, 2)).tolist(), (pixels.std(axis=(0, 1, 2)) + 1e-6).tolist()

        mean, std = input_normalisation(options, arrays.channels, statistics)
        meta: ImageClassificationMeta = {
            "dataset": name,
            "labels": list(arrays.labels),
            "preprocessing": {
                "image": {
                    "channels": arrays.channels,
                    "height": arrays.height,
                    "width": arrays.width,
                    "color": "L" if arrays.channels == 1 else "RGB",
                    "mean": mean,
                    "std": std,
                    "input_range": [0, 1],
                    "normalisation": "in-graph",
                }
            },
        }

        def subset(idx: np.ndarray) -> TensorDataset:
            return TensorDataset(to_nchw(arrays.train_images[idx]), torch.from_numpy(arrays.train_labels[idx]))

        test = TensorDataset(to_nchw(test_images), torch.from_numpy(test_labels))
        return TaskData(
            train=subset(train_idx),
            val=subset(val_idx),
            test=test,
            model_config={"in_channels": arrays.channels, "num_classes": len(arrays.labels), "image_size": arrays.height},
            meta=meta,
            description=(
                f"{name} ({arrays.source}): train {len(train_idx)} / val {len(val_idx)} "
                f"(held out of train, seed {seed}) / test {len(test)}{normalisation_note(options)}"
            ),
            batch_transform=ImageBatchTransform(
                mean, std, dataclasses.replace(augmentation_for(name), erase=recipe.random_erasing), recipe.augment
            ),
        )

    def load_folder(self, root: Path, recipe: Recipe, seed: int) -> TaskData:
        """The user's own images (see zoo_train.data.image_folder); labels are the class folders' names."""
        options = FolderOptions.from_data_options(dict(recipe.data_options))
        folder = load_image_folder(root, options, seed, recipe.limit_train, recipe.limit_eval)
        channels = 1 if folder.color == "L" else 3
        mean, std = input_normalisation(
            recipe.data_options, channels, lambda: pixel_statistics(folder.pixels, folder.positions["train"])
        )
        meta = {
            "dataset": str(root),
            "labels": list(folder.classes),
            # The data_options that load this folder again as it was trained on (zoo-export --quantize's calibration).
            "folder_options": {"image_size": folder.image_size, "color": "gray" if folder.color == "L" else "rgb"},
            "preprocessing": {
                "image": {
                    "channels": channels,
                    "height": folder.image_size,
                    "width": folder.image_size,
                    "color": folder.color,
                    "resize": folder.report["resize"],
                    "mean": mean,
                    "std": std,
                    "input_range": [0, 1],
                    "normalisation": "in-graph",
                }
            },
        }
        splits = {split: self.folder_split(folder, pos) for split, pos in folder.positions.items() if len(pos)}
        augmentation = Augmentation(
            flip=True,
            translate=max(1, folder.image_size // 16),
            brightness=0.2 if channels == 3 else 0.0,
            contrast=0.2 if channels == 3 else 0.0,
            erase=recipe.random_erasing,
        )
        return TaskData(
            train=splits["train"],
            val=splits["val"],
            test=splits.get("test"),
            model_config={"in_channels": channels, "num_classes": len(folder.classes), "image_size": folder.image_size},
            meta=meta,
            description=folder_description(root, folder, seed) + normalisation_note(recipe.data_options),
            batch_transform=ImageBatchTransform(mean, std, augmentation, recipe.augment),
            extras={
                "folder_report": folder.report,
                "loader_workers": 0 if folder.cache_file is None else folder.workers,
            },
        )

    @staticmethod
    def folder_split(folder: ImageFolderData, positions: np.ndarray) -> Dataset:
        """In memory: a TensorDataset (the trainer's resident path); streamed: the memmap's images."""
        labels = folder.labels[positions]
        if folder.cache_file is None:
            return TensorDataset(to_nchw(folder.pixels[positions]), torch.from_numpy(labels))
        return CachedImages(folder.cache_file, tuple(folder.pixels.shape), positions, labels)

    def make_loader(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        train: bool,
        data: TaskData,
        generator: torch.Generator | None,
        sampler: Any = None,
        pin_memory: bool = False,
    ) -> DataLoader:
        """A streamed image folder reads its memmap in worker processes; everything else as the base task does."""
        workers = int(data.extras.get("loader_workers", 0))
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            generator=generator,
            collate_fn=data.collate_fn,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=pin_memory,
        )

    def loss(self, model: nn.Module, batch: Any, recipe: Recipe) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y, label_smoothing=recipe.label_smoothing)

    def evaluate(self, model: nn.Module, loader: BatchLoader, device: torch.device, recipe: Recipe) -> dict[str, float]:
        y_true, y_pred, loss = predict_classes(model, loader)
        return {"val_loss": loss, "val_accuracy": (y_true == y_pred).float().mean().item()}

    def final_report(
        self, model: nn.Module, data: TaskData, out_dir: Path, device: torch.device, recipe: Recipe
    ) -> dict[str, Any]:
        """Figures on the test split; a folder without test/ gets them on validation, and the summary says so."""
        model.eval()
        held_out = data.test if data.test is not None else data.val
        split = "test" if data.test is not None else "val"
        loader = DeviceLoader(
            self.make_loader(held_out, 256, train=False, data=data, generator=None), device, data.batch_transform, train=False
        )
        y_true, y_pred, loss = predict_classes(model, loader)
        labels = data.meta["labels"]
        confusion = confusion_matrix(y_true.numpy(), y_pred.numpy(), len(labels))
        per_class = per_class_report(confusion, labels)
        folder = data.extras.get("folder_report")
        report_file = {"classes": per_class, "dataset": folder} if folder else per_class
        (out_dir / "classification_report.json").write_text(json.dumps(report_file, indent=2, ensure_ascii=False))
        plot_confusion(confusion, labels, out_dir / "confusion_matrix.png")
        plot_predictions(data, held_out, model, device, out_dir / "predictions.png")
        majority = int(torch.bincount(dataset_labels(data.train)).argmax())
        figures = {
            f"{split}_loss": loss,
            f"{split}_accuracy": float((y_true == y_pred).float().mean()),
            "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
            # The honest floor: always answer the most frequent training class.
            "majority_class_accuracy": float((y_true == majority).float().mean()),
            "metric": f"{split}_accuracy",
            "baseline_metric": "majority_class_accuracy",
        }
        if folder is None:
            return {**figures, "split": "official test split"}
        if data.test is None:
            figures["split"] = "validation (the folder has no test/ folder: only validation figures exist)"
        else:
            figures["split"] = "the folder's test/ images"
        return {**figures, **folder}

    def reference_call(
        self, model: nn.Module, manifest: Mapping[str, Any], request: Mapping[str, Any]
    ) -> Callable[[], dict[str, Any]]:
        pre = manifest["preprocessing"]["image"]
        mean = torch.tensor(pre["mean"]).view(1, -1, 1, 1)
        std = torch.tensor(pre["std"]).view(1, -1, 1, 1)
        images = torch.from_numpy(request["images"])
        top_k = request.get("top_k", 5)

        def call() -> dict[str, Any]:
            probabilities, indices = torch.softmax(model((images - mean) / std), -1).topk(top_k)
            return {"probabilities": probabilities, "indices": indices}

        return call


register_task(ImageClassification())


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def per_class_report(confusion: np.ndarray, labels: list[str]) -> dict[str, dict[str, float]]:
    report = {}
    for i, label in enumerate(labels):
        tp = confusion[i, i]
        precision = tp / max(1, confusion[:, i].sum())
        recall = tp / max(1, confusion[i, :].sum())
        f1 = 2 * precision * recall / max(1e-12, precision + recall)
        report[label] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(confusion[i].sum()),
        }
    return report


def save_figure(fig: Any, path: Path, tight: bool = True) -> None:
    """Laid out (``tight``), saved and closed. Class names in scripts the font lacks (CJK, ...) show as boxes,
    without a warning per glyph."""
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        if tight:
            fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(confusion: np.ndarray, labels: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(labels)
    fig, ax = plt.subplots(figsize=(0.6 * k + 3, 0.6 * k + 2.5))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(k), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k), labels, fontsize=7)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    str(int(confusion[i, j])),
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if confusion[i, j] > confusion.max() / 2 else "black",
                )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    save_figure(fig, path)


def folder_description(root: Path, folder: ImageFolderData, seed: int) -> str:
    """run.json's and summary.json's "data": the folder, its splits and class counts, what was skipped."""
    report, sizes = folder.report, {split: len(pos) for split, pos in folder.positions.items()}
    how = "val/ folder" if folder.has_val_folder else f"stratified {VAL_FRACTION:.0%} of each class, seed {seed}"
    test = f"test {sizes['test']}" if sizes["test"] else "no test/ folder, so only validation figures"
    where = "streamed from a decoded-image cache" if folder.cache_file is not None else "decoded into memory"
    skipped = f"; {report['unreadable_files']} unreadable skipped" if report["unreadable_files"] else ""
    return (
        f"image folder {root}: {report['classes']} classes ({class_count_line(report['class_counts']['train'])}; "
        f"imbalance {report['class_imbalance']}), {folder.image_size}x{folder.image_size} {folder.color}, {where}: "
        f"train {sizes['train']} / val {sizes['val']} ({how}) / {test}{skipped}"
    )


@torch.no_grad()
def plot_predictions(
    data: TaskData, dataset: Dataset, model: nn.Module, device: torch.device, path: Path, count: int = 24
) -> None:
    """``count`` held-out images in 3 rows, each under its predicted label and probability (green when right).

    One axes holding a mosaic of the images: 24 axes of one image each took seconds to lay out and draw,
    in every image classifier's run (and every test that trains one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = dataset_size(dataset)
    pick = torch.linspace(0, size - 1, min(count, size)).long().tolist()
    x = torch.stack([dataset[i][0] for i in pick])
    y = torch.stack([torch.as_tensor(dataset[i][1]) for i in pick])
    assert data.batch_transform is not None  # image tasks always normalise in their batch transform
    xb, _ = data.batch_transform((x.to(device), y.to(device)), False)
    probs = torch.softmax(model(xb).float(), dim=1).cpu()
    names = data.meta["labels"]
    rows, cols = 3, count // 3
    channels, h, w = x.shape[1:]
    pad_x, pad_y = max(1, w // 7), max(2, h // 2)  # room between images, and above each for its two-line title
    canvas = np.ones(((h + pad_y) * rows, (w + pad_x) * cols, channels), dtype=np.float32)
    fig = plt.figure(figsize=(cols * 1.4, rows * 1.7))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    for i, (img, true, p) in enumerate(zip(x, y, probs, strict=True)):
        top, left = (i // cols) * (h + pad_y) + pad_y, (i % cols) * (w + pad_x)
        canvas[top : top + h, left : left + w] = _shown_pixels(img.permute(1, 2, 0).float().numpy())
        pred = int(p.argmax())
        title = f"{names[pred][:10]}\n{p[pred]:.2f}"
        color = "green" if pred == int(true) else "red"
        ax.text(left + w / 2, top - 0.5, title, fontsize=7, ha="center", va="bottom", color=color)
    ax.imshow(canvas.squeeze(-1) if channels == 1 else canvas, cmap="gray" if channels == 1 else None, vmin=0.0, vmax=1.0)
    ax.axis("off")
    save_figure(fig, path, tight=False)


def _shown_pixels(img: np.ndarray) -> np.ndarray:
    """[H, W, C] as matplotlib's imshow of it alone shows it: one channel stretched over its own range, colour as is."""
    if img.shape[-1] != 1:
        return np.clip(img, 0.0, 1.0)
    low, high = float(img.min()), float(img.max())
    return (img - low) / (high - low) if high > low else np.zeros_like(img)
