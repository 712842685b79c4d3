"""The Inside views with pytest-qt (offscreen): the Classify page's feature maps and saliency, the Generate
page's attention (hovering a character highlights what it attends to) and hidden states, the Sequences page's
hidden states and gates of the classifiers and the seq2seq attention maps with their pickers and axis labels.
Each opens, shows, saves a PNG, and drops a computation outlived by a model switch."""

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
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent
from PySide6.QtWidgets import QApplication, QLabel, QWidget
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
    track = gc_track("GGGGGGGGGGGGGGGGGGGGAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 1, height=10)
    assert track.shape == (10, 60)
    assert (track[:, 19] == 90).all() and (track[:, 59] == 255).all()  # all GC, then a window of A only
    assert gc_track("GCAT", 3, height=10).shape == (10, 12)  # 3 pixels a base, as the map's columns


def move_mouse(widget: QWidget, point) -> None:
    """What moving the mouse over ``widget`` to ``point`` (no button pressed) delivers to it."""
    position = QPointF(point)
    event = QMouseEvent(
        QEvent.Type.MouseMove,
        position,
        QPointF(widget.mapToGlobal(point)),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, event)


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
    inside = page.inside
    # The map's axes: the characters looked at, along both.
    assert inside.picture.row_labels == inside.picture.column_labels == list(view.text)
    assert inside.hovered_row == 15 and inside.text_strip.marked == 15  # the last character until the mouse moves
    strip = inside.text_strip
    move_mouse(strip, strip.char_center(5))  # the mouse over the 6th character of the text
    attention = view.arrays["attention"][0, 0, 1, 5]
    assert inside.hovered_row == 5 and strip.marked == 5 and inside.picture.highlighted_row == 5
    np.testing.assert_allclose(strip.shades, attention / attention.max(), atol=1e-6)  # what character 5 attends to
    assert all(shade == 0 for shade in strip.shades[6:])  # causal: nothing after it
    move_mouse(inside.picture, inside.picture.cell_center(9, 2))  # over row 9 of the map
    assert inside.hovered_row == 9 and strip.marked == 9 and inside.picture.hovered == (9, 2)
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
    assert page.inside.picture.track is not None and not page.inside.head.isVisible()
    assert page.inside.picture.column_labels == list(view.text)  # the bases along the time axis
    assert [page.inside.shown.itemText(i) for i in range(page.inside.shown.count())] == ["h", "reset", "update", "candidate"]
    page.inside.shown.setCurrentText("update")
    assert page.inside.status.text().startswith("The update gate of layer 1")
    assert "GC content" in page.inside.attended.text()
    assert window.errors == []


# ----------------------------------------------------------------------------- the Sequences page


def test_sequences_page_shows_attention_maps_with_pickers_and_labelled_axes(qtbot, make_window, tiny_bundle, tmp_path):  # noqa: F811
    s2s = Path(tiny_bundle("seq2seq-transformer"))
    window = make_window([s2s])
    page = open_page(qtbot, window, s2s)
    panel = page.panel
    panel.input.setText("3 4 5 6 7")
    page.run()
    qtbot.waitUntil(lambda: not page.busy, timeout=WAIT)
    out = panel.output.text().split()
    maps = panel.attention
    assert maps.map.has_map and maps.map.isVisible() and maps.pickers.isVisible()
    # The alignment first: rows the output (and eos), columns the source, labelled so.
    assert maps.kind.currentData() == "cross_attention" and maps.kind.count() == 2
    assert maps.map.row_labels == [*out, "eos"] and maps.map.column_labels == ["3", "4", "5", "6", "7"]
    assert f"{len(out) + 1} x 5" in maps.caption.text() and "mean of 2 heads" in maps.caption.text()
    assert [maps.head.itemText(i) for i in range(maps.head.count())] == ["mean", "1", "2"] and maps.layer.count() == 1
    mean_picture = maps.map.image.copy()
    maps.head.setCurrentIndex(2)  # one head: another picture
    assert "head 2" in maps.caption.text() and maps.map.image != mean_picture
    maps.kind.setCurrentIndex(maps.kind.findData("encoder_attention"))
    assert maps.map.rows == maps.map.columns == 5 and maps.map.row_labels == ["3", "4", "5", "6", "7"]
    assert maps.caption.text().startswith("Encoder self-attention, layer 1, head 2")
    saved = maps.save_png(str(tmp_path / "alignment"))
    assert saved.endswith(".png") and not QImage(saved).isNull()
    assert window.errors == []


def test_alignment_axes_of_a_dna_to_protein_model_are_its_letters(qtbot, make_window, dna_bundle):  # noqa: F811
    s2s = dna_bundle("seq2seq-transformer")
    window = make_window([s2s])
    page = open_page(qtbot, window, s2s)
    panel = page.panel
    panel.input.setText("ATGGCCAAGTGG")
    page.run()
    qtbot.waitUntil(lambda: not page.busy and panel.attention.map.has_map, timeout=WAIT)
    labels = panel.attention.map
    assert labels.column_labels == list("ATGGCCAAGTGG") and labels.row_labels == [*panel.output.text(), "eos"]
    assert window.errors == []


@pytest.fixture
def dna_classifier(dna_bundle) -> Path:
    """A tiny LSTM classifier of DNA reads (the real task's vocabulary), with its inspect graph."""
    return dna_bundle("lstm-classifier")


def classify_then_look_inside(qtbot, page, read: str) -> TextInsideView:
    panel = page.panel
    panel.input.setText(read)
    if panel.inside_button.isChecked():
        page.run()
    else:
        panel.inside_button.setChecked(True)  # opening the view runs the model on the input, looking inside
    qtbot.waitUntil(lambda: not page.busy and panel.inside.view is not None and panel.inside.view.text == read, timeout=WAIT)
    view = panel.inside.view
    assert view is not None
    return view


def test_sequence_classifier_shows_hidden_states_and_gates_over_the_read(qtbot, make_window, dna_classifier, tmp_path):  # noqa: F811
    window = make_window([dna_classifier])
    page = open_page(qtbot, window, dna_classifier)
    panel = page.panel
    read = "ATGGCCAAGTGGCTGACCGG"
    view = classify_then_look_inside(qtbot, page, read)
    inside = panel.inside
    assert panel.verdict.text().strip() and not view.attention and view.dna and view.text == read
    assert [inside.shown.itemText(i) for i in range(inside.shown.count())] == ["h", "input", "forget", "cell", "output"]
    hidden = view.arrays["h"]
    assert hidden.shape[1:3] == (1, len(read)) and inside.picture.isVisible()
    assert inside.picture.column_labels == list(read) and inside.picture.columns == len(read)
    assert inside.picture.rows == hidden.shape[-1] and inside.picture.track is not None  # GC content under it
    state_picture = inside.picture.image.copy()
    inside.shown.setCurrentText("forget")  # the picker: the forget gate instead
    assert inside.status.text().startswith("The forget gate of layer 1") and inside.picture.image != state_picture
    assert "GC content" in inside.attended.text()
    saved = inside.save_png(str(tmp_path / "states"))
    assert saved.endswith(".png") and QImage(saved).height() > inside.picture.height()  # the whole map and its captions
    assert window.errors == []


def test_sequence_classifier_inside_opened_after_a_run_and_without_an_inspect_graph(qtbot, make_window, dna_classifier, tmp_path):  # noqa: F811
    plain = Path(shutil.copytree(dna_classifier, tmp_path / "runs" / "plain" / "export"))
    manifest = read_manifest_json(plain)
    entry = manifest["graphs"].pop(schema.ROLE_INSPECT)
    for file in (entry["file"], entry["torchscript"]):
        del manifest["files"][file]
        (plain / file).unlink()
    write_manifest(plain, manifest)
    window = make_window([plain])
    page = open_page(qtbot, window, plain)
    panel = page.panel
    panel.input.setText("ACGTACGTAC")
    page.run()
    qtbot.waitUntil(lambda: not page.busy, timeout=WAIT)
    assert not panel.inside.isVisible() and panel.inside.view is None  # not asked for: not computed
    panel.inside_button.setChecked(True)  # opening it looks inside (the run again, on a worker)
    qtbot.waitUntil(lambda: not page.busy and "no inspect graph" in panel.inside.status.text(), timeout=WAIT)
    assert panel.inside.view is None and panel.verdict.text().strip() and window.errors == []


def test_sequence_classifier_model_switch_mid_computation_drops_the_old_view(qtbot, make_window, dna_classifier, tmp_path):  # noqa: F811
    runs = tmp_path / "runs"
    first = Path(shutil.copytree(dna_classifier, runs / "a-lstm" / "export"))
    second = Path(shutil.copytree(dna_classifier, runs / "b-lstm" / "export"))
    window = make_window([runs])
    page = open_page(qtbot, window, first)
    panel = page.panel
    old_model = page.model
    panel.inside_button.setChecked(True)
    panel.input.setText("ATGGCCAAGTGGCTGACC" * 4)
    page.run()  # a computation on the first model
    page.select_bundle(bundle_key(second))  # and the switch comes before it can be shown
    qtbot.waitUntil(lambda: page.model is not None and page.model is not old_model, timeout=WAIT)
    qtbot.waitUntil(lambda: not page.busy and not window.runner.busy, timeout=WAIT)
    assert panel.inside.view is None  # the first model's view was dropped, the new model's not yet asked for
    view = classify_then_look_inside(qtbot, page, "ACGTTGCA")
    assert view.text == "ACGTTGCA" and window.errors == []
