"""Start a run from other weights (zoo-train --init-from) and train only the head (--freeze backbone).

As timm does when it loads pretrained weights into a model with another classifier: every tensor whose name and
shape match is loaded, the others (a head for another number of classes) keep their fresh initialisation, and
the run says which were skipped. The source is a zoo run folder, a zoo checkpoint, or a plain PyTorch state dict
(``torch.save(model.state_dict(), "weights.pth")``, as torchvision's weight files are), read with weights_only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from zoo_runtime.rundir import RunDir
from zoo_train.checkpoint import CheckpointError, read_torch_file

FREEZE_CHOICES = ("backbone",)
NAMED_SKIPS = 6  # skipped tensors named in the message (all are in run.json)


@dataclass
class InitReport:
    """What --init-from loaded into the model and what it left as initialised."""

    source: str
    loaded: list[str]
    skipped: list[str]  # "name: why", tensors of the source that were not loaded
    fresh: list[str]  # tensors of the model the source did not provide (e.g. a new head)

    def record(self) -> dict[str, Any]:
        return {"source": self.source, "loaded": len(self.loaded), "skipped": self.skipped, "fresh": self.fresh}

    def line(self) -> str:
        skipped = "; ".join(self.skipped[:NAMED_SKIPS]) + (" ..." if len(self.skipped) > NAMED_SKIPS else "")
        return (
            f"--init-from {self.source}: loaded {len(self.loaded)} tensors, skipped {len(self.skipped)}"
            + (f" ({skipped})" if skipped else "")
            + (f"; {len(self.fresh)} freshly initialised ({', '.join(self.fresh[:NAMED_SKIPS])})" if self.fresh else "")
        )


def source_weights(source: Path) -> dict[str, torch.Tensor]:
    """The named tensors of a run folder (its best checkpoint), a zoo checkpoint or a state dict file."""
    path = RunDir(source).best_checkpoint if source.is_dir() else source
    if source.is_dir() and not path.is_file():
        raise CheckpointError(f"{source}: a folder without {path.relative_to(source)}; --init-from takes a run folder or a file")
    payload = read_torch_file(path, what="checkpoint or state dict")
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)} if isinstance(state, dict) else {}
    if not tensors:
        raise CheckpointError(f"{path}: holds no named tensors; --init-from takes a zoo checkpoint or a PyTorch state dict")
    # Saved from a DistributedDataParallel or torch.compile wrapper: the same tensors under a prefix.
    for prefix in ("module.", "_orig_mod."):
        if all(name.startswith(prefix) for name in tensors):
            tensors = {name[len(prefix) :]: t for name, t in tensors.items()}
    return tensors


def initialise_from(model: nn.Module, source: Path, model_name: str) -> InitReport:
    """Load every tensor of ``source`` whose name and shape match ``model``'s; refuse a source that fits nothing."""
    own = model.state_dict()
    weights = source_weights(source)
    loaded, skipped = [], []
    for name, tensor in weights.items():
        if name not in own:
            skipped.append(f"{name}: not in {model_name}")
        elif tuple(own[name].shape) != tuple(tensor.shape):
            skipped.append(f"{name}: shape {list(tensor.shape)}, {model_name} has {list(own[name].shape)}")
        else:
            loaded.append(name)
    if not loaded:
        raise CheckpointError(f"{source}: none of its {len(weights)} tensors fits {model_name} by name and shape")
    model.load_state_dict({name: weights[name] for name in loaded}, strict=False)
    fresh = [name for name in own if name not in loaded]
    return InitReport(source=str(source), loaded=loaded, skipped=skipped, fresh=fresh)


def classifier_head(model: nn.Module) -> nn.Module:
    """The model's last Linear layer: the zoo's image classifiers all end in one (timm's get_classifier)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"--freeze backbone: {type(model).__name__} has no Linear layer to train as its head")
    return linears[-1]


def freeze_backbone(model: nn.Module) -> int:
    """Every parameter but the head's stops learning; returns how many parameters still train."""
    head = classifier_head(model)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    return sum(p.numel() for p in head.parameters())
