"""Sequence models: the sequence classifier and the seq2seq model take typed sequences.

Where the bundle's vocabulary is characters (a DNA read, a DNA window, the user's own alphabet) people
type letters, checked against the vocabulary as they type; bundles of generated tasks take token ids.
One page serves both tasks; the panel for the loaded model's task comes from ``PANELS``.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar, cast

import numpy as np
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QStackedWidget,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from zoo_gui.heatmap import HeatMap
from zoo_gui.inside_text import TextInsidePanel, TextInsideView, attention_picture, look_inside_sequence
from zoo_gui.pages.base import ModelPage
from zoo_gui.widgets import ERROR_COLOR, ProbabilityBars, hint
from zoo_gui.workers import Job
from zoo_runtime import Prediction, SequenceClassifier, Translator, schema
from zoo_runtime.errors import BundleError
from zoo_runtime.vocab import Vocabulary as BundleVocabulary

SequenceModel = SequenceClassifier | Translator
PanelModel = TypeVar("PanelModel", SequenceClassifier, Translator)
# What a panel hands the model: the typed text (character vocabularies) or token ids.
SequenceInput = str | list[int]


class Vocabulary:
    """What people type for a bundle's ``vocab`` block: characters where it is a character vocabulary
    (checked by zoo_runtime's own rules, ``unknown`` policy included), else integers separated by spaces."""

    def __init__(self, vocab: dict[str, Any] | None, model: str = "the model") -> None:
        self.bundle = BundleVocabulary(vocab, model)
        self.is_text = self.bundle.is_text
        self.size = self.bundle.size or 0
        self.specials = dict(self.bundle.specials)

    @property
    def ordinary_ids(self) -> list[int]:
        reserved = set(self.specials.values())
        return [i for i in range(self.size) if i not in reserved]

    def check(self, text: str) -> tuple[str, bool]:
        """(what to say about ``text`` as typed, whether it can run)."""
        text = text.strip()
        if not text:
            return "", False
        if not self.is_text:
            try:
                return f"{len(self.encode(text))} tokens", True
            except ValueError as exc:
                return str(exc), False
        bad = self.bundle.problems(text)
        unit = "bases" if self.bundle.is_dna else "characters"
        if not bad:
            return f"{len(text)} {unit}", True
        pos, ch = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        if self.bundle.unknown == schema.UNKNOWN_SKIP:
            usable = len(text) - len(bad)
            return f"{ch!r} at position {pos} is not in the vocabulary{more}: skipped, {usable} {unit} used", usable > 0
        return f"{ch!r} at position {pos} is not in the vocabulary{more}", False

    def encode(self, text: str) -> SequenceInput:
        """The model's input: the text itself (the runtime encodes it) or the typed ids. ValueError names the problem."""
        text = text.strip()
        if self.is_text:
            try:
                self.bundle.encode(text, "input")  # the runtime's own check, unknown policy included
            except BundleError as exc:
                raise ValueError(str(exc).removeprefix("input: ")) from None
            return text
        parts = [p for p in re.split(r"[\s,;]+", text) if p]
        ids = []
        for pos, part in enumerate(parts, 1):
            try:
                value = int(part)
            except ValueError:
                raise ValueError(f"token {pos} ({part!r}) is not a whole number; type ids separated by spaces") from None
            if self.size and not 0 <= value < self.size:
                raise ValueError(f"token {pos} ({value}) is outside the vocabulary 0..{self.size - 1}")
            ids.append(value)
        return ids

    def decode(self, ids: list[int]) -> str:
        return self.bundle.decode(ids)

    def describe(self) -> str:
        if self.is_text:
            return self.bundle.describe()
        text = f"ids 0–{self.size - 1}" if self.size else "integer ids"  # noqa: RUF001 (a range dash)
        if self.specials:
            text += " (" + ", ".join(f"{name} = {v}" for name, v in sorted(self.specials.items(), key=lambda kv: kv[1])) + ")"
        return text

    def example(self, rng: random.Random, length: int) -> str:
        if self.is_text:
            return "".join(rng.choice(self.bundle.characters) for _ in range(length))
        choices = self.ordinary_ids or list(range(max(self.size, 1)))
        return " ".join(str(rng.choice(choices)) for _ in range(length))


class SequencePanel(QWidget, Generic[PanelModel]):
    """Input line, Random Example and Run; subclasses show the output."""

    input_hint: ClassVar[str] = ""

    def __init__(self, page: SequencePage) -> None:
        super().__init__()
        self.page = page
        self.vocab = Vocabulary(None)
        self.rng = random.Random(7)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.input = QLineEdit()
        self.input.setFont(mono)
        self.input.returnPressed.connect(page.run)
        self.vocab_label = hint("")
        self.check_label = hint("")
        self.input.textChanged.connect(self.validate)
        self.examples: list[list[str]] = []
        self.expected = hint("")
        self.length = QSpinBox()
        self.length.setRange(1, 512)
        self.length.setValue(10)
        self.length.setToolTip("Length of a random example")
        self.example_button = QPushButton("Random Example")
        self.example_button.clicked.connect(self.random_example)
        self.run_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay), "Run")
        self.run_button.setToolTip("Run the model on the input (Ctrl+Return)")
        self.run_button.clicked.connect(page.run)
        row = QHBoxLayout()
        row.addWidget(self.input, 1)
        row.addWidget(self.run_button)
        ex = QHBoxLayout()
        ex.addWidget(self.example_button)
        ex.addWidget(QLabel("length"))
        ex.addWidget(self.length)
        ex.addStretch(1)

        box = QGroupBox("Input")
        form = QVBoxLayout(box)
        form.addWidget(hint(self.input_hint))
        form.addLayout(row)
        form.addWidget(self.check_label)
        form.addLayout(ex)
        form.addWidget(self.expected)
        form.addWidget(self.vocab_label)

        self.output_box = QGroupBox("Output")
        self.timing = hint("")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(box)
        layout.addWidget(self.output_box)
        layout.addWidget(self.timing)
        layout.addStretch(1)
        self.build_output(self.output_box)

    def build_output(self, box: QGroupBox) -> None:
        raise NotImplementedError

    def model_ready(self, model: SequenceModel) -> None:
        self.vocab = Vocabulary(model.manifest.get("vocab"), model.name)
        self.examples = [e for e in model.examples if isinstance(e, list) and len(e) == 2]
        self.vocab_label.setText("Vocabulary: " + self.vocab.describe())
        self.example_button.setToolTip(
            "A held-out example shipped in the bundle" if self.examples else "Random tokens of the given length"
        )
        self.length.setVisible(not self.examples)
        self.clear_output()
        self.expected.setText("")
        if not self.input.text().strip() or not self.validate():
            self.random_example()

    def random_example(self) -> None:
        """One of the bundle's held-out examples (with what the model should answer), else random tokens."""
        if self.examples:
            text, answer = self.example_pair(self.rng.choice(self.examples))
            self.input.setText(text)
            self.expected.setText(f"{self.expected_caption}: {answer}")
            return
        self.input.setText(self.vocab.example(self.rng, self.length.value()))
        self.expected.setText("")

    expected_caption: ClassVar[str] = "Expected"

    def example_pair(self, example: list[str]) -> tuple[str, str]:
        """(input, what the model should answer) of one of the bundle's examples."""
        raise NotImplementedError

    def validate(self) -> bool:
        """Checks the input as it is typed; says what is wrong right under it."""
        text, ok = self.vocab.check(self.input.text())
        self.check_label.setText(text)
        self.check_label.setStyleSheet("" if ok or not text else f"color: {ERROR_COLOR.name()};")
        if self.expected.text() and not any(self.input.text().strip() == self.example_pair(e)[0] for e in self.examples):
            self.expected.setText("")
        return ok

    def set_enabled(self, ready: bool) -> None:
        self.run_button.setEnabled(ready)
        self.example_button.setEnabled(not self.page.busy)

    def work(self, model: PanelModel, value: SequenceInput) -> tuple[Callable[[Job], Any], Callable[[Any], None]]:
        """(function for the worker, what to do with its result on the UI thread)."""
        raise NotImplementedError

    def clear_output(self) -> None: ...


