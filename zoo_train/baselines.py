"""The honest baseline for every character model: an order-k Markov chain (a smoothed n-gram).

Counts come from the training part of the sequence only; bits per character are measured
on the validation part (the same split by position the neural models use), each position
predicted from the k characters before it (which may lie in the training part: the text is
one stream). Smoothing is interpolated Witten-Bell style, with a strength ``beta``:

    P_k(c | h) = (n(h, c) + beta * u(h) * P_{k-1}(c | h')) / (n(h) + beta * u(h))

where h' drops the oldest character of h, n counts training occurrences, u(h) is the number
of distinct characters seen after h, and P_{-1} is uniform over the vocabulary. A context
never seen in training falls back to P_{k-1}. ``beta = 1`` is Witten-Bell; every value gives
a proper distribution, so the figure is a real code length.

The order and ``beta`` are chosen on the validation split itself and the best figure is
reported: that flatters the baseline slightly, so a model that beats it beats it honestly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

DEFAULT_BETAS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


@dataclass(frozen=True)
class MarkovResult:
    order: int
    beta: float
    bits_per_char: float
    vocab_size: int
    eval_chars: int
    # Best bits/char for each order tried (over the betas), to show how context helps.
    by_order: dict[int, float] = field(default_factory=dict)

    @property
    def nats_per_char(self) -> float:
        return self.bits_per_char * math.log(2)

    def as_metrics(self, prefix: str = "markov") -> dict[str, float | int]:
        return {
            f"{prefix}_bpc": self.bits_per_char,
            f"{prefix}_nats": self.nats_per_char,
            f"{prefix}_order": self.order,
            f"{prefix}_beta": self.beta,
        }


def max_order_for(vocab_size: int, limit: int) -> int:
    """The largest order <= limit whose context codes (vocab_size ** (order + 1)) fit in int64."""
    k = limit
    while k > 0 and vocab_size ** (k + 1) >= 2**62:
        k -= 1
    return k


def _lookup(keys: np.ndarray, table: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each key: its value in the sorted, non-empty ``table`` (0 where absent), and the index probed."""
    idx = np.minimum(np.searchsorted(table, keys), len(table) - 1)
    return np.where(table[idx] == keys, values[idx], 0), idx


