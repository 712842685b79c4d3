"""The transfer experiment of docs/QUALITY.md: does a backbone trained on five Fashion-MNIST classes help the other five?

Writes, under ``--work`` (from the Fashion-MNIST IDX files the zoo already reads: ``zoo-data fetch`` or Debian's
dataset-fashion-mnist):

- ``pretrain/``: IDX files of the training and test images of the five ``--pretrain-classes`` (default 0-4: T-shirt/top,
  Trouser, Pullover, Dress, Coat), labelled 0-4 in that order;
- ``folder/train/CLASS/*.png``: ``--per-class`` training images of each of the other five classes (by default 5-9:
  Sandal, Shirt, Sneaker, Bag, Ankle boot), drawn with ``--sample-seed``; the trainer holds 10% of each class out of
  them for validation;
- ``folder/test/CLASS/*.png``: every test image of those five classes (1,000 each).

Then it runs, with zoo-train (the commands are printed as they run), the pretraining once and per ``--seeds`` three
arms on the folder with the same recipe, epochs and batch size: ``scratch`` (fresh weights), ``fine-tuned``
(``--init-from`` the pretraining run: every tensor but the head, which was trained for other classes) and
``frozen`` (the same, with ``--freeze backbone``: only the head trains). It prints each arm's test accuracy on the
5,000 test images per seed and the mean, as a markdown table.

    OMP_NUM_THREADS=1 python benchmarks/transfer_fashion.py --work /tmp/transfer
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

from zoo_runtime.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("scratch", "fine-tuned", "frozen")


def write_data(work: Path, pretrain_classes: list[int], per_class: int, sample_seed: int, data_dir: Path | None) -> None:
    """The pretraining IDX folder and the PNG image folder (skipped when already written with these settings)."""
    from PIL import Image

    from zoo_train.data.images import IDX_FILES, load_image_arrays, write_idx

    marker = work / ".data-complete"
    settings = f"{pretrain_classes} {per_class} {sample_seed}"
    if marker.is_file() and marker.read_text() == settings:
        return
    arrays = load_image_arrays("fashion-mnist", data_dir)
    pretrain = work / "pretrain"
    pretrain.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        images, labels = getattr(arrays, f"{split}_images"), getattr(arrays, f"{split}_labels")
        keep = np.isin(labels, pretrain_classes)
        renumber = np.zeros(10, dtype=np.uint8)
        renumber[pretrain_classes] = np.arange(len(pretrain_classes))
        write_idx(pretrain / IDX_FILES[f"{split}_images"], images[keep][..., 0])
        write_idx(pretrain / IDX_FILES[f"{split}_labels"], renumber[labels[keep]])
    rng = np.random.default_rng(sample_seed)
    for split in ("train", "test"):
        images, labels = getattr(arrays, f"{split}_images"), getattr(arrays, f"{split}_labels")
        for k in sorted(set(range(10)) - set(pretrain_classes)):
            # Folder names without "/" (T-shirt/top is not among them; Ankle boot keeps its space).
            folder = work / "folder" / split / arrays.labels[k]
            folder.mkdir(parents=True, exist_ok=True)
            indices = np.flatnonzero(labels == k)
            if split == "train":
                indices = np.sort(rng.choice(indices, per_class, replace=False))
            for index in indices:
                Image.fromarray(images[index, :, :, 0], mode="L").save(folder / f"{index:05d}.png")
    marker.write_text(settings)


def zoo_train(args: list[str]) -> None:
    command = [sys.executable, "-m", "zoo_train.cli", *args, "--quiet"]
    print("$ zoo-train " + shlex.join(args), flush=True)
    subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_accuracy(run: Path) -> float:
    return float(json.loads(RunDir(run).summary.read_text())["test_accuracy"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, required=True, help="where the data and the runs go")
    p.add_argument("--data-dir", type=Path, help="where the Fashion-MNIST IDX files are (default: the zoo's search)")
    p.add_argument("--model", default="simple-cnn", help="registry name of the classifier (default: %(default)s)")
    p.add_argument(
        "--pretrain-classes", type=int, nargs=5, default=[0, 1, 2, 3, 4], help="pretrain on these (default: 0 1 2 3 4)"
    )
    p.add_argument("--per-class", type=int, default=50, help="training images per target class (default: %(default)s)")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the draw of those images (default: %(default)s)")
    p.add_argument("--pretrain-epochs", type=int, default=4, help="(default: %(default)s)")
    p.add_argument("--epochs", type=int, default=30, help="epochs of every arm on the folder (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size of every arm on the folder (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds of the arms (default: 0 1 2)")
    p.add_argument("--augment", action="store_true", help="every arm on the folder trains with augmentation")
    args = p.parse_args(argv)

    write_data(args.work, args.pretrain_classes, args.per_class, args.sample_seed, args.data_dir)
    runs = args.work / "runs"
    pretrained = runs / "pretrain"
    if not RunDir(pretrained).summary.is_file():
        zoo_train(
            [args.model, "--data", str(args.work / "pretrain"), "--preset", "quick", "--epochs", str(args.pretrain_epochs),
             "--out", str(runs), "--run-name", "pretrain", "--seed", "0", "--overwrite"]
        )  # fmt: skip
    folder_run = [args.model, "--data", str(args.work / "folder"), "--image-size", "28", "--preset", "quick"]
    folder_run += ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--out", str(runs), "--overwrite"]
    folder_run += ["--augment"] if args.augment else []
    extra = {"scratch": [], "fine-tuned": ["--init-from", str(pretrained)]}
    extra["frozen"] = [*extra["fine-tuned"], "--freeze", "backbone"]
    results: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for seed in args.seeds:
        for arm in ARMS:
            name = f"{arm}-seed{seed}"
            zoo_train([*folder_run, "--run-name", name, "--seed", str(seed), *extra[arm]])
            results[arm].append(test_accuracy(runs / name))
    classes = ", ".join(map(str, args.pretrain_classes))
    print(f"\npretraining run (classes {classes}): test accuracy {test_accuracy(pretrained):.4f}\n")
    print("| arm | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean |")
    print("|---|" + "---:|" * (len(args.seeds) + 1))
    for arm, figures in results.items():
        print(f"| {arm} | " + " | ".join(f"{f:.4f}" for f in figures) + f" | {np.mean(figures):.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
