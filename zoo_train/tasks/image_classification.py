"""Image classification: data as uint8 tensors, batch augmentation, accuracy, per-class report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from zoo_runtime import schema
from zoo_runtime.contract import ImageClassificationMeta
from zoo_train.data.augment import augment_batch
from zoo_train.data.images import augmentation_for, load_image_arrays
from zoo_train.registry import ModelEntry, Recipe
from zoo_train.tasks.base import BatchLoader, DeviceLoader, Task, TaskData, predict_classes, register_task

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

    def nominal_model_config(self, dataset: str) -> dict[str, Any]:
        return dict(NOMINAL_SHAPES.get(dataset, {}))

    def load_data(self, entry: ModelEntry, recipe: Recipe, data: str | None, data_dir: Path | None, seed: int) -> TaskData:
        name = data or entry.default_dataset
        arrays = load_image_arrays(name, data_dir)
        train_idx, val_idx = split_train_val(len(arrays.train_images), seed)
        if recipe.limit_train:
            train_idx = train_idx[: recipe.limit_train]
        if recipe.limit_eval:
            val_idx = val_idx[: recipe.limit_eval]
        test_images, test_labels = arrays.test_images, arrays.test_labels
        pixels = arrays.train_images[train_idx].astype(np.float32) / 255.0
        mean = pixels.mean(axis=(0, 1, 2)).tolist()
        std = (pixels.std(axis=(0, 1, 2)) + 1e-6).tolist()
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
                f"(held out of train, seed {seed}) / test {len(test)}"
            ),
            batch_transform=ImageBatchTransform(
                mean, std, dataclasses.replace(augmentation_for(name), erase=recipe.random_erasing), recipe.augment
            ),
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
        model.eval()
        if not isinstance(data.test, TensorDataset) or not isinstance(data.train, TensorDataset):
            raise TypeError("image classification reports on resident train and test tensors")
        train_labels = data.train.tensors[1]
        loader = DeviceLoader(
            self.make_loader(data.test, 256, train=False, data=data, generator=None), device, data.batch_transform, train=False
        )
        y_true, y_pred, loss = predict_classes(model, loader)
        labels = data.meta["labels"]
        confusion = confusion_matrix(y_true.numpy(), y_pred.numpy(), len(labels))
        per_class = per_class_report(confusion, labels)
        (out_dir / "classification_report.json").write_text(json.dumps(per_class, indent=2))
        plot_confusion(confusion, labels, out_dir / "confusion_matrix.png")
        plot_predictions(data, model, device, out_dir / "predictions.png")
        return {
            "test_loss": loss,
            "test_accuracy": float((y_true == y_pred).float().mean()),
            "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
            # The honest floor: always answer the most frequent training class.
            "majority_class_accuracy": float((y_true == int(torch.bincount(train_labels).argmax())).float().mean()),
            "metric": "test_accuracy",
            "baseline_metric": "majority_class_accuracy",
            "split": "official test split",
        }


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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@torch.no_grad()
def plot_predictions(data: TaskData, model: nn.Module, device: torch.device, path: Path, count: int = 24) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not isinstance(data.test, TensorDataset) or data.batch_transform is None:
        raise TypeError("the prediction plot needs resident test tensors and the task's batch transform")
    images, labels = data.test.tensors
    pick = torch.linspace(0, len(images) - 1, count).long()
    x, y = images[pick], labels[pick]
    xb, _ = data.batch_transform((x.to(device), y.to(device)), False)
    probs = torch.softmax(model(xb).float(), dim=1).cpu()
    names = data.meta["labels"]
    fig, axes = plt.subplots(3, count // 3, figsize=(count // 3 * 1.4, 3 * 1.7))
    for ax, img, true, p in zip(axes.flat, x, y, probs, strict=False):
        pred = int(p.argmax())
        ax.imshow(img.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray" if img.shape[0] == 1 else None)
        ax.set_title(f"{names[pred][:10]}\n{p[pred]:.2f}", fontsize=7, color="green" if pred == int(true) else "red")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
