"""Looking inside a bundle: occlusion saliency of image classifiers.

The saliency checks run on a classifier whose answer is known: its graph (written here with
onnx.helper into a copy of a tiny bundle) scores class 0 by the pixels of one square alone, so
occluding that square, and nothing else, lowers class 0.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from bundle_tools import read_manifest_json, write_manifest
from onnx import TensorProto, helper, numpy_helper

import zoo_runtime
from zoo_runtime import BundleError, schema
from zoo_runtime.cli import main as zoo_run
from zoo_runtime.tasks.image_classification import ImageClassifier
from zoo_runtime.tasks.seq2seq import Translator
from zoo_runtime.tasks.sequence_classification import SequenceClassifier
from zoo_runtime.tasks.text_generation import TextGenerator
from zoo_train.checkpoint import build_from_checkpoint, load_checkpoint
from zoo_train.registry import list_models

REGION = (slice(16, 24), slice(4, 12))  # rows, columns of the square class 0 looks at


def checkpoint_of(bundle: Path) -> tuple[Path, dict]:
    """The checkpoint a tiny bundle was exported from, and its payload."""
    path = Path(read_manifest_json(bundle)["checkpoint"]["path"])
    return path, load_checkpoint(path)


def load_classifier(bundle: Path) -> ImageClassifier:
    model = zoo_runtime.load(bundle, device="cpu")
    assert isinstance(model, ImageClassifier)
    return model


@pytest.fixture(scope="module")
def lenet(tiny_bundle) -> Path:
    return tiny_bundle("lenet5")


def region_graph(classes: int, size: int) -> onnx.ModelProto:
    """``logits[:, 0] = 0.05 * sum(image[REGION])``, every other logit 0: only REGION speaks for class 0."""
    weights = np.zeros((size * size, classes), dtype=np.float32)
    mask = np.zeros((size, size), dtype=np.float32)
    mask[REGION] = 0.05
    weights[:, 0] = mask.reshape(-1)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["image"], ["flat"], axis=1), helper.make_node("MatMul", ["flat", "weights"], ["logits"])],
        "region",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        [numpy_helper.from_array(weights, "weights")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.fixture(scope="module")
def region_classifier(lenet: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny lenet5 bundle whose model graph is :func:`region_graph`."""
    bundle = Path(shutil.copytree(lenet, tmp_path_factory.mktemp("region") / "bundle"))
    manifest = read_manifest_json(bundle)
    classes = len(manifest["labels"])
    size = manifest["preprocessing"]["image"]["height"]
    onnx.save_model(region_graph(classes, size), str(bundle / schema.MODEL_FILE))
    write_manifest(bundle, manifest)
    return bundle


def test_saliency_peaks_where_the_class_evidence_is(region_classifier: Path):
    model = load_classifier(region_classifier)
    image = np.zeros((28, 28), dtype=np.float32)
    image[REGION] = 1.0
    image[2:8, 18:26] = 1.0  # bright, but the model never looks here
    saliency = model.saliency(image, 0, patch=4, stride=2, baseline=0.0)
    assert saliency.shape == (28, 28) and saliency.dtype == np.float32
    peak = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
    assert REGION[0].start <= peak[0] < REGION[0].stop and REGION[1].start <= peak[1] < REGION[1].stop
    assert saliency[REGION].min() > 0.01
    # Squares that never touch REGION change nothing: the bright distractor has no saliency.
    assert np.abs(saliency[:10, 14:]).max() < 1e-6
    # Another class gains where class 0 loses.
    assert model.saliency(image, 1, patch=4, stride=2, baseline=0.0)[REGION].max() < 0


