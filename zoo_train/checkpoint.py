"""Training checkpoints: plain dicts of tensors and builtins, written atomically, read with weights_only.

A checkpoint rebuilds its own model (registry name + constructor config), so the
exporter and ``--resume`` need no outside knowledge.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from zoo_train.files import atomic_write_bytes

FORMAT = "model-zoo-checkpoint"
VERSION = 1


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    payload = {"format": FORMAT, "version": VERSION, **payload}
    atomic_write_bytes(path, lambda f: torch.save(payload, f))


def read_torch_file(path: str | os.PathLike[str], what: str = "checkpoint") -> Any:
    """What a torch.save file holds, read with weights_only (tensors and plain data only); CheckpointError if not."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {what} file")
    if not zipfile.is_zipfile(path):
        # torch.save always writes a zip archive; anything else is damaged or not ours.
        raise CheckpointError(f"{path}: not a readable {what} (truncated or corrupt: not a torch zip archive)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: refused, the file holds objects other than tensors and plain data ({first})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable {what} (truncated or corrupt: {first})") from None


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and validate a zoo checkpoint; never unpickles arbitrary objects."""
    path = Path(path)
    payload = read_torch_file(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a Model Zoo checkpoint (no '{FORMAT}' header)")
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {payload['version']} is newer than this zoo supports ({VERSION}); upgrade model-zoo"
        )
    for key in ("model", "task", "config", "state_dict", "meta"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint lacks the '{key}' field")
    return payload


def build_from_checkpoint(payload: dict[str, Any], path: str | os.PathLike[str] = "<checkpoint>") -> torch.nn.Module:
    """Rebuild the registered model a checkpoint was trained as, weights loaded, in eval mode."""
    from zoo_train.model_config import check_checkpoint_config
    from zoo_train.registry import get_entry

    try:
        entry = get_entry(payload["model"])
        # Negative or absurd sizes are refused from the shapes alone, before the builder allocates them.
        check_checkpoint_config(entry, payload["config"], payload["state_dict"])
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    model = entry.build(**payload["config"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit model {payload['model']!r}: {str(exc).splitlines()[0]}") from None
    return model.eval()
