"""Text generation: character language models on text or DNA, the generation loop, the Markov baseline.

Data: the corpus as one id sequence, split by position (the last 10% is validation). Training
draws windows of ``block_size + 1`` ids at random start positions (the dataset holds every
start; the trainer shuffles it with a seeded generator and ``Recipe.steps_per_epoch`` caps the
batches per epoch). Validation scores each window's second half only, so every scored
character has at least ``block_size // 2`` characters of context (a fresh window's first
predictions know next to nothing, which would make the comparison with the Markov baseline,
always given its k characters, unfair). Windows advance by that half, so the scored parts tile
the held-out tenth; ``Recipe.limit_eval`` of them are spread evenly over it (or all).

Metrics: loss in nats per character, bits per character (``/ ln 2``) and perplexity
(``exp``). After training they are measured again on ``data_options["final_eval_windows"]``
windows (default: the whole held-out tenth), next to an order-k Markov baseline fitted on
the same training part and scored on exactly the same characters.

Recipe ``data_options``: ``block_size`` (training window, else the model's own),
``final_eval_windows``, ``markov_max_order`` (default 8), ``sample_tokens`` (length of the
samples written after training; default the sampling defaults' ``max_new_tokens``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from zoo_runtime import schema
from zoo_runtime.contract import Sampling, TextGenerationMeta
from zoo_runtime.generation import (
    SAMPLING_DEFAULTS,
    GenerationLoop,
    InitialFn,
    LoopSettings,
    StepFn,
    sampling_pick,
)
from zoo_runtime.rundir import RunDir
from zoo_train.baselines import markov_baseline
from zoo_train.data.dna import GENOMES, load_dna_corpus
from zoo_train.data.errors import DataError
from zoo_train.data.text import CharVocab, Corpus, load_text_corpus, split_point
from zoo_train.models.protocols import as_step_model
from zoo_train.registry import ModelEntry, Recipe, config_fields
from zoo_train.tasks.base import BatchLoader, DeviceLoader, Task, TaskData, register_task

# The constructor fields that take the vocabulary size, whatever a family calls them.
VOCAB_FIELDS = ("vocab_size", "input_size", "output_size")


# ------------------------------------------------------------------------------------- sampling
def numpy_step(module: nn.Module, device: torch.device) -> tuple[StepFn, InitialFn]:
    """The model's ``step`` and ``initial_state`` as numpy functions, for ``zoo_runtime.generation``'s loop."""
    model = as_step_model(module)

    def step(feed: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        with torch.no_grad():
            out = model.step(torch.from_numpy(feed).to(device), *[torch.from_numpy(s).to(device) for s in state])
        return out[0].float().cpu().numpy(), [o.cpu().numpy() for o in out[1:]]

    def initial(batch: int) -> list[np.ndarray]:
        return [t.cpu().numpy() for t in model.initial_state(batch, device)]

    return step, initial


def loop_settings(module: nn.Module) -> LoopSettings:
    """The model's generation attributes (docs/BUNDLE.md, model-side protocols) as the loop's settings."""
    model = as_step_model(module)
    return LoopSettings(
        max_context=model.max_context,
        reset_keep=getattr(model, "reset_keep", None),
        step_tokens=model.step_tokens,
    )


@torch.no_grad()
def generate(
    model: nn.Module,
    prompt_ids: Sequence[int],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    stop_ids: Sequence[int] | None = None,
) -> list[int]:
    """New ids after the prompt (a stop id, if hit, is the last), by ``zoo_runtime.generation``'s loop:
    the one the runtime drives with onnxruntime, so that both pick the same tokens from the same logits."""
    ids = [int(i) for i in prompt_ids]
    if not ids:
        raise ValueError("the prompt is empty: generation needs at least one token to start from")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    step, initial = numpy_step(model, device)
    loop = GenerationLoop(step, initial, loop_settings(model))
    pick = sampling_pick(np.random.default_rng(seed), temperature, top_k, top_p)
    stops = set(stop_ids or ())
    new: list[int] = []
    threads = torch.get_num_threads()
    # Batch-1 steps are tiny matmuls: on CPU, thread synchronisation costs more than it saves
    # (measured 35 us vs 1.3 ms per small linear with 2 threads on a busy 2-core machine).
    torch.set_num_threads(1)
    try:
        for nxt, _logits in islice(loop.run(np.asarray([ids]), pick), max_new_tokens):
            new.append(int(nxt[0]))
            if new[-1] in stops:
                break
    finally:
        torch.set_num_threads(threads)
        model.train(was_training)
    return new


# ------------------------------------------------------------------------------------ datasets
class Windows(Dataset):
    """Windows of ``length`` consecutive ids, starting every ``stride`` ids, or ``limit`` of them spread evenly."""

    def __init__(self, ids: torch.Tensor, length: int, stride: int = 1, limit: int | None = None):
        count = (len(ids) - length) // stride + 1
        if count < 1:
            raise DataError(f"a sequence of {len(ids)} ids is shorter than one window of {length}")
        self.ids, self.length, self.stride, self.count = ids, length, stride, count
        # Only a limited set keeps its window numbers: the training set has millions of windows.
        self.picks = None if not limit or limit >= count else torch.linspace(0, count - 1, limit).round().long()

    def __len__(self) -> int:
        return self.count if self.picks is None else len(self.picks)

    def start(self, index: int) -> int:
        return (index if self.picks is None else int(self.picks[index])) * self.stride

    def __getitem__(self, index: int) -> torch.Tensor:
        start = self.start(index)
        return self.ids[start : start + self.length]


def burn_in(block: int) -> int:
    """Leading predictions of a validation window that are not scored (too little context)."""
    return block // 2


def context_length(entry: ModelEntry, recipe: Recipe) -> int:
    """Training window: ``data_options["block_size"]``, else the model's own ``block_size``."""
    if "block_size" in recipe.data_options:
        return int(recipe.data_options["block_size"])
    config = {**dataclasses.asdict(entry.config_cls()), **dict(recipe.model_overrides)}
    if "block_size" not in config:
        raise ValueError(f"{entry.name}: its recipe must set data_options['block_size'] (the training window)")
    return int(config["block_size"])


