"""zoo-export: every registry entry exports with parity proven; failures are caught and exit codes hold.

Tiny configs of every model (``tiny_bundle``/``tiny_checkpoint`` in conftest.py); nothing
trains and nothing downloads. Each model is exported once per session and shared.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from zoo_export import cli, export_checkpoint
from zoo_runtime import read_manifest, schema
from zoo_runtime.contract import task_kind
from zoo_runtime.generation import LoopSettings, full_graph_step, greedy_tokens
from zoo_train.registry import get_entry, list_models

MODELS = list_models()  # every registry entry; nothing excluded
CLASSIFIER_TASKS = ("image-classification", "sequence-classification")


def manifest_of(bundle: Path) -> dict:
    return json.loads((bundle / schema.MANIFEST_FILE).read_text())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_per_task() -> list[str]:
    seen: dict[str, str] = {}
    for name in MODELS:
        seen.setdefault(get_entry(name).task, name)
    return sorted(seen.values())


# ------------------------------------------------------------------------------ every model


@pytest.mark.parametrize("name", MODELS)
def test_export_passes_parity_and_manifest_hashes_match(tiny_bundle, name):
    bundle = tiny_bundle(name)
    manifest = manifest_of(bundle)
    task = get_entry(name).task
    assert manifest["format"] == schema.FORMAT and manifest["schema_version"] == schema.SCHEMA_VERSION
    assert manifest["complete"] is True and manifest["model"] == name and manifest["task"] == task
    # every file is listed with its hash and size, and nothing else is there
    on_disk = {p.name for p in bundle.iterdir()} - {schema.MANIFEST_FILE}
    assert set(manifest["files"]) == on_disk
    for fname, entry in manifest["files"].items():
        assert entry["sha256"] == sha256(bundle / fname) and entry["bytes"] == (bundle / fname).stat().st_size
    assert set(task_kind(task).roles) <= set(manifest["graphs"])

    parity = manifest["parity"]
    assert parity["passed"] is True and parity["checks"] and all(c["passed"] for c in parity["checks"])
    assert parity["tolerances"]["logits_atol"] <= 1e-4
    for role, graph in manifest["graphs"].items():
        assert graph["file"].endswith(".onnx") and graph["torchscript"] == f"{role}.ts"
        for backend in ("onnxruntime", "torchscript"):
            checks = [c for c in parity["checks"] if c.get("graph") == role and c.get("backend") == backend]
            shapes = {json.dumps(c["shape"], sort_keys=True) for c in checks}
            assert len(shapes) >= 3, (role, backend, shapes)
            assert any(c["shape"].get("batch") == 1 for c in checks)
            export = parity["export_shapes"][role]
            assert any(c["shape"]["batch"] != export["batch"] for c in checks)
            for dim in set(export) - {"batch"}:  # lengths (time, new, past, src_time...) not used at export
                assert any(c["shape"].get(dim) != export[dim] for c in checks), dim
            if task in CLASSIFIER_TASKS and role == schema.ROLE_MODEL:  # the graph with logits
                assert all(c["top1_agree"] for c in checks)
    if task == "text-generation":
        greedy = [c for c in parity["checks"] if c.get("check") == "greedy-generation"]
        assert greedy and all(c["identical"] and c["tokens"] >= 100 for c in greedy)
        if "model" in manifest["graphs"]:
            full = [c for c in parity["checks"] if c.get("check") == "greedy-generation-full-graph"]
            assert full and all(c["identical"] for c in full)
    if task == "seq2seq":
        greedy = [c for c in parity["checks"] if c.get("check") == "greedy-decoding"]
        assert greedy and greedy[0]["identical"] and greedy[0]["total_tokens"] >= 100
    # export warnings are all explained (TorchScript deprecation, nn.LSTM internals, ...)
    assert all(w["explanation"] for w in manifest["export_warnings"]), manifest["export_warnings"]
    assert manifest["versions"]["exporter"] == "dynamo", manifest["exporters"]


@pytest.mark.parametrize("name", MODELS)
def test_onnx_files_pass_checker_and_carry_metadata(tiny_bundle, name):
    bundle = tiny_bundle(name)
    manifest = manifest_of(bundle)
    for role, graph in manifest["graphs"].items():
        path = bundle / graph["file"]
        onnx.checker.check_model(str(path), full_check=True)
        model = onnx.load(str(path))
        assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
        props = {p.key: p.value for p in model.metadata_props}
        assert props[schema.META_TASK] == manifest["task"] and props[schema.META_MODEL] == name
        assert props[schema.META_GRAPH_ROLE] == role
        assert json.loads(props[schema.META_IO]) == graph
        assert json.loads(props[schema.META_LABELS]) == manifest["labels"]
        assert json.loads(props[schema.META_VOCAB]) == manifest["vocab"]
        assert json.loads(props[schema.META_PREPROCESSING]) == manifest["preprocessing"]
        # the interface is the declared one, symbolic dims included
        inputs = [(i.name, [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]) for i in model.graph.input]
        assert inputs == [(t["name"], t["shape"]) for t in graph["inputs"]]
        outputs = [(o.name, [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]) for o in model.graph.output]
        assert outputs == [(t["name"], t["shape"]) for t in graph["outputs"]]
    if manifest["task"] == "image-classification":
        assert manifest["labels"] and manifest["preprocessing"]["image"]["normalisation"] == "in-graph"
    if manifest["task"] == "image-generation":
        assert manifest["preprocessing"]["latent"]["dim"] == manifest["graphs"]["model"]["inputs"][0]["shape"][1]


# ------------------------------------------------------------------------------ generation


@pytest.mark.parametrize("name", list_models(task="text-generation"))
def test_step_graph_generation_equals_full_graph_generation(tiny_bundle, name):
    """From the bundle alone (manifest + ONNX files): step-graph greedy == full-graph greedy."""
    bundle = tiny_bundle(name)
    manifest = manifest_of(bundle)
    gen = manifest["generation"]
    step = ort.InferenceSession(str(bundle / "step.onnx"), providers=["CPUExecutionProvider"])

    def initial(batch: int) -> list[np.ndarray]:
        states = []
        for s in gen["state"]:
            shape = [batch if d == "batch" else 0 if d == "past" else d for d in s["shape"]]
            states.append(np.zeros(shape, dtype=s["dtype"]))
        return states

    names = ["tokens"] + [s["input"] for s in gen["state"]]

    def run_step(feed, state):
        out = step.run(None, dict(zip(names, [feed, *state], strict=False)))
        return out[0], list(out[1:])

    vocab = len(manifest["vocab"]["tokens"])
    prompt = np.random.default_rng(3).integers(0, vocab, (2, 7)).astype(np.int64)
    ctx = gen["max_context"]
    assert gen["reset_keep"] == (ctx and (gen["reset_keep"] or ctx))
    keeps = [gen["reset_keep"], ctx // 2] if ctx else [None]  # the manifest's rule, and a half-window reset
    full = None
    if "model" in manifest["graphs"]:
        full = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    else:
        assert gen["step_tokens"] == 1  # only Python-loop recurrent models leave the full graph out
    for keep in keeps:
        settings = LoopSettings(max_context=ctx, reset_keep=keep, step_tokens=gen["step_tokens"])
        by_step, _, resets = greedy_tokens(run_step, initial, settings, prompt, 110)
        assert by_step.shape == (2, 110)
        if ctx:
            assert resets >= 1  # the context window was crossed and the cache reset
        if full is not None:
            full_step, full_initial = full_graph_step(lambda t: full.run(None, {"tokens": t})[0])
            by_full, _, _ = greedy_tokens(full_step, full_initial, LoopSettings(max_context=ctx, reset_keep=keep), prompt, 110)
            np.testing.assert_array_equal(by_step, by_full)


def test_recurrent_graphs_are_dynamic_without_onnxruntime_shape_warnings(tiny_bundle, capfd):
    names = [n for n in ("char-lstm", "lstm-classifier", "gru-classifier") if n in MODELS]
    for name in names:
        bundle = tiny_bundle(name)
        capfd.readouterr()
        options = ort.SessionOptions()
        options.log_severity_level = 1  # info and up: a shape mismatch warning would show
        session = ort.InferenceSession(str(bundle / "model.onnx"), options, providers=["CPUExecutionProvider"])
        vocab = manifest_of(bundle)["vocab"]
        size = len(vocab["tokens"]) if "tokens" in vocab else vocab["size"]
        for batch, time in ((1, 1), (3, 7), (2, 23)):
            out = session.run(None, {"tokens": np.random.default_rng(0).integers(0, size, (batch, time))})[0]
            assert out.shape[0] == batch
        err = capfd.readouterr().err
        assert "VerifyOutputSizes" not in err and "does not match actual shape" not in err, err


# ------------------------------------------------------------------------------ TorchScript


FRESH_PROCESS = textwrap.dedent(r"""
    import importlib.abc, json, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("zoo_train", "zoo_export"):
                raise ImportError(f"{name} is blocked in this process")
    sys.meta_path.insert(0, Block())
    import numpy as np, onnxruntime as ort, torch
    results = {}
    for bundle in sys.argv[1:]:
        manifest = json.load(open(f"{bundle}/manifest.json"))
        vocab = manifest.get("vocab") or {}
        size = len(vocab["tokens"]) if vocab.get("tokens") else vocab.get("size", 2)
        rng = np.random.default_rng(0)
        for role, graph in manifest["graphs"].items():
            dims = {"batch": 3, "past": 2}
            feeds = {}
            for spec in graph["inputs"]:
                shape = [dims.get(d, 4) if isinstance(d, str) else d for d in spec["shape"]]
                feeds[spec["name"]] = (rng.integers(0, size, shape) if spec["dtype"] == "int64"
                                       else rng.random(shape, dtype=np.float32))
            if manifest["task"] == "text-generation" and role == "step" and manifest["generation"]["step_tokens"] == 1:
                feeds["tokens"] = feeds["tokens"][:, :1]
            module = torch.jit.load(f"{bundle}/{graph['torchscript']}")
            with torch.no_grad():
                out = module(*[torch.from_numpy(v) for v in feeds.values()])
            out = out if isinstance(out, tuple) else (out,)
            ref = ort.InferenceSession(f"{bundle}/{graph['file']}", providers=["CPUExecutionProvider"]).run(None, feeds)
            results[f"{manifest['model']}/{role}"] = max(float(np.abs(a.numpy() - b).max()) for a, b in zip(out, ref))
    assert "zoo_train" not in sys.modules and "zoo_export" not in sys.modules
    print(json.dumps(results))
