"""The app's Qt-free parts: scanning folders for bundles, the rows they become, formatting and
the details HTML. No QApplication here: these modules must not need one (nor import Qt)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zoo_gui.catalog import BundleInfo, bundle_key, scan, unique_roots
from zoo_gui.details import MAX_CHECKS, details_html
from zoo_gui.errors import describe_error
from zoo_gui.formatting import format_metric, format_size, key_metric, short_provider, task_title
from zoo_runtime import BundleError, schema
from zoo_runtime.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]
PURE_MODULES = ("zoo_gui.catalog", "zoo_gui.details", "zoo_gui.errors", "zoo_gui.formatting")


def test_pure_modules_import_no_qt():
    program = (
        "import sys\n"
        f"for name in {PURE_MODULES!r}: __import__(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'PySide6'))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("n", "text"), [(None, "—"), (0, "0 B"), (999, "999 B"), (1500, "1.5 KB"), (2_500_000, "2.5 MB"), (7 * 10**12, "7000.0 GB")]
)
def test_format_size(n, text):
    assert format_size(n) == text


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [("test_accuracy", 0.9416, "94.2 %"), ("val_loss", 0.123456, "0.1235"), ("fid", 42.123, "42.12"), ("steps", 12000, "12,000")],
)
def test_format_metric(name, value, text):
    assert format_metric(name, value) == text


def test_key_metric_prefers_the_trainers_primary_then_the_known_order():
    assert key_metric({"val_loss": 0.5, "test_accuracy": 0.9}) == ("test_accuracy", "90.0 %")
    assert key_metric({"val_loss": 0.5, "test_accuracy": 0.9, "primary": "val_loss"}) == ("val_loss", "0.5000")
    assert key_metric({"best_val": 0.3, "zeta": 1.5}) == ("zeta", "1.5000")  # best_val has no name of its own
    assert key_metric({"note": "text only"}) is None
    assert key_metric(None) is None


def test_short_provider_and_task_title():
    assert short_provider("CUDAExecutionProvider") == "CUDA"
    assert short_provider("TensorrtExecutionProvider") == "TensorRT"
    assert short_provider(None) == "—"
    assert task_title(schema.TASK_SEQ2SEQ) == "Sequence to sequence"
    assert task_title("something-new") == "something-new"


def test_describe_error_gives_one_line_with_the_type_only_where_the_message_needs_it():
    assert describe_error(BundleError("x/manifest.json: not JSON")) == "x/manifest.json: not JSON"
    assert describe_error(FileNotFoundError("runs: no such file or folder")) == "runs: no such file or folder"
    assert describe_error(RuntimeError("boom")) == "RuntimeError: boom"


def test_a_bundle_exported_into_a_run_is_named_after_the_run(tmp_path):
    run = RunDir(tmp_path / "lenet-seed1")
    info = BundleInfo(path=run.export, manifest={"model": "lenet5", "task": schema.TASK_IMAGE_CLASSIFICATION})
    assert info.run_name == "lenet-seed1"
    assert info.name == "lenet5"
    assert info.label() == "lenet5  (lenet-seed1)"
    lone = BundleInfo(path=tmp_path / "model.onnx")
    assert lone.run_name == lone.name == "model.onnx"
    assert lone.label() == "model.onnx"


def test_scan_lists_real_bundles_once_and_broken_ones_with_their_reason(tiny_bundle, tmp_path):
    runs = tmp_path / "runs"
    good = RunDir(runs / "lenet").export
    shutil.copytree(tiny_bundle("lenet5"), good)
    broken = RunDir(runs / "tampered").export
    shutil.copytree(good, broken)
    manifest = json.loads((broken / schema.MANIFEST_FILE).read_text())
    manifest["files"] = {name: {**meta, "sha256": "0" * 64} for name, meta in manifest["files"].items()}
    (broken / schema.MANIFEST_FILE).write_text(json.dumps(manifest))

    infos, problems = scan([runs, good, tmp_path / "missing"])
    assert [i.run_name for i in infos] == ["lenet", "tampered"]  # `good` again is not a second row
    assert len(problems) == 1 and "missing" in problems[0]
    ok, bad = infos
    assert ok.usable and ok.problem is None and ok.parity is True
    assert ok.task == schema.TASK_IMAGE_CLASSIFICATION and ok.size_bytes and ok.size_bytes > 0
    assert ok.location == str(Path("runs") / "lenet" / schema.EXPORT_DIR)
    assert not bad.usable and bad.error and "sha256" in bad.error
    assert bad.name == "lenet5"  # from the unverified manifest, for the listing only
    assert ok.matches("lenet") and not ok.matches("gpt")


def test_unique_roots_counts_two_spellings_of_a_folder_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    roots = unique_roots([Path("runs"), tmp_path / "runs", tmp_path / "other"])
    assert [bundle_key(r) for r in roots] == [bundle_key(tmp_path / "runs"), bundle_key(tmp_path / "other")]


def test_details_html_escapes_and_summarises(tmp_path):
    checks = [{"graph": "model", "backend": "onnxruntime", "max_abs_err": 1e-6, "passed": True}] * (MAX_CHECKS + 3)
    manifest = {
        "model": "<b>net</b>",
        "task": schema.TASK_TEXT_GENERATION,
        "metrics": {"val_bpc": 1.25, "primary": "val_bpc"},
        "parity": {"passed": False, "checks": [*checks, {"graph": "step", "tokens": 32, "identical": True, "passed": True}]},
        "vocab": {"kind": "char", "tokens": ["a", "\n", "<"]},
        "files": {"model.onnx": {"bytes": 2048, "sha256": "ab" * 32}},
    }
    info = BundleInfo(path=tmp_path / "net", manifest=manifest, size_bytes=4096, load_error="cannot load: <reason>")
    page = details_html(info)
    assert "&lt;b&gt;net&lt;/b&gt;" in page and "<b>net</b>" not in page
    assert "Cannot be used:</b> cannot load: &lt;reason&gt;" in page
    assert "<b>1.2500</b> (primary)" in page
    assert "Parity: <span" in page and "failed" in page
    assert "4 more" in page  # the checks beyond MAX_CHECKS are counted, not listed
    assert "Vocabulary (3 char tokens)" in page and "a\\n&lt;" in page
    assert "2.0 KB   sha256 abababababababab…" in page
