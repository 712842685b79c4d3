"""The trainer: learning, exact resume, NaN handling, checkpoint safety, CLI exit codes."""

import itertools
import json
import pickle
import shutil
import typing
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from image_fixtures import write_idx_dataset
from sequence_fixtures import write_genomes

from zoo_export.cli import main as zoo_export
from zoo_train import trainer
from zoo_train.checkpoint import CheckpointError, build_from_checkpoint, load_checkpoint, save_checkpoint
from zoo_train.cli import main as zoo_train
from zoo_train.registry import get_entry, list_models
from zoo_train.report import device_label
from zoo_train.tasks.base import get_task
from zoo_train.tasks.image_classification import ImageClassification
from zoo_train.tasks.image_generation import fid_classifier_checkpoint
from zoo_train.trainer import (
    TrainConfig,
    TrainingError,
    autocast_for,
    channels_last_suits,
    lr_factor,
    read_metrics,
    resolve_precision,
    train,
)

TINY = {"widths": (8, 16, 16), "hidden": 32}


@pytest.fixture(scope="module")
def idx_data(tmp_path_factory):
    return write_idx_dataset(tmp_path_factory.mktemp("fmnist") / "fashion-mnist")


def config(tmp_path, data, **kw):
    base = dict(
        model="simple-cnn",
        preset="quick",
        data="fashion-mnist",
        data_dir=data.parent,
        out=tmp_path,
        epochs=2,
        batch_size=32,
        device="cpu",
        seed=3,
        show_progress=False,
        model_overrides=TINY,
    )
    return TrainConfig(**{**base, **kw})


def test_training_learns_a_learnable_problem(tmp_path, idx_data):
    run = train(config(tmp_path, idx_data, epochs=8, lr=1e-2))
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs[-1]["train_loss"] < 0.6 * epochs[0]["train_loss"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_accuracy"] > 0.5  # 10 classes: chance is 0.1
    for artefact in (
        "curves.png",
        "confusion_matrix.png",
        "predictions.png",
        "classification_report.json",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
    ):
        assert (run / artefact).exists(), artefact
    assert any((run / "tensorboard").iterdir())


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, idx_data, monkeypatch, interrupt_after_epochs):
    # Augmentation and dropout are on (quick preset), so the RNG state must be restored exactly.
    straight = train(config(tmp_path / "a", idx_data, epochs=3))
    interrupt_after_epochs(1)
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path / "b", idx_data, epochs=3))
    monkeypatch.undo()
    resumed = train(config(tmp_path / "b", idx_data, epochs=3, resume=True))
    a = load_checkpoint(straight / "checkpoints/last.pt")["state_dict"]
    b = load_checkpoint(resumed / "checkpoints/last.pt")["state_dict"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, idx_data, monkeypatch):
    cfg = config(tmp_path, idx_data, epochs=1)
    run = train(cfg)
    good = (run / "checkpoints/last.pt").read_bytes()
    monkeypatch.setattr(ImageClassification, "loss", lambda self, model, batch, recipe: model(batch[0]).sum() * float("nan"))
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 2, step \d+; .*last.pt keeps the last good weights"):
        train(config(tmp_path, idx_data, epochs=2, resume=True))
    assert (run / "checkpoints/last.pt").read_bytes() == good
    assert load_checkpoint(run / "checkpoints/last.pt")["train_state"]["epoch"] == 1


@pytest.mark.parametrize("read_every, bad_step", [(4, 6), (50, 9)])
def test_losses_read_in_batches_still_name_the_step_that_went_nan(tmp_path, idx_data, monkeypatch, read_every, bad_step):
    # 288 training images in batches of 32: 9 steps an epoch. With reads every 4 steps the NaN of step 6 is found at
    # step 8; with reads every 50 the NaN of the epoch's last step is found by the read at the epoch's end.
    monkeypatch.setattr(trainer, "LOSS_READ_EVERY", read_every)
    real_loss, calls = ImageClassification.loss, []

    def loss_going_nan(self, model, batch, recipe):
        calls.append(None)
        return real_loss(self, model, batch, recipe) * (float("nan") if len(calls) == bad_step else 1.0)

    monkeypatch.setattr(ImageClassification, "loss", loss_going_nan)
    with pytest.raises(TrainingError, match=rf"loss became nan at epoch 1, step {bad_step}; .*no checkpoint was written"):
        train(config(tmp_path, idx_data, epochs=1))
    assert not (tmp_path / "simple-cnn" / "checkpoints" / "last.pt").exists()