def load_corpus(entry: ModelEntry, data: str | None, data_dir: Path | None) -> Corpus:
    """DNA models (those whose default data is a genome) read FASTA; the rest read UTF-8 text."""
    if entry.default_dataset in GENOMES:
        return load_dna_corpus(data or entry.default_dataset, data_dir)
    return load_text_corpus(data or entry.default_dataset, data_dir)


# ---------------------------------------------------------------------------------------- task
class TextGeneration(Task):
    name = schema.TASK_TEXT_GENERATION
    primary_metric = "val_loss"
    mode = "min"

    def nominal_model_config(self, dataset: str) -> dict[str, Any]:
        return {"vocab_size": 4} if dataset in GENOMES else {}

    def load_data(self, entry: ModelEntry, recipe: Recipe, data: str | None, data_dir: Path | None, seed: int) -> TaskData:
        corpus = load_corpus(entry, data, data_dir)
        block = context_length(entry, recipe)
        split = split_point(len(corpus.ids))
        if len(corpus.ids) - split < block + 1:
            raise DataError(
                f"{corpus.description}: the validation tenth ({len(corpus.ids) - split} ids) is shorter than one "
                f"window of {block + 1}; use a longer corpus"
            )
        ids = torch.from_numpy(corpus.ids)
        train = Windows(ids[:split], block + 1)
        val = Windows(ids[split:], block + 1, stride=block - burn_in(block), limit=recipe.limit_eval)
        fields = config_fields(entry)
        sampling: Sampling = {**SAMPLING_DEFAULTS, **corpus.sampling}  # type: ignore[typeddict-item]
        meta: TextGenerationMeta = {"vocab": corpus.vocab.to_meta(), "sampling": sampling, "block_size": block}
        return TaskData(
            train=train,
            val=val,
            test=None,
            model_config={f: corpus.vocab.size for f in VOCAB_FIELDS if f in fields},
            meta=meta,
            description=f"{corpus.description}; train {split:,} / val {len(corpus.ids) - split:,} (last 10% by position)",
            extras={"ids": corpus.ids, "split": split},
        )

    def loss(self, model: nn.Module, batch: torch.Tensor, recipe: Recipe) -> torch.Tensor:
        logits, _ = model(batch[:, :-1])
        return F.cross_entropy(logits.flatten(0, 1).float(), batch[:, 1:].flatten())

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: BatchLoader, device: torch.device, recipe: Recipe) -> dict[str, float]:
        model.eval()
        total, count = 0.0, 0
        for index, batch in enumerate(loader):
            if recipe.eval_batches is not None and index >= recipe.eval_batches:
                break
            logits, _ = model(batch[:, :-1])
            skip = burn_in(batch.shape[1] - 1)
            targets = batch[:, 1 + skip :]
            total += F.cross_entropy(logits[:, skip:].flatten(0, 1).float(), targets.flatten(), reduction="sum").item()
            count += targets.numel()
        nats = total / max(1, count)
        return {"val_loss": nats, "val_bpc": nats / math.log(2), "val_perplexity": math.exp(nats)}

    def final_report(
        self, model: nn.Module, data: TaskData, out_dir: Path, device: torch.device, recipe: Recipe
    ) -> dict[str, Any]:
        model.eval()
        # The final figure uses more of the held-out tenth than the per-epoch check (all of it
        # unless the recipe caps it), and the Markov baseline is scored on exactly the same characters.
        ids, split, block = data.extras["ids"], data.extras["split"], data.meta["block_size"]
        skip = burn_in(block)
        windows = Windows(
            torch.from_numpy(ids[split:]), block + 1, stride=block - skip, limit=recipe.data_options.get("final_eval_windows")
        )
        loader = DeviceLoader(
            self.make_loader(windows, recipe.batch_size, train=False, data=data, generator=None),
            device,
            data.batch_transform,
            train=False,
        )
        val = self.evaluate(model, loader, device, dataclasses.replace(recipe, eval_batches=None))
        starts = np.array([windows.start(i) for i in range(len(windows))])
        scored = (split + 1 + skip + starts[:, None] + np.arange(block - skip)[None, :]).ravel()
        vocab = CharVocab.from_meta(data.meta["vocab"])
        baseline = markov_baseline(
            ids, split, vocab.size, positions=scored, max_order=int(recipe.data_options.get("markov_max_order", 8))
        )
        samples = write_samples(
            model,
            vocab,
            data,
            RunDir(out_dir).samples_text,
            int(recipe.data_options.get("sample_tokens", data.meta["sampling"]["max_new_tokens"])),
        )
        return {
            **val,
            **baseline.as_metrics(),
            "markov_by_order": baseline.by_order,
            "uniform_bpc": math.log2(vocab.size),
            "beats_markov": val["val_bpc"] < baseline.bits_per_char,
            "val_chars_scored": len(scored),
            "metric": "val_bpc",
            "baseline_metric": "markov_bpc",
            "split": "last 10% of the corpus by position",
            "samples": samples.name,
        }

    def reference_call(
        self, model: nn.Module, manifest: Mapping[str, Any], request: Mapping[str, Any]
    ) -> Callable[[], dict[str, Any]]:
        index = {t: i for i, t in enumerate(manifest["vocab"][schema.VOCAB_TOKENS])}
        ids = [index[c] for c in request["prompt"]]
        given = {k: v for k, v in {**(manifest.get("sampling") or {}), **request}.items() if v is not None}
        settings = {**SAMPLING_DEFAULTS, **given}  # as the runtime's generate: the request, the bundle's, the defaults
        return lambda: {"pieces": len(generate(model, ids, settings["max_new_tokens"], temperature=settings["temperature"]))}


