"""The model registry: the one list of models that the CLI, exporter, tests and docs read.

Modelled on torchvision's ``_api``: a decorator puts a builder under a name, a
duplicate name is an error, ``list_models`` is sorted, ``get_model`` builds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

PRESETS = ("smoke", "quick", "full")  # every model has these three recipes
# A model may add these. speedrun: a short fixed schedule that reaches the model's target in as little training as
# the zoo knows how (airbench's idea), for the time-to-target benchmark; full stays the quality recipe.
OPTIONAL_PRESETS = ("speedrun",)
# All of them, least to most thorough: where a model has runs of several, reports show the most thorough.
BY_THOROUGHNESS = ("smoke", "quick", "speedrun", "full")


@dataclass(frozen=True)
class Recipe:
    """How to train a model for one preset. Fields left None take the trainer's default."""

    epochs: int = 1
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adamw"  # adamw | sgd
    # Adam(W)'s (beta1, beta2); None: the task's default (torch's (0.9, 0.999); the GAN's (0.5, 0.999)).
    # A short run gains from a shorter second-moment memory (beta2 0.99), as nanoGPT's character recipe uses.
    betas: tuple[float, float] | None = None
    warmup_steps: int = 0
    # Where the cosine decay ends, as a fraction of lr; short schedules gain from annealing to 0.
    final_lr_fraction: float = 0.1
    grad_clip: float | None = 1.0
    max_steps: int | None = None  # stop after this many optimiser steps (language models)
    steps_per_epoch: int | None = None  # sample this many batches per epoch (streamed data)
    eval_batches: int | None = None  # cap on validation batches (None: the whole split)
    early_stop_patience: int | None = None
    label_smoothing: float = 0.0
    augment: bool = True
    random_erasing: float = 0.0  # probability per training image, on top of the dataset's augmentation
    limit_train: int | None = None  # use only the first N training examples (quick presets)
    limit_eval: int | None = None
    model_overrides: Mapping[str, Any] = field(default_factory=dict)
    data_options: Mapping[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class QualityTarget:
    """One figure the ``full`` recipe must reach on held-out data; docs/QUALITY.md checks it.

    ``metric`` is a key of the run's summary.json. The bound is ``at_least`` / ``at_most`` a number,
    less than ``fraction`` times another summary key (``below``: a baseline such as the Markov model's
    bits per character), or more than another key (``above``: a baseline's accuracy).
    """

    metric: str
    at_least: float | None = None
    at_most: float | None = None
    below: str | None = None
    fraction: float = 1.0
    above: str | None = None

    def describe(self) -> str:
        if self.at_least is not None:
            return f"{self.metric} >= {self.at_least:g}"
        if self.at_most is not None:
            return f"{self.metric} <= {self.at_most:g}"
        if self.above is not None:
            return f"{self.metric} > {self.above}"
        scale = "" if self.fraction == 1.0 else f"{self.fraction:g} x "
        return f"{self.metric} < {scale}{self.below}"

    def met(self, summary: Mapping[str, Any]) -> bool | None:
        """True or False; None when the summary lacks a figure the check needs."""
        value = summary.get(self.metric)
        if not isinstance(value, (int, float)):
            return None
        if self.at_least is not None:
            return value >= self.at_least
        if self.at_most is not None:
            return value <= self.at_most
        reference = summary.get(self.above or self.below or "")
        if not isinstance(reference, (int, float)):
            return None
        return value > reference if self.above is not None else value < self.fraction * reference


@dataclass(frozen=True)
class ModelEntry:
    """Everything the zoo knows about one registered model."""

    name: str
    task: str
    builder: Callable[..., nn.Module]
    config_cls: type
    default_dataset: str
    recipes: Mapping[str, Recipe]
    description: str = ""
    # Small constructor overrides that keep tests and export checks fast.
    tiny_config: Mapping[str, Any] = field(default_factory=dict)
    # What the full recipe must reach (the zoo's published quality bar), all of them.
    targets: tuple[QualityTarget, ...] = ()
    # What the quick recipe must reach in `make demo` (minutes on 2 CPU cores), all of them.
    demo_targets: tuple[QualityTarget, ...] = ()
    # torchvision's name of the ImageNet weights of a torchvision architecture (e.g. "ResNet18_Weights.IMAGENET1K_V1"),
    # which `zoo-train --init-from torchvision` loads; None for the zoo's own architectures.
    torchvision_weights: str | None = None
    # Whether bf16 autocast speeds this model up on a CPU that computes bf16 natively, where it differs from what
    # its task says (Task.cpu_bf16_pays); None: as its task says.
    cpu_bf16_pays: bool | None = None

    def recipe(self, preset: str) -> Recipe:
        if preset not in self.recipes:
            raise ValueError(f"model {self.name!r} has no recipe {preset!r}; it has {sorted(self.recipes)}")
        return self.recipes[preset]

    def targets_for(self, preset: str) -> tuple[QualityTarget, ...]:
        """The quality bar a run of ``preset`` is judged by: the demo's for quick, the full recipe's otherwise."""
        return self.demo_targets if preset == "quick" else self.targets

    def build(self, **config: Any) -> nn.Module:
        return self.builder(**config)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    task: str,
    config_cls: type,
    default_dataset: str,
    recipes: Mapping[str, Recipe],
    description: str = "",
    tiny_config: Mapping[str, Any] | None = None,
    targets: tuple[QualityTarget, ...] = (),
    demo_targets: tuple[QualityTarget, ...] = (),
    torchvision_weights: str | None = None,
    cpu_bf16_pays: bool | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder ``f(**config) -> nn.Module`` under ``name``."""
    missing = [p for p in PRESETS if p not in recipes]
    if missing:
        raise ValueError(f"model {name!r} lacks recipes for presets {missing}")
    unknown = sorted(set(recipes) - set(PRESETS) - set(OPTIONAL_PRESETS))
    if unknown:
        raise ValueError(f"model {name!r}: unknown presets {unknown}; presets are {PRESETS + OPTIONAL_PRESETS}")

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"an entry is already registered under the name {name!r}")
        _REGISTRY[name] = ModelEntry(
            name=name,
            task=task,
            builder=builder,
            config_cls=config_cls,
            default_dataset=default_dataset,
            recipes=dict(recipes),
            description=description or (builder.__doc__ or "").strip().split("\n")[0],
            tiny_config=dict(tiny_config or {}),
            targets=tuple(targets),
            demo_targets=tuple(demo_targets),
            torchvision_weights=torchvision_weights,
            cpu_bf16_pays=cpu_bf16_pays,
        )
        return builder

    return wrap


def _load_families() -> None:
    # Importing the package registers every model family.
    import zoo_train.models  # noqa: F401


def list_models(task: str | None = None) -> list[str]:
    _load_families()
    return sorted(n for n, e in _REGISTRY.items() if task is None or e.task == task)


def get_entry(name: str) -> ModelEntry:
    _load_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}") from None


def get_model(name: str, **config: Any) -> nn.Module:
    return get_entry(name).build(**config)


def config_fields(entry: ModelEntry) -> set[str]:
    return {f.name for f in dataclasses.fields(entry.config_cls)}
