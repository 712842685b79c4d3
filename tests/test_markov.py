"""The order-k Markov baseline against sources whose entropy is known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zoo_train.baselines import markov_baseline, max_order_for


def entropy_bits(probs: list[float]) -> float:
    return -sum(p * math.log2(p) for p in probs if p > 0)


def test_iid_uniform_source_costs_log2_v_bits() -> None:
    ids = np.random.default_rng(0).integers(0, 4, 120_000)
    result = markov_baseline(ids, 100_000, 4, max_order=4)
    assert result.bits_per_char == pytest.approx(2.0, abs=0.01)  # DNA's trivial bound
    assert result.by_order[0] == pytest.approx(2.0, abs=0.01)


def test_order_two_source_is_found_and_priced_at_its_entropy() -> None:
    """x_t = (x_{t-2} + x_{t-1}) mod 3 with probability 0.8, else one of the other two symbols."""
    rng = np.random.default_rng(1)
    n = 120_000
    ids = np.zeros(n, dtype=np.int64)
    ids[1] = 1
    follow, noise = rng.random(n) < 0.8, rng.integers(1, 3, n)
    for t in range(2, n):
        rule = (ids[t - 2] + ids[t - 1]) % 3
        ids[t] = rule if follow[t] else (rule + noise[t]) % 3
    truth = entropy_bits([0.8, 0.1, 0.1])  # 0.922 bits
    result = markov_baseline(ids, 100_000, 3, max_order=5)
    assert result.order >= 2
    assert result.bits_per_char == pytest.approx(truth, abs=0.02)
    # Fewer than two characters of context know nothing: the next symbol is uniform given one.
    assert result.by_order[1] == pytest.approx(math.log2(3), abs=0.01)
    assert result.by_order[2] == pytest.approx(truth, abs=0.02)


def test_deterministic_text_costs_almost_nothing() -> None:
    ids = np.tile(np.arange(7), 2000)
    result = markov_baseline(ids, 12_000, 7, max_order=3)
    assert result.bits_per_char < 0.01


def test_unseen_validation_symbols_still_get_probability() -> None:
    ids = np.array([0, 1] * 500 + [2, 2, 2])  # symbol 2 never occurs in training
    result = markov_baseline(ids, 1000, 3, max_order=2)
    assert math.isfinite(result.bits_per_char)


def test_metrics_and_limits() -> None:
    result = markov_baseline(np.array([0, 1, 0, 1, 1, 0, 1, 0]), 6, 2, max_order=2)
    metrics = result.as_metrics()
    assert metrics["markov_nats"] == pytest.approx(metrics["markov_bpc"] * math.log(2))
    assert max_order_for(84, 8) == 8 and max_order_for(70_000, 8) == 2  # context codes must fit int64
    with pytest.raises(ValueError):
        markov_baseline(np.array([0, 1, 2]), 3, 3)
    with pytest.raises(ValueError):
        markov_baseline(np.array([0, 5]), 1, 3)


def test_scoring_a_subset_of_positions() -> None:
    """Scored only where a neural model was scored, the figure is the mean over those characters."""
    ids = np.random.default_rng(2).integers(0, 4, 20_000)
    full = markov_baseline(ids, 15_000, 4, max_order=0, betas=(1.0,))
    half = markov_baseline(ids, 15_000, 4, max_order=0, betas=(1.0,), positions=np.arange(15_000, 20_000, 2))
    assert half.eval_chars == 2500 and half.bits_per_char == pytest.approx(full.bits_per_char, abs=0.02)
    with pytest.raises(ValueError, match="validation part"):
        markov_baseline(ids, 15_000, 4, positions=np.array([10]))
