"""What the trainer needs from a task. Each task kind implements this once, in its own module."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from zoo_runtime.contract import kind_module
from zoo_train.data.errors import DataError  # noqa: F401  (re-exported: tasks raise it)
from zoo_train.registry import ModelEntry, Recipe


@dataclass
class TaskData:
    """Datasets plus what the model and the bundle must know about them."""

    train: Dataset
    val: Dataset
    test: Dataset | None
    model_config: dict[str, Any]  # data-dependent constructor arguments (in_channels, num_classes, vocab_size, ...)
    # labels / vocabulary / preprocessing: saved in checkpoints and bundles. Each load_data builds it as its task
    # kind's TypedDict in zoo_runtime.contract (checked there by check_meta); read here by key.
    meta: Mapping[str, Any]
    description: str = ""
    collate_fn: Callable | None = None
    # Applied on the training device to every batch before the task sees it: ``f(batch, train)``.
    # Image tasks use it for batch augmentation and normalisation, so it runs on the GPU when there is one.
    batch_transform: Callable[[Any, bool], Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def dataset_size(dataset: Dataset) -> int:
    """len() of a dataset: torch's Dataset type declares no __len__, though every dataset of the zoo has one."""
    return len(cast(Sized, dataset))


def move_to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    return batch


@torch.no_grad()
def predict_classes(model: nn.Module, loader: BatchLoader) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(true labels, predicted labels, mean cross-entropy) of a classifier over ``(inputs, labels)`` batches."""
    model.eval()
    preds, targets, losses = [], [], []
    for inputs, labels in loader:
        logits = model(inputs).float()
        # Kept on the device until the end: one sync per pass, not one per batch.
        losses.append(F.cross_entropy(logits, labels, reduction="sum"))
        preds.append(logits.argmax(1))
        targets.append(labels)
    y_true, y_pred = torch.cat(targets).cpu(), torch.cat(preds).cpu()
    return y_true, y_pred, torch.stack(losses).sum().item() / max(1, len(y_true))


def average_gradients(module: nn.Module) -> None:
    """Average ``module``'s gradients over the ranks of a torchrun job (a no-op in one process).

    DDP does this itself only for a backward that follows a forward through its wrapper; a task
    that steps parts of the model on their own (a GAN's two players) calls this after each backward.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


class DeviceLoader:
    """Wraps a DataLoader: batches arrive on ``device`` with ``TaskData.batch_transform`` applied."""

    def __init__(self, loader: DataLoader, device: torch.device, transform: Callable[[Any, bool], Any] | None, train: bool):
        self.loader, self.device, self.transform, self.train = loader, device, transform, train

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            batch = move_to(batch, self.device)
            yield self.transform(batch, self.train) if self.transform is not None else batch


class ResidentLoader:
    """The whole (small) dataset lives on ``device``; batches are gathered there by index.

    Replaces the DataLoader for in-memory tensor datasets on a GPU: no worker processes,
    no host-to-device copy per batch. Yields exactly the batches DeviceLoader would.
    """

    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        sampler: Any,
        batch_size: int,
        device: torch.device,
        transform: Callable[[Any, bool], Any] | None,
        train: bool,
    ):
        self.tensors = [t.to(device) for t in tensors]
        self.sampler, self.batch_size, self.device = sampler, batch_size, device
        self.transform, self.train = transform, train

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self):
        # A DataLoader draws its workers' base seed from the global RNG each epoch; draw it too so
        # augmentation and dropout see the same random stream on both paths.
        torch.empty((), dtype=torch.int64).random_()
        order = torch.tensor(list(self.sampler), dtype=torch.long, device=self.device)
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            batch = tuple(t[index] for t in self.tensors)
            yield self.transform(batch, self.train) if self.transform is not None else batch


# What the trainer hands a task's evaluate: batches already on the device and transformed, from either loader.
BatchLoader = DeviceLoader | ResidentLoader


