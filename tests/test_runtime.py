"""zoo_runtime on bundles that zoo-export made from tiny registry models.

Every task's methods give torch's results (the checkpoint beside the bundle is loaded with
torch here; the runtime itself never imports it), and every user-caused problem is a
``BundleError`` that names the file and the problem.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from bundle_tools import write_manifest

import zoo_runtime
from zoo_runtime import BundleError, schema
from zoo_runtime.bundle import onnx_metadata_props
from zoo_runtime.cli import main as zoo_run
from zoo_runtime.sampling import filter_logits, pick_next, softmax
from zoo_train.checkpoint import build_from_checkpoint, load_checkpoint
from zoo_train.registry import list_models

ATOL = 1e-4


def models(task: str) -> list[str]:
    return list_models(task)


def torch_model(bundle: Path) -> tuple[torch.nn.Module, dict]:
    """The checkpoint the bundle was exported from, rebuilt with torch (eval mode)."""
    manifest = json.loads((bundle / schema.MANIFEST_FILE).read_text())
    path = Path((manifest.get("checkpoint") or {}).get("path") or bundle.parent / "checkpoints" / "best.pt")
    payload = load_checkpoint(path)
    return build_from_checkpoint(payload, path), payload


def copy_bundle(bundle: Path, tmp_path: Path, name: str = "bundle") -> Path:
    return Path(shutil.copytree(bundle, tmp_path / name))


def edit_manifest(bundle: Path, **changes) -> None:
    path = bundle / schema.MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def lenet(tiny_bundle) -> Path:
    return tiny_bundle("lenet5")


@pytest.fixture(scope="module")
def text_bundle(tiny_bundle) -> Path:
    names = models(schema.TASK_TEXT_GENERATION)
    if not names:
        pytest.skip("no text-generation model in the registry yet")
    return tiny_bundle(names[0])


# ----------------------------------------------------------------------------- image classification


@pytest.mark.parametrize("name", models(schema.TASK_IMAGE_CLASSIFICATION))
def test_classify_equals_torch(tiny_bundle, name):
    bundle = tiny_bundle(name)
    model = zoo_runtime.load(bundle, device="cpu")
    assert isinstance(model, zoo_runtime.ImageClassifier)
    net, payload = torch_model(bundle)
    pre = payload["meta"]["preprocessing"]["image"]
    c, h, w = pre["channels"], pre["height"], pre["width"]
    x = np.random.default_rng(0).random((3, c, h, w), dtype=np.float32)
    mean = torch.tensor(pre["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(pre["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        expected = torch.softmax(net((torch.from_numpy(x) - mean) / std), dim=-1).numpy()
    k = len(model.labels)
    got = model.classify(x, top_k=k)
    assert len(got) == 3
    for row, preds in zip(expected, got, strict=False):
        assert next(p.index for p in preds) == int(row.argmax())
        assert next(p.label for p in preds) == payload["meta"]["labels"][int(row.argmax())]
        probs = np.zeros(k)
        for p in preds:
            probs[p.index] = p.probability
        np.testing.assert_allclose(probs, row, atol=ATOL)
        assert [p.probability for p in preds] == sorted((p.probability for p in preds), reverse=True)


def test_classify_files_pil_and_arrays_agree(lenet, tmp_path):
    from PIL import Image

    model = zoo_runtime.load(lenet, device="cpu")
    pre = model.manifest["preprocessing"]["image"]
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    # What the manifest says: convert to its Pillow mode, bilinear resize, divide by 255.
    ref = Image.fromarray(rgb).convert(pre["color"]).resize((pre["width"], pre["height"]), Image.Resampling.BILINEAR)
    x = (np.asarray(ref, dtype=np.float32) / 255.0).reshape(1, pre["channels"], pre["height"], pre["width"])
    expected = model.classify(x, top_k=3)[0]
    for item in (path, str(path), Image.open(path)):
        got = model.classify(item, top_k=3)[0]
        assert [p.index for p in got] == [p.index for p in expected]
        np.testing.assert_allclose([p.probability for p in got], [p.probability for p in expected], atol=1e-6)
    # uint8 HW array of the graph's size == its float 0..1 twin == NCHW
    gray = rng.integers(0, 256, (pre["height"], pre["width"]), dtype=np.uint8)
    a = model.classify(gray)[0]
    b = model.classify(gray.astype(np.float32) / 255)[0]
    c = model.classify((gray.astype(np.float32) / 255)[None, None])[0]
    assert [p.index for p in a] == [p.index for p in b] == [p.index for p in c]
    # a list mixes kinds and keeps order; Prediction is a NamedTuple
    batch = model.classify([path, gray, x], top_k=1)
    assert len(batch) == 3 and batch[0][0] == expected[0] and batch[0][0].label == batch[0][0][0]


def test_wrong_input_shape_is_clear(lenet):
    model = zoo_runtime.load(lenet, device="cpu")
    c, h, w = model.image_spec.chw
    with pytest.raises(BundleError, match=rf"wrong input shape \[2, {c + 2}, {h}, {w}\].*\[N, {c}, {h}, {w}\]"):
        model.classify(np.zeros((2, c + 2, h, w), dtype=np.float32))
    with pytest.raises(BundleError, match="wrong input shape"):
        model.classify(np.zeros((h, w, 5), dtype=np.uint8))
    with pytest.raises(BundleError, match="wrong input shape"):
        model.classify(np.zeros((1, 1, 1, 1, 1), dtype=np.float32))
    with pytest.raises(BundleError, match=r"0\.\.1"):
        model.classify(np.full((h, w), 200.0, dtype=np.float32))


def test_non_image_file_is_clear(lenet, tmp_path):
    model = zoo_runtime.load(lenet, device="cpu")
    fake = tmp_path / "notes.png"
    fake.write_text("this is not a picture\n")
    with pytest.raises(BundleError, match=r"notes\.png: not an image"):
        model.classify(fake)
    with pytest.raises(BundleError, match=r"missing\.png: no such image file"):
        model.classify(tmp_path / "missing.png")


# ----------------------------------------------------------------------------- bundle verification


def test_common_attributes(lenet):
    model = zoo_runtime.load(lenet)
    manifest = json.loads((lenet / schema.MANIFEST_FILE).read_text())
    assert model.path == lenet and model.manifest == manifest
    assert model.name == "lenet5" and model.task == schema.TASK_IMAGE_CLASSIFICATION
    assert model.labels == manifest["labels"] and model.metrics == (manifest.get("metrics") or {})
    assert model.size_bytes == sum(f.stat().st_size for f in lenet.iterdir() if f.is_file())
    assert model.provider in ort.get_available_providers()
    assert zoo_runtime.read_manifest(lenet) == manifest
    assert zoo_runtime.read_manifest(lenet / schema.MANIFEST_FILE) == manifest


def test_tampered_bytes_refused(lenet, tmp_path):
    bundle = copy_bundle(lenet, tmp_path)
    onnx_path = bundle / schema.MODEL_FILE
    data = bytearray(onnx_path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed
    onnx_path.write_bytes(bytes(data))
    for call in (zoo_runtime.load, zoo_runtime.read_manifest):
        with pytest.raises(BundleError, match=r"model\.onnx: sha256 mismatch"):
            call(bundle)


def test_tampered_torchscript_refused_too(lenet, tmp_path):
    bundle = copy_bundle(lenet, tmp_path)
    ts = [name for name in json.loads((bundle / schema.MANIFEST_FILE).read_text())["files"] if not name.endswith(".onnx")]
    if not ts:
        pytest.skip("bundle has no non-ONNX files")
    with open(bundle / ts[0], "r+b") as f:
        f.seek(10)
        byte = f.read(1)
        f.seek(10)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(BundleError, match=rf"{ts[0]}: sha256 mismatch"):
        zoo_runtime.load(bundle)


def test_truncated_and_missing_files_refused(lenet, tmp_path):
    bundle = copy_bundle(lenet, tmp_path, "truncated")
    path = bundle / schema.MODEL_FILE
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(BundleError, match=r"model\.onnx: size .* the bundle was altered or truncated"):
        zoo_runtime.load(bundle)
    bundle = copy_bundle(lenet, tmp_path, "missing")
    (bundle / schema.MODEL_FILE).unlink()
    with pytest.raises(BundleError, match=r"model\.onnx: missing"):
        zoo_runtime.load(bundle)
    bundle = copy_bundle(lenet, tmp_path, "nomanifest")
    (bundle / schema.MANIFEST_FILE).unlink()
    with pytest.raises(BundleError, match=r"manifest\.json: missing"):
        zoo_runtime.load(bundle)
    with pytest.raises(BundleError, match="no such bundle"):
        zoo_runtime.load(tmp_path / "nowhere")


def test_incomplete_newer_and_malformed_manifests_refused(lenet, tmp_path):
    cases = [
        ({"complete": False}, "incomplete"),
        ({"schema_version": schema.SCHEMA_VERSION + 1}, rf"schema version {schema.SCHEMA_VERSION + 1} is newer .* upgrade"),
        ({"format": "something-else"}, "not a Model Zoo bundle"),
        ({"task": "telepathy"}, "unknown task 'telepathy'"),
        ({"files": {"../model.onnx": {"sha256": "0" * 64, "bytes": 1}}}, "not a plain file name"),
        ({"graphs": {}}, "needs a 'model' graph"),
    ]
    for i, (change, message) in enumerate(cases):
        bundle = copy_bundle(lenet, tmp_path, f"case{i}")
        edit_manifest(bundle, **change)
        with pytest.raises(BundleError, match=message) as info:
            zoo_runtime.load(bundle)
        assert "manifest.json" in str(info.value)
    bundle = copy_bundle(lenet, tmp_path, "garbage")
    (bundle / schema.MANIFEST_FILE).write_text("{not json")
    with pytest.raises(BundleError, match=r"manifest\.json: not valid JSON"):
        zoo_runtime.read_manifest(bundle)


def test_manifest_that_disagrees_with_graph_refused(lenet, tmp_path):
    bundle = copy_bundle(lenet, tmp_path)
    manifest = json.loads((bundle / schema.MANIFEST_FILE).read_text())
    manifest["graphs"]["model"]["inputs"][0]["name"] = "pixels"
    (bundle / schema.MANIFEST_FILE).write_text(json.dumps(manifest))
    # The hashed graph's own record of its inputs (zoo.io) disagrees before onnxruntime is asked.
    with pytest.raises(BundleError, match=r"manifest\.json: graphs\.model differs from model\.onnx's metadata \(zoo\.io"):
        zoo_runtime.load(bundle)


def test_lone_onnx_loads_from_metadata(lenet):
    lone = zoo_runtime.load(lenet / schema.MODEL_FILE, device="cpu")
    full = zoo_runtime.load(lenet, device="cpu")
    assert lone.task == full.task and lone.labels == full.labels and lone.name == full.name
    x = np.random.default_rng(2).random((2, *full.image_spec.chw), dtype=np.float32)
    assert lone.classify(x) == full.classify(x)
    import onnx

    props = {p.key: p.value for p in onnx.load(str(lenet / schema.MODEL_FILE)).metadata_props}
    assert onnx_metadata_props((lenet / schema.MODEL_FILE).read_bytes()) == props


def test_lone_onnx_without_metadata_or_of_generator_refused(tmp_path, text_bundle):
    import onnx

    with pytest.raises(BundleError, match="cannot run alone"):
        zoo_runtime.load(text_bundle / schema.STEP_FILE)
    plain = tmp_path / "plain.onnx"
    model = onnx.load(str(text_bundle / schema.STEP_FILE))
    del model.metadata_props[:]
    onnx.save(model, str(plain))
    with pytest.raises(BundleError, match="carries no Model Zoo metadata"):
        zoo_runtime.load(plain)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff" * 64)
    with pytest.raises(BundleError, match=r"junk\.onnx: not a readable ONNX model"):
        zoo_runtime.load(junk)


def test_find_bundles_lists_complete_ones_sorted(lenet, tmp_path):
    root = tmp_path / "runs"
    copy_bundle(lenet, root / "b_run", "export")
    copy_bundle(lenet, root / "a_run", "export")
    failed = copy_bundle(lenet, root / "a_run", "export.failed")
    edit_manifest(failed, complete=False)
    copy_bundle(lenet, root / "a_run", "export.tmp-1234")
    (root / "c_run").mkdir()
    (root / "c_run" / schema.MANIFEST_FILE).write_text("not json")
    assert zoo_runtime.find_bundles(root) == [root / "a_run" / "export", root / "b_run" / "export"]
    assert zoo_runtime.find_bundles(tmp_path / "absent") == []


# ----------------------------------------------------------------------------- providers


def test_cuda_listed_but_not_obtained_falls_back_and_says_why(lenet, monkeypatch):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a real CUDA provider is listed here; the fallback is simulated on CPU-only builds")
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    model = zoo_runtime.load(lenet)
    assert model.provider == "CPUExecutionProvider"
    assert model.provider_note and "CUDAExecutionProvider" in model.provider_note and "CPU" in model.provider_note
    assert model.classify(np.zeros(model.image_spec.chw[1:], dtype=np.float32))


def test_force_cpu_threads_and_bad_options(lenet):
    model = zoo_runtime.load(lenet, device="cpu", threads=1)
    assert model.provider == "CPUExecutionProvider" and model.provider_note is None
    with pytest.raises(BundleError, match="threads"):
        zoo_runtime.load(lenet, threads=0)
    with pytest.raises(BundleError, match="device 'tpu'"):
        zoo_runtime.load(lenet, device="tpu")


def test_cuda_asked_on_cpu_build_reports_fallback(lenet):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA provider present")
    model = zoo_runtime.load(lenet, device="cuda")
    assert model.provider == "CPUExecutionProvider" and "no CUDA provider" in model.provider_note


# ----------------------------------------------------------------------------- text and DNA generation


def torch_greedy(net: torch.nn.Module, ids: list[int], new: int) -> list[int]:
    """The torch reference of docs/BUNDLE.md "Generation loop"."""
    from zoo_train.tasks.text_generation import generate

    return generate(net, ids, new, temperature=0)


def _prompt(model) -> str:
    if model.is_dna:
        return "GATTACA"
    letters = [t for t in model.vocab if t.isalpha()]
    return "".join(letters[i % len(letters)] for i in range(5)) if letters else "".join(model.vocab[:3])


@pytest.mark.parametrize("name", models(schema.TASK_TEXT_GENERATION))
def test_greedy_generation_equals_torch(tiny_bundle, name):
    bundle = tiny_bundle(name)
    model = zoo_runtime.load(bundle, device="cpu")
    assert isinstance(model, zoo_runtime.TextGenerator)
    net, _payload = torch_model(bundle)
    prompt = _prompt(model)
    ctx = model.max_context
    new = (ctx + 8) if ctx else 40  # past the context window: exercises the reset of step 3
    pieces = list(model.generate(prompt, max_new_tokens=new, temperature=0))
    assert len(pieces) == new and all(isinstance(p, str) for p in pieces)
    expected = torch_greedy(net, model.encode(prompt), new)
    assert "".join(pieces) == model.decode(expected)
    assert model.is_dna == (sorted(model.vocab) == ["A", "C", "G", "T"])


def test_reset_keep_from_the_manifest(tiny_bundle, tmp_path):
    """A kv-cache bundle whose generation block sets reset_keep feeds that many ids after a reset."""
    names = [
        n
        for n in models(schema.TASK_TEXT_GENERATION)
        if (json.loads((tiny_bundle(n) / schema.MANIFEST_FILE).read_text())["generation"] or {}).get("max_context")
    ]
    if not names:
        pytest.skip("no kv-cache text generator in the registry")
    bundle = copy_bundle(tiny_bundle(names[0]), tmp_path)
    manifest = json.loads((bundle / schema.MANIFEST_FILE).read_text())
    ctx = manifest["generation"]["max_context"]
    keep = max(1, ctx // 2)
    manifest["generation"]["reset_keep"] = keep
    write_manifest(bundle, manifest)  # into the graphs' metadata too: the reader refuses a manifest they contradict
    model = zoo_runtime.load(bundle, device="cpu")
    net, _ = torch_model(bundle)
    ids, new = model.encode(_prompt(model)), 2 * ctx + 5
    got = model.encode("".join(model.generate(_prompt(model), max_new_tokens=new, temperature=0)))

    # torch: docs/BUNDLE.md loop step 3 with reset_keep, on the model's own step
    seq, state, feed, cached, expected, resets = list(ids), net.initial_state(1, "cpu"), ids[-ctx:], 0, [], 0
    with torch.no_grad():
        for _ in range(new):
            logits, *state = net.step(torch.tensor([feed]), *state)
            cached += len(feed)
            nxt = int(logits[0, -1].argmax())
            seq.append(nxt)
            expected.append(nxt)
            if cached + 1 > ctx:
                state, feed, cached, resets = net.initial_state(1, "cpu"), seq[-keep:], 0, resets + 1
            else:
                feed = [nxt]
    assert resets >= 2
    assert got == expected


def test_same_seed_same_text(text_bundle):
    model = zoo_runtime.load(text_bundle, device="cpu")
    prompt = _prompt(model)
    a = "".join(model.generate(prompt, max_new_tokens=30, temperature=1.0, seed=7))
    b = "".join(model.generate(prompt, max_new_tokens=30, temperature=1.0, seed=7))
    c = "".join(model.generate(prompt, max_new_tokens=30, temperature=1.0, seed=8))
    assert a == b and len(a) > 0
    assert a != c
    greedy = "".join(model.generate(prompt, max_new_tokens=20, temperature=0))
    assert "".join(model.generate(prompt, max_new_tokens=20, temperature=1.0, top_k=1, seed=3)) == greedy


def test_streaming_stops_midway(text_bundle):
    model = zoo_runtime.load(text_bundle, device="cpu")
    pieces = model.generate(_prompt(model), max_new_tokens=50, temperature=0)
    assert model.session_runs == 0  # nothing runs until a piece is taken
    first = next(pieces)
    runs_first = model.session_runs
    taken = [first]
    for piece in pieces:
        taken.append(piece)
        if len(taken) == 4:
            break
    assert model.session_runs == runs_first + 3  # one step per further token, none ahead
    pieces.close()
    with pytest.raises(StopIteration):
        next(pieces)
    assert model.session_runs == runs_first + 3


def test_stop_strings(text_bundle):
    model = zoo_runtime.load(text_bundle, device="cpu")
    prompt = _prompt(model)
    full = "".join(model.generate(prompt, max_new_tokens=40, temperature=0))
    stop = full[10:12]
    got = list(model.generate(prompt, max_new_tokens=40, temperature=0, stop=stop))
    assert "".join(got) == full[: full.find(stop)]
    assert (
        "".join(model.generate(prompt, max_new_tokens=40, temperature=0, stop=["\x00never", full[5]]))
        == full[: full.find(full[5])]
    )
    assert "".join(model.generate(prompt, max_new_tokens=40, temperature=0, stop="\x00never")) == full


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"top_k": -1}, r"top_k: -1 must be 0 \(off\) or positive"),
        ({"top_p": 0.0}, r"top_p: 0\.0 must be above 0 and at most 1"),
        ({"top_p": 1.5}, r"top_p: 1\.5 must be above 0"),
        ({"top_p": float("nan")}, r"top_p: nan must be above 0"),
    ],
)
def test_out_of_range_sampling_settings_refused(text_bundle, setting, message):
    model = zoo_runtime.load(text_bundle, device="cpu")
    with pytest.raises(BundleError, match=message):
        model.generate(_prompt(model), max_new_tokens=3, **setting)
    assert len("".join(model.generate(_prompt(model), max_new_tokens=3, top_k=0, top_p=1.0))) == 3


def test_unknown_prompt_character_policy(text_bundle, tmp_path):
    model = zoo_runtime.load(text_bundle, device="cpu")
    bad = next(ch for ch in "\u2603~#@\x07" if ch not in model.vocab and ch.upper() not in model.vocab)
    prompt = _prompt(model)
    if model.unknown_policy == schema.UNKNOWN_ERROR:
        with pytest.raises(BundleError, match=rf"{bad!r} at position 2 is not in"):
            model.generate(prompt[:2] + bad + prompt[2:])  # raised at the call, before any piece
    bundle = copy_bundle(text_bundle, tmp_path)
    manifest = json.loads((bundle / schema.MANIFEST_FILE).read_text())
    manifest["vocab"]["unknown"] = schema.UNKNOWN_SKIP
    write_manifest(bundle, manifest)  # into the graphs' metadata too: the reader refuses a manifest they contradict
    skipping = zoo_runtime.load(bundle, device="cpu")
    a = "".join(skipping.generate(prompt[:2] + bad + prompt[2:], max_new_tokens=10, temperature=0))
    assert skipping.last_skipped == [(2, bad)]
    assert a == "".join(model.generate(prompt, max_new_tokens=10, temperature=0))


def test_dna_prompt_is_upper_cased(tiny_bundle):
    dna = [n for n in models(schema.TASK_TEXT_GENERATION) if "dna" in n]
    if not dna:
        pytest.skip("no DNA model in the registry yet")
    model = zoo_runtime.load(tiny_bundle(dna[0]), device="cpu")
    assert model.is_dna and model.encode("gtta") == [2, 3, 3, 0]
    assert "".join(model.generate("gatt", max_new_tokens=12, temperature=0)) == "".join(
        model.generate("GATT", max_new_tokens=12, temperature=0)
    )
    assert set("".join(model.generate("GATT", max_new_tokens=30, seed=1))) <= set("ACGT")


# ----------------------------------------------------------------------------- GAN


@pytest.mark.parametrize("name", models(schema.TASK_IMAGE_GENERATION))
def test_gan_equals_torch(tiny_bundle, name):
    bundle = tiny_bundle(name)
    model = zoo_runtime.load(bundle, device="cpu")
    assert isinstance(model, zoo_runtime.ImageGenerator)
    net, _ = torch_model(bundle)
    z = model.sample_latents(3, seed=5)
    assert z.shape == (3, model.latent_dim) and z.dtype == np.float32
    np.testing.assert_array_equal(z, model.sample_latents(3, seed=5))
    with torch.no_grad():
        expected = net.generate(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(model.decode_float(z), expected, atol=ATOL)
    images = model.sample(3, seed=5)
    _n, c, h, w = expected.shape
    assert images.dtype == np.uint8 and images.shape == (3, h, w, c)
    assert np.abs(images.astype(int) - np.round(np.clip(expected, 0, 1) * 255).transpose(0, 2, 3, 1)).max() <= 1
    np.testing.assert_array_equal(images, model.sample(3, seed=5))
    path = model.interpolate(z[0], z[1], steps=5)
    assert path.shape == (5, h, w, c) and path.dtype == np.uint8
    np.testing.assert_array_equal(path[0], images[0])
    np.testing.assert_array_equal(path[-1], images[1])
    with pytest.raises(BundleError, match="wrong input shape"):
        model.decode(np.zeros((2, model.latent_dim + 1), dtype=np.float32))


# ----------------------------------------------------------------------------- sequences


@pytest.mark.parametrize("name", models(schema.TASK_SEQUENCE_CLASSIFICATION))
def test_classify_sequence_equals_torch(tiny_bundle, name):
    bundle = tiny_bundle(name)
    model = zoo_runtime.load(bundle, device="cpu")
    assert isinstance(model, zoo_runtime.SequenceClassifier)
    net, _ = torch_model(bundle)
    vocab = model.vocab_size()
    for length in (5, 13):
        tokens = np.random.default_rng(length).integers(1, vocab, length)
        with torch.no_grad():
            expected = torch.softmax(net(torch.from_numpy(tokens)[None]), dim=-1)[0].numpy()
        preds = model.classify_sequence(tokens.tolist())
        assert preds[0].index == int(expected.argmax())
        assert [p.probability for p in preds] == sorted((p.probability for p in preds), reverse=True)
        np.testing.assert_allclose([p.probability for p in sorted(preds, key=lambda p: p.index)], expected, atol=ATOL)
    with pytest.raises(BundleError, match=rf"token id {vocab} is outside the vocabulary"):
        model.classify_sequence([1, vocab])
    with pytest.raises(BundleError, match="1-D sequence"):
        model.classify_sequence(np.zeros((2, 3), dtype=np.int64))


def torch_translate(net: torch.nn.Module, src: list[int], eos: int | None, max_new: int) -> list[int]:
    """zoo_train's greedy decoding, cut before eos (translate returns the ids between bos and eos)."""
    from zoo_train.tasks.seq2seq import greedy_decode

    out = [int(t) for t in greedy_decode(net, torch.tensor([src]), max_new)[0]]
    return out[: out.index(eos)] if eos in out else out