""")


def test_torchscript_loads_and_runs_in_a_fresh_process_without_zoo_train(tiny_bundle):
    bundles = [str(tiny_bundle(name)) for name in MODELS]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, *bundles], capture_output=True, text=True, env=env, cwd="/", timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    errors = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(errors) >= len(MODELS)
    assert all(err < 1e-4 for err in errors.values()), errors


# ------------------------------------------------------------------------------ failures and exit codes


def _cheap_model() -> str:
    return "lenet5" if "lenet5" in MODELS else list_models(task="image-classification")[0]


def test_changed_tensor_in_model_onnx_is_caught_exit_1(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    import zoo_export.graphs as graphs

    original = graphs.export_onnx

    def export_then_tamper(spec, path, opset=None):
        note = original(spec, path, opset)
        model = onnx.load(str(path))
        biggest = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
        array = numpy_helper.to_array(biggest).copy()
        array.flat[: max(1, array.size // 4)] += 0.5
        biggest.CopyFrom(numpy_helper.from_array(array, biggest.name))
        onnx.save(model, str(path))
        return note

    monkeypatch.setattr(graphs, "export_onnx", export_then_tamper)
    out = tmp_path / "bundle"
    report = tmp_path / "report.json"
    code = cli.main([str(tiny_checkpoint(_cheap_model())), "--out", str(out), "--report", str(report)])
    assert code == 1
    assert not out.exists()  # not published
    failed = tmp_path / "bundle.failed"
    assert json.loads((failed / schema.MANIFEST_FILE).read_text())["complete"] is False
    assert not list(tmp_path.glob("bundle.tmp-*"))
    data = json.loads(report.read_text())
    assert data["passed"] is False and data["models"][0]["status"] == "parity-failed"
    assert "parity-failed" in capsys.readouterr().out


def test_crash_during_export_leaves_no_bundle(tiny_checkpoint, tmp_path, monkeypatch):
    import zoo_export.graphs as graphs

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash while tracing")

    monkeypatch.setattr(graphs, "export_torchscript", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        export_checkpoint(tiny_checkpoint(_cheap_model()), tmp_path / "export")
    assert list(tmp_path.iterdir()) == []


def test_an_opset_the_exporter_cannot_reach_fails_and_writes_nothing(tiny_checkpoint, tmp_path, capsys):
    # torch.onnx would quietly write its own opset (18) instead of one it cannot convert down to.
    assert (
        cli.main([str(tiny_checkpoint(_cheap_model())), "--opset", "3", "--format", "onnx", "--out", str(tmp_path / "bundle")])
        == 1
    )
    assert "ONNX opset 3 was asked for, but torch.onnx could only write this graph at opset" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_report_path_that_cannot_be_written_exits_2_before_exporting(tiny_checkpoint, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    checkpoint = str(tiny_checkpoint(_cheap_model()))
    for report, message in [
        (notes / "report.json", "notes.txt: exists and is not a folder, so --report"),
        (tmp_path, "is a folder; --report takes the JSON file to write"),
    ]:
        assert cli.main([checkpoint, "--out", str(tmp_path / "bundle"), "--report", str(report)]) == 2
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"] and notes.read_text() == "keep me"


def _bad_checkpoints(tmp_path: Path, good: Path) -> dict[str, Path]:
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    unknown = tmp_path / "unknown-model.pt"
    payload = torch.load(good, weights_only=True)
    payload["model"] = "no-such-model"
    torch.save(payload, unknown)
    return {
        "missing": tmp_path / "missing.pt",
        "truncated": truncated,
        "garbage": garbage,
        "foreign": foreign,
        "unknown": unknown,
    }


def test_missing_or_corrupt_checkpoint_exits_2_and_writes_nothing(tiny_checkpoint, tmp_path, capsys):
    good = tiny_checkpoint(_cheap_model())
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for kind, bad in _bad_checkpoints(inputs, good).items():
        before = sorted(p.name for p in inputs.iterdir())
        out = tmp_path / f"out-{kind}"
        # alone, and next to a good checkpoint: either way nothing at all is written
        assert cli.main([str(bad), "--out", str(out)]) == 2, kind
        assert cli.main([str(good), str(bad), "--out", str(out)]) == 2, kind
        assert not out.exists() and sorted(p.name for p in inputs.iterdir()) == before
        err = capsys.readouterr().err
        assert str(bad) in err, (kind, err)


def test_out_never_replaces_a_folder_that_is_not_a_bundle(tiny_checkpoint, tmp_path):
    precious = tmp_path / "documents"
    precious.mkdir()
    (precious / "thesis.txt").write_text("keep me")
    assert cli.main([str(tiny_checkpoint(_cheap_model())), "--out", str(precious)]) == 2
    assert [p.name for p in precious.iterdir()] == ["thesis.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["documents"]


def test_ctrl_c_during_an_export_leaves_the_earlier_bundle_and_no_half_built_one(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    import zoo_export.export as export_module

    checkpoint, out = str(tiny_checkpoint(_cheap_model())), tmp_path / "bundle"
    assert cli.main([checkpoint, "--out", str(out), "--format", "onnx", "--quiet"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupted(writer, *args, **kwargs):
        (writer.tmp / "model.onnx").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(export_module, "_build", interrupted)
    assert cli.main([checkpoint, "--out", str(out), "--format", "onnx", "--quiet"]) == 130
    assert f"stopped while exporting {checkpoint}; nothing of it was written" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_usage_errors_exit_2(tmp_path, capsys):
    assert cli.main([]) == 2
    assert cli.main(["--all", "--runs", str(tmp_path)]) == 2  # no runs there
    assert cli.main([str(tmp_path)]) == 2  # a directory without checkpoints/best.pt
    for wrong in (["--format", "tflite"], ["--opset", "-1"], ["--opset", "eighteen"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(["x.pt", *wrong])
        assert exc.value.code == 2
    # A mistyped --data-dir would otherwise be skipped, and --quantize would calibrate on data found elsewhere.
    with pytest.raises(SystemExit) as exc:
        cli.main(["x.pt", "--quantize", "int8", "--data-dir", str(tmp_path / "no-such-folder")])
    assert exc.value.code == 2 and f"{tmp_path / 'no-such-folder'}: no such folder" in capsys.readouterr().err


@pytest.mark.parametrize("jobs", [1, 2])
def test_cli_all_exports_every_run_and_writes_report(tiny_checkpoint, tmp_path, capsys, jobs):
    import shutil

    runs = tmp_path / "runs"
    names = [n for n in ("cifar-lenet", "dcgan") if n in MODELS] or [_cheap_model()]
    for name in names:
        (runs / name / "checkpoints").mkdir(parents=True)
        shutil.copy(tiny_checkpoint(name), runs / name / "checkpoints" / "best.pt")
    (runs / "not-a-run").mkdir()
    report = tmp_path / "report.json"
    code = cli.main(["--all", "--runs", str(runs), "--format", "onnx", "--report", str(report), "--jobs", str(jobs)])
    assert code == 0
    table = capsys.readouterr().out
    data = json.loads(report.read_text())
    assert data["passed"] is True and [m["model"] for m in data["models"]] == names
    for name in names:
        assert name in table
        manifest = manifest_of(runs / name / "export")
        assert manifest["complete"] and "model.ts" not in manifest["files"]
    assert f"{len(names)}/{len(names)} exported and passed" in table


def test_a_worker_that_dies_is_a_failed_export_not_a_traceback(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    import multiprocessing
    import os
    import shutil

    runs = tmp_path / "runs"
    for name in ("a", "b"):
        (runs / name / "checkpoints").mkdir(parents=True)
        shutil.copy(tiny_checkpoint(_cheap_model()), runs / name / "checkpoints" / "best.pt")
    # Forked instead of spawned, the workers inherit this test's patch: an export that kills its process.
    real_context = multiprocessing.get_context
    monkeypatch.setattr(cli.multiprocessing, "get_context", lambda method=None: real_context("fork"))
    monkeypatch.setattr(cli, "worker_threads", lambda jobs: None)  # no OpenMP call in a forked child
    monkeypatch.setattr(cli, "export_checkpoint", lambda *args, **kwargs: os._exit(3))
    assert cli.main(["--all", "--runs", str(runs), "--format", "onnx", "--jobs", "2", "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert "0/2 exported and passed" in out
    assert "export-failed: its export process ended without a result" in err and "Traceback" not in err
    assert sorted(p.name for p in runs.iterdir()) == ["a", "b"] and not list(runs.glob("*/export*"))


def test_no_check_publishes_with_parity_marked_skipped_and_replaces_a_bundle(tiny_checkpoint, tmp_path):
    out = tmp_path / "bundle"
    args = [str(tiny_checkpoint(_cheap_model())), "--out", str(out), "--no-check", "--format", "onnx"]
    assert cli.main(args) == 0
    first = manifest_of(out)
    assert first["parity"]["skipped"] is True and first["parity"]["passed"] is None
    assert cli.main(args) == 0  # a second export replaces the first bundle whole
    assert manifest_of(out)["created"] >= first["created"] and sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_manifest_carries_the_runs_headline_figure_baseline_and_epochs(tmp_path):
    from zoo_export.synthetic import write_checkpoint

    # A generator's headline (FID) is measured once at the end, so only summary.json has it.
    checkpoint = write_checkpoint("dcgan", tmp_path / "dcgan" / "checkpoints" / "best.pt")
    summary = {
        "metric": "fid",
        "baseline_metric": "fid_untrained",
        "fid": 8.8,
        "fid_untrained": 69.1,
        "val_loss": 0.5,
        "fid_status": "measured",
        "epochs_run": 12,
    }
    (tmp_path / "dcgan" / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "bundle"
    assert cli.main([str(checkpoint), "--out", str(out), "--no-check", "--format", "onnx"]) == 0
    metrics = manifest_of(out)["metrics"]
    assert metrics["primary"] == "fid" and metrics["fid"] == 8.8 and metrics["fid_untrained"] == 69.1
    assert metrics["val_loss"] == 1.0, "the checkpoint's own validation figures are kept"
    assert "fid_status" not in metrics
    # the run trained 12 epochs; the bundle holds the checkpoint's (epoch 1) weights
    assert manifest_of(out)["training"]["epochs"] == 12 and manifest_of(out)["training"]["weights_epoch"] == 1


# ------------------------------------------------------------------------------ fp16 and int8


def test_fp16_export_keeps_a_float32_interface(tiny_checkpoint, tmp_path):
    result = export_checkpoint(tiny_checkpoint(_cheap_model()), tmp_path / "fp16", formats=("onnx",), dtype="fp16")
    assert result.passed, result.error
    manifest = result.manifest
    assert manifest["dtype"] == "fp16" and manifest["parity"]["tolerances"]["logits_atol"] > 1e-3
    model = onnx.load(str(tmp_path / "fp16" / "model.onnx"))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_int8_quantization_reports_accuracy_size_and_latency(tiny_checkpoint, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from image_fixtures import write_idx_dataset

    data = tmp_path / "data"
    write_idx_dataset(data / "fashion-mnist", n_train=300, n_test=120)
    out = tmp_path / "bundle"
    code = cli.main(
        [
            str(tiny_checkpoint(_cheap_model())),
            "--out",
            str(out),
            "--format",
            "onnx",
            "--quantize",
            "int8",
            "--data-dir",
            str(data),
        ]
    )
    assert code == 0
    manifest = manifest_of(out)
    q = manifest["quantized"]
    assert q["file"] == schema.INT8_FILE and schema.INT8_FILE in manifest["files"]
    assert q["calibration"]["split"] == "train" and q["calibration"]["images"] > 0 and q["test_images"] == 120
    assert -1.0 <= q["accuracy_delta"] <= 1.0 and q["size_ratio"] < 1.0
    assert set(q["latency_ratio"]) == {"batch1", "batch32"}
    int8 = onnx.load(str(out / schema.INT8_FILE))
    assert any(n.op_type == "QuantizeLinear" for n in int8.graph.node)
    assert {p.key: p.value for p in int8.metadata_props}[schema.META_TASK] == "image-classification"
    # The reader accepts the int8 twin: its metadata agrees with the manifest's model entry under its own name.
    assert read_manifest(out) == manifest