class Task:
    """Base class: a single-loss supervised task. Subclasses override what differs."""

    name: str = ""
    primary_metric: str = "val_loss"
    mode: str = "min"  # "min" or "max": which way the primary metric improves
    # Batches are (inputs, labels) and the loss is that of the model's output: with a frozen backbone and no
    # augmentation, the trainer may train the head alone on features computed once (zoo_train.transfer.head_inputs).
    caches_frozen_features: bool = False
    # Whether bf16 autocast speeds this task's models up on a CPU that computes bf16 natively (the CNNs: measured
    # in benchmarks/RESULTS.md); recurrent and attention models stay fp32 there unless --precision bf16 asks.
    cpu_bf16_pays: bool = False

    def load_data(self, entry: ModelEntry, recipe: Recipe, data: str | None, data_dir: Path | None, seed: int) -> TaskData:
        raise NotImplementedError

    def nominal_model_config(self, dataset: str) -> dict[str, Any]:
        """Data-dependent constructor arguments for a named dataset without loading it (for listings)."""
        return {}

    def runs_read(self, data_options: Mapping[str, Any]) -> tuple[str, ...]:
        """Registry names of the runs beside this one (in the same ``--out``) that training reads when it ends;
        ``zoo-train --all --jobs`` starts a model only once these have finished."""
        return ()

    def make_loader(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        train: bool,
        data: TaskData,
        generator: torch.Generator | None,
        sampler: Any = None,
        pin_memory: bool = False,
    ) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            generator=generator,
            collate_fn=data.collate_fn,
            drop_last=False,
            pin_memory=pin_memory,
        )

    def make_optimizers(self, model: nn.Module, recipe: Recipe, device: torch.device) -> list[torch.optim.Optimizer]:
        decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
        groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        fused = device.type == "cuda"
        if recipe.optimizer == "sgd":
            return [torch.optim.SGD(groups, lr=recipe.lr, momentum=0.9, nesterov=True, fused=fused)]
        return [torch.optim.AdamW(groups, lr=recipe.lr, betas=recipe.betas or (0.9, 0.999), fused=fused)]

    def loss(self, model: nn.Module, batch: Any, recipe: Recipe) -> torch.Tensor:
        raise NotImplementedError

    def fit_batch(
        self, model: nn.Module, batch: Any, optimizers: Sequence[torch.optim.Optimizer], recipe: Recipe, autocast: Any
    ) -> dict[str, torch.Tensor]:
        """One optimisation step; returns detached scalars to log (``loss`` is checked for NaN)."""
        (optimizer,) = optimizers
        with autocast():
            loss = self.loss(model, batch, recipe)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if recipe.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        return {"loss": loss.detach()}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: BatchLoader, device: torch.device, recipe: Recipe) -> dict[str, float]:
        """Validation metrics; ``loader`` yields batches already on ``device`` and transformed."""
        raise NotImplementedError

    def epoch_end(self, model: nn.Module, data: TaskData, out_dir: Path, epoch: int, device: torch.device) -> None:
        """After each epoch's evaluation, on the writing rank: per-epoch artefacts (e.g. a sample grid)."""

    def final_report(
        self, model: nn.Module, data: TaskData, out_dir: Path, device: torch.device, recipe: Recipe
    ) -> dict[str, Any]:
        """After training: test metrics, baselines and sample artifacts written beside the checkpoint."""
        return {}

    def reference_call(
        self, model: nn.Module, manifest: Mapping[str, Any], request: Mapping[str, Any]
    ) -> Callable[[], dict[str, Any]]:
        """Torch's counterpart of the runtime's ``predict(request)`` on the bundle ``manifest`` exported from
        ``model`` (in eval mode), ready to call: benchmarks/runtime.py times it beside onnxruntime. The inputs
        are converted once, here; a generator's result holds ``pieces``, the number of tokens it made."""
        raise NotImplementedError


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The trainer's task of kind ``name``: ``zoo_train/tasks/<kind>.py``, imported (and so registered) on first use."""
    kind_module("zoo_train.tasks", name)  # ValueError for a kind the contract or this package lacks
    try:
        return _TASKS[name]
    except KeyError:
        raise ValueError(f"zoo_train/tasks/{name.replace('-', '_')}.py registers no task {name!r}") from None
