"""Start a run from other weights (zoo-train --init-from) and train only the head (--freeze backbone).

As timm does when it loads pretrained weights into a model with another classifier: every tensor whose name and
shape match is loaded, the others (a head for another number of classes) keep their fresh initialisation, and
the run says which were skipped. The source is a zoo run folder, a zoo checkpoint, a plain PyTorch state dict
(``torch.save(model.state_dict(), "weights.pth")``, as torchvision's weight files are), read with weights_only,
or ``torchvision``: torchvision's ImageNet weights of a torchvision architecture of the registry, downloaded by
torchvision's own weights API (or found in torch.hub's cache).

A source that says which classes it was trained for (a zoo checkpoint's labels) and names others than the run's
leaves the head out even where its shape fits: five other classes are not these five. An RGB stem loaded into a
grey model (or the reverse) is adapted as timm's ``adapt_input_conv`` does, and reported as adapted.

Weights expect the inputs normalised as when they were trained, as timm's pretrained configs and torchvision's
weight transforms say: the run then normalises its images with the source's per-channel mean and std (ImageNet's for
torchvision's weights, and for a plain state dict loaded into a torchvision architecture; a zoo checkpoint's own
from its manifest preprocessing) instead of its data's, and the bundle's manifest carries them to every runtime.

With a frozen backbone the features the head takes never change, so where the training images are not augmented
the trainer computes them once (``head_inputs``) and the epochs train the head alone on them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from zoo_runtime import schema
from zoo_runtime.contract import check_meta
from zoo_runtime.rundir import RunDir
from zoo_train.checkpoint import CheckpointError, read_torch_file
from zoo_train.registry import ModelEntry, list_models

FREEZE_CHOICES = ("backbone",)
TORCHVISION = "torchvision"  # --init-from torchvision: torchvision's ImageNet weights of the model's architecture
NAMED_SKIPS = 6  # skipped tensors named in the message (all are in run.json)


@dataclass
class SourceWeights:
    """The named tensors of an --init-from source, and the classes it was trained for when it says."""

    where: str
    tensors: dict[str, torch.Tensor]
    labels: list[str] | None = None
    # {"mean": [...], "std": [...]} per channel (0..1 pixels) the weights were trained on; None when unknown.
    normalisation: dict[str, list[float]] | None = None


@dataclass
class InitReport:
    """What --init-from loaded into the model and what it left as initialised."""

    source: str
    loaded: list[str]
    skipped: list[str]  # "name: why", tensors of the source that were not loaded
    fresh: list[str]  # tensors of the model the source did not provide (e.g. a new head)
    adapted: list[str]  # "name: how", loaded after a change of shape (an RGB stem for grey images)

    def record(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "loaded": len(self.loaded),
            "adapted": self.adapted,
            "skipped": self.skipped,
            "fresh": self.fresh,
        }

    def line(self) -> str:
        skipped = "; ".join(self.skipped[:NAMED_SKIPS]) + (" ..." if len(self.skipped) > NAMED_SKIPS else "")
        return (
            f"--init-from {self.source}: loaded {len(self.loaded)} tensors"
            + (f" ({len(self.adapted)} adapted: {'; '.join(self.adapted)})" if self.adapted else "")
            + f", skipped {len(self.skipped)}"
            + (f" ({skipped})" if skipped else "")
            + (f"; {len(self.fresh)} freshly initialised ({', '.join(self.fresh[:NAMED_SKIPS])})" if self.fresh else "")
        )


def torchvision_architectures() -> list[str]:
    from zoo_train.registry import get_entry

    return [name for name in list_models() if get_entry(name).torchvision_weights]


def check_init_source(source: str | Path, entry: ModelEntry) -> None:
    """Refuse ``--init-from torchvision`` for a model torchvision has no weights of, before any data is read."""
    if str(source) == TORCHVISION and entry.torchvision_weights is None:
        raise CheckpointError(
            f"--init-from torchvision: {entry.name} is not a torchvision architecture (those are: "
            f"{', '.join(torchvision_architectures())}); give a run folder, a checkpoint or a state dict file"
        )


def read_source(source: str | Path, entry: ModelEntry, progress: bool = True) -> SourceWeights:
    """The weights ``--init-from source`` names: ``torchvision`` (downloaded), a run folder or a file."""
    check_init_source(source, entry)
    if str(source) == TORCHVISION:
        return torchvision_weights(entry, progress)
    return file_weights(Path(source), torchvision_normalisation(entry) if entry.torchvision_weights else None)


def torchvision_normalisation(entry: ModelEntry) -> dict[str, list[float]]:
    """The mean and std torchvision's weights of ``entry`` take their inputs in (its weights' transforms: ImageNet's)."""
    import torchvision.models

    assert entry.torchvision_weights is not None
    transforms = torchvision.models.get_weight(entry.torchvision_weights).transforms()
    return {"mean": [float(v) for v in transforms.mean], "std": [float(v) for v in transforms.std]}


def torchvision_weights(entry: ModelEntry, progress: bool) -> SourceWeights:
    """torchvision's ImageNet weights of ``entry``: from torch.hub's cache, else downloaded (CheckpointError offline)."""
    import torchvision.models

    name = entry.torchvision_weights
    assert name is not None  # check_init_source refused the others
    weights = torchvision.models.get_weight(name)
    try:
        state = weights.get_state_dict(progress=progress, check_hash=True)
    except (OSError, RuntimeError) as exc:  # URLError (offline) is an OSError; a corrupt download a RuntimeError
        reason = str(getattr(exc, "reason", exc)).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"--init-from torchvision: cannot download {name} for {entry.name} ({reason}); on a machine without "
            f"internet give the file instead: --init-from {Path(weights.url).name} (from {weights.url})"
        ) from None
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    return SourceWeights(where=f"torchvision {name}", tensors=tensors, normalisation=torchvision_normalisation(entry))


