"""Where datasets are looked for, in the order DESIGN.md gives; and whether an output folder can be made."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# Debian's dataset packages install here (dataset-fashion-mnist, kmer-examples).
SYSTEM_DATA_DIRS = (Path("/usr/share/datasets"), Path("/usr/share/doc/kmer-examples"))


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "model-zoo"


def search_dirs(data_dir: Path | str | None) -> list[Path]:
    """--data-dir, then $ZOO_DATA, then the user cache, then system copies."""
    dirs: list[Path] = []
    if data_dir:
        dirs.append(Path(data_dir))
    if os.environ.get("ZOO_DATA"):
        dirs.append(Path(os.environ["ZOO_DATA"]))
    dirs.append(user_cache_dir())
    dirs.extend(SYSTEM_DATA_DIRS)
    return dirs


def existing_folder(text: str) -> Path:
    """argparse type for --data-dir: a mistyped folder would otherwise be skipped and data found elsewhere used."""
    folder = Path(text)
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{folder}: {'not a folder' if folder.exists() else 'no such folder'}")
    return folder


def file_in_the_way(folder: Path) -> Path | None:
    """The file standing at ``folder`` or at one of its parents, which would make creating ``folder`` fail."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    return None if existing.is_dir() else existing


def output_file_problem(path: Path, option: str, what: str) -> str | None:
    """Why ``option path`` (a file to write, described by ``what``) could not be written, or None."""
    if path.is_dir():
        return f"{path}: is a folder; {option} takes the {what} to write"
    blocking = file_in_the_way(path.parent)
    if blocking is not None:
        return f"{blocking}: exists and is not a folder, so {option} {path} cannot be written"
    return None
