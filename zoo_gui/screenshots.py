"""Screenshots of every page of the real app, driven on real bundles.

    python -m zoo_gui.screenshots --runs models_out --out docs/screenshots

Starts the app on the bundles under ``--runs``, opens each page with a bundle of its task,
runs it (classifies Fashion-MNIST test images, generates text and DNA, samples a GAN grid
and interpolates, runs the sequence models) and saves a PNG of the window per page.

The window is a real X11 window: with a ``DISPLAY`` the app uses it; without one it runs
itself again under ``xvfb-run -a`` (Debian's ``xvfb``). Where neither works it renders with
Qt's offscreen platform and says so (the pixels are the same widgets, without a window system).
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo_runtime import schema
from zoo_runtime.cli import HelpFormatter

if TYPE_CHECKING:  # Qt is imported only when screenshots are taken
    from zoo_gui.pages import ModelPage

SIZE = (1320, 840)
XVFB_SCREEN = "1600x1000x24"
IN_XVFB = "ZOO_GUI_SCREENSHOTS_IN_XVFB"
FASHION_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
TEXT_PROMPT = "ROMEO:\n"
DNA_PROMPT = "ATGGCG"


def log(text: str) -> None:
    print(f"screenshots: {text}", flush=True)


# ----------------------------------------------------------------------------- platform


def _xcb_works(xvfb: bool) -> bool:
    """Can Qt open its xcb platform here (under xvfb-run when ``xvfb``)? Needs Debian's
    libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1, ... besides Xvfb."""
    probe = [sys.executable, "-c", "from PySide6.QtWidgets import QApplication; QApplication(['probe'])"]
    cmd = (["xvfb-run", "-a", "-s", f"-screen 0 {XVFB_SCREEN}", *probe]) if xvfb else probe
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb"}
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        log(f"the xcb platform does not start ({last})")
    return done.returncode == 0


def choose_platform(requested: str, argv: Sequence[str]) -> tuple[str, int | None]:
    """('xcb' | 'offscreen', exit code of a re-run under xvfb-run or None)."""
    if requested == "offscreen":
        return "offscreen", None
    if os.environ.get("DISPLAY") and (os.environ.get(IN_XVFB) or _xcb_works(xvfb=False)):
        return "xcb", None
    if requested in ("auto", "xcb") and not os.environ.get(IN_XVFB) and shutil.which("xvfb-run") and _xcb_works(xvfb=True):
        log(f"no DISPLAY: running under xvfb-run -a (screen {XVFB_SCREEN})")
        cmd = ["xvfb-run", "-a", "-s", f"-screen 0 {XVFB_SCREEN}", sys.executable, "-m", "zoo_gui.screenshots", *argv]
        env = {**os.environ, IN_XVFB: "1", "QT_QPA_PLATFORM": "xcb"}
        return "xcb", subprocess.call(cmd, env=env)
    if requested == "xcb":
        raise SystemExit("screenshots: --platform xcb needs a DISPLAY or xvfb-run with the xcb libraries")
    log(
        "no X display and no working xvfb-run: rendering with Qt's offscreen platform instead "
        "(same widgets, no window system; install Debian's xvfb for real-window screenshots)"
    )
    return "offscreen", None


# ----------------------------------------------------------------------------- sample inputs


def _read_idx(path: Path) -> Any:
    import numpy as np

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_dirs() -> list[Path]:
    """Where the Fashion-MNIST IDX files may be: $ZOO_DATA, the user cache, Debian's package."""
    base = []
    if os.environ.get("ZOO_DATA"):
        base.append(Path(os.environ["ZOO_DATA"]))
    base.append(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "model-zoo")
    base.append(Path("/usr/share/datasets"))
    out = []
    for b in base:
        out += [b / "fashion-mnist", b / "fashion_mnist", b / "FashionMNIST" / "raw", b]
    return out


def fashion_images(out: Path, count: int = 8) -> list[Path]:
    """The first test image of each of ``count`` classes, as PNGs named by their true class."""
    from PIL import Image

    for folder in fashion_dirs():
        for suffix in (".gz", ""):
            images, labels = folder / f"t10k-images-idx3-ubyte{suffix}", folder / f"t10k-labels-idx1-ubyte{suffix}"
            if images.is_file() and labels.is_file():
                x, y = _read_idx(images), _read_idx(labels)
                paths = []
                for k in range(min(count, 10)):
                    i = int((y == k).nonzero()[0][0])
                    name = FASHION_LABELS[k].lower().replace("/", "-").replace(" ", "-")
                    path = out / f"{name}-{i:04d}.png"
                    Image.fromarray(x[i]).save(path)
                    paths.append(path)
                log(f"classifying {len(paths)} Fashion-MNIST test images from {folder}")
                return paths
    return []


# ----------------------------------------------------------------------------- driving the app


