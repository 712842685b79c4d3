"""Tiny image datasets written in the real on-disk formats (IDX, CIFAR pickles, folders of image files)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from zoo_train.data.images import IDX_FILES, write_idx


def learnable_images(n: int, classes: int, size: int, channels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class k is a bright square at a class-specific place on noise: easy to learn, not trivial."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    images = rng.integers(0, 60, (n, size, size, channels), dtype=np.uint8)
    cell = size // 4
    for i, k in enumerate(labels):
        r, c = divmod(int(k) % 16, 4)
        images[i, r * cell : (r + 1) * cell, c * cell : (c + 1) * cell, :] = 220
    return images, labels.astype(np.uint8)


def write_idx_dataset(
    folder: Path, n_train: int = 320, n_test: int = 160, classes: int = 10, size: int = 28, gz: bool = True
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        images, labels = learnable_images(n, classes, size, 1, seed)
        write_idx(folder / f"{IDX_FILES[f'{split}_images']}{suffix}", images[..., 0])
        write_idx(folder / f"{IDX_FILES[f'{split}_labels']}{suffix}", labels)
    return folder


def write_cifar10(root: Path, n_per_batch: int = 20) -> Path:
    """The python-pickle layout torchvision's CIFAR10 class reads (integrity is checked by md5 only on download)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]
    for i, name in enumerate(names):
        images, labels = learnable_images(n_per_batch, 10, 32, 3, seed=10 + i)
        data = images.transpose(0, 3, 1, 2).reshape(n_per_batch, -1)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels.tolist(), "batch_label": name}, f)
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": classes, "num_cases_per_batch": n_per_batch}, f)
    return root


# Folders of image files in torchvision's ImageFolder layout: each class a bright band at its own place on noise.
CLASSES = ["birch", "Äpfel", "猫"]  # sorted by code point, as the trainer sorts folder names
FORMATS = ("jpg", "png", "webp", "gif", "bmp", "tiff")
GREY_FORMATS = ("jpg", "png", "gif", "bmp", "tiff")  # WebP has no grey mode: it stores grey pictures as RGB


def class_image(k: int, height: int, width: int, seed: int) -> np.ndarray:
    """uint8 [H, W, 3]: noise with a bright vertical band in the k-th third."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    pixels[:, width * k // 3 : width * (k + 1) // 3] = 220
    return pixels


def write_class_folder(folder: Path, k: int, count: int, seed: int, grey: bool = False) -> None:
    """``count`` images of class ``k`` in rotating formats and sizes (odd ones too)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = class_image(k, 24 + 7 * (i % 4), 30 + 5 * (i % 3), seed * 1000 + i)
        image = Image.fromarray(pixels).convert("L") if grey else Image.fromarray(pixels)
        formats = GREY_FORMATS if grey else FORMATS
        image.save(folder / f"img{i:03d}.{formats[i % len(formats)]}")


def write_folder(root: Path, per_class: int = 12, splits: tuple[str, ...] = (), grey: bool = False) -> Path:
    for s, split in enumerate(splits or ("",)):
        for k, name in enumerate(CLASSES):
            write_class_folder(root / split / name, k, per_class, seed=10 * s + k, grey=grey)
    return root