class ClassifySequencePanel(SequencePanel[SequenceClassifier]):
    input_hint = "A sequence (letters, or token ids separated by spaces); the model assigns it to one class."
    expected_caption = "True class"

    def example_pair(self, example: list[str]) -> tuple[str, str]:
        label, sequence = example
        return sequence, label

    def build_output(self, box: QGroupBox) -> None:
        self.verdict = QLabel(" ")
        font = self.verdict.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        self.verdict.setFont(font)
        self.bars = ProbabilityBars()
        # Inside: the recurrent layers' hidden state and gates at each position (bundles with an inspect graph).
        self.inside_button = QPushButton("Inside")
        self.inside_button.setCheckable(True)
        self.inside_button.setToolTip("Show the hidden state (and each gate) of the recurrent layers over the sequence")
        self.inside_button.toggled.connect(self.show_inside)
        self.inside = TextInsidePanel("Run the model, then look inside.")
        self.inside.save_requested.connect(self.save_inside)
        self.inside_scroll = QScrollArea()  # the map keeps its size (and is saved whole) however small the window
        self.inside_scroll.setWidgetResizable(True)
        self.inside_scroll.setWidget(self.inside)
        self.inside_scroll.setMinimumHeight(240)
        self.inside_scroll.hide()
        layout = QVBoxLayout(box)
        layout.addWidget(self.verdict)
        layout.addWidget(self.bars)
        layout.addWidget(self.inside_button)
        layout.addWidget(self.inside_scroll, 1)

    def clear_output(self) -> None:
        self.verdict.setText(" ")
        self.bars.set_bars([])
        self.inside.clear()

    def show_inside(self, shown: bool) -> None:
        """Show the Inside view; opening it runs the model again on the input to look inside (on a worker)."""
        self.inside_scroll.setVisible(shown)
        # The view takes the page's spare height (else the space below the output keeps it).
        layout = cast(QVBoxLayout, self.layout())
        layout.setStretch(layout.indexOf(self.output_box), 1 if shown else 0)
        layout.setStretch(layout.count() - 1, 0 if shown else 1)
        if shown and self.inside.view is None and self.page.model is not None and self.validate():
            self.page.run()

    def save_inside(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the Inside view as PNG", "inside.png", "PNG (*.png)")
        if path:
            try:
                self.page.show_message(f"Saved {self.inside.save_png(path)}")
            except OSError as exc:
                self.page.fail("Cannot save the PNG", str(exc))

    def work(self, model: SequenceClassifier, value: SequenceInput) -> tuple[Callable[[Job], Any], Callable[[Any], None]]:
        looking = self.inside.isVisible()

        def fn(job: Job) -> tuple[list[Prediction], TextInsideView | str | None]:
            predictions = sorted(model.classify_sequence(value), key=lambda p: -float(p.probability))
            if not looking:
                return predictions, None
            if not model.inspect_layers:
                return predictions, "This bundle has no inspect graph: export it again to see its hidden states."
            return predictions, look_inside_sequence(model, value)

        def show(result: tuple[list[Prediction], TextInsideView | str | None]) -> None:
            predictions, inside = result
            top = predictions[0]
            self.verdict.setText(f"{top.label}  ({100 * float(top.probability):.1f} %)")
            self.bars.set_bars([(p.label, float(p.probability)) for p in predictions[:10]])
            if isinstance(inside, TextInsideView):
                self.inside.show_view(inside)
            elif inside is not None:
                self.inside.clear(inside)

        return fn, show


class TranslatePanel(SequencePanel[Translator]):
    input_hint = "A source sequence (letters, or token ids separated by spaces); the model writes the target."
    expected_caption = "Expected output"

    def example_pair(self, example: list[str]) -> tuple[str, str]:
        source, target = example
        return source, target

    def build_output(self, box: QGroupBox) -> None:
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.output = QLineEdit()
        self.output.setReadOnly(True)
        self.output.setFont(mono)
        self.max_len = QSpinBox()
        self.max_len.setRange(0, 1024)
        self.max_len.setSpecialValueText("model default")
        self.max_len.setToolTip("Longest output to write (0 = the bundle's default)")
        self.max_len.setMaximumWidth(160)
        self.details = hint("")
        # Inside: the attention maps of source and output, labelled (bundles with an inspect graph).
        self.attention = AttentionMaps()
        self.attention.save_button.clicked.connect(self.save_alignment)
        layout = QFormLayout(box)
        layout.addRow("Target", self.output)
        layout.addRow("Max length", self.max_len)
        layout.addRow("", self.details)
        layout.addRow(self.attention)

    def clear_output(self) -> None:
        self.output.clear()
        self.details.setText("")
        self.attention.clear("")

    def save_alignment(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the alignment as PNG", "alignment.png", "PNG (*.png)")
        if path:
            try:
                self.attention.save_png(path)
            except OSError as exc:
                self.page.fail("Cannot save the PNG", str(exc))

    def work(self, model: Translator, value: SequenceInput) -> tuple[Callable[[Job], Any], Callable[[Any], None]]:
        max_len = self.max_len.value() or None

        def fn(job: Job) -> tuple[str | list[int], dict[str, np.ndarray] | str]:
            out = model.translate(value, max_len=max_len)
            out = out if isinstance(out, str) else list(out)
            if not model.inspect_layers:
                return out, "This bundle has no inspect graph: export it again to see the alignment."
            try:
                return out, model.inspect(value, output=out)
            except BundleError as exc:  # the translation stands; only its alignment is missing
                return out, f"No alignment: {exc}"

        def show(result: tuple[str | list[int], dict[str, np.ndarray] | str]) -> None:
            out, inside = result
            if isinstance(inside, str):
                self.attention.clear(inside)
            else:
                source = list(value) if isinstance(value, str) else [str(i) for i in value]
                output = list(out) if isinstance(out, str) else [str(i) for i in out]
                self.attention.show_maps(inside, source, [*output, "eos"])
            self.output.setText(out if isinstance(out, str) else model.target_vocab.decode(out))
            expected = next((e[1] for e in self.examples if isinstance(value, str) and e[0] == value), None)
            if isinstance(value, str):
                verdict = "" if expected is None else (" · matches the expected output" if out == expected else " · differs")
                self.details.setText(f"{len(value)} characters in → {len(out)} out{verdict}")
                return
            same = " · the reverse of the input" if out == value[::-1] else (" · same as the input" if out == value else "")
            self.details.setText(f"{len(value)} tokens in → {len(out)} tokens out{same}")

        return fn, show


# inspect output -> (what it is, what its rows are, what its columns are)
ATTENTION_KINDS: dict[str, tuple[str, str, str]] = {
    "cross_attention": ("Alignment: decoder cross-attention", "output", "source"),
    "encoder_attention": ("Encoder self-attention", "source", "source"),
}


class AttentionMaps(QWidget):
    """A seq2seq model's attention, labelled with the source and output tokens: the decoder's cross-attention
    (the alignment of output and source) or the encoder's self-attention, for a chosen layer and head (or
    the mean of the heads)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrays: dict[str, np.ndarray] = {}
        self.source: list[str] = []
        self.output: list[str] = []
        self.kind = QComboBox()
        self.kind.setToolTip("Which attention to show")
        self.layer = QComboBox()
        self.layer.setToolTip("The attention layer")
        self.head = QComboBox()
        self.head.setToolTip("One head, or the mean of the heads")
        for combo in (self.kind, self.layer, self.head):
            combo.currentIndexChanged.connect(lambda _i: self.redraw())
        self.save_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_DialogSaveButton), "Save PNG…")
        self.caption = hint("")
        self.map = HeatMap()
        self.map.setObjectName("inside-alignment")
        self.pickers = QWidget()
        bar = QHBoxLayout(self.pickers)
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.kind)
        bar.addWidget(QLabel("Layer"))
        bar.addWidget(self.layer)
        bar.addWidget(QLabel("Head"))
        bar.addWidget(self.head)
        bar.addStretch(1)
        bar.addWidget(self.save_button)
        self.sheet = QWidget()  # what is saved as PNG
        sheet_layout = QVBoxLayout(self.sheet)
        sheet_layout.setContentsMargins(0, 0, 0, 0)
        sheet_layout.addWidget(self.caption)
        sheet_layout.addWidget(self.map)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.pickers)
        layout.addWidget(self.sheet)
        self.clear("")

    def clear(self, text: str) -> None:
        self.arrays = {}
        self.caption.setText(text)
        self.map.clear()
        self.map.hide()
        self.pickers.hide()

    def show_maps(self, arrays: dict[str, np.ndarray], source: list[str], output: list[str]) -> None:
        """``arrays``: ``Translator.inspect``'s; ``source`` and ``output`` (eos last): one label per position."""
        self.arrays, self.source, self.output = arrays, source, output
        kinds = [name for name in ATTENTION_KINDS if name in arrays]
        for combo in (self.kind, self.layer, self.head):
            combo.blockSignals(True)
        self.kind.clear()
        for name in kinds:
            self.kind.addItem(ATTENTION_KINDS[name][0], name)
        self.kind.blockSignals(False)
        self.layer.blockSignals(False)
        self.head.blockSignals(False)
        self.pickers.show()
        self.map.show()
        self.redraw()

    def _fit_pickers(self, weights: np.ndarray) -> None:
        """Layer and head choices for the kind shown ([layers, 1, heads, ...]), the last layer and the mean by default."""
        layers, heads = weights.shape[0], weights.shape[2]
        if self.layer.count() != layers:
            self.layer.blockSignals(True)
            self.layer.clear()
            self.layer.addItems([str(i + 1) for i in range(layers)])
            self.layer.setCurrentIndex(layers - 1)
            self.layer.blockSignals(False)
        if self.head.count() != heads + 1:
            self.head.blockSignals(True)
            self.head.clear()
            self.head.addItems(["mean", *[str(i + 1) for i in range(heads)]])
            self.head.blockSignals(False)

    def redraw(self) -> None:
        name = self.kind.currentData()
        if not self.arrays or name not in self.arrays:
            return
        weights = self.arrays[name]
        self._fit_pickers(weights)
        layer, head = max(0, self.layer.currentIndex()), max(0, self.head.currentIndex())
        heads = weights[layer, 0]
        shown = heads.mean(axis=0) if head == 0 else heads[head - 1]
        title, rows_are, columns_are = ATTENTION_KINDS[name]
        row_labels = (self.output if rows_are == "output" else self.source)[: shown.shape[0]]
        column_labels = self.source[: shown.shape[1]]
        which = f"mean of {heads.shape[0]} heads" if head == 0 else f"head {head}"
        reading = (
            "row t: the source tokens read to write output token t (the last row: end of sequence)"
            if name == "cross_attention"
            else "row i: how source token i weighs every source token"
        )
        self.caption.setText(f"{title}, layer {layer + 1}, {which}: {reading}; {shown.shape[0]} x {shown.shape[1]}.")
        self.map.set_map(
            attention_picture(shown, side=320), shown.shape[0], shown.shape[1], row_labels, column_labels, rows_are, columns_are
        )

    def save_png(self, path: str) -> str:
        if not path.lower().endswith(".png"):
            path += ".png"
        if not self.map.has_map or not self.sheet.grab().save(path, "PNG"):
            raise OSError(f"cannot write {path}")
        return path


# task -> the panel that runs it
PANELS: dict[str, type[SequencePanel[Any]]] = {
    SequenceClassifier.task: ClassifySequencePanel,
    Translator.task: TranslatePanel,
}


class SequencePage(ModelPage[SequenceModel]):
    title = "Sequences"
    tasks = tuple(PANELS)
    icon = QStyle.StandardPixmap.SP_FileDialogListView
    supports = frozenset({"run", "stop"})

    def build(self) -> QWidget:
        self.stack = QStackedWidget()
        self.panels: dict[str, SequencePanel[Any]] = {}
        for task, cls in PANELS.items():
            panel = cls(self)
            self.panels[task] = panel
            self.stack.addWidget(panel)
        self.about = hint("")
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.about)
        layout.addWidget(self.stack, 1)
        return body

    @property
    def panel(self) -> SequencePanel[Any]:
        """The panel of the loaded model's task (the first one before any model)."""
        return self.panels[self.model.task] if self.model is not None else next(iter(self.panels.values()))

    def model_ready(self, model: SequenceModel) -> None:
        panel = self.panels[model.task]
        self.stack.setCurrentWidget(panel)
        panel.model_ready(model)
        manifest = model.manifest
        data = (manifest.get("training") or {}).get("data") or manifest.get("description") or ""
        labels = model.labels
        parts = [f"Data: {data}"] if data else []
        if labels:
            parts.append("Classes: " + ", ".join(map(str, labels)))
        self.about.setText(" · ".join(parts))

    def update_controls(self) -> None:
        if not hasattr(self, "panels"):
            return
        for panel in self.panels.values():
            panel.set_enabled(self.model is not None and not self.busy)

    def run(self) -> None:
        if self.model is None or self.busy:
            return
        panel = self.panel
        if not panel.input.text().strip():
            self.show_message("Type a sequence first (or press Random Example).", error=True)
            return
        try:
            value = panel.vocab.encode(panel.input.text())
        except ValueError as exc:
            self.show_message(f"Input: {exc}", error=True)
            return
        if not value:
            self.show_message("Type a sequence first (or press Random Example).", error=True)
            return
        self.show_message("")
        fn, show = panel.work(self.model, value)
        started = time.perf_counter()

        def done(value: Any) -> None:
            show(value)
            panel.timing.setText(f"{1000 * (time.perf_counter() - started):.1f} ms")

        self.start_job(fn, result=done, error=lambda m: self.fail("The model failed", m), name="sequence")
