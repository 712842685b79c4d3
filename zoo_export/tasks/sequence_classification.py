"""Sequence classifiers (LSTM/GRU): ``tokens`` [batch, time] -> ``logits`` [batch, K], any length; a model that
names its stages (``inspect_stages``: hidden states and gates over time) gets an ``inspect`` graph over the same input."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from zoo_export.graphs import GraphSpec, ParityCase, TensorKind, TensorSpec
from zoo_export.tasks.base import BundleContext, ExportInputError, TaskExporter, generator_seed, register_exporter
from zoo_export.tasks.text_generation import inspect_spec, vocab_size_of
from zoo_runtime import schema
from zoo_train.models.protocols import as_inspectable

EXPORT_SHAPE = (2, 3)  # short: torch.export of nn.LSTM/GRU costs time per step of the example
PARITY_SHAPES = ((1, 5), (3, 20), (7, 33))


class TokenClassifier(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(tokens)


def _token_sampler(ctx: BundleContext, gen: torch.Generator):
    """Random ids that avoid the pad id (a real sequence has no padding inside it)."""
    vocab = vocab_size_of(ctx)
    specials = (ctx.meta.get("vocab") or {}).get("specials") or {}
    pad = specials.get("pad")
    allowed = torch.tensor([i for i in range(vocab) if i != pad])

    def sample(n: int, t: int) -> torch.Tensor:
        return allowed[torch.randint(0, len(allowed), (n, t), generator=gen)]

    return sample


class SequenceClassificationExporter(TaskExporter):
    task = schema.TASK_SEQUENCE_CLASSIFICATION

    def validate(self, ctx: BundleContext) -> None:
        super().validate(ctx)
        vocab_size_of(ctx)

    def graphs(self, ctx: BundleContext) -> list[GraphSpec]:
        gen = generator_seed(ctx.name)
        sample = _token_sampler(ctx, gen)
        k = len(ctx.meta["labels"])
        wrapper = TokenClassifier(ctx.model).eval()
        example = (sample(*EXPORT_SHAPE),)
        with torch.no_grad():
            out = wrapper(*example)
        if tuple(out.shape) != (EXPORT_SHAPE[0], k):
            raise ExportInputError(f"{ctx.checkpoint}: logits shape {list(out.shape)} does not fit {k} labels")
        model = GraphSpec(
            role=schema.ROLE_MODEL,
            module=wrapper,
            inputs=[TensorSpec(schema.INPUT_TOKENS, "int64", ("batch", "time"))],
            outputs=[TensorSpec(schema.OUTPUT_LOGITS, "float32", ("batch", k), kind=TensorKind.LOGITS)],
            example=example,
            cases=[ParityCase((sample(n, t),), {"batch": n, "time": t}) for n, t in PARITY_SHAPES],
        )
        stages = as_inspectable(ctx.model)
        return [model] if stages is None else [model, inspect_spec(ctx, ctx.model.eval(), stages, model)]

    def manifest_fields(self, ctx: BundleContext) -> dict[str, Any]:
        vocab = (
            dict(ctx.meta["vocab"])
            if isinstance(ctx.meta.get("vocab"), dict)
            else {"kind": schema.VOCAB_IDS, "size": vocab_size_of(ctx), "specials": {"pad": None, "bos": None, "eos": None}}
        )
        return {
            "labels": list(ctx.meta["labels"]),
            "vocab": vocab,
            "examples": ctx.meta.get("examples"),
            "preprocessing": ctx.meta.get("preprocessing") or {},
            "generation": None,
            "sampling": None,
        }


register_exporter(SequenceClassificationExporter())