def test_checkpoint_round_trip_rebuilds_the_model(tmp_path, idx_data):
    run = train(config(tmp_path, idx_data, epochs=1, preset="smoke"))
    payload = load_checkpoint(run / "checkpoints/best.pt")
    assert payload["model"] == "simple-cnn" and payload["meta"]["labels"][0] == "T-shirt/top"
    assert payload["meta"]["preprocessing"]["image"]["height"] == 28
    model = build_from_checkpoint(payload)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "ok.pt"
    save_checkpoint(path, {"model": "lenet5", "task": "image-classification", "config": {}, "state_dict": {}, "meta": {}})
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"broken.pt: not a readable checkpoint"):
        load_checkpoint(broken)


class Payload:
    def __reduce__(self):  # what a malicious checkpoint would do on unpickling
        return (print, ("pwned",))


def test_checkpoint_holding_a_pickled_object_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "model-zoo-checkpoint", "version": 1, "payload": Payload()}, path)
    with pytest.raises(CheckpointError, match=r"evil.pt: refused, the file holds objects other than tensors"):
        load_checkpoint(path)
    assert "pwned" not in capsys.readouterr().out
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match=r"plain.pkl"):
        load_checkpoint(plain)


def test_foreign_checkpoint_is_refused(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match=r"foreign.pt: not a Model Zoo checkpoint"):
        load_checkpoint(path)


def test_lr_schedule_warms_up_then_decays():
    factors = [lr_factor(s, 100, 10) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0) and factors[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))
    assert lr_factor(99, 100, 10, floor=0.0) == pytest.approx(0.0, abs=1e-3)  # a speedrun anneals to 0


