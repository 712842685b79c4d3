"""The torch generation loop of docs/BUNDLE.md: seeds, greedy decoding, sampling filters, context resets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo_runtime.sampling import pick_next
from zoo_train.data.dna import DNA_VOCAB
from zoo_train.data.text import CharVocab, UnknownCharacterError
from zoo_train.models.protocols import as_step_model
from zoo_train.registry import config_fields, get_entry, list_models
from zoo_train.tasks.text_generation import VOCAB_FIELDS, generate

TEXT_MODELS = list_models(task="text-generation")
VOCAB = 13


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def tiny_lm(name: str) -> torch.nn.Module:
    entry = get_entry(name)
    fields = config_fields(entry)
    return entry.build(**{f: VOCAB for f in VOCAB_FIELDS if f in fields}, **entry.tiny_config).eval()


@torch.no_grad()
def reference_greedy(model: torch.nn.Module, prompt: list[int], steps: int) -> list[int]:
    """Greedy decoding by recomputing the whole (context-limited) sequence every step, no state carried."""
    ids = list(prompt)
    for _ in range(steps):
        max_context = as_step_model(model).max_context
        context = ids[-max_context:] if max_context else ids
        logits, _ = model(torch.tensor([context]))
        ids.append(int(logits[0, -1].argmax()))
    return ids[len(prompt) :]


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_same_seed_repeats_and_other_seeds_differ(name: str) -> None:
    model = tiny_lm(name)
    prompt = [1, 2, 3]
    a = generate(model, prompt, 40, temperature=1.5, seed=7)
    b = generate(model, prompt, 40, temperature=1.5, seed=7)
    c = generate(model, prompt, 40, temperature=1.5, seed=8)
    assert a == b and len(a) == 40
    assert a != c


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_temperature_zero_is_greedy(name: str) -> None:
    """Past the model's context length too: the cached loop equals recomputing from scratch."""
    model = tiny_lm(name)
    prompt = [4, 5, 6, 7, 8]
    steps = 2 * (as_step_model(model).max_context or 12)
    greedy = generate(model, prompt, steps, temperature=0.0, seed=1)
    assert greedy == reference_greedy(model, prompt, steps)
    assert greedy == generate(model, prompt, steps, temperature=0.0, seed=2)  # no randomness at all
    assert greedy == generate(model, prompt, steps, temperature=1.0, top_k=1, seed=3)


def test_long_prompts_are_cut_to_the_context() -> None:
    model = tiny_lm("char-gpt")
    prompt = list(torch.randint(0, VOCAB, (3 * (as_step_model(model).max_context or 0),)).tolist())
    assert generate(model, prompt, 5, temperature=0.0) == reference_greedy(model, prompt, 5)


def test_generation_leaves_the_model_mode_alone() -> None:
    model = tiny_lm("char-lstm").train()
    generate(model, [1], 3, temperature=0.0)
    assert model.training


def test_stop_ids_end_generation_and_are_returned() -> None:
    model = tiny_lm("char-gpt")
    first = generate(model, [1, 2], 1, temperature=0.0)[0]
    assert generate(model, [1, 2], 50, temperature=0.0, stop_ids=[first]) == [first]


def test_empty_prompt_is_refused() -> None:
    with pytest.raises(ValueError, match="prompt is empty"):
        generate(tiny_lm("char-gpt"), [], 5)


def test_prompt_outside_the_vocabulary_follows_the_policy() -> None:
    vocab = CharVocab.from_text("abcdefghijklm")  # 13 characters: the tiny models' vocabulary
    model = tiny_lm("char-lstm")
    with pytest.raises(UnknownCharacterError, match=r"'Z' \(U\+005A\) at position 3"):
        generate(model, vocab.encode("abcZ"), 5)
    # DNA's policy is "skip": N (and any other letter) is dropped with a warning, case is folded.
    with pytest.warns(UserWarning, match="skipped 1 character"):
        ids = DNA_VOCAB.encode("acgNt")
    assert ids == [0, 1, 2, 3]
    assert len(generate(tiny_lm("dna-gru"), ids, 5, seed=0)) == 5


# ------------------------------------------------------------------------------------- sampling
# The one pick function (zoo_runtime.sampling), which the trainer's samples use too.
def test_top_k_keeps_only_the_k_most_likely() -> None:
    logits = np.array([0.0, 3.0, 1.0, 2.5, -1.0])
    draws = {pick_next(logits, np.random.default_rng(s), 1.0, 2, None) for s in range(200)}
    assert draws == {1, 3}


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    draws = {pick_next(logits, np.random.default_rng(s), 1.0, None, 0.7) for s in range(300)}
    assert draws == {0, 1}  # 0.5 < 0.7, so the second is needed; 0.8 >= 0.7 stops before the third
    draws = {pick_next(logits, np.random.default_rng(s), 1.0, None, 0.85) for s in range(300)}
    assert draws == {0, 1, 2}


def test_temperature_sharpens_and_flattens() -> None:
    logits = np.array([2.0, 1.0, 0.0])

    def share_of_top(temperature: float) -> float:
        rng = np.random.default_rng(0)
        return sum(pick_next(logits, rng, temperature, None, None) == 0 for _ in range(400)) / 400

    assert share_of_top(0.2) > 0.95 > share_of_top(1.0) > share_of_top(5.0)
    with pytest.raises(ValueError, match="temperature"):
        generate(tiny_lm("char-gpt"), [1], 3, temperature=-1.0)
