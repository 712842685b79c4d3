"""The layout of one training run's folder, shared by training, export, the report and the app.

A run folder (``models_out/<run>/``) is written by ``zoo_train`` and read by ``zoo_export``,
``zoo_train.report`` and ``zoo_gui``; this module is the one place that spells its file names.
Standard library only, so that the torch-free packages can use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_runtime import schema

RUN_RECORD_FILE = "run.json"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"
TENSORBOARD_DIR = "tensorboard"
SAMPLES_TEXT_FILE = "samples.txt"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"


@dataclass(frozen=True)
class RunDir:
    """One run's folder and the paths of what a run writes into it."""

    path: Path

    @classmethod
    def of_checkpoint(cls, checkpoint: str | Path) -> RunDir:
        """The run a checkpoint belongs to (``<run>/checkpoints/x.pt``), or the folder holding a loose one."""
        checkpoint = Path(checkpoint)
        if checkpoint.parent.name == CHECKPOINT_DIR:
            return cls(checkpoint.parent.parent)
        return cls(checkpoint.parent)

    @classmethod
    def of_bundle(cls, bundle: str | Path) -> RunDir | None:
        """The run a bundle was exported into (``<run>/export``), or None for a bundle elsewhere."""
        bundle = Path(bundle)
        return cls(bundle.parent) if bundle.name == schema.EXPORT_DIR else None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def run_record(self) -> Path:
        """What was trained, on what and how; written when training starts."""
        return self.path / RUN_RECORD_FILE

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def metrics(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def curves(self) -> Path:
        return self.path / CURVES_FILE

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD_DIR

    @property
    def samples_text(self) -> Path:
        return self.path / SAMPLES_TEXT_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / LAST_CHECKPOINT

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / BEST_CHECKPOINT

    @property
    def export(self) -> Path:
        return self.path / schema.EXPORT_DIR

    @property
    def manifest(self) -> Path:
        return self.export / schema.MANIFEST_FILE

    def read_summary(self) -> dict[str, Any] | None:
        """The run's summary.json, or None when it is missing or unreadable (a run not finished)."""
        try:
            data = json.loads(self.summary.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        return data if isinstance(data, dict) else None
