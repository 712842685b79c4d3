"""The main window and the ``zoo-gui`` command.

    zoo-gui [DIR_OR_BUNDLE...] [--device auto|cpu] [--page PAGE]

The window is a sidebar (Library, then one page per task from ``zoo_gui.pages.PAGES``)
beside a stack of pages, a menu bar with the main actions and their shortcuts, and a
status bar with the provider the current model runs on (and why, when it fell back).
"""

from __future__ import annotations

import argparse
import html
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from PySide6 import __version__ as PYSIDE_VERSION
from PySide6.QtCore import QSettings, QSize, Qt, QTimer, Signal, qVersion
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QStyle,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

import zoo_gui
from zoo_gui import APP_NAME, ORG_DOMAIN, ORG_NAME
from zoo_gui.formatting import short_provider
from zoo_gui.library import LibraryPage
from zoo_gui.pages import PAGES, AppContext, ModelPage, page_for_task
from zoo_gui.pages.classify import ClassifyPage
from zoo_gui.store import ModelStore
from zoo_gui.widgets import busy_bar
from zoo_gui.workers import Runner
from zoo_runtime.cli import HelpFormatter, add_trusted_key_option, missing_trusted_keys, positive_int

DEVICES = {"auto": "Auto (CUDA when available)", "cpu": "CPU only", "cuda": "CUDA (else CPU, with the reason)"}
MIN_SIZE = QSize(1100, 720)
DEFAULT_SIZE = QSize(1320, 840)


PAGE_CLASSES: tuple[type[LibraryPage] | type[ModelPage], ...] = (LibraryPage, *PAGES)  # sidebar order
PAGE_KEYS = [str(cls.title).lower() for cls in PAGE_CLASSES]  # for --page and show_page()


def _version(*dists: str) -> str | None:
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def about_facts(store: ModelStore | None = None, page: ModelPage | None = None) -> list[tuple[str, str]]:
    """(name, value) rows for the About dialog: versions and execution providers."""
    import numpy

    import zoo_runtime

    facts = [
        (APP_NAME, zoo_gui.__version__),
        ("zoo_runtime", str(getattr(zoo_runtime, "__version__", zoo_gui.__version__))),
        ("Python", platform.python_version()),
        ("PySide6 / Qt", f"{PYSIDE_VERSION} / {qVersion()}"),
        ("NumPy", numpy.__version__),
    ]
    try:
        import onnxruntime

        facts.append(("ONNX Runtime", onnxruntime.__version__ + (" (GPU build)" if _version("onnxruntime-gpu") else "")))
        facts.append(("Available providers", ", ".join(short_provider(p) for p in onnxruntime.get_available_providers())))
    except Exception as exc:  # the app still opens; the library will show why bundles cannot load
        facts.append(("ONNX Runtime", f"not importable: {exc}"))
    if store is not None:
        facts.append(("Device setting", DEVICES.get(store.device, store.device)))
    if page is not None and page.model is not None:
        provider, note = page.provider_text()
        facts.append(("Current model runs on", provider + (f" — {note}" if note else "")))
    facts.append(("Platform", f"{platform.system()} {platform.release()} ({QGuiApplication.platformName()})"))
    return facts


class AboutDialog(QDialog):
    def __init__(self, parent: QWidget | None, facts: list[tuple[str, str]]) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"About {APP_NAME}")
        self.setMinimumSize(520, 380)
        self.facts = facts
        text = QTextBrowser()
        rows = "".join(
            f"<tr><td style='color:#666;padding-right:16px'>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in facts
        )
        text.setHtml(
            f"<h2>{APP_NAME} {html.escape(zoo_gui.__version__)}</h2>"
            "<p>Runs exported Model Zoo bundles offline with ONNX Runtime: image classification, "
            "text and DNA generation, GAN sampling and sequence models. No PyTorch needed.</p>"
            f"<table>{rows}</table>"
        )
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(buttons)


