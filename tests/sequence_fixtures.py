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


def character_checkpoint(model: str, folder: Path) -> Path:
    """An untrained tiny checkpoint of ``model`` with the real tasks' character vocabularies and examples:
    DNA reads -> genome labels (classifiers), DNA -> protein (seq2seq); ``dna_bundle`` in conftest.py exports it."""
    from zoo_export.synthetic import write_checkpoint
    from zoo_train.data.sequences import DNA_READ_VOCAB, GENOME_CLASSES, PROTEIN_VOCAB, translate
    from zoo_train.registry import get_entry

    entry = get_entry(model)
    reads = ["ATGGCCAAGTGGCTGACC", "GGTCAGCCACTTGGCCAT", "ATGAAACCCGGGTTTTAA"]
    config: dict[str, object] = dict(entry.tiny_config)
    if entry.task == "seq2seq":
        config.update(vocab_size=PROTEIN_VOCAB.size, src_vocab_size=DNA_READ_VOCAB.size, max_len=20, pad_id=0)
        meta = {
            "vocab": DNA_READ_VOCAB.to_meta(),
            "target_vocab": PROTEIN_VOCAB.to_meta(),
            "examples": [[r, translate(r)] for r in reads],
        }
    else:
        labels = list(GENOME_CLASSES)
        config.update(vocab_size=DNA_READ_VOCAB.size, num_classes=len(labels), pooling="mean", pad_id=0)
        meta = {
            "labels": labels,
            "vocab": DNA_READ_VOCAB.to_meta(),
            "examples": [[labels[i % 2], r] for i, r in enumerate(reads)],
        }
    return write_checkpoint(model, folder / model / "checkpoints" / "best.pt", config=config, meta=meta)