def test_saliency_equals_a_one_window_at_a_time_reference(lenet: Path):
    """Batched occlusion gives what occluding one square per forward pass gives, pixel by pixel."""
    model = load_classifier(lenet)
    rng = np.random.default_rng(0)
    image = rng.random((28, 28), dtype=np.float32)
    patch, stride, fill = 7, 7, 0.25
    got = model.saliency(image, 3, patch=patch, stride=stride, baseline=fill)

    def probability_of_class_3(pixels: np.ndarray) -> float:
        return next(p.probability for p in model.classify(pixels, top_k=10)[0] if p.index == 3)

    base = probability_of_class_3(image)
    want = np.zeros((28, 28), dtype=np.float32)
    for top in range(0, 28, stride):
        for left in range(0, 28, stride):
            occluded = image.copy()
            occluded[top : top + patch, left : left + patch] = fill
            want[top : top + patch, left : left + patch] = base - probability_of_class_3(occluded)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_saliency_defaults_cover_every_pixel_and_use_the_training_mean(lenet: Path):
    model = load_classifier(lenet)
    image = np.random.default_rng(1).random((28, 28), dtype=np.float32)
    mean = read_manifest_json(lenet)["preprocessing"]["image"]["mean"]
    np.testing.assert_allclose(model.saliency(image, 0), model.saliency(image, 0, patch=4, stride=2, baseline=mean))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"class_index": 10}, "class_index 10 is not a class"),
        ({"class_index": 0, "patch": 0}, "patch 0: expected a positive integer"),
        ({"class_index": 0, "patch": 29}, "patch 29 is larger than the 28x28 image"),
        ({"class_index": 0, "stride": -1}, "stride -1: expected a positive integer"),
        ({"class_index": 0, "baseline": [0.1, 0.2]}, "baseline [0.1, 0.2]: expected one number or one per channel (1)"),
    ],
)
def test_saliency_refuses_bad_arguments(lenet: Path, kwargs, message):
    model = load_classifier(lenet)
    with pytest.raises(BundleError, match=re.escape(message)):
        model.saliency(np.zeros((28, 28), dtype=np.float32), **kwargs)


def test_saliency_takes_one_image(lenet: Path):
    model = load_classifier(lenet)
    with pytest.raises(BundleError, match="saliency: give one image, got 2"):
        model.saliency(np.zeros((2, 1, 28, 28), dtype=np.float32), 0)


# ----------------------------------------------------------------------------- the inspect graph

# The hooks reference knows LeNet's body and ResNet's blocks; lenet5 alone keeps this file fast. test_export checks
# every model's inspect graph against torch at three sizes (parity), resnet-cifar's included.
INSPECTED = [name for name in ("lenet5",) if name in list_models(schema.TASK_IMAGE_CLASSIFICATION)]


def hooked_stages(model: Any, x: torch.Tensor) -> list[torch.Tensor]:
    """The reference, by forward hooks: each activation module of ``body`` (or the stem and each residual block),
    then ``model.features(x)``; independent of the model's own ``inspect_stages``."""
    targets = [model.stem, *model.stages] if hasattr(model, "stem") else [m for m in model.body if "ReLU" in type(m).__name__]
    captured: list[torch.Tensor] = []
    handles = [t.register_forward_hook(lambda _m, _i, out: captured.append(out.detach().clone())) for t in targets]
    try:
        with torch.no_grad():
            features = model.features(x)
    finally:
        for handle in handles:
            handle.remove()
    return [*captured, features]


@pytest.mark.parametrize("name", INSPECTED)
def test_inspect_equals_torch_hooks(tiny_bundle, name):
    bundle = tiny_bundle(name)
    model = load_classifier(bundle)
    manifest = read_manifest_json(bundle)
    layers = manifest["graphs"][schema.ROLE_INSPECT]["outputs"]
    assert [layer["name"] for layer in model.inspect_layers] == [layer["name"] for layer in layers]
    assert layers[-1]["name"] == "features" and len(layers) >= 3
    assert all(c["passed"] for c in manifest["parity"]["checks"] if c.get("graph") == schema.ROLE_INSPECT)
    assert {c["shape"]["batch"] for c in manifest["parity"]["checks"] if c.get("graph") == schema.ROLE_INSPECT} >= {1, 3, 7}

    c, h, w = model.image_spec.chw
    images = np.random.default_rng(2).integers(0, 256, (5, h, w, c), dtype=np.uint8)
    got = model.inspect(list(images))
    path, payload = checkpoint_of(bundle)
    torch_model = build_from_checkpoint(payload, path)
    pre = manifest["preprocessing"]["image"]
    x = torch.from_numpy(model.preprocess(list(images)))
    x = (x - torch.tensor(pre["mean"]).view(1, -1, 1, 1)) / torch.tensor(pre["std"]).view(1, -1, 1, 1)
    want = hooked_stages(torch_model, x)
    assert list(got) == [layer["name"] for layer in layers]
    for (layer_name, value), reference, layer in zip(got.items(), want, layers, strict=True):
        assert value.shape == (5, *layer["shape"][1:]), layer_name
        np.testing.assert_allclose(value, reference.numpy(), atol=1e-4, rtol=1e-3, err_msg=layer_name)


