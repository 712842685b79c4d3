"""Real sequence tasks: reads classified by genome of origin, DNA windows translated to protein,
and the user's own labelled sequences (TSV, or a folder of FASTA files one per class).

Splits by region. Each genome is cut into blocks (``region_size`` bases, 10 kb by default); a
seeded permutation gives 80% of the blocks to train, 10% to validation and 10% to test, and every
read or window lies wholly inside one block. So no base of a validation or test read was ever
seen in training, at any position: the networks and the baseline are scored on unseen DNA.

Reads. A read's length is uniform in ``min_length..max_length``, its block is chosen in
proportion to the starts it offers, its start uniform inside it, and half the reads (a fair coin
each) are the reverse complement: sequencers read either strand. Classes are balanced (the same
count per genome in every split). Everything comes from ``numpy.random.default_rng([seed, split,
class])``, so a seed names the data exactly.

Token layout (docs/BUNDLE.md, vocab). Id 0 is ``<pad>``; a seq2seq target vocabulary adds
``<bos>`` = 1 and ``<eos>`` = 2; the characters follow, sorted. Sequence classifiers take reads
left-padded (the recurrent state after the last real base is the one classified); seq2seq
sources and targets are right-padded (the Transformer masks pads).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo_runtime import schema
from zoo_train.data.dna import GENOMES, find_genome, parse_sequence
from zoo_train.data.errors import DataError
from zoo_train.data.text import read_utf8

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = {"val": 0.1, "test": 0.1}  # of the blocks (genomes) or of the lines (TSV); train gets the rest
REGION_SIZE = 10_000
MIN_BLOCKS_PER_SPLIT = 1

# The two genomes of Debian's kmer-examples, as classes: label -> genome name (zoo_train.data.dna.GENOMES).
GENOME_CLASSES = {"M. tuberculosis H37Rv": "kmer-examples", "M. leprae TN": "kmer-examples-leprae"}
READS_DATASET = "genome-reads"
TRANSLATION_DATASET = "dna-to-protein"

# The standard genetic code (NCBI translation table 1): codons in TCAG order, first base slowest.
_BASES = "TCAG"
_AMINO_ACIDS = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
GENETIC_CODE: dict[str, str] = {
    a + b + c: _AMINO_ACIDS[16 * i + 4 * j + k]
    for i, a in enumerate(_BASES)
    for j, b in enumerate(_BASES)
    for k, c in enumerate(_BASES)
}
PROTEIN_LETTERS = "ACDEFGHIKLMNPQRSTVWY*"  # 20 amino acids and stop
_COMPLEMENT = str.maketrans("ACGT", "TGCA")

PAD_TOKEN, BOS_TOKEN, EOS_TOKEN = (schema.SPECIAL_TOKENS[s] for s in ("pad", "bos", "eos"))
PAD, BOS, EOS = 0, 1, 2


def translate(dna: str) -> str:
    """Protein of an in-frame DNA string by the standard code (``*`` for stop); length a multiple of 3."""
    if len(dna) % 3:
        raise ValueError(f"a DNA string of {len(dna)} bases is not a whole number of codons")
    return "".join(GENETIC_CODE[dna[i : i + 3]] for i in range(0, len(dna), 3))


def reverse_complement(dna: str) -> str:
    return dna.translate(_COMPLEMENT)[::-1]


# ------------------------------------------------------------------------------------------ vocabularies


@dataclass(frozen=True)
class TokenVocab:
    """Characters plus leading specials; token id = index in ``tokens`` (docs/BUNDLE.md, vocab)."""

    chars: tuple[str, ...]
    specials: tuple[str, ...] = (PAD_TOKEN,)
    unknown: str = schema.UNKNOWN_ERROR

    @classmethod
    def from_texts(cls, texts: Iterable[str], specials: tuple[str, ...] = (PAD_TOKEN,), unknown: str | None = None) -> TokenVocab:
        chars = tuple(sorted(set().union(*map(set, texts))))
        if unknown is None:
            unknown = schema.UNKNOWN_SKIP if set(chars) <= set(schema.DNA_TOKENS) else schema.UNKNOWN_ERROR
        return cls(chars, specials, unknown)

    @property
    def tokens(self) -> list[str]:
        return [*self.specials, *self.chars]

    @property
    def size(self) -> int:
        return len(self.specials) + len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``; characters outside the vocabulary are dropped (the data code counts them first)."""
        index = {c: i for i, c in enumerate(self.tokens) if len(c) == 1}
        return [index[c] for c in text if c in index]

    def decode(self, ids: Iterable[int]) -> str:
        tokens = self.tokens
        return "".join(tokens[i] for i in map(int, ids) if i >= len(self.specials))

    def to_meta(self) -> dict[str, Any]:
        names = {PAD_TOKEN: "pad", BOS_TOKEN: "bos", EOS_TOKEN: "eos"}
        ids: dict[str, int | None] = {"pad": None, "bos": None, "eos": None}
        ids.update({names[s]: i for i, s in enumerate(self.specials)})
        return {"kind": schema.VOCAB_CHAR, schema.VOCAB_TOKENS: self.tokens, "unknown": self.unknown, "specials": ids}