@pytest.mark.parametrize(
    "argv",
    [
        [],  # neither a model nor --all
        ["no-such-model"],
        ["lenet5", "--preset", "huge"],
        ["lenet5", "--epochs", "two"],
        ["lenet5", "--epochs", "0"],  # would train nothing yet write a run
        ["lenet5", "--batch-size", "0"],
        ["lenet5", "--max-steps", "-1"],
        ["lenet5", "--lr", "0"],
        ["lenet5", "--lr", "nan"],
        ["lenet5", "--set", "novalue"],
        ["lenet5", "--all"],
        ["lenet5", "--precision", "fp16"],
        ["lenet5", "--compile-mode", "fastest"],
        ["lenet5", "--resume", "--overwrite"],
        ["lenet5", "--data-dir", "no-such-folder"],  # would be skipped, and data found elsewhere used
    ],
)
def test_bad_cli_input_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        zoo_train(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_cli_missing_data_and_unknown_config_field_exit_2(tmp_path, capsys):
    assert zoo_train(["lenet5", "--data", str(tmp_path / "nothing-here"), "--out", str(tmp_path), "--quiet"]) == 2
    assert "nothing-here" in capsys.readouterr().err
    # The usage error is reported first, without looking for data (here: none to find).
    assert (
        zoo_train(
            ["lenet5", "--set", "no_such_field=1", "--data", str(tmp_path / "nothing-here"), "--out", str(tmp_path), "--quiet"]
        )
        == 2
    )
    assert "no_such_field" in capsys.readouterr().err
    assert not (tmp_path / "lenet5" / "checkpoints").exists()


@pytest.mark.parametrize("run_name", ["../outside", "..", "a/b"])
def test_cli_run_name_cannot_leave_out(tmp_path, capsys, run_name):
    out = tmp_path / "runs"
    assert zoo_train(["lenet5", "--out", str(out), "--run-name", run_name, "--preset", "smoke", "--quiet"]) == 2
    assert f"run name {run_name!r}: must be a plain folder name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "device, code, message",
    [
        ("tpu", 2, "--device 'tpu': not a device the trainer runs on"),
        ("meta", 2, "--device 'meta': not a device the trainer runs on"),
        ("mps", 1, "--device mps: MPS (Apple GPU) is not available"),
    ],
)
def test_cli_device_the_trainer_cannot_use(tmp_path, capsys, device, code, message):
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    assert zoo_train(["lenet5", "--device", device, "--out", str(tmp_path / "runs"), "--preset", "smoke", "--quiet"]) == code
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", list_models())
def test_cli_set_sizes_below_1_or_of_the_wrong_type_exit_2_before_any_work(name, tmp_path, capsys):
    hints = typing.get_type_hints(get_entry(name).config_cls)
    size = next(field for field, kind in hints.items() if kind is int and not field.endswith("_id"))
    for value in ("0", "-1", '"x"', "2.5", "true"):
        assert zoo_train([name, "--set", f"{size}={value}", "--out", str(tmp_path / "runs"), "--quiet"]) == 2, value
        assert f"--set {size}=" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name, setting, message",
    [
        ("resnet-cifar", "widths=[32, 0, 8]", "widths takes a list of one or more whole numbers, each at least 1"),
        ("lenet5", "conv_channels=[8, 16, 4]", "conv_channels takes a list of 2 whole numbers"),
        ("char-gpt", "bias=1", "bias takes true or false"),
        ("char-gpt", 'dropout="a"', "dropout takes a finite number"),
    ],
)
def test_cli_set_lists_flags_and_numbers_are_checked(tmp_path, capsys, name, setting, message):
    assert zoo_train([name, "--set", setting, "--out", str(tmp_path), "--quiet"]) == 2
    assert message in capsys.readouterr().err


def test_cli_out_under_a_file_exits_2(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    assert zoo_train(["lenet5", "--out", str(notes / "runs"), "--preset", "smoke", "--quiet"]) == 2
    assert f"{notes}: exists and is not a folder" in capsys.readouterr().err
    assert notes.read_text() == "keep me"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_run_is_not_trained_over_without_resume_or_overwrite(tmp_path, idx_data, capsys):
    run = train(config(tmp_path, idx_data, epochs=1, preset="smoke"))
    (run / "export").mkdir()
    (run / "export" / "model.onnx").write_bytes(b"the old run's bundle")
    before = _snapshot(run)

    with pytest.raises(ValueError, match=r"holds a finished smoke run of simple-cnn .1 epoch, test_accuracy"):
        train(config(tmp_path, idx_data, epochs=1, preset="smoke"))
    argv = ["simple-cnn", "--preset", "smoke", "--data-dir", str(idx_data.parent), "--out", str(tmp_path), "--quiet"]
    assert zoo_train(argv) == 2
    err = capsys.readouterr().err
    assert f"{run}: holds a finished smoke run" in err and "--overwrite replaces" in err
    assert _snapshot(run) == before

    # --overwrite replaces the folder whole: nothing of the old run (its bundle, its TensorBoard events)
    # is left beside the new one.
    assert zoo_train([*argv, "--overwrite", "--set", "widths=[8,16,16]", "--set", "hidden=32", "--max-steps", "2"]) == 0
    assert not (run / "export").exists()
    assert len(list((run / "tensorboard").iterdir())) == 1
    assert json.loads((run / "summary.json").read_text())["steps"] == 2


def test_all_refuses_before_training_any_model_when_one_run_is_in_the_way(tmp_path, capsys):
    finished = tmp_path / "gru-classifier"
    finished.mkdir()
    (finished / "summary.json").write_text(
        json.dumps(
            {"model": "gru-classifier", "preset": "full", "epochs_run": 12, "metric": "test_accuracy", "test_accuracy": 0.99}
        )
    )
    argv = ["--all", "--task", "sequence-classification", "--preset", "smoke", "--out", str(tmp_path), "--quiet"]
    assert zoo_train(argv) == 2
    assert f"{finished}: holds a finished full run of gru-classifier (12 epochs, test_accuracy 0.9900)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gru-classifier"]  # lstm-classifier was not trained either


