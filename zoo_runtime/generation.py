"""The one generation loop and the one seq2seq greedy decoder (docs/BUNDLE.md), over numpy arrays.

Every caller drives these with its own step function: the runtime with onnxruntime sessions, the
exporter's parity checks with torch and with onnxruntime (so a difference in tokens is a difference
in numbers, never in loops), and the trainer's samples and evaluation with its torch model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

import numpy as np

from zoo_runtime import schema
from zoo_runtime.sampling import pick_next

# Sampling settings a text generator's bundle carries when its checkpoint names none: the trainer's
# samples, the exporter's manifest and the runtime all start from these.
SAMPLING_DEFAULTS: dict[str, Any] = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "max_new_tokens": 200}

State = list[np.ndarray]
StepFn = Callable[[np.ndarray, State], tuple[np.ndarray, State]]  # feed [N,t] int64, state -> logits [N,t,V], state
InitialFn = Callable[[int], State]  # batch size -> the zero state
PickFn = Callable[[np.ndarray], np.ndarray]  # the last position's logits [N,V] -> next ids [N]


@dataclass(frozen=True)
class LoopSettings:
    """The facts of a bundle's ``generation`` block that the loop needs."""

    max_context: int | None = None  # positions the model knows (kv-cache models); None: unbounded (RNNs)
    reset_keep: int | None = None  # ids fed again after a cache reset; None: max_context
    step_tokens: int | str = schema.STEP_TOKENS_ANY  # 1: the step takes one id per call

    @classmethod
    def from_generation(cls, generation: Mapping[str, Any] | None) -> LoopSettings:
        generation = generation or {}
        return cls(
            max_context=generation.get("max_context"),
            reset_keep=generation.get("reset_keep"),
            step_tokens=generation.get("step_tokens", schema.STEP_TOKENS_ANY),
        )

    @property
    def keep(self) -> int | None:
        return self.reset_keep or self.max_context


def greedy_pick(last_logits: np.ndarray) -> np.ndarray:
    picked: np.ndarray = np.asarray(last_logits).argmax(-1).astype(np.int64)
    return picked


def sampling_pick(
    rng: np.random.Generator, temperature: float | None, top_k: int | None = None, top_p: float | None = None
) -> PickFn:
    """A pick function that samples each row (temperature 0 or None: argmax), by ``sampling.pick_next``."""

    def pick(last_logits: np.ndarray) -> np.ndarray:
        return np.array([pick_next(row, rng, temperature, top_k, top_p) for row in last_logits], dtype=np.int64)

    return pick


class GenerationLoop:
    """docs/BUNDLE.md "Generation loop", step for step.

    1. ``state = initial(N)``; feed the prompt (its last ``max_context`` ids when set), one id per
       call when ``step_tokens == 1``.
    2. ``logits, state = step(feed, state)``; pick the next ids from the last position's logits.
    3. When ``max_context`` is set and the cached length + 1 would exceed it, reset the state and feed
       the last ``reset_keep`` ids of the whole sequence again; else feed the new ids. Repeat from 2.

    ``run`` yields after each pick and computes nothing more until asked for the next ids, so a
    consumer that stops taking stops the graph. ``resets`` counts the cache resets so far.
    """

    def __init__(self, step: StepFn, initial: InitialFn, settings: LoopSettings):
        self.step, self.initial, self.settings = step, initial, settings
        self.resets = 0

    def _feed(self, feed: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        if self.settings.step_tokens != 1:
            return self.step(feed, state)
        for i in range(feed.shape[1]):
            logits, state = self.step(feed[:, i : i + 1], state)
        return logits, state

    def run(self, prompt: np.ndarray, pick: PickFn) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(next_ids [N], last_logits [N,V])`` for ever; the caller decides when to stop."""
        seq = np.asarray(prompt, dtype=np.int64)
        if seq.ndim != 2 or seq.shape[1] == 0:
            raise ValueError(f"the prompt must be [batch, time] with at least one id, got shape {list(seq.shape)}")
        context, keep = self.settings.max_context, self.settings.keep
        state = self.initial(seq.shape[0])
        feed = seq[:, -context:] if context else seq
        cached = 0
        while True:
            logits, state = self._feed(feed, state)
            cached += feed.shape[1]
            last = logits[:, -1]
            nxt = pick(last)
            yield nxt, last
            seq = np.concatenate([seq, nxt[:, None]], axis=1)
            if context and cached + 1 > context:
                state, feed, cached = self.initial(seq.shape[0]), seq[:, -(keep or context) :], 0
                self.resets += 1
            else:
                feed = nxt[:, None]


def full_graph_step(full: Callable[[np.ndarray], np.ndarray]) -> tuple[StepFn, InitialFn]:
    """A step function over a stateless full graph (``tokens -> logits``): its state is the context so far.

    Driven by the loop, it recomputes the graph over exactly the ids the step graph would have cached,
    resets included, so its greedy tokens must equal the step graph's.
    """

    def step(feed: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        context = np.concatenate([state[0], feed], axis=1)
        return full(context)[:, -feed.shape[1] :], [context]

    def initial(batch: int) -> State:
        return [np.zeros((batch, 0), dtype=np.int64)]

    return step, initial


def greedy_tokens(
    step: StepFn, initial: InitialFn, settings: LoopSettings, prompt: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """``count`` greedy ids per row [N,count], the logits each was picked from [count,N,V], and the resets."""
    loop = GenerationLoop(step, initial, settings)
    ids, logits = [], []
    for nxt, last in islice(loop.run(prompt, greedy_pick), count):
        ids.append(nxt)
        logits.append(last)
    return np.stack(ids, axis=1), np.stack(logits), loop.resets


# ------------------------------------------------------------------------------------------- seq2seq

# The encoder's output, opaque to the loop: a numpy array from onnxruntime, a tensor kept on its device in torch.
Memory = TypeVar("Memory")


def greedy_decode(
    encode: Callable[[np.ndarray], Memory],  # src [N,S] -> memory
    decode: Callable[[np.ndarray, Memory, np.ndarray], np.ndarray],  # tgt prefix, memory, src -> logits [N,T,V]
    src: np.ndarray,
    bos: int,
    steps: int,
    eos: int | None = None,
    pad: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy seq2seq decoding from ``[bos]`` (docs/BUNDLE.md, generation of seq2seq).

    Returns the ids after bos [N, <= steps] and the logits each was picked from [n, N, V]. With
    ``eos`` given, a row that has emitted eos gets ``pad`` from then on and decoding ends once every
    row has; without it, all ``steps`` positions are decoded (parity compares each of them).
    """
    src = np.asarray(src, dtype=np.int64)
    memory = encode(src)
    tgt = np.full((src.shape[0], 1), bos, dtype=np.int64)
    done = np.zeros(src.shape[0], dtype=bool)
    picked = []
    for _ in range(steps):
        last = decode(tgt, memory, src)[:, -1]
        picked.append(last)
        nxt = greedy_pick(last)
        if eos is not None:
            nxt = np.where(done, pad, nxt)
            done |= nxt == eos
        tgt = np.concatenate([tgt, nxt[:, None]], axis=1)
        if eos is not None and done.all():
            break
    return tgt[:, 1:], np.stack(picked) if picked else np.zeros((0, src.shape[0], 0), dtype=np.float32)
