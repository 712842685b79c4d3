"""Text and DNA generation: sampling settings, streamed output, Stop, tokens per second."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFontDatabase, QGuiApplication, QTextCharFormat, QTextCursor, QTextOption
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from zoo_gui.inside_text import TextInsidePanel, TextInsideView, look_inside_text
from zoo_gui.pages.base import ModelPage
from zoo_gui.widgets import hint
from zoo_gui.workers import Chunk, StreamSummary, stream
from zoo_runtime import TextGenerator

TEXT_PROMPT = "ROMEO:\n"
DNA_PROMPT = "ATG"
FALLBACK_SAMPLING: dict[str, Any] = {"temperature": 0.8, "top_k": None, "top_p": None, "max_new_tokens": 300}
MAX_SEED = 2**31 - 1


def gc_content(sequence: str) -> tuple[int, float | None]:
    """(number of A/C/G/T bases, fraction that are G or C)."""
    s = sequence.upper()
    bases = sum(s.count(b) for b in "ACGT")
    gc = s.count("G") + s.count("C")
    return bases, (gc / bases if bases else None)


def fasta(sequence: str, header: str, width: int = 70) -> str:
    bases = "".join(ch for ch in sequence.upper() if ch in "ACGTN")
    lines = [bases[i : i + width] for i in range(0, len(bases), width)]
    return f">{header}\n" + "\n".join(lines) + "\n"


class GeneratePage(ModelPage[TextGenerator]):
    title = "Generate"
    tasks = (TextGenerator.task,)
    icon = QStyle.StandardPixmap.SP_FileDialogDetailedView
    supports = frozenset({"run", "stop", "save"})
    run_label = "Generate"

    def build(self) -> QWidget:
        self._generated: list[str] = []
        self._prompt_used = ""
        self._default_prompt = ""

        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)

        # ---- settings column
        self.prompt = QPlainTextEdit()
        self.prompt.setFont(mono)
        self.prompt.setPlaceholderText("Type the start of the text…")
        self.prompt.setFixedHeight(96)
        self.prompt.setTabChangesFocus(True)

        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 3.0)
        self.temperature.setSingleStep(0.05)
        self.temperature.setDecimals(2)
        self.temperature.setSpecialValueText("0 (greedy)")
        self.temperature.setToolTip("Higher is more surprising; 0 always takes the most likely token")
        self.top_k = QSpinBox()
        self.top_k.setRange(0, 100000)
        self.top_k.setSpecialValueText("off")
        self.top_k.setToolTip("Sample only from the k most likely tokens (0 = off)")
        self.top_p = QDoubleSpinBox()
        self.top_p.setRange(0.01, 1.0)
        self.top_p.setSingleStep(0.05)
        self.top_p.setDecimals(2)
        self.top_p.setToolTip("Sample from the smallest set of tokens whose probability adds up to p (1.00 = off)")
        self.seed = QSpinBox()
        self.seed.setRange(0, MAX_SEED)
        self.seed.setValue(1234)
        self.seed.setToolTip("The same seed and settings give the same text")
        self.dice = QToolButton()
        self.dice.setText("Random")
        self.dice.setToolTip("New random seed")
        self.dice.clicked.connect(lambda: self.seed.setValue(random.randint(0, MAX_SEED)))
        seed_row = QHBoxLayout()
        seed_row.setContentsMargins(0, 0, 0, 0)
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.dice)
        seed_box = QWidget()
        seed_box.setLayout(seed_row)
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(1, 100000)
        self.max_tokens.setSingleStep(50)
        self.defaults_button = QPushButton("Model defaults")
        self.defaults_button.setToolTip("Reset the sampling settings to the bundle's defaults")
        self.defaults_button.clicked.connect(self._apply_defaults)

        form = QFormLayout()
        form.addRow("Temperature", self.temperature)
        form.addRow("Top-k", self.top_k)
        form.addRow("Top-p", self.top_p)
        form.addRow("Seed", seed_box)
        form.addRow("Max tokens", self.max_tokens)
        form.addRow("", self.defaults_button)
        settings = QGroupBox("Sampling")
        settings.setLayout(form)

        self.generate_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay), "Generate")
        self.generate_button.setToolTip("Generate (Ctrl+Return)")
        self.generate_button.setDefault(True)
        self.generate_button.clicked.connect(self.run)
        self.stop_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaStop), "Stop")
        self.stop_button.setToolTip("Stop generating (Esc)")
        self.stop_button.clicked.connect(self.stop)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 1)
        buttons.addWidget(self.stop_button)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 8, 0)
        left_layout.addWidget(QLabel("Prompt"))
        left_layout.addWidget(self.prompt)
        left_layout.addWidget(settings)
        left_layout.addLayout(buttons)
        left_layout.addWidget(hint("Ctrl+Return generates, Esc stops."))
        left_layout.addStretch(1)
        left.setMinimumWidth(300)
        left.setMaximumWidth(380)

        # ---- output column
        self.output = QPlainTextEdit()
        self.output.setReadOnly(True)
        self.output.setFont(mono)
        self.output.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.output.setPlaceholderText("The generated text streams in here.")
        self.stats = QLabel(" ")
        self.stats.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.dna_stats = QLabel("")
        self.dna_stats.hide()
        self.copy_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_DialogApplyButton), "Copy")
        self.copy_button.setToolTip("Copy the prompt and the generated text")
        self.copy_button.clicked.connect(self.copy)
        self.save_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_DialogSaveButton), "Save…")
        self.save_button.setToolTip("Save the text (Ctrl+S)")
        self.save_button.clicked.connect(self.save)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.clear_output)
        out_bar = QHBoxLayout()
        out_bar.addWidget(self.stats, 1)
        out_bar.addWidget(self.dna_stats)
        out_bar.addSpacing(12)
        out_bar.addWidget(self.copy_button)
        out_bar.addWidget(self.save_button)
        out_bar.addWidget(self.clear_button)
        self.inside_button = QPushButton("Inside")
        self.inside_button.setCheckable(True)
        self.inside_button.setToolTip("Show the model's attention (GPT) or hidden state (LSTM, GRU) over the text")
        self.inside_button.toggled.connect(self.show_inside)
        out_bar.addWidget(self.inside_button)
        self.inside = TextInsidePanel()
        self.inside.save_requested.connect(self.save_inside)
        self.inside.hide()
        self._inside_request = 0

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(8, 0, 0, 0)
        right_layout.addWidget(QLabel("Output"))
        right_layout.addWidget(self.output, 1)
        right_layout.addLayout(out_bar)
        right_layout.addWidget(self.inside, 1)

        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setChildrenCollapsible(False)
        return splitter

    # ---- model

    @property
    def is_dna(self) -> bool:
        return self.model is not None and self.model.is_dna

    def model_ready(self, model: TextGenerator) -> None:
        self.inside.clear()
        if self._generated:
            self.stats.setText("Model changed: generate again for this model's text.")
        self._apply_defaults()
        prompt = self.prompt.toPlainText()
        default = DNA_PROMPT if self.is_dna else self._text_prompt(model)
        if not prompt or prompt == self._default_prompt:
            self.prompt.setPlainText(default)
        self._default_prompt = default
        self.prompt.setPlaceholderText("Start of a DNA sequence (A, C, G, T)…" if self.is_dna else "Type the start of the text…")
        self.dna_stats.setVisible(self.is_dna)
        self._update_stats()

    @staticmethod
    def _text_prompt(model: TextGenerator) -> str:
        """TEXT_PROMPT, less what the vocabulary lacks (never empty: the model needs a start)."""
        tokens = model.vocab
        kept = "".join(ch for ch in TEXT_PROMPT if ch in tokens)
        return kept if kept.strip() else next((t for t in tokens if t.isalnum()), tokens[0])

    def _apply_defaults(self) -> None:
        """The bundle's sampling defaults, as the runtime resolved them."""
        given = self.model.sampling if self.model is not None else {}
        sampling = {**FALLBACK_SAMPLING, **{k: v for k, v in given.items() if v is not None}}
        self.temperature.setValue(float(sampling.get("temperature") or 0.0))
        self.top_k.setValue(int(sampling.get("top_k") or 0))
        self.top_p.setValue(float(sampling.get("top_p") or 1.0))
        self.max_tokens.setValue(int(sampling.get("max_new_tokens") or FALLBACK_SAMPLING["max_new_tokens"]))

    def sampling(self) -> dict[str, Any]:
        """The settings as ``generate()`` keyword arguments. Always explicit values: None would
        mean "the bundle's default", while top-k 0 and top-p 1.0 mean off."""
        return {
            "max_new_tokens": self.max_tokens.value(),
            "temperature": self.temperature.value(),
            "top_k": self.top_k.value(),
            "top_p": self.top_p.value(),
            "seed": self.seed.value(),
        }

    # ---- generating

    def run(self) -> None:
        if self.model is None:
            self.show_message("Choose a model first.")
            return
        if self.busy:
            return
        model = self.model
        prompt = self.prompt.toPlainText()
        if self.is_dna:
            prompt = prompt.strip().upper()
        kwargs = self.sampling()
        self._generated = []
        self._prompt_used = prompt
        self.output.clear()
        self._append(prompt, prompt=True)
        self.show_message("")
        self.stats.setText("Generating…")
        self.start_job(
            lambda job: stream(job, model.generate(prompt, **kwargs)),
            result=self._on_done,
            progress=self._on_chunk,
            error=self._on_error,
            name="generate",
        )

    def _append(self, text: str, *, prompt: bool = False) -> None:
        if not text:
            return
        bar = self.output.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 4
        cursor = QTextCursor(self.output.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        fmt = QTextCharFormat()
        if prompt:
            fmt.setForeground(QColor("#2f6db5"))
            fmt.setFontWeight(700)
        cursor.insertText(text, fmt)
        if at_end:
            bar.setValue(bar.maximum())

    def _on_chunk(self, chunk: Chunk) -> None:
        self._generated.append(chunk.text)
        self._append(chunk.text)
        rate = chunk.pieces / chunk.elapsed if chunk.elapsed > 0 else 0.0
        self.stats.setText(f"Generating… {chunk.pieces} tokens · {rate:,.0f} tokens/s")
        self._update_stats()

    def _on_done(self, summary: StreamSummary) -> None:
        self.refresh_inside()
        state = "Stopped" if summary.stopped else "Done"
        self.stats.setText(f"{state}: {summary.pieces} tokens in {summary.elapsed:.2f} s · {summary.rate:,.0f} tokens/s")
        self._update_stats()
        self.ctx.show_status(f"{state}: {summary.pieces} tokens, {summary.rate:,.0f} tokens/s")

    def _on_error(self, message: str) -> None:
        self.stats.setText("Failed")
        self.fail("Generation failed", message)

    def _update_stats(self) -> None:
        if not self.is_dna:
            return
        bases, gc = gc_content(self.generated_text())
        gc_text = f"{100 * gc:.1f} %" if gc is not None else "—"
        self.dna_stats.setText(f"Generated {bases:,} nt · GC content {gc_text}")

    def generated_text(self) -> str:
        return "".join(self._generated)

    def full_text(self) -> str:
        return self._prompt_used + self.generated_text()

    def update_controls(self) -> None:
        if not hasattr(self, "generate_button"):
            return
        busy = self.busy
        self.generate_button.setEnabled(self.model is not None and not busy)
        self.stop_button.setEnabled(busy)
        for w in (
            self.prompt,
            self.temperature,
            self.top_k,
            self.top_p,
            self.seed,
            self.dice,
            self.max_tokens,
            self.defaults_button,
        ):
            w.setEnabled(not busy)
        has_text = bool(self._generated)
        self.copy_button.setEnabled(has_text)
        self.save_button.setEnabled(has_text and not busy)
        self.clear_button.setEnabled(not busy)

    def can(self, action: str) -> bool:
        if action == "save":
            return bool(self._generated) and not self.busy
        return super().can(action)

    # ---- looking inside

    def show_inside(self, shown: bool) -> None:
        self.inside.setVisible(shown)
        if shown:
            self.refresh_inside()

    def refresh_inside(self) -> None:
        """Look inside over the prompt and the output on a worker; a newer request or another model drops it."""
        if not self.inside.isVisible() or self.model is None:
            return
        text = self.full_text() or self.prompt.toPlainText()
        if self.is_dna:
            text = text.strip().upper()
        if not text:
            self.inside.clear()
            return
        self._inside_request += 1
        request, model = self._inside_request, self.model

        def current() -> bool:
            return request == self._inside_request and self.model is model

        self.inside.set_waiting("Looking inside…")
        self.ctx.runner.submit(
            lambda _job: look_inside_text(model, text),
            name="inside",
            result=lambda view: self._show_inside(view) if current() else None,
            error=lambda message: self.inside.clear(message) if current() else None,
        )

    def _show_inside(self, view: TextInsideView) -> None:
        self.inside.show_view(view)

    def save_inside(self) -> None:
        start = Path(str(self.ctx.settings.value("generate/last_dir", str(Path.home())))) / "inside.png"
        path, _ = QFileDialog.getSaveFileName(self, "Save the Inside view as PNG", str(start), "PNG (*.png)")
        if not path:
            return
        try:
            self.show_message(f"Saved {self.inside.save_png(path)}")
        except OSError as exc:
            self.fail("Cannot save the PNG", str(exc))

    # ---- copy and save

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.full_text())
        self.ctx.show_status("Copied to the clipboard")

    def clear_output(self) -> None:
        self.output.clear()
        self._generated = []
        self._prompt_used = ""
        self.stats.setText(" ")
        self._update_stats()
        self._changed()

    def save(self) -> None:
        if not self.can("save"):
            return
        if self.is_dna:
            suggestion, filters = "generated.fasta", "FASTA (*.fasta *.fa);;Text (*.txt)"
        else:
            suggestion, filters = "generated.txt", "Text (*.txt);;All files (*)"
        start = Path(str(self.ctx.settings.value("generate/last_dir", str(Path.home())))) / suggestion
        path, _ = QFileDialog.getSaveFileName(self, "Save the generated text", str(start), filters)
        if not path:
            return
        try:
            self.save_to(path)
        except OSError as exc:
            self.fail("Cannot save", f"{path}: {exc.strerror or exc}")

    def save_to(self, path: Path | str) -> Path:
        path = Path(path)
        if self.is_dna and path.suffix.lower() in (".fasta", ".fa", ".fna"):
            s = self.sampling()
            name = self.model.name if self.model else "model"
            header = f"{name} seed={s['seed']} temperature={s['temperature']:g} length={len(self.full_text())}"
            text = fasta(self.full_text(), header)
        else:
            text = self.full_text()
        path.write_text(text, encoding="utf-8")
        self.ctx.settings.setValue("generate/last_dir", str(path.parent))
        self.show_message(f"Saved to {path}")
        return path