def test_a_bundle_without_an_inspect_graph_still_works(lenet: Path, tmp_path: Path):
    bundle = Path(shutil.copytree(lenet, tmp_path / "bundle"))
    manifest = read_manifest_json(bundle)
    entry = manifest["graphs"].pop(schema.ROLE_INSPECT)
    for file in (entry["file"], entry["torchscript"]):
        del manifest["files"][file]
        (bundle / file).unlink()
    write_manifest(bundle, manifest)
    model = load_classifier(bundle)
    image = np.zeros((28, 28), dtype=np.uint8)
    assert model.inspect_layers == [] and len(model.classify(image, top_k=3)[0]) == 3
    assert model.saliency(image, 0, patch=14, stride=14).shape == (28, 28)
    with pytest.raises(BundleError, match="this bundle has no inspect graph"):
        model.inspect(image)


# ----------------------------------------------------------------------------- text generators


def load_generator(bundle: Path) -> TextGenerator:
    model = zoo_runtime.load(bundle, device="cpu")
    assert isinstance(model, TextGenerator)
    return model


def test_gpt_attention_equals_what_torch_weighs_the_values_by(tiny_bundle):
    bundle = tiny_bundle("char-gpt")
    model = load_generator(bundle)
    manifest = read_manifest_json(bundle)
    assert [layer["name"] for layer in model.inspect_layers] == ["attention"]
    assert manifest["graphs"][schema.ROLE_INSPECT]["outputs"][0]["shape"][1:] == ["batch", 2, "time", "time"]
    checks = [c for c in manifest["parity"]["checks"] if c.get("graph") == schema.ROLE_INSPECT]
    assert checks and all(c["passed"] for c in checks) and len({c["shape"]["time"] for c in checks}) >= 3

    prompt = "".join(model.vocab[i % len(model.vocab)] for i in range(3, 15))
    attention = model.inspect(prompt)["attention"]
    layers, heads, t = manifest["graphs"][schema.ROLE_INSPECT]["outputs"][0]["shape"][0], 2, 12
    assert attention.shape == (layers, 1, heads, t, t)
    np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(attention, k=1) == 0)  # causal: no position attends to a later one

    # Reference: the values each torch attention layer saw and what its scaled_dot_product_attention made of them.
    path, payload = checkpoint_of(bundle)
    torch_model = build_from_checkpoint(payload, path)
    values = []  # the values each attention layer weighed
    mixed = []  # what its scaled_dot_product_attention made of them
    hooks = []
    for block in torch_model.blocks:
        hooks.append(block.attn.register_forward_hook(lambda _m, args, _out: values.append(args[2])))
        hooks.append(block.attn.proj.register_forward_pre_hook(lambda _m, args: mixed.append(args[0])))
    with torch.no_grad():
        torch_model(torch.tensor([model.encode(prompt)]))
    for hook in hooks:
        hook.remove()
    for layer in range(layers):
        weighed = torch.from_numpy(attention[layer]) @ values[layer]  # [1, heads, T, head_dim]
        np.testing.assert_allclose(weighed.transpose(1, 2).flatten(2).numpy(), mixed[layer].numpy(), atol=1e-5)

    with pytest.raises(BundleError, match="more than the 16 positions"):
        model.inspect(prompt * 2)