class Shooter:
    def __init__(self, app: Any, window: Any, out: Path, real_window: bool, timeout: float) -> None:
        self.app, self.window, self.out, self.real_window, self.timeout = app, window, out, real_window, timeout
        self.saved: list[Path] = []
        self.skipped: list[str] = []
        self.failed: list[str] = []

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.app.processEvents()
            time.sleep(0.01)

    def wait(self, cond: Callable[[], bool], what: str, timeout: float | None = None) -> bool:
        end = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < end:
            self.app.processEvents()
            if cond():
                return True
            time.sleep(0.01)
        self.failed.append(f"timed out waiting for {what}")
        log(f"timed out waiting for {what}")
        return False

    def wait_idle(self, page: ModelPage, what: str) -> bool:
        return self.wait(lambda: not page.busy, what)

    def shot(self, name: str, widget: Any = None) -> Path:
        widget = widget or self.window
        if self.real_window:
            widget.raise_()
            widget.activateWindow()
        self.pump(0.4)
        pixmap = None
        screen = widget.screen()
        if self.real_window and screen is not None:
            g = widget.frameGeometry()
            pixmap = screen.grabWindow(0, g.x(), g.y(), g.width(), g.height())
        if pixmap is None or pixmap.isNull():
            pixmap = widget.grab()
        path = self.out / f"{name}.png"
        if not pixmap.save(str(path), "PNG"):
            raise OSError(f"{path}: could not write the PNG")
        self.saved.append(path)
        log(f"wrote {path} ({pixmap.width()}x{pixmap.height()})")
        return path

    def open(self, info: Any) -> Any:
        """Show ``info``'s page with its model loaded."""
        n = len(self.window.errors)
        page = self.window.open_bundle(info.key)
        self.wait(lambda: page.model is not None or len(self.window.errors) > n, f"{info.name} to load")
        return page

    def errors_since(self, n: int) -> list[str]:
        return [f"{t}: {m}" for t, m in self.window.errors[n:]]


def pick(
    infos: list, task: str, prefer: Callable[[Any], bool] = lambda i: False, only: Callable[[Any], bool] = lambda i: True
) -> Any | None:
    """A loadable bundle of ``task`` (and ``only``), a ``prefer``red one first."""
    mine = [i for i in infos if i.usable and not i.load_error and i.task == task and only(i)]
    mine.sort(key=lambda i: (not prefer(i), i.name))
    return mine[0] if mine else None


def _tokens(info: Any) -> list[str]:
    return [str(t) for t in ((info.manifest or {}).get("vocab") or {}).get(schema.VOCAB_TOKENS) or []]


def is_dna(info: Any) -> bool:
    return sorted(_tokens(info)) == sorted(schema.DNA_TOKENS)


