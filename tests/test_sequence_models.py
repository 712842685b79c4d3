"""Every sequence and generative model in the registry: shapes, state round trips, protocols, training.

Parametrized over ``list_models(task=...)``, so a new model of these tasks is tested for free.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sequence_fixtures import write_genomes

from zoo_train.data.images import write_idx
from zoo_train.registry import config_fields, get_entry, list_models
from zoo_train.report import load_runs, preset_label, trained_model
from zoo_train.report import main as report_main
from zoo_train.tasks.image_generation import classifier_provenance
from zoo_train.tasks.text_generation import VOCAB_FIELDS
from zoo_train.trainer import TrainConfig, train

TEXT_MODELS = list_models(task="text-generation")
CLASSIFIERS = list_models(task="sequence-classification")
GANS = list_models(task="image-generation")
SEQ2SEQ = list_models(task="seq2seq")
VOCAB = 11


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: a second thread only adds synchronisation (and stalls on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(name: str, **data_config: object) -> Any:  # Any: the tests here check each task's duck-typed protocol
    entry = get_entry(name)
    return entry.build(**{**data_config, **entry.tiny_config}).eval()


def tiny_lm(name: str) -> Any:
    fields = config_fields(get_entry(name))
    return tiny(name, **{f: VOCAB for f in VOCAB_FIELDS if f in fields})


def test_the_issue_models_are_registered() -> None:
    assert {"char-lstm", "char-gpt", "dna-gru", "dna-lstm"} <= set(TEXT_MODELS)
    assert {"lstm-classifier", "gru-classifier"} <= set(CLASSIFIERS)
    assert "dcgan" in GANS and "seq2seq-transformer" in SEQ2SEQ


# ------------------------------------------------------------------------------ text generators
@pytest.mark.parametrize("name", TEXT_MODELS)
def test_text_generator_protocol(name: str) -> None:
    model = tiny_lm(name)
    assert model.generation_kind in ("recurrent", "kv-cache")
    assert model.step_tokens in ("any", 1)
    assert isinstance(model.full_graph, bool)
    assert len(model.state_names) == len(model.state_grow_axes) == len(model.initial_state(2))
    if model.generation_kind == "kv-cache":
        assert isinstance(model.max_context, int) and all(axis == 3 for axis in model.state_grow_axes)
    else:
        assert model.max_context is None and all(axis is None for axis in model.state_grow_axes)
    # Distinct tensors: an exporter given one tensor twice would alias two graph inputs.
    state = model.initial_state(2)
    assert len({id(s) for s in state}) == len(state)


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_forward_shapes(name: str) -> None:
    model = tiny_lm(name)
    tokens = torch.randint(0, VOCAB, (3, 7))
    logits, *state = model.step(tokens, *model.initial_state(3))
    assert logits.shape == (3, 7, VOCAB)
    for s, axis in zip(state, model.state_grow_axes, strict=True):
        if axis is not None:
            assert s.shape[axis] == 7
        assert s.shape[1] == 3  # batch is axis 1 of every state tensor
    out, _hidden = model(tokens)  # the seed's forward(x, hidden) -> (out, hidden)
    torch.testing.assert_close(out, logits)


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_state_round_trip(name: str) -> None:
    """Feeding a sequence in pieces, carrying the state, equals feeding it whole."""
    model = tiny_lm(name)
    tokens = torch.randint(0, VOCAB, (2, 9))
    whole, *whole_state = model.step(tokens, *model.initial_state(2))
    state = model.initial_state(2)
    pieces = []
    for chunk in (tokens[:, :4], tokens[:, 4:5], tokens[:, 5:]):
        if model.step_tokens == 1:
            for t in range(chunk.shape[1]):
                logits, *state = model.step(chunk[:, t : t + 1], *state)
                pieces.append(logits)
        else:
            logits, *state = model.step(chunk, *state)
            pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, atol=1e-5, rtol=1e-4)
    for a, b in zip(state, whole_state, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    # forward(x, hidden) carries the same state.
    out_a, hidden = model(tokens[:, :4])
    out_b, _ = model(tokens[:, 4:], hidden)
    torch.testing.assert_close(torch.cat([out_a, out_b], dim=1), whole, atol=1e-5, rtol=1e-4)


def test_gpt_positions_start_at_the_past_length() -> None:
    model = tiny_lm("char-gpt")
    tokens = torch.randint(0, VOCAB, (1, 6))
    _, keys, values = model.step(tokens[:, :5], *model.initial_state(1))
    cached, _, _ = model.step(tokens[:, 5:], keys, values)
    fresh, _, _ = model.step(tokens[:, 5:], *model.initial_state(1))
    torch.testing.assert_close(cached[:, -1], model(tokens)[0][:, -1], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(cached, fresh)  # position 5 with a past is not position 0 without one


def test_char_lstm_keeps_the_seed_signature() -> None:
    from zoo_train.models.char_lstm import CharLSTM

    model = CharLSTM(input_size=VOCAB, embedding_size=8, hidden_size=16, num_layers=2, output_size=VOCAB)
    out, (h, c) = model(torch.randint(0, VOCAB, (4, 5)), None)
    assert out.shape == (4, 5, VOCAB) and h.shape == c.shape == (2, 4, 16)


def test_dna_models_use_the_from_scratch_cells() -> None:
    from zoo_train import nn_scratch

    assert isinstance(tiny_lm("dna-gru").rnn, nn_scratch.GRU)
    assert isinstance(tiny_lm("dna-lstm").rnn, nn_scratch.LSTM)


# ----------------------------------------------------------------------------- other families
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_shapes(name: str) -> None:
    model = tiny(name, vocab_size=8, num_classes=4)
    for length in (5, 17):
        assert model(torch.randint(0, 8, (3, length))).shape == (3, 4)


@pytest.mark.parametrize("name", GANS)
def test_gan_protocol_and_range(name: str) -> None:
    model = tiny(name, channels=1, image_size=28)
    assert hasattr(model, "generator") and hasattr(model, "discriminator")
    images = model.generate(torch.randn(3, model.latent_dim))
    assert images.shape == (3, 1, 28, 28)
    assert images.min() >= 0 and images.max() <= 1
    assert model.discriminator(images * 2 - 1).shape == (3,)


@pytest.mark.parametrize("name", SEQ2SEQ)
def test_seq2seq_shapes_and_padding(name: str) -> None:
    model = tiny(name, vocab_size=13, max_len=14, pad_id=0)
    src = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 4, 3, 5]])
    tgt = torch.tensor([[1, 7, 6, 5], [1, 5, 3, 4]])
    memory = model.encode(src)
    assert memory.shape == (2, 5, model.config.d_model)
    logits = model.decode(tgt, memory, src)
    assert logits.shape == (2, 4, 13)
    # Pads are masked: changing the memory at padded source positions changes nothing.
    memory_b = memory.clone()
    memory_b[0, 3:] = 100.0
    torch.testing.assert_close(model.decode(tgt, memory_b, src), logits)
    # Causal: logits at position i do not depend on later target tokens.
    changed = tgt.clone()
    changed[:, -1] = 12
    torch.testing.assert_close(model.decode(changed, memory, src)[:, :-1], logits[:, :-1])


# ---------------------------------------------------------------------------------- training
def write_corpus(path: Path, n: int = 3000) -> Path:
    """A small corpus with learnable structure: a few words in random order."""
    rng = random.Random(0)
    path.write_text("".join(rng.choice(["to be ", "or not ", "that is\n", "the question. "]) for _ in range(n // 7)))
    return path


def write_fasta(path: Path) -> Path:
    rng = np.random.default_rng(0)
    bases = "".join(rng.choice(list("ACGT"), 3000)).replace("AC", "ACN")
    lines = [bases[i : i + 60].lower() if i % 120 else bases[i : i + 60] for i in range(0, len(bases), 60)]
    path.write_text(">seq1 test genome\n" + "\n".join(lines[:25]) + "\n>seq2\n" + "\n".join(lines[25:]) + "\n")
    return path


def write_idx_folder(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir()
    for prefix, n in (("train", 96), ("t10k", 64)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n).astype(np.uint8))
    return folder


def smoke_data(name: str, tmp_path: Path) -> str | None:
    task = get_entry(name).task
    if task == "text-generation":
        return str(write_fasta(tmp_path / "g.fa") if name.startswith("dna") else write_corpus(tmp_path / "c.txt"))
    if task == "image-generation":
        return str(write_idx_folder(tmp_path / "idx"))
    return None  # generated tasks


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory):
    """Train a model at the smoke preset once per module (into one shared out folder); returns its run dir."""
    root = tmp_path_factory.mktemp("smoke")
    runs: dict[str, Path] = {}

    def run(name: str) -> Path:
        if name not in runs:
            (root / name).mkdir()
            data = smoke_data(name, root / name)
            genomes = write_genomes(root / "genomes")  # the default data of the classifiers and of seq2seq
            runs[name] = train(
                TrainConfig(model=name, preset="smoke", data=data, data_dir=genomes, out=root / "out", show_progress=False)
            )
        return runs[name]

    return run


@pytest.mark.parametrize("name", TEXT_MODELS + CLASSIFIERS + GANS + SEQ2SEQ)
def test_smoke_training_writes_summary_and_samples(name: str, smoke_run) -> None:
    run = smoke_run(name)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"] == name
    assert (run / "checkpoints" / "best.pt").is_file()
    assert (run / summary["samples"]).exists()
    assert summary["metric"] in summary
    if name not in GANS:  # the GAN's FID needs a trained classifier: see the tests below
        assert all(target.met(summary) is not None for target in get_entry(name).targets)
    if get_entry(name).task == "text-generation":
        assert summary["markov_bpc"] > 0 and math.isfinite(summary["val_bpc"])
        assert summary["val_bpc"] == pytest.approx(summary["val_loss"] / math.log(2))
        assert summary["val_perplexity"] == pytest.approx(math.exp(summary["val_loss"]))
        assert (run / "samples.txt").read_text().count("## ") == 3


@pytest.mark.parametrize("name", ["char-lstm", "char-gpt"])
def test_loss_falls_on_a_tiny_corpus(name: str, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c.txt")
    run = train(TrainConfig(model=name, preset="smoke", data=str(corpus), out=tmp_path / "out", epochs=6, show_progress=False))
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs[-1]["val_loss"] < epochs[0]["val_loss"]
    assert epochs[-1]["val_loss"] < 0.85 * math.log(len(set(corpus.read_text())))  # well below a uniform guess


def test_dcgan_reports_fid_as_missing_without_a_classifier(smoke_run) -> None:
    run = smoke_run("dcgan")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["fid"] is None and summary["fid_status"].startswith("missing")
    assert (run / "samples" / "epoch_001.png").is_file() and (run / "samples.png").is_file()
    assert summary["fd_pixels"] > 0 and summary["fd_pixels_untrained"] > 0


def test_dcgan_keeps_every_epochs_sample_grid_across_a_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interrupt_after_epochs: Callable[[int], None]
) -> None:
    data = str(write_idx_folder(tmp_path / "idx"))
    settings: dict[str, Any] = dict(model="dcgan", preset="smoke", data=data, out=tmp_path / "out", show_progress=False, epochs=3)
    interrupt_after_epochs(2)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**settings))
    monkeypatch.undo()
    run = train(TrainConfig(**settings, resume=True))
    grids = sorted(p.name for p in (run / "samples").iterdir())
    assert grids == ["epoch_001.png", "epoch_002.png", "epoch_003.png"]


def test_dcgan_measures_fid_with_a_trained_classifier(tmp_path: Path) -> None:
    data = str(write_idx_folder(tmp_path / "idx"))
    out = tmp_path / "out"
    train(
        TrainConfig(
            model="simple-cnn",
            preset="smoke",
            data=data,
            out=out,
            show_progress=False,
            model_overrides=dict(get_entry("simple-cnn").tiny_config),
        )
    )
    run = train(TrainConfig(model="dcgan", preset="smoke", data=data, out=out, show_progress=False))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["fid_status"] == "measured"
    assert (
        summary["fid_features"] == "penultimate layer of simple-cnn (smoke preset, 1 epoch, test_accuracy "
        f"{json.loads((out / 'simple-cnn' / 'summary.json').read_text())['test_accuracy']:.4f})"
    )
    assert summary["fid"] >= 0 and summary["fid_untrained"] >= 0 and summary["fid_real_train"] >= 0
    assert sum(summary["sample_class_counts"]) == summary["fid_samples"] and len(summary["sample_class_counts"]) == 10
    assert summary["sample_classes_covered"] == sum(1 for c in summary["sample_class_counts"] if c)
    assert all(target.met(summary) is not None for target in get_entry("dcgan").targets)


def test_dcgan_fid_provenance_says_when_the_classifier_run_has_no_summary(tmp_path: Path) -> None:
    # A classifier still training has a best.pt but no summary.json yet.
    checkpoint = tmp_path / "simple-cnn" / "checkpoints" / "best.pt"
    checkpoint.parent.mkdir(parents=True)
    assert classifier_provenance(checkpoint) == "penultimate layer of simple-cnn (best.pt; its run has no readable summary.json)"


def test_quality_report_names_every_trained_model_with_its_targets(smoke_run, tmp_path: Path) -> None:
    names = TEXT_MODELS + SEQ2SEQ
    out = smoke_run(names[0]).parent
    for name in names[1:]:
        smoke_run(name)
    quality = tmp_path / "docs" / "QUALITY.md"
    assert report_main(["--runs", str(out), "--quality", str(quality)]) == 0
    text = quality.read_text()
    for name in names:
        section = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        assert "- target: " in section and "(smoke preset; the targets are for full)" in section
        assert f"- command: `zoo-train {name} --preset smoke --seed 0`" in section
        overrides = get_entry(name).recipes["smoke"].model_overrides
        assert "- model: the defaults above" + (" with " if overrides else "") in section
        assert all(f"{key} {value}" in section for key, value in overrides.items())
        for target in get_entry(name).targets:
            assert target.describe() in section
    assert (tmp_path / "docs" / "quality" / "char-gpt-samples.txt").is_file()


def test_quality_report_names_the_model_fields_a_run_set_beyond_its_recipe(smoke_run, tmp_path: Path) -> None:
    record = json.loads((smoke_run("char-gpt") / "run.json").read_text())
    record["config"]["n_layer"] = 3  # as `zoo-train char-gpt --set n_layer=3` builds it
    (tmp_path / "run.json").write_text(json.dumps(record))
    line = trained_model(get_entry("char-gpt"), tmp_path)
    assert line.startswith("the defaults above with ") and "n_layer 3" in line
    assert "bias" not in line  # left at its default


def test_quality_report_keeps_the_entries_of_models_with_no_run_at_hand(smoke_run, tmp_path: Path) -> None:
    # Runs are not committed: a later machine that retrains one model must not drop the others' figures.
    names = TEXT_MODELS + CLASSIFIERS  # sample excerpts with "## " lines, and a side-by-side table
    runs = [smoke_run(name) for name in names]
    quality = tmp_path / "docs" / "QUALITY.md"
    assert report_main(["--runs", str(runs[0].parent), "--quality", str(quality)]) == 0
    everything = quality.read_text()
    assert everything.count("### ") == 1
    only_one = tmp_path / "elsewhere"
    shutil.copytree(runs[0], only_one / names[0])
    assert report_main(["--runs", str(only_one), "--quality", str(quality)]) == 0
    assert quality.read_text() == everything
    # A hand-written experiments part at the end stays as it is, and is not taken for a model's section.
    experiments = "# Experiments\n\n## Transfer\n\n| arm | accuracy |\n|---|---:|\n| scratch | 0.5 |\n"
    quality.write_text(everything.rstrip("\n") + "\n\n" + experiments)
    assert report_main(["--runs", str(only_one), "--quality", str(quality)]) == 0
    assert quality.read_text().endswith("\n\n" + experiments) and quality.read_text().count("# Experiments") == 1


def test_report_takes_the_run_of_the_most_thorough_preset(tmp_path: Path) -> None:
    roots = {preset: tmp_path / preset for preset in ("quick", "speedrun", "full")}
    for preset, root in roots.items():
        (root / "resnet-cifar").mkdir(parents=True)
        (root / "resnet-cifar" / "summary.json").write_text(json.dumps({"preset": preset}))
    assert load_runs([roots["quick"], roots["speedrun"]])[0]["summary"]["preset"] == "speedrun"
    assert load_runs(list(roots.values())[::-1])[0]["summary"]["preset"] == "full"


def test_report_targets_it_cannot_write_exit_2_before_writing_anything(smoke_run, tmp_path: Path, capsys) -> None:
    runs = str(smoke_run(TEXT_MODELS[0]).parent)
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    for argv, message in [
        (["--readme", str(tmp_path / "missing.md")], "missing.md: no such file to put the table in"),
        (["--readme", str(readme)], "README.md: no <!-- zoo-table:start --> ... <!-- zoo-table:end --> markers"),
        (["--quality", str(notes / "QUALITY.md")], "notes.txt: exists and is not a folder"),
        (["--quality", str(tmp_path)], "is a folder; --quality takes the markdown file"),
        (["--quality", str(tmp_path / "docs" / "QUALITY.md"), "--readme", str(readme)], "markers"),
    ]:
        assert report_main(["--runs", runs, *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "notes.txt"]
    assert readme.read_text() == "# no markers\n" and notes.read_text() == "keep me"


def test_readme_table_judges_the_demo_by_its_targets_beside_the_full_recipes_figure(smoke_run, tmp_path: Path) -> None:
    smoke = smoke_run("char-gpt")
    summary = json.loads((smoke / "summary.json").read_text())
    runs = {}
    for preset, bpc in (("quick", 2.5), ("full", 1.9)):
        runs[preset] = tmp_path / preset
        shutil.copytree(smoke, runs[preset] / "char-gpt")
        changed = {**summary, "preset": preset, "val_bpc": bpc, "val_loss": bpc * 0.6931}
        (runs[preset] / "char-gpt" / "summary.json").write_text(json.dumps(changed))
    quality = tmp_path / "QUALITY.md"
    assert report_main(["--runs", str(runs["full"]), "--quality", str(quality)]) == 0
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- zoo-table:start -->\n<!-- zoo-table:end -->\n")
    assert report_main(["--runs", str(runs["quick"]), "--readme", str(readme), "--full-figures", str(quality)]) == 0
    row = next(line for line in readme.read_text().splitlines() if line.startswith("| char-gpt |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[5:9] == ["2.5000", "val_bpc <= 2.7: met", "1.9000", "val_loss <= 1.5: met; val_loss < markov_nats: missed"]
    # Without a full run on the same data, the full-recipe columns say so instead of borrowing another figure.
    assert report_main(["--runs", str(runs["quick"]), "--readme", str(readme), "--full-figures", str(tmp_path / "none.md")]) == 0
    row = next(line for line in readme.read_text().splitlines() if line.startswith("| char-gpt |"))
    assert "| no full run yet | — |" in row


def test_quality_report_marks_a_run_shorter_than_its_recipe() -> None:
    dcgan = get_entry("dcgan")
    planned = dcgan.recipe("full").epochs
    assert preset_label(dcgan, {"preset": "full", "epochs_run": 4}) == f"full, 4 of {planned} epochs"
    assert preset_label(dcgan, {"preset": "full", "epochs_run": 4, "stopped_early": True}) == "full, 4 epochs"
    assert preset_label(dcgan, {"preset": "full", "epochs_run": planned}) == f"full, {planned} epochs"
    assert preset_label(dcgan, {"preset": "quick", "epochs_run": 1, "stopped_early": True}) == "quick, 1 epoch"


def test_sequence_classifiers_share_a_comparison_table(smoke_run) -> None:
    runs = [smoke_run(name) for name in CLASSIFIERS]
    table = (runs[0].parent / "sequence-classification.md").read_text()
    for name in CLASSIFIERS:
        assert f"| {name} |" in table
