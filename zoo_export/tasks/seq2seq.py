"""Encoder-decoder models: an encoder graph (src -> memory) and a decoder graph over the target prefix.

The decoder graph recomputes the whole target prefix each step (no cache: targets are short,
at most ``max_len`` positions). Parity runs both graphs at several batch sizes and source and
target lengths, then a whole greedy decoding of a batch of padded sources through the two
ONNX graphs must give the same tokens as torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn as nn

from zoo_export.graphs import GraphSpec, ParityCase, TensorKind, TensorSpec
from zoo_export.parity import Tolerances, cpu_session
from zoo_export.tasks.base import BundleContext, ExportInputError, TaskExporter, generator_seed, register_exporter
from zoo_export.tasks.text_generation import symbolic_shape, tokens_check, vocab_size_of
from zoo_runtime import schema
from zoo_runtime.generation import greedy_decode
from zoo_train.models.protocols import as_encoder_decoder, as_inspectable

DECODE_TOKENS = 120  # at least this many decoded tokens in all: the batch grows when targets are short


class Encoder(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        return as_encoder_decoder(self.model).encode(src)


class Decoder(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        return as_encoder_decoder(self.model).decode(tgt, memory, src)


def _target_vocab(ctx: BundleContext) -> dict[str, Any]:
    """The output vocabulary: ``target_vocab`` where the source has its own alphabet, else the one ``vocab``."""
    vocab = ctx.meta.get("target_vocab") or ctx.meta.get("vocab")
    return dict(vocab) if isinstance(vocab, dict) else {}


class InspectGraph(nn.Module):
    """``(src, tgt)`` -> the model's attention probabilities (encoder, decoder, cross), by ``inspect_stages``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(value for _name, value in cast(Any, self.model).inspect_stages(src, tgt))


def inspect_spec(model: nn.Module, encoder: GraphSpec, decoder: GraphSpec, bounds: dict[str, int]) -> GraphSpec:
    """The optional ``inspect`` graph over a source and a target prefix, at the decoder's parity sizes."""
    cases = [ParityCase((case.inputs[2], case.inputs[0]), case.dims) for case in decoder.cases]
    first, second = cases[0], cases[1]  # their batch, source and target sizes all differ
    with torch.no_grad():
        seen_a = cast(Any, model).inspect_stages(*first.inputs)
        seen_b = cast(Any, model).inspect_stages(*second.inputs)
    outputs = [
        TensorSpec(name, "float32", symbolic_shape(a.shape, b.shape, first.dims, second.dims), kind=TensorKind.STATE)
        for (name, a), (_name, b) in zip(seen_a, seen_b, strict=True)
    ]
    inputs = [encoder.inputs[0], decoder.inputs[0]]
    example = (decoder.example[2], decoder.example[0])
    return GraphSpec(schema.ROLE_INSPECT, InspectGraph(model).eval(), inputs, outputs, example, cases, dim_max=bounds)


def _specials(ctx: BundleContext) -> dict[str, int | None]:
    specials = dict(_target_vocab(ctx).get("specials") or {})
    pad = specials.get("pad", getattr(ctx.model, "pad_id", 0))
    return {"pad": pad, "bos": specials.get("bos"), "eos": specials.get("eos")}


def _bos(ctx: BundleContext) -> int:
    bos = _specials(ctx)["bos"]
    if bos is None:
        raise ExportInputError(f"{ctx.checkpoint}: checkpoint meta vocab names no bos id (vocab.specials.bos)")
    return bos


def _target_size(ctx: BundleContext) -> int:
    tokens = _target_vocab(ctx).get(schema.VOCAB_TOKENS)
    return len(tokens) if ctx.meta.get("target_vocab") and isinstance(tokens, list) else vocab_size_of(ctx)


def _source_pad(ctx: BundleContext) -> int | None:
    if ctx.meta.get("target_vocab"):
        return ((ctx.meta.get("vocab") or {}).get("specials") or {}).get("pad")
    return _specials(ctx)["pad"]


