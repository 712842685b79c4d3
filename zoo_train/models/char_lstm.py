"""CharLSTM: embedding -> stacked LSTM -> linear, with explicit (h, c) state.

``RecurrentLM`` is the shape shared by every recurrent character model here (this one, on
torch's ``nn.LSTM``, and the DNA GRU/LSTM built from ``zoo_train.nn_scratch``): it gives them
the text-generator protocol of docs/BUNDLE.md (``initial_state``, ``step``, state names) and
the usual ``forward(x, hidden) -> (out, hidden)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
import torch.nn as nn
from torch import Tensor

from zoo_runtime import schema
from zoo_train import nn_scratch
from zoo_train.registry import QualityTarget, Recipe, register_model

RNNState = Tensor | tuple[Tensor, Tensor]  # GRU: h; LSTM: (h, c); each [num_layers, N, H]


class RecurrentLM(nn.Module):
    """tokens -> embedding -> recurrent stack -> per-step logits, state in and out explicitly."""

    generation_kind = schema.GENERATION_RECURRENT
    max_context = None  # a recurrent state has no position limit
    state_names: list[tuple[str, str]]
    state_grow_axes: list[int | None]

    def __init__(
        self,
        embedding: nn.Embedding,
        rnn: nn.Module,
        fc: nn.Module,
        *,
        num_layers: int,
        hidden_size: int,
        cell: str,
        dropout: float = 0.0,
    ):
        super().__init__()
        if cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm', got {cell!r}")
        self.embedding = embedding
        self.rnn = rnn
        self.fc = fc
        self.drop = nn.Dropout(dropout)
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        self.state_names = [("h", "h_out"), ("c", "c_out")] if cell == "lstm" else [("h", "h_out")]
        self.state_grow_axes = [None] * len(self.state_names)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> tuple[Tensor, ...]:
        """Zero state, one [num_layers, N, hidden] tensor per entry of ``state_names``.

        Distinct tensors, never one tensor twice: torch.export treats aliased inputs as one
        input, which would make an exported LSTM step read h where it should read c.
        """
        return tuple(torch.zeros(self.num_layers, batch_size, self.hidden_size, device=device) for _ in self.state_names)

    def _as_rnn_state(self, state: tuple[Tensor, ...]) -> RNNState:
        return state[0] if len(state) == 1 else (state[0], state[1])

    def step(self, tokens: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        """tokens [N, t], state tensors -> (logits [N, t, V], *new state tensors)."""
        out, new_state = self.rnn(self.drop(self.embedding(tokens)), self._as_rnn_state(state))
        new = (new_state,) if isinstance(new_state, Tensor) else tuple(new_state)
        return (self.fc(self.drop(out)), *new)

    def inspect_step(self, tokens: Tensor, *state: Tensor) -> list[tuple[str, Tensor]]:
        """The activated gates of one step, by name (GRU: reset, update, candidate; LSTM: input, forget, cell,
        output), each [num_layers, N, hidden], for ``tokens`` [N, 1] and the state before it. The from-scratch
        layers give their own; torch's nn.LSTM/nn.GRU hide theirs, so they are recomputed from its weights by
        the from-scratch cells' rule, layer by layer (each layer's new h, by the same rule, feeds the next)."""
        x = self.embedding(tokens)[:, 0]
        if isinstance(self.rnn, nn_scratch.GRU | nn_scratch.LSTM):
            gates = self.rnn.step_gates(x, self._as_rnn_state(state))
            return list(zip(self.rnn.cell_cls.gate_names, gates.unbind(1), strict=True))
        rnn = cast(nn.RNNBase, self.rnn)
        lstm = isinstance(rnn, nn.LSTM)
        per_layer = []
        for k in range(rnn.num_layers):
            weights = nn_scratch.torch_layer_weights(rnn, k)
            if lstm:
                i, f, g, o = found = nn_scratch.lstm_gates(x, state[0][k], *weights).unbind(0)
                x = o * torch.tanh(f * state[1][k] + i * g)
            else:
                _r, z, n = found = nn_scratch.gru_gates(x, state[0][k], *weights).unbind(0)
                x = (1.0 - z) * n + z * state[0][k]
            per_layer.append(torch.stack(found))
        names = (nn_scratch.LSTMCell if lstm else nn_scratch.GRUCell).gate_names
        return list(zip(names, torch.stack(per_layer, dim=1).unbind(0), strict=True))

    def forward(self, x: Tensor, hidden: RNNState | None = None) -> tuple[Tensor, RNNState]:
        """x [N, T] token ids, hidden (zeros if None) -> (logits [N, T, V], hidden)."""
        if hidden is None:
            state = self.initial_state(x.shape[0], x.device)
        else:
            state = (hidden,) if isinstance(hidden, Tensor) else tuple(hidden)
        logits, *new = self.step(x, *state)
        return logits, self._as_rnn_state(tuple(new))


@dataclass(frozen=True)
class CharLSTMConfig:
    input_size: int = 65  # vocabulary size (embedding rows)
    embedding_size: int = 64
    hidden_size: int = 256
    num_layers: int = 2
    output_size: int = 65  # vocabulary size (logits)
    dropout: float = 0.0


class CharLSTM(RecurrentLM):
    """Seed 000's CharLSTM on ``nn.LSTM`` (cuDNN/oneDNN kernels; the step takes any number of tokens)."""

    step_tokens = "any"
    full_graph = True

    def __init__(
        self, input_size: int, embedding_size: int, hidden_size: int, num_layers: int, output_size: int, dropout: float = 0.0
    ):
        super().__init__(
            nn.Embedding(input_size, embedding_size),
            nn.LSTM(embedding_size, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0),
            nn.Linear(hidden_size, output_size),
            num_layers=num_layers,
            hidden_size=hidden_size,
            cell="lstm",
            dropout=dropout,
        )


