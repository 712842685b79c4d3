"""DNA GRU and DNA LSTM: next-base models built from the from-scratch recurrent cells.

The recurrence and the output layer are ``zoo_train.nn_scratch`` (gates written as matmuls
and elementwise ops); the input is a learned embedding of the four bases. The layers loop
over time in Python, so ``step`` takes one token at a time when exported (``step_tokens = 1``)
and there is no full-sequence graph (``full_graph = False``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from zoo_runtime import schema
from zoo_train import nn_scratch
from zoo_train.models.char_lstm import RecurrentLM
from zoo_train.registry import QualityTarget, Recipe, register_model


@dataclass(frozen=True)
class DNARNNConfig:
    vocab_size: int = 4
    embedding_size: int = 16
    hidden_size: int = 128
    num_layers: int = 2
    dropout: float = 0.0


class DNARNN(RecurrentLM):
    """Embedding -> from-scratch GRU or LSTM stack -> from-scratch linear head."""

    step_tokens = 1
    full_graph = False

    def __init__(self, config: DNARNNConfig, cell: str):
        layer_cls = {"gru": nn_scratch.GRU, "lstm": nn_scratch.LSTM}[cell]
        super().__init__(
            nn.Embedding(config.vocab_size, config.embedding_size),
            layer_cls(config.embedding_size, config.hidden_size, config.num_layers, dropout=config.dropout, batch_first=True),
            nn_scratch.Linear(config.hidden_size, config.vocab_size),
            num_layers=config.num_layers,
            hidden_size=config.hidden_size,
            cell=cell,
            dropout=config.dropout,
        )
        self.config = config


TINY = {"embedding_size": 4, "hidden_size": 8, "num_layers": 1}
# Python time loops make these the slowest models per token: short windows, and the quick
# preset sees ~0.5M bases in 200 steps (~50 CPU-seconds for the GRU, ~80 for the LSTM; the
# Markov baseline trains on all 4M).
RECIPES = {
    "smoke": Recipe(
        epochs=1,
        batch_size=8,
        lr=1e-2,
        steps_per_epoch=6,
        limit_eval=6,
        model_overrides=TINY,
        data_options={"block_size": 12, "sample_tokens": 24, "markov_max_order": 4, "final_eval_windows": 8},
    ),
    "quick": Recipe(
        epochs=2,
        batch_size=64,
        lr=3e-3,
        warmup_steps=20,
        steps_per_epoch=100,
        limit_eval=256,
        data_options={"block_size": 40, "final_eval_windows": 2000},
    ),
    # Aim: below the Markov baseline (~1.87 bits/base on M. tuberculosis, order 6).
    "full": Recipe(
        epochs=30,
        batch_size=128,
        lr=2e-3,
        warmup_steps=200,
        steps_per_epoch=400,
        limit_eval=2000,
        early_stop_patience=4,
        data_options={"block_size": 100},
        model_overrides={"embedding_size": 32, "hidden_size": 256, "num_layers": 2, "dropout": 0.1},
    ),
}


BELOW_MARKOV = (QualityTarget("val_bpc", below="markov_bpc"),)


@register_model(
    "dna-gru",
    task=schema.TASK_TEXT_GENERATION,
    config_cls=DNARNNConfig,
    default_dataset="kmer-examples",
    recipes=RECIPES,
    tiny_config=TINY,
    description="DNA GRU: from-scratch GRU cells, 2 x 128, on a bacterial genome",
    targets=BELOW_MARKOV,
    demo_targets=BELOW_MARKOV,
)
def dna_gru(**config: Any) -> DNARNN:
    return DNARNN(DNARNNConfig(**config), "gru")


@register_model(
    "dna-lstm",
    task=schema.TASK_TEXT_GENERATION,
    config_cls=DNARNNConfig,
    default_dataset="kmer-examples",
    recipes=RECIPES,
    tiny_config=TINY,
    description="DNA LSTM: from-scratch LSTM cells, 2 x 128, on a bacterial genome",
    targets=BELOW_MARKOV,
    demo_targets=BELOW_MARKOV,
)
def dna_lstm(**config: Any) -> DNARNN:
    return DNARNN(DNARNNConfig(**config), "lstm")
