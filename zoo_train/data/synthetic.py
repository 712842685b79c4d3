"""Generated sequence tasks, deterministic from a seed.

Sequence classification: the *temporal order* problem (Hochreiter & Schmidhuber 1997,
experiment 6a). A sequence of random distractor symbols holds two signal symbols, each X or
Y, the first placed early (10-20% of the length) and the second in the middle (50-60%). The
class is the pair in order: XX, XY, YX, YY. Order matters: XY and YX hold the same symbols,
so any order-blind model (bag of tokens, counts) is capped at 75% accuracy. Long range
matters: the first signal lies ~40% of the sequence before the second, and the rest of the
sequence after it is noise the model must carry its memory across.

Seq2seq: map a random symbol string to its reverse (or its sorted form). Ids 0, 1, 2 are
pad, bos, eos; symbols are 3.. ; sources have random lengths and are right-padded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from zoo_runtime import schema
from zoo_runtime.contract import Vocab
from zoo_train.data.errors import DataError

ORDER_LABELS = ["XX", "XY", "YX", "YY"]
PAD, BOS, EOS = 0, 1, 2
SEQ2SEQ_SPECIALS = {"pad": PAD, "bos": BOS, "eos": EOS}
SEQ2SEQ_OPS = ("reverse", "sort")


@dataclass(frozen=True)
class TemporalOrderSpec:
    length: int = 60
    num_distractors: int = 6

    @property
    def vocab_size(self) -> int:
        return self.num_distractors + 2  # distractors 0..D-1, then X = D, Y = D + 1

    @property
    def num_classes(self) -> int:
        return len(ORDER_LABELS)


def temporal_order(spec: TemporalOrderSpec, count: int, seed: int | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` sequences int64 [count, length] and labels int64 [count] (index into ORDER_LABELS)."""
    if spec.length < 10:
        raise ValueError(f"temporal-order sequences need length >= 10, got {spec.length}")
    rng = np.random.default_rng(seed)
    n, t = count, spec.length
    tokens = rng.integers(0, spec.num_distractors, size=(n, t))
    first = rng.integers(0, 2, size=n)
    second = rng.integers(0, 2, size=n)
    lo1, hi1 = int(0.1 * t), max(int(0.1 * t) + 1, int(0.2 * t))
    lo2, hi2 = int(0.5 * t), max(int(0.5 * t) + 1, int(0.6 * t))
    rows = np.arange(n)
    tokens[rows, rng.integers(lo1, hi1, size=n)] = spec.num_distractors + first
    tokens[rows, rng.integers(lo2, hi2, size=n)] = spec.num_distractors + second
    return torch.from_numpy(tokens.astype(np.int64)), torch.from_numpy((2 * first + second).astype(np.int64))


@dataclass(frozen=True)
class Seq2SeqSpec:
    op: str = "reverse"
    num_symbols: int = 10
    min_length: int = 4
    max_length: int = 12

    def __post_init__(self) -> None:
        if self.op not in SEQ2SEQ_OPS:
            raise ValueError(f"seq2seq task must be one of {SEQ2SEQ_OPS}, got {self.op!r}")
        if not 1 <= self.min_length <= self.max_length:
            raise ValueError(f"need 1 <= min_length <= max_length, got {self.min_length}, {self.max_length}")

    @property
    def vocab_size(self) -> int:
        return 3 + self.num_symbols

    @property
    def src_len(self) -> int:
        return self.max_length

    @property
    def tgt_len(self) -> int:
        return self.max_length + 2  # bos ... eos


def seq2seq_pairs(spec: Seq2SeqSpec, count: int, seed: int | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``src`` int64 [count, max_length] and ``tgt`` int64 [count, max_length + 2] (bos, target, eos), pad-filled."""
    rng = np.random.default_rng(seed)
    src = np.full((count, spec.src_len), PAD, dtype=np.int64)
    tgt = np.full((count, spec.tgt_len), PAD, dtype=np.int64)
    lengths = rng.integers(spec.min_length, spec.max_length + 1, size=count)
    symbols = rng.integers(3, 3 + spec.num_symbols, size=(count, spec.max_length))
    for i, n in enumerate(lengths):
        seq = symbols[i, :n]
        out = seq[::-1] if spec.op == "reverse" else np.sort(seq)
        src[i, :n] = seq
        tgt[i, 0], tgt[i, 1 : n + 1], tgt[i, n + 1] = BOS, out, EOS
    return torch.from_numpy(src), torch.from_numpy(tgt)


def seq2seq_op(name: str) -> str:
    """The operation a dataset name asks for: "synthetic-reverse" -> "reverse"."""
    op = name.removeprefix("synthetic-")
    if op not in SEQ2SEQ_OPS:
        raise DataError(f"unknown seq2seq dataset {name!r}; known: " + ", ".join(f"synthetic-{o}" for o in SEQ2SEQ_OPS))
    return op


def ids_vocab(size: int, specials: Mapping[str, int | None] | None = None) -> Vocab:
    """The bundle's ``vocab`` entry for plain integer tokens 0..size-1 (docs/BUNDLE.md)."""
    given = specials or {}
    return {
        "kind": schema.VOCAB_IDS,
        "size": size,
        schema.VOCAB_TOKENS: list(range(size)),
        "unknown": schema.UNKNOWN_ERROR,
        "specials": {"pad": given.get("pad"), "bos": given.get("bos"), "eos": given.get("eos")},
    }