def markov_baseline(
    ids: np.ndarray,
    split: int,
    vocab_size: int,
    *,
    max_order: int = 8,
    betas: tuple[float, ...] = DEFAULT_BETAS,
    positions: np.ndarray | None = None,
) -> MarkovResult:
    """Fit orders 0..max_order on ``ids[:split]``, measure bits/char on ``ids[split:]`` (or only at
    ``positions``, all >= split: the characters a neural model was scored on), return the best."""
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids)
    if not 0 < split < n:
        raise ValueError(f"split {split} must leave both parts non-empty (sequence of {n})")
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(f"ids must lie in 0..{vocab_size - 1}")
    scored = np.arange(split, n) if positions is None else np.asarray(positions, dtype=np.int64)
    if len(scored) == 0 or scored.min() < split or scored.max() >= n:
        raise ValueError(f"positions must be non-empty and lie in the validation part {split}..{n - 1}")
    # Every order fitted must see at least one training position.
    max_order = min(max_order_for(vocab_size, max_order), split - 1)
    targets = ids[scored]
    probs = {beta: np.full(len(targets), 1.0 / vocab_size) for beta in betas}
    ctx = np.zeros(n, dtype=np.int64)  # code of the k characters before each position
    best: tuple[float, int, float] | None = None
    by_order: dict[int, float] = {}
    for k in range(max_order + 1):
        if k:
            shifted = np.zeros(n, dtype=np.int64)
            shifted[k:] = ids[:-k]
            ctx = ctx * vocab_size + shifted
        pair = ctx * vocab_size + ids
        pairs, pair_counts = np.unique(pair[k:split], return_counts=True)
        contexts, context_counts = np.unique(ctx[k:split], return_counts=True)
        # pairs are sorted, so their contexts come out in the same order as ``contexts``.
        _, distinct = np.unique(pairs // vocab_size, return_counts=True)
        n_hc, _ = _lookup(pair[scored], pairs, pair_counts)
        n_h, where = _lookup(ctx[scored], contexts, context_counts)
        u_h = np.where(n_h > 0, distinct[where], 0)
        scores = []
        for beta in betas:
            w = beta * u_h
            seen = n_h > 0
            p = probs[beta]
            p[seen] = (n_hc[seen] + w[seen] * p[seen]) / (n_h[seen] + w[seen])
            bpc = float(-np.log2(p).mean())
            scores.append(bpc)
            if best is None or bpc < best[0]:
                best = (bpc, k, beta)
        by_order[k] = min(scores)
    assert best is not None
    return MarkovResult(
        order=best[1], beta=best[2], bits_per_char=best[0], vocab_size=vocab_size, eval_chars=len(targets), by_order=by_order
    )


# ------------------------------------------------------------------------------------------ sequence classification

NAIVE_BAYES_ALPHAS = (0.1, 1.0)


@dataclass(frozen=True)
class KmerNaiveBayes:
    """A multinomial naive Bayes over the overlapping k-mers of a sequence (the RDP classifier's and, with
    exact matches instead of counts, Kraken's idea). Id 0 is padding and never part of a k-mer."""

    k: int
    alpha: float
    alphabet: int  # symbols 1..alphabet
    log_prior: np.ndarray  # [K]
    kmers: list[np.ndarray]  # per class: sorted k-mer codes seen in training
    log_probs: list[np.ndarray]  # per class: log P(k-mer | class) of those codes
    log_unseen: np.ndarray  # [K]: log P of a k-mer the class never showed

    @staticmethod
    def codes(tokens: np.ndarray, k: int, alphabet: int) -> tuple[np.ndarray, np.ndarray]:
        """(k-mer codes [N, T-k+1], valid mask: no padding inside the k-mer)."""
        tokens = np.asarray(tokens, dtype=np.int64)
        width = tokens.shape[1] - k + 1
        code = np.zeros((tokens.shape[0], max(width, 0)), dtype=np.int64)
        valid = np.ones_like(code, dtype=bool)
        for j in range(k):
            part = tokens[:, j : j + width]
            code = code * alphabet + np.maximum(part - 1, 0)
            valid &= part > 0
        return code, valid

    @classmethod
    def fit(cls, tokens: np.ndarray, labels: np.ndarray, num_classes: int, k: int, alpha: float, alphabet: int) -> KmerNaiveBayes:
        code, valid = cls.codes(tokens, k, alphabet)
        space = float(alphabet) ** k
        kmers, log_probs, unseen = [], [], []
        for c in range(num_classes):
            values, counts = np.unique(code[labels == c][valid[labels == c]], return_counts=True)
            total = counts.sum() + alpha * space
            kmers.append(values)
            log_probs.append(np.log((counts + alpha) / total))
            unseen.append(np.log(alpha / total))
        prior = np.bincount(labels, minlength=num_classes) + 1.0
        return cls(k, alpha, alphabet, np.log(prior / prior.sum()), kmers, log_probs, np.array(unseen))

    def log_scores(self, tokens: np.ndarray) -> np.ndarray:
        code, valid = self.codes(tokens, self.k, self.alphabet)
        scores = np.empty((code.shape[0], len(self.kmers)))
        for c, (values, logp) in enumerate(zip(self.kmers, self.log_probs, strict=True)):
            if len(values):
                idx = np.minimum(np.searchsorted(values, code), len(values) - 1)
                per = np.where(values[idx] == code, logp[idx], self.log_unseen[c])
            else:
                per = np.full(code.shape, self.log_unseen[c])
            scores[:, c] = np.where(valid, per, 0.0).sum(axis=1) + self.log_prior[c]
        return scores

    def predict(self, tokens: np.ndarray) -> np.ndarray:
        return self.log_scores(tokens).argmax(axis=1)


@dataclass(frozen=True)
class NaiveBayesChoice:
    model: KmerNaiveBayes
    val_accuracy: float
    by_k: dict[int, float]  # best validation accuracy for each k tried


def choose_naive_bayes(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    alphabet: int,
    max_k: int = 12,
    alphas: tuple[float, ...] = NAIVE_BAYES_ALPHAS,
) -> NaiveBayesChoice:
    """Fit k = 1..max_k (and each alpha) on ``train``, keep the most accurate on ``val`` (ties: the smaller k)."""
    max_k = min(max_order_for(alphabet, max_k - 1) + 1, train[0].shape[1])  # codes of k symbols fit in int64
    best: tuple[float, KmerNaiveBayes] | None = None
    by_k: dict[int, float] = {}
    for k in range(1, max_k + 1):
        for alpha in alphas:
            model = KmerNaiveBayes.fit(train[0], train[1], num_classes, k, alpha, alphabet)
            accuracy = float((model.predict(val[0]) == val[1]).mean())
            by_k[k] = max(by_k.get(k, 0.0), accuracy)
            if best is None or accuracy > best[0]:
                best = (accuracy, model)
    assert best is not None
    return NaiveBayesChoice(best[1], best[0], by_k)