@pytest.mark.parametrize("name", [n for n in ("char-lstm", "dna-gru") if n in list_models(schema.TASK_TEXT_GENERATION)])
def test_recurrent_hidden_states_over_time_equal_torch(tiny_bundle, name):
    bundle = tiny_bundle(name)
    model = load_generator(bundle)
    names = [spec["input"] for spec in model.manifest["generation"]["state"]]
    assert [layer["name"] for layer in model.inspect_layers][: len(names)] == names
    prompt = "".join(model.vocab[i % len(model.vocab)] for i in range(1, 10))
    states = model.inspect(prompt)
    hidden = states["h"]
    layers, hidden_size = hidden.shape[0], hidden.shape[-1]
    assert hidden.shape == (layers, 1, 9, hidden_size)

    path, payload = checkpoint_of(bundle)
    torch_model = build_from_checkpoint(payload, path)
    tokens = torch.tensor([model.encode(prompt)])
    with torch.no_grad():
        out, final = torch_model.rnn(torch_model.embedding(tokens), torch_model._as_rnn_state(torch_model.initial_state(1)))
    np.testing.assert_allclose(hidden[-1, 0], out[0].numpy(), atol=1e-5)  # the top layer at every step
    final_states = (final,) if isinstance(final, torch.Tensor) else tuple(final)
    for state_name, value in zip(names, final_states, strict=True):
        np.testing.assert_allclose(states[state_name][:, :, -1], value.numpy(), atol=1e-5)


@pytest.mark.parametrize("name", [n for n in ("dna-lstm", "char-lstm") if n in list_models(schema.TASK_TEXT_GENERATION)])
def test_lstm_gates_rebuild_its_cell_and_hidden_states(tiny_bundle, name):
    """The LSTM's gates, step by step: c_t = forget * c_(t-1) + input * cell and h_t = output * tanh(c_t); the
    from-scratch cells' own, or recomputed from torch's nn.LSTM weights (char-lstm)."""
    bundle = tiny_bundle(name)
    model = load_generator(bundle)
    manifest = read_manifest_json(bundle)
    assert manifest["graphs"][schema.ROLE_INSPECT]["inputs"][0]["shape"] == ["batch", 1]  # one token a step
    assert all(c["passed"] for c in manifest["parity"]["checks"] if c.get("graph") == schema.ROLE_INSPECT)
    assert [layer["name"] for layer in model.inspect_layers] == ["h", "c", "input", "forget", "cell", "output"]
    inside = model.inspect("".join(model.vocab[i % len(model.vocab)] for i in range(1, 11)))
    h, c = inside["h"][:, 0], inside["c"][:, 0]
    i, f, g, o = (inside[name][:, 0] for name in ("input", "forget", "cell", "output"))
    previous_c = np.concatenate([np.zeros_like(c[:, :1]), c[:, :-1]], axis=1)
    np.testing.assert_allclose(c, f * previous_c + i * g, atol=1e-5)
    np.testing.assert_allclose(h, o * np.tanh(c), atol=1e-5)


def test_scratch_gru_gates_rebuild_its_hidden_states(tiny_bundle):
    """The gates the inspect graph gives, step by step, make the next state by the GRU's own rule:
    h_t = (1 - update) * candidate + update * h_(t-1)."""
    bundle = tiny_bundle("dna-gru")
    model = load_generator(bundle)
    manifest = read_manifest_json(bundle)
    assert [t["name"] for t in manifest["graphs"][schema.ROLE_INSPECT]["inputs"]] == ["tokens", "h"]  # step-shaped
    assert [layer["name"] for layer in model.inspect_layers] == ["h", "reset", "update", "candidate"]
    assert all(c["passed"] for c in manifest["parity"]["checks"] if c.get("graph") == schema.ROLE_INSPECT)
    inside = model.inspect("GATTACAGGC")
    h, z, n = inside["h"][:, 0], inside["update"][:, 0], inside["candidate"][:, 0]  # [layers, T, H]
    assert h.shape == z.shape == n.shape and h.shape[1] == 10
    previous = np.concatenate([np.zeros_like(h[:, :1]), h[:, :-1]], axis=1)
    np.testing.assert_allclose(h, (1 - z) * n + z * previous, atol=1e-5)
    assert np.all((inside["reset"] >= 0) & (inside["reset"] <= 1) & (z >= 0) & (z <= 1))


# ----------------------------------------------------------------------------- sequence classifiers


