"""zoo-train --all --jobs N: several models at once in worker processes, each as it trains alone."""

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from sequence_fixtures import write_genomes

from zoo_train import jobs
from zoo_train.checkpoint import load_checkpoint
from zoo_train.cli import main as zoo_train
from zoo_train.jobs import Schedule, train_in_parallel
from zoo_train.trainer import TrainConfig

CLASSIFIERS = ["gru-classifier", "lstm-classifier"]


@pytest.fixture(scope="module")
def genomes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_genomes(tmp_path_factory.mktemp("genomes"))  # the sequence classifiers' default data


def test_models_trained_side_by_side_are_the_models_trained_one_after_the_other(tmp_path, genomes, capsys):
    argv = ["--all", "--task", "sequence-classification", "--preset", "smoke", "--data-dir", str(genomes), "--quiet"]
    assert zoo_train([*argv, "--out", str(tmp_path / "one")]) == 0
    assert zoo_train([*argv, "--out", str(tmp_path / "two"), "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    for name in CLASSIFIERS:
        assert f"{name}: test_accuracy" in out and str(tmp_path / "two" / name) in out
        alone = load_checkpoint(tmp_path / "one" / name / "checkpoints" / "last.pt")
        beside = load_checkpoint(tmp_path / "two" / name / "checkpoints" / "last.pt")
        assert beside["train_state"]["step"] == alone["train_state"]["step"] > 0
        for key, value in alone["state_dict"].items():
            torch.testing.assert_close(beside["state_dict"][key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_the_gan_starts_once_its_fid_classifier_has_finished(tmp_path):
    def config(name: str, **data_options: str) -> TrainConfig:
        return TrainConfig(model=name, out=tmp_path, data_options=data_options or None)

    schedule = Schedule([config("simple-cnn"), config("lenet5"), config("dcgan")])
    assert [c.model for c in schedule.take(free=1, running=0)] == ["simple-cnn"]
    assert [c.model for c in schedule.take(free=2, running=1)] == ["lenet5"]  # the GAN waits for simple-cnn
    schedule.finish("lenet5")
    assert schedule.take(free=1, running=1) == []
    schedule.finish("simple-cnn")
    assert [c.model for c in schedule.take(free=2, running=0)] == ["dcgan"]

    # Another classifier named (or one outside the models trained) is what the GAN waits for, or nothing.
    named = Schedule([config("simple-cnn"), config("dcgan", fid_classifier="lenet5"), config("lenet5")])
    assert [c.model for c in named.take(free=2, running=0)] == ["simple-cnn", "lenet5"]
    outside = Schedule([config("dcgan", fid_classifier=str(tmp_path / "classifier.pt")), config("lenet5")])
    assert [c.model for c in outside.take(free=2, running=0)] == ["dcgan", "lenet5"]


def test_a_worker_that_dies_is_that_models_failure_not_a_traceback(tmp_path, monkeypatch, capsys):
    # Forked instead of spawned, the workers inherit this test's patch: training that kills its process.
    real_context = multiprocessing.get_context
    monkeypatch.setattr(jobs.multiprocessing, "get_context", lambda method=None: real_context("fork"))
    monkeypatch.setattr(jobs, "_start_training_worker", lambda jobs: None)  # no OpenMP call in a forked child
    monkeypatch.setattr(jobs, "train_one", lambda config: os._exit(3))
    configs = [TrainConfig(model=name, out=tmp_path) for name in CLASSIFIERS]
    outcomes = train_in_parallel(configs, jobs=2, report=lambda outcome: None)
    assert sorted(o.model for o in outcomes) == CLASSIFIERS
    for outcome in outcomes:
        assert outcome.exit_code == 1 and outcome.run_dir is None
        assert outcome.error is not None and "its training process ended without a result" in outcome.error


def test_ctrl_c_stops_the_models_under_way_keeping_their_last_epochs(tmp_path, genomes):
    out = tmp_path / "out"
    argv = ["--all", "--task", "sequence-classification", "--preset", "smoke", "--epochs", "500", "--jobs", "2"]
    command = [sys.executable, "-m", "zoo_train.cli", *argv, "--data-dir", str(genomes), "--out", str(out)]
    # Its own process group, as a shell gives a command: the terminal's Ctrl-C goes to every process in it.
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        checkpoints = [out / name / "checkpoints" / "last.pt" for name in CLASSIFIERS]
        deadline = time.monotonic() + 120
        while not all(c.exists() for c in checkpoints) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert all(c.exists() for c in checkpoints), "both models should have saved an epoch"
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    for name in CLASSIFIERS:
        assert f"zoo-train: {name}: stopped; {out / name / 'checkpoints' / 'last.pt'} holds the last finished epoch" in stderr
        assert load_checkpoint(out / name / "checkpoints" / "last.pt")["train_state"]["epoch"] >= 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["lenet5", "--jobs", "2"], "--jobs is for --all"),
        (["--all", "--jobs", "0"], "--jobs"),
    ],
)
def test_jobs_usage_errors_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        zoo_train(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err
