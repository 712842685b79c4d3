"""Seq2seq on generated string tasks (reverse, sort): teacher forcing, greedy decoding, exact match.

Targets are ``bos, y_1 .. y_n, eos`` right-padded. Training feeds ``tgt[:, :-1]`` and predicts
``tgt[:, 1:]`` (pads ignored). The headline metric is exact-sequence accuracy of greedy
decoding: a prediction counts only if every symbol and the end of sequence match.
"""

from __future__ import annotations

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
from zoo_train.data.synthetic import BOS, EOS, PAD, SEQ2SEQ_SPECIALS, Seq2SeqSpec, ids_vocab, seq2seq_op, seq2seq_pairs
from zoo_train.models.protocols import as_encoder_decoder
from zoo_train.registry import ModelEntry, Recipe
from zoo_train.tasks.base import BatchLoader, DeviceLoader, Task, TaskData, register_task

SIZES = {"train": 20000, "val": 1000, "test": 1000}


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


class Seq2Seq(Task):
    name = schema.TASK_SEQ2SEQ
    primary_metric = "val_exact"
    mode = "max"

    def nominal_model_config(self, dataset: str) -> dict[str, Any]:
        spec = Seq2SeqSpec(op=seq2seq_op(dataset))
        return {"vocab_size": spec.vocab_size, "max_len": spec.tgt_len, "pad_id": PAD}

    def load_data(self, entry: ModelEntry, recipe: Recipe, data: str | None, data_dir: Path | None, seed: int) -> TaskData:
        name = data or entry.default_dataset
        options = recipe.data_options
        spec = Seq2SeqSpec(
            op=seq2seq_op(name),
            num_symbols=int(options.get("num_symbols", 10)),
            min_length=int(options.get("min_length", 4)),
            max_length=int(options.get("max_length", 12)),
        )
        counts = {
            "train": min(SIZES["train"], recipe.limit_train or SIZES["train"]),
            "val": min(SIZES["val"], recipe.limit_eval or SIZES["val"]),
            "test": min(SIZES["test"], recipe.limit_eval or SIZES["test"]),
        }
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
            "split": "generated test set",
            "samples": SAMPLES_TEXT_FILE,
        }


def show(ids: torch.Tensor) -> str:
    """Symbols as digits/letters (id 3 -> '0'); stops at eos or pad."""
    out = []
    for i in ids.tolist():
        if i in (EOS, PAD):
            break
        out.append("0123456789abcdefghijklmnopqrstuvwxyz"[i - 3] if 3 <= i < 39 else f"<{i}>")
    return "".join(out)


def write_decoded(data: TaskData, pred: torch.Tensor, path: Path, count: int = 16) -> None:
    src, tgt = data.test.tensors  # type: ignore[union-attr]
    count = min(count, len(pred))
    right = exact_matches(pred[:count], tgt[:count])
    lines = [f"# greedy decoding, {data.meta['generator']['op']}: source -> prediction (target)\n"]
    for i in range(count):
        lines.append(f"{show(src[i]):>20} -> {show(pred[i])} ({show(tgt[i, 1:])}){'' if right[i] else '  wrong'}\n")
    path.write_text("".join(lines))


register_task(Seq2Seq())