def test_ctrl_c_says_what_can_be_resumed(tmp_path, idx_data, monkeypatch, capsys, interrupt_after_epochs):
    argv = [
        "simple-cnn",
        "--preset",
        "smoke",
        "--epochs",
        "2",
        "--data-dir",
        str(idx_data.parent),
        "--out",
        str(tmp_path),
        "--set",
        "widths=[8,16,16]",
        "--set",
        "hidden=32",
        "--quiet",
    ]
    interrupt_after_epochs(1)
    assert zoo_train(argv) == 130
    last = tmp_path / "simple-cnn" / "checkpoints" / "last.pt"
    assert f"simple-cnn: stopped; {last} holds the last finished epoch; add --resume" in capsys.readouterr().err
    monkeypatch.undo()
    assert zoo_train([*argv, "--resume"]) == 0
    assert json.loads((tmp_path / "simple-cnn" / "summary.json").read_text())["epochs_run"] == 2


def test_cli_resume_with_corrupt_checkpoint_exits_2(tmp_path, capsys):
    ckpt = tmp_path / "lenet5" / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"garbage")
    assert zoo_train(["lenet5", "--resume", "--out", str(tmp_path), "--quiet"]) == 2
    assert "last.pt: not a readable checkpoint" in capsys.readouterr().err
    assert ckpt.read_bytes() == b"garbage"


def test_cli_list_shows_every_model(capsys):
    assert zoo_train(["--list"]) == 0
    out = capsys.readouterr().out
    for name in ("lenet5", "scratch-cnn", "resnet-cifar"):
        assert name in out
    assert [line.split()[0] for line in out.splitlines() if " speedrun " in line] == ["resnet-cifar"]