@pytest.mark.parametrize("name", models(schema.TASK_SEQ2SEQ))
def test_translate_equals_torch(tiny_bundle, name):
    bundle = tiny_bundle(name)
    model = zoo_runtime.load(bundle, device="cpu")
    assert isinstance(model, zoo_runtime.Translator)
    net, _ = torch_model(bundle)
    specials = {v for v in (model.bos_id, model.eos_id, model.pad_id) if v is not None}
    ordinary = [i for i in range(model.vocab_size()) if i not in specials]
    for length in (4, 9):
        src = [ordinary[i % len(ordinary)] for i in np.random.default_rng(length).integers(0, 10**6, length)]
        got = model.translate(src)  # default length: the positions the model knows
        assert got == torch_translate(net, src, model.eos_id, model.max_len)
        assert model.translate(src, max_len=3) == torch_translate(net, src, model.eos_id, 3)
    with pytest.raises(BundleError, match="outside the vocabulary"):
        model.translate([model.vocab_size() + 3])
    if model.max_source:
        with pytest.raises(BundleError, match=f"takes at most {model.max_source}"):
            model.translate([ordinary[0]] * (model.max_source + 1))


# ----------------------------------------------------------------------------- sampling


def test_sampling_filters():
    logits = np.log(np.array([0.5, 0.2, 0.15, 0.1, 0.05]))
    kept = np.isfinite(filter_logits(logits, 1.0, 2, None))
    assert kept.tolist() == [True, True, False, False, False]
    kept = np.isfinite(filter_logits(logits, 1.0, None, 0.8))  # 0.5+0.2 < 0.8 <= 0.5+0.2+0.15
    assert kept.tolist() == [True, True, True, False, False]
    kept = np.isfinite(filter_logits(logits, 1.0, None, 0.01))
    assert kept.tolist() == [True, False, False, False, False]
    assert np.allclose(softmax(filter_logits(logits, 1.0, None, None)), [0.5, 0.2, 0.15, 0.1, 0.05])
    assert pick_next(logits, np.random.default_rng(0), temperature=0) == 0
    rng = np.random.default_rng(0)
    draws = np.bincount([pick_next(logits, rng, 1.0) for _ in range(4000)], minlength=5) / 4000
    assert np.allclose(draws, [0.5, 0.2, 0.15, 0.1, 0.05], atol=0.03)
    a = [pick_next(logits, np.random.default_rng(9), 0.7, 3, 0.9) for _ in range(3)]
    assert len(set(a)) == 1


