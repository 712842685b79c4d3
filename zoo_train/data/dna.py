"""DNA corpora: FASTA or plain A/C/G/T files, and the bacterial genomes of Debian's kmer-examples.

Reading policy. Lines starting with ">" (FASTA headers) or ";" (old FASTA comments) are
skipped; records are concatenated in file order; case is folded to upper; whitespace and
digits (GenBank-style numbering) are layout, not sequence. Any other letter (N, IUPAC
ambiguity codes such as R/Y/K/M, gaps "-") is skipped, and the skipped symbols are counted
and reported in the dataset description. The vocabulary is A, C, G, T in that order
("GTTA" -> [2, 3, 3, 0]); prompts use the same "skip" policy (docs/BUNDLE.md, vocab).
"""

from __future__ import annotations

import re
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np

from zoo_train.data.errors import DataError
from zoo_train.data.paths import search_dirs, user_cache_dir
from zoo_train.data.text import DNA_TOKENS, CharVocab, Corpus, read_utf8
from zoo_train.files import atomic_write_bytes

# Sample from the model's own distribution: with four symbols, temperature 0.8 and top-p 0.95 favour the
# commoner bases (dna-gru on M. tuberculosis, GC 65.6%: 77.6% GC sampled that way, 64.5% at temperature 1).
DNA_SAMPLING = {"temperature": 1.0, "top_k": None, "top_p": None, "max_new_tokens": 600}

DNA_VOCAB = CharVocab(DNA_TOKENS, unknown="skip")

# Debian's kmer-examples ships two complete Mycobacterium genomes; the default is the larger,
# M. tuberculosis H37Rv (4.4 Mb, 65.6% GC).
KMER_TARBALL = Path("/usr/share/doc/kmer-examples/test_data.tar.gz")
KMER_DIR = "kmer-examples"
GENOMES = {
    "kmer-examples": "GCF_000195955.2_ASM19595v2_genomic.fna",  # M. tuberculosis H37Rv
    "kmer-examples-leprae": "GCF_000195855.1_ASM19585v1_genomic.fna",  # M. leprae TN
}
DEFAULT_GENOME = "kmer-examples"

_LAYOUT = re.compile(r"[\s0-9]+")
_NOT_ACGT = re.compile(r"[^ACGT]")


def parse_sequence(text: str) -> tuple[str, Counter[str]]:
    """(A/C/G/T sequence, counts of the skipped symbols) from FASTA or plain text."""
    body = "".join(line for line in text.split("\n") if not line.startswith((">", ";")))
    body = _LAYOUT.sub("", body).upper()
    skipped = Counter(_NOT_ACGT.findall(body))
    return (_NOT_ACGT.sub("", body) if skipped else body), skipped


def describe_skipped(skipped: Counter[str]) -> str:
    if not skipped:
        return "no non-ACGT symbols"
    top = ", ".join(f"{sym}: {n:,}" for sym, n in skipped.most_common(6))
    return f"skipped {sum(skipped.values()):,} non-ACGT symbols ({top})"


def find_genome(data_dir: Path | None, name: str = DEFAULT_GENOME) -> Path:
    """The genome's .fna file: --data-dir, $ZOO_DATA, the user cache; else extracted from
    Debian's kmer-examples tarball into the user cache."""
    if name not in GENOMES:
        raise DataError(f"unknown genome {name!r}; known: {', '.join(GENOMES)} (or pass a FASTA path)")
    filename = GENOMES[name]
    dirs = search_dirs(data_dir)
    for root in dirs:
        for candidate in (root / KMER_DIR / filename, root / filename):
            if candidate.is_file():
                return candidate
    tarball = next((d / KMER_TARBALL.name for d in dirs if (d / KMER_TARBALL.name).is_file()), None)
    if tarball is None:
        raise DataError(
            f"{name}: {filename} not found in "
            + ", ".join(str(d) for d in dirs)
            + ". Install Debian's kmer-examples (apt-get install kmer-examples) or pass --data GENOME.fna."
        )
    return extract_genome(tarball, filename, user_cache_dir() / KMER_DIR)


def extract_genome(tarball: Path, filename: str, folder: Path) -> Path:
    """Copy one member of the kmer-examples tarball into ``folder`` (atomically); returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / filename
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            member = next((m for m in tar.getmembers() if m.isfile() and Path(m.name).name == filename), None)
            if member is None:
                raise DataError(f"{tarball}: holds no {filename}")
            genome = tar.extractfile(member).read()  # type: ignore[union-attr]
    except (OSError, tarfile.TarError) as exc:
        raise DataError(f"{tarball}: cannot read ({exc})") from None
    atomic_write_bytes(target, lambda f: f.write(genome))
    return target


def fetch_genomes(cache_dir: Path | None = None) -> list[Path]:
    """The data step: extract every kmer-examples genome into the cache (no network needed)."""
    folder = (Path(cache_dir) if cache_dir else user_cache_dir()) / KMER_DIR
    if not KMER_TARBALL.is_file():
        raise DataError(f"{KMER_TARBALL}: not installed; apt-get install kmer-examples")
    return [folder / f if (folder / f).is_file() else extract_genome(KMER_TARBALL, f, folder) for f in GENOMES.values()]


def load_dna_corpus(data: str | None, data_dir: Path | None) -> Corpus:
    """``data`` is a genome name (default: M. tuberculosis from kmer-examples) or a FASTA/plain path."""
    name = data or DEFAULT_GENOME
    path = find_genome(data_dir, name) if name in GENOMES else Path(name)
    if not path.is_file():
        raise DataError(f"{name}: no such FASTA file (DNA models take {', '.join(GENOMES)} or a FASTA/plain path)")
    sequence, skipped = parse_sequence(read_utf8(path))
    if not sequence:
        raise DataError(f"{path}: holds no A/C/G/T sequence ({describe_skipped(skipped)})")
    ids = DNA_VOCAB.encode_corpus(sequence)
    gc = float(np.isin(ids, (1, 2)).mean())
    return Corpus(
        ids,
        DNA_VOCAB,
        f"{name} ({path}): {len(ids):,} bases, GC {gc:.1%}, {describe_skipped(skipped)}",
        sampling=dict(DNA_SAMPLING),
    )
