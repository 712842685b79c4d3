"""A folder of the user's own images in torchvision's ImageFolder layout, decoded once into uint8 pixels.

Layout: one subfolder per class (``ROOT/cat/1.jpg``), or ``ROOT/train``, ``ROOT/val``, ``ROOT/test`` each
holding those class folders (``val`` and ``test`` optional). Classes are the sorted folder names. Any file
Pillow opens is an image (any size, grey or colour, EXIF orientation applied); hidden files and folders and
files of other kinds are ignored and counted; files that fail to decode are skipped, counted and named.

Decoding is the slow part, so it happens once, in DataLoader worker processes, through the runtime's own
``zoo_runtime.pixels.decode_image_file``: the pixels a model trains on are the pixels ``zoo-run`` gives it.
A folder whose pixels fit in ``memory_budget_mb`` is decoded into memory (the trainer's resident fast path).
A larger one is decoded into a uint8 memmap on disk, keyed by the files' paths, sizes and modification
times and by the image size and colour mode: epochs stream from it through DataLoader workers, and neither
the second epoch nor a second run with the same folder decodes a JPEG again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from zoo_runtime.pixels import RESIZE_CENTER_CROP, decode_image_file, is_grey
from zoo_train.data.errors import DataError
from zoo_train.data.paths import user_cache_dir

SPLITS = ("train", "val", "test")
COLORS = {"rgb": "RGB", "gray": "L"}  # --color values other than auto -> Pillow modes
VAL_FRACTION = 0.1  # of each class, held out for validation when there is no val/ folder
MAX_UNREADABLE_SHARE = 0.05  # more unreadable image files than this is an error, not a skip
NAMED_FILES = 5  # unreadable files named in messages and the summary
DEFAULT_IMAGE_SIZE = 64
CACHE_VERSION = 1  # part of the cache key: a change to the decoding invalidates old caches
DECODE_BATCH = 32  # files per message between a decoding worker and the main process


def default_memory_budget_mb() -> float:
    """A quarter of the machine's memory: the decoded pixels share it with the model, the optimiser and the OS."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 4 / 2**20
    except (ValueError, OSError, AttributeError):
        return 2048.0


def default_workers() -> int:
    return min(4, os.cpu_count() or 1)


@dataclass(frozen=True)
class FolderOptions:
    """How a folder becomes pixels (zoo-train --image-size, --color, --memory-budget, --decode-cache, --workers)."""

    image_size: int = DEFAULT_IMAGE_SIZE
    color: str = "auto"  # auto (grey only when every image file is grey) | rgb | gray
    memory_budget_mb: float | None = None  # None: default_memory_budget_mb()
    cache_dir: Path | None = None  # None: the user cache's decoded-images folder
    workers: int | None = None  # None: default_workers(); 0 decodes and streams in the main process

    @property
    def resolved_workers(self) -> int:
        return self.workers if self.workers is not None else default_workers()

    @classmethod
    def from_data_options(cls, options: dict[str, Any]) -> FolderOptions:
        known = {"image_size", "color", "memory_budget_mb", "cache_dir", "workers"}
        return cls(**{key: value for key, value in options.items() if key in known})


@lru_cache(maxsize=1)
def image_suffixes() -> frozenset[str]:
    """File name endings of the formats Pillow can open here (its identify-only stubs excluded)."""
    from PIL import Image, ImageFile

    Image.init()
    stubs = {
        name
        for name, (factory, _accept) in Image.OPEN.items()
        if isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile)
    }
    readable = set(Image.OPEN) - stubs - {"MPEG"}
    return frozenset(ext for ext, name in Image.registered_extensions().items() if name in readable)


