"""Character GPT: a decoder-only transformer with a key/value cache in ``step``.

nanoGPT's shape, small: n_embd 128, 4 heads, 4 layers, 64 positions, learned
position embeddings, pre-LayerNorm blocks, weight tying between the token embedding and the
output head. Attention is ``F.scaled_dot_product_attention`` with an explicit causal mask, so
one code path serves training (no past) and cached generation (past > 0), and it exports with
dynamic batch, new-token and past lengths.

``Attention``, ``MLP`` and ``Block`` are shared with the seq2seq transformer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from zoo_runtime import schema
from zoo_train.registry import QualityTarget, Recipe, register_model


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 64  # positions the model knows: the generation loop's max_context
    n_embd: int = 128
    n_head: int = 4
    n_layer: int = 4
    dropout: float = 0.1
    bias: bool = True


class Attention(nn.Module):
    """Multi-head attention; queries and keys/values may come from different sequences."""

    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool = True):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd {n_embd} is not divisible by n_head {n_head}")
        self.n_head = n_head
        self.dropout = dropout
        self.query = nn.Linear(n_embd, n_embd, bias=bias)
        self.key_value = nn.Linear(n_embd, 2 * n_embd, bias=bias)
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_drop = nn.Dropout(dropout)

    def split_heads(self, x: Tensor) -> Tensor:
        """[N, T, D] -> [N, heads, T, D / heads]."""
        n, t, d = x.shape
        return x.view(n, t, self.n_head, d // self.n_head).transpose(1, 2)

    def keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of ``x`` [N, S, D], each [N, heads, S, head_dim]."""
        k, v = self.key_value(x).chunk(2, dim=-1)
        return self.split_heads(k), self.split_heads(v)

    def probabilities(self, x: Tensor, k: Tensor, mask: Tensor | None) -> Tensor:
        """What ``forward`` weighs the values by: softmax(q k^T / sqrt(head_dim)) [N, heads, T, S], masked."""
        q = self.split_heads(self.query(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return torch.softmax(scores, dim=-1)

    def forward(self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """Queries from ``x`` [N, T, D] attend to ``k``/``v``; ``mask`` is boolean, True = may attend."""
        q = self.split_heads(self.query(x))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.resid_drop(self.proj(y.transpose(1, 2).flatten(2)))


class MLP(nn.Module):
    def __init__(self, n_embd: int, hidden: int, dropout: float, bias: bool = True):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_embd, hidden, bias=bias), nn.GELU(), nn.Linear(hidden, n_embd, bias=bias), nn.Dropout(dropout)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Block(nn.Module):
    """Pre-LN transformer block: self-attention then MLP, each on a residual branch."""

    def __init__(self, n_embd: int, n_head: int, hidden: int, dropout: float, bias: bool = True):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = Attention(n_embd, n_head, dropout, bias)
        self.ln2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, hidden, dropout, bias)

    def self_attend(
        self, x: Tensor, mask: Tensor | None, past: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The attention half; returns (x, keys, values) with ``past`` keys/values prepended."""
        h = self.ln1(x)
        k, v = self.attn.keys_values(h)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        return x + self.attn(h, k, v, mask), k, v

    def attention_probabilities(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """How the attention half weighs the positions of ``x`` (no past): [N, heads, T, T]."""
        h = self.ln1(x)
        return self.attn.probabilities(h, self.attn.keys_values(h)[0], mask)

    def forward(self, x: Tensor, mask: Tensor | None, past: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor, Tensor]:
        x, k, v = self.self_attend(x, mask, past)
        return x + self.mlp(self.ln2(x)), k, v


def init_transformer_weights(model: nn.Module, n_layer: int) -> None:
    """GPT-2 initialisation: N(0, 0.02) weights, zero biases, residual projections scaled by depth."""
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            std = 0.02 / math.sqrt(2 * n_layer) if name.endswith(("proj.weight", "net.2.weight")) else 0.02
            nn.init.normal_(p, mean=0.0, std=std)
        elif name.endswith("bias"):
            nn.init.zeros_(p)


def causal_mask(past: int, new: int, device: torch.device) -> Tensor:
    """[new, past + new] boolean: query i (absolute position past + i) sees keys 0..past + i."""
    query_pos = torch.arange(new, device=device) + past
    return torch.arange(past + new, device=device)[None, :] <= query_pos[:, None]


class GPT(nn.Module):
    """Decoder-only character transformer with the text-generator step protocol (docs/BUNDLE.md)."""

    generation_kind = schema.GENERATION_KV_CACHE
    step_tokens = "any"
    full_graph = True
    state_names = (("past_keys", "present_keys"), ("past_values", "present_values"))
    state_grow_axes = (3, 3)

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.max_context = config.block_size
        # After a cache reset, feed half a window again: a reset then costs one half-window
        # recompute every block_size // 2 tokens instead of a full one on every token.
        self.reset_keep = max(1, config.block_size // 2)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(config.n_embd, config.n_head, 4 * config.n_embd, config.dropout, config.bias) for _ in range(config.n_layer)
        )
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        init_transformer_weights(self, config.n_layer)
        # Tied after init: the embedding's N(0, 0.02) draw is the one both use.
        self.lm_head.weight = self.wte.weight

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
        """Empty caches [n_layer, N, n_head, 0, head_dim] for keys and values (two distinct tensors, see
        ``RecurrentLM.initial_state``: export must not see one tensor passed twice)."""
        c = self.config
        shape = (c.n_layer, batch_size, c.n_head, 0, c.n_embd // c.n_head)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    def step(self, tokens: Tensor, past_keys: Tensor, past_values: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """tokens [N, t] at positions past..past+t-1 -> (logits [N, t, V], present keys, present values).

        The caches are [n_layer, N, n_head, past, head_dim] in and [.., past + t, ..] out; the
        caller keeps past + t <= block_size (the generation loop resets the cache before that).
        """
        past = past_keys.shape[3]
        t = tokens.shape[1]
        positions = torch.arange(t, device=tokens.device) + past
        x = self.drop(self.wte(tokens) + self.wpe(positions))
        mask = causal_mask(past, t, tokens.device)
        keys, values = [], []
        for layer, block in enumerate(self.blocks):
            x, k, v = block(x, mask, (past_keys[layer], past_values[layer]))
            keys.append(k)
            values.append(v)
        return self.lm_head(self.ln_f(x)), torch.stack(keys), torch.stack(values)

    def inspect_stages(self, tokens: Tensor) -> list[tuple[str, Tensor]]:
        """``attention``: each layer's attention probabilities over the prompt [n_layer, N, n_head, T, T]."""
        t = tokens.shape[1]
        x = self.drop(self.wte(tokens) + self.wpe(torch.arange(t, device=tokens.device)))
        mask = causal_mask(0, t, tokens.device)
        maps = []
        for block in self.blocks:
            maps.append(cast(Block, block).attention_probabilities(x, mask))
            x = block(x, mask)[0]
        return [("attention", torch.stack(maps))]

    def forward(self, tokens: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """(logits [N, T, V], (present keys, present values)); the training entry point."""
        if state is None:
            state = self.initial_state(tokens.shape[0], tokens.device)
        logits, keys, values = self.step(tokens, *state)
        return logits, (keys, values)


TINY = {"n_embd": 32, "n_head": 2, "n_layer": 1, "block_size": 16, "dropout": 0.0}


@register_model(
    "char-gpt",
    task=schema.TASK_TEXT_GENERATION,
    config_cls=GPTConfig,
    default_dataset="shakespeare",
    recipes={
        "smoke": Recipe(
            epochs=1,
            batch_size=8,
            lr=3e-3,
            steps_per_epoch=8,
            limit_eval=8,
            model_overrides=TINY,
            data_options={"sample_tokens": 24, "markov_max_order": 4, "final_eval_windows": 8},
        ),
        # The default model, ~0.8M parameters, 1000 steps of 16 x 64 characters: ~1 minute on 2 CPU cores. A step costs
        # in proportion to its characters here, and so early in training more, smaller steps learn more per character:
        # with a high peak lr annealed to 0, beta2 0.99 and no dropout, val_bpc 2.65 (400 steps of 32, lr 3e-3 to a
        # tenth, beta2 0.999: 2.97); benchmarks/RESULTS.md has the measurements.
        "quick": Recipe(
            epochs=2,
            batch_size=16,
            lr=1e-2,
            betas=(0.9, 0.99),
            warmup_steps=50,
            final_lr_fraction=0.0,
            steps_per_epoch=500,
            limit_eval=256,
            weight_decay=0.1,
            model_overrides={"dropout": 0.0},
            data_options={"final_eval_windows": 1000},
        ),
        # The target needs far more tokens than the quick recipe: 12k steps of 64 x 128 tokens with a wider model.
        "full": Recipe(
            epochs=24,
            batch_size=64,
            lr=1e-3,
            warmup_steps=200,
            steps_per_epoch=500,
            limit_eval=2000,
            weight_decay=0.1,
            early_stop_patience=4,
            model_overrides={"n_embd": 256, "n_head": 4, "n_layer": 6, "block_size": 128, "dropout": 0.2},
        ),
    },
    description="Character GPT: 4 layers, 4 heads, n_embd 128, block 64, KV cache, tied weights",
    targets=(QualityTarget("val_loss", at_most=1.50), QualityTarget("val_loss", below="markov_nats")),
    demo_targets=(QualityTarget("val_bpc", at_most=2.7),),
    tiny_config=TINY,
)
def char_gpt(**config: Any) -> GPT:
    return GPT(GPTConfig(**config))
