"""Loading a folder of JPEGs for training: decode, cached epochs and training, resident vs streamed, with peak RSS.

Generates ``--count`` JPEGs of ``--size`` x ``--size`` pixels in ``--classes`` class folders (once; kept in
``--folder``), then runs three fresh child processes through the trainer's own ``Run`` (``zoo-train MODEL --data
FOLDER``), each measuring:

- ``resident``: the folder decoded into memory (the default below the memory budget);
- ``streamed, cold``: over the budget: decoded into the on-disk uint8 cache, epochs streamed from it by DataLoader
  workers;
- ``streamed, warm``: the same again, the cache already there (what every epoch after the first, and every later
  run on the same folder, sees).

Per child: seconds to prepare the data (scan + decode, or scan + cache hit) and images/s of decoding; images/s of
one epoch of batches read through the trainer's loader, no model (the cached-epoch rate); images/s of one training
epoch of ``--model``; peak RSS of the main process and of its largest worker.

    python benchmarks/image_folder.py --count 20000 --append benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODES = ("resident", "streamed, cold", "streamed, warm")


def generate(folder: Path, count: int, size: int, classes: int, seed: int = 0) -> float:
    """``count`` JPEGs (smooth class-specific gradients plus noise, like photos rather than static); seconds taken."""
    from PIL import Image

    marker = folder / ".complete"
    if marker.is_file() and marker.read_text() == f"{count} {size} {classes}":
        return 0.0
    shutil.rmtree(folder, ignore_errors=True)
    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    # Noise tiles drawn once and shifted per image: generating 20,000 files is then mostly JPEG encoding.
    tiles = [rng.normal(0, 12, (size, size, 3)).astype(np.float32) for _ in range(16)]
    bases = []
    for k in range(classes):
        angle = np.pi * k / classes
        field = np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None]
        bases.append((field[:, :, None] * np.array([200, 120 + 10 * k, 80], np.float32)) % 255)
    for i in range(count):
        k = i % classes
        noise = np.roll(tiles[i % len(tiles)], tuple(rng.integers(0, size, 2)), axis=(0, 1))
        pixels = np.clip(bases[k] + noise, 0, 255).astype(np.uint8)
        target = folder / f"class{k:02d}"
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(target / f"{i:06d}.jpg", quality=90)
    marker.write_text(f"{count} {size} {classes}")
    return time.perf_counter() - began


def size_of(dataset: Any) -> int:
    """len() of a training split (torch types a Dataset as not necessarily sized)."""
    return len(dataset)


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One mode, measured in this (fresh) process."""
    import torch

    import zoo_train.data.image_folder as image_folder
    from zoo_train.trainer import Run, TrainConfig

    decoding: dict[str, float] = {}
    decode_folder = image_folder.decode_folder

    def timed_decode_folder(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        result = decode_folder(*args, **kwargs)
        decoding["seconds"], decoding["decoded"] = time.perf_counter() - began, result[3]
        return result

    image_folder.decode_folder = timed_decode_folder
    scan_folder = image_folder.scan_folder

    def timed_scan_folder(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        result = scan_folder(*args, **kwargs)
        decoding["scan_seconds"] = time.perf_counter() - began
        return result

    image_folder.scan_folder = timed_scan_folder

    torch.set_num_threads(args.threads)
    options: dict[str, Any] = {"image_size": args.image_size, "workers": args.workers, "cache_dir": args.cache}
    if args.mode != "resident":
        options["memory_budget_mb"] = 0.001  # any folder is over it
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            model=args.model,
            preset="full",  # no limit on the training images; one epoch of the full recipe's batch size
            data=str(args.folder),
            out=Path(out),
            epochs=1,
            batch_size=args.batch_size,
            show_progress=False,
            data_options=options,
        )
        run = Run(config)
        began = time.perf_counter()
        run.prepare()
        prepare_s = time.perf_counter() - began
        splits = [run.data.train, run.data.val] + ([run.data.test] if run.data.test is not None else [])
        images = sum(size_of(split) for split in splits)
        report = run.data.extras["folder_report"]
        assert report["streamed_from_cache"] == (args.mode != "resident")

        # The data path alone: batches as they leave the cache (or memory), before augmentation and the model.
        transform, run.train_loader.transform = run.train_loader.transform, None
        began = time.perf_counter()
        read = sum(len(batch[1]) for batch in run.train_loader)
        read_s = time.perf_counter() - began
        run.train_loader.transform = transform

        if args.train_steps:
            run.total_steps = args.train_steps  # the epoch ends there: a rate, not a whole epoch, on a slow machine
        began = time.perf_counter()
        run.fit_epoch(0)
        train_s = time.perf_counter() - began
        trained = min(size_of(run.data.train), run.step * args.batch_size)
        del run
        gc.collect()  # the streamed loader's persistent workers exit (and are reaped) here: their RSS counts
    return {
        "mode": args.mode,
        "images": images,
        "prepare_s": prepare_s,
        "scan_s": decoding["scan_seconds"],
        "decode_s": decoding["seconds"],
        "decoded": decoding["decoded"],
        "decode_ips": images / decoding["seconds"],
        "epoch_read_ips": read / read_s,
        "train_ips": trained / train_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def table(results: list[dict[str, Any]], args: argparse.Namespace, generated_s: float) -> str:
    today = _dt.date.today().isoformat()
    decoded_mb = args.count * args.image_size**2 * 3 / 2**20
    lines = [
        f"## Loading an image folder: decode, cached epochs, training, peak RSS ({today})",
        "",
        f"- Machine: {platform.machine()}, {os.cpu_count()} cores (shared with other jobs), no GPU used; "
        f"torch threads {args.threads}, DataLoader workers {args.workers}.",
        f"- Command: `python benchmarks/image_folder.py --count {args.count} --size {args.size} --image-size "
        f"{args.image_size} --model {args.model} --workers {args.workers}"
        + (f" --train-steps {args.train_steps}" if args.train_steps else "")
        + f"`: {args.count} generated {args.size}x{args.size} "
        f"JPEGs in {args.classes} classes (generated in {generated_s:.0f} s, not counted), trained at "
        f"{args.image_size}x{args.image_size} RGB ({decoded_mb:.0f} MB decoded); each row a fresh process.",
        "- prepare: the trainer's whole data and model set-up (scan, decode or cache hit, statistics, model, run "
        "folder with its TensorBoard writer); scan: walking the folder and reading every file's header; "
        "decode: the decoding part of it (files decoded / seconds; a cache hit decodes none, and its "
        "images/s is images made ready per second); epoch read: one epoch of training batches through the trainer's "
        "loader, before augmentation and model; train: optimiser steps with augmentation (one epoch, or --train-steps); "
        "RSS: ru_maxrss "
        "of the main process and of its largest DataLoader worker.",
        "",
        "| mode | images | scan s | files decoded | decode s | decode images/s | prepare s | epoch read images/s "
        "| train images/s | peak RSS MB | worker peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['mode']} | {r['images']} | {r['scan_s']:.1f} | {r['decoded']} | {r['decode_s']:.1f} | {r['decode_ips']:.0f} | "
            f"{r['prepare_s']:.1f} | {r['epoch_read_ips']:.0f} | {r['train_ips']:.0f} | {r['peak_rss_mb']:.0f} | "
            f"{r['worker_peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=20000, help="JPEGs to generate (default: %(default)s)")
    p.add_argument("--size", type=int, default=256, help="side of the generated JPEGs (default: %(default)s)")
    p.add_argument("--classes", type=int, default=10, help="class folders (default: %(default)s)")
    p.add_argument("--image-size", type=int, default=64, help="training image side (default: %(default)s)")
    p.add_argument("--model", default="lenet5", help="registry model trained for the train column (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128, help="(default: %(default)s)")
    p.add_argument("--train-steps", type=int, help="time only this many training steps (default: one whole epoch)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    p.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "zoo-bench-image-folder")
    p.add_argument("--append", type=Path, help="append the table to this Markdown file")
    p.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # a child's one mode
    p.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.mode:
        print(json.dumps(child(args)))
        return 0
    generated_s = generate(args.folder, args.count, args.size, args.classes)
    results = []
    with tempfile.TemporaryDirectory() as cache:
        for mode in MODES:
            command = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--mode", mode, "--cache", cache]
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    text = table(results, args, generated_s)
    print(text)
    if args.append:
        with args.append.open("a") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
