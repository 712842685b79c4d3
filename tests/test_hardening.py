"""Careless inputs and crashes (issue 23, holes 4 to 6): refused up front in one line, never a traceback.

Sizes are estimated before anything is allocated (hole 4); seeds, high-bit-depth images, paths that are
no bundle, --resume mistakes and huge images get the runtime's own error and exit 2 (hole 5); publishing
a bundle never leaves a moment without one, and a writer killed outright leaves nothing forever (hole 6).
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import typing
import warnings
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import zoo_runtime
from zoo_export import cli as export_cli
from zoo_export.bundle import BundleWriter
from zoo_runtime import BundleError, InputError, publishing, schema
from zoo_runtime.cli import main as zoo_run
from zoo_runtime.limits import IMAGE_PIXELS_ENV, OUTPUT_BYTES_ENV
from zoo_train.checkpoint import load_checkpoint
from zoo_train.cli import main as zoo_train
from zoo_train.registry import get_entry, list_models

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # the app's test: before anything imports Qt


def one_line_error(err: str, *fragments: str) -> None:
    """What every user-caused error looks like: one line, the program's own words, no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "Warning" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` grey pixels over a tiny body: what a decompression bomb
    looks like to a reader, without the memory."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(body)
    return path


@pytest.fixture(scope="module")
def lenet(tiny_bundle) -> Path:
    return tiny_bundle("lenet5")


# ----------------------------------------------------------------------------- hole 4: sizes before allocating


@pytest.mark.parametrize("name", list_models(schema.TASK_IMAGE_GENERATION))
def test_sample_count_past_the_output_limit_is_refused_up_front(tiny_bundle, name, tmp_path, monkeypatch, capsys):
    bundle, out = tiny_bundle(name), tmp_path / "samples"
    monkeypatch.setenv(OUTPUT_BYTES_ENV, str(1 << 20))  # 1 MiB: 1,000 images of 28x28 need about 3.7 MiB
    assert zoo_run([str(bundle), "--sample", "1000", "--out", str(out), "--cpu"]) == 2
    one_line_error(
        capsys.readouterr().err, "zoo-run: error: --sample 1,000: 1,000 images would need about 3.7 MiB", OUTPUT_BYTES_ENV
    )
    monkeypatch.delenv(OUTPUT_BYTES_ENV)
    assert zoo_run([str(bundle), "--sample", "10000000", "--out", str(out), "--cpu"]) == 2
    one_line_error(capsys.readouterr().err, "--sample 10,000,000", "GiB of memory, more than the limit of 1.0 GiB")
    assert not out.exists()
    model = zoo_runtime.load(bundle, device="cpu")
    with pytest.raises(InputError, match=r"^n 10,000,000: 10,000,000 images would need"):
        model.sample(10_000_000)


