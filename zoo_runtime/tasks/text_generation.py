"""Text and DNA generation with the step graph and its explicit state, streamed piece by piece.

The loop is ``zoo_runtime.generation.GenerationLoop`` (docs/BUNDLE.md "Generation loop"), the same one
the trainer and the exporter's parity checks drive with torch, so a greedy generation equals torch's
token for token.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import islice
from typing import Any, ClassVar

import numpy as np

from zoo_runtime import schema
from zoo_runtime.bundle import Bundle
from zoo_runtime.errors import BundleError
from zoo_runtime.generation import SAMPLING_DEFAULTS, GenerationLoop, LoopSettings, sampling_pick
from zoo_runtime.providers import SessionFactory
from zoo_runtime.sampling import random_generator
from zoo_runtime.tasks.base import BundleModel, Field
from zoo_runtime.vocab import Vocabulary


class TextGenerator(BundleModel):
    """``generate(prompt, ...)`` over a text-generation bundle (characters or DNA bases)."""

    task = schema.TASK_TEXT_GENERATION
    roles = (schema.ROLE_STEP,)
    inputs: ClassVar[Mapping[str, Field]] = {
        "prompt": Field("string", "the text (or DNA) to continue", required=True),
        "max_new_tokens": Field("integer", "tokens to generate (default: the bundle's)"),
        "temperature": Field("number", "0 is greedy (default: the bundle's)"),
        "top_k": Field("integer", "sample from the k most probable tokens, 0 = off (default: the bundle's)"),
        "top_p": Field("number", "nucleus sampling, 1 = off (default: the bundle's)"),
        "seed": Field("integer", "random seed (default: a fresh one)"),
        "stop": Field("array", "strings that end the generation (not included)"),
    }
    outputs: ClassVar[Mapping[str, Field]] = {
        "text": Field("string", "the generated text, without the prompt"),
        "pieces": Field("integer", "tokens generated"),
        "skipped": Field("array", "[position, character] pairs of the prompt dropped as outside the vocabulary"),
    }

    def __init__(self, bundle: Bundle, factory: SessionFactory) -> None:
        super().__init__(bundle, factory)
        vocab = self.manifest.get("vocab") or {}
        tokens = vocab.get(schema.VOCAB_TOKENS)
        if not isinstance(tokens, list) or not tokens:
            raise BundleError(f"{self.path}: a text-generation bundle needs vocab.tokens")
        self.vocab: list[str] = [str(t) for t in tokens]
        self._index = {t: i for i, t in enumerate(self.vocab)}
        self.unknown_policy: str = vocab.get("unknown", schema.UNKNOWN_ERROR)
        self.vocabulary = Vocabulary(vocab, self.name)
        self.is_dna: bool = sorted(self.vocab) == list(schema.DNA_TOKENS)
        self.bos_id: int | None = (vocab.get("specials") or {}).get("bos")
        gen = self.manifest.get("generation") or {}
        self.loop_settings = LoopSettings.from_generation(gen)
        self.max_context: int | None = self.loop_settings.max_context
        self._state_specs: list[dict[str, Any]] = list(gen.get("state") or [])
        step_inputs = {t["name"] for t in self.graph(schema.ROLE_STEP)["inputs"]}
        for spec in self._state_specs:
            if spec.get("input") not in step_inputs:
                raise BundleError(f"{self.path}: generation state {spec.get('input')!r} is not an input of the step graph")
        self.sampling: dict[str, Any] = {**SAMPLING_DEFAULTS, **(self.manifest.get("sampling") or {})}
        self.last_skipped: list[tuple[int, str]] = []  # (position, character) dropped by the "skip" policy

    # ------------------------------------------------------------------------------ vocabulary

    def encode(self, prompt: str) -> list[int]:
        """Prompt -> token ids, by the bundle's policy for characters outside the vocabulary (possibly none left)."""
        if not isinstance(prompt, str):
            raise BundleError(f"prompt: expected a string, got {type(prompt).__name__}")
        ids = self.vocabulary.encode(prompt, "prompt", allow_empty=True)
        self.last_skipped = self.vocabulary.last_skipped
        return ids

    def decode(self, ids: list[int]) -> str:
        return "".join(self.vocab[i] for i in ids)

    # ------------------------------------------------------------------------------ the step graph

    def initial_state(self, batch: int = 1) -> list[np.ndarray]:
        state = []
        for spec in self._state_specs:
            shape = []
            for axis, dim in enumerate(spec["shape"]):
                if axis == spec.get("grow_axis"):
                    shape.append(0)
                elif isinstance(dim, int):
                    shape.append(dim)
                elif dim == "batch":
                    shape.append(batch)
                else:
                    raise BundleError(f"{self.path}: state {spec['input']!r} has an unknown symbolic dim {dim!r}")
            state.append(np.zeros(shape, dtype=self.numpy_dtype(schema.ROLE_STEP, spec["input"])))
        return state

    def step(self, feed: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """One call of the step graph: ids ``[N,new]`` -> ``logits [N,new,V]`` and the new state."""
        feeds = {schema.INPUT_TOKENS: np.asarray(feed, dtype=np.int64)}
        feeds.update({spec["input"]: s for spec, s in zip(self._state_specs, state, strict=True)})
        outputs = [schema.OUTPUT_LOGITS] + [spec["output"] for spec in self._state_specs]
        logits, *new_state = self._run(schema.ROLE_STEP, feeds, outputs)
        return logits, new_state

    # ------------------------------------------------------------------------------ looking inside

    @property
    def inspect_layers(self) -> list[dict[str, Any]]:
        """What ``inspect`` returns ({name, dtype, shape}): the inspect graph's outputs (GPT: ``attention``
        [layers, batch, heads, time, time]), else for recurrent models each state over time [layers, batch, time, H]."""
        if not self.is_recurrent:
            return super().inspect_layers
        states = [
            {"name": s["input"], "dtype": s.get("dtype", "float32"), "shape": _over_time(s["shape"])} for s in self._state_specs
        ]
        gates = [dict(layer, shape=_over_time(layer["shape"])) for layer in super().inspect_layers]
        return states + gates

    @property
    def is_recurrent(self) -> bool:
        return (self.manifest.get("generation") or {}).get("kind") == schema.GENERATION_RECURRENT

    def inspect(self, prompt: str) -> dict[str, np.ndarray]:
        """What the model computes inside over ``prompt``, by name (see ``inspect_layers``).

        With an inspect graph over whole prompts (char GPT) its outputs, for a prompt that fits the model's
        context. A recurrent model gives its state after each character, from the step graph fed one id
        at a time: ``h`` (and ``c`` for LSTMs) [layers, 1, time, hidden]; the from-scratch cells' step-shaped
        inspect graph adds their gates before each step (``reset``, ``update``, ``candidate`` or
        ``input``, ``forget``, ``cell``, ``output``), each [layers, 1, time, hidden]. Else a BundleError.
        """
        ids = self.encode(prompt)
        if not ids:
            raise BundleError("prompt: nothing to look inside (no character of the vocabulary)")
        if schema.ROLE_INSPECT in self._sessions and not self.is_recurrent:
            if self.max_context is not None and len(ids) > self.max_context:
                raise BundleError(
                    f"prompt: {len(ids)} tokens, more than the {self.max_context} positions {self.name} attends over"
                )
            return self._inspect({schema.INPUT_TOKENS: np.asarray([ids], dtype=np.int64)})
        if not self.is_recurrent:
            raise self._no_inspect_graph()
        gates = schema.ROLE_INSPECT in self._sessions  # a step-shaped inspect graph: the gates of scratch cells
        state = self.initial_state(1)
        over_time: dict[str, list[np.ndarray]] = {}
        for token in ids:
            feed = np.asarray([[token]], dtype=np.int64)
            if gates:
                feeds = {schema.INPUT_TOKENS: feed, **{s["input"]: v for s, v in zip(self._state_specs, state, strict=True)}}
                for name, value in self._inspect(feeds).items():
                    over_time.setdefault(name, []).append(value)
            _logits, state = self.step(feed, state)
            for spec, value in zip(self._state_specs, state, strict=True):
                over_time.setdefault(spec["input"], []).append(value)
        return {layer["name"]: np.stack(over_time[layer["name"]], axis=2) for layer in self.inspect_layers}

    # ------------------------------------------------------------------------------ generation

    def generate(
        self,
        prompt: str,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop: str | list[str] | None = None,
    ) -> Iterator[str]:
        """Stream the generated text piece by piece (a piece is one token's text).

        Arguments left None take the bundle's ``sampling`` defaults; temperature 0 is greedy.
        The prompt is checked now; the graph runs only as pieces are taken, so closing or
        abandoning the iterator stops generation. A ``stop`` string ends it and is not emitted.
        """
        ids = self.encode(prompt)
        if not ids:
            if self.bos_id is None:
                raise BundleError("prompt: empty (after dropping unknown characters); give at least one character")
            ids = [int(self.bos_id)]
        s = self.sampling
        try:
            max_new = int(s["max_new_tokens"] if max_new_tokens is None else max_new_tokens)
            temp = s["temperature"] if temperature is None else temperature
            temp = None if temp is None else float(temp)
            k = s["top_k"] if top_k is None else top_k
            k = None if k is None else int(k)
            p = s["top_p"] if top_p is None else top_p
            p = None if p is None else float(p)
        except (TypeError, ValueError) as exc:
            raise BundleError(f"generate: a sampling setting is not a number ({exc})") from None
        if max_new < 0:
            raise BundleError(f"max_new_tokens: {max_new} is negative")
        if temp is not None and (not np.isfinite(temp) or temp < 0):
            raise BundleError(f"temperature: {temp} must be 0 (greedy) or positive")
        if k is not None and k < 0:
            raise BundleError(f"top_k: {k} must be 0 (off) or positive")
        if p is not None and not 0 < p <= 1:
            raise BundleError(f"top_p: {p} must be above 0 and at most 1 (1 = off)")
        stops = [x for x in ([stop] if isinstance(stop, str) else list(stop or [])) if x]
        tokens = self._tokens(ids, max_new, temp, k, p, random_generator(seed))
        return _stop_at(tokens, stops) if stops else tokens

    def _tokens(
        self,
        ids: list[int],
        max_new: int,
        temperature: float | None,
        top_k: int | None,
        top_p: float | None,
        rng: np.random.Generator,
    ) -> Iterator[str]:
        loop = GenerationLoop(self.step, self.initial_state, self.loop_settings)
        pick = sampling_pick(rng, temperature, top_k, top_p)
        for nxt, _logits in islice(loop.run(np.asarray([ids]), pick), max_new):
            yield self.vocab[int(nxt[0])]

    def generate_text(self, prompt: str, **kwargs: Any) -> str:
        """The whole generation as one string (without the prompt)."""
        return "".join(self.generate(prompt, **kwargs))

    def describe_task(self) -> dict[str, Any]:
        return {"vocab": list(self.vocab), "sampling": dict(self.sampling), "max_context": self.max_context}

    def predict_checked(self, request: Mapping[str, Any]) -> dict[str, Any]:
        settings = {k: v for k, v in request.items() if k != "prompt"}
        pieces = list(self.generate(request["prompt"], **settings))
        return {"text": "".join(pieces), "pieces": len(pieces), "skipped": [list(s) for s in self.last_skipped]}


def _stop_at(pieces: Iterator[str], stops: list[str]) -> Iterator[str]:
    """Pass pieces through until a stop string appears; hold back only what may start one."""
    held = ""
    longest = max(len(x) for x in stops)
    try:
        for piece in pieces:
            held += piece
            hits = [held.find(x) for x in stops if x in held]
            if hits:
                cut = min(hits)
                if cut:
                    yield held[:cut]
                return
            # Keep the longest tail of `held` that is a prefix of some stop string.
            keep = 0
            for n in range(1, min(longest - 1, len(held)) + 1):
                if any(x.startswith(held[-n:]) for x in stops):
                    keep = n
            if len(held) > keep:
                yield held[: len(held) - keep]
                held = held[len(held) - keep :]
        if held:
            yield held
    finally:
        close = getattr(pieces, "close", None)
        if close:
            close()


def _over_time(shape: list[Any]) -> list[Any]:
    """A recurrent state's shape [layers, batch, H] with a time axis after the batch: [layers, batch, time, H]."""
    return [*shape[:2], "time", *shape[2:]]
