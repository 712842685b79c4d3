"""Sequence classification: a sequence (text where the vocabulary is characters, else token ids) in,
labels sorted by probability out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from zoo_runtime import schema
from zoo_runtime.bundle import Bundle
from zoo_runtime.providers import SessionFactory
from zoo_runtime.sampling import softmax
from zoo_runtime.tasks.base import BundleModel, Field, Prediction, as_token_ids
from zoo_runtime.vocab import Vocabulary


class SequenceClassifier(BundleModel):
    """``classify_sequence(tokens)`` over a sequence-classification bundle."""

    task = schema.TASK_SEQUENCE_CLASSIFICATION
    roles = (schema.ROLE_MODEL,)
    inputs: ClassVar[Mapping[str, Field]] = {
        schema.INPUT_TOKENS: Field("token-ids", "the sequence: a list of token ids", required=True),
        "top_k": Field("integer", "labels to return, most probable first (default: all)"),
    }
    outputs: ClassVar[Mapping[str, Field]] = {
        "predictions": Field("array", "a list of {label, index, probability}, most probable first")
    }

    def __init__(self, bundle: Bundle, factory: SessionFactory) -> None:
        super().__init__(bundle, factory)
        self._input = self.graph(schema.ROLE_MODEL)["inputs"][0]["name"]
        self.vocab = Vocabulary(self.manifest.get("vocab"), self.name)
        # A few held-out (label, sequence) pairs shipped in the bundle, for people to try.
        self.examples: list[list[str]] = list(self.manifest.get("examples") or [])

    def token_ids(self, tokens: Any) -> np.ndarray:
        """A string (character vocabularies) or token ids -> the checked int64 ids [T]."""
        if isinstance(tokens, str):
            return np.asarray(self.vocab.encode(tokens), dtype=np.int64)
        return as_token_ids(tokens, self.vocab_size())

    def logits(self, tokens: Any) -> np.ndarray:
        row: np.ndarray = self._run(schema.ROLE_MODEL, {self._input: self.token_ids(tokens)[None]})[0][0]
        return row

    def inspect(self, tokens: Any) -> dict[str, np.ndarray]:
        """What the recurrent layers compute at each token of ``tokens`` (as ``classify_sequence`` takes them), by
        the inspect graph's names: ``h`` [layers, 1, T, hidden], the hidden state after each token, then each gate
        (GRU: ``reset``, ``update``, ``candidate``; LSTM: ``input``, ``forget``, ``cell``, ``output``), same shape.
        A bundle without an inspect graph is a BundleError."""
        if schema.ROLE_INSPECT not in self._sessions:
            raise self._no_inspect_graph()
        return self._inspect({self._input: self.token_ids(tokens)[None]})

    def classify_sequence(self, tokens: Any, top_k: int | None = None) -> list[Prediction]:
        """Every class (or the ``top_k`` best) with its probability, most probable first. ``tokens`` is a
        string where the vocabulary is characters ("ACGT..."), or token ids."""
        return self._predictions(softmax(self.logits(tokens)), top_k)

    def describe_task(self) -> dict[str, Any]:
        return {"vocab_size": self.vocab_size()}

    def predict_checked(self, request: Mapping[str, Any]) -> dict[str, Any]:
        preds = self.classify_sequence(request[schema.INPUT_TOKENS], top_k=request.get("top_k"))
        return {"predictions": [p._asdict() for p in preds]}
