"""Seq2seq: encode the source once, then greedy decoding with the decoder over the target prefix.

Two vocabularies where the bundle has ``target_vocab`` (DNA in, amino acids out); otherwise ``vocab``
serves both sides (the first bundles: ids in, ids out)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from zoo_runtime import schema
from zoo_runtime.bundle import Bundle
from zoo_runtime.errors import BundleError
from zoo_runtime.generation import greedy_decode
from zoo_runtime.providers import SessionFactory
from zoo_runtime.tasks.base import BundleModel, Field, as_token_ids
from zoo_runtime.vocab import Vocabulary


class Translator(BundleModel):
    """``translate(src, max_len=None)`` over a seq2seq bundle: text in and out where the vocabularies are
    characters, token ids in and out otherwise."""

    task = schema.TASK_SEQ2SEQ
    roles = (schema.ROLE_ENCODER, schema.ROLE_DECODER)
    inputs: ClassVar[Mapping[str, Field]] = {
        "src": Field("token-ids", "the source sequence: a list of token ids", required=True),
        "max_len": Field("integer", "most tokens to decode (default: what the model's positions allow)"),
    }
    outputs: ClassVar[Mapping[str, Field]] = {
        "output": Field("token-ids", "the decoded ids after bos, up to (not including) eos")
    }

    def __init__(self, bundle: Bundle, factory: SessionFactory) -> None:
        super().__init__(bundle, factory)
        self.vocab = Vocabulary(self.manifest.get("vocab"), self.name)
        target_block = self.manifest.get("target_vocab") or self.manifest.get("vocab")
        self.target_vocab = Vocabulary(target_block, self.name)
        self.examples: list[list[str]] = list(self.manifest.get("examples") or [])
        specials = (target_block or {}).get("specials") or {}
        gen = self.manifest.get("generation") or {}
        bos = specials.get("bos", gen.get("bos"))
        if bos is None:
            raise BundleError(f"{self.path}: a seq2seq bundle needs vocab.specials.bos to start decoding")
        self.bos_id = int(bos)
        self.eos_id: int | None = specials.get("eos", gen.get("eos"))
        self.pad_id: int | None = specials.get("pad", gen.get("pad"))
        # Positions the model knows: the longest source, and the longest target prefix (bos included).
        self.max_source: int | None = gen.get("max_source")
        self.max_target: int | None = gen.get("max_target")
        default = (self.manifest.get("sampling") or {}).get("max_new_tokens")
        if default is None and self.max_target:
            default = self.max_target - 1
        self.max_len: int | None = default
        self._decoder_inputs = {t["name"] for t in self.graph(schema.ROLE_DECODER)["inputs"]}

    def encode(self, src: np.ndarray) -> np.ndarray:
        return self._run(schema.ROLE_ENCODER, {schema.INPUT_SRC: src}, [schema.OUTPUT_MEMORY])[0]

    def decoder_logits(self, tgt: np.ndarray, memory: np.ndarray, src: np.ndarray) -> np.ndarray:
        feeds = {schema.INPUT_TGT: tgt, schema.INPUT_MEMORY: memory, schema.INPUT_SRC: src}
        wanted = {k: v for k, v in feeds.items() if k in self._decoder_inputs}
        return self._run(schema.ROLE_DECODER, wanted, [schema.OUTPUT_LOGITS])[0]

    def translate(self, src: Any, max_len: int | None = None) -> Any:
        """Greedy decoding: the target after ``bos``, up to (not including) ``eos``; a string for a string
        source (character vocabularies), else the list of target ids."""
        if isinstance(src, str):
            return self.target_vocab.decode(self.translate_ids(self.vocab.encode(src, "src"), max_len))
        return self.translate_ids(src, max_len)

    def translate_ids(self, src: Any, max_len: int | None = None) -> list[int]:
        """Greedy decoding from source ids: the target ids after ``bos``, up to (not including) ``eos``."""
        ids = as_token_ids(src, self.vocab_size(), "src")[None]
        if self.max_source and ids.shape[1] > self.max_source:
            raise BundleError(f"src: {ids.shape[1]} tokens; {self.name} takes at most {self.max_source}")
        limit = max_len if max_len is not None else (self.max_len or ids.shape[1] + 16)
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
            raise BundleError(f"max_len: expected a positive integer, got {limit!r}")
        if self.max_target:
            limit = min(int(limit), self.max_target - 1)  # the prefix (bos + output) must fit the positions
        out, _ = greedy_decode(self.encode, self.decoder_logits, ids, self.bos_id, int(limit), eos=self.eos_id)
        row = [int(t) for t in out[0]]
        return row[: row.index(self.eos_id)] if self.eos_id in row else row

    def inspect(self, src: Any, output: Any = None) -> dict[str, np.ndarray]:
        """The attention probabilities for ``src`` (text or ids, as ``translate`` takes it) and its translation
        (``output``, default: the greedy one), by the inspect graph's names: ``encoder_attention``
        [layers, 1, heads, S, S], ``decoder_attention`` [layers, 1, heads, T, T] and ``cross_attention``
        [layers, 1, heads, T, S], over the target prefix bos + output (row t: the source positions read to
        predict output token t, or eos after the last). A bundle without an inspect graph is a BundleError."""
        if schema.ROLE_INSPECT not in self._sessions:
            raise self._no_inspect_graph()
        ids = (
            self.vocab.encode(src, "src")
            if isinstance(src, str)
            else [int(t) for t in as_token_ids(src, self.vocab_size(), "src")]
        )
        if output is None:
            output = self.translate_ids(ids)
        elif isinstance(output, str):
            output = self.target_vocab.encode(output, "output", allow_empty=True)
        target = [self.bos_id, *[int(t) for t in output]]
        if self.max_target and len(target) > self.max_target:
            target = target[: self.max_target]  # the prefix positions the model knows
        feeds = {schema.INPUT_SRC: np.asarray([ids], dtype=np.int64), schema.INPUT_TGT: np.asarray([target], dtype=np.int64)}
        return self._inspect(feeds)

    def describe_task(self) -> dict[str, Any]:
        return {
            "vocab_size": self.vocab_size(),
            "specials": {"pad": self.pad_id, "bos": self.bos_id, "eos": self.eos_id},
            "max_source": self.max_source,
            "max_len": self.max_len,
        }

    def predict_checked(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return {"output": self.translate(request["src"], max_len=request.get("max_len"))}
