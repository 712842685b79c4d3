"""Checkpoints of untrained registry models with realistic meta, for tests and benchmarks.

``write_checkpoint(name, path)`` builds a registry entry (its ``tiny_config`` by default) with
plausible data-dependent arguments per task kind, and saves it with ``save_checkpoint`` in the
trainer's layout (model, task, config, state_dict, meta, metrics, preset, train_state) and the
meta of docs/BUNDLE.md (labels, preprocessing, vocab). Export, runtime and GUI tests use it
through the ``tiny_checkpoint``/``tiny_bundle`` fixtures; nothing here trains.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

# Data-dependent constructor arguments, per task kind (only those a model's config has are used).
TASK_DATA: dict[str, dict[str, Any]] = {
    "image-classification": {"in_channels": 1, "num_classes": 10, "image_size": 28},
    "image-generation": {"channels": 1, "image_size": 28},
    "text-generation": {"vocab_size": 30, "input_size": 30, "output_size": 30},
    "sequence-classification": {"vocab_size": 8, "num_classes": 4},
    # 14 positions: a greedy decoding of 8 sources then covers 8 x 13 = 104 tokens.
    "seq2seq": {"vocab_size": 13, "max_len": 14, "pad_id": 0},
}
# Where the dataset, not the task, fixes them.
DATASET_DATA: dict[str, dict[str, Any]] = {
    "kmer-examples": {"vocab_size": 4},  # DNA: A, C, G, T
}
CHARS = "\n !',.:;?" + string.ascii_letters + string.digits
SEQ_LABELS = ["XX", "XY", "YX", "YY"]


def data_args(entry: Any) -> dict[str, Any]:
    from zoo_train.registry import config_fields

    fields = config_fields(entry)
    args = {**TASK_DATA.get(entry.task, {}), **DATASET_DATA.get(entry.default_dataset, {})}
    return {k: v for k, v in args.items() if k in fields}


def _vocab_size(config: Mapping[str, Any]) -> int:
    for key in ("vocab_size", "output_size", "input_size"):
        if isinstance(config.get(key), int):
            return int(config[key])
    raise ValueError(f"config {dict(config)} names no vocabulary size")


def meta_for(task: str, config: Mapping[str, Any], dataset: str) -> dict[str, Any]:
    """The meta the trainer would have written for data of these sizes."""
    if task == "image-classification":
        c, size, k = config["in_channels"], config["image_size"], config["num_classes"]
        return {
            "dataset": dataset,
            "labels": [f"class-{i}" for i in range(k)],
            "preprocessing": {
                "image": {
                    "channels": c,
                    "height": size,
                    "width": size,
                    "color": "L" if c == 1 else "RGB",
                    "mean": [0.286] * c,
                    "std": [0.353] * c,
                    "input_range": [0, 1],
                    "normalisation": "in-graph",
                }
            },
        }
    if task == "image-generation":
        c, size = config["channels"], config["image_size"]
        return {
            "dataset": dataset,
            "labels": None,
            "preprocessing": {
                "image": {
                    "channels": c,
                    "height": size,
                    "width": size,
                    "color": "L" if c == 1 else "RGB",
                    "output_range": [0, 1],
                },
                "latent": {"dim": config["latent_dim"], "distribution": "normal"},
            },
        }
    if task == "text-generation":
        v = _vocab_size(config)
        if v == 4:
            vocab = {"kind": "char", "tokens": ["A", "C", "G", "T"], "unknown": "skip"}
        else:
            vocab = {"kind": "char", "tokens": list(CHARS[:v]), "unknown": "error"}
        vocab["specials"] = {"pad": None, "bos": None, "eos": None}
        return {
            "dataset": dataset,
            "vocab": vocab,
            "sampling": {"temperature": 0.8, "top_k": 10, "top_p": 0.95, "max_new_tokens": 200},
        }
    if task == "sequence-classification":
        k = config["num_classes"]
        labels = SEQ_LABELS[:k] if k <= len(SEQ_LABELS) else [f"class-{i}" for i in range(k)]
        return {
            "dataset": dataset,
            "labels": labels,
            "vocab": {"kind": "ids", "size": _vocab_size(config), "specials": {"pad": None, "bos": None, "eos": None}},
        }
    if task == "seq2seq":
        return {
            "dataset": dataset,
            "vocab": {
                "kind": "ids",
                "size": _vocab_size(config),
                "specials": {"pad": config.get("pad_id", 0), "bos": 1, "eos": 2},
            },
        }
    raise ValueError(f"no synthetic meta for task {task!r}")


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
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) * 0.5 + 0.75)
