"""What the tasks and the exporter use of a model of each task kind (docs/BUNDLE.md, model-side protocols).

The models are plain ``nn.Module`` classes; these protocols name the attributes a task relies on, so
that code given an ``nn.Module`` (perhaps compiled or wrapped) says which interface it expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, cast

import torch
import torch.nn as nn


class StepModel(Protocol):
    """A text-generation model: one step with explicit state, the state's layout, the context it knows."""

    max_context: int | None
    step_tokens: int | str
    state_names: Sequence[tuple[str, str]]
    state_grow_axes: Sequence[int | None]

    def step(self, tokens: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]: ...

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> Sequence[torch.Tensor]: ...

    def parameters(self) -> object: ...


class EncoderDecoder(Protocol):
    """A seq2seq model (zoo_train.models.seq2seq.Seq2SeqTransformer)."""

    def encode(self, src: torch.Tensor) -> torch.Tensor: ...

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, src: torch.Tensor) -> torch.Tensor: ...


class GAN(Protocol):
    """A GAN (zoo_train.models.dcgan.DCGAN): its two networks, the latent size, latents -> images in [0, 1]."""

    latent_dim: int
    generator: nn.Module
    discriminator: nn.Module

    def generate(self, z: torch.Tensor) -> torch.Tensor: ...


class InspectableModel(Protocol):
    """A model that names what it computes inside, for the bundle's ``inspect`` graph (docs/BUNDLE.md).

    ``inspect_stages(x)`` takes the model's input and returns, in order, each stage a person would
    name. Image classifiers (given normalised images): ``conv1``, ``block2``, ... ([N, C, H, W]
    activations) and last ``features``, the pooled vector [N, D] the head classifies (what
    ``features(x)`` returns). Char GPT (given token ids): ``attention`` [layers, N, heads, T, T].
    """

    def inspect_stages(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]: ...


def conv_activation_stages(
    body: nn.Sequential, fc: nn.Module, x: torch.Tensor, activation: type[nn.Module] | tuple[type[nn.Module], ...]
) -> list[tuple[str, torch.Tensor]]:
    """``conv1``, ``conv2``, ...: each activation's output in ``body`` (before its pooling), then ``features``.

    ``features`` is ``fc(body(x))``, what the models' ``features(x)`` returns.
    """
    stages: list[tuple[str, torch.Tensor]] = []
    for layer in body:
        x = layer(x)
        if isinstance(layer, activation):
            stages.append((f"conv{len(stages) + 1}", x))
    stages.append(("features", fc(x)))
    return stages


def as_inspectable(model: nn.Module) -> InspectableModel | None:
    """The model's stage-naming interface, or None for a model that names none."""
    return cast(InspectableModel, model) if callable(getattr(model, "inspect_stages", None)) else None


def as_step_model(model: nn.Module) -> StepModel:
    return cast(StepModel, model)


def as_encoder_decoder(model: nn.Module) -> EncoderDecoder:
    return cast(EncoderDecoder, model)


def as_gan(model: nn.Module) -> GAN:
    """The model as a GAN, unwrapped from DDP (whose ``module`` holds it)."""
    return cast(GAN, getattr(model, "module", model))
