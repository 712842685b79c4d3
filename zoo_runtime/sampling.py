"""Picking the next token from logits with numpy: temperature, then top-k, then top-p, then sample.

The filters are those of the torch reference (``zoo_train.tasks.text_generation.pick_next``):
top-k keeps ties with the k-th value, top-p keeps the most likely tokens while the probability
mass before them is <= top_p. Temperature 0 (or None) is greedy argmax, as there, so greedy
generations match token for token. Randomness comes only from the ``numpy.random.Generator``
passed in (``random_generator(seed)``), so the same seed gives the same tokens.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo_runtime.errors import InputError


def random_generator(seed: Any) -> np.random.Generator:
    """``np.random.default_rng(seed)`` for a seed of None (a fresh one) or a whole number 0 or more; another
    seed is an InputError naming it, where numpy would raise its own ValueError or TypeError."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise InputError(f"seed: expected a whole number 0 or more (or None for a fresh one), got {seed!r}")
    return np.random.default_rng(seed)


def filter_logits(logits: np.ndarray, temperature: float, top_k: int | None, top_p: float | None) -> np.ndarray:
    """Scaled logits (float64, 1-D) with tokens outside top-k / the top-p nucleus set to -inf."""
    x = np.asarray(logits, dtype=np.float64).reshape(-1) / float(temperature)
    vocab = x.shape[0]
    if top_k is not None and 0 < top_k < vocab:
        kth = np.partition(x, vocab - top_k)[vocab - top_k]
        x = np.where(x < kth, -np.inf, x)
    if top_p is not None and 0.0 < top_p < 1.0:
        order = np.argsort(-x, kind="stable")
        probs = softmax(x[order])
        cumulative = np.cumsum(probs)
        # Keep the most likely tokens while the mass before them is <= top_p (the first always stays).
        drop = (cumulative - probs) > top_p
        drop[0] = False
        x = x.copy()
        x[order[drop]] = -np.inf
    return x


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    result: np.ndarray = e / np.sum(e, axis=axis, keepdims=True)
    return result


def pick_next(
    logits: np.ndarray,
    rng: np.random.Generator,
    temperature: float | None = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> int:
    """The next token id from one row of logits ``[V]``."""
    row = np.asarray(logits).reshape(-1)
    if temperature is None or temperature <= 0:
        return int(np.argmax(row))
    probs = softmax(filter_logits(row, temperature, top_k, top_p))
    cumulative = np.cumsum(probs)
    u = rng.random() * cumulative[-1]
    return int(min(np.searchsorted(cumulative, u, side="right"), row.shape[0] - 1))
