"""The real sequence tasks' data: genetic code, region splits, reads, TSV/FASTA files, and their errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from sequence_fixtures import write_genomes, write_labelled_tsv

from zoo_train.baselines import KmerNaiveBayes, choose_naive_bayes
from zoo_train.cli import main as zoo_train
from zoo_train.data.errors import DataError
from zoo_train.data.sequences import (
    DNA_READ_VOCAB,
    GENETIC_CODE,
    PROTEIN_VOCAB,
    SPLITS,
    TokenVocab,
    left_padded,
    load_genome_classes,
    read_tsv_pairs,
    reverse_complement,
    right_padded,
    sample_split_reads,
    split_regions,
    translate,
)
from zoo_train.registry import Recipe, get_entry
from zoo_train.tasks.base import get_task


@pytest.fixture(scope="module")
def genomes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_genomes(tmp_path_factory.mktemp("genomes"))


# ------------------------------------------------------------------------------------------ genetic code


def test_genetic_code_known_codons() -> None:
    known = {"ATG": "M", "TAA": "*", "TAG": "*", "TGA": "*", "TTT": "F", "TGG": "W", "GCC": "A", "AAA": "K", "GGG": "G"}
    assert {codon: GENETIC_CODE[codon] for codon in known} == known
    assert translate("ATGGCCTGGTAA") == "MAW*"
    with pytest.raises(ValueError, match="not a whole number of codons"):
        translate("ATGG")


def test_genetic_code_covers_all_64_codons_with_the_standard_degeneracy() -> None:
    assert sorted(GENETIC_CODE) == sorted("".join(c) for c in itertools.product("ACGT", repeat=3))
    counts = {aa: sum(1 for v in GENETIC_CODE.values() if v == aa) for aa in set(GENETIC_CODE.values())}
    assert len(counts) == 21  # 20 amino acids and stop
    assert counts["L"] == counts["S"] == counts["R"] == 6 and counts["*"] == 3
    assert counts["M"] == counts["W"] == 1 and counts["I"] == 3
    assert reverse_complement("AACGTT") == "AACGTT" and reverse_complement("ATGC") == "GCAT"


# ------------------------------------------------------------------------------------------ regions and reads


def test_split_regions_are_disjoint_cover_the_sequence_and_follow_the_seed() -> None:
    regions = split_regions(100_000, 1_000, seed=3, what="g")
    blocks = sorted(b for split in SPLITS for b in regions[split])
    assert blocks[0][0] == 0 and blocks[-1][1] == 100_000
    assert all(a[1] == b[0] for a, b in itertools.pairwise(blocks))  # no gap, no overlap
    assert [len(regions[s]) for s in SPLITS] == [80, 10, 10]
    assert split_regions(100_000, 1_000, seed=3, what="g") == regions
    assert split_regions(100_000, 1_000, seed=4, what="g") != regions
    with pytest.raises(DataError, match="g: 2,500 bases make 2 regions of 1,000; need at least 3"):
        split_regions(2_500, 1_000, seed=0, what="g")


def test_reads_come_from_disjoint_regions_both_strands_balanced_and_deterministic(genomes_dir: Path) -> None:
    labels, genomes, _ = load_genome_classes(genomes_dir)
    counts = {"train": 300, "val": 60, "test": 60}
    reads = sample_split_reads(genomes, counts, (30, 50), seed=5, region_size=10_000, names=labels)
    for split in SPLITS:
        assert [sum(r.label == c for r in reads[split]) for c in range(2)] == [counts[split]] * 2
        assert {r.strand for r in reads[split]} == {"+", "-"}
        for r in reads[split]:
            forward = genomes[r.label][r.start : r.end]
            assert 30 <= len(r.sequence) <= 50
            assert r.sequence == (forward if r.strand == "+" else reverse_complement(forward))
    # No base of a validation or test read lies in any training read's span, in either genome.
    for label in range(2):
        covered = {s: np.zeros(len(genomes[label]), dtype=bool) for s in SPLITS}
        for split in SPLITS:
            for r in reads[split]:
                if r.label == label:
                    covered[split][r.start : r.end] = True
        for a, b in itertools.combinations(SPLITS, 2):
            assert not (covered[a] & covered[b]).any()
    again = sample_split_reads(genomes, counts, (30, 50), seed=5, region_size=10_000, names=labels)
    assert again == reads
    other = sample_split_reads(genomes, counts, (30, 50), seed=6, region_size=10_000, names=labels)
    assert other["train"] != reads["train"]


def test_translation_windows_are_in_frame(genomes_dir: Path) -> None:
    labels, genomes, _ = load_genome_classes(genomes_dir)
    reads = sample_split_reads(genomes, {"train": 50, "val": 5, "test": 5}, (12, 90), 0, 10_000, labels, multiple_of=3)
    lengths = {len(r.sequence) for rs in reads.values() for r in rs}
    assert all(n % 3 == 0 and 12 <= n <= 90 for n in lengths) and len(lengths) > 5


def test_genomes_load_from_the_package_layout_with_case_and_ns_handled(genomes_dir: Path) -> None:
    labels, genomes, where = load_genome_classes(genomes_dir)
    assert labels == ["M. tuberculosis H37Rv", "M. leprae TN"]
    assert all(set(g) == set("ACGT") for g in genomes) and len(genomes[0]) == 59_999  # the N is skipped
    assert "GCF_000195955.2_ASM19595v2_genomic.fna" in where


def test_missing_genomes_say_how_to_get_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("zoo_train.data.paths.SYSTEM_DATA_DIRS", ())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("ZOO_DATA", raising=False)
    with pytest.raises(DataError, match="apt-get install kmer-examples"):
        load_genome_classes(tmp_path)


# ------------------------------------------------------------------------------------------ vocabularies and tensors


def test_token_layout_pads_and_specials() -> None:
    assert DNA_READ_VOCAB.tokens == ["<pad>", "A", "C", "G", "T"]
    assert DNA_READ_VOCAB.to_meta()["specials"] == {"pad": 0, "bos": None, "eos": None}
    assert DNA_READ_VOCAB.to_meta()["unknown"] == "skip"
    assert PROTEIN_VOCAB.to_meta()["specials"] == {"pad": 0, "bos": 1, "eos": 2} and PROTEIN_VOCAB.size == 24
    assert left_padded(["GT", "ACGTA"], DNA_READ_VOCAB, 4).tolist() == [[0, 0, 3, 4], [2, 3, 4, 1]]
    protein = right_padded(["M*"], PROTEIN_VOCAB, 5, bos_eos=True)
    assert PROTEIN_VOCAB.decode(protein[0].tolist()) == "M*" and protein[0, 0] == 1 and protein[0, 3] == 2
    vocab = TokenVocab.from_texts(["hello", "world"])
    assert vocab.chars == tuple("dehlorw") and vocab.unknown == "error"


# ------------------------------------------------------------------------------------------ TSV and FASTA files


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a\tACGT\nb ACGT\n", r"f.tsv:2: expected label<TAB>sequence, got 1 field\(s\) separated by 0 tab\(s\)"),
        ("a\tACGT\n\n# note\nb\tAC\tGT\n", r"f.tsv:4: expected label<TAB>sequence, got 3 field\(s\)"),
        ("a\tACGT\n\tACGT\n", "f.tsv:2: the label is empty"),
        ("a\tACGT\nb\t  \n", "f.tsv:2: the sequence is empty"),
        ("a\tAC\x01GT\n", r"f.tsv:1: the sequence holds a control character \(U\+0001\)"),
        ("", "f.tsv: no data lines; expected label<TAB>sequence on each line"),
        ("# only a comment\n\n", "f.tsv: no data lines"),
    ],
)
def test_tsv_errors_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "f.tsv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_tsv_pairs(path, ("label", "sequence"))


def test_tsv_that_is_not_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.tsv"
    path.write_bytes(b"a\t\xff\xfe\n")
    with pytest.raises(DataError, match=r"f\.tsv"):
        read_tsv_pairs(path, ("label", "sequence"))


def _load(model: str, data: str, data_dir: Path | None = None, **options: object):
    entry = get_entry(model)
    recipe = Recipe(limit_train=40, limit_eval=10, data_options=options)
    return get_task(entry.task).load_data(entry, recipe, data, data_dir, seed=0)


def test_tsv_classification_data_builds_vocab_from_training_split(tmp_path: Path) -> None:
    data = _load("gru-classifier", str(write_labelled_tsv(tmp_path / "own.tsv")))
    assert data.meta["labels"] == ["at", "gc"]
    assert data.meta["vocab"]["tokens"] == ["<pad>", "A", "C", "G", "T"]
    assert data.model_config == {"vocab_size": 5, "num_classes": 2, "pooling": "mean", "pad_id": 0}
    assert [len(getattr(data, s)) for s in SPLITS] == [48, 6, 6]
    tokens, _ = data.train.tensors
    assert tokens.shape[1] == 40 and (tokens[:, -1] != 0).all()  # left-padded to the longest sequence


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        ("a\tACGT\na\tAC\na\tGT\n", {}, "every line has the label 'a'; a classifier needs two or more classes"),
        ("a\tACGT\nb\tAC\n", {}, "2 line\\(s\\); need at least 3"),
        (
            "a\tACGT\nb\tACGTACGTAC\nb\tAC\n",
            {"max_length": 8},
            r"own.tsv:2: 10 characters; this model takes at most 8 \(--truncate",
        ),
    ],
)
def test_tsv_classification_refuses_what_it_cannot_learn_from(tmp_path: Path, text: str, options: dict, message: str) -> None:
    path = tmp_path / "own.tsv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        _load("lstm-classifier", str(path), **options)


def test_truncate_cuts_long_sequences(tmp_path: Path) -> None:
    path = tmp_path / "own.tsv"
    path.write_text("a\tACGT\nb\tACGTACGTAC\nb\tAC\na\tGGGG\n")
    data = _load("lstm-classifier", str(path), max_length=8, truncate=True)
    assert data.train.tensors[0].shape[1] == 8


def test_fasta_folder_one_file_per_class(tmp_path: Path, genomes_dir: Path) -> None:
    folder = tmp_path / "classes"
    folder.mkdir()
    (folder / "only.fa").write_text(">x\n" + "ACGT" * 100 + "\n")
    with pytest.raises(DataError, match=r"only one FASTA file \(only\.fa\), so only one class"):
        _load("lstm-classifier", str(folder))
    for i, fna in enumerate(sorted((genomes_dir / "kmer-examples").iterdir())):
        (folder / f"genome{i}.fasta").write_text(fna.read_text())
    (folder / "only.fa").unlink()
    data = _load("lstm-classifier", str(folder), min_length=30, max_length=40)
    assert data.meta["labels"] == ["genome0", "genome1"]
    assert torch.bincount(data.train.tensors[1]).tolist() == [20, 20]


def test_seq2seq_tsv_has_two_vocabularies(tmp_path: Path) -> None:
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{w}\t{w[::-1].upper()}\n" for w in ["abc", "bca", "cab", "aab", "bba", "ccb", "abca", "cb"] * 3))
    data = _load("seq2seq-transformer", str(path))
    assert data.meta["vocab"]["tokens"] == ["<pad>", "a", "b", "c"]
    assert data.meta["target_vocab"]["tokens"] == ["<pad>", "<bos>", "<eos>", "A", "B", "C"]
    assert data.model_config == {"vocab_size": 6, "src_vocab_size": 4, "max_len": 6, "pad_id": 0}


def test_dna_to_protein_pairs_translate_by_the_code(genomes_dir: Path) -> None:
    data = _load("seq2seq-transformer", "dna-to-protein", genomes_dir)
    src, tgt = data.test.tensors
    source, target = data.extras["source_vocab"], data.extras["target_vocab"]
    for i in range(len(src)):
        dna = source.decode(src[i].tolist())
        assert target.decode(tgt[i].tolist()) == translate(dna) and len(dna) % 3 == 0
    assert data.model_config["max_len"] == 90 and data.model_config["src_vocab_size"] == 5


def test_unknown_dataset_and_bad_tsv_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tACGT\nb\tAC\nno tab here\n")
    argv = ["lstm-classifier", "--preset", "smoke", "--out", str(tmp_path / "out"), "--quiet"]
    assert zoo_train([*argv, "--data", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}:3: expected label<TAB>sequence" in err and "Traceback" not in err
    assert zoo_train([*argv, "--data", str(tmp_path / "missing.tsv")]) == 2
    assert "missing.tsv: no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "out" / "lstm-classifier" / "summary.json").exists()


# ------------------------------------------------------------------------------------------ the baseline


def test_naive_bayes_separates_genomes_of_different_composition(genomes_dir: Path) -> None:
    data = _load("lstm-classifier", "genome-reads", genomes_dir, min_length=60, max_length=80)
    arrays = {s: tuple(t.numpy() for t in getattr(data, s).tensors) for s in SPLITS}
    choice = choose_naive_bayes(arrays["train"], arrays["val"], 2, alphabet=4, max_k=4)
    assert set(choice.by_k) == {1, 2, 3, 4} and choice.val_accuracy == max(choice.by_k.values())
    tokens, labels = arrays["test"]
    assert (choice.model.predict(tokens) == labels).mean() > 0.8  # GC 65% vs 45% over 60-80 bases


def test_naive_bayes_kmers_skip_padding() -> None:
    code, valid = KmerNaiveBayes.codes(np.array([[0, 1, 2, 3], [1, 4, 4, 2]]), k=2, alphabet=4)
    assert code.tolist()[1] == [3, 15, 13] and code.tolist()[0][1:] == [1, 6]  # code = 4 * first + second, A=0 C=1 G=2 T=3
    assert valid.tolist() == [[False, True, True], [True, True, True]]  # the k-mer holding the pad does not count


def test_the_classifiers_target_is_to_beat_the_baseline() -> None:
    for name in ("lstm-classifier", "gru-classifier"):
        (target,) = get_entry(name).targets
        assert target.describe() == "test_accuracy > baseline_test_accuracy"
        assert target.met({"test_accuracy": 0.81, "baseline_test_accuracy": 0.8}) is True
        assert target.met({"test_accuracy": 0.8, "baseline_test_accuracy": 0.8}) is False
        assert target.met({"test_accuracy": 0.9}) is None
