"""The Classify page's Inside view with pytest-qt (offscreen): it opens, shows each layer's feature maps
and the saliency overlay, saves a PNG, and drops a computation outlived by a model switch."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before anything imports Qt

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from bundle_tools import read_manifest_json, write_manifest
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QLabel
from test_gui import WAIT, make_window, open_page, settings, write_images  # noqa: F401  (fixtures by name)

from zoo_gui.catalog import bundle_key
from zoo_gui.inside import InsideView, feature_grid, saliency_overlay
from zoo_gui.inside_text import TextInsideView, gc_track
from zoo_runtime import schema


def test_feature_grid_puts_the_strongest_channels_first_and_shrinks_large_maps():
    maps = np.zeros((40, 100, 100), dtype=np.float32)
    for channel in range(40):
        maps[channel] = channel  # channel 39 is the strongest
    maps[:, 0, 0] += 1.0  # each map has a range to scale
    grid, shown = feature_grid(maps, max_channels=16, tile=48, columns=8)
    assert shown == list(range(39, 23, -1))
    # 100 px maps averaged down by 3 to 33 px; 16 tiles in 2 rows of 8, 2 px apart
    assert grid.shape == (2 * 33 + 2, 8 * 33 + 7 * 2) and grid.dtype == np.uint8
    small, _shown = feature_grid(np.random.default_rng(0).random((3, 8, 8)), tile=48)
    assert small.shape == (48, 3 * 48 + 2 * 2)  # 8 px maps shown in 6 px cells


def test_saliency_overlay_is_red_where_the_evidence_is():
    image = np.full((1, 28, 28), 0.5, dtype=np.float32)
    saliency = np.zeros((28, 28), dtype=np.float32)
    saliency[20:24, 4:8] = 1.0
    overlay = saliency_overlay(image, saliency, side=224)
    assert overlay.shape == (224, 224, 3)
    hot, cold = overlay[22 * 8, 6 * 8], overlay[4 * 8, 20 * 8]
    assert hot[0] > 200 and hot[1] < 100 and cold[0] == cold[1] == cold[2]


def test_gc_track_follows_the_gc_fraction():
    track = gc_track("GGGGGGGGGGGGGGGGGGGGAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 60, side=60, height=10)
    assert track.shape == (10, 60)
    assert (track[:, 19] == 90).all() and (track[:, 59] == 255).all()  # all GC, then a window of A only


def inside_of(qtbot, page) -> InsideView:
    qtbot.waitUntil(lambda: page.inside.view is not None, timeout=WAIT)
    view = page.inside.view
    assert view is not None
    return view


@pytest.fixture(scope="module")
def lenet(tiny_bundle) -> Path:
    return Path(tiny_bundle("lenet5"))


def test_inside_view_shows_every_layer_and_the_saliency_then_saves_a_png(qtbot, make_window, lenet, tmp_path):  # noqa: F811
    window = make_window([lenet])
    page = open_page(qtbot, window, lenet)
    page.add_paths(write_images(tmp_path / "images", 2))
    qtbot.waitUntil(lambda: not page.busy and all(i.done for i in page.results.items), timeout=WAIT)
    page.inside_button.setChecked(True)
    view = inside_of(qtbot, page)
    first = page.results.items[0]
    assert view.path == first.path and first.predictions is not None
    assert view.class_index == first.predictions[0].index
    layers = read_manifest_json(lenet)["graphs"][schema.ROLE_INSPECT]["outputs"]
    assert [layer.name for layer in view.layers] == [layer["name"] for layer in layers]
    conv1 = view.layers[0]
    assert conv1.channels == layers[0]["shape"][1] and sorted(conv1.channels_shown) == list(range(conv1.channels))
    assert f"{conv1.channels} channels" in conv1.caption
    shown = {label.objectName() for label in page.inside.findChildren(QLabel) if label.objectName().startswith("inside-")}
    assert shown == {"inside-saliency", *(f"inside-{layer['name']}" for layer in layers)}

    # Another class: the saliency is computed again for it.
    page.inside.class_combo.setCurrentIndex(3)
    page.inside.wanted.emit(3)
    qtbot.waitUntil(lambda: page.inside.view is not None and page.inside.view.class_index == 3, timeout=WAIT)
    assert page.inside.view.label == page.model.labels[3]

    saved = page.inside.save_png(tmp_path / "inside")
    image = QImage(str(saved))
    assert saved.suffix == ".png" and not image.isNull() and image.height() > 224
    assert window.errors == []


def test_inside_of_a_bundle_without_an_inspect_graph_shows_the_saliency(qtbot, make_window, lenet, tmp_path):  # noqa: F811
    bundle = Path(shutil.copytree(lenet, tmp_path / "runs" / "plain" / "export"))
    manifest = read_manifest_json(bundle)
    entry = manifest["graphs"].pop(schema.ROLE_INSPECT)
    for file in (entry["file"], entry["torchscript"]):
        del manifest["files"][file]
        (bundle / file).unlink()
    write_manifest(bundle, manifest)
    window = make_window([bundle])
    page = open_page(qtbot, window, bundle)
    page.add_paths(write_images(tmp_path / "images", 1))
    qtbot.waitUntil(lambda: not page.busy and all(i.done for i in page.results.items), timeout=WAIT)
    page.inside_button.setChecked(True)
    view = inside_of(qtbot, page)
    assert view.layers == [] and view.overlay is not None and "no inspect graph" in page.inside.status.text()


def test_a_model_switch_mid_computation_drops_the_old_view(qtbot, make_window, lenet, tmp_path):  # noqa: F811
    runs = tmp_path / "runs"
    first = Path(shutil.copytree(lenet, runs / "a-lenet" / "export"))
    second = Path(shutil.copytree(lenet, runs / "b-lenet" / "export"))
    window = make_window([runs])
    page = open_page(qtbot, window, first)
    page.add_paths(write_images(tmp_path / "images", 1))
    qtbot.waitUntil(lambda: not page.busy and all(i.done for i in page.results.items), timeout=WAIT)
    old_model = page.model
    page.inside_button.setChecked(True)  # starts a computation on the first model
    page.select_bundle(bundle_key(second))  # and the switch comes before it can be shown
    qtbot.waitUntil(lambda: page.model is not None and page.model is not old_model, timeout=WAIT)
    qtbot.waitUntil(lambda: not page.busy and all(i.done for i in page.results.items), timeout=WAIT)
    inside_of(qtbot, page)
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=WAIT)
    assert page.inside.view is not None and page.inside.view.bundle.resolve() == second.resolve()  # never the first model's
    assert page.inside.view.layers and window.errors == []


# ----------------------------------------------------------------------------- the Generate page


def generate_then_look_inside(qtbot, page, prompt: str, tokens: int) -> TextInsideView:
    page.prompt.setPlainText(prompt)
    page.max_tokens.setValue(tokens)
    page.inside_button.setChecked(True)
    page.run()
    qtbot.waitUntil(lambda: not page.busy, timeout=WAIT)
    qtbot.waitUntil(lambda: page.inside.view is not None and len(page.inside.view.text) > len(prompt), timeout=WAIT)
    view = page.inside.view
    assert view is not None
    return view


def test_generate_page_shows_gpt_attention_per_layer_and_head_and_saves_a_png(qtbot, make_window, tiny_bundle, tmp_path):  # noqa: F811
    gpt = Path(tiny_bundle("char-gpt"))
    window = make_window([gpt])
    page = open_page(qtbot, window, gpt)
    prompt = "".join(page.model.vocab[i] for i in range(3, 9))
    view = generate_then_look_inside(qtbot, page, prompt, 30)
    # The last 16 characters (the tiny GPT's context) of prompt + output, each attended over.
    assert view.attention and view.text == page.full_text()[-16:]
    assert view.arrays["attention"].shape == (1, 1, 2, 16, 16)
    assert page.inside.head.count() == 2 and page.inside.layer.count() == 1
    page.inside.head.setCurrentIndex(1)
    assert "head 2" in page.inside.status.text()
    page.inside.picture.row_hovered.emit(5)  # what the mouse over row 5 does
    shaded = page.inside.attended.text()
    assert shaded.count("<span") == 16 and shaded.count("underline") == 1  # the hovered character, marked
    saved = page.inside.save_png(str(tmp_path / "attention"))
    assert saved.endswith(".png") and not QImage(saved).isNull()
    assert window.errors == []


def test_generate_page_shows_dna_hidden_states_with_gc_content(qtbot, make_window, tiny_bundle):  # noqa: F811
    dna = Path(tiny_bundle("dna-gru"))
    window = make_window([dna])
    page = open_page(qtbot, window, dna)
    view = generate_then_look_inside(qtbot, page, "ACGTGGCA", 20)
    assert not view.attention and view.dna and view.text == page.full_text()
    assert view.arrays["h"].shape[1:3] == (1, 28)
    assert page.inside.track.isVisible() and not page.inside.head.isVisible()
    assert [page.inside.shown.itemText(i) for i in range(page.inside.shown.count())] == ["h", "reset", "update", "candidate"]
    page.inside.shown.setCurrentText("update")
    assert page.inside.status.text().startswith("The update gate of layer 1")
    assert "GC content" in page.inside.attended.text()
    assert window.errors == []


# ----------------------------------------------------------------------------- the Sequences page


def test_sequences_page_shows_the_cross_attention_alignment_and_saves_it(qtbot, make_window, tiny_bundle, tmp_path):  # noqa: F811
    s2s = Path(tiny_bundle("seq2seq-transformer"))
    window = make_window([s2s])
    page = open_page(qtbot, window, s2s)
    panel = page.panel
    panel.input.setText("3 4 5 6 7")
    page.run()
    qtbot.waitUntil(lambda: not page.busy, timeout=WAIT)
    out = panel.output.text().split()
    pixmap = panel.alignment.pixmap()
    assert pixmap is not None and not pixmap.isNull()
    assert f"{len(out) + 1} x 5" in panel.alignment_caption.text() and panel.save_alignment_button.isVisible()
    saved = panel.save_alignment_png(str(tmp_path / "alignment"))
    assert saved.endswith(".png") and not QImage(saved).isNull()
    assert window.errors == []
