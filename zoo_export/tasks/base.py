"""What the exporter needs from a task kind. Each task kind implements this once, in its own module.

A task exporter says which graphs a bundle of its kind has (wrappers, declared shapes,
parity inputs), what the manifest carries besides them (labels, vocabulary, preprocessing,
generation), and which extra checks prove it (whole greedy generations). Nothing outside
``zoo_export/tasks/`` asks which task it handles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from zoo_export.graphs import GraphSpec
from zoo_export.parity import Tolerances
from zoo_runtime.contract import check_meta, kind_module


class ExportInputError(Exception):
    """A checkpoint that cannot be exported as given (exit 2); the message names the file and the problem."""


@dataclass
class BundleContext:
    """What a task exporter is given: the rebuilt model, the checkpoint payload and where it came from."""

    model: nn.Module
    payload: dict[str, Any]
    checkpoint: Path

    @property
    def meta(self) -> dict[str, Any]:
        return self.payload.get("meta") or {}

    @property
    def name(self) -> str:
        return self.payload["model"]


class TaskExporter:
    task: str = ""

    def validate(self, ctx: BundleContext) -> None:
        """Raise ExportInputError when the checkpoint lacks what this task's bundle needs.

        Here: its meta, by the task contract (``zoo_runtime.contract``); task exporters add their model's checks.
        """
        problems = check_meta(self.task, ctx.meta)
        if problems:
            raise ExportInputError(f"{ctx.checkpoint}: checkpoint {'; '.join(problems)}")

    def graphs(self, ctx: BundleContext) -> list[GraphSpec]:
        raise NotImplementedError

    def manifest_fields(self, ctx: BundleContext) -> dict[str, Any]:
        """labels, vocab, preprocessing, generation, sampling (each may be None)."""
        return {"labels": None, "vocab": None, "preprocessing": {}, "generation": None, "sampling": None}

    def generation_checks(
        self, ctx: BundleContext, graphs: dict[str, GraphSpec], files: dict[str, Path], tol: Tolerances
    ) -> list[dict[str, Any]]:
        """Whole-generation checks over the exported ONNX files (generators); [] for others."""
        return []

    # int8 quantization: only classifiers with training data say yes.
    supports_int8: bool = False

    def calibration_and_test(self, ctx: BundleContext, data_dir: Path | None, calibration: int, test: int) -> Any:
        raise ExportInputError(f"{ctx.checkpoint}: int8 quantization is not available for {self.task} models")


def generator_seed(name: str, salt: int = 0) -> torch.Generator:
    """Deterministic parity inputs per model (so a report is reproducible)."""
    return torch.Generator().manual_seed((sum(ord(c) for c in name) * 7919 + salt) % (2**31))


_EXPORTERS: dict[str, TaskExporter] = {}


def register_exporter(exporter: TaskExporter) -> TaskExporter:
    if exporter.task in _EXPORTERS:
        raise ValueError(f"an exporter for task {exporter.task!r} is already registered")
    _EXPORTERS[exporter.task] = exporter
    return exporter


def get_exporter(task: str) -> TaskExporter:
    """The exporter of ``task``: ``zoo_export/tasks/<kind>.py``, imported (and so registered) on first use."""
    kind_module("zoo_export.tasks", task)  # ValueError for a kind the contract or this package lacks
    try:
        return _EXPORTERS[task]
    except KeyError:
        raise ValueError(f"zoo_export/tasks/{task.replace('-', '_')}.py registers no exporter for task {task!r}") from None