def file_weights(source: Path, plain_normalisation: dict[str, list[float]] | None = None) -> SourceWeights:
    """The named tensors of a run folder (its best checkpoint), a zoo checkpoint or a state dict file.

    A zoo checkpoint says how its images were normalised; ``plain_normalisation`` is taken for a plain state dict.
    """
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
    meta = payload.get("meta") if isinstance(payload, dict) else None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return SourceWeights(
        where=str(source),
        tensors=tensors,
        labels=list(labels) if isinstance(labels, list) else None,
        normalisation=checkpoint_normalisation(payload) if isinstance(meta, dict) else plain_normalisation,
    )


def checkpoint_normalisation(payload: dict[str, Any]) -> dict[str, list[float]] | None:
    """An image classifier checkpoint's mean and std (its meta, as the task contract checks it), else None."""
    task, meta = payload.get("task"), payload.get("meta") or {}
    if task != schema.TASK_IMAGE_CLASSIFICATION or check_meta(task, meta):
        return None
    image = meta["preprocessing"]["image"]
    if min(image["std"]) <= 0:
        return None
    return {"mean": [float(v) for v in image["mean"]], "std": [float(v) for v in image["std"]]}


def adapt_input_channels(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """A stem's weight [O, I, kh, kw] for ``channels`` inputs, as timm's ``adapt_input_conv`` does it.

    RGB to grey sums over the colours (a grey image's response is then the RGB response to its grey copy); other
    counts repeat the channels and scale by I / channels, which keeps the response to an image of equal channels.
    """
    if weight.shape[1] == 3 and channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = math.ceil(channels / weight.shape[1])
    return weight.repeat(1, repeats, 1, 1)[:, :channels] * (weight.shape[1] / channels)


def _parameter_names(model: nn.Module, module: nn.Module) -> list[str]:
    prefix = next(name for name, m in model.named_modules() if m is module)
    return [f"{prefix}.{name}" if prefix else name for name, _ in module.named_parameters()]


def initialise_from(model: nn.Module, source: SourceWeights, model_name: str, labels: Sequence[str] | None) -> InitReport:
    """Load every tensor of ``source`` whose name and shape match ``model``'s; refuse a source that fits nothing.

    ``labels``: the run's classes (None for models without); a source trained for other classes keeps its head.
    """
    own = model.state_dict()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    stem = _parameter_names(model, convs[0])[0] if convs else None  # its weight
    other_classes = source.labels is not None and labels is not None and list(source.labels) != list(labels)
    head = set(_parameter_names(model, classifier_head(model))) if other_classes else set()
    loaded, skipped, adapted = [], [], []
    weights = dict(source.tensors)
    for name, tensor in source.tensors.items():
        mine = own.get(name)
        if mine is None:
            skipped.append(f"{name}: not in {model_name}")
        elif name == stem and tensor.dim() == 4 and tensor.shape[0] == mine.shape[0] and tensor.shape[2:] == mine.shape[2:]:
            if tensor.shape[1] != mine.shape[1]:
                weights[name] = adapt_input_channels(tensor, mine.shape[1])
                how = "summed over RGB" if mine.shape[1] == 1 and tensor.shape[1] == 3 else "repeated and scaled"
                adapted.append(f"{name}: {tensor.shape[1]} -> {mine.shape[1]} input channels, {how}")
            loaded.append(name)
        elif tuple(mine.shape) != tuple(tensor.shape):
            skipped.append(f"{name}: shape {list(tensor.shape)}, {model_name} has {list(mine.shape)}")
        elif other_classes and name in head:
            assert source.labels is not None
            skipped.append(f"{name}: the head of other classes ({', '.join(source.labels[:NAMED_SKIPS])})")
        else:
            loaded.append(name)
    if not loaded:
        raise CheckpointError(f"{source.where}: none of its {len(source.tensors)} tensors fits {model_name} by name and shape")
    model.load_state_dict({name: weights[name] for name in loaded}, strict=False)
    fresh = [name for name in own if name not in loaded]
    return InitReport(source=source.where, loaded=loaded, skipped=skipped, fresh=fresh, adapted=adapted)


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


def backbone_to_eval(model: nn.Module) -> None:
    """A frozen backbone computes a fixed function: its normalisation statistics and its dropout are those of eval mode.

    Otherwise its features would drift (batch statistics) or vary (dropout) under the head, and could not be cached.
    """
    head = classifier_head(model)
    in_head = {id(m) for m in head.modules()}
    for module in model.modules():
        if id(module) not in in_head:
            module.training = False


@torch.no_grad()
def head_inputs(model: nn.Module, batches: Any, autocast: Callable[[], Any]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(what the head takes [N, D], labels [N]) for every ``(inputs, labels)`` batch, by one pass of the model.

    None when the model's output is not its head's output (something follows the head), so caching cannot stand in.
    """
    head = classifier_head(model)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    hook = head.register_forward_hook(lambda _m, args, out: seen.append((args[0], out)))
    features, labels = [], []
    was_training = model.training
    model.eval()
    try:
        for inputs, targets in batches:
            seen.clear()
            with autocast():
                out = model(inputs)
            if len(seen) != 1 or seen[0][1] is not out:
                return None
            features.append(seen[0][0].float())
            labels.append(targets)
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(features), torch.cat(labels)
