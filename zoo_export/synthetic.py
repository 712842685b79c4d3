"""Checkpoints of untrained registry models with realistic meta, for tests and benchmarks.

``write_checkpoint(name, path)`` builds a registry entry (its ``tiny_config`` by default) with
plausible data-dependent arguments per task kind, and saves it with ``save_checkpoint`` in the
trainer's layout (model, task, config, state_dict, meta, metrics, preset, train_state). Sizes and
meta come from the task contract (``zoo_runtime.contract``: ``example_sizes``, ``example_meta``).
Export, runtime and GUI tests use it through the ``tiny_checkpoint``/``tiny_bundle`` fixtures; nothing here trains.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from zoo_runtime.contract import TaskMeta, task_kind

# Where the dataset, not the task kind (``TaskKind.example_sizes``), fixes data-dependent arguments.
DATASET_DATA: dict[str, dict[str, Any]] = {
    "kmer-examples": {"vocab_size": 4},  # DNA: A, C, G, T
}


def data_args(entry: Any) -> dict[str, Any]:
    """Data-dependent constructor arguments of a small model of ``entry`` (only those its config has)."""
    from zoo_train.registry import config_fields

    fields = config_fields(entry)
    args = {**task_kind(entry.task).example_sizes, **DATASET_DATA.get(entry.default_dataset, {})}
    return {k: v for k, v in args.items() if k in fields}


def meta_for(task: str, config: Mapping[str, Any], dataset: str) -> TaskMeta:
    """The meta the trainer would have written for data of these sizes."""
    return task_kind(task).example_meta(config, dataset)


def write_checkpoint(
    name: str,
    path: Path,
    config: Mapping[str, Any] | None = None,
    seed: int = 0,
    preset: str = "smoke",
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Build registry entry ``name`` (``config`` overrides its tiny_config) and save an untrained checkpoint
    (with ``meta`` in place of the task's generated-data meta when given)."""
    from zoo_train.checkpoint import save_checkpoint
    from zoo_train.registry import get_entry

    entry = get_entry(name)
    full = {**data_args(entry), **dict(entry.tiny_config if config is None else config)}
    full = dataclasses.asdict(entry.config_cls(**full))
    torch.manual_seed(seed)
    model = entry.build(**full).eval()
    _settle_batchnorm(model)
    payload = {
        "model": name,
        "task": entry.task,
        "config": full,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta) if meta is not None else meta_for(entry.task, full, entry.default_dataset),
        "metrics": {"val_loss": 1.0},
        "preset": preset,
        "train_state": {"epoch": 1, "step": 1, "best": 1.0, "stale": 0, "optimizers": [], "rng_cpu": torch.get_rng_state()},
    }
    save_checkpoint(Path(path), payload)
    return Path(path)


@torch.no_grad()
def _settle_batchnorm(model: torch.nn.Module) -> None:
    """Give BatchNorm layers non-trivial running statistics, as training would."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None and m.running_var is not None:
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) * 0.5 + 0.75)