class MainWindow(QMainWindow):
    """The app window. ``settings`` defaults to the user's QSettings (tests pass their own)."""

    error_reported = Signal(str, str)  # title, message

    def __init__(
        self,
        paths: Sequence[Path | str] = (),
        *,
        settings: QSettings | None = None,
        device: str | None = None,
        threads: int | None = None,
        scan: bool = True,
        trusted_keys: Sequence[Path] = (),
    ) -> None:
        super().__init__()
        self.settings = settings if settings is not None else QSettings()
        self.errors: list[tuple[str, str]] = []
        self.error_box: QMessageBox | None = None
        self.about_dialog: AboutDialog | None = None

        device = device or str(self.settings.value("device", "auto"))
        self.runner = Runner(parent=self)
        self.store = ModelStore(
            self.runner,
            device=device if device in DEVICES else "auto",
            threads=threads,
            parent=self,
            trusted_keys=trusted_keys,
        )
        self.ctx = AppContext(
            runner=self.runner,
            store=self.store,
            settings=self.settings,
            report_error=self.report_error,
            show_status=lambda text: self.statusBar().showMessage(text, 8000),
        )

        self.library = LibraryPage(
            self.runner, self.store, self.settings, [Path(p) for p in paths], report_error=self.report_error
        )
        self.pages: dict[type[ModelPage], ModelPage] = {cls: cls(self.ctx) for cls in PAGES}

        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_ComputerIcon))
        self._build_layout()
        self._build_actions()
        self._build_status_bar()

        self.library.bundles_changed.connect(self._on_bundles)
        self.library.open_requested.connect(self.open_bundle)
        self.library.table.selectionModel().currentRowChanged.connect(lambda *_: self._update_provider())
        self.store.loaded.connect(lambda *_: self._update_provider())
        for page in self.pages.values():
            page.state_changed.connect(self._update_actions)
            page.model_changed.connect(lambda _m: self._update_provider())
        self.runner.busy_changed.connect(self.busy.setVisible)

        self._restore_geometry()
        self.show_page("library")
        if scan:
            self.library.refresh()

    # ------------------------------------------------------------------ layout

    def _build_layout(self) -> None:
        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setFixedWidth(180)
        self.sidebar.setIconSize(QSize(20, 20))
        self.sidebar.setStyleSheet(
            "QListWidget#sidebar { border: none; border-right: 1px solid palette(mid); background: palette(window);"
            " padding-top: 8px; outline: 0; }"
            "QListWidget#sidebar::item { padding: 9px 10px; margin: 1px 8px; border-radius: 6px; }"
            "QListWidget#sidebar::item:selected { background: palette(highlight); color: palette(highlighted-text); }"
            "QListWidget#sidebar::item:hover:!selected { background: palette(midlight); }"
        )
        font = self.sidebar.font()
        font.setPointSizeF(font.pointSizeF() * 1.1)
        self.sidebar.setFont(font)
        self.stack = QStackedWidget()
        self._page_widgets: list[LibraryPage | ModelPage] = [self.library, *self.pages.values()]
        for i, widget in enumerate(self._page_widgets, 1):
            item = QListWidgetItem(self.style().standardIcon(widget.icon), widget.title)
            item.setToolTip(f"{widget.title} (Ctrl+{i})")
            self.sidebar.addItem(item)
            self.stack.addWidget(widget)
        self.sidebar.currentRowChanged.connect(self._on_sidebar)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.sidebar)
        pages = QWidget()
        inner = QVBoxLayout(pages)
        inner.setContentsMargins(14, 10, 14, 6)
        inner.addWidget(self.stack)
        layout.addWidget(pages, 1)
        self.setCentralWidget(central)

    def _action(self, text: str, shortcut: str | QKeySequence.StandardKey | list | None, slot, tip: str = "") -> QAction:
        action = QAction(text, self)
        if isinstance(shortcut, list):
            action.setShortcuts([QKeySequence(s) for s in shortcut])
        elif shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work even where the menu bar is hidden
        return action

    def _build_actions(self) -> None:
        menu = self.menuBar()
        self.open_images_action = self._action("&Open Images…", "Ctrl+O", self.open_images, "Classify image files")
        self.open_folder_action = self._action("Open &Folder of Bundles…", "Ctrl+Shift+O", self.library.choose_folder)
        self.save_action = self._action("&Save…", "Ctrl+S", lambda: self._page_action("save"), "Save the current page's result")
        self.refresh_action = self._action("&Refresh Library", "F5", self.library.refresh)
        self.forget_action = self._action("Forget Opened Folders", None, self.library.forget_folders)
        self.quit_action = self._action("&Quit", "Ctrl+Q", self.close)
        file_menu = menu.addMenu("&File")
        for a in (self.open_images_action, self.open_folder_action, self.save_action):
            file_menu.addAction(a)
        file_menu.addSeparator()
        file_menu.addAction(self.refresh_action)
        file_menu.addAction(self.forget_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)

        self.run_action = self._action("&Run / Generate", ["Ctrl+Return", "Ctrl+Enter"], lambda: self._page_action("run"))
        self.stop_action = self._action("&Stop", "Esc", lambda: self._page_action("stop"))
        self.stop_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        run_menu = menu.addMenu("&Run")
        run_menu.addAction(self.run_action)
        run_menu.addAction(self.stop_action)
        run_menu.addSeparator()
        device_menu = run_menu.addMenu("&Device")
        self.device_group = QActionGroup(self)
        self.device_actions: dict[str, QAction] = {}
        for key, label in DEVICES.items():
            action = QAction(label, self, checkable=True)
            action.setChecked(key == self.store.device)
            action.triggered.connect(lambda _checked=False, key=key: self.set_device(key))
            self.device_group.addAction(action)
            device_menu.addAction(action)
            self.device_actions[key] = action

        view_menu = menu.addMenu("&View")
        for i, (key, widget) in enumerate(zip(PAGE_KEYS, self._page_widgets, strict=True), 1):
            view_menu.addAction(self._action(widget.title, f"Ctrl+{i}", lambda _c=False, key=key: self.show_page(key)))

        help_menu = menu.addMenu("&Help")
        self.about_action = self._action(f"&About {APP_NAME}", "F1", self.show_about)
        help_menu.addAction(self.about_action)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.busy = busy_bar(self)
        self.provider_label = QLabel("")
        self.provider_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        bar.addPermanentWidget(self.busy)
        bar.addPermanentWidget(self.provider_label)

    def _restore_geometry(self) -> None:
        screen = QGuiApplication.primaryScreen()
        available = screen.availableSize() if screen is not None else DEFAULT_SIZE
        self.setMinimumSize(MIN_SIZE.boundedTo(available))
        geometry = self.settings.value("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(DEFAULT_SIZE.boundedTo(available))

    # ------------------------------------------------------------------ pages

    def current_page(self) -> LibraryPage | ModelPage:
        return self._page_widgets[max(self.stack.currentIndex(), 0)]

    def page(self, key: str | type[ModelPage]) -> LibraryPage | ModelPage:
        if isinstance(key, type):
            return self.pages[key]
        return self._page_widgets[PAGE_KEYS.index(key)]

    def show_page(self, key: str | type[ModelPage]) -> LibraryPage | ModelPage:
        widget = self.page(key)
        self.sidebar.setCurrentRow(self._page_widgets.index(widget))
        return widget

    def _on_sidebar(self, row: int) -> None:
        if row < 0:
            return
        self.stack.setCurrentIndex(row)
        self.setWindowTitle(f"{self.current_page().title} — {APP_NAME}")
        self.statusBar().clearMessage()  # news from the page left behind
        self._update_actions()
        self._update_provider()

    def _on_bundles(self, infos: list) -> None:
        for page in self.pages.values():
            page.set_bundles(infos)

    def open_bundle(self, key: str) -> ModelPage | None:
        """Show the page for a library bundle, with that bundle chosen."""
        info = next((i for i in self.library.bundles() if i.key == key), None)
        cls = page_for_task(info.task if info else None)
        if info is None or cls is None:
            self.report_error("Cannot open this bundle", f"{key}: no page handles the task {info.task if info else '?'!r}")
            return None
        page = self.pages[cls]
        page.select_bundle(key)
        self.show_page(cls)
        return page

    def open_images(self) -> None:
        self.show_page(ClassifyPage)
        self.pages[ClassifyPage].open_files()

    def _page_action(self, action: str) -> None:
        page = self.current_page()
        if isinstance(page, ModelPage) and page.can(action):
            getattr(page, action)()

    def _update_actions(self) -> None:
        page = self.current_page()
        task_page = page if isinstance(page, ModelPage) else None
        self.run_action.setEnabled(task_page is not None and task_page.can("run"))
        self.stop_action.setEnabled(task_page is not None and task_page.can("stop"))
        self.save_action.setEnabled(task_page is not None and task_page.can("save"))
        if task_page is not None:
            self.run_action.setText(f"&{task_page.run_label}")

    def _update_provider(self) -> None:
        page = self.current_page()
        provider, note = "", None
        if isinstance(page, ModelPage):
            provider, note = page.provider_text()
        elif page is self.library:
            info = self.library.current_info()
            if info is not None and info.provider:
                provider, note = short_provider(info.provider), info.provider_note
        if not provider:
            self.provider_label.setText(f"Device: {DEVICES[self.store.device]}")
            self.provider_label.setToolTip("")
            self.provider_label.setStyleSheet("")
            return
        text = f"Provider: {provider}"
        if note:
            text += f"  (fell back: {note})"
            self.provider_label.setStyleSheet("color: #b9770e;")
        else:
            self.provider_label.setStyleSheet("")
        self.provider_label.setText(text)
        self.provider_label.setToolTip(note or f"Inference runs on {provider}")

    def set_device(self, device: str) -> None:
        if device not in DEVICES:
            return
        self.settings.setValue("device", device)
        self.device_actions[device].setChecked(True)
        self.store.set_device(device)
        self.statusBar().showMessage(f"Device: {DEVICES[device]} — reloading models", 6000)
        self._update_provider()

    # ------------------------------------------------------------------ messages

    def report_error(self, title: str, message: str) -> None:
        """Every error the user should know about: the status bar, a non-blocking message box."""
        self.errors.append((title, message))
        first_line = message.splitlines()[0] if message else ""
        self.statusBar().showMessage(f"⚠ {title}: {first_line}", 15000)
        self.error_reported.emit(title, message)
        box = self.error_box
        if box is None:
            box = QMessageBox(QMessageBox.Icon.Warning, title, "", QMessageBox.StandardButton.Ok, self)
            box.setModal(False)
            box.setWindowModality(Qt.WindowModality.NonModal)
            self.error_box = box
        box.setWindowTitle(title)
        box.setText(f"<b>{html.escape(title)}</b>")
        box.setInformativeText(html.escape(message).replace("\n", "<br>"))
        box.show()
        if QGuiApplication.platformName() != "offscreen":  # it has no window stacking (and says so on stderr)
            box.raise_()

    def show_about(self) -> AboutDialog:
        page = self.current_page()
        self.about_dialog = AboutDialog(self, about_facts(self.store, page if isinstance(page, ModelPage) else None))
        self.about_dialog.show()
        return self.about_dialog

    # ------------------------------------------------------------------ closing

    def closeEvent(self, event: QCloseEvent) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.sync()
        self.runner.shutdown(5000)
        if self.error_box is not None:
            self.error_box.close()
        if self.about_dialog is not None:
            self.about_dialog.close()
        super().closeEvent(event)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo-gui",
        description=f"{APP_NAME}: a desktop app for exported bundles (classify images, generate text and DNA, "
        "sample GANs, run sequence models). models_out/ in the current folder and folders opened before are "
        "always listed.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("paths", nargs="*", metavar="DIR_OR_BUNDLE", help="bundle folders, or folders to search for bundles")
    parser.add_argument(
        "--device", choices=sorted(DEVICES), default=None, help="where models run (default: the saved setting, else auto)"
    )
    parser.add_argument(
        "--threads", type=positive_int, default=None, help="CPU threads per model (default: ONNX Runtime's choice)"
    )
    parser.add_argument("--page", choices=PAGE_KEYS, default="library", help="page to show first")
    add_trusted_key_option(parser, "load only bundles signed", "")
    parser.add_argument("--version", action="version", version=f"%(prog)s {zoo_gui.__version__}")
    return parser


def make_app(argv: Sequence[str] = ()) -> QApplication:
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else None
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else "zoo-gui", *argv])
        app.setStyle("Fusion")
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setOrganizationName(ORG_NAME)
    app.setOrganizationDomain(ORG_DOMAIN)
    app.setApplicationVersion(zoo_gui.__version__)
    app.setDesktopFileName("zoo-gui")
    return app


def path_problem(path: Path) -> str | None:
    """Why the library could not list anything from a command-line path, or None."""
    if not path.exists():
        return f"{path}: no such file or folder"
    if path.is_file() and path.suffix != ".onnx":
        return f"{path}: a file, but not an .onnx model; give a bundle folder, an .onnx file or a folder to search"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse's own codes
        return int(exc.code or 0)
    problems = [problem for p in args.paths if (problem := path_problem(Path(p).expanduser()))]
    problems += missing_trusted_keys(args.trusted_key)
    if problems:
        print("zoo-gui: error: " + "\n  ".join(problems), file=sys.stderr)
        return 2
    app = make_app()
    window = MainWindow(args.paths, device=args.device, threads=args.threads, trusted_keys=args.trusted_key or ())
    window.show()
    if args.page != "library":
        window.show_page(args.page)
    # Ctrl+C in the terminal closes the window instead of being ignored by Qt's loop.
    import signal

    signal.signal(signal.SIGINT, lambda *_: window.close())
    timer = QTimer(window)
    timer.start(250)
    timer.timeout.connect(lambda: None)  # lets Python see the signal
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