@pytest.mark.parametrize(
    "name", [n for n in ("lstm-classifier", "gru-classifier") if n in list_models(schema.TASK_SEQUENCE_CLASSIFICATION)]
)
def test_sequence_classifier_hidden_states_equal_torch_and_its_gates_rebuild_them(tiny_bundle, name):
    bundle = tiny_bundle(name)
    model = zoo_runtime.load(bundle, device="cpu")
    assert isinstance(model, SequenceClassifier)
    manifest = read_manifest_json(bundle)
    lstm = name.startswith("lstm")
    gates = ["input", "forget", "cell", "output"] if lstm else ["reset", "update", "candidate"]
    assert [layer["name"] for layer in model.inspect_layers] == ["h", *gates]
    checks = [c for c in manifest["parity"]["checks"] if c.get("graph") == schema.ROLE_INSPECT]
    assert checks and all(c["passed"] for c in checks) and len({c["shape"]["time"] for c in checks}) >= 3

    tokens = [1, 5, 2, 7, 3, 3, 6, 0, 4, 2, 1]
    inside = model.inspect(tokens)
    h = inside["h"]
    assert h.shape == (1, 1, len(tokens), h.shape[-1]) and all(inside[g].shape == h.shape for g in gates)

    # Reference: what torch's recurrent layer hands on (a forward hook), at every token.
    path, payload = checkpoint_of(bundle)
    torch_model = build_from_checkpoint(payload, path).eval()
    seen = []
    hook = torch_model.rnn.register_forward_hook(lambda _m, _args, out: seen.append(out[0]))
    with torch.no_grad():
        logits = torch_model(torch.tensor([tokens]))
    hook.remove()
    np.testing.assert_allclose(h[-1, 0], seen[0][0].numpy(), atol=1e-5)
    np.testing.assert_allclose(model.logits(tokens), logits[0].numpy(), atol=1e-5)

    # The gates make each state from the one before by the cell's own rule.
    h = h[0, 0]
    previous = np.concatenate([np.zeros_like(h[:1]), h[:-1]])
    if lstm:
        i, f, g, o = (inside[name][0, 0] for name in gates)
        c = np.zeros_like(h[0])
        for t in range(len(tokens)):
            c = f[t] * c + i[t] * g[t]
            np.testing.assert_allclose(h[t], o[t] * np.tanh(c), atol=1e-5)
    else:
        z, n = inside["update"][0, 0], inside["candidate"][0, 0]
        np.testing.assert_allclose(h, (1 - z) * n + z * previous, atol=1e-5)


# ----------------------------------------------------------------------------- seq2seq


def test_seq2seq_cross_attention_is_what_torch_reads_the_source_by(tiny_bundle):
    bundle = tiny_bundle("seq2seq-transformer")
    model = zoo_runtime.load(bundle, device="cpu")
    assert isinstance(model, Translator)
    manifest = read_manifest_json(bundle)
    assert [layer["name"] for layer in model.inspect_layers] == ["encoder_attention", "decoder_attention", "cross_attention"]
    assert all(c["passed"] for c in manifest["parity"]["checks"] if c.get("graph") == schema.ROLE_INSPECT)

    src = [3, 4, 5, 6, 7, 8]
    output = model.translate_ids(src)
    inside = model.inspect(src)
    cross = inside["cross_attention"]
    assert cross.shape[1:] == (1, 2, len(output) + 1, len(src))  # rows: bos + output, columns: the source
    assert inside["encoder_attention"].shape[-2:] == (len(src), len(src))
    np.testing.assert_allclose(cross.sum(-1), 1.0, atol=1e-5)
    assert model.inspect(src, output=[])["cross_attention"].shape[-2:] == (1, len(src))  # bos alone: an empty output

    path, payload = checkpoint_of(bundle)
    torch_model = build_from_checkpoint(payload, path)
    values = []  # the memory's values each cross-attention weighed
    mixed = []  # and what its scaled_dot_product_attention made of them
    hooks = []
    for block in torch_model.decoder:
        hooks.append(block.cross.register_forward_hook(lambda _m, args, _out: values.append(args[2])))
        hooks.append(block.cross.proj.register_forward_pre_hook(lambda _m, args: mixed.append(args[0])))
    with torch.no_grad():
        torch_model(torch.tensor([src]), torch.tensor([[model.bos_id, *output]]))
    for hook in hooks:
        hook.remove()
    for layer in range(cross.shape[0]):
        weighed = torch.from_numpy(cross[layer]) @ values[layer]
        np.testing.assert_allclose(weighed.transpose(1, 2).flatten(2).numpy(), mixed[layer].numpy(), atol=1e-5)


