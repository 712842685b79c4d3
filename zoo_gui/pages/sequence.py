"""Sequence models: the sequence classifier and the seq2seq model take typed token ids.

One page serves both tasks; the panel for the loaded model's task comes from ``PANELS``.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from zoo_gui.pages.base import ModelPage
from zoo_gui.widgets import ProbabilityBars, hint
from zoo_gui.workers import Job
from zoo_runtime import Prediction, SequenceClassifier, Translator, schema

SequenceModel = SequenceClassifier | Translator
PanelModel = TypeVar("PanelModel", SequenceClassifier, Translator)


class Vocabulary:
    """Turns typed text into token ids and back, following the bundle's ``vocab`` block:
    ``kind: ids`` takes integers separated by spaces or commas, ``kind: char`` takes characters."""

    def __init__(self, vocab: dict[str, Any] | None) -> None:
        vocab = vocab or {}
        self.kind = vocab.get("kind", schema.VOCAB_IDS)
        self.tokens = list(vocab.get("tokens") or [])
        specials = vocab.get("specials") or {}
        self.specials = {name: int(v) for name, v in specials.items() if isinstance(v, int)}
        self.size = len(self.tokens) if self.tokens else int(vocab.get("size") or 0)

    @property
    def ordinary_ids(self) -> list[int]:
        reserved = set(self.specials.values())
        return [i for i in range(self.size) if i not in reserved]

    def encode(self, text: str) -> list[int]:
        text = text.strip()
        if self.kind == schema.VOCAB_CHAR:
            index = {str(t): i for i, t in enumerate(self.tokens)}
            ids = []
            for pos, ch in enumerate(text):
                if ch not in index:
                    raise ValueError(f"character {ch!r} at position {pos + 1} is not in the vocabulary")
                ids.append(index[ch])
            return ids
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
        if self.kind == schema.VOCAB_CHAR and self.tokens:
            return "".join(str(self.tokens[i]) if 0 <= i < len(self.tokens) else "?" for i in ids)
        return " ".join(str(i) for i in ids)

    def describe(self) -> str:
        if self.kind == schema.VOCAB_CHAR:
            return f"{self.size} characters"
        text = f"ids 0–{self.size - 1}" if self.size else "integer ids"  # noqa: RUF001 (a range dash)
        if self.specials:
            text += " (" + ", ".join(f"{name} = {v}" for name, v in sorted(self.specials.items(), key=lambda kv: kv[1])) + ")"
        return text

    def example(self, rng: random.Random, length: int) -> str:
        choices = self.ordinary_ids or list(range(max(self.size, 1)))
        return self.decode([rng.choice(choices) for _ in range(length)])


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
        form.addLayout(ex)
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
        self.vocab = Vocabulary(model.manifest.get("vocab"))
        self.vocab_label.setText("Vocabulary: " + self.vocab.describe())
        self.clear_output()
        if not self.input.text().strip():
            self.random_example()

    def random_example(self) -> None:
        self.input.setText(self.vocab.example(self.rng, self.length.value()))

    def set_enabled(self, ready: bool) -> None:
        self.run_button.setEnabled(ready)
        self.example_button.setEnabled(not self.page.busy)

    def work(self, model: PanelModel, ids: list[int]) -> tuple[Callable[[Job], Any], Callable[[Any], None]]:
        """(function for the worker, what to do with its result on the UI thread)."""
        raise NotImplementedError

    def clear_output(self) -> None: ...


class ClassifySequencePanel(SequencePanel[SequenceClassifier]):
    input_hint = "Token ids separated by spaces; the model assigns the whole sequence to one class."

    def build_output(self, box: QGroupBox) -> None:
        self.verdict = QLabel(" ")
        font = self.verdict.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        self.verdict.setFont(font)
        self.bars = ProbabilityBars()
        layout = QVBoxLayout(box)
        layout.addWidget(self.verdict)
        layout.addWidget(self.bars)

    def clear_output(self) -> None:
        self.verdict.setText(" ")
        self.bars.set_bars([])

    def work(self, model: SequenceClassifier, ids: list[int]) -> tuple[Callable[[Job], Any], Callable[[Any], None]]:
        def fn(job: Job) -> list[Prediction]:
            return sorted(model.classify_sequence(ids), key=lambda p: -float(p.probability))

        def show(predictions: list[Prediction]) -> None:
            top = predictions[0]
            self.verdict.setText(f"{top.label}  ({100 * float(top.probability):.1f} %)")
            self.bars.set_bars([(p.label, float(p.probability)) for p in predictions[:10]])

        return fn, show


class TranslatePanel(SequencePanel[Translator]):
    input_hint = "Source token ids separated by spaces; the model writes the target sequence."

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
        layout = QFormLayout(box)
        layout.addRow("Target", self.output)
        layout.addRow("Max length", self.max_len)
        layout.addRow("", self.details)

    def clear_output(self) -> None:
        self.output.clear()
        self.details.setText("")

    def work(self, model: Translator, ids: list[int]) -> tuple[Callable[[Job], Any], Callable[[Any], None]]:
        max_len = self.max_len.value() or None

        def fn(job: Job) -> list[int]:
            return list(model.translate(list(ids), max_len=max_len))

        def show(out: list[int]) -> None:
            self.output.setText(self.vocab.decode(out))
            same = " · the reverse of the input" if out == ids[::-1] else (" · same as the input" if out == ids else "")
            self.details.setText(f"{len(ids)} tokens in → {len(out)} tokens out{same}")

        return fn, show


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
        try:
            ids = panel.vocab.encode(panel.input.text())
        except ValueError as exc:
            self.show_message(f"Input: {exc}", error=True)
            return
        if not ids:
            self.show_message("Type a sequence first (or press Random Example).", error=True)
            return
        self.show_message("")
        fn, show = panel.work(self.model, ids)
        started = time.perf_counter()

        def done(value: Any) -> None:
            show(value)
            panel.timing.setText(f"{1000 * (time.perf_counter() - started):.1f} ms")

        self.start_job(fn, result=done, error=lambda m: self.fail("The model failed", m), name="sequence")
