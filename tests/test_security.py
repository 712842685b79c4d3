"""Hostile bundles (issue 23, holes 1-4): each is made from a real exported bundle and refused by the one
reader (zoo_runtime.bundle) before any graph reaches onnxruntime, in the API, zoo-run and the app alike.

1. a graph whose tensors point at external data (onnxruntime would read it from the current folder);
2. links: a graph or another listed file that is a symlink (to a file outside, with a matching sha256);
3. a manifest that disagrees with the hashed graphs' metadata_props (labels, vocabulary, preprocessing ...);
4. a file larger than its manifest entry or than the ceiling, refused before it is read, and a wrong hash
   found by hashing in chunks, not by reading the file into memory.
"""

from __future__ import annotations

import os
import re

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt (the app test below)

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from bundle_tools import read_manifest_json, rehash
from onnx import TensorProto, helper

import zoo_runtime
from zoo_runtime import BundleError, schema
from zoo_runtime import bundle as bundle_module
from zoo_runtime.bundle import MAX_ONNX_NESTING, onnx_external_data
from zoo_runtime.cli import main as zoo_run
from zoo_train.registry import list_models

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lenet(tiny_bundle) -> Path:
    return tiny_bundle("lenet5")


@pytest.fixture(scope="module")
def text_bundle(tiny_bundle) -> Path:
    names = list_models(schema.TASK_TEXT_GENERATION)
    if not names:
        pytest.skip("no text-generation model in the registry")
    return tiny_bundle(names[0])


def copy_bundle(bundle: Path, where: Path) -> Path:
    return Path(shutil.copytree(bundle, where))


@pytest.fixture
def no_sessions(monkeypatch):
    """Any onnxruntime session built from here on fails the test: refusals must come before onnxruntime reads a graph."""

    def refuse(*args, **kwargs):
        raise AssertionError("an onnxruntime session was built from a bundle that should have been refused")

    monkeypatch.setattr(ort, "InferenceSession", refuse)


# ----------------------------------------------------------------------------- 1. external data


def point_weights_at(graph: Path, location: str) -> int:
    """Make the graph's largest initializer read its bytes from ``location`` (as onnx's external data
    does) and return how many bytes it reads from there."""
    model = onnx.load(str(graph))
    tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    length = len(tensor.raw_data)
    assert length > 0, "the exported graph keeps its weights in raw_data"
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    graph.write_bytes(model.SerializeToString())
    return length


def classify_with_onnxruntime(graph_bytes: bytes) -> np.ndarray:
    session = ort.InferenceSession(graph_bytes, providers=["CPUExecutionProvider"])
    return session.run(None, {"image": np.full((1, 1, 28, 28), 0.5, np.float32)})[0]


