"""Publishing a bundle folder without a moment of no bundle, and recovering from a writer that died.

The writer (``zoo_export.bundle.BundleWriter``) keeps everything of one export beside the target
``<target>`` under names that carry its id, all with ``.tmp-`` in them, which readers skip:

- ``<target>.tmp-<id>.writer``: the claim, a JSON file naming the writing process (host, boot, pid and
  the process's start time). Made before anything else and removed after everything else.
- ``<target>.tmp-<id>``: the folder being built.
- ``<target>.tmp-<id>-ready``: the finished folder (manifest and signature written), about to be published.
- ``<target>.tmp-<id>-old``: the previous bundle during a two-step switch (below).

Publishing exchanges the ready folder with the target in one atomic step (``renameat2(RENAME_EXCHANGE)``
on Linux, ``renamex_np(RENAME_SWAP)`` on macOS), so a reader finds the old bundle or the new one, never
neither; the old one is then deleted. Where the system cannot exchange, the old bundle is renamed
aside and the new one in: a crash between the two leaves no target, which ``settle`` repairs.

``settle(target)`` finishes what a dead writer left: it rolls the finished bundle of a writer that died
between the two steps forward into the missing target (or, without one, the old bundle back), then removes
the writer's temporaries. A writer counts as dead only when that can be proved: same host, and its
process is gone (or the pid now belongs to a process started later, or the machine rebooted since).
The exporter settles before each export; ``find_bundles`` and ``load`` settle what they look at.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

TMP_MARK = ".tmp-"
CLAIM_SUFFIX = ".writer"
READY_SUFFIX = "-ready"
OLD_SUFFIX = "-old"
# A claim is written within moments of being created: one still unreadable after this long was cut short.
UNREADABLE_CLAIM_SECONDS = 3600.0


def staging_path(target: Path, writer_id: str, suffix: str = "") -> Path:
    """``<target>.tmp-<id><suffix>``: where writer ``writer_id`` keeps one of its folders (or, with CLAIM_SUFFIX, its claim)."""
    return target.parent / f"{target.name}{TMP_MARK}{writer_id}{suffix}"


# ----------------------------------------------------------------------------- who is writing


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, Linux), to tell it from a later one given the same pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def this_process() -> dict[str, Any]:
    """What a claim records of the writing process."""
    return {"host": socket.gethostname(), "boot": _boot_id(), "pid": os.getpid(), "started": _start_ticks(os.getpid())}


def write_claim(path: Path) -> None:
    """Create the claim file ``path`` for this process (refusing one that exists)."""
    with open(path, "x", encoding="utf-8") as f:
        json.dump(this_process(), f)
        f.flush()
        os.fsync(f.fileno())


def _process_gone(pid: int) -> bool:
    if os.name == "nt":
        return False  # no cheap check that cannot disturb the process: never provably gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # exists, as another user
    return False


def writer_is_dead(claim: Path) -> bool:
    """Whether the writer of ``claim`` is provably gone; False whenever that cannot be shown."""
    try:
        record = json.loads(claim.read_text(encoding="utf-8"))
        pid = int(record["pid"])
    except FileNotFoundError:
        return False  # settled by someone else meanwhile
    except (OSError, ValueError, KeyError, TypeError):
        with contextlib.suppress(OSError):
            return time.time() - claim.stat().st_mtime > UNREADABLE_CLAIM_SECONDS
        return False
    if record.get("host") != socket.gethostname():
        return False  # another machine's process (a shared folder): nothing here can tell
    boot = _boot_id()
    if boot is not None and record.get("boot") not in (None, boot):
        return True  # the machine rebooted since: every process of before is gone
    if _process_gone(pid):
        return True
    started = record.get("started")
    now_started = _start_ticks(pid)
    return started is not None and now_started is not None and started != now_started


# ----------------------------------------------------------------------------- the switch


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step; False where this system or file system cannot."""
    if sys.platform.startswith("linux"):
        name, flag, with_dirfds = "renameat2", 2, True  # RENAME_EXCHANGE
    elif sys.platform == "darwin":
        name, flag, with_dirfds = "renamex_np", 2, False  # RENAME_SWAP
    else:
        return False
    try:
        call = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return False  # a C library without it (glibc before 2.28, musl)
    at_cwd = -100  # AT_FDCWD: relative paths resolve as for os.rename
    args = (at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), flag) if with_dirfds else (os.fsencode(a), os.fsencode(b), flag)
    if call(*args) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def switch_in(ready: Path, target: Path, old: Path) -> None:
    """Put the folder ``ready`` at ``target``; the bundle that was there, if any, ends up at ``ready`` or ``old``
    (the caller deletes it). At every moment ``target`` holds the old bundle or the new one, except on systems
    without an atomic exchange, where a crash between the two renames is repaired by ``settle``."""
    if target.exists() and _exchange(ready, target):
        return
    if target.exists():
        os.replace(target, old)
    os.replace(ready, target)


# ----------------------------------------------------------------------------- after a crash


def _writer_ids(target: Path) -> list[str]:
    prefix = f"{target.name}{TMP_MARK}"
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    return sorted(n[len(prefix) : -len(CLAIM_SUFFIX)] for n in names if n.startswith(prefix) and n.endswith(CLAIM_SUFFIX))


def recover(target: Path, writer_id: str) -> None:
    """With ``target`` missing, put back what dead writer ``writer_id`` had: its finished new bundle (the writer
    had passed every check and was publishing it), else the old one."""
    for candidate in (staging_path(target, writer_id, READY_SUFFIX), staging_path(target, writer_id, OLD_SUFFIX)):
        if target.exists():
            return
        if candidate.is_dir():
            with contextlib.suppress(OSError):  # another process settling the same writer got there first
                os.replace(candidate, target)


def remove_staging(target: Path, writer_id: str) -> None:
    """Delete writer ``writer_id``'s folders, then its claim (last, so a folder is never left without one)."""
    for suffix in ("", READY_SUFFIX, OLD_SUFFIX):
        shutil.rmtree(staging_path(target, writer_id, suffix), ignore_errors=True)
    with contextlib.suppress(OSError):
        staging_path(target, writer_id, CLAIM_SUFFIX).unlink()


def settle(target: str | os.PathLike[str]) -> bool:
    """Finish what dead writers of ``target`` left (see the module's docstring); True if ``target`` was restored.

    Never raises for what it cannot do (a read-only folder, another process settling at the same time).
    """
    target = Path(target)
    restored = False
    for writer_id in _writer_ids(target):
        if not writer_is_dead(staging_path(target, writer_id, CLAIM_SUFFIX)):
            continue
        if not target.exists():
            recover(target, writer_id)
            restored = target.exists()
        remove_staging(target, writer_id)
    return restored


def settle_folder(folder: Path, file_names: list[str]) -> list[str]:
    """``settle`` every target with a claim among ``file_names`` (the files of ``folder``); the targets restored."""
    targets = {name.split(TMP_MARK)[0] for name in file_names if TMP_MARK in name and name.endswith(CLAIM_SUFFIX)}
    return sorted(name for name in targets if settle(folder / name))
