"""Encoder-decoder transformer for seq2seq, built from the GPT's blocks.

Pre-LN encoder blocks with a source padding mask; decoder blocks add cross-attention to the
encoder's memory after their causal self-attention. Learned position embeddings, output head
tied to the target token embedding. With ``src_vocab_size`` set, the source has its own
vocabulary and embedding (DNA in, amino acids out); without it both sides share one. Pad masks
are derived from ``src`` inside ``decode`` so the exported decoder needs no separate mask input (docs/BUNDLE.md, seq2seq).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn as nn
from torch import Tensor

from zoo_runtime import schema
from zoo_train.models.gpt import Attention, Block, causal_mask, init_transformer_weights
from zoo_train.registry import QualityTarget, Recipe, register_model


@dataclass(frozen=True)
class Seq2SeqConfig:
    vocab_size: int = 13  # the target vocabulary (and the source's, unless src_vocab_size is set)
    src_vocab_size: int | None = None
    max_len: int = 32  # positions: the longest source or target prefix (set from the data)
    d_model: int = 128
    n_head: int = 4
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    dim_feedforward: int = 256
    dropout: float = 0.1
    pad_id: int = 0


class DecoderBlock(Block):
    """Causal self-attention, then cross-attention to the memory, then the MLP."""

    def __init__(self, d_model: int, n_head: int, hidden: int, dropout: float):
        super().__init__(d_model, n_head, hidden, dropout)
        self.ln_cross = nn.LayerNorm(d_model)
        self.cross = Attention(d_model, n_head, dropout)

    def forward(self, x: Tensor, memory: Tensor, self_mask: Tensor, memory_mask: Tensor) -> Tensor:  # type: ignore[override]
        x, _, _ = self.self_attend(x, self_mask)
        k, v = self.cross.keys_values(memory)
        x = x + self.cross(self.ln_cross(x), k, v, memory_mask)
        return x + self.mlp(self.ln2(x))


class Seq2SeqTransformer(nn.Module):
    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        c = self.config = config
        self.pad_id = c.pad_id
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        self.src_embed = nn.Embedding(c.src_vocab_size, c.d_model) if c.src_vocab_size else None
        self.pos = nn.Embedding(c.max_len, c.d_model)
        self.drop = nn.Dropout(c.dropout)
        self.encoder = nn.ModuleList(
            Block(c.d_model, c.n_head, c.dim_feedforward, c.dropout) for _ in range(c.num_encoder_layers)
        )
        self.ln_memory = nn.LayerNorm(c.d_model)
        self.decoder = nn.ModuleList(
            DecoderBlock(c.d_model, c.n_head, c.dim_feedforward, c.dropout) for _ in range(c.num_decoder_layers)
        )
        self.ln_out = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        init_transformer_weights(self, c.num_encoder_layers + c.num_decoder_layers)
        self.head.weight = self.embed.weight

    def _embed(self, tokens: Tensor, table: nn.Embedding) -> Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        return self.drop(table(tokens) + self.pos(positions))

    def source_mask(self, src: Tensor) -> Tensor:
        """[N, 1, 1, S] boolean, True where a key is a real source token."""
        keep = src != self.pad_id
        # An all-pad source would leave a row with nothing to attend to (NaN); position 0 always stays.
        keep = keep | (torch.arange(src.shape[1], device=src.device) == 0)
        return keep[:, None, None, :]

    def encode(self, src: Tensor) -> Tensor:
        """src [N, S] (pad-filled) -> memory [N, S, d_model]."""
        mask = self.source_mask(src)
        x = self._embed_source(src)
        for block in self.encoder:
            x, _, _ = block(x, mask)
        return self.ln_memory(x)

    def _embed_source(self, src: Tensor) -> Tensor:
        return self._embed(src, self.src_embed if self.src_embed is not None else self.embed)

    def decode(self, tgt: Tensor, memory: Tensor, src: Tensor) -> Tensor:
        """Target prefix [N, T] (bos first), memory, src -> logits [N, T, V] for the next token at each place."""
        self_mask = causal_mask(0, tgt.shape[1], tgt.device)
        memory_mask = self.source_mask(src)
        x = self._embed(tgt, self.embed)
        for block in self.decoder:
            x = block(x, memory, self_mask, memory_mask)
        return self.head(self.ln_out(x))

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        """Teacher forcing: logits for every position of ``tgt``."""
        return self.decode(tgt, self.encode(src), src)

    def inspect_stages(self, src: Tensor, tgt: Tensor) -> list[tuple[str, Tensor]]:
        """The attention probabilities for a source and a target prefix, as ``encode`` and ``decode`` compute them:
        ``encoder_attention`` [enc_layers, N, heads, S, S], ``decoder_attention`` [dec_layers, N, heads, T, T] and
        ``cross_attention`` [dec_layers, N, heads, T, S] (row t: the source positions read to predict token t + 1)."""
        source_mask = self.source_mask(src)
        x = self._embed_source(src)
        encoder_maps = []
        for block in self.encoder:
            encoder_maps.append(cast(Block, block).attention_probabilities(x, source_mask))
            x = block(x, source_mask)[0]
        memory = self.ln_memory(x)
        self_mask = causal_mask(0, tgt.shape[1], tgt.device)
        y = self._embed(tgt, self.embed)
        decoder_maps, cross_maps = [], []
        for block in self.decoder:
            decoder = cast(DecoderBlock, block)
            decoder_maps.append(decoder.attention_probabilities(y, self_mask))
            attended, _, _ = decoder.self_attend(y, self_mask)
            keys = decoder.cross.keys_values(memory)[0]
            cross_maps.append(decoder.cross.probabilities(decoder.ln_cross(attended), keys, source_mask))
            y = decoder(y, memory, self_mask, source_mask)
        return [
            ("encoder_attention", torch.stack(encoder_maps)),
            ("decoder_attention", torch.stack(decoder_maps)),
            ("cross_attention", torch.stack(cross_maps)),
        ]


TINY = {"d_model": 16, "n_head": 2, "num_encoder_layers": 1, "num_decoder_layers": 1, "dim_feedforward": 32, "dropout": 0.0}


@register_model(
    "seq2seq-transformer",
    task=schema.TASK_SEQ2SEQ,
    config_cls=Seq2SeqConfig,
    default_dataset="dna-to-protein",
    recipes={
        "smoke": Recipe(
            epochs=1, batch_size=16, lr=3e-3, limit_train=64, limit_eval=32, model_overrides=TINY, data_options={"max_length": 18}
        ),
        # Windows of 12-18 nt (4-6 codons): on 2 CPU cores the full 12-90 nt windows need far more than the
        # demo's minutes before the model finds the codon alignment (0.00 exact after 625 steps, 17 minutes;
        # 12-30 nt reached 0.24 in 375 steps). Batch 128 rather than 64: the rare (AT-rich) codons of these
        # GC-rich genomes need the less noisy gradient; at batch 64, lr 1e-3, 1000 steps gave 0.904 exact,
        # here 625 steps give 1.000 (375 steps: 0.514; benchmarks/RESULTS.md).
        "quick": Recipe(
            epochs=5,
            batch_size=128,
            lr=2e-3,
            warmup_steps=50,
            final_lr_fraction=0.0,
            limit_train=16000,
            limit_eval=500,
            model_overrides={"d_model": 64, "dim_feedforward": 128, "dropout": 0.0},
            data_options={"max_length": 18},
        ),
        "full": Recipe(epochs=40, batch_size=128, lr=5e-4, warmup_steps=300, early_stop_patience=6),
    },
    description="Encoder-decoder transformer, teacher forcing, greedy decoding; DNA to protein by the genetic code",
    targets=(QualityTarget("test_exact", at_least=0.95),),
    demo_targets=(QualityTarget("test_exact", at_least=0.95),),
    tiny_config=TINY,
)
def seq2seq_transformer(**config: Any) -> Seq2SeqTransformer:
    return Seq2SeqTransformer(Seq2SeqConfig(**config))