DNA_READ_VOCAB = TokenVocab(schema.DNA_TOKENS, unknown=schema.UNKNOWN_SKIP)
DNA_SOURCE_VOCAB = DNA_READ_VOCAB
PROTEIN_VOCAB = TokenVocab(tuple(sorted(PROTEIN_LETTERS)), specials=(PAD_TOKEN, BOS_TOKEN, EOS_TOKEN))


# ------------------------------------------------------------------------------------------ regions and reads


@dataclass(frozen=True)
class Read:
    """One sampled read or window: its class, where it came from, and its bases as read."""

    label: int
    start: int  # on the forward strand, end exclusive
    end: int
    strand: str  # "+" or "-"
    sequence: str


def split_regions(length: int, region_size: int, seed: int | Sequence[int], what: str) -> dict[str, list[tuple[int, int]]]:
    """Blocks ``(start, end)`` of a sequence of ``length`` bases for each split, disjoint, from ``seed``."""
    blocks = length // region_size
    needed = len(SPLITS) * MIN_BLOCKS_PER_SPLIT
    if blocks < needed:
        raise DataError(
            f"{what}: {length:,} bases make {blocks} regions of {region_size:,}; need at least {needed} "
            "(one per split). Give a longer sequence or a smaller region size."
        )
    edges = [i * region_size for i in range(blocks)] + [length]  # the last block takes the remainder
    order = np.random.default_rng(seed).permutation(blocks)
    sizes = {s: max(MIN_BLOCKS_PER_SPLIT, round(f * blocks)) for s, f in SPLIT_FRACTIONS.items()}
    cut = {"val": order[: sizes["val"]], "test": order[sizes["val"] : sizes["val"] + sizes["test"]]}
    cut["train"] = order[sizes["val"] + sizes["test"] :]
    return {s: sorted((edges[b], edges[b + 1]) for b in cut[s]) for s in SPLITS}


