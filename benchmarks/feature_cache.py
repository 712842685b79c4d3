"""Epoch time of a frozen backbone with its features cached vs computed every step (zoo-train --freeze backbone).

Generates ``--count`` JPEGs (benchmarks/image_folder.py's generator), then trains ``--model`` on them twice with
``--freeze backbone --no-augment``: once as zoo-train does it (the backbone's features of the training and
validation images computed once, the epochs train the head alone) and once with the features computed at every
step. Prints the seconds of the first and of the later epochs (the first epoch of the cached run excludes the one
pass that computes the features, which is printed apart) as a markdown table. Run it with OMP_NUM_THREADS=1 where
the cores are shared.

    OMP_NUM_THREADS=1 python benchmarks/feature_cache.py --folder /tmp/photos-cache --count 2000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def run(model: str, folder: Path, out: Path, cache: bool, epochs: int, size: int) -> tuple[float, list[float]]:
    """(seconds from the start to the first step's data ready, seconds of each epoch)."""
    from zoo_train.trainer import TrainConfig, train

    began = time.perf_counter()
    run_dir = train(
        TrainConfig(
            model=model,
            preset="quick",
            data=str(folder),
            out=out,
            run_name=f"cache-{cache}",
            epochs=epochs,
            show_progress=False,
            device="cpu",
            data_options={"image_size": size, "workers": 0},
            freeze="backbone",
            augment=False,
            cache_features=cache,
            overwrite=True,
        )
    )
    total = time.perf_counter() - began
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    seconds = [r["seconds"] for r in records if r.get("kind") == "epoch"]
    return total - sum(seconds), seconds


def main(argv: list[str] | None = None) -> int:
    from image_folder import generate

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", type=Path, required=True, help="where the JPEGs are generated (kept)")
    p.add_argument("--count", type=int, default=2000, help="(default: %(default)s)")
    p.add_argument("--size", type=int, default=64, help="image side, in the files and for training (default: %(default)s)")
    p.add_argument("--model", default="mobilenet-v3-small", help="(default: %(default)s)")
    p.add_argument("--epochs", type=int, default=3, help="(default: %(default)s)")
    args = p.parse_args(argv)
    generate(args.folder, args.count, args.size, classes=5)
    print(f"| {args.model}, {args.count} images {args.size} px, frozen, no augmentation | outside epochs s | epoch s |")
    print("|---|---:|---|")
    with tempfile.TemporaryDirectory() as out:
        for cache in (False, True):
            outside, epochs = run(args.model, args.folder, Path(out), cache, args.epochs, args.size)
            label = "features cached (computed once)" if cache else "features computed every step"
            print(f"| {label} | {outside:.1f} | {', '.join(f'{s:.2f}' for s in epochs)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
