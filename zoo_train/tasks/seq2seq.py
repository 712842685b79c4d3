"""Seq2seq: DNA windows translated to protein (the default), the user's own source<TAB>target pairs, or
the generated string tasks (reverse, sort); teacher forcing, greedy decoding, exact match.

Data (``--data``):
- ``dna-to-protein`` (default): windows of 12-90 nt in reading frame from both kmer-examples genomes
  (either strand, disjoint genome regions per split, zoo_train.data.sequences), target their
  translation by the standard genetic code (20 amino acids and ``*``). Two vocabularies: DNA in,
  amino acids out (the bundle's ``vocab`` and ``target_vocab``).
- ``FILE.tsv``: ``source<TAB>target`` lines, split 80/10/10 by the seed; each side's characters from the
  training split.
- ``synthetic-reverse`` / ``synthetic-sort``: generated id strings (zoo_train.data.synthetic).

Targets are ``bos, y_1 .. y_n, eos`` right-padded. Training feeds ``tgt[:, :-1]`` and predicts
``tgt[:, 1:]`` (pads ignored). The headline metric is exact-sequence accuracy of greedy
decoding: a prediction counts only if every symbol and the end of sequence match.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from zoo_runtime import schema
from zoo_runtime.contract import Seq2SeqMeta
from zoo_runtime.generation import greedy_decode as shared_greedy_decode
from zoo_runtime.rundir import SAMPLES_TEXT_FILE, RunDir
from zoo_train.data.errors import DataError
from zoo_train.data.sequences import (
    BOS_TOKEN,
    DNA_SOURCE_VOCAB,
    EOS_TOKEN,
    PAD_TOKEN,
    PROTEIN_VOCAB,
    TRANSLATION_DATASET,
    TokenVocab,
    check_lengths,
    load_genome_classes,
    read_tsv_pairs,
    right_padded,
    sample_split_reads,
    split_rows,
    translate,
    unseen_characters,
)
from zoo_train.data.synthetic import BOS, EOS, PAD, SEQ2SEQ_SPECIALS, Seq2SeqSpec, ids_vocab, seq2seq_op, seq2seq_pairs
from zoo_train.models.protocols import as_encoder_decoder
from zoo_train.registry import ModelEntry, Recipe
from zoo_train.tasks.base import BatchLoader, DeviceLoader, Task, TaskData, register_task

SIZES = {"train": 20000, "val": 1000, "test": 1000}
WINDOW_NT = (12, 90)  # DNA window lengths, in bases (a multiple of 3)
TSV_MAX_LENGTH = 128  # positions the model gets for TSV data unless the data option max_length says otherwise
EXAMPLES_IN_BUNDLE = 8


@torch.no_grad()
def greedy_decode(module: nn.Module, src: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
    """Greedy decoding from bos by ``zoo_runtime.generation.greedy_decode`` (the runtime's own loop): ids
    [N, <= max_new_tokens] after bos; rows past their eos hold pad; ends once every row has emitted eos."""
    model = as_encoder_decoder(module)

    def decode(tgt: np.ndarray, memory: torch.Tensor, _src: np.ndarray) -> np.ndarray:
        return model.decode(torch.from_numpy(tgt).to(src.device), memory, src)[:, -1:].float().cpu().numpy()

    out, _ = shared_greedy_decode(lambda _: model.encode(src), decode, src.cpu().numpy(), BOS, max_new_tokens, eos=EOS, pad=PAD)
    return torch.from_numpy(out).to(src.device)


def exact_matches(pred: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """Rows whose prediction (cut after its first eos) equals the target (``tgt`` holds bos first)."""
    target = tgt[:, 1:]
    width = target.shape[1]
    pred = F.pad(pred[:, :width], (0, width - min(width, pred.shape[1])), value=PAD)
    is_eos = pred == EOS
    after_eos = (torch.cumsum(is_eos.int(), dim=1) - is_eos.int()) > 0
    return (pred.masked_fill(after_eos, PAD) == target).all(dim=1)


def _counts(recipe: Recipe, per_class: int = 1) -> dict[str, int]:
    limits = {"train": recipe.limit_train, "val": recipe.limit_eval, "test": recipe.limit_eval}
    return {s: max(1, min(n, limits[s] or n) // per_class) for s, n in SIZES.items()}


class Seq2Seq(Task):
    name = schema.TASK_SEQ2SEQ
    primary_metric = "val_exact"
    mode = "max"

    def nominal_model_config(self, dataset: str) -> dict[str, Any]:
        if dataset == TRANSLATION_DATASET:
            max_nt = WINDOW_NT[1]
            return {"vocab_size": PROTEIN_VOCAB.size, "src_vocab_size": DNA_SOURCE_VOCAB.size, "max_len": max_nt, "pad_id": PAD}
        spec = Seq2SeqSpec(op=seq2seq_op(dataset))
        return {"vocab_size": spec.vocab_size, "max_len": spec.tgt_len, "pad_id": PAD}

    def load_data(self, entry: ModelEntry, recipe: Recipe, data: str | None, data_dir: Path | None, seed: int) -> TaskData:
        name = data or entry.default_dataset
        if name == TRANSLATION_DATASET:
            return self._translation(recipe, seed, data_dir)
        if name.startswith("synthetic-"):
            return self._synthetic(recipe, seed, name)
        path = Path(name)
        if path.is_file():
            return self._tsv(recipe, seed, path)
        raise DataError(
            f"{name}: no such file; seq2seq models take {TRANSLATION_DATASET} (default), synthetic-reverse, "
            "synthetic-sort or a source<TAB>target .tsv file"
        )

    def _pairs(
        self,
        pairs: dict[str, list[tuple[str, str]]],
        source: TokenVocab,
        target: TokenVocab,
        lengths: tuple[int, int],
        meta: dict[str, Any],
        description: str,
    ) -> TaskData:
        """Right-padded ``src`` [N, lengths[0]] and ``tgt`` [N, lengths[1] + 2] (bos, target, eos) per split."""
        src_len, tgt_len = lengths
        sets = {
            split: TensorDataset(
                right_padded([a for a, _ in rows], source, src_len),
                right_padded([b for _, b in rows], target, tgt_len + 2, bos_eos=True),
            )
            for split, rows in pairs.items()
        }
        max_len = max(src_len, tgt_len + 2)
        return TaskData(
            train=sets["train"],
            val=sets["val"],
            test=sets["test"],
            model_config={"vocab_size": target.size, "src_vocab_size": source.size, "max_len": max_len, "pad_id": PAD},
            meta={
                "vocab": source.to_meta(),
                "target_vocab": target.to_meta(),
                "examples": [list(p) for p in pairs["test"][:EXAMPLES_IN_BUNDLE]],
                "decoding": {"strategy": "greedy", "max_new_tokens": tgt_len + 1},
                **meta,
            },
            description=description,
            extras={"source_vocab": source, "target_vocab": target},
        )

    def _translation(self, recipe: Recipe, seed: int, data_dir: Path | None) -> TaskData:
        options = recipe.data_options
        window = (int(options.get("min_length", WINDOW_NT[0])), int(options.get("max_length", WINDOW_NT[1])))
        labels, genomes, where = load_genome_classes(data_dir)
        counts = _counts(recipe, per_class=len(genomes))
        reads = sample_split_reads(genomes, counts, window, seed, int(options.get("region_size", 10_000)), labels, multiple_of=3)
        pairs = {split: [(r.sequence, translate(r.sequence)) for r in rs] for split, rs in reads.items()}
        sizes = " / ".join(f"{s} {len(rs)}" for s, rs in pairs.items())
        return self._pairs(
            pairs,
            DNA_SOURCE_VOCAB,
            PROTEIN_VOCAB,
            (window[1], window[1] // 3),
            {"generator": {"name": TRANSLATION_DATASET, "window_nt": list(window), "seed": seed, "code": "standard (table 1)"}},
            f"{TRANSLATION_DATASET} of {where}: windows of {window[0]}-{window[1]} nt in frame, both strands, disjoint "
            f"genome regions per split, standard genetic code, seed {seed}; {sizes}",
        )

    def _tsv(self, recipe: Recipe, seed: int, path: Path) -> TaskData:
        rows = read_tsv_pairs(path, ("source", "target"))
        limit = int(recipe.data_options.get("max_length", TSV_MAX_LENGTH))
        truncate = bool(recipe.data_options.get("truncate", False))
        check_lengths(((a, n) for a, _, n in rows), limit, truncate, str(path))
        check_lengths(((b, n) for _, b, n in rows), limit - 2, truncate, str(path))
        splits = split_rows([(a[:limit], b[: limit - 2]) for a, b, _ in rows], seed, str(path))
        source = TokenVocab.from_texts(a for a, _ in splits["train"])
        target = TokenVocab.from_texts((b for _, b in splits["train"]), specials=(PAD_TOKEN, BOS_TOKEN, EOS_TOKEN))
        held_out = [p for s in ("val", "test") for p in splits[s]]
        unseen = unseen_characters((a for a, _ in held_out), source) + unseen_characters((b for _, b in held_out), target)
        lengths = (max(len(a) for a, _ in splits["train"] + held_out), max(len(b) for _, b in splits["train"] + held_out))
        sizes = " / ".join(f"{s} {len(rs)}" for s, rs in splits.items())
        dropped = f"; {unseen} validation/test characters not in the training split were dropped" if unseen else ""
        return self._pairs(
            splits,
            source,
            target,
            lengths,
            {"generator": {"name": "tsv", "file": str(path), "seed": seed}},
            f"{path}: {source.size - 1} source and {target.size - 3} target characters; {sizes} (seed {seed}){dropped}",
        )

    def _synthetic(self, recipe: Recipe, seed: int, name: str) -> TaskData:
        options = recipe.data_options
        spec = Seq2SeqSpec(
            op=seq2seq_op(name),
            num_symbols=int(options.get("num_symbols", 10)),
            min_length=int(options.get("min_length", 4)),
            max_length=int(options.get("max_length", 12)),
        )
        counts = _counts(recipe)
        sets = {split: TensorDataset(*seq2seq_pairs(spec, n, seed=[seed, i])) for i, (split, n) in enumerate(counts.items())}
        meta: Seq2SeqMeta = {
            "vocab": ids_vocab(spec.vocab_size, SEQ2SEQ_SPECIALS),
            "generator": {
                "name": name,
                "op": spec.op,
                "num_symbols": spec.num_symbols,
                "min_length": spec.min_length,
                "max_length": spec.max_length,
                "seed": seed,
            },
            "decoding": {"strategy": "greedy", "max_new_tokens": spec.tgt_len - 1},
        }
        return TaskData(
            train=sets["train"],
            val=sets["val"],
            test=sets["test"],
            model_config={"vocab_size": spec.vocab_size, "max_len": spec.tgt_len, "pad_id": PAD},
            meta=meta,
            description=(
                f"{name} (generated, seed {seed}): {spec.op} strings of {spec.min_length}-{spec.max_length} "
                f"over {spec.num_symbols} symbols; train {counts['train']} / val {counts['val']} / test {counts['test']}"
            ),
        )

    def loss(self, model: nn.Module, batch: Any, recipe: Recipe) -> torch.Tensor:
        src, tgt = batch
        logits = model(src, tgt[:, :-1]).float()
        return F.cross_entropy(
            logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=PAD, label_smoothing=recipe.label_smoothing
        )

    @torch.no_grad()
    def _score(self, model: nn.Module, loader: BatchLoader) -> tuple[dict[str, float], list[torch.Tensor]]:
        model.eval()
        loss, tokens, correct, exact, rows = 0.0, 0, 0, 0, 0
        preds = []
        for src, tgt in loader:
            logits = model(src, tgt[:, :-1]).float()
            target = tgt[:, 1:]
            real = target != PAD
            loss += F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=PAD, reduction="sum").item()
            correct += int(((logits.argmax(-1) == target) & real).sum())
            tokens += int(real.sum())
            pred = greedy_decode(model, src, tgt.shape[1] - 1)
            exact += int(exact_matches(pred, tgt).sum())
            rows += len(src)
            preds.append(pred.cpu())
        return {"loss": loss / max(1, tokens), "token_accuracy": correct / max(1, tokens), "exact": exact / max(1, rows)}, preds

    def evaluate(self, model: nn.Module, loader: BatchLoader, device: torch.device, recipe: Recipe) -> dict[str, float]:
        scores, _ = self._score(model, loader)
        return {f"val_{k}": v for k, v in scores.items()}

    def final_report(
        self, model: nn.Module, data: TaskData, out_dir: Path, device: torch.device, recipe: Recipe
    ) -> dict[str, Any]:
        assert data.test is not None
        loader = DeviceLoader(self.make_loader(data.test, 256, train=False, data=data, generator=None), device, None, train=False)
        scores, preds = self._score(model, loader)
        write_decoded(data, preds[0], RunDir(out_dir).samples_text)
        return {
            **{f"test_{k}": v for k, v in scores.items()},
            "metric": "test_exact",
            "split": "test split (held-out regions or lines)",
            "samples": SAMPLES_TEXT_FILE,
        }

    def reference_call(
        self, model: nn.Module, manifest: Mapping[str, Any], request: Mapping[str, Any]
    ) -> Callable[[], dict[str, Any]]:
        """Greedy decoding of one source, the whole target prefix through the decoder at each step."""
        net = as_encoder_decoder(model)
        specials = manifest["vocab"]["specials"]
        bos, eos = specials["bos"], specials.get("eos")
        max_new = manifest["generation"]["max_target"] - 1
        src = torch.tensor([request[schema.INPUT_SRC]])

        def call() -> dict[str, Any]:
            memory = net.encode(src)
            tgt = [bos]
            for _ in range(max_new):
                nxt = int(net.decode(torch.tensor([tgt]), memory, src)[0, -1].argmax())
                if eos is not None and nxt == eos:
                    break
                tgt.append(nxt)
            return {"output": tgt[1:]}

        return call


def show(ids: torch.Tensor) -> str:
    """Generated symbols as digits/letters (id 3 -> '0'); stops at eos or pad."""
    out = []
    for i in ids.tolist():
        if i in (EOS, PAD):
            break
        out.append("0123456789abcdefghijklmnopqrstuvwxyz"[i - 3] if 3 <= i < 39 else f"<{i}>")
    return "".join(out)


def _until_end(ids: torch.Tensor) -> list[int]:
    row = ids.tolist()
    ends = [j for j, i in enumerate(row) if i in (EOS, PAD)]
    return row[: ends[0]] if ends else row


def write_decoded(data: TaskData, pred: torch.Tensor, path: Path, count: int = 16) -> None:
    src, tgt = data.test.tensors  # type: ignore[union-attr]
    count = min(count, len(pred))
    right = exact_matches(pred[:count], tgt[:count])
    source, target = data.extras.get("source_vocab"), data.extras.get("target_vocab")
    if source is not None and target is not None:
        title = data.meta["generator"]["name"]
        src_text = [source.decode(src[i].tolist()) for i in range(count)]  # pads dropped; a source has no eos
        pred_text = [target.decode(_until_end(pred[i])) for i in range(count)]
        tgt_text = [target.decode(_until_end(tgt[i, 1:])) for i in range(count)]
    else:
        title = data.meta["generator"]["op"]
        src_text, pred_text, tgt_text = ([show(t[i]) for i in range(count)] for t in (src, pred, tgt[:, 1:]))
    width = max(len(t) for t in src_text)
    lines = [f"# greedy decoding, {title}: source -> prediction (target)\n"]
    for i in range(count):
        lines.append(f"{src_text[i]:>{width}} -> {pred_text[i]} ({tgt_text[i]}){'' if right[i] else '  wrong'}\n")
    path.write_text("".join(lines))


register_task(Seq2Seq())
