"""Which bundles exist and what they are: scanning folders and reading manifests into
:class:`BundleInfo` rows. Pure: no Qt (the library page runs :func:`scan` on a worker thread)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zoo_runtime
from zoo_gui.errors import describe_error
from zoo_runtime.bundle import peek_manifest
from zoo_runtime.errors import BundleError
from zoo_runtime.rundir import RunDir
from zoo_runtime.schema import MANIFEST_FILE


@dataclass
class BundleInfo:
    """One row of the library."""

    path: Path
    manifest: dict[str, Any] | None = None
    error: str | None = None  # the manifest could not be read
    size_bytes: int | None = None
    root: Path | None = None
    # filled in when the bundle has been loaded
    provider: str | None = None
    provider_note: str | None = None
    signature: str | None = None  # the signed/unsigned badge (zoo_runtime.SignatureStatus.badge)
    load_error: str | None = None
    loading: bool = False

    @property
    def key(self) -> str:
        return bundle_key(self.path)

    @property
    def name(self) -> str:
        if self.manifest and self.manifest.get("model"):
            return str(self.manifest["model"])
        return self.run_name

    @property
    def run_name(self) -> str:
        """The training run's folder name for a bundle exported into one, else the bundle's own name."""
        run = RunDir.of_bundle(self.path)
        return run.name if run is not None else self.path.name

    @property
    def task(self) -> str | None:
        return self.manifest.get("task") if self.manifest else None

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.manifest.get("metrics") or {}) if self.manifest else {}

    @property
    def parity(self) -> bool | None:
        parity = (self.manifest or {}).get("parity") or {}
        passed = parity.get("passed")
        return None if passed is None else bool(passed)

    @property
    def usable(self) -> bool:
        return self.manifest is not None and self.error is None

    @property
    def problem(self) -> str | None:
        return self.error or self.load_error

    @property
    def location(self) -> str:
        if self.root is not None:
            try:
                rel = self.path.relative_to(self.root)
                return str(Path(self.root.name) / rel) if str(rel) != "." else self.root.name
            except ValueError:
                pass
        return str(self.path)

    def label(self) -> str:
        """How pages name the bundle in their model pickers."""
        if self.run_name and self.run_name != self.name:
            return f"{self.name}  ({self.run_name})"
        return self.name

    def matches(self, text: str) -> bool:
        """Whether the lower-case ``text`` occurs in the name, run, location or task."""
        return text in f"{self.name} {self.run_name} {self.location} {self.task or ''}".lower()


def bundle_key(path: Path | str) -> str:
    return str(Path(path).expanduser().resolve())


def is_bundle(path: Path) -> bool:
    return (path.is_dir() and (path / MANIFEST_FILE).is_file()) or (path.is_file() and path.suffix == ".onnx")


def disk_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):  # a file removed while we walk counts nothing
                total += (Path(dirpath) / f).stat().st_size
    return total


def bundle_paths(root: Path) -> list[Path]:
    """The bundles a path names: itself when it is one, else every bundle under it."""
    if is_bundle(root):
        return [root]
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    return [Path(p) for p in zoo_runtime.find_bundles(root)]


def read_bundle(path: Path, root: Path | None = None) -> BundleInfo:
    info = BundleInfo(path=path, root=root)
    try:
        info.manifest = dict(zoo_runtime.read_manifest(path))
    except Exception as exc:  # a broken bundle is a row with its reason, not a failed scan
        info.error = describe_error(exc)
        info.manifest = _unverified_manifest(path)  # for its name and task in the listing only
    try:
        info.size_bytes = disk_size(path)
    except OSError:
        info.size_bytes = None
    return info


def _unverified_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = peek_manifest(path)  # no links, no FIFOs, a bounded size: as the verifying reader reads it
    except BundleError:
        return None
    return data if isinstance(data, dict) else None


def scan(roots: Iterable[Path]) -> tuple[list[BundleInfo], list[str]]:
    """Every bundle under ``roots`` (deduplicated), and one message per root that could not be read."""
    seen: set[str] = set()
    infos: list[BundleInfo] = []
    problems: list[str] = []
    for root in roots:
        root = Path(root).expanduser()
        try:
            paths = bundle_paths(root)
        except Exception as exc:
            problems.append(describe_error(exc))
            continue
        base = root if root.is_dir() and not is_bundle(root) else root.parent
        for path in paths:
            key = bundle_key(path)
            if key in seen:
                continue
            seen.add(key)
            infos.append(read_bundle(Path(path), base))
    infos.sort(key=lambda i: (i.task or "~", i.name, i.location))
    return infos, problems


def unique_roots(roots: Iterable[Path]) -> list[Path]:
    """``roots`` without repeats (two spellings of one folder count once), in order."""
    unique: dict[str, Path] = {}
    for root in roots:
        unique.setdefault(bundle_key(root), root)
    return list(unique.values())
