"""Image datasets as uint8 arrays: Fashion-MNIST from IDX files, MNIST/CIFAR through torchvision.

Everything is loaded into memory as ``uint8 [N, H, W, C]``: these datasets are small,
and whole-array tensors let augmentation run in batches (on the GPU when there is one).
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo_train.data.errors import DataError
from zoo_train.data.paths import search_dirs

FASHION_LABELS = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.int16, 0x0C: np.int32, 0x0D: np.float32, 0x0E: np.float64}


@dataclass
class ImageArrays:
    train_images: np.ndarray  # uint8 [N, H, W, C]
    train_labels: np.ndarray  # int64 [N]
    test_images: np.ndarray
    test_labels: np.ndarray
    labels: list[str]
    source: str

    @property
    def channels(self) -> int:
        return int(self.train_images.shape[3])

    @property
    def height(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def width(self) -> int:
        return int(self.train_images.shape[2])


@dataclass(frozen=True)
class Augmentation:
    """Batch augmentation for a dataset (seed 003: flip, crop, rotation, colour jitter where they fit)."""

    flip: bool = False
    translate: int = 0  # pixels of random shift (a crop of a reflect-padded image)
    rotate: float = 0.0  # degrees
    brightness: float = 0.0  # relative jitter, RGB data only
    contrast: float = 0.0
    erase: float = 0.0  # probability of random erasing (Zhong et al. 2017); set by the recipe, not the dataset


# ----------------------------------------------------------------------------------------- IDX
def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), the format of MNIST and Fashion-MNIST."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    dtype = np.dtype(IDX_DTYPES[raw[2]]).newbyteorder(">")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    count = int(np.prod(shape))
    if len(raw) - header != count * dtype.itemsize:
        raise DataError(f"{path}: IDX file is truncated: header says {shape}, data holds {len(raw) - header} bytes")
    return np.frombuffer(raw, dtype=dtype, offset=header, count=count).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzipped when the name ends with .gz)."""
    codes = {np.dtype(v).newbyteorder("=").str: k for k, v in IDX_DTYPES.items()}
    code = codes[np.dtype(array.dtype).str]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.dtype(array.dtype).newbyteorder(">")).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _find_idx_dir(candidates: list[Path]) -> Path | None:
    for folder in candidates:
        if all((folder / name).exists() or (folder / f"{name}.gz").exists() for name in IDX_FILES.values()):
            return folder
    return None


def _idx_path(folder: Path, name: str) -> Path:
    plain = folder / name
    return plain if plain.exists() else folder / f"{name}.gz"


def load_idx_dataset(folder: Path, labels: list[str]) -> ImageArrays:
    arrays = {key: read_idx(_idx_path(folder, name)) for key, name in IDX_FILES.items()}
    for split in ("train", "test"):
        if len(arrays[f"{split}_images"]) != len(arrays[f"{split}_labels"]):
            raise DataError(f"{folder}: {split} images and labels differ in count")
    return ImageArrays(
        train_images=arrays["train_images"][..., None],
        train_labels=arrays["train_labels"].astype(np.int64),
        test_images=arrays["test_images"][..., None],
        test_labels=arrays["test_labels"].astype(np.int64),
        labels=labels,
        source=str(folder),
    )


# ------------------------------------------------------------------------------------ loaders
def _load_fashion_mnist(data_dir: Path | None) -> ImageArrays:
    dirs = search_dirs(data_dir)
    candidates = [d / sub for d in dirs for sub in ("fashion-mnist", "FashionMNIST/raw", "")]
    folder = _find_idx_dir(candidates)
    if folder is None:
        raise DataError(
            "fashion-mnist: IDX files not found in "
            + ", ".join(str(d) for d in dirs)
            + ". Install Debian's package (apt-get install dataset-fashion-mnist) or run `zoo-data fetch`."
        )
    return load_idx_dataset(folder, FASHION_LABELS)


def _torchvision_loader(cls_name: str, folder_name: str) -> Callable[[Path | None], ImageArrays]:
    def load(data_dir: Path | None) -> ImageArrays:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        dirs = search_dirs(data_dir)
        for root in dirs:
            try:
                train = cls(str(root), train=True, download=False)
                test = cls(str(root), train=False, download=False)
            except (RuntimeError, FileNotFoundError, OSError):
                continue
            return _from_torchvision(train, test, str(root))
        raise DataError(
            f"{folder_name}: not found in "
            + ", ".join(str(d) for d in dirs)
            + " (torchvision layout). Get it online with `zoo-data fetch --online`"
            + f" or put torchvision's {folder_name} files under --data-dir."
        )

    return load


def _from_torchvision(train: object, test: object, source: str) -> ImageArrays:
    def arrays(ds: object) -> tuple[np.ndarray, np.ndarray]:
        images = np.asarray(ds.data)  # type: ignore[attr-defined]
        if images.ndim == 3:
            images = images[..., None]
        return images.astype(np.uint8), np.asarray(ds.targets, dtype=np.int64)  # type: ignore[attr-defined]

    train_x, train_y = arrays(train)
    test_x, test_y = arrays(test)
    return ImageArrays(train_x, train_y, test_x, test_y, list(train.classes), source)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ImageDatasetSpec:
    name: str
    loader: Callable[[Path | None], ImageArrays]
    augmentation: Augmentation


IMAGE_DATASETS: dict[str, ImageDatasetSpec] = {
    spec.name: spec
    for spec in (
        ImageDatasetSpec("fashion-mnist", _load_fashion_mnist, Augmentation(flip=True, translate=2)),
        ImageDatasetSpec("mnist", _torchvision_loader("MNIST", "MNIST"), Augmentation(translate=2, rotate=10)),
        ImageDatasetSpec(
            "cifar10",
            _torchvision_loader("CIFAR10", "cifar-10-batches-py"),
            Augmentation(flip=True, translate=4, rotate=5, brightness=0.2, contrast=0.2),
        ),
        ImageDatasetSpec(
            "cifar100",
            _torchvision_loader("CIFAR100", "cifar-100-python"),
            Augmentation(flip=True, translate=4, rotate=5, brightness=0.2, contrast=0.2),
        ),
    )
}


def idx_folder(path: Path) -> Path | None:
    """The folder of IDX files at ``path`` (or its fashion-mnist/ subfolder), or None."""
    return _find_idx_dir([path, path / "fashion-mnist"]) if path.is_dir() else None


def load_image_arrays(name: str, data_dir: Path | None) -> ImageArrays:
    """Load a named image dataset, or an IDX folder given as a path."""
    if name in IMAGE_DATASETS:
        return IMAGE_DATASETS[name].loader(data_dir)
    path = Path(name)
    if path.is_dir():
        folder = idx_folder(path)
        if folder is not None:
            count = int(read_idx(_idx_path(folder, IDX_FILES["train_labels"])).max()) + 1
            return load_idx_dataset(folder, [str(i) for i in range(count)])
        raise DataError(f"{path}: holds no IDX files ({', '.join(IDX_FILES.values())}, optionally .gz)")
    raise DataError(f"unknown image dataset {name!r}; known: {', '.join(IMAGE_DATASETS)} or an IDX folder path")


def augmentation_for(name: str) -> Augmentation:
    spec = IMAGE_DATASETS.get(name)
    return spec.augmentation if spec else Augmentation(translate=2)