@dataclass
class FolderScan:
    """What a walk over the folder found, before any pixel is decoded."""

    root: Path
    train_folder: Path  # ROOT, or ROOT/train
    classes: list[str]
    files: dict[str, list[tuple[Path, int]]]  # split -> (file, class index); "train" always, "val"/"test" if given
    modes: set[str] = field(default_factory=set)  # Pillow modes of the readable files
    hidden: int = 0
    not_images: int = 0  # files in class folders that are not of an image format
    loose: int = 0  # files beside the class folders rather than in one
    unreadable: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def image_files(self) -> int:
        return sum(len(v) for v in self.files.values()) + len(self.unreadable)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _class_folders(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def _layout(root: Path) -> dict[str, Path]:
    """split -> folder of class folders: ROOT itself, or ROOT/train (+ val, test)."""
    subfolders = {p.name for p in _class_folders(root)}
    if subfolders and subfolders <= set(SPLITS):
        if "train" not in subfolders:
            raise DataError(f"{root}: holds {', '.join(sorted(subfolders))}/ but no train/ folder of class folders")
        return {split: root / split for split in SPLITS if split in subfolders}
    return {"train": root}


def scan_folder(root: Path) -> FolderScan:
    """Walk ``root``: classes, the image files of each split, and what was ignored (headers read, nothing decoded)."""
    from PIL import Image, UnidentifiedImageError

    if not root.exists():
        raise DataError(f"{root}: no such folder (--data takes a folder with one subfolder of images per class)")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (--data takes a folder with one subfolder of images per class)")
    splits = _layout(root)
    scan = FolderScan(
        root=root, train_folder=splits["train"], classes=[p.name for p in _class_folders(splits["train"])], files={}
    )
    index = {name: i for i, name in enumerate(scan.classes)}
    suffixes = image_suffixes()
    for split, folder in splits.items():
        classes = _class_folders(folder)
        foreign = [p.name for p in classes if p.name not in index]
        if foreign:
            raise DataError(f"{folder}: class folder(s) {', '.join(foreign)} are not in {splits['train']}")
        scan.hidden += sum(1 for p in folder.iterdir() if p.name.startswith("."))
        scan.loose += sum(1 for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        found: list[tuple[Path, int]] = []
        for class_folder in classes:
            for dirpath, dirnames, filenames in os.walk(class_folder, followlinks=True):
                scan.hidden += sum(1 for d in dirnames if d.startswith(".")) + sum(1 for f in filenames if f.startswith("."))
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(f for f in filenames if not f.startswith(".")):
                    path = Path(dirpath) / name
                    if path.suffix.lower() not in suffixes:
                        scan.not_images += 1
                        continue
                    try:
                        with Image.open(path) as img:
                            scan.modes.add(stored_mode(img))
                    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
                        scan.unreadable.append((path, _reason(exc)))
                        continue
                    found.append((path, index[class_folder.name]))
        scan.files[split] = found
    if not scan.files["train"] and not scan.unreadable:
        raise DataError(
            f"{splits['train']}: holds no images in class folders (expected {splits['train']}/CLASS/IMAGE, "
            f"{scan.hidden} hidden, {scan.not_images} non-image and {scan.loose} loose files ignored)"
        )
    if len(scan.classes) < 2:
        raise DataError(f"{splits['train']}: a classifier needs at least 2 class folders, found {len(scan.classes)}")
    return scan


def stored_mode(img: Any) -> str:
    """The image's Pillow mode, with a palette of greys (a grey GIF) counted as grey ("L")."""
    if img.mode == "P":
        palette = img.getpalette() or []
        if palette and palette[0::3] == palette[1::3] == palette[2::3]:
            return "L"
    return str(img.mode)


def resolve_color(requested: str, modes: set[str]) -> str:
    """The Pillow mode images are trained in: --color auto is grey only when every file is stored grey.

    Formats without a grey mode (WebP) store grey pictures as colour, so they count as colour here: --color gray.
    """
    if requested == "auto":
        return "L" if modes and all(is_grey(m) for m in modes) else "RGB"
    if requested not in COLORS:
        raise DataError(f"--color {requested!r}: use auto, rgb or gray")
    return COLORS[requested]


def stratified_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) positions: VAL_FRACTION of each class (at least one, never all) held out, seeded."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for k in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == k))
        n_val = min(len(members) - 1, max(1, round(len(members) * VAL_FRACTION)))
        val.append(members[:n_val])
        train.append(members[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


class _DecodeJobs(Dataset):
    """Item i: (i, uint8 HWC pixels or None, why it failed); run by DataLoader workers."""

    def __init__(self, files: Sequence[Path], color: str, size: int):
        self.files, self.color, self.size = list(files), color, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, str]:
        from PIL import Image, UnidentifiedImageError

        try:
            return i, decode_image_file(self.files[i], self.color, self.size, self.size, RESIZE_CENTER_CROP), ""
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
            return i, None, _reason(exc)


def _as_list(items: list[Any]) -> list[Any]:
    return items


def decode_into(out: np.ndarray, files: Sequence[Path], color: str, size: int, workers: int) -> dict[int, str]:
    """Decode ``files`` into ``out[i]`` (uint8 [N, size, size, C]); returns {position: reason} of those that failed."""
    loader = DataLoader(
        _DecodeJobs(files, color, size), batch_size=DECODE_BATCH, num_workers=workers, collate_fn=_as_list, shuffle=False
    )
    failed: dict[int, str] = {}
    for batch in loader:
        for i, pixels, reason in batch:
            if pixels is None:
                failed[i] = reason
            else:
                out[i] = pixels
    return failed


class CachedImages(Dataset):
    """Images of a decoded-pixels memmap (``positions`` of it) and their labels, as uint8 CHW tensors.

    The memmap is opened lazily in each DataLoader worker: only pages a worker reads are brought into memory.
    """

    def __init__(self, path: Path, shape: tuple[int, ...], positions: np.ndarray, labels: np.ndarray):
        self.path, self.shape, self.positions = path, shape, positions
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self._pixels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._pixels is None:
            self._pixels = np.memmap(self.path, dtype=np.uint8, mode="r", shape=self.shape)
        image = np.array(self._pixels[self.positions[i]].transpose(2, 0, 1), order="C")  # a writable copy
        return torch.from_numpy(image), self.labels[i]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pixels": None}  # each worker maps the file itself


def _cache_key(files: Sequence[Path], color: str, size: int) -> str:
    stats = []
    for path in files:
        st = path.stat()
        stats.append([str(path.resolve()), st.st_size, st.st_mtime_ns])
    text = json.dumps({"version": CACHE_VERSION, "color": color, "size": size, "resize": RESIZE_CENTER_CROP, "files": stats})
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def decode_folder(
    files: Sequence[Path], color: str, options: FolderOptions
) -> tuple[np.ndarray, dict[int, str], Path | None, int]:
    """Pixels of ``files`` (in memory or a memmap cache), {position: reason} of failures, the cache file, decodes done."""
    size, channels = options.image_size, 1 if color == "L" else 3
    shape = (len(files), size, size, channels)
    budget = options.memory_budget_mb if options.memory_budget_mb is not None else default_memory_budget_mb()
    workers = options.resolved_workers
    if int(np.prod(shape)) <= budget * 2**20:
        pixels = np.zeros(shape, np.uint8)
        return pixels, decode_into(pixels, files, color, size, workers), None, len(files)
    cache_dir = options.cache_dir or user_cache_dir() / "decoded-images"
    key = _cache_key(files, color, size)
    data_file, index_file = cache_dir / f"{key}.u8", cache_dir / f"{key}.json"
    if data_file.is_file() and index_file.is_file():
        index = json.loads(index_file.read_text())
        if index.get("shape") == list(shape) and data_file.stat().st_size == int(np.prod(shape)):
            failed = {int(i): reason for i, reason in index["failed"].items()}
            return np.memmap(data_file, dtype=np.uint8, mode="r", shape=shape), failed, data_file, 0
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"{cache_dir}: cannot hold the decoded-image cache ({_reason(exc)}); give another --decode-cache"
        ) from None
    # Written under a temporary name and renamed, data before index: a stopped decode never looks like a cache. The
    # name is the process's own, so that torchrun's ranks (or two runs) decoding the same folder never share a file.
    partial = cache_dir / f"{key}.u8.{os.getpid()}.partial"
    pixels = np.memmap(partial, dtype=np.uint8, mode="w+", shape=shape)
    try:
        failed = decode_into(pixels, files, color, size, workers)
        pixels.flush()
    except BaseException:
        del pixels
        partial.unlink(missing_ok=True)
        raise
    del pixels
    os.replace(partial, data_file)
    index_tmp = cache_dir / f"{key}.json.{os.getpid()}.partial"
    index_tmp.write_text(json.dumps({"shape": list(shape), "failed": {str(i): r for i, r in failed.items()}}))
    os.replace(index_tmp, index_file)
    return np.memmap(data_file, dtype=np.uint8, mode="r", shape=shape), failed, data_file, len(files)


def folder_counts(labels: np.ndarray, positions: np.ndarray, classes: list[str]) -> dict[str, int]:
    counts = np.bincount(labels[positions], minlength=len(classes))
    return {name: int(n) for name, n in zip(classes, counts, strict=True)}


def imbalance(counts: dict[str, int]) -> float | None:
    """Largest over smallest class count (1.0: balanced); None where a class has no images."""
    values = list(counts.values())
    return round(max(values) / min(values), 3) if values and min(values) > 0 else None


@dataclass
class ImageFolderData:
    """A decoded folder split into train / val / test, and the facts the summary reports about it."""

    classes: list[str]
    color: str
    image_size: int
    pixels: np.ndarray
    labels: np.ndarray
    positions: dict[str, np.ndarray]
    cache_file: Path | None
    has_val_folder: bool
    workers: int  # processes that decoded it, and that stream it when it is cached
    report: dict[str, Any]


def _too_few(labels: np.ndarray, classes: list[str], where: Path) -> None:
    counts = np.bincount(labels, minlength=len(classes)) if len(labels) else np.zeros(len(classes), int)
    short = [f"{classes[k]} ({counts[k]})" for k in range(len(classes)) if counts[k] < 2]
    if short:
        raise DataError(f"{where}: every class needs at least 2 usable images; too few in {', '.join(short)}")


def load_image_folder(
    root: Path, options: FolderOptions, seed: int, limit_train: int | None = None, limit_eval: int | None = None
) -> ImageFolderData:
    """Scan, check, split (stratified with ``seed`` when there is no val/), decode; every bad-data case a DataError."""
    if options.image_size < 8:
        raise DataError(f"--image-size {options.image_size}: use at least 8 pixels")
    scan = scan_folder(root)
    color = resolve_color(options.color, scan.modes)

    def paths_labels(split: str) -> tuple[list[Path], np.ndarray]:
        pairs = scan.files.get(split, [])
        return [p for p, _ in pairs], np.array([k for _, k in pairs], dtype=np.int64)

    train_files, train_labels = paths_labels("train")
    share_problem = _unreadable_problem(scan.unreadable, scan.image_files, root)
    if share_problem:
        raise DataError(share_problem)
    _too_few(np.concatenate([train_labels, paths_labels("val")[1]]), scan.classes, scan.train_folder)

    # Positions into one list of files: train, then val, then test.
    rng = np.random.default_rng(seed)
    val_files, val_labels = paths_labels("val")
    test_files, test_labels = paths_labels("test")
    files = train_files + val_files + test_files
    labels = np.concatenate([train_labels, val_labels, test_labels])
    if val_files:
        train_pos = rng.permutation(len(train_files))
        val_pos = np.arange(len(train_files), len(train_files) + len(val_files))
    else:
        train_pos, val_pos = stratified_split(train_labels, seed)
        train_pos = rng.permutation(train_pos)
    pool = np.concatenate([train_pos, val_pos])  # what the 2-images-per-class rule counts
    test_pos = np.arange(len(train_files) + len(val_files), len(files))
    # The quick and smoke presets train and validate on part of a large folder: only that part (and all of test/,
    # whose figures are the run's result, as a named dataset's test split is) is decoded.
    if limit_train:
        train_pos = train_pos[:limit_train]
    if limit_eval:
        val_pos = val_pos[:limit_eval]
    used = np.sort(np.concatenate([train_pos, val_pos, test_pos]))
    used_files = [files[i] for i in used]

    pixels, failed, cache_file, decoded = decode_folder(used_files, color, options)
    unreadable = scan.unreadable + [(used_files[i], reason) for i, reason in sorted(failed.items())]
    share_problem = _unreadable_problem(unreadable, scan.image_files, root)
    if share_problem:
        raise DataError(share_problem)
    broken = used[sorted(failed)]
    _too_few(labels[np.setdiff1d(pool, broken)], scan.classes, scan.train_folder)
    # Split positions into the decoded pixels (which hold only the used files), without the broken files.
    renumber = np.full(len(files), -1, dtype=np.int64)
    renumber[used] = np.arange(len(used))
    renumber[broken] = -1
    positions = {}
    for split, pos in (("train", train_pos), ("val", val_pos), ("test", test_pos)):
        new = renumber[pos]
        positions[split] = new[new >= 0]
    used_labels = labels[used]

    counts = {split: folder_counts(used_labels, pos, scan.classes) for split, pos in positions.items() if len(pos)}
    report = {
        "image_folder": str(root),
        "classes": len(scan.classes),
        "class_counts": counts,
        "class_imbalance": imbalance(counts["train"]),
        "color": color,
        "image_size": options.image_size,
        "resize": RESIZE_CENTER_CROP,
        "streamed_from_cache": cache_file is not None,
        "files_decoded": decoded,  # by this run: 0 when the decode cache already held the folder
        "unreadable_files": len(unreadable),
        "unreadable_named": [f"{path.relative_to(root)}: {reason}" for path, reason in unreadable[:NAMED_FILES]],
        "hidden_files_ignored": scan.hidden,
        "non_image_files_ignored": scan.not_images,
        "files_outside_class_folders_ignored": scan.loose,
    }
    return ImageFolderData(
        classes=scan.classes,
        color=color,
        image_size=options.image_size,
        pixels=pixels,
        labels=used_labels,
        positions=positions,
        cache_file=cache_file,
        has_val_folder="val" in scan.files,
        workers=options.resolved_workers,
        report=report,
    )


def _unreadable_problem(unreadable: list[tuple[Path, str]], image_files: int, root: Path) -> str | None:
    if not image_files or len(unreadable) / image_files <= MAX_UNREADABLE_SHARE:
        return None
    named = "; ".join(f"{path.relative_to(root)} ({reason})" for path, reason in unreadable[:NAMED_FILES])
    return (
        f"{root}: {len(unreadable)} of {image_files} image files cannot be read (more than "
        f"{MAX_UNREADABLE_SHARE:.0%}): {named}{' ...' if len(unreadable) > NAMED_FILES else ''}"
    )


def class_count_line(counts: dict[str, int]) -> str:
    """e.g. "cat 40, dog 38"; long class lists shortened."""
    items = [f"{name} {n}" for name, n in counts.items()]
    return ", ".join(items) if len(items) <= 12 else ", ".join(items[:12]) + f", ... ({len(items)} classes)"