def sample_reads(
    genome: str,
    regions: list[tuple[int, int]],
    count: int,
    lengths: tuple[int, int],
    label: int,
    rng: np.random.Generator,
    multiple_of: int = 1,
) -> list[Read]:
    """``count`` reads of ``lengths[0]..lengths[1]`` bases (a multiple of ``multiple_of``), each inside one region."""
    low, high = lengths
    choices = np.arange(-(-low // multiple_of), high // multiple_of + 1) * multiple_of
    starts = np.array([r[0] for r in regions])
    room = np.array([r[1] - r[0] for r in regions])
    reads = []
    for size in rng.choice(choices, size=count):
        usable = np.maximum(room - size + 1, 0)
        if not usable.any():
            raise DataError(f"regions of {int(room.max()):,} bases cannot hold a read of {size}")
        block = rng.choice(len(regions), p=usable / usable.sum())
        start = int(starts[block] + rng.integers(0, usable[block]))
        bases = genome[start : start + size]
        minus = bool(rng.integers(0, 2))
        reads.append(Read(label, start, start + int(size), "-" if minus else "+", reverse_complement(bases) if minus else bases))
    return reads


def sample_split_reads(
    genomes: Sequence[str],
    counts: dict[str, int],
    lengths: tuple[int, int],
    seed: int,
    region_size: int,
    names: Sequence[str],
    multiple_of: int = 1,
) -> dict[str, list[Read]]:
    """Balanced reads of every genome for every split, from disjoint regions (the module's docstring)."""
    out: dict[str, list[Read]] = {s: [] for s in SPLITS}
    for label, (genome, name) in enumerate(zip(genomes, names, strict=True)):
        size = min(region_size, max(lengths[1] * 4, len(genome) // 20))
        regions = split_regions(len(genome), size, [seed, 1000 + label], name)
        for i, split in enumerate(SPLITS):
            rng = np.random.default_rng([seed, i, label])
            out[split] += sample_reads(genome, regions[split], counts[split], lengths, label, rng, multiple_of)
    for i, split in enumerate(SPLITS):
        order = np.random.default_rng([seed, i, 999]).permutation(len(out[split]))
        out[split] = [out[split][j] for j in order]
    return out


# ------------------------------------------------------------------------------------------ files


def load_genome_classes(data_dir: Path | None) -> tuple[list[str], list[str], str]:
    """(labels, sequences, where) of the two kmer-examples genomes."""
    labels, sequences, where = [], [], []
    for label, name in GENOME_CLASSES.items():
        path = find_genome(data_dir, name)
        sequence, _ = parse_sequence(read_utf8(path))
        if not sequence:
            raise DataError(f"{path}: holds no A/C/G/T sequence")
        labels.append(label)
        sequences.append(sequence)
        where.append(f"{GENOMES[name]} ({len(sequence):,} bases)")
    return labels, sequences, ", ".join(where)


FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".ffn", ".fas")


def load_fasta_classes(folder: Path) -> tuple[list[str], list[str]]:
    """(labels, sequences) from a folder of FASTA files, one per class (label = file name without suffix)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FASTA_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no FASTA files ({', '.join(FASTA_SUFFIXES)}); put one file per class there")
    if len(files) < 2:
        raise DataError(f"{folder}: only one FASTA file ({files[0].name}), so only one class; a classifier needs two or more")
    sequences = []
    for path in files:
        sequence, _ = parse_sequence(read_utf8(path))
        if not sequence:
            raise DataError(f"{path}: holds no A/C/G/T sequence")
        sequences.append(sequence)
    return [p.stem for p in files], sequences


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def read_tsv_pairs(path: Path, columns: tuple[str, str]) -> list[tuple[str, str, int]]:
    """``(first, second, line number)`` of every line ``first<TAB>second``; blank lines and ``#`` lines are skipped."""
    text = read_utf8(path)
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(
                f"{path}:{number}: expected {columns[0]}<TAB>{columns[1]}, got {len(fields)} field(s) "
                f"separated by {len(fields) - 1} tab(s)"
            )
        first, second = fields[0].strip(), fields[1].strip()
        for value, column in ((first, columns[0]), (second, columns[1])):
            if not value:
                raise DataError(f"{path}:{number}: the {column} is empty")
            if bad := _CONTROL.search(value):
                raise DataError(f"{path}:{number}: the {column} holds a control character (U+{ord(bad.group()):04X})")
        rows.append((first, second, number))
    if not rows:
        raise DataError(f"{path}: no data lines; expected {columns[0]}<TAB>{columns[1]} on each line")
    return rows


def split_rows(rows: list[Any], seed: int, what: str) -> dict[str, list[Any]]:
    """Rows shuffled by ``seed`` and cut 80/10/10; every split gets at least one row."""
    if len(rows) < len(SPLITS):
        raise DataError(f"{what}: {len(rows)} line(s); need at least {len(SPLITS)} (train, validation, test)")
    order = np.random.default_rng([seed, 7]).permutation(len(rows))
    sizes = {s: max(1, round(f * len(rows))) for s, f in SPLIT_FRACTIONS.items()}
    val, test = order[: sizes["val"]], order[sizes["val"] : sizes["val"] + sizes["test"]]
    train = order[sizes["val"] + sizes["test"] :]
    return {"train": [rows[i] for i in train], "val": [rows[i] for i in val], "test": [rows[i] for i in test]}


def check_lengths(rows: Iterable[tuple[str, int]], limit: int, truncate: bool, what: str) -> None:
    """Refuse sequences over ``limit`` characters unless truncating; ``rows`` are (sequence, line number)."""
    if truncate:
        return
    for sequence, number in rows:
        if len(sequence) > limit:
            raise DataError(
                f"{what}:{number}: {len(sequence)} characters; this model takes at most {limit} "
                "(--truncate cuts longer sequences, or raise the limit with the data option max_length)"
            )


def unseen_characters(texts: Iterable[str], vocab: TokenVocab) -> int:
    known = set(vocab.chars)
    return sum(1 for t in texts for c in t if c not in known)


# ------------------------------------------------------------------------------------------ tensors


def left_padded(sequences: Sequence[str], vocab: TokenVocab, length: int) -> torch.Tensor:
    """int64 [N, length]: each sequence's ids at the right end, pads before them (cut to its last ``length``)."""
    out = np.full((len(sequences), length), PAD, dtype=np.int64)
    for i, seq in enumerate(sequences):
        ids = vocab.encode(seq)[-length:]
        if ids:
            out[i, length - len(ids) :] = ids
    return torch.from_numpy(out)


def right_padded(sequences: Sequence[str], vocab: TokenVocab, length: int, bos_eos: bool = False) -> torch.Tensor:
    """int64 [N, length]: ids from the left (``<bos>`` ids ``<eos>`` when asked), pads after."""
    out = np.full((len(sequences), length), PAD, dtype=np.int64)
    for i, seq in enumerate(sequences):
        ids = vocab.encode(seq)
        ids = [BOS, *ids[: length - 2], EOS] if bos_eos else ids[:length]
        out[i, : len(ids)] = ids
    return torch.from_numpy(out)