def test_speedrun_preset_trains_the_models_that_have_one_and_names_them_to_the_others(tmp_path, idx_data, capsys):
    for argv, message in (
        (["lenet5"], "lenet5 has no speedrun recipe; models with one: resnet-cifar"),
        (["--all", "--task", "text-generation"], "no models of task 'text-generation' have a speedrun"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            zoo_train([*argv, "--preset", "speedrun", "--out", str(tmp_path)])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())

    argv = [
        "resnet-cifar",
        "--preset",
        "speedrun",
        "--data-dir",
        str(idx_data.parent),
        "--out",
        str(tmp_path),
        "--quiet",
        "--epochs",
        "1",
        "--max-steps",
        "1",
        "--set",
        "widths=[4,8]",
        "--set",
        "blocks=[1,1]",
    ]
    assert zoo_train(argv) == 0
    summary = json.loads((tmp_path / "resnet-cifar" / "summary.json").read_text())
    assert summary["preset"] == "speedrun" and summary["steps"] == 1
    assert f"resnet-cifar: test_accuracy {summary['test_accuracy']:.4f}  (" in capsys.readouterr().out


def test_device_resident_data_path_trains_the_same_model(tmp_path, idx_data):
    # The GPU fast path (whole dataset on the device, batches gathered by index) forced on CPU; two epochs, so that
    # the loader built once per run must reshuffle for the second as the DataLoader does.
    loader_run = train(config(tmp_path / "loader", idx_data, epochs=2, resident_data=False))
    resident_run = train(config(tmp_path / "resident", idx_data, epochs=2, resident_data=True))
    a = load_checkpoint(loader_run / "checkpoints/last.pt")["state_dict"]
    b = load_checkpoint(resident_run / "checkpoints/last.pt")["state_dict"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    figures = [
        [{k: v for k, v in record.items() if k != "seconds"} for record in read_metrics(run) if record["kind"] == "epoch"]
        for run in (loader_run, resident_run)
    ]
    assert figures[0] == figures[1] and len(figures[0]) == 2


@pytest.mark.parametrize("name", list_models())
def test_optimizers_are_fused_on_a_gpu_only(name):
    # Built for CUDA on a CPU: the fused kernels also exist for CPU parameters, so the choice itself can be checked.
    entry = get_entry(name)
    task = get_task(entry.task)
    model = entry.build(**{**task.nominal_model_config(entry.default_dataset), **entry.tiny_config})
    for preset in entry.recipes:
        recipe = entry.recipe(preset)
        assert all(opt.defaults["fused"] for opt in task.make_optimizers(model, recipe, torch.device("cuda")))
        assert not any(opt.defaults["fused"] for opt in task.make_optimizers(model, recipe, torch.device("cpu")))


def test_a_cnn_trains_channels_last_on_a_cpu_and_its_checkpoint_exports_with_parity(tmp_path, idx_data):
    # The memory format a GPU run has always used, so that its checkpoints' strided weights are tested here too.
    run = train(config(tmp_path, idx_data, epochs=1))
    weights = load_checkpoint(run / "checkpoints/best.pt")["state_dict"]
    convs = [w for w in weights.values() if w.dim() == 4]
    # (a 1-channel first layer's weights are laid out alike either way)
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert any(not w.is_contiguous() for w in convs)
    assert zoo_export([str(run), "--out", str(tmp_path / "bundle"), "--format", "all"]) == 0
    parity = json.loads((tmp_path / "bundle" / "manifest.json").read_text())["parity"]
    assert parity["passed"] and all(check["passed"] for check in parity["checks"])


def test_channels_last_is_kept_off_a_cpu_for_a_strided_1x1_convolution_of_few_channels():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    tiny = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 8, 1, stride=2))
    wide = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 16, 1, stride=2))
    assert not channels_last_suits(tiny, cpu) and channels_last_suits(tiny, cuda)
    assert channels_last_suits(wide, cpu) and not channels_last_suits(nn.Linear(4, 4), cpu)


