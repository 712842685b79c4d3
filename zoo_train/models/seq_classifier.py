"""LSTM and GRU sequence classifiers: embedding -> torch nn.LSTM / nn.GRU -> a summary of the states -> linear.

The summary is the state after the last token (``pooling="last"``: what a long-range task such as
temporal order needs) or the mean of the states over the real tokens (``pooling="mean"``, pads
``pad_id`` left out: what composition tasks such as a read's genome of origin need, since every
position's evidence then counts alike instead of fading with distance from the end).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from zoo_runtime import schema
from zoo_train import nn_scratch
from zoo_train.registry import QualityTarget, Recipe, register_model


@dataclass(frozen=True)
class SeqClassifierConfig:
    vocab_size: int = 8
    num_classes: int = 4
    embedding_size: int = 16
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    pooling: str = "last"  # "last" | "mean"
    pad_id: int | None = None  # left out of the mean (sequences are left-padded)


class RNNClassifier(nn.Module):
    """Classifies a whole sequence from the top layer's states (the last one, or their mean)."""

    def __init__(self, config: SeqClassifierConfig, cell: str):
        super().__init__()
        if config.pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', got {config.pooling!r}")
        self.config = config
        rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        self.rnn = rnn_cls(
            config.embedding_size,
            config.hidden_size,
            config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(config.dropout)
        self.fc = nn.Linear(config.hidden_size, config.num_classes)
        if cell == "lstm":
            # Forget-gate bias 1 (Gers et al. 2000): the cell keeps what it stored unless told otherwise.
            # Measured on temporal order: length 40 stayed at chance for 600 steps without it; with it,
            # length 45 was solved in 300.
            h = config.hidden_size
            for name, bias in self.rnn.named_parameters():
                if name.startswith("bias_ih"):
                    nn.init.constant_(bias[h : 2 * h], 1.0)

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens [N, T] -> logits [N, K]."""
        out, _ = self.rnn(self.embedding(tokens))
        if self.config.pooling == "last":
            return self.fc(self.drop(out[:, -1]))
        if self.config.pad_id is None:
            return self.fc(self.drop(out.mean(dim=1)))
        real = (tokens != self.config.pad_id).unsqueeze(-1).to(out.dtype)
        return self.fc(self.drop((out * real).sum(dim=1) / real.sum(dim=1).clamp(min=1.0)))

    def inspect_stages(self, tokens: Tensor) -> list[tuple[str, Tensor]]:
        """The hidden state after each token, ``h`` [layers, N, T, H], then each activated gate at each token, by
        name (GRU: ``reset``, ``update``, ``candidate``; LSTM: ``input``, ``forget``, ``cell``, ``output``), each
        [layers, N, T, H]: the gates recomputed from a layer's input and its states one token earlier, by the
        from-scratch cells' rule (the weights' layout is torch's)."""
        rnn = self.rnn
        is_lstm = isinstance(rnn, nn.LSTM)
        gates_of = nn_scratch.lstm_gates if is_lstm else nn_scratch.gru_gates
        names = (nn_scratch.LSTMCell if is_lstm else nn_scratch.GRUCell).gate_names
        x = self.embedding(tokens)
        states, gates = [], []
        for k in range(rnn.num_layers):
            weights = nn_scratch.torch_layer_weights(rnn, k)
            zeros = x.new_zeros(1, x.shape[0], rnn.hidden_size)
            # One layer of the stack, on its own weights: what nn.LSTM / nn.GRU's forward calls for all layers at once.
            flat = [w for w in weights if w is not None]
            if is_lstm:
                h = torch._VF.lstm(x, (zeros, zeros), flat, rnn.bias, 1, 0.0, False, False, True)[0]
            else:
                h = torch._VF.gru(x, zeros, flat, rnn.bias, 1, 0.0, False, False, True)[0]
            before = torch.cat([zeros.transpose(0, 1), h[:, :-1]], dim=1)  # each token's previous state
            gates.append(gates_of(x, before, *weights))
            states.append(h)
            x = h
        by_gate = torch.stack(gates, dim=1)  # [gates, layers, N, T, H]
        return [("h", torch.stack(states)), *zip(names, by_gate.unbind(0), strict=True)]


TINY = {"embedding_size": 4, "hidden_size": 8}
# Reads of two genomes (zoo_train.data.sequences): the cells must turn ~125 bases into a verdict on
# their composition and codon usage; a k-mer naive Bayes is the baseline to beat (docs/QUALITY.md).
SMOKE_READS = {"min_length": 30, "max_length": 40}
RECIPES = {
    "smoke": Recipe(
        epochs=1, batch_size=16, lr=1e-2, limit_train=64, limit_eval=32, model_overrides=TINY, data_options=SMOKE_READS
    ),
    # Three epochs of 32 steps: what a 2-core CPU trains in about a minute (docs/QUALITY.md has the figures).
    "quick": Recipe(epochs=3, batch_size=128, lr=1e-2, warmup_steps=10, limit_train=4000, limit_eval=1000),
    "full": Recipe(epochs=30, batch_size=128, lr=5e-3, warmup_steps=100, early_stop_patience=6),
}
TARGETS = (QualityTarget("test_accuracy", above="baseline_test_accuracy"),)


@register_model(
    "lstm-classifier",
    task=schema.TASK_SEQUENCE_CLASSIFICATION,
    config_cls=SeqClassifierConfig,
    default_dataset="genome-reads",
    recipes=RECIPES,
    tiny_config=TINY,
    description="LSTM classifier of DNA reads by genome of origin (M. tuberculosis vs M. leprae)",
    targets=TARGETS,
    demo_targets=TARGETS,
)
def lstm_classifier(**config: Any) -> RNNClassifier:
    return RNNClassifier(SeqClassifierConfig(**config), "lstm")


@register_model(
    "gru-classifier",
    task=schema.TASK_SEQUENCE_CLASSIFICATION,
    config_cls=SeqClassifierConfig,
    default_dataset="genome-reads",
    recipes=RECIPES,
    tiny_config=TINY,
    description="GRU classifier of DNA reads by genome of origin (M. tuberculosis vs M. leprae)",
    targets=TARGETS,
    demo_targets=TARGETS,
)
def gru_classifier(**config: Any) -> RNNClassifier:
    return RNNClassifier(SeqClassifierConfig(**config), "gru")
