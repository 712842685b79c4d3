"""Small generated genomes in the real layout of Debian's kmer-examples, and TSV files of labelled sequences.

``write_genomes(folder)`` writes two random "genomes" of different composition (GC 65% and 45%) as
FASTA files named as the package names them, under ``folder/kmer-examples/``, so that
``--data-dir folder`` finds them where the zoo looks for the real ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo_train.data.dna import GENOMES, KMER_DIR

GENOME_LENGTH = 60_000
GC = {"kmer-examples": 0.65, "kmer-examples-leprae": 0.45}


def random_genome(length: int, gc: float, seed: int) -> str:
    p = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
    return "".join(np.random.default_rng(seed).choice(list("ACGT"), size=length, p=p))


def write_genomes(folder: Path, length: int = GENOME_LENGTH) -> Path:
    """Both genomes as FASTA (70 bases a line, a header, a lower-case stretch and an N as real files have)."""
    root = folder / KMER_DIR
    root.mkdir(parents=True, exist_ok=True)
    for seed, (name, gc) in enumerate(GC.items()):
        bases = random_genome(length, gc, seed)
        bases = bases[:500] + bases[500:560].lower() + "N" + bases[561:]
        lines = [bases[i : i + 70] for i in range(0, len(bases), 70)]
        (root / GENOMES[name]).write_text(f">NC_00000{seed}.1 test genome {name}\n" + "\n".join(lines) + "\n")
    return folder


def write_labelled_tsv(path: Path, rows: int = 60, seed: int = 0) -> Path:
    """``label<TAB>sequence`` lines: "gc" rows rich in G/C, "at" rows rich in A/T, lengths 20-40."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(rows):
        label = ("gc", "at")[i % 2]
        lines.append(f"{label}\t{random_genome(int(rng.integers(20, 41)), 0.8 if label == 'gc' else 0.2, seed * 1000 + i)}")
    path.write_text("\n".join(lines) + "\n")
    return path
