"""A bundle's ``vocab`` block (docs/BUNDLE.md): text to token ids and back, by the bundle's rules.

Character vocabularies list one-character tokens plus, where the model has them, specials written
``<pad>``, ``<bos>``, ``<eos>`` (never typed: they are not one character). DNA vocabularies
(A, C, G, T) take lower case too. A character outside the vocabulary follows ``unknown``:
``"error"`` stops with a message naming it and its position; ``"skip"`` drops it and records it
in ``last_skipped`` (and ``skipped_message`` says so in words).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from zoo_runtime import schema
from zoo_runtime.errors import BundleError


class Vocabulary:
    def __init__(self, block: dict[str, Any] | None, model: str = "the model") -> None:
        block = block or {}
        self.model = model
        self.kind: str = str(block.get("kind", schema.VOCAB_IDS))
        self.tokens: list[str] = [str(t) for t in block.get(schema.VOCAB_TOKENS) or []]
        size = block.get("size")
        self.size: int | None = len(self.tokens) if self.tokens else (int(size) if isinstance(size, int) else None)
        self.unknown: str = str(block.get("unknown", schema.UNKNOWN_ERROR))
        specials = block.get("specials") or {}
        self.specials: dict[str, int] = {name: v for name, v in specials.items() if isinstance(v, int)}
        reserved = set(self.specials.values())
        self._index = {t: i for i, t in enumerate(self.tokens) if len(t) == 1 and i not in reserved}
        self.is_dna: bool = set(self._index) == set(schema.DNA_TOKENS)
        self.last_skipped: list[tuple[int, str]] = []

    @property
    def is_text(self) -> bool:
        """Whether people type characters (rather than token ids) for this vocabulary."""
        return self.kind == schema.VOCAB_CHAR and bool(self._index)

    @property
    def characters(self) -> list[str]:
        """The typeable characters, in id order."""
        return list(self._index)

    def describe(self) -> str:
        if self.is_dna:
            return "DNA: A, C, G, T"
        if self.is_text:
            shown = "".join(self.characters)
            return f"{len(self._index)} characters: {shown if len(shown) <= 40 else shown[:40] + '…'}"
        return f"token ids 0..{self.size - 1}" if self.size else "token ids"

    def problems(self, text: str) -> list[tuple[int, str]]:
        """(position, character) of each character of ``text`` outside the vocabulary."""
        folded = text.upper() if self.is_dna else text
        return [(pos, text[pos]) for pos, ch in enumerate(folded) if ch not in self._index]

    def encode(self, text: str, what: str = "sequence", allow_empty: bool = False) -> list[int]:
        """Ids of ``text`` by the ``unknown`` policy; an empty result is an error unless ``allow_empty``."""
        if not self.is_text:
            raise BundleError(f"{what}: {self.model} takes token ids, not text (its vocabulary is {self.describe()})")
        bad = self.problems(text)
        if bad and self.unknown != schema.UNKNOWN_SKIP:
            pos, ch = bad[0]
            more = f" ({len(bad) - 1} more after it)" if len(bad) > 1 else ""
            kind = "DNA base" if self.is_dna else "character"
            raise BundleError(
                f"{what}: {kind} {ch!r} at position {pos} is not in {self.model}'s vocabulary ({self.describe()}){more}"
            )
        self.last_skipped = bad
        folded = text.upper() if self.is_dna else text
        ids = [self._index[ch] for ch in folded if ch in self._index]
        if not ids and not allow_empty:
            raise BundleError(f"{what}: no character of the vocabulary ({self.describe()}) in {text!r}")
        return ids

    def skipped_message(self) -> str:
        """Words for what the last ``encode`` dropped ('' when nothing)."""
        if not self.last_skipped:
            return ""
        shown = ", ".join(f"{ch!r} at {pos}" for pos, ch in self.last_skipped[:5])
        return f"skipped {len(self.last_skipped)} character(s) outside the vocabulary: {shown}" + (
            " ..." if len(self.last_skipped) > 5 else ""
        )

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids`` (specials left out); ids joined by spaces where the vocabulary is not characters."""
        ids = [int(i) for i in ids]
        if not self.is_text:
            return " ".join(map(str, ids))
        reserved = set(self.specials.values())
        return "".join(self.tokens[i] for i in ids if 0 <= i < len(self.tokens) and i not in reserved)
