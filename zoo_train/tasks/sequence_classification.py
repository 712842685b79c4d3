"""Sequence classification: which genome a DNA read comes from (the default), the user's own labelled
sequences, or the generated temporal-order task; LSTM vs GRU vs a k-mer naive Bayes side by side.

Data (``--data``):
- ``genome-reads`` (default): reads of M. tuberculosis H37Rv and M. leprae TN (Debian's kmer-examples),
  from disjoint genome regions per split, both strands, balanced (zoo_train.data.sequences).
- ``FILE.tsv``: ``label<TAB>sequence`` lines, split 80/10/10 by the seed; characters from the training split.
- ``FOLDER``: FASTA files, one per class (the file name is the label); reads sampled as for the genomes.
- ``temporal-order``: the generated long-range task (zoo_train.data.synthetic), kept for tests and teaching.

The real-data runs carry a classical baseline, a k-mer naive Bayes whose k is chosen on the validation
split, measured on the same test reads. After each run the table ``<out>/sequence-classification.md`` is
rewritten from every sequence-classification run found beside this one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from zoo_runtime import schema
from zoo_runtime.contract import SequenceClassificationMeta
from zoo_runtime.rundir import SAMPLES_TEXT_FILE, SUMMARY_FILE, RunDir
from zoo_train.baselines import choose_naive_bayes
from zoo_train.data.errors import DataError
from zoo_train.data.sequences import (
    DNA_READ_VOCAB,
    PAD,
    READS_DATASET,
    TokenVocab,
    check_lengths,
    left_padded,
    load_fasta_classes,
    load_genome_classes,
    read_tsv_pairs,
    sample_split_reads,
    split_rows,
    unseen_characters,
)
from zoo_train.data.synthetic import ORDER_LABELS, TemporalOrderSpec, ids_vocab, temporal_order
from zoo_train.registry import ModelEntry, Recipe
from zoo_train.tasks.base import BatchLoader, DeviceLoader, Task, TaskData, predict_classes, register_task

TEMPORAL_ORDER = "temporal-order"
SIZES = {"train": 20000, "val": 2000, "test": 2000}
READ_LENGTHS = (100, 150)
TSV_MAX_LENGTH = 512  # characters a TSV sequence may have unless the data option max_length says otherwise
EXAMPLES_IN_BUNDLE = 8
ORDER_BLIND_CEILING = 0.75  # XY and YX hold the same symbols: an order-blind model must guess between them
COMPARISON_FILE = "sequence-classification.md"
# Reads and TSV sequences: classified from the mean state over the real (non-pad) tokens (zoo_train.models.seq_classifier).
MEAN_OVER_REAL_TOKENS = {"pooling": "mean", "pad_id": PAD}


def _counts(recipe: Recipe, per_class: int = 1) -> dict[str, int]:
    """Examples per split (per class where ``per_class`` divides them), capped by the recipe's limits."""
    limits = {"train": recipe.limit_train, "val": recipe.limit_eval, "test": recipe.limit_eval}
    train_size = int(recipe.data_options.get("train_size", SIZES["train"]))
    wanted = {"train": train_size, "val": SIZES["val"], "test": SIZES["test"]}
    return {s: max(1, min(n, limits[s] or n) // per_class) for s, n in wanted.items()}


class SequenceClassification(Task):
    name = schema.TASK_SEQUENCE_CLASSIFICATION
    primary_metric = "val_accuracy"
    mode = "max"

    def nominal_model_config(self, dataset: str) -> dict[str, Any]:
        if dataset == TEMPORAL_ORDER:
            spec = TemporalOrderSpec()
            return {"vocab_size": spec.vocab_size, "num_classes": spec.num_classes}
        if dataset == READS_DATASET:
            return {"vocab_size": DNA_READ_VOCAB.size, "num_classes": 2, **MEAN_OVER_REAL_TOKENS}
        return {}

    def load_data(self, entry: ModelEntry, recipe: Recipe, data: str | None, data_dir: Path | None, seed: int) -> TaskData:
        name = data or entry.default_dataset
        if name == TEMPORAL_ORDER:
            return self._temporal_order(recipe, seed)
        if name == READS_DATASET:
            labels, genomes, where = load_genome_classes(data_dir)
            return self._reads(recipe, seed, labels, genomes, f"{READS_DATASET} of {where}")
        path = Path(name)
        if path.is_dir():
            labels, genomes = load_fasta_classes(path)
            return self._reads(recipe, seed, labels, genomes, f"reads of the FASTA files in {path}")
        if path.is_file():
            return self._tsv(recipe, seed, path)
        raise DataError(
            f"{name}: no such file or folder; sequence classifiers take {READS_DATASET} (default), "
            f"{TEMPORAL_ORDER}, a label<TAB>sequence .tsv file or a folder of FASTA files (one per class)"
        )

    # ------------------------------------------------------------------------------ datasets

    def _reads(self, recipe: Recipe, seed: int, labels: list[str], genomes: list[str], where: str) -> TaskData:
        options = recipe.data_options
        lengths = (int(options.get("min_length", READ_LENGTHS[0])), int(options.get("max_length", READ_LENGTHS[1])))
        counts = _counts(recipe, per_class=len(labels))
        reads = sample_split_reads(genomes, counts, lengths, seed, int(options.get("region_size", 10_000)), labels)
        sets = {
            split: TensorDataset(
                left_padded([r.sequence for r in rs], DNA_READ_VOCAB, lengths[1]), torch.tensor([r.label for r in rs])
            )
            for split, rs in reads.items()
        }
        sizes = " / ".join(f"{s} {len(rs)}" for s, rs in reads.items())
        return TaskData(
            train=sets["train"],
            val=sets["val"],
            test=sets["test"],
            model_config={"vocab_size": DNA_READ_VOCAB.size, "num_classes": len(labels), **MEAN_OVER_REAL_TOKENS},
            meta={
                "labels": labels,
                "vocab": DNA_READ_VOCAB.to_meta(),
                "max_length": lengths[1],
                "examples": [[labels[r.label], r.sequence] for r in reads["test"][:EXAMPLES_IN_BUNDLE]],
                "generator": {"name": READS_DATASET, "read_lengths": list(lengths), "seed": seed, "strands": "both"},
            },
            description=(
                f"{where}: reads of {lengths[0]}-{lengths[1]} nt, both strands, disjoint genome regions per split, "
                f"seed {seed}; {sizes} (balanced)"
            ),
            extras={"baseline": True, "vocab": DNA_READ_VOCAB},
        )

    def _tsv(self, recipe: Recipe, seed: int, path: Path) -> TaskData:
        rows = read_tsv_pairs(path, ("label", "sequence"))
        labels = sorted({label for label, _, _ in rows})
        if len(labels) < 2:
            raise DataError(f"{path}: every line has the label {labels[0]!r}; a classifier needs two or more classes")
        limit = int(recipe.data_options.get("max_length", TSV_MAX_LENGTH))
        truncate = bool(recipe.data_options.get("truncate", False))
        check_lengths(((seq, number) for _, seq, number in rows), limit, truncate, str(path))
        splits = split_rows(rows, seed, str(path))
        vocab = TokenVocab.from_texts(seq for _, seq, _ in splits["train"])
        unseen = unseen_characters((seq for s in ("val", "test") for _, seq, _ in splits[s]), vocab)
        length = min(limit, max(len(seq) for _, seq, _ in rows))
        index = {label: i for i, label in enumerate(labels)}
        sets = {
            split: TensorDataset(
                left_padded([seq[:limit] for _, seq, _ in rs], vocab, length), torch.tensor([index[lab] for lab, _, _ in rs])
            )
            for split, rs in splits.items()
        }
        sizes = " / ".join(f"{s} {len(rs)}" for s, rs in splits.items())
        dropped = f"; {unseen} validation/test characters not in the training split were dropped" if unseen else ""
        return TaskData(
            train=sets["train"],
            val=sets["val"],
            test=sets["test"],
            model_config={"vocab_size": vocab.size, "num_classes": len(labels), **MEAN_OVER_REAL_TOKENS},
            meta={
                "labels": labels,
                "vocab": vocab.to_meta(),
                "max_length": limit,
                "examples": [[lab, seq[:limit]] for lab, seq, _ in splits["test"][:EXAMPLES_IN_BUNDLE]],
                "generator": {"name": "tsv", "file": str(path), "seed": seed},
            },
            description=f"{path}: {len(labels)} classes, {vocab.size - 1} characters; {sizes} (seed {seed}){dropped}",
            extras={"baseline": True, "vocab": vocab},
        )

    def _temporal_order(self, recipe: Recipe, seed: int) -> TaskData:
        options = recipe.data_options
        spec = TemporalOrderSpec(length=int(options.get("length", 60)), num_distractors=int(options.get("num_distractors", 6)))
        counts = _counts(recipe)
        sets = {split: TensorDataset(*temporal_order(spec, n, seed=[seed, i])) for i, (split, n) in enumerate(counts.items())}
        d = spec.num_distractors
        meta: SequenceClassificationMeta = {
            "labels": list(ORDER_LABELS),
            "vocab": ids_vocab(spec.vocab_size),
            "generator": {
                "name": TEMPORAL_ORDER,
                "length": spec.length,
                "num_distractors": d,
                "signals": {"X": d, "Y": d + 1},
                "seed": seed,
            },
        }
        return TaskData(
            train=sets["train"],
            val=sets["val"],
            test=sets["test"],
            model_config={"vocab_size": spec.vocab_size, "num_classes": spec.num_classes},
            meta=meta,
            description=(
                f"{TEMPORAL_ORDER} (generated, seed {seed}): length {spec.length}, {d} distractor symbols, classes "
                f"{'/'.join(ORDER_LABELS)}; train {counts['train']} / val {counts['val']} / test {counts['test']}"
            ),
        )

    # ------------------------------------------------------------------------------ training and report

    def loss(self, model: nn.Module, batch: Any, recipe: Recipe) -> torch.Tensor:
        tokens, labels = batch
        return F.cross_entropy(model(tokens).float(), labels, label_smoothing=recipe.label_smoothing)

    def evaluate(self, model: nn.Module, loader: BatchLoader, device: torch.device, recipe: Recipe) -> dict[str, float]:
        true, pred, loss = predict_classes(model, loader)
        return {"val_loss": loss, "val_accuracy": float((pred == true).float().mean())}

    def final_report(
        self, model: nn.Module, data: TaskData, out_dir: Path, device: torch.device, recipe: Recipe
    ) -> dict[str, Any]:
        assert data.test is not None
        loader = DeviceLoader(self.make_loader(data.test, 256, train=False, data=data, generator=None), device, None, train=False)
        started = time.perf_counter()
        true, pred, loss = predict_classes(model, loader)
        reads_per_second = len(true) / max(time.perf_counter() - started, 1e-9)
        accuracy = float((pred == true).float().mean())
        epochs = [r for r in _read_jsonl(RunDir(out_dir).metrics) if r.get("kind") == "epoch"]
        report: dict[str, Any] = {
            "test_loss": loss,
            "test_accuracy": accuracy,
            "chance_accuracy": 1 / len(data.meta["labels"]),
            "reads_per_second": reads_per_second,
            "seconds_per_epoch": sum(r["seconds"] for r in epochs) / max(1, len(epochs)),
            "metric": "test_accuracy",
            "dataset": data.meta["generator"]["name"],
            "split": "test split (regions or lines held out from training)",
            "samples": SAMPLES_TEXT_FILE,
        }
        if data.extras.get("baseline"):
            report.update(naive_bayes_report(data))
            write_read_examples(data, pred, data.extras["vocab"], RunDir(out_dir).samples_text)
        else:
            report.update(order_blind_ceiling=ORDER_BLIND_CEILING, baseline_metric="order_blind_ceiling")
            write_order_examples(data, pred, RunDir(out_dir).samples_text)
        row = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "data": data.description,
            "train_seconds": sum(r["seconds"] for r in epochs),
            **report,
        }
        (out_dir.parent / COMPARISON_FILE).write_text(comparison_table(out_dir.parent, current=(out_dir.name, row)))
        return report

    def reference_call(
        self, model: nn.Module, manifest: Mapping[str, Any], request: Mapping[str, Any]
    ) -> Callable[[], dict[str, Any]]:
        tokens = torch.tensor([request[schema.INPUT_TOKENS]])
        return lambda: {"probabilities": torch.softmax(model(tokens), -1)}


def naive_bayes_report(data: TaskData) -> dict[str, Any]:
    """The k-mer naive Bayes baseline: k chosen on validation, scored on the test split."""
    arrays = {s: tuple(t.numpy() for t in getattr(data, s).tensors) for s in ("train", "val", "test")}
    alphabet = data.extras["vocab"].size - 1  # every token but <pad>
    started = time.perf_counter()
    choice = choose_naive_bayes(arrays["train"], arrays["val"], len(data.meta["labels"]), alphabet)
    fit_seconds = time.perf_counter() - started
    tokens, labels = arrays["test"]
    started = time.perf_counter()
    accuracy = float((choice.model.predict(tokens) == labels).mean())
    per_second = len(labels) / max(time.perf_counter() - started, 1e-9)
    return {
        "baseline_metric": "baseline_test_accuracy",
        "baseline_test_accuracy": accuracy,
        "baseline_name": f"{choice.model.k}-mer naive Bayes (alpha {choice.model.alpha:g})",
        "baseline_k": choice.model.k,
        "baseline_val_accuracy": choice.val_accuracy,
        "baseline_val_accuracy_by_k": choice.by_k,
        "baseline_seconds": fit_seconds,
        "baseline_reads_per_second": per_second,
        "baseline_parameters": int(sum(len(v) for v in choice.model.kmers)),
    }


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def comparison_table(runs_dir: Path, current: tuple[str, dict[str, Any]] | None = None) -> str:
    """Markdown: every sequence-classification run under ``runs_dir`` (its summary.json), plus ``current``,
    with each distinct dataset's baseline beside them."""
    rows: dict[str, dict[str, Any]] = {}
    for summary_path in sorted(Path(runs_dir).glob(f"*/{SUMMARY_FILE}")):
        summary = json.loads(summary_path.read_text())
        if summary.get("task") == SequenceClassification.name:
            rows[summary_path.parent.name] = summary
    if current is not None:
        rows[current[0]] = current[1]
    lines = [
        "# Sequence classification: LSTM, GRU and the baseline side by side",
        "",
        "Test accuracy on the held-out split; training seconds over all epochs; reads/s at inference "
        "(batch 256, the training device). The baseline is a k-mer naive Bayes with k chosen on validation; "
        f"on temporal-order any order-blind model is capped at {ORDER_BLIND_CEILING:.0%} instead.",
        "",
        "| run | data | test accuracy | parameters | training seconds | reads / s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    baselines: dict[str, dict[str, Any]] = {}
    for run, r in sorted(rows.items()):
        data = str(r.get("data", ""))
        lines.append(
            f"| {run} | {r.get('dataset', '')} | {r['test_accuracy']:.4f} | {r['parameters']:,} | "
            f"{r.get('train_seconds', 0.0):.1f} | {r.get('reads_per_second', 0.0):,.0f} |"
        )
        if "baseline_test_accuracy" in r:
            baselines.setdefault(data, r)
    for r in baselines.values():
        lines.append(
            f"| baseline: {r['baseline_name']} | {r.get('dataset', '')} | {r['baseline_test_accuracy']:.4f} | "
            f"{r['baseline_parameters']:,} counts | {r['baseline_seconds']:.1f} (fit + choice of k) | "
            f"{r['baseline_reads_per_second']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def write_read_examples(data: TaskData, pred: torch.Tensor, vocab: TokenVocab, path: Path, count: int = 12) -> None:
    """A few test reads (their bases, pads dropped), true and predicted class."""
    tokens, labels = data.test.tensors  # type: ignore[union-attr]
    names = data.meta["labels"]
    lines = ["# test reads: bases; true -> predicted\n"]
    for i in range(min(count, len(labels))):
        true, guess = names[int(labels[i])], names[int(pred[i])]
        lines.append(f"{vocab.decode(tokens[i].tolist())}  {true} -> {guess}{'' if true == guess else '  (wrong)'}\n")
    path.write_text("".join(lines))


def write_order_examples(data: TaskData, pred: torch.Tensor, path: Path, count: int = 12) -> None:
    """A few test sequences with the signal positions marked, true and predicted class."""
    tokens, labels = data.test.tensors  # type: ignore[union-attr]
    signals = data.meta["generator"]["signals"]
    names = {v: k for k, v in signals.items()}
    lines = ["# test examples: distractors as '.', signals as X / Y; true -> predicted\n"]
    for i in range(min(count, len(labels))):
        seq = "".join(names.get(int(t), ".") for t in tokens[i])
        true, guess = ORDER_LABELS[int(labels[i])], ORDER_LABELS[int(pred[i])]
        lines.append(f"{seq}  {true} -> {guess}{'' if true == guess else '  (wrong)'}\n")
    path.write_text("".join(lines))


register_task(SequenceClassification())