TINY = {"embedding_size": 8, "hidden_size": 16, "num_layers": 1}


@register_model(
    "char-lstm",
    task=schema.TASK_TEXT_GENERATION,
    config_cls=CharLSTMConfig,
    default_dataset="shakespeare",
    recipes={
        "smoke": Recipe(
            epochs=1,
            batch_size=8,
            lr=1e-2,
            steps_per_epoch=8,
            limit_eval=8,
            model_overrides=TINY,
            data_options={"block_size": 16, "sample_tokens": 24, "markov_max_order": 4, "final_eval_windows": 8},
        ),
        # ~0.9M parameters, truncated back-propagation over 100 characters, 340 steps: ~1 minute on 2 CPU cores.
        # So few steps want a high peak lr annealed to 0 and a short beta2 memory: val_bpc 2.56 (lr 3e-3,
        # cosine to a tenth, beta2 0.999, 300 steps: 2.86); benchmarks/RESULTS.md has the measurements.
        "quick": Recipe(
            epochs=2,
            batch_size=32,
            lr=8e-3,
            betas=(0.9, 0.99),
            warmup_steps=30,
            final_lr_fraction=0.0,
            steps_per_epoch=170,
            limit_eval=128,
            data_options={"block_size": 100, "final_eval_windows": 600},
        ),
        # 3 x 512 LSTM, ~5.4M parameters.
        "full": Recipe(
            epochs=30,
            batch_size=64,
            lr=2e-3,
            warmup_steps=200,
            steps_per_epoch=500,
            limit_eval=1000,
            early_stop_patience=4,
            data_options={"block_size": 200},
            model_overrides={"embedding_size": 128, "hidden_size": 512, "num_layers": 3, "dropout": 0.2},
        ),
    },
    description="CharLSTM: embedding, 2-layer LSTM 256, linear; explicit (h, c) state",
    targets=(QualityTarget("val_loss", at_most=1.60), QualityTarget("val_loss", below="markov_nats")),
    demo_targets=(QualityTarget("val_bpc", at_most=2.7),),
    tiny_config=TINY,
)
def char_lstm(**config: Any) -> CharLSTM:
    return CharLSTM(**asdict(CharLSTMConfig(**config)))
