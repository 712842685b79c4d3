"""Real sequence tasks end to end: train (smoke) -> export -> zoo_runtime / zoo-run, with text in and out.

Genomes are generated (tests/sequence_fixtures.py) in the layout of Debian's kmer-examples; nothing
here needs the package. Also: bundles of the first seq2seq format (one ids vocabulary) stay readable.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from sequence_fixtures import write_genomes, write_labelled_tsv

import zoo_runtime
from zoo_export import export_checkpoint
from zoo_export.cli import main as zoo_export
from zoo_runtime import SequenceClassifier, Translator
from zoo_runtime.cli import main as zoo_run
from zoo_runtime.errors import BundleError
from zoo_train.cli import main as zoo_train
from zoo_train.data.sequences import GENETIC_CODE, translate
from zoo_train.trainer import TrainConfig, train

PROTEIN = set("ACDEFGHIKLMNPQRSTVWY*")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``trained(model)``: the bundle of a smoke run on the model's default (real-task) data, made once."""
    root = tmp_path_factory.mktemp("seq-bundles")
    genomes = write_genomes(root / "data")
    made: dict[str, Path] = {}

    def make(model: str) -> Path:
        if model not in made:
            run = train(TrainConfig(model=model, preset="smoke", data_dir=genomes, out=root / "out", show_progress=False))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = export_checkpoint(run / "checkpoints" / "best.pt")
            assert result.passed and result.bundle is not None, result.error
            made[model] = result.bundle
        return made[model]

    return make


def test_read_classifier_takes_dna_text_and_names_the_genomes(trained: Callable[[str], Path]) -> None:
    bundle = trained("lstm-classifier")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["vocab"]["tokens"] == ["<pad>", "A", "C", "G", "T"] and manifest["vocab"]["unknown"] == "skip"
    assert manifest["labels"] == ["M. tuberculosis H37Rv", "M. leprae TN"]
    assert len(manifest["examples"]) == 8 and all(label in manifest["labels"] for label, _ in manifest["examples"])
    model = zoo_runtime.load(bundle, device="cpu")
    assert isinstance(model, SequenceClassifier)
    read = manifest["examples"][0][1]
    preds = model.classify_sequence(read)
    assert sorted(p.label for p in preds) == sorted(manifest["labels"])
    assert sum(p.probability for p in preds) == pytest.approx(1.0, abs=1e-5)
    # Same as typing the ids (A=1 .. T=4), lower case folded.
    ids = ["_ACGT".index(c) for c in read]
    assert [p.probability for p in model.classify_sequence(ids)] == pytest.approx([p.probability for p in preds])
    assert [p.probability for p in model.classify_sequence(read.lower())] == pytest.approx([p.probability for p in preds])
    # "skip": an N is dropped and reported with its position.
    with_n = read[:5] + "N" + read[5:]
    assert [p.probability for p in model.classify_sequence(with_n)] == pytest.approx([p.probability for p in preds])
    assert model.vocab.last_skipped == [(5, "N")] and "'N' at 5" in model.vocab.skipped_message()


