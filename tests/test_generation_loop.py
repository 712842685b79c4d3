"""The one generation loop and seq2seq decoder (zoo_runtime.generation), driven by fake steps: no model, no graph."""

from __future__ import annotations

from itertools import islice

import numpy as np
import pytest

from zoo_runtime.generation import (
    GenerationLoop,
    LoopSettings,
    full_graph_step,
    greedy_decode,
    greedy_pick,
    greedy_tokens,
    sampling_pick,
)

VOCAB = 7


class CountingStep:
    """A cache that records every feed; the next id is (sum of the cached ids + 1) mod VOCAB, as one-hot logits."""

    def __init__(self) -> None:
        self.feeds: list[list[int]] = []

    def initial(self, batch: int) -> list[np.ndarray]:
        return [np.zeros((batch, 0), dtype=np.int64)]

    def __call__(self, feed: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        self.feeds.append(feed[0].tolist())
        cache = np.concatenate([state[0], feed], axis=1)
        logits = np.zeros((feed.shape[0], feed.shape[1], VOCAB))
        for i in range(feed.shape[1]):
            nxt = (cache[:, : cache.shape[1] - feed.shape[1] + i + 1].sum(axis=1) + 1) % VOCAB
            logits[np.arange(feed.shape[0]), i, nxt] = 1.0
        return logits, [cache]


def test_cache_resets_feed_the_last_reset_keep_ids_at_the_right_lengths() -> None:
    step = CountingStep()
    loop = GenerationLoop(step, step.initial, LoopSettings(max_context=6, reset_keep=3))
    out = [int(n[0]) for n, _ in islice(loop.run(np.array([[1, 2, 3, 4]]), greedy_pick), 8)]
    # The prompt fills 4 of 6 positions; ids 5 and 6 are fed one by one; the 7th would not fit: reset,
    # then the last 3 ids of the whole sequence are fed again, and so on.
    seq = [1, 2, 3, 4, *out]
    assert step.feeds[0] == [1, 2, 3, 4]
    assert step.feeds[1] == [seq[4]] and step.feeds[2] == [seq[5]]
    assert step.feeds[3] == seq[4:7]  # reset: 4 + 1 + 1 = 6 cached, one more would exceed 6
    assert loop.resets == 2
    assert all(len(f) <= 6 for f in step.feeds)


def test_without_reset_keep_the_whole_window_is_fed_again_and_long_prompts_are_cut() -> None:
    step = CountingStep()
    loop = GenerationLoop(step, step.initial, LoopSettings(max_context=4))
    list(islice(loop.run(np.array([[1, 2, 3, 4, 5, 6]]), greedy_pick), 3))
    assert step.feeds[0] == [3, 4, 5, 6]  # the last max_context ids of the prompt
    assert len(step.feeds[1]) == 4  # cache full after the first pick: every new id resets to the whole window


def test_step_tokens_one_feeds_one_id_per_call() -> None:
    step = CountingStep()
    loop = GenerationLoop(step, step.initial, LoopSettings(step_tokens=1))
    first = next(loop.run(np.array([[1, 2, 3]]), greedy_pick))
    assert step.feeds == [[1], [2], [3]]
    batched = CountingStep()
    same = next(GenerationLoop(batched, batched.initial, LoopSettings()).run(np.array([[1, 2, 3]]), greedy_pick))
    assert batched.feeds == [[1, 2, 3]] and first[0].tolist() == same[0].tolist()


def test_the_loop_computes_nothing_past_the_last_id_taken() -> None:
    step = CountingStep()
    ids, _, _ = greedy_tokens(step, step.initial, LoopSettings(), np.array([[1]]), 5)
    assert ids.shape == (1, 5) and len(step.feeds) == 5


def test_full_graph_recomputed_each_step_equals_the_cached_step() -> None:
    step = CountingStep()

    def full(tokens: np.ndarray) -> np.ndarray:
        return CountingStep()(tokens, [np.zeros((tokens.shape[0], 0), dtype=np.int64)])[0]

    for settings in (LoopSettings(max_context=5, reset_keep=2), LoopSettings(max_context=5), LoopSettings()):
        prompt = np.array([[1, 2, 3], [4, 0, 6]])
        cached, _, resets = greedy_tokens(step, step.initial, settings, prompt, 20)
        recomputed, _, _ = greedy_tokens(*full_graph_step(full), settings, prompt, 20)
        np.testing.assert_array_equal(cached, recomputed)
        assert (resets > 0) == (settings.max_context is not None)


def test_top_k_keeps_ties_with_the_kth_and_top_p_keeps_the_first_id() -> None:
    logits = np.array([[3.0, 1.0, 3.0, 2.0, 2.0]])
    draws = {int(sampling_pick(np.random.default_rng(s), 1.0, top_k=2)(logits)[0]) for s in range(100)}
    assert draws == {0, 2}  # ties at the 2nd value both stay
    draws = {int(sampling_pick(np.random.default_rng(s), 1.0, top_k=3)(logits)[0]) for s in range(300)}
    assert draws == {0, 2, 3, 4}  # the 3rd value (2.0) is tied: both ids with it stay
    sharp = np.log(np.array([[0.9, 0.05, 0.05]]))
    assert {int(sampling_pick(np.random.default_rng(s), 1.0, top_p=0.1)(sharp)[0]) for s in range(50)} == {0}


def test_the_same_seed_gives_the_same_ids_and_temperature_zero_is_greedy() -> None:
    step = CountingStep()
    rng_logits = np.random.default_rng(0).normal(size=(1, 1, VOCAB))

    def noisy(feed: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        return np.repeat(rng_logits, feed.shape[1], axis=1), state

    def sample(seed: int, temperature: float) -> list[int]:
        loop = GenerationLoop(noisy, step.initial, LoopSettings())
        pick = sampling_pick(np.random.default_rng(seed), temperature)
        return [int(n[0]) for n, _ in islice(loop.run(np.array([[1]]), pick), 30)]

    assert sample(1, 1.5) == sample(1, 1.5) != sample(2, 1.5)
    assert sample(1, 0.0) == [int(np.argmax(rng_logits))] * 30


def test_an_empty_prompt_is_refused() -> None:
    step = CountingStep()
    with pytest.raises(ValueError, match="at least one id"):
        next(GenerationLoop(step, step.initial, LoopSettings()).run(np.zeros((1, 0), dtype=np.int64), greedy_pick))


def test_seq2seq_greedy_pads_finished_rows_and_stops_when_all_have_ended() -> None:
    eos, bos, pad = 2, 1, 0
    plans = np.array([[5, 6, eos, 4, 4], [5, eos, 3, 3, 3]])  # what each row would emit, position by position

    def decode(tgt: np.ndarray, memory: np.ndarray, src: np.ndarray) -> np.ndarray:
        logits = np.zeros((tgt.shape[0], tgt.shape[1], 8))
        logits[np.arange(tgt.shape[0]), -1, plans[:, tgt.shape[1] - 1]] = 1.0
        return logits

    out, logits = greedy_decode(lambda s: s, decode, np.zeros((2, 3), dtype=np.int64), bos, 5, eos=eos, pad=pad)
    assert out.tolist() == [[5, 6, eos], [5, eos, pad]]  # stopped after 3 steps, not 5
    assert logits.shape == (3, 2, 8)
    every, _ = greedy_decode(lambda s: s, decode, np.zeros((2, 3), dtype=np.int64), bos, 5)
    assert every.tolist() == plans.tolist()  # without eos every position is decoded (parity)
