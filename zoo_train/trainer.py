"""One trainer for every task: device, AMP, clipping, warm-up + cosine LR, early stopping, logs, checkpoints.

The loop is deliberately plain (nanoGPT-style): ``train`` runs the steps of a ``Run`` in order. Task-specific
work (loss, metrics, samples) is delegated to the task object; the trainer never asks which task it runs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import platform
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import Sampler, TensorDataset

from zoo_runtime.rundir import RunDir
from zoo_train.checkpoint import load_checkpoint, save_checkpoint
from zoo_train.model_config import check_config_fields, check_config_values, check_trainable, count_parameters
from zoo_train.registry import ModelEntry, Recipe, get_entry
from zoo_train.run_folder import checked_run_dir, run_to_replace
from zoo_train.tasks.base import BatchLoader, DeviceLoader, ResidentLoader, Task, TaskData, dataset_size, get_task
from zoo_train.transfer import (
    InitReport,
    backbone_to_eval,
    check_init_source,
    classifier_head,
    freeze_backbone,
    head_inputs,
    initialise_from,
    read_source,
)

# Reading a loss on the host waits for the GPU to finish its step, so that it then idles while Python queues the
# next one: for the zoo's small models that queueing is a large part of a step. Losses wait on the device and are
# read, and checked for NaN, this many steps at a time and at every epoch's end (before any checkpoint).
LOSS_READ_EVERY = 50


class TrainingError(Exception):
    """Training cannot go on (NaN loss, a resume that does not match); the message says why."""


class ResumeError(TrainingError):
    """``--resume`` cannot be done as asked (no checkpoint, another model's or preset's): a usage error."""


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


def launched_by_torchrun() -> bool:
    """Whether this process is one of several that torchrun started (WORLD_SIZE above 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun, else run alone."""
    if not launched_by_torchrun():
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

    def __init__(self, run: RunDir, enabled: bool, resume: bool):
        self.enabled = enabled
        self.path = run.metrics
        self.tb = None
        if not enabled:
            return
        if not resume and self.path.exists():
            self.path.unlink()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run.tensorboard))
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
    path = RunDir(Path(out_dir)).metrics
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
    path = RunDir(Path(out_dir)).curves
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


PRECISIONS = ("auto", "bf16", "fp32")
# torch.compile's modes: "reduce-overhead" replays the steps as CUDA graphs (ResNetCIFAR's speedrun on an H200: 13.7 s
# against 18.8 s eager, benchmarks/RESULTS.md); "max-autotune" also searches kernels, at a longer compile.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


@functools.cache
def cpu_computes_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AMX or AVX512-BF16); without them oneDNN emulates bf16, slower than fp32.

    Read from the kernel's CPU flags: torch's own check (mkldnn bf16 support) also says yes for plain AVX512.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no way to tell, so no assumption
        return False
    return re.search(r"\b(amx_bf16|avx512_bf16)\b", flags) is not None


def requested_compile_mode(compile_flag: bool, mode: str | None) -> str | None:
    """--compile and --compile-mode as one setting (TrainConfig.compile): the mode asked for, "default" for a bare
    --compile, None for eager."""
    return mode or ("default" if compile_flag else None)


def cpu_bf16_pays(entry: ModelEntry, task: Task) -> bool:
    """Whether "auto" takes bf16 for ``entry`` on a CPU that computes it: its task's answer (the CNNs: yes), unless
    its registry entry says otherwise (mobilenet-v3-small trained 2.4x slower in bf16)."""
    return task.cpu_bf16_pays if entry.cpu_bf16_pays is None else entry.cpu_bf16_pays


def resolve_precision(requested: str, device: torch.device, cpu_bf16_pays: bool = False) -> str:
    """ "bf16" or "fp32" for the training steps on ``device``.

    "auto" is bf16 on CUDA, and on a CPU only for a task whose models it speeds up there (``cpu_bf16_pays``:
    the CNNs) and only when the CPU computes bf16 natively: the recurrent models ran 4.6x slower in bf16 on
    an AMX CPU, and every model runs slower with emulated bf16.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested == "auto":
        if device.type == "cuda" or (device.type == "cpu" and cpu_bf16_pays and cpu_computes_bf16()):
            return "bf16"
        return "fp32"
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
    compile: str | None = None  # torch.compile's mode, one of COMPILE_MODES; None: eager
    show_progress: bool = True
    model_overrides: dict[str, Any] | None = None
    # Stop once a validation metric reaches a value, e.g. ("val_accuracy", 0.94) (time-to-target runs).
    target: tuple[str, float] | None = None
    # Keep in-memory tensor datasets on the device and gather batches there by index; False: a DataLoader.
    # On a CPU too: no copy, and no per-example indexing and collating (5-30% faster steps for the image models).
    resident_data: bool = True
    # Added to the recipe's data_options: inputs a task takes from outside the run, e.g. the GAN's
    # {"fid_classifier": "simple-cnn"} (zoo-train --fid-classifier; see zoo_train.tasks.image_generation).
    data_options: dict[str, Any] | None = None
    # Start from these weights (a run folder, a checkpoint, a state dict, or "torchvision"; see zoo_train.transfer),
    # and what to freeze.
    init_from: Path | str | None = None
    freeze: str | None = None  # "backbone": only the classifier head trains
    augment: bool | None = None  # False: no augmentation of the training images, whatever the recipe says
    # With a frozen backbone and no augmentation, compute the head's inputs once and train the head alone on them
    # (the task must allow it: Task.caches_frozen_features). False: the backbone runs every step (tests, benchmarks).
    cache_features: bool = True


class Run:
    """One training run, in the order ``train`` calls its steps.

    ``Run(cfg)`` settles what is trained where and refuses a bad run folder or resume before any work;
    ``prepare`` loads the data and builds the model (``restore`` puts a resumed checkpoint back into it);
    ``train_epochs`` runs ``run_epoch`` then ``end_epoch`` (checkpoints) per epoch; ``finish`` writes the summary.
    """

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.entry = get_entry(cfg.model)
        self.task = get_task(self.entry.task)
        recipe = self.entry.recipe(cfg.preset)
        self.recipe = recipe.replace(
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            max_steps=cfg.max_steps,
            augment=cfg.augment,
            data_options={**recipe.data_options, **cfg.data_options} if cfg.data_options else None,
        )
        self.device = pick_device(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device, cpu_bf16_pays(self.entry, self.task))
        self.dist = init_distributed(self.device)
        self.folder = checked_run_dir(Path(cfg.out), cfg.run_name or self.entry.name)
        self.replaces_a_run = run_to_replace(self.folder, cfg.resume, cfg.overwrite)
        if self.dist.world_size > 1:
            dist.barrier()  # every rank has looked at the run folder before the main one replaces it
        self.resumed = self.resume_checkpoint() if cfg.resume else None
        if self.resumed is not None:
            # Inputs normalised as the --init-from weights wanted stay so for the rest of the run.
            saved = (self.resumed.get("recipe") or {}).get("data_options") or {}
            if "normalisation" in saved:
                self.use_normalisation(saved["normalisation"])
        # A mistyped --set field is a usage error: say so before minutes of data loading, or a missing dataset, hide it.
        check_config_fields(self.entry, cfg.model_overrides or {})
        check_config_values(self.entry, cfg.model_overrides or {})
        if cfg.init_from is not None:
            check_init_source(cfg.init_from, self.entry)
        # Where training stands: epochs and optimiser steps done, the best validation score and epochs since it.
        self.first_epoch, self.step, self.stale = 0, 0, 0
        self.best: float | None = None
        self.metrics: dict[str, Any] = {}  # the last validation's
        self.epochs_this_run, self.stopped_early, self.wall_seconds = 0, False, 0.0

    def resume_checkpoint(self) -> dict[str, Any]:
        """The run's last checkpoint, refused (ResumeError) when missing or of another model or preset."""
        last = self.folder.last_checkpoint
        if not last.exists():
            raise ResumeError(f"{last}: --resume asked, but there is no checkpoint to resume from")
        state = load_checkpoint(last)
        if state["model"] != self.entry.name:
            raise ResumeError(f"{last}: holds model {state['model']!r}, not {self.entry.name!r}")
        # Another preset's checkpoint holds another model size and schedule: continuing it would mix the two.
        if state.get("preset") != self.cfg.preset:
            raise ResumeError(
                f"{last}: a {state.get('preset')!r} run; resume it with --preset {state.get('preset')}, "
                f"or train --preset {self.cfg.preset} into another --out"
            )
        return state

    def prepare(self) -> None:
        """Data, model and optimisers (restored on --resume), the training schedule, then the run folder."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        source = None
        if cfg.init_from is not None and self.resumed is None:
            source = read_source(cfg.init_from, self.entry, progress=cfg.show_progress)
            if source.normalisation is not None:
                self.use_normalisation(source.normalisation)
        recipe = self.recipe
        self.data = self.task.load_data(self.entry, recipe, cfg.data, cfg.data_dir, cfg.seed)
        config = build_config(self.entry, self.data, recipe, dict(cfg.model_overrides or {}))
        self.config = self.resumed["config"] if self.resumed is not None else config
        check_trainable(self.entry, self.config, self.device, self.size_flags())  # before a weight is allocated
        self.model = self.entry.build(**self.config).to(self.device)
        if channels_last_suits(self.model, self.device):
            self.model = self.model.to(memory_format=torch.channels_last)
        self.init_report: InitReport | None = None
        if source is not None:
            self.init_report = initialise_from(self.model, source, self.entry.name, self.data.meta.get("labels"))
            if self.dist.is_main:
                print(self.init_report.line(), file=sys.stderr)
        if cfg.freeze == "backbone":
            freeze_backbone(self.model)
        self.optimizers = self.task.make_optimizers(self.model, recipe, self.device)
        if self.resumed is not None:
            self.restore(self.resumed)
        self.prepare_steps()
        self.open_folder()

    def use_normalisation(self, normalisation: dict[str, list[float]]) -> None:
        """Pretrained weights' input mean and std, for a task whose inputs are normalised (data_options["normalisation"])."""
        self.recipe = self.recipe.replace(data_options={**self.recipe.data_options, "normalisation": normalisation})

    def size_flags(self) -> str:
        """The flags that chose the model's size, for a message that refuses it."""
        overrides = self.cfg.model_overrides or {}
        if self.resumed is not None:
            return f"--resume {self.folder.last_checkpoint}"
        if overrides:
            return "--set " + " --set ".join(f"{key}={json.dumps(value)}" for key, value in overrides.items())
        return f"--preset {self.cfg.preset}"

    def restore(self, state: dict[str, Any]) -> None:
        """A checkpoint's weights, optimiser states, place in training and CPU random state."""
        self.model.load_state_dict(state["state_dict"])
        train_state = state["train_state"]
        for opt, saved in zip(self.optimizers, train_state["optimizers"], strict=True):
            opt.load_state_dict(saved)
        self.first_epoch, self.step = train_state["epoch"], train_state["step"]
        self.best, self.stale = train_state["best"], train_state["stale"]
        torch.set_rng_state(train_state["rng_cpu"])

    def prepare_steps(self) -> None:
        """The model as the steps run it (DDP, torch.compile), the batch order and the loaders."""
        recipe, world = self.recipe, self.dist.world_size
        self.train_model: nn.Module = self.model
        if world > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        if recipe.batch_size % world:
            raise ValueError(f"batch size {recipe.batch_size} does not split evenly over {world} processes")
        self.sampler = GlobalBatchSampler(dataset_size(self.data.train), recipe.batch_size, self.dist.rank, world, self.cfg.seed)
        self.steps_per_epoch = recipe.steps_per_epoch or math.ceil(dataset_size(self.data.train) / recipe.batch_size)
        self.total_steps = recipe.max_steps or self.steps_per_epoch * recipe.epochs
        # Kept to fall back to when torch.compile fails at a step; compiled_shapes: the batch shapes compiled for.
        self.eager_model = self.train_model
        self.compiled_shapes: set[tuple[tuple[int, ...], ...]] = set()
        if self.cfg.compile:
            self.train_model = compile_for_training(self.train_model, self.cfg.compile)
        self.autocast = autocast_for(self.device, self.precision)
        self.train_loader = self.loader(self.data.train, recipe.batch_size // world, self.sampler, train=True)
        self.val_loader = self.loader(self.data.val, recipe.batch_size, None, train=False)
        # What evaluation runs: the model, or its head alone where the features are cached.
        self.eval_model: nn.Module = self.model
        self.features_cached = self.cache_head_inputs()

    def cache_head_inputs(self) -> bool:
        """With a frozen backbone and no augmentation: compute the head's inputs for the training and validation
        images once and make the head the model the steps train and evaluation runs. Returns whether it did."""
        cfg, recipe = self.cfg, self.recipe
        if cfg.freeze != "backbone" or not self.task.caches_frozen_features or not cfg.cache_features:
            return False
        if recipe.augment:
            if self.dist.is_main:
                print(
                    "--freeze backbone with augmentation: the backbone runs on every batch of every epoch; "
                    "--no-augment computes its features once",
                    file=sys.stderr,
                )
            return False
        if self.dist.world_size > 1 or cfg.compile:
            return False
        backbone_to_eval(self.model)
        ordered = self.loader(self.data.train, recipe.batch_size, None, train=True)
        train = head_inputs(self.model, ordered, self.autocast)
        val = head_inputs(self.model, self.val_loader, contextlib.nullcontext)
        if train is None or val is None:
            return False
        head = classifier_head(self.model)
        self.train_model = self.eager_model = self.eval_model = head
        self.train_loader = ResidentLoader(train, self.sampler, recipe.batch_size, self.device, None, train=True)
        self.val_loader = ResidentLoader(val, range(len(val[1])), recipe.batch_size, self.device, None, train=False)
        if self.dist.is_main:
            print(
                f"--freeze backbone without augmentation: features of {len(train[1])} training and {len(val[1])} "
                "validation images computed once; the epochs train the head alone on them",
                file=sys.stderr,
            )
        return True

    def loader(self, dataset: Any, batch_size: int, order: Sampler[int] | None, train: bool) -> BatchLoader:
        """Batches on the device. Built once per run: a resident dataset is copied to the device once, not once an epoch."""
        if self.cfg.resident_data and isinstance(dataset, TensorDataset):
            indices = order if order is not None else range(len(dataset))
            return ResidentLoader(dataset.tensors, indices, batch_size, self.device, self.data.batch_transform, train=train)
        loader = self.task.make_loader(
            dataset, batch_size, train=train, data=self.data, generator=None, sampler=order, pin_memory=self.device.type == "cuda"
        )
        return DeviceLoader(loader, self.device, self.data.batch_transform, train=train)

    def open_folder(self) -> None:
        """The run folder (a replaced run deleted first), its logger and run.json; a resume says what changed."""
        self.recipe_record = _jsonable(asdict(self.recipe))
        if self.replaces_a_run and self.dist.is_main:
            # Whole, so that no checkpoint, TensorBoard event, plot or exported bundle of the old run survives beside the new one.
            shutil.rmtree(self.folder.path)
        self.folder.path.mkdir(parents=True, exist_ok=True)
        self.logger = RunLogger(self.folder, self.dist.is_main, resume=self.cfg.resume)
        if not self.dist.is_main:
            return
        self.folder.run_record.write_text(json.dumps(self.run_record(), indent=2))
        if self.resumed is not None:
            factor = lr_factor(self.step, self.total_steps, self.recipe.warmup_steps, self.recipe.final_lr_fraction)
            note_recipe_changes(self.resumed, self.recipe_record, self.folder.last_checkpoint, self.step, factor, self.logger)

    def run_record(self) -> dict[str, Any]:
        """run.json: what is trained, on what, how; written before the first step."""
        return {
            "model": self.entry.name,
            "task": self.entry.task,
            "preset": self.cfg.preset,
            "recipe": self.recipe_record,
            "config": self.config,
            "data": self.data.description,
            "device": str(self.device),
            "precision": self.precision,
            "compile": self.cfg.compile,  # torch.compile's mode; None: eager
            "seed": self.cfg.seed,
            "world_size": self.dist.world_size,
            "parameters": count_parameters(self.model),
            "trained_parameters": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
            "init_from": self.init_report.record() if self.init_report is not None else None,
            "freeze": self.cfg.freeze,
            "features_cached": self.features_cached,
        }

    def train_epochs(self) -> None:
        """Epochs until the recipe's end, its step budget, early stopping or the --target."""
        started = time.perf_counter()
        for epoch in range(self.first_epoch, self.recipe.epochs):
            if self.step >= self.total_steps:
                break
            improved = self.run_epoch(epoch)
            self.end_epoch(epoch, improved)
            if self.recipe.early_stop_patience and self.stale >= self.recipe.early_stop_patience:
                self.stopped_early = True
                break
            if self.cfg.target and _reached(self.metrics[self.cfg.target[0]], self.cfg.target[1], self.task.mode):
                break
        self.wall_seconds = time.perf_counter() - started

    def run_epoch(self, epoch: int) -> bool:
        """One epoch's steps and validation, logged; returns whether the validation score is the best yet."""
        began = time.perf_counter()
        train_loss = self.fit_epoch(epoch)
        self.train_model.eval()
        self.metrics = {
            **self.task.evaluate(self.eval_model, self.val_loader, self.device, self.recipe),
            "train_loss": train_loss,
        }
        score = self.metrics[self.task.primary_metric]
        improved = self.best is None or (score > self.best if self.task.mode == "max" else score < self.best)
        if improved:
            self.best, self.stale = score, 0
        else:
            self.stale += 1
        self.logger.log(
            {
                "kind": "epoch",
                "epoch": epoch + 1,
                "step": self.step,
                "lr": self.optimizers[0].param_groups[0]["lr"],
                "seconds": round(time.perf_counter() - began, 3),
                **self.metrics,
            }
        )
        return improved

    def end_epoch(self, epoch: int, improved: bool) -> None:
        """The task's per-epoch output and the checkpoints (last.pt, and best.pt when ``improved``), by the main process."""
        if self.dist.is_main:
            self.task.epoch_end(self.model, self.data, self.folder.path, epoch + 1, self.device)
            payload = self.checkpoint(epoch + 1)
            if improved:
                save_checkpoint(self.folder.best_checkpoint, payload)
            save_checkpoint(self.folder.last_checkpoint, payload)
        self.epochs_this_run += 1

    def fit_epoch(self, epoch: int) -> float:
        """The optimiser steps of one epoch; returns their mean loss."""
        self.sampler.set_epoch(epoch)
        self.train_model.train()
        if self.cfg.freeze == "backbone":
            backbone_to_eval(self.model)
        first_step, loss_sum = self.step, 0.0
        pending: list[torch.Tensor] = []
        show = self.cfg.show_progress and self.dist.is_main
        bar = _progress(self.train_loader, self.steps_per_epoch, f"{self.entry.name} {epoch + 1}/{self.recipe.epochs}", show)
        for batch_index, batch in enumerate(bar):
            if batch_index >= self.steps_per_epoch or self.step >= self.total_steps:
                break
            self.set_learning_rate()
            pending.append(self.fit_batch(batch)["loss"])
            self.step += 1
            if len(pending) == LOSS_READ_EVERY:
                loss_sum += self.settle_losses(pending, epoch)
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{loss_sum / (self.step - first_step):.4f}")
        loss_sum += self.settle_losses(pending, epoch)
        return loss_sum / max(1, self.step - first_step)

    def set_learning_rate(self) -> None:
        """Every optimiser's groups at the schedule's share of their peak (a GAN's two optimisers keep their own peaks)."""
        factor = lr_factor(self.step, self.total_steps, self.recipe.warmup_steps, self.recipe.final_lr_fraction)
        for opt in self.optimizers:
            for group in opt.param_groups:
                group.setdefault("initial_lr", self.recipe.lr if len(self.optimizers) == 1 else group["lr"])
                group["lr"] = group["initial_lr"] * factor

    def fit_batch(self, batch: Any) -> dict[str, torch.Tensor]:
        if self.train_model is not self.eager_model and batch_shape(batch) not in self.compiled_shapes:
            return self.first_compiled_step(batch)
        return self.task.fit_batch(self.train_model, batch, self.optimizers, self.recipe, self.autocast)

    def first_compiled_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """A step of the compiled model at a batch shape it has not run: torch.compile compiles for it here.

        Its seconds are logged apart from the epoch's throughput: the first step compiles, and so, once, does
        the first of an epoch's short last batch. torch.compile is lazy, so most backend failures surface here
        too: the run then goes on eagerly from this same batch.
        """
        shape = batch_shape(batch)
        synchronize(self.device)
        began = time.perf_counter()
        try:
            logs = self.task.fit_batch(self.train_model, batch, self.optimizers, self.recipe, self.autocast)
        except Exception as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            print(f"torch.compile failed at step {self.step + 1} ({type(exc).__name__}: {first_line}); training eagerly")
            for opt in self.optimizers:
                opt.zero_grad(set_to_none=True)
            self.train_model = self.eager_model
            self.logger.log({"kind": "compile", "step": self.step, "compiled": False, "reason": type(exc).__name__})
            return self.task.fit_batch(self.train_model, batch, self.optimizers, self.recipe, self.autocast)
        synchronize(self.device)
        self.compiled_shapes.add(shape)
        seconds = round(time.perf_counter() - began, 3)
        self.logger.log(
            {"kind": "compile", "step": self.step, "compiled": True, "batch_shape": [list(s) for s in shape], "seconds": seconds}
        )
        return logs

    def settle_losses(self, losses: list[torch.Tensor], epoch: int) -> float:
        """The sum of the last ``len(losses)`` steps' losses, read in one device sync, and ``losses`` emptied;
        a non-finite one ends the run."""
        if not losses:
            return 0.0
        values = torch.stack([loss.float().reshape(()) for loss in losses]).cpu()
        finite = torch.isfinite(values)
        if not finite.all():
            first_bad = int((~finite).nonzero()[0])
            last = self.folder.last_checkpoint
            where = f"{last} keeps the last good weights" if last.exists() else "no checkpoint was written"
            raise TrainingError(
                f"{self.entry.name}: loss became {values[first_bad].item()} at epoch {epoch + 1}, "
                f"step {self.step - len(losses) + first_bad + 1}; training stopped ({where}). Try a lower --lr."
            )
        losses.clear()
        return float(values.sum())

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        """The checkpoint after ``epoch`` epochs: the model (with what rebuilds it) and all that resuming needs."""
        return {
            "model": self.entry.name,
            "task": self.entry.task,
            "config": self.config,
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "meta": self.data.meta,
            "metrics": self.metrics,
            "preset": self.cfg.preset,
            "recipe": self.recipe_record,
            "train_state": {
                "epoch": epoch,
                "step": self.step,
                "best": self.best,
                "stale": self.stale,
                "optimizers": [opt.state_dict() for opt in self.optimizers],
                "rng_cpu": torch.get_rng_state(),
            },
        }

    def finish(self) -> None:
        """The task's final report on the best weights, summary.json and the curves (main process); then all ranks meet."""
        if self.dist.is_main:
            if self.folder.best_checkpoint.exists():
                self.model.load_state_dict(load_checkpoint(self.folder.best_checkpoint)["state_dict"])
            report = self.task.final_report(self.model, self.data, self.folder.path, self.device, self.recipe)
            records = read_metrics(self.folder.path)
            self.folder.summary.write_text(json.dumps(_jsonable(self.summary(records, report)), indent=2))
            plot_curves(self.folder.path, records)
        if self.dist.world_size > 1:
            dist.barrier()

    def summary(self, records: list[dict[str, Any]], report: dict[str, Any]) -> dict[str, Any]:
        """summary.json: the run as a whole (time from the metrics log, so a resumed run counts every epoch once)."""
        epochs = [r for r in records if r.get("kind") == "epoch"]
        compiles = [r for r in records if r.get("kind") == "compile" and r["compiled"]]
        return {
            "model": self.entry.name,
            "task": self.entry.task,
            "preset": self.cfg.preset,
            "data": self.data.description,
            "parameters": count_parameters(self.model),
            "init_from": self.init_report.source if self.init_report is not None else None,
            "freeze": self.cfg.freeze,
            "device": str(self.device),
            "device_name": _device_name(self.device),
            "precision": self.precision,
            "world_size": self.dist.world_size,
            "epochs_run": self.first_epoch + self.epochs_this_run,
            "steps": self.step,
            "train_seconds": round(sum(r.get("seconds", 0.0) for r in epochs), 2),
            # Part of train_seconds: the steps in which torch.compile compiled.
            "compile_seconds": round(sum(r["seconds"] for r in compiles), 2),
            "wall_seconds_this_run": round(self.wall_seconds, 2),
            "stopped_early": self.stopped_early,
            "primary_metric": self.task.primary_metric,
            "best_val": self.best,
            "final_val": self.metrics,
            **report,
        }


def train(cfg: TrainConfig) -> Path:
    """Train one registered model; returns its run directory."""
    run = Run(cfg)
    run.prepare()
    try:
        run.train_epochs()
        run.finish()
    finally:
        run.logger.close()
    return run.folder.path


def _reached(value: float, target: float, mode: str) -> bool:
    return value >= target if mode == "max" else value <= target


def channels_last_suits(model: nn.Module, device: torch.device) -> bool:
    """Whether ``model``'s weights should be channels_last (NHWC) on ``device``.

    Convolutions run faster so on CUDA and on CPUs (oneDNN): a training step of the zoo's CNNs on this
    project's CPU was 1.0-1.6x faster in fp32 and 1.2-1.8x in bf16. A convolution given an NCHW batch
    converts it itself, once, at the first layer.

    Not on a CPU for a model with a strided 1x1 convolution of fewer than 8 input channels (tiny widths): its
    channels_last backward pass hung on an AVX2-only AMD EPYC (torch 2.14.1, oneDNN 3.12; 2-4 input channels hung,
    8 and more did not), and at such widths channels_last gains nothing.
    """
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if device.type == "cpu" and any(c.kernel_size == (1, 1) and c.stride != (1, 1) and c.in_channels < 8 for c in convs):
        return False
    return device.type in ("cuda", "cpu") and bool(convs)


def batch_shape(batch: Any) -> tuple[tuple[int, ...], ...]:
    """The shapes of a batch's tensors: what torch.compile specialises a graph on."""
    parts = batch if isinstance(batch, (tuple, list)) else (batch,)
    return tuple(tuple(part.shape) for part in parts if isinstance(part, torch.Tensor))


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued work, so that a host clock times it (a no-op on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compile_for_training(model: nn.Module, mode: str = "default") -> nn.Module:
    """``torch.compile(model, mode=mode)``, or ``model`` itself (with a message) where this machine cannot compile."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    try:
        return cast(nn.Module, torch.compile(model, mode=None if mode == "default" else mode))
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