# ----------------------------------------------------------------------------- describe() and zoo-run --inspect


@pytest.mark.parametrize("name", ["lenet5", "gru-classifier", "dna-gru"])
def test_describe_lists_what_inspect_returns(tiny_bundle, name):
    model = zoo_runtime.load(tiny_bundle(name), device="cpu")
    described = model.describe()
    assert described["inspect"] == model.inspect_layers and described["inspect"]
    assert all(set(layer) == {"name", "dtype", "shape"} for layer in described["inspect"])
    assert json.loads(json.dumps(described)) == described


def test_describe_of_a_bundle_without_an_inspect_graph_says_none(lenet: Path, tmp_path: Path):
    bundle = Path(shutil.copytree(lenet, tmp_path / "bundle"))
    manifest = read_manifest_json(bundle)
    entry = manifest["graphs"].pop(schema.ROLE_INSPECT)
    for file in (entry["file"], entry["torchscript"]):
        del manifest["files"][file]
        (bundle / file).unlink()
    write_manifest(bundle, manifest)
    assert zoo_runtime.load(bundle, device="cpu").describe()["inspect"] == []


def test_zoo_run_inspect_prints_and_saves_the_arrays(tiny_bundle, tmp_path, capsys):
    classifier = tiny_bundle("gru-classifier")
    model = zoo_runtime.load(classifier, device="cpu")
    want = model.inspect([1, 2, 3, 4])
    saved = tmp_path / "inside.npz"
    assert zoo_run([str(classifier), "--tokens", "1 2 3 4", "--inspect", "--inspect-out", str(saved)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"h: float32 {list(want['h'].shape)}  min ")
    assert f"saved {len(want)} arrays to {saved}" in out
    with np.load(saved) as got:
        assert list(got) == list(want)
        for name, value in want.items():
            np.testing.assert_array_equal(got[name], value)
    assert not list(tmp_path.glob(".*partial"))

    dna = tiny_bundle("dna-gru")
    assert zoo_run([str(dna), "--prompt", "GATTACA", "--inspect", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert list(payload["inspect"]) == ["h", "reset", "update", "candidate"]
    assert payload["inspect"]["h"]["shape"][2] == 7 and 0 <= payload["inspect"]["update"]["min"] <= 1


def test_zoo_run_inspect_refuses_what_it_cannot_do(tiny_bundle, lenet: Path, tmp_path, capsys):
    classifier = str(tiny_bundle("gru-classifier"))
    for argv, message in (
        ([classifier, "--inspect"], "--inspect needs an input to look inside"),
        ([classifier, "--tokens", "1 2", "--inspect-out", str(tmp_path / "a.npz")], "--inspect-out needs --inspect"),
        ([classifier, "--tokens", "1 2", "--inspect", "--inspect-out", str(tmp_path / "a.txt")], "must end in .npz"),
    ):
        with pytest.raises(SystemExit) as info:
            zoo_run(argv)
        assert info.value.code == 2 and message in capsys.readouterr().err
    missing = tmp_path / "no-such-folder" / "a.npz"
    assert zoo_run([classifier, "--tokens", "1 2", "--inspect", "--inspect-out", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--inspect-out {missing}: the folder" in err and not missing.parent.exists()
    assert zoo_run([classifier, "--tokens", "1 99", "--inspect"]) == 2
    assert "outside the vocabulary" in capsys.readouterr().err
    gan = list_models(schema.TASK_IMAGE_GENERATION)[0]
    with pytest.raises(SystemExit) as info:  # a GAN draws from noise: no input to look inside
        zoo_run([str(tiny_bundle(gan)), "--sample", "2", "--out", str(tmp_path / "s"), "--inspect"])
    assert info.value.code == 2 and "--inspect needs an input" in capsys.readouterr().err and not (tmp_path / "s").exists()