def test_zoo_run_sequence_prints_labels_and_notes_skipped_bases(
    trained: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = trained("gru-classifier")
    assert zoo_run([str(bundle), "--cpu", "--sequence", "ACGTTGCAXACGGT"]) == 0
    out, err = capsys.readouterr()
    assert "M. tuberculosis H37Rv" in out and "M. leprae TN" in out and "%" in out
    assert "skipped 1 character(s) outside the vocabulary: 'X' at 8" in err
    assert zoo_run([str(bundle), "--cpu", "--sequence", "NNN"]) == 2
    assert "no character of the vocabulary (DNA: A, C, G, T)" in capsys.readouterr().err


def test_translator_has_two_vocabularies_and_translates_dna_to_protein(trained: Callable[[str], Path]) -> None:
    bundle = trained("seq2seq-transformer")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["vocab"]["tokens"] == ["<pad>", "A", "C", "G", "T"]
    assert manifest["vocab"]["specials"] == {"pad": 0, "bos": None, "eos": None}
    target = manifest["target_vocab"]
    assert target["tokens"][:3] == ["<pad>", "<bos>", "<eos>"] and set(target["tokens"][3:]) == PROTEIN
    assert target["specials"] == {"pad": 0, "bos": 1, "eos": 2} and manifest["generation"]["bos"] == 1
    for role in ("encoder", "decoder"):
        props = {p.key: p.value for p in onnx.load(bundle / f"{role}.onnx").metadata_props}
        assert json.loads(props["zoo.vocab"]) == manifest["vocab"]
        assert json.loads(props["zoo.target_vocab"]) == target
    model = zoo_runtime.load(bundle, device="cpu")
    assert isinstance(model, Translator)
    protein = model.translate("ATGGCCTGG")
    assert isinstance(protein, str) and set(protein) <= PROTEIN
    ids = model.translate([1, 4, 3, 3, 2, 2, 4, 3, 3])  # the same DNA as ids: ids out
    assert isinstance(ids, list) and model.target_vocab.decode(ids) == protein
    with pytest.raises(BundleError, match=r"src: DNA base 'U' at position 2 is not in seq2seq-transformer's vocabulary") as info:
        model.vocab.unknown = "error"  # as a bundle whose policy is "error"
        model.translate("ATUGCC")
    assert "DNA: A, C, G, T" in str(info.value)


def test_translation_samples_show_each_window_and_its_protein(trained: Callable[[str], Path]) -> None:
    samples = (trained("seq2seq-transformer").parent / "samples.txt").read_text().splitlines()
    assert samples[0].startswith("# greedy decoding, dna-to-protein")
    for line in samples[1:]:
        source, rest = line.strip().split(" -> ")
        target = rest.split("(")[-1].split(")")[0]
        assert translate(source) == target


def test_zoo_run_translates_a_dna_window(trained: Callable[[str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    bundle = trained("seq2seq-transformer")
    assert zoo_run([str(bundle), "--cpu", "--sequence", "ATGAAATAA", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["src"] == "ATGAAATAA" and set(payload["output"]) <= PROTEIN


def test_own_tsv_goes_through_train_export_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tsv = write_labelled_tsv(tmp_path / "own.tsv", rows=80)
    out = tmp_path / "out"
    assert zoo_train(["gru-classifier", "--preset", "smoke", "--data", str(tsv), "--out", str(out), "--quiet"]) == 0
    assert zoo_export([str(out / "gru-classifier"), "--quiet"]) == 0
    bundle = out / "gru-classifier" / "export"
    capsys.readouterr()
    assert zoo_run([str(bundle), "--cpu", "--sequence", "GGGCCCGCGC"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert sorted(line.split()[-1] for line in lines) == ["at", "gc"]
    # The TSV's vocabulary is A/C/G/T, so unknown characters are skipped (DNA); a text vocabulary refuses them.
    text = tmp_path / "words.tsv"
    text.write_text("".join(f"{lab}\t{w}\n" for lab, w in [("pos", "good"), ("neg", "bad"), ("pos", "fine")] * 8))
    assert zoo_train(["lstm-classifier", "--preset", "smoke", "--data", str(text), "--out", str(out), "--quiet"]) == 0
    assert zoo_export([str(out / "lstm-classifier"), "--quiet"]) == 0
    capsys.readouterr()
    assert zoo_run([str(out / "lstm-classifier" / "export"), "--cpu", "--sequence", "goXd"]) == 2
    err = capsys.readouterr().err
    assert "character 'X' at position 2 is not in lstm-classifier's vocabulary" in err and err.count("\n") == 1


def test_seq2seq_tsv_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    codons = list(GENETIC_CODE)
    rows = ["".join(rng.choice(codons, size=int(rng.integers(2, 5)))) for _ in range(40)]
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join(f"{dna}\t{''.join(GENETIC_CODE[dna[i : i + 3]] for i in range(0, len(dna), 3))}\n" for dna in rows))
    out = tmp_path / "out"
    assert zoo_train(["seq2seq-transformer", "--preset", "smoke", "--data", str(tsv), "--out", str(out), "--quiet"]) == 0
    assert zoo_export([str(out / "seq2seq-transformer"), "--quiet"]) == 0
    capsys.readouterr()
    assert zoo_run([str(out / "seq2seq-transformer" / "export"), "--cpu", "--sequence", "ATGTGG"]) == 0
    assert set(capsys.readouterr().out.strip()) <= PROTEIN


def test_first_format_single_vocabulary_bundles_still_translate_ids(tiny_bundle: Callable[[str], Path]) -> None:
    """A bundle with one ``kind: ids`` vocabulary and no ``target_vocab`` (what zoo-export wrote before)."""
    bundle = tiny_bundle("seq2seq-transformer")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert "target_vocab" not in manifest and manifest["vocab"]["kind"] == "ids"
    props = {p.key for p in onnx.load(bundle / "decoder.onnx").metadata_props}
    assert "zoo.target_vocab" not in props
    model = zoo_runtime.load(bundle, device="cpu")
    assert isinstance(model, Translator)
    assert model.bos_id == manifest["vocab"]["specials"]["bos"] and model.eos_id == manifest["vocab"]["specials"]["eos"]
    out = model.translate([3, 4, 5, 6])
    assert isinstance(out, list) and all(isinstance(i, int) and 0 <= i < manifest["vocab"]["size"] for i in out)
    assert model.target_vocab.decode([3, 4]) == "3 4"
    with pytest.raises(BundleError, match="takes token ids, not text"):
        model.translate("ACGT")