def prompt_from(data: TaskData, vocab: CharVocab, length: int) -> list[int]:
    """The first ``length`` ids of the held-out part, starting after a newline where there is one."""
    held_out = data.extras["ids"][data.extras["split"] :]
    newline = vocab.tokens.index("\n") if "\n" in vocab.tokens else None
    start = 0
    if newline is not None:
        hits = np.flatnonzero(held_out[: 10 * length] == newline)
        start = int(hits[0]) + 1 if len(hits) else 0
    return [int(i) for i in held_out[start : start + length]]


def write_samples(model: nn.Module, vocab: CharVocab, data: TaskData, path: Path, max_new_tokens: int) -> Path:
    """Greedy and sampled continuations of a held-out prompt, as text."""
    settings = data.meta["sampling"]
    prompt = prompt_from(data, vocab, 32)
    sampled = {key: settings[key] for key in ("temperature", "top_k", "top_p")}
    described = ", ".join(f"{key.replace('_', '-')} {value}" for key, value in sampled.items() if value is not None)
    runs = [("greedy (temperature 0)", {"temperature": 0.0, "seed": 0})] + [
        (f"{described}, seed {seed}", {**sampled, "seed": seed}) for seed in (0, 1)
    ]
    parts = [f"# {type(model).__name__} samples; prompt from the held-out part: {vocab.decode(prompt)!r}\n"]
    for title, kwargs in runs:
        new = generate(model, prompt, max_new_tokens, **kwargs)
        parts.append(f"\n## {title}\n{vocab.decode(prompt)}{vocab.decode(new)}\n")
    path.write_text("".join(parts), encoding="utf-8")
    return path


register_task(TextGeneration())