def test_set_size_past_the_machine_memory_is_refused_before_building(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog\n" * 200)
    out = tmp_path / "runs"
    argv = ["char-gpt", "--text", str(text), "--preset", "smoke", "--out", str(out), "--device", "cpu", "--quiet"]
    assert zoo_train([*argv, "--set", "n_embd=10000000"]) == 2
    one_line_error(
        capsys.readouterr().err,
        "zoo-train: error: --set n_embd=10000000: char-gpt would have 1,200,000,",
        "parameters, needing at least",
        "for weights, gradients and optimiser state; the cpu has",
    )
    assert not (out / "char-gpt").exists()


def _size_field(name: str, config: dict[str, typing.Any]) -> str:
    """The model's widest size field (a width or vocabulary): one that every weight shape depends on."""
    hints = typing.get_type_hints(get_entry(name).config_cls)
    sizes = [f for f, kind in hints.items() if kind is int and not f.endswith("_id") and f in config]
    return max(sizes, key=lambda f: (config[f], f))


@pytest.mark.parametrize("size", [-3, 0, 10_000_000])
@pytest.mark.parametrize("name", list_models())
def test_checkpoint_config_with_a_bad_size_is_refused_by_export(tiny_checkpoint, name, size, tmp_path, capsys):
    payload = load_checkpoint(tiny_checkpoint(name))
    field = _size_field(name, payload["config"])
    payload["config"] = {**payload["config"], field: size}
    checkpoint = tmp_path / name / "checkpoints" / "best.pt"
    checkpoint.parent.mkdir(parents=True)
    torch.save(payload, checkpoint)
    assert export_cli.main([str(checkpoint), "--out", str(tmp_path / "bundle")]) == 2
    one_line_error(capsys.readouterr().err, f"zoo-export: error: {checkpoint}:")
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing written


# ----------------------------------------------------------------------------- hole 5: careless flags and inputs


def test_negative_seed_is_a_usage_error_and_the_runtimes_own_error(tiny_bundle, tmp_path, capsys):
    text = tiny_bundle(list_models(schema.TASK_TEXT_GENERATION)[0])
    gan = tiny_bundle(list_models(schema.TASK_IMAGE_GENERATION)[0])
    for argv in (
        [str(text), "--prompt", "a", "--seed", "-1"],
        [str(gan), "--sample", "2", "--out", str(tmp_path), "--seed", "-1"],
    ):
        with pytest.raises(SystemExit) as info:
            zoo_run(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "argument --seed: expected 0 or a positive integer, got -1" in err and "Traceback" not in err
    for call in (
        lambda: zoo_runtime.load(text, device="cpu").generate("a", seed=-1),
        lambda: zoo_runtime.load(gan, device="cpu").sample(2, seed=-1),
        lambda: zoo_runtime.load(gan, device="cpu").sample_latents(2, seed=1.5),
    ):
        with pytest.raises(InputError, match=r"^seed: expected a whole number 0 or more") as caught:
            call()
        assert isinstance(caught.value, BundleError) and isinstance(caught.value, ValueError)


def _wide(image8: np.ndarray, mode: str, folder: Path) -> typing.Any:
    """``image8`` (uint8 HW) in a high-bit-depth form holding the same picture."""
    if mode == "I;16 file":
        path = folder / "wide16.png"
        Image.fromarray(image8.astype(np.uint16) * 257).save(path)
        assert Image.open(path).mode.startswith("I;16")
        return str(path)
    if mode == "I":
        return Image.fromarray(image8.astype(np.int32) * 257, mode="I")
    return Image.fromarray(image8.astype(np.float32) / 255.0, mode="F")


@pytest.mark.parametrize("mode", ["I;16 file", "I", "F"])
@pytest.mark.parametrize("size", [(28, 28), (40, 36)])
def test_high_bit_depth_image_gives_the_probabilities_of_its_8bit_equivalent(lenet, mode, size, tmp_path):
    model = zoo_runtime.load(lenet, device="cpu")
    image8 = np.random.default_rng(3).integers(0, 256, size[::-1], dtype=np.uint8)
    image8[: size[1] // 2] //= 4  # a dark half, so that clipping to white would show
    path8 = tmp_path / "eight.png"
    Image.fromarray(image8).save(path8)
    expected = model.logits([str(path8)])
    got = model.logits([_wide(image8, mode, tmp_path)])
    # Same size: the same pixels exactly. Resized: Pillow's bilinear filter on floats rather than on bytes.
    np.testing.assert_allclose(got, expected, atol=1e-4 if size == (28, 28) else 2e-2)


def test_path_that_is_not_a_bundle_exits_2(tmp_path, capsys):
    folder = tmp_path / "folder"
    folder.mkdir()
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert zoo_run([str(folder)]) == 2
    one_line_error(capsys.readouterr().err, f"zoo-run: error: {folder / schema.MANIFEST_FILE}: missing; {folder} is not a bundle")
    assert zoo_run([str(text)]) == 2
    one_line_error(capsys.readouterr().err, f"zoo-run: error: {text}: not a bundle")
    with pytest.raises(InputError):
        zoo_runtime.load(folder)


def test_resume_mistakes_exit_2(tmp_path, capsys):
    assert zoo_train(["lenet5", "--resume", "--out", str(tmp_path), "--device", "cpu", "--quiet"]) == 2
    one_line_error(capsys.readouterr().err, "--resume asked, but there is no checkpoint to resume from")


@pytest.mark.parametrize("pixels", ["over ours", "over Pillow's warning", "over Pillow's refusal"])
def test_huge_image_is_refused_in_the_runtimes_words(lenet, pixels, tmp_path, capsys):
    side = {"over ours": 9_000, "over Pillow's warning": 10_000, "over Pillow's refusal": 20_000}[pixels]
    bomb = png_header_only(tmp_path / "bomb.png", side, side)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert zoo_run([str(lenet), "--image", str(bomb), "--cpu"]) == 2
        with pytest.raises(InputError, match="image too large to open"):
            zoo_runtime.load(lenet, device="cpu").classify(str(bomb))
    assert not [w for w in caught if "DecompressionBomb" in w.category.__name__]
    one_line_error(capsys.readouterr().err, f"zoo-run: error: {bomb}: image too large to open", IMAGE_PIXELS_ENV)


def test_pixel_limit_is_configurable(lenet, tmp_path, monkeypatch, capsys):
    image = tmp_path / "small.png"
    Image.new("L", (20, 20), 128).save(image)
    monkeypatch.setenv(IMAGE_PIXELS_ENV, "399")
    assert zoo_run([str(lenet), "--image", str(image), "--cpu"]) == 2
    one_line_error(capsys.readouterr().err, f"{image}: image too large to open (20x20 = 400 pixels; the limit is 399 pixels")
    monkeypatch.setenv(IMAGE_PIXELS_ENV, "400")
    assert zoo_run([str(lenet), "--image", str(image), "--cpu"]) == 0


def test_huge_image_in_the_app_gets_the_runtimes_message(lenet, tmp_path, qapp):
    from zoo_gui.pages.classify import classify_paths

    bomb = png_header_only(tmp_path / "bomb.png", 10_000, 10_000)
    good = tmp_path / "good.png"
    Image.new("L", (28, 28), 90).save(good)
    rows = []  # (id, thumbnail, predictions, error) per image
    job = SimpleNamespace(stopped=False, progress=SimpleNamespace(emit=rows.extend))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert classify_paths(job, zoo_runtime.load(lenet, device="cpu"), [(0, bomb), (1, good)]) == 2
    assert not [w for w in caught if "DecompressionBomb" in w.category.__name__]
    (_, _, none, error), (_, _, predictions, no_error) = rows
    assert none is None and error.startswith(f"{bomb}: image too large to open (10000x10000 = 100,000,000 pixels")
    assert predictions and no_error is None


# ----------------------------------------------------------------------------- hole 6: publishing


MANIFEST = {"format": schema.FORMAT, "schema_version": schema.SCHEMA_VERSION, "model": "m", "task": "t"}


def write_bundle(target: Path, tag: str) -> Path:
    writer = BundleWriter(target)
    writer.path("model.onnx").write_bytes(tag.encode())
    writer.publish({**MANIFEST, "tag": tag})
    return target


def tag_of(bundle: Path) -> str:
    return json.loads((bundle / schema.MANIFEST_FILE).read_text())["tag"]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if publishing.TMP_MARK in p.name)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the atomic exchange is checked where it is sure to exist")
def test_publish_never_moves_the_old_bundle_aside(tmp_path, monkeypatch):
    target = write_bundle(tmp_path / "export", "old")
    renames = []  # (source, destination) of every rename
    real_replace, real_rename = os.replace, os.rename

    def spy(real):
        def rename(src, dst, *args, **kwargs):
            renames.append((str(src), str(dst)))
            return real(src, dst, *args, **kwargs)

        return rename

    monkeypatch.setattr(os, "replace", spy(real_replace))
    monkeypatch.setattr(os, "rename", spy(real_rename))
    write_bundle(target, "new")
    assert tag_of(target) == "new" and leftovers(tmp_path) == []
    assert all(src != str(target) for src, _dst in renames), renames  # the old one stayed until exchanged


def test_publish_that_fails_between_its_steps_keeps_the_old_bundle(tmp_path, monkeypatch):
    target = write_bundle(tmp_path / "export", "old")
    monkeypatch.setattr(publishing, "_exchange", lambda a, b: False)  # a system without an atomic exchange
    real_replace, failed = os.replace, []

    def replace(src, dst):
        if Path(dst) == target and Path(src).name.endswith(publishing.READY_SUFFIX):  # the new bundle going in
            failed.append(src)
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="Input/output error"):
        write_bundle(target, "new")
    assert failed and tag_of(target) == "old" and leftovers(tmp_path) == []
    assert zoo_runtime.find_bundles(tmp_path) == [target]


def run_writer(folder: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with a BundleWriter for ``folder/export`` in a child process (which may kill itself)."""
    prelude = f"""
        import os, signal
        from pathlib import Path
        from zoo_export.bundle import BundleWriter
        from zoo_runtime import publishing, schema
        target = Path({str(folder / "export")!r})
        MANIFEST = {MANIFEST!r}
        def die():
            os.kill(os.getpid(), signal.SIGKILL)
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = textwrap.dedent(prelude) + textwrap.dedent(script)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("reader", ["find_bundles", "load"])
def test_writer_killed_between_the_two_renames_leaves_a_findable_bundle(tmp_path, reader):
    write_bundle(tmp_path / "export", "old")
    child = run_writer(
        tmp_path,
        """
        publishing._exchange = lambda a, b: False  # the two-step switch, to kill the writer between its steps
        real_replace = os.replace
        def replace(src, dst):
            if Path(dst) == target and Path(src).name.endswith(publishing.READY_SUFFIX):
                die()
            return real_replace(src, dst)
        os.replace = replace
        writer = BundleWriter(target)
        writer.path("model.onnx").write_bytes(b"new")
        writer.publish({**MANIFEST, "tag": "new"})
        """,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert not (tmp_path / "export").exists()  # the window: the old bundle aside, the new one not yet in
    if reader == "find_bundles":
        assert zoo_runtime.find_bundles(tmp_path) == [tmp_path / "export"]  # the dead writer's new bundle rolled forward
    else:
        with pytest.raises(BundleError) as refused:  # put in place, then verified (this test's bundle is no real one)
            zoo_runtime.load(tmp_path / "export")
        assert "no such bundle" not in str(refused.value)
    assert tag_of(tmp_path / "export") == "new" and leftovers(tmp_path) == []


def test_temporaries_of_a_killed_writer_are_removed_and_a_live_writers_kept(tmp_path):
    target = write_bundle(tmp_path / "export", "old")
    child = run_writer(
        tmp_path,
        """
        writer = BundleWriter(target)
        writer.path("model.onnx").write_bytes(b"half")
        die()
        """,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    dead = leftovers(tmp_path)
    assert len(dead) == 2 and any(name.endswith(publishing.CLAIM_SUFFIX) for name in dead)  # its folder and claim
    live = BundleWriter(target)  # this process, alive: the next export settles the dead writer only
    assert leftovers(tmp_path) == sorted([live.tmp.name, live.claim.name])
    assert zoo_runtime.find_bundles(tmp_path) == [target] and leftovers(tmp_path) == sorted([live.tmp.name, live.claim.name])
    live.discard()
    assert leftovers(tmp_path) == [] and tag_of(target) == "old"


def test_find_bundles_settles_a_killed_writer_without_exporting_again(tmp_path):
    child = run_writer(
        tmp_path,
        """
        writer = BundleWriter(target)
        die()
        """,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert len(leftovers(tmp_path)) == 2
    assert zoo_runtime.find_bundles(tmp_path) == [] and leftovers(tmp_path) == []