@pytest.mark.parametrize("traversing", [False, True], ids=["secret.txt", "../../traversal"])
def test_external_data_is_refused_before_onnxruntime_reads_it(
    lenet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, traversing: bool
) -> None:
    bundle = copy_bundle(lenet, tmp_path / "bundle")
    secret = tmp_path / "private" / "secret.txt"
    secret.parent.mkdir()
    # onnxruntime resolves the location against the current folder: the folder zoo-run or the app started in,
    # or, for a traversing location, the root of the filesystem (it refuses paths that escape the current folder).
    started_in = Path("/") if traversing else secret.parent
    location = "../../" + str(secret.relative_to("/")) if traversing else secret.name
    length = point_weights_at(bundle / schema.MODEL_FILE, location)
    rehash(bundle)  # a consistent bundle: hashes fit, metadata untouched; only the weights live elsewhere
    monkeypatch.chdir(started_in)

    # The hole is real: onnxruntime reads the file, and the model's outputs depend on its bytes.
    data = (bundle / schema.MODEL_FILE).read_bytes()
    secret.write_bytes(np.full(length // 4, 0.1, np.float32).tobytes())
    first = classify_with_onnxruntime(data)
    secret.write_bytes(np.full(length // 4, -0.7, np.float32).tobytes())
    assert not np.allclose(first, classify_with_onnxruntime(data))

    # The reader refuses it, naming the file and the location, and opens nothing but the bundle's own files.
    opened: list[str] = []
    real_open = os.open

    def watched_open(path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> int:
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", watched_open)  # the reader opens every file through os.open
    monkeypatch.setattr(ort, "InferenceSession", lambda *a, **k: pytest.fail("a session was built"))
    for call in (zoo_runtime.load, zoo_runtime.read_manifest):
        with pytest.raises(BundleError, match=r"model\.onnx: the graph reads external data") as info:
            call(bundle)
        assert str(bundle) in str(info.value) and repr(location) in str(info.value)
    assert opened and not [p for p in opened if "secret" in p or "private" in p]


def test_external_data_in_a_lone_onnx_and_through_zoo_run(lenet, tmp_path, monkeypatch, capsys, no_sessions):
    bundle = copy_bundle(lenet, tmp_path / "bundle")
    point_weights_at(bundle / schema.MODEL_FILE, "../../../../etc/passwd")
    rehash(bundle)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BundleError, match=r"model\.onnx: the graph reads external data .*etc/passwd"):
        zoo_runtime.load(bundle / schema.MODEL_FILE)  # the lone graph, loaded from its metadata alone
    assert zoo_run([str(bundle)]) == 1  # the bundle failed verification
    err = capsys.readouterr().err
    assert err.startswith("zoo-run: error: ") and "reads external data" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def external_tensor(name: str, location: str = "weights.bin", with_flag: bool = True) -> TensorProto:
    tensor = helper.make_tensor(name, TensorProto.FLOAT, [2], [0.0, 0.0])
    tensor.ClearField("float_data")
    if with_flag:
        tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    return tensor


def plain_graph(nodes=(), initializers=(), sparse=(), name: str = "g") -> onnx.GraphProto:
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    return helper.make_graph(list(nodes), name, [], [out], initializer=list(initializers), sparse_initializer=list(sparse))


def constant_node(tensor: TensorProto) -> onnx.NodeProto:
    return helper.make_node("Constant", [], ["y"], value=tensor)


def nested_if(depth: int, innermost: onnx.GraphProto) -> onnx.GraphProto:
    graph = innermost
    for level in range(depth):
        node = helper.make_node("If", ["c"], ["y"], then_branch=graph, else_branch=plain_graph(name="empty"))
        graph = plain_graph([node], name=f"level{level}")
    return graph


def model_bytes(graph: onnx.GraphProto, functions=()) -> bytes:
    return helper.make_model(graph, functions=list(functions)).SerializeToString()


EXTERNAL_ANYWHERE = {
    "initializer": lambda: model_bytes(plain_graph(initializers=[external_tensor("w")])),
    "flag only": lambda: model_bytes(plain_graph(initializers=[external_tensor("w", with_flag=False)])),
    "Constant attribute": lambda: model_bytes(plain_graph([constant_node(external_tensor("w"))])),
    "If subgraph": lambda: model_bytes(nested_if(3, plain_graph([constant_node(external_tensor("w"))]))),
    "sparse initializer": lambda: model_bytes(
        plain_graph(
            sparse=[helper.make_sparse_tensor(external_tensor("w"), helper.make_tensor("i", TensorProto.INT64, [1], [0]), [4])]
        )
    ),
    "function body": lambda: model_bytes(
        plain_graph(),
        functions=[helper.make_function("zoo.test", "f", [], ["y"], [constant_node(external_tensor("w"))], [])],
    ),
}


@pytest.mark.parametrize("where", sorted(EXTERNAL_ANYWHERE))
def test_external_data_is_found_wherever_a_tensor_can_sit(where):
    assert set(onnx_external_data(EXTERNAL_ANYWHERE[where]())) == {("w", "weights.bin")}


def test_graph_nesting_is_bounded_and_plain_graphs_pass(lenet):
    assert onnx_external_data((lenet / schema.MODEL_FILE).read_bytes()) == []
    assert (
        onnx_external_data(model_bytes(nested_if(5, plain_graph([constant_node(helper.make_tensor("w", 1, [1], [1.0]))])))) == []
    )
    # Deeper than protobuf itself builds (onnx.helper refuses), so spelled in the wire format:
    # ModelProto.graph / GraphProto.node / NodeProto.attribute / AttributeProto.g, again and again.
    deep = b""
    for _ in range(MAX_ONNX_NESTING):
        deep = length_delimited(1, length_delimited(5, length_delimited(6, deep)))
    with pytest.raises(ValueError, match="nested deeper"):
        onnx_external_data(length_delimited(7, deep))


def length_delimited(field_number: int, payload: bytes) -> bytes:
    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
            value >>= 7
            if not value:
                return bytes(out)

    return varint(field_number << 3 | 2) + varint(len(payload)) + payload


# ----------------------------------------------------------------------------- 2. links


def test_graph_symlinked_to_an_outside_file_with_matching_hash_is_refused(lenet, tmp_path, no_sessions):
    bundle = copy_bundle(lenet, tmp_path / "bundle")
    outside = tmp_path / "elsewhere" / schema.MODEL_FILE
    outside.parent.mkdir()
    shutil.move(bundle / schema.MODEL_FILE, outside)
    (bundle / schema.MODEL_FILE).symlink_to(outside)  # same bytes: the manifest's sha256 still fits
    for call in (zoo_runtime.load, zoo_runtime.read_manifest):
        with pytest.raises(BundleError, match=r"model\.onnx: a symbolic link; a bundle's files must be regular files"):
            call(bundle)


def test_listed_file_linking_elsewhere_and_linked_manifest_are_refused(lenet, tmp_path, capsys, no_sessions):
    other = next(name for name in read_manifest_json(lenet)["files"] if name != schema.MODEL_FILE)
    target = tmp_path / "passwd"
    target.write_text("root:x:0:0:root:/root:/bin/bash\n")

    linked = copy_bundle(lenet, tmp_path / "linked")
    (linked / other).unlink()
    (linked / other).symlink_to(target)
    rehash(linked)  # the manifest lists the linked file's bytes, hash and size
    with pytest.raises(BundleError, match=rf"{other}: a symbolic link"):
        zoo_runtime.load(linked)
    assert zoo_run([str(linked)]) == 1
    err = capsys.readouterr().err
    assert f"{other}: a symbolic link" in err and len(err.strip().splitlines()) == 1

    into_bundle = copy_bundle(lenet, tmp_path / "into-bundle")  # a link to a file inside the bundle is a link too
    (into_bundle / other).unlink()
    (into_bundle / other).symlink_to(into_bundle / schema.MODEL_FILE)
    rehash(into_bundle)
    with pytest.raises(BundleError, match=rf"{other}: a symbolic link"):
        zoo_runtime.load(into_bundle)

    manifest_link = copy_bundle(lenet, tmp_path / "manifest-link")
    real_manifest = tmp_path / "manifest-elsewhere.json"
    shutil.move(manifest_link / schema.MANIFEST_FILE, real_manifest)
    (manifest_link / schema.MANIFEST_FILE).symlink_to(real_manifest)
    with pytest.raises(BundleError, match=r"manifest\.json: a symbolic link"):
        zoo_runtime.load(manifest_link)
    assert zoo_runtime.find_bundles(tmp_path) == sorted([linked, into_bundle])  # listed; each load refuses them


def test_listed_names_that_are_not_regular_files_are_refused(lenet, tmp_path, no_sessions):
    other = next(name for name in read_manifest_json(lenet)["files"] if name != schema.MODEL_FILE)
    fifo = copy_bundle(lenet, tmp_path / "fifo")
    (fifo / other).unlink()
    os.mkfifo(fifo / other)  # opening it to read would wait forever for a writer
    with pytest.raises(BundleError, match=rf"{other}: not a regular file"):
        zoo_runtime.load(fifo)
    folder = copy_bundle(lenet, tmp_path / "folder")
    (folder / other).unlink()
    (folder / other).mkdir()
    with pytest.raises(BundleError, match=rf"{other}: not a regular file"):
        zoo_runtime.load(folder)


def test_a_bundle_folder_reached_through_a_link_still_loads(lenet, tmp_path):
    """The folder is the user's choice; only what is inside it must be regular files."""
    (tmp_path / "link-to-bundle").symlink_to(lenet, target_is_directory=True)
    assert zoo_runtime.load(tmp_path / "link-to-bundle", device="cpu").name == "lenet5"


# ----------------------------------------------------------------------------- 3. manifest against the graphs' metadata


def _swap_first_two(items: list) -> list:
    return [items[1], items[0], *items[2:]]


MANIFEST_EDITS = [
    ("lenet", "labels", schema.META_LABELS, lambda m: m.update(labels=_swap_first_two(m["labels"]))),
    ("lenet", "preprocessing", schema.META_PREPROCESSING, lambda m: m["preprocessing"]["image"].update(mean=[0.9])),
    ("lenet", "model", schema.META_MODEL, lambda m: m.update(model="resnet-imposter")),
    ("lenet", "graphs.model", schema.META_IO, lambda m: m["graphs"]["model"]["outputs"][0].update(dtype="float16")),
    ("text", "vocab", schema.META_VOCAB, lambda m: m["vocab"].update(tokens=_swap_first_two(m["vocab"]["tokens"]))),
    ("text", "generation", schema.META_GENERATION, lambda m: m["generation"].update(kind="something-else")),
]


@pytest.mark.parametrize(("which", "field", "key", "edit"), MANIFEST_EDITS, ids=[e[1] for e in MANIFEST_EDITS])
def test_manifest_edited_with_hashes_untouched_is_refused(lenet, text_bundle, tmp_path, no_sessions, which, field, key, edit):
    bundle = copy_bundle(lenet if which == "lenet" else text_bundle, tmp_path / "bundle")
    manifest = read_manifest_json(bundle)
    edit(manifest)
    (bundle / schema.MANIFEST_FILE).write_text(json.dumps(manifest))  # every file's sha256 still fits
    # The graph named: the edited graph's own file, else the first the reader checks.
    edited_role = field.removeprefix("graphs.") if field.startswith("graphs.") else None
    graph = manifest["graphs"][edited_role]["file"] if edited_role else sorted(g["file"] for g in manifest["graphs"].values())[0]
    for call in (zoo_runtime.load, zoo_runtime.read_manifest):
        with pytest.raises(BundleError) as info:
            call(bundle)
        message = str(info.value)
        assert message.startswith(f"{bundle / schema.MANIFEST_FILE}: {field} differs from ")
        assert f"({key}, in {bundle}/" in message and "altered" in message
    assert graph in message


def test_graph_stripped_of_its_metadata_is_refused(lenet, tmp_path, capsys):
    bundle = copy_bundle(lenet, tmp_path / "bundle")
    model = onnx.load(str(bundle / schema.MODEL_FILE))
    del model.metadata_props[:]
    (bundle / schema.MODEL_FILE).write_bytes(model.SerializeToString())
    rehash(bundle)
    with pytest.raises(BundleError, match=r"manifest\.json: model is in the manifest but missing from model\.onnx's metadata"):
        zoo_runtime.load(bundle)
    assert zoo_run([str(bundle)]) == 1
    assert "missing from model.onnx's metadata" in capsys.readouterr().err


# ----------------------------------------------------------------------------- 4. sizes before reading


def test_oversized_file_is_refused_before_a_byte_is_read(lenet, tmp_path, monkeypatch, no_sessions):
    big = 3 << 30
    hash_stream = bundle_module._hash_stream

    def no_reading(f, limit):  # the other files of the bundle (listed before model.onnx) are read as usual
        if limit >= big:
            raise AssertionError("a file was read before its size was checked")
        return hash_stream(f, limit)

    bundle = copy_bundle(lenet, tmp_path / "bundle")
    os.truncate(bundle / schema.MODEL_FILE, big)  # sparse: 3 GiB listed, nothing on disk
    monkeypatch.setattr(bundle_module, "_hash_stream", no_reading)
    with pytest.raises(BundleError, match=r"model\.onnx: size 3221225472 bytes, the manifest says \d+"):
        zoo_runtime.load(bundle)  # the manifest's own size, stat'ed first

    manifest = read_manifest_json(bundle)
    manifest["files"][schema.MODEL_FILE]["bytes"] = big  # and when the manifest agrees, the ceiling refuses
    (bundle / schema.MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"model\.onnx: 3221225472 bytes, more than the 2 GiB a bundle file may have"):
        zoo_runtime.load(bundle)
    with pytest.raises(BundleError, match=r"model\.onnx: .* more than the 2 GiB a model file may have"):
        zoo_runtime.load(bundle / schema.MODEL_FILE)  # a lone graph too
    os.truncate(bundle / schema.MANIFEST_FILE, 100 << 20)
    with pytest.raises(BundleError, match=r"manifest\.json: 104857600 bytes, more than the 64 MiB"):
        zoo_runtime.load(bundle)


def test_ceiling_is_configurable(lenet):
    first = next(iter(read_manifest_json(lenet)["files"]))  # the reader checks the files in the manifest's order
    size = (lenet / first).stat().st_size
    with pytest.raises(BundleError, match=rf"{re.escape(first)}: {size} bytes, more than the 1 KiB"):
        zoo_runtime.load(lenet, max_file_bytes=1024)
    with pytest.raises(BundleError, match="max_file_bytes 0: expected a positive integer"):
        zoo_runtime.load(lenet, max_file_bytes=0)
    largest = max(path.stat().st_size for path in lenet.iterdir())
    assert zoo_runtime.load(lenet, device="cpu", max_file_bytes=largest).name == "lenet5"


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures peak memory through Linux's /proc")
def test_wrong_hash_is_found_in_chunks_not_by_reading_the_file_whole(lenet, tmp_path):
    """A 512 MiB graph listed with its true size and a wrong sha256 costs the reader a chunk of memory, not 512 MiB."""
    size = 512 << 20
    bundle = copy_bundle(lenet, tmp_path / "bundle")
    os.truncate(bundle / schema.MODEL_FILE, size)
    manifest = read_manifest_json(bundle)
    manifest["files"][schema.MODEL_FILE]["bytes"] = size
    (bundle / schema.MANIFEST_FILE).write_text(json.dumps(manifest))
    # Peak memory (VmHWM) is measured from a reset made after the imports, which peak on their own.
    program = f"""
import zoo_runtime, zoo_runtime.bundle
def peak_kib():
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")
before = peak_kib()
try:
    zoo_runtime.bundle.open_bundle({str(bundle)!r})  # as load() opens it: the graphs' bytes are kept
except zoo_runtime.BundleError as exc:
    print("REFUSED", exc)
print("GREW_KIB", peak_kib() - before)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "model.onnx: sha256 mismatch" in done.stdout
    grew_kib = int(done.stdout.split("GREW_KIB")[1])
    assert grew_kib < 64 * 1024, f"the reader's peak memory grew by {grew_kib} KiB"


# ----------------------------------------------------------------------------- the app


def test_app_shows_a_hostile_bundle_as_a_message(qtbot, lenet, tmp_path, monkeypatch):
    pytest.importorskip("PySide6")
    from PySide6.QtCore import QSettings, Qt

    from zoo_gui.app import MainWindow
    from zoo_gui.catalog import bundle_key

    runs = tmp_path / "runs"
    good = copy_bundle(lenet, runs / "good" / "export")
    hostile = copy_bundle(lenet, runs / "hostile" / "export")
    point_weights_at(hostile / schema.MODEL_FILE, "secret.txt")
    rehash(hostile)
    (tmp_path / "secret.txt").write_bytes(b"\0" * 4096)
    monkeypatch.chdir(tmp_path)  # where the app was started: the secret sits right there

    settings = QSettings(str(tmp_path / "zoo-gui-test.ini"), QSettings.Format.IniFormat)
    window = MainWindow([runs], settings=settings, device="cpu")
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: not window.library.scanning, timeout=60_000)
    rows = {info.run_name: info for info in window.library.bundles()}
    assert rows["good"].usable and not rows["hostile"].usable
    assert "reads external data" in (rows["hostile"].error or "")

    window.library.select(bundle_key(hostile))
    n = len(window.errors)
    qtbot.keyClick(window.library.table, Qt.Key.Key_Return)  # open it anyway: a message, not a traceback
    assert len(window.errors) == n + 1 and window.error_box is not None and window.error_box.isVisible()
    assert "model.onnx: the graph reads external data ('" in window.errors[-1][1]
    assert "secret.txt" in window.errors[-1][1]
    assert window.library.select(bundle_key(good))  # the app stays usable
