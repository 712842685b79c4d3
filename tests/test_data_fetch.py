"""zoo-data fetch: reports where each dataset is, and --copy gathers them into one carryable folder."""

import pytest
from image_fixtures import write_idx_dataset

from zoo_train.data.dna import GENOMES, KMER_DIR, find_genome
from zoo_train.data.fetch import main as zoo_data
from zoo_train.data.images import load_image_arrays
from zoo_train.data.text import SHAKESPEARE_DIR, SHAKESPEARE_FILE, find_shakespeare
from zoo_train.files import atomic_write_bytes


@pytest.fixture
def datasets_elsewhere(tmp_path, monkeypatch):
    """The three offline datasets in $ZOO_DATA (as a system package or another cache would hold them)."""
    elsewhere = tmp_path / "elsewhere"
    write_idx_dataset(elsewhere / "fashion-mnist")
    (elsewhere / "fashion-mnist" / "README").write_text("not part of the dataset")
    (elsewhere / SHAKESPEARE_DIR).mkdir(parents=True)
    (elsewhere / SHAKESPEARE_DIR / SHAKESPEARE_FILE).write_text("To be, or not to be, that is the question.\n" * 50)
    (elsewhere / KMER_DIR).mkdir()
    for genome in GENOMES.values():
        (elsewhere / KMER_DIR / genome).write_text(">chr test genome\n" + "ACGTTGCA" * 200 + "\n")
    monkeypatch.setenv("ZOO_DATA", str(elsewhere))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    return elsewhere


def test_fetch_reports_where_each_dataset_is_without_copying(datasets_elsewhere, tmp_path, capsys):
    carry = tmp_path / "carry"
    assert zoo_data(["fetch", "--data-dir", str(carry), "--quiet"]) == 0
    out = capsys.readouterr().out
    for name in ("fashion-mnist", "shakespeare", "dna (kmer-examples genome)"):
        assert any(line.startswith(name) and "found" in line and str(datasets_elsewhere) in line for line in out.splitlines()), (
            name
        )
    assert "mnist, cifar10, cifar100" in out and "not fetched" in out
    assert not any(carry.iterdir())


def test_fetch_copy_gathers_the_datasets_into_the_data_dir(datasets_elsewhere, tmp_path, capsys):
    carry = tmp_path / "carry"
    assert zoo_data(["fetch", "--data-dir", str(carry), "--copy", "--quiet"]) == 0
    assert capsys.readouterr().out.count("copied") == 3
    assert sorted(p.name for p in (carry / "fashion-mnist").iterdir()) == sorted(
        p.name for p in (datasets_elsewhere / "fashion-mnist").glob("*-ubyte*")
    )  # the README stays behind
    assert not list(carry.rglob(".*"))  # no temporary file left beside the copies

    # The folder alone is enough: each loader finds its copy there first.
    assert find_shakespeare(carry) == carry / SHAKESPEARE_DIR / SHAKESPEARE_FILE
    for name, genome in GENOMES.items():  # every genome: the read classifiers train on two
        assert find_genome(carry, name) == carry / KMER_DIR / genome
    assert load_image_arrays("fashion-mnist", carry).source == str(carry / "fashion-mnist")

    # A second run finds them inside and copies nothing.
    assert zoo_data(["fetch", "--data-dir", str(carry), "--copy", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "copied" not in out and out.count(str(carry)) == 3


def test_fetch_copy_completes_a_data_dir_that_holds_some_genomes(datasets_elsewhere, tmp_path, capsys):
    carry = tmp_path / "carry"
    default, *others = GENOMES.values()
    (carry / KMER_DIR).mkdir(parents=True)
    (carry / KMER_DIR / default).write_text(">chr the copy already here\nACGT\n")
    assert zoo_data(["fetch", "--data-dir", str(carry), "--copy", "--quiet"]) == 0
    assert sorted(p.name for p in (carry / KMER_DIR).iterdir()) == sorted(GENOMES.values())
    assert (carry / KMER_DIR / default).read_text() == ">chr the copy already here\nACGT\n"  # left as it was
    assert [(carry / KMER_DIR / genome).read_text() for genome in others] == [
        (datasets_elsewhere / KMER_DIR / genome).read_text() for genome in others
    ]


def test_a_data_dir_that_cannot_be_a_folder_exits_2_and_names_it(tmp_path, capsys):
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("keep me")
    assert zoo_data(["fetch", "--data-dir", str(not_a_folder), "--quiet"]) == 2
    assert f"{not_a_folder}: exists and is not a folder" in capsys.readouterr().err
    assert not_a_folder.read_text() == "keep me"
    under_a_file = not_a_folder / "data"
    assert zoo_data(["fetch", "--data-dir", str(under_a_file), "--quiet"]) == 2
    assert f"{not_a_folder}: exists and is not a folder, so the data folder {under_a_file}" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_ctrl_c_while_copying_leaves_no_half_file_and_exits_130(datasets_elsewhere, tmp_path, monkeypatch, capsys):
    import shutil

    copy_file = shutil.copyfileobj

    def interrupted_copy(source, target):
        if "t10k-images" in source.name:
            target.write(b"half a file")
            raise KeyboardInterrupt
        return copy_file(source, target)

    monkeypatch.setattr(shutil, "copyfileobj", interrupted_copy)
    carry = tmp_path / "carry"
    assert zoo_data(["fetch", "--data-dir", str(carry), "--copy", "--quiet"]) == 130
    assert "zoo-data: stopped" in capsys.readouterr().err
    copied = [p.name for p in (carry / "fashion-mnist").iterdir()]
    assert not any("t10k-images" in name for name in copied)  # neither the file nor its temporary file
    monkeypatch.setattr(shutil, "copyfileobj", copy_file)
    assert zoo_data(["fetch", "--data-dir", str(carry), "--copy", "--quiet"]) == 0  # run again: the rest is copied
    assert load_image_arrays("fashion-mnist", carry).source == str(carry / "fashion-mnist")


def test_an_interrupted_atomic_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "genome.fna"
    target.write_bytes(b"the old file")

    def write_half_then_stop(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, write_half_then_stop)
    assert [p.name for p in tmp_path.iterdir()] == ["genome.fna"] and target.read_bytes() == b"the old file"
    atomic_write_bytes(target, lambda f: f.write(b"the new file"))
    assert target.read_bytes() == b"the new file"
