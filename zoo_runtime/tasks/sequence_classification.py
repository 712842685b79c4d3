"""Sequence classification: a sequence (text where the vocabulary is characters, else token ids) in,
labels sorted by probability out."""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo_runtime import schema
from zoo_runtime.sampling import softmax
from zoo_runtime.tasks.base import BundleModel, Prediction, as_token_ids
from zoo_runtime.vocab import Vocabulary


class SequenceClassifier(BundleModel):
    """``classify_sequence(tokens)`` over a sequence-classification bundle."""

    task = schema.TASK_SEQUENCE_CLASSIFICATION
    roles = (schema.ROLE_MODEL,)

    def __init__(self, bundle, factory):
        super().__init__(bundle, factory)
        self._input = self.graph("model")["inputs"][0]["name"]
        self.vocab = Vocabulary(self.manifest.get("vocab"), self.name)
        # A few held-out (label, sequence) pairs shipped in the bundle, for people to try.
        self.examples: list[list[str]] = list(self.manifest.get("examples") or [])

    def logits(self, tokens: Any) -> np.ndarray:
        if isinstance(tokens, str):
            ids = np.asarray(self.vocab.encode(tokens), dtype=np.int64)
        else:
            ids = as_token_ids(tokens, self.vocab_size())
        return self._run("model", {self._input: ids[None]})[0][0]

    def classify_sequence(self, tokens: Any, top_k: int | None = None) -> list[Prediction]:
        """Every class (or the ``top_k`` best) with its probability, most probable first. ``tokens`` is a
        string where the vocabulary is characters ("ACGT..."), or token ids."""
        return self._predictions(softmax(self.logits(tokens)), top_k)