def _max_len(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    for owner, name in ((model, "max_len"), (config, "max_len")):
        if owner is not None and isinstance(getattr(owner, name, None), int):
            return int(getattr(owner, name))
    raise ExportInputError(f"model {type(model).__name__}: no max_len (positions) to bound source and target lengths")


class Seq2SeqExporter(TaskExporter):
    task = schema.TASK_SEQ2SEQ

    def validate(self, ctx: BundleContext) -> None:
        super().validate(ctx)
        missing = [a for a in ("encode", "decode") if not hasattr(ctx.model, a)]
        if missing:
            raise ExportInputError(f"{ctx.checkpoint}: model {ctx.name!r} lacks {missing} of the seq2seq protocol")
        vocab_size_of(ctx)
        _max_len(ctx.model)

    def _sources(self, ctx: BundleContext, batch: int, length: int, gen: torch.Generator) -> torch.Tensor:
        """Right-padded sources of random lengths 1..length (the longest exactly ``length``)."""
        pad = _source_pad(ctx)
        reserved = {pad} if ctx.meta.get("target_vocab") else set(_specials(ctx).values())
        allowed = torch.tensor([i for i in range(vocab_size_of(ctx)) if i not in reserved])
        src = allowed[torch.randint(0, len(allowed), (batch, length), generator=gen)]
        lengths = torch.randint(1, length + 1, (batch,), generator=gen)
        lengths[0] = length
        src[torch.arange(length)[None, :] >= lengths[:, None]] = pad or 0
        return src

    def _targets(self, ctx: BundleContext, batch: int, length: int, gen: torch.Generator) -> torch.Tensor:
        vocab = _target_size(ctx)
        tgt = torch.randint(0, vocab, (batch, length), generator=gen)
        tgt[:, 0] = _bos(ctx)
        return tgt

    def graphs(self, ctx: BundleContext) -> list[GraphSpec]:
        model = ctx.model.eval()
        gen = generator_seed(ctx.name)
        max_len = _max_len(model)
        vocab = _target_size(ctx)
        encoder = Encoder(model).eval()
        src_ex = self._sources(ctx, 2, min(6, max_len), gen)
        with torch.no_grad():
            d_model = int(encoder(src_ex).shape[-1])
        src_lengths = (3, min(9, max_len), max_len)
        enc_cases = []
        dec_cases = []
        for batch, s_len, t_len in zip((1, 3, 5), src_lengths, (1, min(5, max_len), max_len), strict=False):
            src = self._sources(ctx, batch, s_len, gen)
            enc_cases.append(ParityCase((src,), {"batch": batch, "src_time": s_len}))
            with torch.no_grad():
                memory = encoder(src)
            dec_cases.append(
                ParityCase(
                    (self._targets(ctx, batch, t_len, gen), memory, src), {"batch": batch, "tgt_time": t_len, "src_time": s_len}
                )
            )
        with torch.no_grad():
            mem_ex = encoder(src_ex)
        bounds = {"src_time": max_len, "tgt_time": max_len}
        specs = [
            GraphSpec(
                role=schema.ROLE_ENCODER,
                module=encoder,
                inputs=[TensorSpec(schema.INPUT_SRC, "int64", ("batch", "src_time"))],
                outputs=[TensorSpec(schema.OUTPUT_MEMORY, "float32", ("batch", "src_time", d_model), kind=TensorKind.MEMORY)],
                example=(src_ex,),
                cases=enc_cases,
                dim_max=bounds,
            ),
            GraphSpec(
                role=schema.ROLE_DECODER,
                module=Decoder(model).eval(),
                inputs=[
                    TensorSpec(schema.INPUT_TGT, "int64", ("batch", "tgt_time")),
                    TensorSpec(schema.INPUT_MEMORY, "float32", ("batch", "src_time", d_model)),
                    TensorSpec(schema.INPUT_SRC, "int64", ("batch", "src_time")),
                ],
                outputs=[TensorSpec(schema.OUTPUT_LOGITS, "float32", ("batch", "tgt_time", vocab), kind=TensorKind.LOGITS)],
                example=(self._targets(ctx, 2, min(4, max_len), gen), mem_ex, src_ex),
                cases=dec_cases,
                dim_max=bounds,
            ),
        ]
        if as_inspectable(model) is not None:
            specs.append(inspect_spec(model, specs[0], specs[1], bounds))
        return specs

    def manifest_fields(self, ctx: BundleContext) -> dict[str, Any]:
        vocab = dict(ctx.meta["vocab"]) if isinstance(ctx.meta.get("vocab"), dict) else {}
        vocab.setdefault("kind", schema.VOCAB_IDS)
        vocab.setdefault("size", vocab_size_of(ctx))
        target = None
        if ctx.meta.get("target_vocab"):
            target = {**_target_vocab(ctx), "specials": _specials(ctx)}
        else:
            vocab["specials"] = _specials(ctx)
        max_len = _max_len(ctx.model)
        decoding = ctx.meta.get("decoding") or {}
        generation = {
            "kind": "encoder-decoder",
            "max_source": max_len,
            "max_target": max_len,
            "max_new_tokens": int(decoding.get("max_new_tokens", max_len - 1)),
            **{name: _specials(ctx)[name] for name in ("bos", "eos", "pad")},
        }
        return {
            "labels": None,
            "vocab": vocab,
            "target_vocab": target,
            "examples": ctx.meta.get("examples"),
            "preprocessing": ctx.meta.get("preprocessing") or {},
            "generation": generation,
            "sampling": None,
        }

    def generation_checks(
        self, ctx: BundleContext, graphs: dict[str, GraphSpec], files: dict[str, Path], tol: Tolerances
    ) -> list[dict[str, Any]]:
        model = ctx.model.eval()
        max_len = _max_len(model)
        bos = _bos(ctx)
        gen = generator_seed(ctx.name, salt=2)
        steps = max_len - 1  # target positions after bos; decoding runs on past eos to compare every position
        batch = max(8, -(-DECODE_TOKENS // steps))
        src = self._sources(ctx, batch, max_len, gen)

        # Every position is decoded (no stop at eos), so that parity compares each of them.
        def torch_decode(tgt: np.ndarray, memory: torch.Tensor, src_ids: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return as_encoder_decoder(model).decode(torch.from_numpy(tgt), memory, torch.from_numpy(src_ids)).numpy()

        def torch_encode(src_ids: np.ndarray) -> torch.Tensor:
            with torch.no_grad():
                return as_encoder_decoder(model).encode(torch.from_numpy(src_ids))

        enc, dec = cpu_session(files[schema.ROLE_ENCODER]), cpu_session(files[schema.ROLE_DECODER])
        src_np = src.numpy()
        ref, ref_logits = greedy_decode(torch_encode, torch_decode, src_np, bos, steps)
        out, _ = greedy_decode(
            lambda s: enc.run(None, {schema.INPUT_SRC: s})[0],
            lambda t, m, s: dec.run(None, {schema.INPUT_TGT: t, schema.INPUT_MEMORY: m, schema.INPUT_SRC: s})[0],
            src_np,
            bos,
            steps,
        )
        check = tokens_check(
            schema.ROLE_DECODER,
            "greedy-decoding",
            "onnxruntime encoder + decoder vs torch encode/decode",
            ref,
            out,
            ref_logits,
            tol,
        )
        check["total_tokens"] = int(ref.size)
        return [check]


register_exporter(Seq2SeqExporter())
