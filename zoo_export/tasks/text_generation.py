"""Text generators (character LSTM/GPT, DNA RNNs): a step graph with explicit state, and a full graph.

The model side follows docs/BUNDLE.md "Model-side protocols": ``initial_state``, ``step`` and
the ``generation_kind``/``max_context``/``step_tokens``/``state_names``/``state_grow_axes``
attributes. The step graph is ``(tokens, *state) -> (logits, *state)``; the full graph is
``tokens -> step(tokens, *initial_state)[0]`` and is left out when ``full_graph`` is False
(recurrent cells whose time loop is Python).

Besides tensor parity at several (batch, new, past) sizes, a whole greedy generation (120 new
tokens, two prompts in a batch) through the ONNX step graph must give the same tokens as torch,
and a generation that recomputes the full graph each step must give them too.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn as nn

from zoo_export.graphs import GraphSpec, ParityCase, TensorKind, TensorSpec
from zoo_export.parity import Tolerances, cpu_session, first_divergence
from zoo_export.tasks.base import BundleContext, ExportInputError, TaskExporter, generator_seed, register_exporter
from zoo_runtime import schema
from zoo_runtime.generation import SAMPLING_DEFAULTS, full_graph_step, greedy_tokens
from zoo_train.models.protocols import InspectableModel, as_inspectable, as_step_model
from zoo_train.tasks.text_generation import loop_settings, numpy_step

GENERATION_TOKENS = 120
PROMPT_LENGTH = 5
PROTOCOL = ("initial_state", "step", "generation_kind", "max_context", "step_tokens", "state_names", "state_grow_axes")


class FullGraph(nn.Module):
    """``tokens`` [N,T] -> ``logits`` [N,T,V] from the zero state."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        model = as_step_model(self.model)
        state = model.initial_state(tokens.shape[0], tokens.device)
        dtype = next(self.model.parameters()).dtype  # float16 when exported with --dtype fp16
        return model.step(tokens, *[s.to(dtype) for s in state])[0]


class InspectGraph(nn.Module):
    """``tokens`` [N,T] -> each named stage of the model (GPT: ``attention`` [layers, N, heads, T, T])."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(value for _name, value in cast(InspectableModel, self.model).inspect_stages(tokens))


class InspectStepGraph(nn.Module):
    """``(tokens, *state)`` -> what one step computes inside, by the model's ``inspect_step`` (gates of scratch cells)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(value for _name, value in cast(Any, self.model).inspect_step(tokens, *state))