# ----------------------------------------------------------------------------- CLI


def test_cli_image_json_and_exit_codes(lenet, tmp_path, capsys):
    from PIL import Image

    image = tmp_path / "x.png"
    Image.new("RGB", (20, 24), (200, 10, 10)).save(image)
    assert zoo_run([str(lenet), "--image", str(image), "--top-k", "2", "--json", "--cpu", "--threads", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == schema.TASK_IMAGE_CLASSIFICATION and len(out["results"][0]["predictions"]) == 2
    assert out["provider"] == "CPUExecutionProvider"
    assert zoo_run([str(lenet)]) == 0 and "lenet5" in capsys.readouterr().out
    fake = tmp_path / "fake.jpg"
    fake.write_text("hello")
    assert zoo_run([str(lenet), "--image", str(fake)]) == 2
    assert "fake.jpg: not an image" in capsys.readouterr().err
    assert zoo_run([str(lenet), "--prompt", "hi"]) == 2
    assert zoo_run([str(tmp_path / "nothing")]) == 2
    bad = copy_bundle(lenet, tmp_path)
    edit_manifest(bad, schema_version=99)
    assert zoo_run([str(bad), "--image", str(image)]) == 1
    assert "newer" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        zoo_run([str(lenet), "--image", str(image), "--prompt", "x"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        zoo_run([str(lenet), "--image", str(image), "--top-k", "0"])
    assert info.value.code == 2 and "--top-k must be at least 1" in capsys.readouterr().err
    for option, value in (("--threads", "0"), ("--threads", "-3"), ("--sample", "0")):
        with pytest.raises(SystemExit) as info:
            zoo_run([str(lenet), option, value, "--out", str(tmp_path / "samples")])
        assert info.value.code == 2 and f"argument {option}: expected a positive integer" in capsys.readouterr().err


def test_cli_prompt_streams(text_bundle, capsys):
    model = zoo_runtime.load(text_bundle, device="cpu")
    prompt = _prompt(model)
    expected = "".join(model.generate(prompt, max_new_tokens=15, temperature=0))
    assert zoo_run([str(text_bundle), "--prompt", prompt, "--max-new-tokens", "15", "--temperature", "0"]) == 0
    assert capsys.readouterr().out == prompt + expected + "\n"
    assert zoo_run([str(text_bundle), "--prompt", prompt, "--max-new-tokens", "5", "--seed", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pieces"] == 5
    for option, value, message in (
        ("--top-p", "1.5", "expected a number above 0 and at most 1 (1 = off), got 1.5"),
        ("--top-p", "0", "expected a number above 0 and at most 1 (1 = off), got 0"),
        ("--max-new-tokens", "-5", "expected 0 or a positive integer, got -5"),
        ("--temperature", "-1", "expected 0 or a positive finite number, got -1"),
        ("--temperature", "nan", "expected 0 or a positive finite number, got nan"),
    ):
        with pytest.raises(SystemExit) as info:
            zoo_run([str(text_bundle), "--prompt", prompt, option, value])
        assert info.value.code == 2 and f"argument {option}: {message}" in capsys.readouterr().err


def test_cli_sample_and_tokens(tiny_bundle, tmp_path, capsys):
    gans = models(schema.TASK_IMAGE_GENERATION)
    seqs = models(schema.TASK_SEQUENCE_CLASSIFICATION)
    if not gans or not seqs:
        pytest.skip("GAN or sequence classifier not in the registry yet")
    from PIL import Image

    assert zoo_run([str(tiny_bundle(gans[0])), "--sample", "5", "--seed", "3", "--out", str(tmp_path / "s")]) == 0
    files = sorted((tmp_path / "s").glob("*.png"))
    assert len(files) == 6
    assert Image.open(tmp_path / "s" / "grid.png").size[0] > Image.open(tmp_path / "s" / "sample_000.png").size[0]
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    for out, message in [(notes, "a file, not a folder"), (notes / "s", "cannot create the folder")]:
        assert zoo_run([str(tiny_bundle(gans[0])), "--sample", "2", "--out", str(out)]) == 2
        assert f"--out {out}: {message} for the sample PNGs" in capsys.readouterr().err
    assert notes.read_text() == "keep me"
    assert zoo_run([str(tiny_bundle(seqs[0])), "--tokens", "1 2 3 1", "--json"]) == 0
    capsys.readouterr()
    assert zoo_run([str(tiny_bundle(seqs[0])), "--tokens", "1 x"]) == 2
