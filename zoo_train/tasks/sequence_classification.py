"""Sequence classification on the generated temporal-order task; LSTM vs GRU side by side.

Train, validation and test sets are generated from the run's seed (three independent
streams), so every run sees the same data. After each run the table
``<out>/sequence-classification.md`` is rewritten from every sequence-classification run
found beside this one: test accuracy, parameters and seconds per epoch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from zoo_runtime import schema
from zoo_runtime.contract import SequenceClassificationMeta
from zoo_runtime.rundir import SAMPLES_TEXT_FILE, SUMMARY_FILE, RunDir
from zoo_train.data.errors import DataError
from zoo_train.data.synthetic import ORDER_LABELS, TemporalOrderSpec, ids_vocab, temporal_order
from zoo_train.registry import ModelEntry, Recipe
from zoo_train.tasks.base import BatchLoader, DeviceLoader, Task, TaskData, predict_classes, register_task

DATASET = "temporal-order"
SIZES = {"train": 20000, "val": 2000, "test": 2000}
ORDER_BLIND_CEILING = 0.75  # XY and YX hold the same symbols: an order-blind model must guess between them
COMPARISON_FILE = "sequence-classification.md"


class SequenceClassification(Task):
    name = schema.TASK_SEQUENCE_CLASSIFICATION
    primary_metric = "val_accuracy"
    mode = "max"

    def nominal_model_config(self, dataset: str) -> dict[str, Any]:
        spec = TemporalOrderSpec()
        return {"vocab_size": spec.vocab_size, "num_classes": spec.num_classes} if dataset == DATASET else {}

    def load_data(self, entry: ModelEntry, recipe: Recipe, data: str | None, data_dir: Path | None, seed: int) -> TaskData:
        name = data or entry.default_dataset
        if name != DATASET:
            raise DataError(f"unknown sequence-classification dataset {name!r}; known: {DATASET} (generated)")
        options = recipe.data_options
        spec = TemporalOrderSpec(length=int(options.get("length", 60)), num_distractors=int(options.get("num_distractors", 6)))
        counts = {
            "train": min(int(options.get("train_size", SIZES["train"])), recipe.limit_train or SIZES["train"]),
            "val": min(SIZES["val"], recipe.limit_eval or SIZES["val"]),
            "test": min(SIZES["test"], recipe.limit_eval or SIZES["test"]),
        }
        sets = {split: TensorDataset(*temporal_order(spec, n, seed=[seed, i])) for i, (split, n) in enumerate(counts.items())}
        d = spec.num_distractors
        meta: SequenceClassificationMeta = {
            "labels": list(ORDER_LABELS),
            "vocab": ids_vocab(spec.vocab_size),
            "generator": {
                "name": DATASET,
                "length": spec.length,
                "num_distractors": d,
                "signals": {"X": d, "Y": d + 1},
                "seed": seed,
            },
        }
        return TaskData(
            train=sets["train"],
            val=sets["val"],
            test=sets["test"],
            model_config={"vocab_size": spec.vocab_size, "num_classes": spec.num_classes},
            meta=meta,
            description=(
                f"{DATASET} (generated, seed {seed}): length {spec.length}, {d} distractor symbols, classes "
                f"{'/'.join(ORDER_LABELS)}; train {counts['train']} / val {counts['val']} / test {counts['test']}"
            ),
        )

    def loss(self, model: nn.Module, batch: Any, recipe: Recipe) -> torch.Tensor:
        tokens, labels = batch
        return F.cross_entropy(model(tokens).float(), labels, label_smoothing=recipe.label_smoothing)

    def evaluate(self, model: nn.Module, loader: BatchLoader, device: torch.device, recipe: Recipe) -> dict[str, float]:
        true, pred, loss = predict_classes(model, loader)
        return {"val_loss": loss, "val_accuracy": float((pred == true).float().mean())}

    def final_report(
        self, model: nn.Module, data: TaskData, out_dir: Path, device: torch.device, recipe: Recipe
    ) -> dict[str, Any]:
        assert data.test is not None
        loader = DeviceLoader(self.make_loader(data.test, 256, train=False, data=data, generator=None), device, None, train=False)
        true, pred, loss = predict_classes(model, loader)
        accuracy = float((pred == true).float().mean())
        write_examples(data, pred, RunDir(out_dir).samples_text)
        epochs = [r for r in _read_jsonl(RunDir(out_dir).metrics) if r.get("kind") == "epoch"]
        report = {
            "test_loss": loss,
            "test_accuracy": accuracy,
            "chance_accuracy": 1 / len(ORDER_LABELS),
            "order_blind_ceiling": ORDER_BLIND_CEILING,
            "seconds_per_epoch": sum(r["seconds"] for r in epochs) / max(1, len(epochs)),
            "metric": "test_accuracy",
            "baseline_metric": "order_blind_ceiling",
            "split": "generated test set",
            "samples": SAMPLES_TEXT_FILE,
        }
        row = {"parameters": sum(p.numel() for p in model.parameters()), **report}
        (out_dir.parent / COMPARISON_FILE).write_text(comparison_table(out_dir.parent, current=(out_dir.name, row)))
        return report


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def comparison_table(runs_dir: Path, current: tuple[str, dict[str, Any]] | None = None) -> str:
    """Markdown: every sequence-classification run under ``runs_dir`` (its summary.json), plus ``current``."""
    rows: dict[str, dict[str, Any]] = {}
    for summary_path in sorted(Path(runs_dir).glob(f"*/{SUMMARY_FILE}")):
        summary = json.loads(summary_path.read_text())
        if summary.get("task") == SequenceClassification.name:
            rows[summary_path.parent.name] = summary
    if current is not None:
        rows[current[0]] = current[1]
    lines = [
        "# Sequence classification: temporal order (generated)",
        "",
        f"Chance is 25%; any order-blind model is capped at {ORDER_BLIND_CEILING:.0%} (XY vs YX).",
        "",
        "| run | test accuracy | parameters | seconds / epoch |",
        "|---|---:|---:|---:|",
    ]
    for run, r in sorted(rows.items()):
        lines.append(f"| {run} | {r['test_accuracy']:.4f} | {r['parameters']:,} | {r['seconds_per_epoch']:.1f} |")
    return "\n".join(lines) + "\n"


def write_examples(data: TaskData, pred: torch.Tensor, path: Path, count: int = 12) -> None:
    """A few test sequences with the signal positions marked, true and predicted class."""
    tokens, labels = data.test.tensors  # type: ignore[union-attr]
    signals = data.meta["generator"]["signals"]
    names = {v: k for k, v in signals.items()}
    lines = ["# test examples: distractors as '.', signals as X / Y; true -> predicted\n"]
    for i in range(min(count, len(labels))):
        seq = "".join(names.get(int(t), ".") for t in tokens[i])
        true, guess = ORDER_LABELS[int(labels[i])], ORDER_LABELS[int(pred[i])]
        lines.append(f"{seq}  {true} -> {guess}{'' if true == guess else '  (wrong)'}\n")
    path.write_text("".join(lines))


register_task(SequenceClassification())