class StepGraph(nn.Module):
    """``(tokens, *state) -> (logits, *state)``: one step with explicit state."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(as_step_model(self.model).step(tokens, *state))


# ------------------------------------------------------------------------------ the exporter


def reset_keep_of(module: nn.Module) -> int | None:
    """How many recent ids the generation loop feeds after a cache reset (docs/BUNDLE.md, generation).

    A model may set ``reset_keep`` (e.g. ``max_context // 2``, so that a reset comes only every
    ``max_context - reset_keep`` tokens); without it the whole window is fed again.
    """
    model = as_step_model(module)
    if not model.max_context:
        return None
    keep = int(getattr(model, "reset_keep", None) or model.max_context)
    if not 1 <= keep <= model.max_context:
        raise ExportInputError(f"model {type(model).__name__}: reset_keep {keep} is not in 1..max_context ({model.max_context})")
    return keep


def _state_layout(module: nn.Module) -> list[dict[str, Any]]:
    """Per state tensor: names, dtype, batch axis, grow axis and fixed sizes, from initial_state(2) vs (3)."""
    model = as_step_model(module)
    two = model.initial_state(2, torch.device("cpu"))
    three = model.initial_state(3, torch.device("cpu"))
    names = list(model.state_names)
    grow = list(model.state_grow_axes)
    if not (len(two) == len(names) == len(grow)):
        raise ExportInputError(
            f"model {type(model).__name__}: initial_state gives {len(two)} tensors but state_names has {len(names)} "
            f"and state_grow_axes {len(grow)}"
        )
    layout = []
    for t2, t3, (name_in, name_out), g in zip(two, three, names, grow, strict=False):
        batch_axes = [i for i, (a, b) in enumerate(zip(t2.shape, t3.shape, strict=False)) if a != b]
        if len(batch_axes) != 1 or t2.shape[batch_axes[0]] != 2:
            raise ExportInputError(
                f"state {name_in!r}: cannot tell its batch axis from shapes {list(t2.shape)} / {list(t3.shape)}"
            )
        layout.append(
            {
                "input": name_in,
                "output": name_out,
                "dtype": str(t2.dtype).replace("torch.", ""),
                "batch_axis": batch_axes[0],
                "grow_axis": g,
                "sizes": list(t2.shape),
            }
        )
    return layout


def _state_shape(item: dict[str, Any], grow_name: str) -> tuple[Any, ...]:
    shape: list[Any] = list(item["sizes"])
    shape[item["batch_axis"]] = "batch"
    if item["grow_axis"] is not None:
        shape[item["grow_axis"]] = grow_name
    return tuple(shape)


def _state_tensor(item: dict[str, Any], batch: int, past: int, gen: torch.Generator) -> torch.Tensor:
    shape = list(item["sizes"])
    shape[item["batch_axis"]] = batch
    if item["grow_axis"] is not None:
        shape[item["grow_axis"]] = past
    return torch.randn(*shape, generator=gen)


def vocab_size_of(ctx: BundleContext) -> int:
    vocab = ctx.meta.get("vocab") or {}
    if isinstance(vocab.get(schema.VOCAB_TOKENS), list):
        return len(vocab[schema.VOCAB_TOKENS])
    if isinstance(vocab.get("size"), int):
        return vocab["size"]
    size = (ctx.payload.get("config") or {}).get("vocab_size")
    if isinstance(size, int):
        return size
    raise ExportInputError(f"{ctx.checkpoint}: checkpoint meta has no vocab (tokens or size)")


def symbolic_shape(a: torch.Size, b: torch.Size, dims_a: dict[str, int], dims_b: dict[str, int]) -> tuple[Any, ...]:
    """The declared shape of an output seen at two input sizes: an axis that follows a symbolic input dim takes its name."""
    shape: list[Any] = []
    for size_a, size_b in zip(a, b, strict=True):
        names = [name for name in dims_a if dims_a[name] == size_a and dims_b[name] == size_b]
        shape.append(names[0] if size_a != size_b and names else int(size_a))
    return tuple(shape)


def inspect_spec(ctx: BundleContext, model: nn.Module, stages: InspectableModel, full: GraphSpec) -> GraphSpec:
    """The optional ``inspect`` graph over the full graph's input and parity cases, its outputs named by the model."""
    first, second = full.cases[0], full.cases[-1]
    with torch.no_grad():
        seen_a = stages.inspect_stages(*first.inputs)
        seen_b = stages.inspect_stages(*second.inputs)
    names = [name for name, _value in seen_a]
    if len(set(names)) != len(names) or schema.INPUT_TOKENS in names:
        raise ExportInputError(f"{ctx.checkpoint}: the model's inspect_stages names {names}: each name once, none 'tokens'")
    outputs = [
        TensorSpec(name, "float32", symbolic_shape(a.shape, b.shape, first.dims, second.dims), kind=TensorKind.STATE)
        for (name, a), (_name, b) in zip(seen_a, seen_b, strict=True)
    ]
    return GraphSpec(schema.ROLE_INSPECT, InspectGraph(model).eval(), full.inputs, outputs, full.example, full.cases)


def inspect_step_spec(ctx: BundleContext, model: nn.Module, step: GraphSpec) -> GraphSpec:
    """The optional ``inspect`` graph of a recurrent model: one step's insides (its gates), over the step's inputs
    with one token (a step graph that takes several tokens at once is given its first)."""
    one = [TensorSpec(schema.INPUT_TOKENS, "int64", ("batch", 1)), *step.inputs[1:]]
    cases = [
        ParityCase((case.inputs[0][:, :1], *case.inputs[1:]), {k: v for k, v in case.dims.items() if k != "new"})
        for case in step.cases
    ]
    step = dataclasses.replace(step, inputs=one, example=(step.example[0][:, :1], *step.example[1:]), cases=cases)
    first, second = step.cases[0], step.cases[-1]
    with torch.no_grad():
        seen_a = cast(Any, model).inspect_step(*first.inputs)
        seen_b = cast(Any, model).inspect_step(*second.inputs)
    outputs = [
        TensorSpec(name, "float32", symbolic_shape(a.shape, b.shape, first.dims, second.dims), kind=TensorKind.STATE)
        for (name, a), (_name, b) in zip(seen_a, seen_b, strict=True)
    ]
    names = [spec.name for spec in outputs]
    taken = {t.name for t in step.inputs}
    if len(set(names)) != len(names) or taken & set(names):
        raise ExportInputError(f"{ctx.checkpoint}: the model's inspect_step names {names}: each name once, no input's name")
    return GraphSpec(schema.ROLE_INSPECT, InspectStepGraph(model).eval(), step.inputs, outputs, step.example, step.cases)


