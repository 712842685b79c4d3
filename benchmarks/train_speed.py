"""Training throughput: the plain eager fp32 path against the fast path, side by side in one run.

plain: DataLoader batches copied to the device, fp32, contiguous memory, unfused optimiser.
fast:  the trainer's own choices: the dataset resident on the device, bf16 autocast (CUDA; on a CPU with
       --precision bf16), channels_last CNNs (CUDA and CPU), fused optimisers (CUDA), and torch.compile with
       --compile (its first-call compile time is reported separately).

    python benchmarks/train_speed.py                     # every model family, on the best device
    python benchmarks/train_speed.py --models lenet5 char-gpt --steps 50 --device cpu
    python benchmarks/train_speed.py --device cpu --precision bf16   # bf16 autocast on a CPU (AMX)
    python benchmarks/train_speed.py --time-to-target    # ResNetCIFAR to 0.94 test accuracy, char GPT to 1.50 nats (GPU)
    python benchmarks/train_speed.py --time-to-target --preset quick --device cpu   # every model's quick recipe
                                                         #   against its demo targets (what `make demo` trains)
    python benchmarks/train_speed.py --time-to-target --preset quick --runs models_out   # the same, read from the
                                                         #   runs a `make demo` made instead of training again
    bash benchmarks/gpu_figures.sh throughput|targets   # all of #9's GPU figures, one device-tool call each
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from zoo_runtime.rundir import RunDir
from zoo_train.cli import training_order
from zoo_train.data.paths import existing_folder
from zoo_train.registry import get_entry, list_models
from zoo_train.tasks.base import DeviceLoader, ResidentLoader, dataset_size, get_task
from zoo_train.trainer import (
    COMPILE_MODES,
    PRECISIONS,
    GlobalBatchSampler,
    TrainConfig,
    autocast_for,
    build_config,
    channels_last_suits,
    compile_for_training,
    pick_device,
    read_metrics,
    requested_compile_mode,
    resolve_precision,
    synchronize,
    train,
)

# One representative per family (the DNA models share dna_rnn.py, the classifiers seq_classifier.py).
FAMILIES = [
    "lenet5",
    "cifar-lenet",
    "simple-cnn",
    "resnet-cifar",
    "scratch-cnn",
    "char-lstm",
    "char-gpt",
    "dna-gru",
    "lstm-classifier",
    "dcgan",
    "seq2seq-transformer",
]
# The #9 goals: a per-epoch validation figure stops the run at the target; a test figure is judged at the end.
TARGETS = {"resnet-cifar": ("test_accuracy", 0.94), "char-gpt": ("val_loss", 1.50)}


def items_per_batch(batch: torch.Tensor | Sequence[torch.Tensor]) -> int:
    first = batch if isinstance(batch, torch.Tensor) else batch[0]
    return int(first.numel() if first.dtype == torch.long else first.shape[0])  # tokens for LMs, images else


def measure(
    name: str,
    device: torch.device,
    fast: bool,
    steps: int,
    compile_mode: str | None,
    data_dir: Path | None,
    precision: str = "fp32",
) -> dict:
    """Items/s of ``steps`` optimiser steps; ``precision`` and ``compile_mode`` (None: eager) apply to the fast
    path only."""
    entry = get_entry(name)
    task = get_task(entry.task)
    recipe = entry.recipe("full")
    torch.manual_seed(0)
    data = task.load_data(entry, recipe, None, data_dir, 0)
    model = entry.build(**build_config(entry, data, recipe, {})).to(device)
    if fast and channels_last_suits(model, device):
        model = model.to(memory_format=torch.channels_last)
    optimizers = task.make_optimizers(model, recipe, device if fast else torch.device("cpu"))
    sampler = GlobalBatchSampler(dataset_size(data.train), recipe.batch_size, 0, 1, 0)
    if fast and isinstance(data.train, TensorDataset):
        loader: ResidentLoader | DeviceLoader = ResidentLoader(
            data.train.tensors, sampler, recipe.batch_size, device, data.batch_transform, True
        )
    else:
        loader = DeviceLoader(
            task.make_loader(data.train, recipe.batch_size, train=True, data=data, generator=None, sampler=sampler),
            device,
            data.batch_transform,
            True,
        )
    autocast = autocast_for(device, precision) if fast else contextlib.nullcontext
    train_model = compile_for_training(model, compile_mode) if fast and compile_mode else model
    model.train()
    batches = iter(loader)
    first_start = time.perf_counter()
    task.fit_batch(train_model, next(batches), optimizers, recipe, autocast)  # warm-up (and compile)
    synchronize(device)
    first_call = time.perf_counter() - first_start
    count, start = 0, time.perf_counter()
    for _ in range(steps):
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        task.fit_batch(train_model, batch, optimizers, recipe, autocast)
        count += items_per_batch(batch)
    synchronize(device)
    seconds = time.perf_counter() - start
    return {"items_per_s": count / seconds, "first_call_s": first_call}


def time_to_target(
    name: str, device: str, data_dir: Path | None, out: Path, precision: str, compile_mode: str | None = None
) -> dict:
    """Train ``name`` until its target and report the training seconds it took (validation passes included,
    the steps in which torch.compile compiled apart).

    The model's speedrun recipe runs when it has one: a fixed short schedule, judged like airbench's, by the
    held-out test figure at its end. Otherwise the full recipe runs until a validation epoch reaches the target.
    """
    metric, target = TARGETS[name]
    higher_is_better = metric.endswith("accuracy")
    met = (lambda value: value >= target) if higher_is_better else (lambda value: value <= target)
    preset = "speedrun" if "speedrun" in get_entry(name).recipes else "full"
    per_epoch = metric.startswith("val_")
    run = train(
        TrainConfig(
            model=name,
            preset=preset,
            device=device,
            data_dir=data_dir,
            out=out,
            show_progress=False,
            target=(metric, target) if per_epoch else None,
            precision=precision,
            compile=compile_mode,
            overwrite=True,
        )
    )
    records = read_metrics(run)
    epochs = [r for r in records if r.get("kind") == "epoch"]
    # Steps that compiled (the first, and the first of a new batch shape) are reported apart, as #9 asks.
    compiles = [r for r in records if r.get("kind") == "compile" and r.get("compiled")]
    summary = json.loads(RunDir(run).summary.read_text())
    elapsed, compile_seconds, reached, epoch_first_step = 0.0, 0.0, None, 0
    for record in epochs:
        compiling = sum(c["seconds"] for c in compiles if epoch_first_step <= c["step"] < record["step"])
        epoch_first_step = record["step"]
        compile_seconds += compiling
        elapsed += record["seconds"] - compiling
        if per_epoch and met(record[metric]):
            reached = elapsed
            break
    if not per_epoch and met(summary[metric]):
        reached = elapsed
    return {
        "model": name,
        "preset": preset,
        "target": f"{metric} {'>=' if higher_is_better else '<='} {target}",
        "seconds_to_target": None if reached is None else round(reached, 1),
        "epochs": len(epochs),
        "training_seconds": round(elapsed, 1),
        "compile_seconds": round(compile_seconds, 1),
        "best_val": summary.get("best_val"),
        "final": {key: summary[key] for key in (metric, summary.get("metric")) if key in summary},
    }


def quick_time_to_target(name: str, run: Path) -> dict:
    """A quick run against its demo targets, judged at its end as the speedrun is: its training seconds when it
    met every demo target, else None; the figures the targets read, and the seconds per epoch."""
    entry = get_entry(name)
    summary = json.loads(RunDir(run).summary.read_text())
    targets = entry.targets_for("quick")
    verdicts = [target.met(summary) for target in targets]
    epochs = [r for r in read_metrics(run) if r.get("kind") == "epoch"]
    seconds = summary.get("train_seconds")
    return {
        "model": name,
        "precision": summary.get("precision"),
        "epochs": len(epochs),
        "training_seconds": seconds,
        "seconds_to_target": seconds if verdicts and all(verdicts) else None,
        "targets": "; ".join(f"{t.describe()}: {'met' if v else 'missed'}" for t, v in zip(targets, verdicts, strict=True)),
        "figures": {t.metric: summary.get(t.metric) for t in targets},
    }


def quick_table(results: list[dict]) -> str:
    """The markdown table of quick_time_to_target results (benchmarks/RESULTS.md)."""
    rows = ["| model | precision | epochs | training s | demo targets | figures |", "|---|---|---:|---:|---|---|"]
    for r in results:
        figures = ", ".join(
            f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}" for key, value in r["figures"].items()
        )
        rows.append(
            f"| {r['model']} | {r['precision']} | {r['epochs']} | {r['training_seconds']:.0f} | {r['targets']} | {figures} |"
        )
    return "\n".join(rows)


def quick_recipes(models: Sequence[str], device: str, data_dir: Path | None, out: Path, runs: Path | None) -> int:
    """Every quick recipe against its demo targets: trained into ``out``, or read from ``runs`` (a demo's)."""
    results = []
    for name in models:
        if runs is None:
            run = train(
                TrainConfig(
                    model=name, preset="quick", device=device, data_dir=data_dir, out=out, show_progress=False, overwrite=True
                )
            )
        else:
            run = runs / name
            if RunDir(run).read_summary() is None:
                print(f"{run}: no summary.json (not trained); left out", file=sys.stderr)
                continue
        results.append(quick_time_to_target(name, run))
        print(json.dumps(results[-1]), flush=True)
    print(quick_table(results))
    met = sum(r["seconds_to_target"] is not None for r in results)
    total = sum(r["training_seconds"] or 0 for r in results)
    print(f"\n{met} of {len(results)} quick recipes met their demo targets; {total:.0f} s of training in all")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--models",
        nargs="+",
        choices=list_models(),
        metavar="MODEL",
        help="the models to measure (default: one per family for throughput, every model for --preset quick)",
    )
    parser.add_argument("--steps", type=int, default=30, help="timed optimiser steps per path (default: %(default)s)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="add torch.compile to the fast path")
    parser.add_argument(
        "--compile-mode",
        choices=COMPILE_MODES,
        help="torch.compile's mode, implies --compile (reduce-overhead: CUDA graphs)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="the fast path's arithmetic, as zoo-train --precision (default: %(default)s: bf16 on CUDA only)",
    )
    parser.add_argument("--data-dir", type=existing_folder, help="where to look for datasets first")
    parser.add_argument(
        "--time-to-target",
        action="store_true",
        help="instead of the throughput table, train ResNetCIFAR (its speedrun recipe) and char GPT (full) "
        "until their targets (with --compile: compiled)",
    )
    parser.add_argument(
        "--preset",
        choices=("speedrun", "quick"),
        default="speedrun",
        help="with --time-to-target: speedrun (the GPU goals above) or quick (every model's quick recipe against "
        "its demo targets, on --models; default: %(default)s)",
    )
    parser.add_argument(
        "--runs",
        type=existing_folder,
        help="with --preset quick: read the runs in this folder (what `make demo` trained) instead of training",
    )
    parser.add_argument("--out", type=Path, default=Path("models_out/bench"))
    args = parser.parse_args(argv)
    compile_mode = requested_compile_mode(args.compile, args.compile_mode)
    if args.time_to_target and args.preset == "quick":
        return quick_recipes(training_order(args.models or list_models()), args.device, args.data_dir, args.out, args.runs)
    device = pick_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    precision = resolve_precision(args.precision, device)
    if args.time_to_target:
        print(f"device: {device} ({name}), torch {torch.__version__}, {precision}, compile {compile_mode or 'off'}")
        for model_name in TARGETS:
            print(json.dumps(time_to_target(model_name, args.device, args.data_dir, args.out, precision, compile_mode)))
        return 0
    print(f"device: {device} ({name}), torch {torch.__version__}, {args.steps} steps per path, fast path in {precision}")
    print(f"{'model':<22}{'plain items/s':>15}{'fast items/s':>15}{'fast/plain':>12}{'first call s':>14}")
    for model_name in args.models or FAMILIES:
        plain = measure(model_name, device, False, args.steps, None, args.data_dir)
        fast = measure(model_name, device, True, args.steps, compile_mode, args.data_dir, precision)
        print(
            f"{model_name:<22}{plain['items_per_s']:>15.0f}{fast['items_per_s']:>15.0f}"
            f"{fast['items_per_s'] / plain['items_per_s']:>11.2f}x{fast['first_call_s']:>14.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
