"""benchmarks/train_speed.py's time to target: which epoch it counts to, and when a target counts as reached."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_speed.py"


@pytest.fixture(scope="module")
def train_speed():
    spec = importlib.util.spec_from_file_location("train_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_train(epochs: list[dict], summary: dict, seen: list, compile_seconds: float | None = None):
    """Stands in for the trainer: records the config and writes a run of the given epochs and summary."""

    def train(config):
        seen.append(config)
        run = config.out / config.model
        run.mkdir(parents=True)
        # As the trainer writes them: each epoch record carries the steps taken so far (4 an epoch here).
        records = [{"kind": "epoch", "epoch": i + 1, "step": 4 * (i + 1), **record} for i, record in enumerate(epochs)]
        if compile_seconds is not None:
            # The first step compiles, and so does the first short batch (at step 3, in the first epoch).
            records[:0] = [{"kind": "compile", "step": step, "compiled": True, "seconds": compile_seconds / 2} for step in (0, 3)]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (run / "summary.json").write_text(json.dumps(summary))
        return run

    return train


def test_a_validation_target_stops_the_full_recipe_at_the_first_epoch_that_reaches_it(train_speed, tmp_path, monkeypatch):
    seen = []
    epochs = [{"seconds": 10.0, "val_loss": 1.9}, {"seconds": 11.0, "val_loss": 1.49}, {"seconds": 12.0, "val_loss": 1.4}]
    monkeypatch.setattr(train_speed, "train", fake_train(epochs, {"metric": "val_bpc", "val_bpc": 2.1}, seen))
    result = train_speed.time_to_target("char-gpt", "cpu", None, tmp_path, "fp32")
    assert seen[0].preset == "full" and seen[0].target == ("val_loss", 1.50)
    assert result["seconds_to_target"] == 21.0 and result["target"] == "val_loss <= 1.5"


@pytest.mark.parametrize("test_accuracy,expected", [(0.9412, 36.0), (0.9399, None)])
def test_a_test_target_judges_the_whole_speedrun_schedule_by_its_end(train_speed, tmp_path, monkeypatch, test_accuracy, expected):
    seen = []
    # Validation passes 0.94 after the first epoch; only the held-out test figure at the end counts.
    epochs = [{"seconds": 12.0, "val_accuracy": 0.95}] * 3
    summary = {"metric": "test_accuracy", "test_accuracy": test_accuracy, "best_val": 0.95}
    monkeypatch.setattr(train_speed, "train", fake_train(epochs, summary, seen))
    result = train_speed.time_to_target("resnet-cifar", "cpu", None, tmp_path, "bf16")
    assert seen[0].preset == "speedrun" and seen[0].target is None and seen[0].precision == "bf16"
    assert result["seconds_to_target"] == expected
    assert result["training_seconds"] == 36.0 and result["final"] == {"test_accuracy": test_accuracy}


def test_the_steps_that_compiled_are_reported_apart_from_the_training_seconds(train_speed, tmp_path, monkeypatch):
    seen = []
    epochs = [{"seconds": 40.0, "val_accuracy": 0.9}, {"seconds": 10.0, "val_accuracy": 0.95}]
    summary = {"metric": "test_accuracy", "test_accuracy": 0.9401}
    monkeypatch.setattr(train_speed, "train", fake_train(epochs, summary, seen, compile_seconds=31.5))
    result = train_speed.time_to_target("resnet-cifar", "cuda", None, tmp_path, "bf16", compile_mode="reduce-overhead")
    assert seen[0].compile == "reduce-overhead"
    assert result["compile_seconds"] == 31.5 and result["training_seconds"] == 18.5 and result["seconds_to_target"] == 18.5


@pytest.mark.parametrize("test_accuracy,expected", [(0.8712, 21.5), (0.8699, None)])
def test_a_quick_run_is_judged_by_its_demo_targets_at_its_end(train_speed, tmp_path, test_accuracy, expected):
    run = tmp_path / "runs" / "lenet5"
    run.mkdir(parents=True)
    records = [{"kind": "epoch", "epoch": 1, "step": 4, "val_accuracy": 0.88}, {"kind": "epoch", "epoch": 2, "step": 8}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = {"preset": "quick", "precision": "bf16", "train_seconds": 21.5, "test_accuracy": test_accuracy}
    (run / "summary.json").write_text(json.dumps(summary))
    result = train_speed.quick_time_to_target("lenet5", run)
    assert result["seconds_to_target"] == expected and result["epochs"] == 2
    assert result["targets"] == f"test_accuracy >= 0.87: {'met' if expected else 'missed'}"
    row = f"| lenet5 | bf16 | 2 | 22 | {result['targets']} | test_accuracy {test_accuracy:.4g} |"
    assert row in train_speed.quick_table([result])


def test_quick_recipes_read_from_a_demo_leave_out_models_it_did_not_train(train_speed, tmp_path, capsys):
    (tmp_path / "lenet5").mkdir()
    (tmp_path / "lenet5" / "summary.json").write_text(json.dumps({"preset": "quick", "train_seconds": 3.0, "test_accuracy": 0.9}))
    assert train_speed.quick_recipes(["lenet5", "dcgan"], "cpu", None, tmp_path / "unused", tmp_path) == 0
    out = capsys.readouterr()
    assert "dcgan: no summary.json (not trained); left out" in out.err
    assert "1 of 1 quick recipes met their demo targets; 3 s of training in all" in out.out
