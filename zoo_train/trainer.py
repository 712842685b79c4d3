"""One trainer for every task: device, AMP, clipping, warm-up + cosine LR, early stopping, logs, checkpoints.

The loop is deliberately plain (nanoGPT-style). Task-specific work (loss, metrics,
samples) is delegated to the task object; the trainer never asks which task it runs.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import sys
import time
import typing
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import Sampler, TensorDataset

from zoo_train.checkpoint import load_checkpoint, save_checkpoint
from zoo_train.data.paths import file_in_the_way
from zoo_train.registry import ModelEntry, Recipe, config_fields, get_entry
from zoo_train.tasks.base import BatchLoader, DeviceLoader, ResidentLoader, TaskData, get_task

# Reading a loss on the host waits for the GPU to finish its step, so that it then idles while Python queues the
# next one: for the zoo's small models that queueing is a large part of a step. Losses wait on the device and are
# read, and checked for NaN, this many steps at a time and at every epoch's end (before any checkpoint).
LOSS_READ_EVERY = 50


class TrainingError(Exception):
    """Training cannot go on (NaN loss, a resume that does not match); the message says why."""


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def pick_device(requested: str = "auto") -> torch.device:
    if requested != "auto":
        try:
            device = torch.device(requested)
        except RuntimeError:
            device = None
        if device is None or device.type not in ("cpu", "cuda", "mps"):
            raise ValueError(f"--device {requested!r}: not a device the trainer runs on; use auto, cpu, cuda, cuda:N or mps")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise TrainingError(f"--device {requested}: CUDA is not available on this machine")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise TrainingError(f"--device {requested}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        if device.type == "mps" and not _mps_available():
            raise TrainingError(f"--device {requested}: MPS (Apple GPU) is not available on this machine")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE set), else run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size())


class GlobalBatchSampler(Sampler[int]):
    """A seeded permutation cut into global batches; each rank takes its slice of every global batch.

    With one process this is plain shuffling; with N processes each optimiser step sees the
    same examples as the single-process run, so DDP reproduces it (up to float reduction order).
    """

    def __init__(self, length: int, global_batch: int, rank: int, world_size: int, seed: int):
        self.length, self.global_batch, self.rank, self.world = length, global_batch, rank, world_size
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = torch.randperm(self.length, generator=torch.Generator().manual_seed(self.seed * 1000 + self.epoch))
        local = self.global_batch // self.world
        for start in range(0, self.length, self.global_batch):
            chunk = order[start : start + self.global_batch]
            yield from chunk[self.rank * local : (self.rank + 1) * local].tolist()

    def __len__(self) -> int:
        local = self.global_batch // self.world
        full, rest = divmod(self.length, self.global_batch)
        return full * local + max(0, min(local, rest - self.rank * local))


def lr_factor(step: int, total: int, warmup: int, floor: float = 0.1) -> float:
    """Linear warm-up, then cosine decay to ``floor`` times the peak (nanoGPT's min_lr: a tenth)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_config_fields(entry: ModelEntry, names: Iterable[str]) -> None:
    allowed = config_fields(entry)
    unknown = sorted(set(names) - allowed)
    if unknown:
        raise ValueError(f"model {entry.name!r} takes no config field(s) {unknown}; it takes {sorted(allowed)}")


def _is_count(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _config_value_problem(kind: Any, name: str, value: Any) -> str | None:
    """What is wrong with ``value`` for a config field of type ``kind``, or None.

    Integer fields are sizes and counts (at least 1), except token ids (``*_id``, at least 0).
    """
    if kind is bool:
        return None if isinstance(value, bool) else "takes true or false"
    if kind is int:
        least = 0 if name.endswith("_id") else 1
        return None if _is_count(value, least) else f"takes a whole number of at least {least}"
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else "takes a finite number"
    if kind is str:
        return None if isinstance(value, str) else "takes a string"
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        length = None if Ellipsis in args else len(args)
        ok = (
            isinstance(value, (list, tuple))
            and len(value) >= 1
            and (length is None or len(value) == length)
            and all(_is_count(v, 1) for v in value)
        )
        size = "one or more" if length is None else str(length)
        return None if ok else f"takes a list of {size} whole numbers, each at least 1 (e.g. [32, 64])"
    return None


def check_config_values(entry: ModelEntry, overrides: dict[str, Any]) -> None:
    """A --set value of the wrong type or size is a usage error, not a crash minutes into training."""
    hints = typing.get_type_hints(entry.config_cls)
    for name, value in overrides.items():
        problem = _config_value_problem(hints.get(name), name, value)
        if problem:
            raise ValueError(f"--set {name}={json.dumps(value)}: {entry.name}'s {name} {problem}")


def build_config(entry: ModelEntry, data: TaskData, recipe: Recipe, overrides: dict[str, Any]) -> dict[str, Any]:
    config = {**data.model_config, **dict(recipe.model_overrides), **overrides}
    check_config_fields(entry, config)
    return asdict(entry.config_cls(**config))


def note_recipe_changes(
    resume_state: dict[str, Any], recipe: dict[str, Any], checkpoint: Path, step: int, lr_fraction: float, logger: RunLogger
) -> None:
    """Say on stderr and in metrics.jsonl how a resumed run's recipe differs from the checkpoint's.

    Training longer (--epochs) or with another batch size or learning rate on --resume is allowed, but
    it changes the run under way: the warm-up + cosine schedule is recomputed, so the learning rate jumps.
    Checkpoints written before the recipe was saved in them cannot be compared and are resumed silently.
    ``lr_fraction`` is the schedule's factor at ``step``: each optimiser (a GAN has two) runs at that share of its peak.
    """
    saved = resume_state.get("recipe")
    if saved is None:
        return
    # A field newer than the checkpoint is absent from it and had its default then: not a change.
    changed = {key: [saved[key], value] for key, value in recipe.items() if key in saved and saved[key] != value}
    if not changed:
        return
    listed = ", ".join(f"{key} {old} -> {new}" for key, (old, new) in changed.items())
    print(
        f"{checkpoint}: resumed with a changed recipe ({listed}); the learning-rate schedule is recomputed "
        f"for it, so from step {step} the learning rate is {lr_fraction:.0%} of its peak",
        file=sys.stderr,
    )
    logger.log({"kind": "resume", "step": step, "changed": changed})


class RunLogger:
    """metrics.jsonl + TensorBoard, written by the main process only."""

    def __init__(self, out_dir: Path, enabled: bool, resume: bool):
        self.enabled = enabled
        self.path = out_dir / "metrics.jsonl"
        self.tb = None
        if not enabled:
            return
        if not resume and self.path.exists():
            self.path.unlink()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / "tensorboard"))
        except ImportError:  # tensorboard is optional at run time; the JSONL log is the record
            self.tb = None

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("epoch", "step"):
                    self.tb.add_scalar(key, value, record.get("step", 0))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(out_dir: Path) -> list[dict[str, Any]]:
    path = Path(out_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curves(out_dir: Path, records: list[dict[str, Any]]) -> Path | None:
    """Loss and metric curves per epoch as one PNG."""
    epochs = [r for r in records if r.get("kind") == "epoch"]
    if not epochs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(
        {k for r in epochs for k, v in r.items() if isinstance(v, (int, float)) and k not in ("epoch", "step", "lr", "seconds")}
    )
    loss_keys = [k for k in keys if "loss" in k]
    other_keys = [k for k in keys if k not in loss_keys]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, group, title in ((axes[0], loss_keys, "loss"), (axes[1], other_keys, "metrics")):
        for key in group:
            xs = [r["epoch"] for r in epochs if key in r]
            ax.plot(xs, [r[key] for r in epochs if key in r], marker="o", label=key)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        if group:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(out_dir) / "curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


PRECISIONS = ("auto", "bf16", "fp32")


def resolve_precision(requested: str, device: torch.device) -> str:
    """ "bf16" or "fp32" for the training steps on ``device``.

    "auto" is bf16 on CUDA only: on a CPU, bf16 autocast's speed depends on the CPU (1.1-2.1x faster
    with AMX, measured per model; emulated without bf16 instructions) and its numerics differ from a
    fp32 run's, so a CPU run asks for it.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if requested == "bf16" and device.type not in ("cuda", "cpu"):
        raise ValueError(f"bf16 autocast runs on cuda or cpu, not on {device.type}; use --precision fp32")
    return requested


def autocast_for(device: torch.device, precision: str) -> Callable[[], Any]:
    """A context-manager factory for the forward passes of the training steps (evaluation stays fp32)."""
    if precision == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


@dataclass
class TrainConfig:
    model: str
    preset: str = "quick"
    data: str | None = None
    data_dir: Path | None = None
    out: Path = Path("models_out")
    run_name: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    max_steps: int | None = None
    device: str = "auto"
    seed: int = 0
    resume: bool = False
    # Replace a run already in the run folder; without it (or resume) the trainer refuses to train over one.
    overwrite: bool = False
    precision: str = "auto"  # see resolve_precision
    compile: bool = False
    show_progress: bool = True
    model_overrides: dict[str, Any] | None = None
    # Stop once a validation metric reaches a value, e.g. ("val_accuracy", 0.94) (time-to-target runs).
    target: tuple[str, float] | None = None
    # Keep in-memory tensor datasets on the device and gather batches there by index; False: a DataLoader.
    # On a CPU too: no copy, and no per-example indexing and collating (5-30% faster steps for the image models).
    resident_data: bool = True
    # Stop (as if interrupted) after this many epochs of this process; used to test --resume.
    stop_after_epochs: int | None = None


def checked_run_dir(out: Path, run_name: str) -> Path:
    """``out/run_name``, refused (ValueError) before any work where it could not hold a run or would leave ``out``."""
    if run_name in (".", "..") or Path(run_name).name != run_name:
        raise ValueError(f"run name {run_name!r}: must be a plain folder name (no '/', '.' or '..'), as it goes under {out}")
    blocking = file_in_the_way(out)
    if blocking is not None:
        raise ValueError(f"{blocking}: exists and is not a folder, so {out} cannot hold the runs; give another --out")
    return out / run_name


def headline_figure(summary: dict[str, Any]) -> tuple[str, Any]:
    """A summary's headline (metric name, value): the task's final-report metric, else the best validation value."""
    metric = summary.get("metric") or summary.get("primary_metric") or ""
    return metric, summary.get(metric, summary.get("best_val"))


def headline_text(summary: dict[str, Any]) -> str:
    """The headline as zoo-train says it, e.g. "test_accuracy 0.9425"; empty where the summary has no figure."""
    metric, value = headline_figure(summary)
    return f"{metric} {value:.4f}" if isinstance(value, (int, float)) else ""


def existing_run(run_dir: Path) -> str | None:
    """What a fresh run in ``run_dir`` would destroy, in words, or None where it holds no run."""
    summary_path, last_path = run_dir / "summary.json", run_dir / "checkpoints" / "last.pt"
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
        except (OSError, json.JSONDecodeError):
            return "holds a finished run"
        figure = f", {headline}" if (headline := headline_text(summary)) else ""
        epochs = summary.get("epochs_run")
        return (
            f"holds a finished {summary.get('preset')} run of {summary.get('model')} "
            f"({epochs} epoch{'' if epochs == 1 else 's'}{figure})"
        )
    if last_path.is_file():
        return f"holds an unfinished run ({last_path.relative_to(run_dir)})"
    return None  # at most a run stopped before its first epoch: nothing to lose


def train(cfg: TrainConfig) -> Path:
    """Train one registered model; returns its run directory."""
    entry = get_entry(cfg.model)
    task = get_task(entry.task)
    recipe = entry.recipe(cfg.preset).replace(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, max_steps=cfg.max_steps)
    device = pick_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    dist_info = init_distributed(device)
    run_dir = checked_run_dir(Path(cfg.out), cfg.run_name or entry.name)
    ckpt_dir = run_dir / "checkpoints"
    last_path = ckpt_dir / "last.pt"
    if cfg.resume and cfg.overwrite:
        raise ValueError("resume and overwrite exclude each other: continue the run or replace it")
    replaced = None if cfg.resume else existing_run(run_dir)
    if replaced is not None and not cfg.overwrite:
        raise ValueError(
            f"{run_dir}: {replaced}; --resume continues it, --overwrite replaces it, --run-name NAME trains beside it"
        )
    if dist_info.world_size > 1:
        dist.barrier()  # every rank has looked at the run folder before the main one replaces it

    resume_state = None
    if cfg.resume:
        if not last_path.exists():
            raise TrainingError(f"{last_path}: --resume asked, but there is no checkpoint to resume from")
        resume_state = load_checkpoint(last_path)
        if resume_state["model"] != entry.name:
            raise TrainingError(f"{last_path}: holds model {resume_state['model']!r}, not {entry.name!r}")
        # Another preset's checkpoint holds another model size and schedule: continuing it would mix the two.
        if resume_state.get("preset") != cfg.preset:
            raise TrainingError(
                f"{last_path}: a {resume_state.get('preset')!r} run; resume it with --preset {resume_state.get('preset')}, "
                f"or train --preset {cfg.preset} into another --out"
            )

    # A mistyped --set field is a usage error: say so before minutes of data loading, or a missing dataset, hide it.
    check_config_fields(entry, cfg.model_overrides or {})
    check_config_values(entry, cfg.model_overrides or {})
    torch.manual_seed(cfg.seed)
    data = task.load_data(entry, recipe, cfg.data, cfg.data_dir, cfg.seed)
    config = build_config(entry, data, recipe, dict(cfg.model_overrides or {}))
    if resume_state is not None:
        config = resume_state["config"]
    model = entry.build(**config).to(device)
    if channels_last_suits(model, device):
        model = model.to(memory_format=torch.channels_last)
    optimizers = task.make_optimizers(model, recipe, device)

    epoch0, step, best, stale = 0, 0, None, 0
    if resume_state is not None:
        model.load_state_dict(resume_state["state_dict"])
        train_state = resume_state["train_state"]
        for opt, state in zip(optimizers, train_state["optimizers"]):
            opt.load_state_dict(state)
        epoch0, step = train_state["epoch"], train_state["step"]
        best, stale = train_state["best"], train_state["stale"]
        torch.set_rng_state(train_state["rng_cpu"])

    train_model: nn.Module = model
    if dist_info.world_size > 1:
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if recipe.batch_size % dist_info.world_size:
        raise ValueError(f"batch size {recipe.batch_size} does not split evenly over {dist_info.world_size} processes")
    per_rank_batch = recipe.batch_size // dist_info.world_size
    sampler = GlobalBatchSampler(len(data.train), recipe.batch_size, dist_info.rank, dist_info.world_size, cfg.seed)
    steps_per_epoch = recipe.steps_per_epoch or math.ceil(len(data.train) / recipe.batch_size)

    eager_model = train_model
    if cfg.compile:
        train_model = compile_for_training(train_model)
    compiled_shapes: set[tuple] = set()
    total_steps = recipe.max_steps or steps_per_epoch * recipe.epochs
    autocast = autocast_for(device, precision)

    def batches(dataset: Any, batch_size: int, order: Sampler[int] | None, train: bool) -> BatchLoader:
        # Built once per run: a resident dataset is copied to the device once, not once an epoch.
        if cfg.resident_data and isinstance(dataset, TensorDataset):
            return ResidentLoader(
                dataset.tensors,
                order if order is not None else range(len(dataset)),
                batch_size,
                device,
                data.batch_transform,
                train=train,
            )
        loader = task.make_loader(
            dataset, batch_size, train=train, data=data, generator=None, sampler=order, pin_memory=device.type == "cuda"
        )
        return DeviceLoader(loader, device, data.batch_transform, train=train)

    train_loader = batches(data.train, per_rank_batch, sampler, train=True)
    val_loader = batches(data.val, recipe.batch_size, None, train=False)

    recipe_record = _jsonable(asdict(recipe))
    if replaced is not None and dist_info.is_main:
        # Whole, so that no checkpoint, TensorBoard event, plot or exported bundle of the old run survives beside the new one.
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    logger = RunLogger(run_dir, dist_info.is_main, resume=cfg.resume)
    if dist_info.is_main:
        (run_dir / "run.json").write_text(
            json.dumps(
                {
                    "model": entry.name,
                    "task": entry.task,
                    "preset": cfg.preset,
                    "recipe": recipe_record,
                    "config": config,
                    "data": data.description,
                    "device": str(device),
                    "precision": precision,
                    "seed": cfg.seed,
                    "world_size": dist_info.world_size,
                    "parameters": count_parameters(model),
                },
                indent=2,
            )
        )

    if resume_state is not None and dist_info.is_main:
        note_recipe_changes(
            resume_state,
            recipe_record,
            last_path,
            step,
            lr_factor(step, total_steps, recipe.warmup_steps, recipe.final_lr_fraction),
            logger,
        )

    def checkpoint_payload(epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            "model": entry.name,
            "task": entry.task,
            "config": config,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "meta": data.meta,
            "metrics": metrics,
            "preset": cfg.preset,
            "recipe": recipe_record,
            "train_state": {
                "epoch": epoch,
                "step": step,
                "best": best,
                "stale": stale,
                "optimizers": [opt.state_dict() for opt in optimizers],
                "rng_cpu": torch.get_rng_state(),
            },
        }

    def first_compiled_step(batch: Any, step: int) -> dict[str, torch.Tensor]:
        """A step of the compiled model at a batch shape it has not run: torch.compile compiles for it here.

        Its seconds are logged apart from the epoch's throughput: the first step compiles, and so, once, does
        the first of an epoch's short last batch. torch.compile is lazy, so most backend failures surface here
        too: the run then goes on eagerly from this same batch.
        """
        nonlocal train_model
        shape = batch_shape(batch)
        synchronize(device)
        began = time.perf_counter()
        try:
            logs = task.fit_batch(train_model, batch, optimizers, recipe, autocast)
        except Exception as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            print(f"torch.compile failed at step {step + 1} ({type(exc).__name__}: {first_line}); training eagerly")
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            train_model = eager_model
            logger.log({"kind": "compile", "step": step, "compiled": False, "reason": type(exc).__name__})
            return task.fit_batch(train_model, batch, optimizers, recipe, autocast)
        synchronize(device)
        compiled_shapes.add(shape)
        logger.log(
            {
                "kind": "compile",
                "step": step,
                "compiled": True,
                "batch_shape": [list(s) for s in shape],
                "seconds": round(time.perf_counter() - began, 3),
            }
        )
        return logs

    def settle_losses(losses: list[torch.Tensor], epoch: int) -> float:
        """The sum of the last ``len(losses)`` steps' losses, read in one device sync, and ``losses`` emptied;
        a non-finite one ends the run."""
        if not losses:
            return 0.0
        values = torch.stack([loss.float().reshape(()) for loss in losses]).cpu()
        finite = torch.isfinite(values)
        if not finite.all():
            first_bad = int((~finite).nonzero()[0])
            logger.close()
            where = f"{last_path} keeps the last good weights" if last_path.exists() else "no checkpoint was written"
            raise TrainingError(
                f"{entry.name}: loss became {values[first_bad].item()} at epoch {epoch + 1}, "
                f"step {step - len(losses) + first_bad + 1}; training stopped ({where}). Try a lower --lr."
            )
        losses.clear()
        return float(values.sum())

    started = time.perf_counter()
    epochs_this_run = 0
    metrics: dict[str, Any] = {}
    stopped_early = False
    for epoch in range(epoch0, recipe.epochs):
        if step >= total_steps:
            break
        sampler.set_epoch(epoch)
        train_model.train()
        epoch_start = time.perf_counter()
        epoch_first_step, loss_sum = step, 0.0
        pending: list[torch.Tensor] = []
        bar = _progress(
            train_loader, steps_per_epoch, f"{entry.name} {epoch + 1}/{recipe.epochs}", cfg.show_progress and dist_info.is_main
        )
        for batch_index, batch in enumerate(bar):
            if batch_index >= steps_per_epoch or step >= total_steps:
                break
            factor = lr_factor(step, total_steps, recipe.warmup_steps, recipe.final_lr_fraction)
            for opt in optimizers:
                for group in opt.param_groups:
                    group.setdefault("initial_lr", recipe.lr if len(optimizers) == 1 else group["lr"])
                    group["lr"] = group["initial_lr"] * factor
            if train_model is not eager_model and batch_shape(batch) not in compiled_shapes:
                logs = first_compiled_step(batch, step)
            else:
                logs = task.fit_batch(train_model, batch, optimizers, recipe, autocast)
            pending.append(logs["loss"])
            step += 1
            if len(pending) == LOSS_READ_EVERY:
                loss_sum += settle_losses(pending, epoch)
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{loss_sum / (step - epoch_first_step):.4f}")
        loss_sum += settle_losses(pending, epoch)
        train_model.eval()
        metrics = task.evaluate(model, val_loader, device, recipe)
        metrics.update({"train_loss": loss_sum / max(1, step - epoch_first_step)})
        score = metrics[task.primary_metric]
        improved = best is None or (score > best if task.mode == "max" else score < best)
        if improved:
            best, stale = score, 0
        else:
            stale += 1
        record = {
            "kind": "epoch",
            "epoch": epoch + 1,
            "step": step,
            "lr": optimizers[0].param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - epoch_start, 3),
            **metrics,
        }
        logger.log(record)
        if dist_info.is_main:
            task.epoch_end(model, data, run_dir, epoch + 1, device)
            payload = checkpoint_payload(epoch + 1, metrics)
            if improved:
                save_checkpoint(ckpt_dir / "best.pt", payload)
            save_checkpoint(last_path, payload)
        epochs_this_run += 1
        if recipe.early_stop_patience and stale >= recipe.early_stop_patience:
            stopped_early = True
            break
        if cfg.target and _reached(metrics[cfg.target[0]], cfg.target[1], task.mode):
            break
        if cfg.stop_after_epochs and epochs_this_run >= cfg.stop_after_epochs:
            logger.close()
            return run_dir

    train_seconds = time.perf_counter() - started
    if dist_info.is_main:
        best_path = ckpt_dir / "best.pt"
        if best_path.exists():
            model.load_state_dict(load_checkpoint(best_path)["state_dict"])
        report = task.final_report(model, data, run_dir, device, recipe)
        records = read_metrics(run_dir)
        summary = {
            "model": entry.name,
            "task": entry.task,
            "preset": cfg.preset,
            "data": data.description,
            "parameters": count_parameters(model),
            "device": str(device),
            "device_name": _device_name(device),
            "precision": precision,
            "world_size": dist_info.world_size,
            "epochs_run": epoch0 + epochs_this_run,
            "steps": step,
            "train_seconds": round(sum(r.get("seconds", 0.0) for r in records if r.get("kind") == "epoch"), 2),
            # Part of train_seconds: the steps in which torch.compile compiled.
            "compile_seconds": round(sum(r["seconds"] for r in records if r.get("kind") == "compile" and r["compiled"]), 2),
            "wall_seconds_this_run": round(train_seconds, 2),
            "stopped_early": stopped_early,
            "primary_metric": task.primary_metric,
            "best_val": best,
            "final_val": metrics,
            **report,
        }
        (run_dir / "summary.json").write_text(json.dumps(_jsonable(summary), indent=2))
        plot_curves(run_dir, records)
    logger.close()
    if dist_info.world_size > 1:
        dist.barrier()
    return run_dir


def _reached(value: float, target: float, mode: str) -> bool:
    return value >= target if mode == "max" else value <= target


def channels_last_suits(model: nn.Module, device: torch.device) -> bool:
    """Whether ``model``'s weights should be channels_last (NHWC) on ``device``.

    Convolutions run faster so on CUDA and on CPUs (oneDNN): a training step of the zoo's CNNs on this
    project's CPU was 1.0-1.6x faster in fp32 and 1.2-1.8x in bf16. A convolution given an NCHW batch
    converts it itself, once, at the first layer.
    """
    return device.type in ("cuda", "cpu") and any(isinstance(m, nn.Conv2d) for m in model.modules())


def batch_shape(batch: Any) -> tuple[tuple[int, ...], ...]:
    """The shapes of a batch's tensors: what torch.compile specialises a graph on."""
    parts = batch if isinstance(batch, (tuple, list)) else (batch,)
    return tuple(tuple(part.shape) for part in parts if isinstance(part, torch.Tensor))


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued work, so that a host clock times it (a no-op on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compile_for_training(model: nn.Module) -> nn.Module:
    """``torch.compile(model)``, or ``model`` itself (with a message) where this machine cannot compile."""
    try:
        return torch.compile(model)
    except Exception as exc:
        print(f"torch.compile unavailable ({type(exc).__name__}: {exc}); training eagerly")
        return model


def _progress(iterable: Any, total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value