class TextGenerationExporter(TaskExporter):
    task = schema.TASK_TEXT_GENERATION

    def validate(self, ctx: BundleContext) -> None:
        super().validate(ctx)
        missing = [a for a in PROTOCOL if not hasattr(ctx.model, a)]
        if missing:
            raise ExportInputError(
                f"{ctx.checkpoint}: model {ctx.name!r} lacks {missing} of the text-generation protocol (docs/BUNDLE.md)"
            )

    def graphs(self, ctx: BundleContext) -> list[GraphSpec]:
        model = ctx.model.eval()
        gen = generator_seed(ctx.name)
        layout = _state_layout(model)
        vocab = vocab_size_of(ctx)
        max_context = as_step_model(model).max_context
        any_tokens = as_step_model(model).step_tokens != 1
        new_name = "new" if any_tokens else 1
        grow_out = "past + new" if any_tokens else "past + 1"
        tokens = lambda n, t: torch.randint(0, vocab, (n, t), generator=gen)  # noqa: E731

        state_in = [TensorSpec(s["input"], s["dtype"], _state_shape(s, "past"), kind=TensorKind.STATE) for s in layout]
        state_out = [TensorSpec(s["output"], s["dtype"], _state_shape(s, grow_out), kind=TensorKind.STATE) for s in layout]
        new_ex = 2 if any_tokens else 1
        example = (tokens(2, new_ex), *[_state_tensor(s, 2, 3, gen) for s in layout])
        sizes = [(1, 1, 0), (3, 3 if any_tokens else 1, 4), (5, 1, (max_context - 1) if max_context else 9)]
        if any_tokens and max_context:
            sizes.append((2, max_context, 0))  # a whole prompt in one call
        cases = []
        for batch, new, past in sizes:
            if max_context and past + new > max_context:
                past = max(0, max_context - new)
            inputs = (tokens(batch, new), *[_state_tensor(s, batch, past, gen) for s in layout])
            dims = {"batch": batch, "new": new} if any_tokens else {"batch": batch}
            if any(s["grow_axis"] is not None for s in layout):
                dims["past"] = past
            cases.append(ParityCase(inputs, dims))
        step = GraphSpec(
            role=schema.ROLE_STEP,
            module=StepGraph(model).eval(),
            inputs=[TensorSpec(schema.INPUT_TOKENS, "int64", ("batch", new_name)), *state_in],
            outputs=[TensorSpec(schema.OUTPUT_LOGITS, "float32", ("batch", new_name, vocab), kind=TensorKind.LOGITS), *state_out],
            example=example,
            cases=cases,
        )
        specs = [step]
        if callable(getattr(model, "inspect_step", None)):
            specs.append(inspect_step_spec(ctx, model, step))
        if getattr(model, "full_graph", True):
            t_ex = 3  # short: torch.export of nn.LSTM costs time per step of the example
            lengths = [1, 4, max_context or 17]
            specs.insert(
                0,
                GraphSpec(
                    role=schema.ROLE_MODEL,
                    module=FullGraph(model).eval(),
                    inputs=[TensorSpec(schema.INPUT_TOKENS, "int64", ("batch", "time"))],
                    outputs=[TensorSpec(schema.OUTPUT_LOGITS, "float32", ("batch", "time", vocab), kind=TensorKind.LOGITS)],
                    example=(tokens(2, t_ex),),
                    cases=[
                        ParityCase((tokens(b, t),), {"batch": b, "time": t})
                        for b, t in zip((1, 3, 5), lengths, strict=False)
                        if t != t_ex
                    ],
                ),
            )
            stages = as_inspectable(model)
            if stages is not None:
                specs.append(inspect_spec(ctx, model, stages, specs[0]))
        return specs

    def manifest_fields(self, ctx: BundleContext) -> dict[str, Any]:
        model = ctx.model
        layout = _state_layout(model)
        state = [
            {
                "input": s["input"],
                "output": s["output"],
                "dtype": s["dtype"],
                "shape": list(_state_shape(s, "past")),
                "grow_axis": s["grow_axis"],
            }
            for s in layout
        ]
        generation = {
            "kind": model.generation_kind,
            "max_context": model.max_context,
            "reset_keep": reset_keep_of(model),
            "step_tokens": model.step_tokens,
            "state": state,
        }
        return {
            "labels": None,
            "vocab": dict(ctx.meta["vocab"]),
            "preprocessing": {},
            "generation": generation,
            "sampling": dict(ctx.meta.get("sampling") or SAMPLING_DEFAULTS),
        }

    def generation_checks(
        self, ctx: BundleContext, graphs: dict[str, GraphSpec], files: dict[str, Path], tol: Tolerances
    ) -> list[dict[str, Any]]:
        model = ctx.model.eval()
        layout = _state_layout(model)
        vocab = vocab_size_of(ctx)
        gen = generator_seed(ctx.name, salt=1)
        prompt = torch.randint(0, vocab, (2, PROMPT_LENGTH), generator=gen).numpy()

        torch_step, initial = numpy_step(model, torch.device("cpu"))
        step_session = cpu_session(files[schema.ROLE_STEP])
        names_in = [schema.INPUT_TOKENS] + [s["input"] for s in layout]

        def ort_step(feed: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
            out = step_session.run(None, dict(zip(names_in, [feed, *state], strict=True)))
            return out[0], list(out[1:])

        # One loop (zoo_runtime.generation), driven by each implementation of the step.
        settings = loop_settings(model)
        ref, ref_logits, resets = greedy_tokens(torch_step, initial, settings, prompt, GENERATION_TOKENS)
        got, _, _ = greedy_tokens(ort_step, initial, settings, prompt, GENERATION_TOKENS)
        checks = [
            tokens_check(
                schema.ROLE_STEP,
                "greedy-generation",
                "onnxruntime step graph vs torch step",
                ref,
                got,
                ref_logits,
                tol,
                context_resets=resets,
            )
        ]
        if schema.ROLE_MODEL in files:
            full_session = cpu_session(files[schema.ROLE_MODEL])
            full_step, full_initial = full_graph_step(lambda t: full_session.run(None, {schema.INPUT_TOKENS: t})[0])
            full, _, _ = greedy_tokens(
                full_step, full_initial, dataclasses.replace(settings, step_tokens=schema.STEP_TOKENS_ANY), prompt,
                GENERATION_TOKENS,
            )  # fmt: skip
            checks.append(
                tokens_check(
                    schema.ROLE_MODEL,
                    "greedy-generation-full-graph",
                    "onnxruntime full graph (recomputed each step) vs torch step",
                    ref,
                    full,
                    ref_logits,
                    tol,
                    context_resets=resets,
                )
            )
        return checks


def tokens_check(
    graph: str, name: str, what: str, ref: np.ndarray, got: np.ndarray, ref_logits: np.ndarray, tol: Tolerances, **extra: Any
) -> dict[str, Any]:
    """Compare two greedy generations token for token; a parting is forgiven only at a near-tie (fp16)."""
    at = first_divergence(ref, got)
    check: dict[str, Any] = {
        "graph": graph,
        "check": name,
        "compared": what,
        "batch": int(ref.shape[0]),
        schema.PARITY_TOKENS: int(ref.shape[1]),
        **extra,
        "identical": at is None,
    }
    if at is None:
        check["passed"] = True
        return check
    rows = np.asarray(ref[:, at] != got[:, at]) if ref.shape == got.shape else np.ones(ref.shape[0], bool)
    top2 = np.sort(ref_logits[at][rows], axis=-1)[:, -2:]
    margin = float((top2[:, 1] - top2[:, 0]).max())
    check.update(first_divergence=at, reference_top2_margin=margin, passed=margin <= tol.tie_margin)
    return check


register_exporter(TextGenerationExporter())