def run(args: argparse.Namespace, platform_name: str) -> int:
    os.environ["QT_QPA_PLATFORM"] = platform_name
    from PySide6.QtCore import QSettings

    from zoo_gui.app import MainWindow, make_app

    app = make_app()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="zoo-gui-shots-"))
    settings = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)  # never the user's settings
    window = MainWindow([args.runs], settings=settings, device=args.device)
    window.resize(*SIZE)
    window.move(40, 30)
    window.show()
    s = Shooter(app, window, out, real_window=platform_name == "xcb", timeout=args.timeout)
    try:
        s.wait(lambda: not window.library.scanning, "the library scan")
        infos = window.library.bundles()
        if not infos:
            print(f"screenshots: error: no bundles under {args.runs} (run `make demo` first)", file=sys.stderr)
            return 2
        s.wait(lambda: all(i.provider or i.problem for i in infos if i.usable), "every bundle to load", timeout=args.timeout * 2)
        log(f"{len(infos)} bundles: " + ", ".join(f"{i.name} ({i.task})" for i in infos))

        window.library.select((pick(infos, schema.TASK_IMAGE_CLASSIFICATION) or infos[0]).key)
        s.shot("library")

        # the most accurate Fashion-MNIST classifier (else any classifier)
        classifiers = sorted(
            (i for i in infos if i.usable and not i.load_error and i.task == schema.TASK_IMAGE_CLASSIFICATION),
            key=lambda i: ("Ankle boot" in ((i.manifest or {}).get("labels") or []), i.metrics.get("test_accuracy") or 0),
        )
        fashion = classifiers[-1] if classifiers else None
        if fashion is None:
            s.skipped.append("classify: no image-classification bundle")
        else:
            images = [Path(args.images)] if args.images else fashion_images(tmp)
            if not images:
                s.skipped.append("classify: no Fashion-MNIST test files found (give --images DIR)")
            else:
                page = s.open(fashion)
                n = len(window.errors)
                page.add_paths(images)
                s.wait(lambda: not page.busy and all(it.done for it in page.results.items), "classification")
                s.failed += s.errors_since(n)
                s.shot("classify")
                page.inside_button.setChecked(True)  # the first image's feature maps and saliency
                s.wait(lambda: page.inside.view is not None, "the Inside view of the first image")
                s.shot("classify-inside")
                page.inside_button.setChecked(False)

        for name, info, prompt, tokens in (
            (
                "generate-text",
                pick(infos, schema.TASK_TEXT_GENERATION, lambda i: "gpt" in i.name, only=lambda i: not is_dna(i)),
                TEXT_PROMPT,
                600,
            ),
            ("generate-dna", pick(infos, schema.TASK_TEXT_GENERATION, only=is_dna), DNA_PROMPT, 600),
        ):
            if info is None:
                s.skipped.append(f"{name}: no {'DNA' if name.endswith('dna') else 'text'} generation bundle")
                continue
            page = s.open(info)
            if all(ch in _tokens(info) for ch in prompt):  # else the page's own default prompt
                page.prompt.setPlainText(prompt)
            page.seed.setValue(7)
            page.max_tokens.setValue(tokens)
            n = len(window.errors)
            page.run()
            s.wait_idle(page, f"{name} to finish")
            s.failed += s.errors_since(n)
            s.shot(name)
            page.inside_button.setChecked(True)  # attention (GPT) or hidden states with GC content (DNA)

            def inside_shown(shown: Any = page) -> bool:
                return shown.inside.view is not None

            s.wait(inside_shown, f"the Inside view of {name}")
            s.failed += s.errors_since(n)
            s.shot(f"{name}-inside")
            page.inside_button.setChecked(False)

        gan = pick(infos, schema.TASK_IMAGE_GENERATION)
        if gan is None:
            s.skipped.append("gan: no image-generation bundle")
        else:
            page = s.open(gan)
            page.seed.setValue(7)
            n = len(window.errors)
            s.wait(lambda: not page.busy, "the first GAN grid")
            page.run()
            s.wait(lambda: not page.busy and page.samples is not None, "the GAN grid")
            page.pick(0)
            page.pick(len(page.samples) - 1)
            s.wait(lambda: not page.busy and page.frames is not None, "the interpolation")
            page.slider.setValue(int(0.4 * (page.slider.maximum())))
            s.failed += s.errors_since(n)
            s.shot("gan")

        for name, task in (("sequence-classify", schema.TASK_SEQUENCE_CLASSIFICATION), ("seq2seq", schema.TASK_SEQ2SEQ)):
            info = pick(infos, task)
            if info is None:
                s.skipped.append(f"{name}: no {task} bundle")
                continue
            page = s.open(info)
            n = len(window.errors)
            page.panel.length.setValue(12)
            page.panel.random_example()
            page.run()
            s.wait_idle(page, f"{name} to finish")
            s.failed += s.errors_since(n)
            s.shot(name)  # seq2seq: its alignment is part of the output
            if task == schema.TASK_SEQUENCE_CLASSIFICATION:
                page.panel.inside_button.setChecked(True)  # hidden states over the read (GC content under them for DNA)

                def states_shown(shown: Any = page) -> bool:
                    return shown.panel.inside.view is not None and not shown.busy

                s.wait(states_shown, f"the Inside view of {name}")
                s.failed += s.errors_since(n)
                s.shot(f"{name}-inside")
                page.panel.inside_button.setChecked(False)

        window.show_page("library")
        about = window.show_about()
        about.resize(560, 440)
        s.shot("about", about)
        about.close()
    finally:
        window.close()
        shutil.rmtree(tmp, ignore_errors=True)
    for item in s.skipped:
        log(f"skipped {item}")
    for item in s.failed:
        log(f"problem: {item}")
    log(f"{len(s.saved)} screenshots in {out} ({platform_name})")
    return 1 if s.failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m zoo_gui.screenshots",
        description="Run the real app on real bundles and save a PNG of each page.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--runs", default="models_out", help="folder with bundles (models_out/<run>/export)")
    parser.add_argument("--out", default="docs/screenshots", help="where the PNG files go")
    parser.add_argument(
        "--platform",
        choices=["auto", "xcb", "offscreen"],
        default="auto",
        help="auto: a real X window (DISPLAY, else xvfb-run), offscreen where neither works",
    )
    parser.add_argument("--images", default=None, help="images for the Classify page (default: Fashion-MNIST test images)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where the models run")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for any one step")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if not Path(args.runs).is_dir():
        print(f"screenshots: error: {args.runs}: no such folder (run `make demo` first, or give --runs)", file=sys.stderr)
        return 2
    if args.images and not Path(args.images).is_dir():
        print(f"screenshots: error: {args.images}: no such folder", file=sys.stderr)
        return 2
    platform_name, code = choose_platform(args.platform, argv)
    if code is not None:
        return code
    return run(args, platform_name)


if __name__ == "__main__":
    sys.exit(main())