def test_bf16_on_a_cpu_is_asked_for_and_then_trains_in_bf16(tmp_path, idx_data, monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("auto", cuda) == "bf16"
    # auto takes bf16 on a CPU only for the tasks it speeds up, and only where the CPU computes bf16 itself.
    for has_bf16 in (True, False):
        monkeypatch.setattr(trainer, "cpu_computes_bf16", lambda has_bf16=has_bf16: has_bf16)
        assert resolve_precision("auto", cpu, cpu_bf16_pays=True) == ("bf16" if has_bf16 else "fp32")
        assert resolve_precision("auto", cpu, cpu_bf16_pays=False) == "fp32"
    assert get_task("image-classification").cpu_bf16_pays and not get_task("text-generation").cpu_bf16_pays
    # ... and only for the models of such a task whose registry entries do not say otherwise.
    image_classification = get_task("image-classification")
    assert trainer.cpu_bf16_pays(get_entry("simple-cnn"), image_classification)
    assert not trainer.cpu_bf16_pays(get_entry("mobilenet-v3-small"), image_classification)
    assert resolve_precision("bf16", cpu) == "bf16" and resolve_precision("fp32", cuda) == "fp32"
    with pytest.raises(ValueError, match="bf16 autocast runs on cuda or cpu"):
        resolve_precision("bf16", torch.device("mps"))
    with autocast_for(cpu, "bf16")():
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.bfloat16

    fp32_run = train(config(tmp_path / "fp32", idx_data, epochs=1, precision="fp32"))
    bf16_run = train(config(tmp_path / "bf16", idx_data, epochs=1, precision="bf16"))
    summaries = [json.loads((run / "summary.json").read_text()) for run in (fp32_run, bf16_run)]
    assert [s["precision"] for s in summaries] == ["fp32", "bf16"]
    assert json.loads((bf16_run / "run.json").read_text())["precision"] == "bf16"
    assert device_label(summaries[1]).endswith(", bf16") and "bf16" not in device_label(summaries[0])
    a = load_checkpoint(fp32_run / "checkpoints/last.pt")["state_dict"]
    b = load_checkpoint(bf16_run / "checkpoints/last.pt")["state_dict"]
    assert all(b[key].dtype == a[key].dtype for key in a)  # autocast keeps the weights in fp32
    weights = [key for key in a if a[key].is_floating_point()]
    assert any(not torch.equal(a[key], b[key]) for key in weights)  # the steps did run in bf16
    for key in weights:  # ... and followed the same path: one epoch apart by bf16 rounding only
        torch.testing.assert_close(b[key], a[key], rtol=0.1, atol=0.05, msg=key)


def test_auto_precision_follows_the_model_entry_on_a_cpu_with_bf16(tmp_path, idx_data, monkeypatch):
    monkeypatch.setattr(trainer, "cpu_computes_bf16", lambda: True)
    precisions = {}
    for model in ("simple-cnn", "mobilenet-v3-small"):
        tiny = get_entry(model).tiny_config
        run = train(config(tmp_path, idx_data, model=model, preset="smoke", epochs=1, max_steps=1, model_overrides=tiny))
        precisions[model] = json.loads((run / "summary.json").read_text())["precision"]
    assert precisions == {"simple-cnn": "bf16", "mobilenet-v3-small": "fp32"}


def test_compile_mode_reaches_torch_compile_and_the_run_record(tmp_path, idx_data, monkeypatch):
    modes = []

    def compile_recorded(model, mode=None):
        modes.append(mode)
        return model

    monkeypatch.setattr(torch, "compile", compile_recorded)
    args = ["lenet5", "--preset", "smoke", "--data-dir", str(idx_data.parent), "--device", "cpu", "--max-steps", "1"]
    for extra, mode, recorded in [
        (["--compile-mode", "reduce-overhead"], "reduce-overhead", "reduce-overhead"),  # implies --compile
        (["--compile"], None, "default"),  # torch.compile's own default mode
    ]:
        out = tmp_path / recorded
        assert zoo_train([*args, *extra, "--out", str(out), "--quiet"]) == 0
        assert modes[-1] == mode
        assert json.loads((out / "lenet5" / "run.json").read_text())["compile"] == recorded
    assert zoo_train([*args, "--out", str(tmp_path / "eager"), "--quiet"]) == 0
    assert len(modes) == 2 and json.loads((tmp_path / "eager" / "lenet5" / "run.json").read_text())["compile"] is None
    with pytest.raises(ValueError, match="compile mode must be one of default, reduce-overhead, max-autotune"):
        trainer.compile_for_training(nn.Linear(2, 2), "fastest")


def test_compile_failing_at_its_first_call_falls_back_to_eager(tmp_path, idx_data, monkeypatch, capsys):
    """torch.compile defers its errors to the first call; the trainer must then train eagerly, and the
    run must equal one that never tried to compile."""

    class BrokenCompiled(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *args, **kwargs):
            raise RuntimeError("backend compiler failed: no C compiler (simulated)")

    monkeypatch.setattr(torch, "compile", lambda model, **kw: BrokenCompiled(model))
    compiled = train(config(tmp_path / "compiled", idx_data, epochs=1, compile="default"))
    assert "torch.compile failed at step 1 (RuntimeError: backend compiler failed" in capsys.readouterr().out
    eager = train(config(tmp_path / "eager", idx_data, epochs=1))
    a = load_checkpoint(compiled / "checkpoints/last.pt")["state_dict"]
    b = load_checkpoint(eager / "checkpoints/last.pt")["state_dict"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    records = [json.loads(line) for line in (compiled / "metrics.jsonl").read_text().splitlines()]
    assert {"kind": "compile", "step": 0, "compiled": False, "reason": "RuntimeError"} in records


@pytest.mark.parametrize("batch_size, compiled_at", [(32, [0]), (30, [0, 9])])
def test_the_steps_where_torch_compile_compiles_are_timed_apart(tmp_path, idx_data, monkeypatch, batch_size, compiled_at):
    # 288 training images: batches of 32 fill 9 steps exactly; batches of 30 leave an 18 for the 10th step,
    # where torch.compile, specialised on 30, compiles again. Both epochs' short batches reuse that graph.
    class PassThrough(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *args, **kwargs):
            return self.model(*args, **kwargs)

    monkeypatch.setattr(torch, "compile", lambda model, **kw: PassThrough(model))
    run = train(config(tmp_path, idx_data, epochs=2, batch_size=batch_size, compile="default"))
    compiles = [record for record in read_metrics(run) if record["kind"] == "compile"]
    assert [record["step"] for record in compiles] == compiled_at
    assert [record["batch_shape"][0][0] for record in compiles] == [batch_size, 288 % batch_size][: len(compiled_at)]
    assert all(record["compiled"] and record["seconds"] >= 0 for record in compiles)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 2 * -(-288 // batch_size)
    assert summary["compile_seconds"] == round(sum(record["seconds"] for record in compiles), 2)


def test_resume_refuses_a_checkpoint_of_another_preset(tmp_path, idx_data):
    run = train(config(tmp_path, idx_data, epochs=1, preset="smoke"))
    before = (run / "checkpoints/last.pt").read_bytes()
    with pytest.raises(TrainingError, match=r"last.pt: a 'smoke' run; resume it with --preset smoke"):
        train(config(tmp_path, idx_data, epochs=2, preset="quick", resume=True))
    assert (run / "checkpoints/last.pt").read_bytes() == before


def test_resume_with_another_recipe_says_what_changed_and_where_the_schedule_goes(tmp_path, idx_data, capsys):
    run = train(config(tmp_path, idx_data, epochs=1, preset="smoke"))
    assert load_checkpoint(run / "checkpoints/last.pt")["recipe"]["epochs"] == 1
    train(config(tmp_path, idx_data, epochs=2, preset="smoke", resume=True))
    err = capsys.readouterr().err
    assert "last.pt: resumed with a changed recipe (epochs 1 -> 2)" in err and "the learning rate is" in err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["changed"] for r in records if r["kind"] == "resume"] == [{"epochs": [1, 2]}]
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2]

    # Resuming a finished run with its own recipe changes nothing, so nothing is said.
    train(config(tmp_path, idx_data, epochs=2, preset="smoke", resume=True))
    assert "changed recipe" not in capsys.readouterr().err

    # A checkpoint older than a recipe field does not hold it; its absence is not reported as a change.
    older = load_checkpoint(run / "checkpoints/last.pt")
    del older["recipe"]["final_lr_fraction"]
    save_checkpoint(run / "checkpoints/last.pt", older)
    train(config(tmp_path, idx_data, epochs=3, preset="smoke", resume=True))
    assert "changed recipe (epochs 2 -> 3)" in capsys.readouterr().err


def test_all_with_resume_skips_finished_runs_resumes_interrupted_ones_and_starts_the_rest(tmp_path, capsys):
    genomes = write_genomes(tmp_path / "data")  # the classifiers' default data: reads of two genomes
    argv = ["--all", "--task", "sequence-classification", "--preset", "smoke", "--resume", "--quiet"]
    argv += ["--out", str(tmp_path / "out"), "--data-dir", str(genomes)]
    tmp_path = tmp_path / "out"
    assert zoo_train(argv) == 0  # nothing there yet: both start
    first = capsys.readouterr().out
    assert "skipped" not in first and "lstm-classifier: test_accuracy" in first and "gru-classifier: test_accuracy" in first

    gru_summary = tmp_path / "gru-classifier" / "summary.json"
    gru_summary.unlink()  # as if interrupted between its last checkpoint and its final report
    lstm_checkpoint = (tmp_path / "lstm-classifier" / "checkpoints" / "last.pt").read_bytes()
    assert zoo_train(argv) == 0
    second = capsys.readouterr().out
    assert "lstm-classifier: already trained" in second and "skipped" in second
    assert "gru-classifier: test_accuracy" in second and gru_summary.exists()
    assert (tmp_path / "lstm-classifier" / "checkpoints" / "last.pt").read_bytes() == lstm_checkpoint
    assert json.loads(gru_summary.read_text())["epochs_run"] == 1  # resumed after its one epoch, not retrained

    # A run stopped before its first epoch (run.json, no checkpoint) holds nothing to lose: it is started again.
    # A finished run whose checkpoints were deleted (to save space, after exporting) is still done.
    for checkpoint in (tmp_path / "lstm-classifier" / "checkpoints").iterdir():
        checkpoint.unlink()
    gru = tmp_path / "gru-classifier"
    shutil.rmtree(gru)
    gru.mkdir()
    (gru / "run.json").write_text("{}")
    assert zoo_train(argv) == 0
    third = capsys.readouterr().out
    assert "lstm-classifier: already trained" in third and "gru-classifier: test_accuracy" in third

    # A finished run of another preset is not "done" for this one. With its checkpoint it is a resume, which the
    # trainer refuses with the preset it needs; without, starting again would destroy it, which is refused too.
    assert zoo_train([*argv[:4], "quick", *argv[5:]]) == 1
    err = capsys.readouterr().err
    assert "gru-classifier/checkpoints/last.pt: a 'smoke' run; resume it with --preset smoke" in err
    assert "lstm-classifier: holds a finished smoke run of lstm-classifier" in err


def test_dcgan_measures_fid_in_the_classifier_named_by_fid_classifier(tmp_path, idx_data, tiny_checkpoint, capsys):
    # The classifier lies outside the GAN's --out: found because it is named, not because it is a sibling run folder.
    classifier = tiny_checkpoint("simple-cnn")
    argv = ["dcgan", "--preset", "smoke", "--data-dir", str(idx_data.parent), "--out", str(tmp_path), "--quiet"]
    assert zoo_train([*argv, "--fid-classifier", str(classifier)]) == 0
    summary = json.loads((tmp_path / "dcgan" / "summary.json").read_text())
    assert summary["fid_status"] == "measured" and summary["fid"] > 0
    assert summary["fid_features"].startswith(f"penultimate layer of {classifier.parent.parent.name} ")
    assert json.loads((tmp_path / "dcgan" / "run.json").read_text())["recipe"]["data_options"]["fid_classifier"] == str(
        classifier
    )

    # The default (simple-cnn's run beside this one) is absent here: said on stderr and in the summary.
    capsys.readouterr()
    assert zoo_train([*argv, "--overwrite"]) == 0
    missing = f"no trained classifier at {tmp_path / 'simple-cnn' / 'checkpoints' / 'best.pt'} (train simple-cnn first"
    assert f"dcgan: FID not measured: {missing}" in capsys.readouterr().err
    assert json.loads((tmp_path / "dcgan" / "summary.json").read_text())["fid_status"].startswith(f"missing: {missing}")


def test_fid_classifier_that_names_nothing_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as usage_error:
        zoo_train(["dcgan", "--out", str(tmp_path), "--fid-classifier", str(tmp_path / "nowhere.pt")])
    assert usage_error.value.code == 2
    assert "--fid-classifier" in capsys.readouterr().err and not any(tmp_path.iterdir())


def test_fid_classifier_names_a_registry_entry_a_run_folder_or_a_file(tmp_path):
    best = tmp_path / "elsewhere" / "checkpoints" / "best.pt"
    assert fid_classifier_checkpoint("simple-cnn", tmp_path) == tmp_path / "simple-cnn" / "checkpoints" / "best.pt"
    best.parent.mkdir(parents=True)
    assert fid_classifier_checkpoint(str(tmp_path / "elsewhere"), tmp_path) == best
    assert fid_classifier_checkpoint(str(best), tmp_path) == best
