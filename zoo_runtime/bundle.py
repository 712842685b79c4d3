"""Reading and verifying bundles (docs/BUNDLE.md): the manifest, every file's sha256, lone .onnx files.

Nothing here builds an inference session: ``open_bundle`` returns the verified manifest and the
verified bytes of each ONNX graph, so a session is made from exactly the bytes that were hashed.
What a reader trusts (docs/BUNDLE.md, docs/SECURITY.md) is enforced here, before any graph reaches
onnxruntime: a bundle's files are regular files inside it (no links), no larger than the manifest
says nor than a ceiling, hashed in chunks before any is kept in memory; its graphs hold all their
data (no external data: onnxruntime would read it from the current folder); and what the manifest
and the hashed graphs' ``metadata_props`` both carry agrees.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from zoo_runtime import publishing, schema
from zoo_runtime.contract import TASK_KINDS
from zoo_runtime.errors import BundleError, InputError

_CHUNK = 1 << 20
# The most one file of a bundle may hold: protobuf cannot serialise a single-file ONNX graph past 2 GiB.
MAX_FILE_BYTES = 2 << 30
# A manifest is a few kilobytes; a large vocabulary or label list still fits many times over.
MAX_MANIFEST_BYTES = 64 << 20
# Messages nested deeper than this (graphs inside node attributes inside graphs ...) are refused unread.
MAX_ONNX_NESTING = 64

# No links followed, no blocking on a FIFO; O_NOFOLLOW is missing only where os.lstat is checked alone.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_DIR_FD = os.open in os.supports_dir_fd and os.stat in os.supports_dir_fd


@dataclass
class Bundle:
    """A verified bundle: where it is, its manifest, and the ONNX bytes of each graph role."""

    path: Path  # the bundle directory, or the lone .onnx file
    manifest: dict[str, Any]
    graph_bytes: dict[str, bytes] = field(repr=False)
    size_bytes: int = 0
    lone: bool = False
    digests: dict[str, str] = field(default_factory=dict, repr=False)  # file name -> sha256 of the bytes verified

    def graph_file(self, role: str) -> str:
        return str(self.manifest["graphs"][role]["file"])


# ----------------------------------------------------------------------------- public entry points


def read_manifest(path: str | os.PathLike[str], max_file_bytes: int = MAX_FILE_BYTES) -> dict[str, Any]:
    """Verify a bundle (schema, completeness, every file's size and sha256, its graphs) and return its manifest."""
    return _open(Path(path), keep_graphs=False, max_file_bytes=max_file_bytes).manifest


def open_bundle(path: str | os.PathLike[str], max_file_bytes: int = MAX_FILE_BYTES) -> Bundle:
    """Verify a bundle and keep the verified bytes of its ONNX graphs for building sessions.

    ``max_file_bytes``: the largest file the bundle may hold (default 2 GiB, the most a single-file
    ONNX graph can be); a larger one is refused before a byte of it is read.
    """
    return _open(Path(path), keep_graphs=True, max_file_bytes=max_file_bytes)


def peek_manifest(bundle_dir: str | os.PathLike[str]) -> Any:
    """The parsed manifest.json of ``bundle_dir``, unverified (for listings); BundleError when unreadable.

    Read as a bundle reader reads it: a regular file, not a link, at most MAX_MANIFEST_BYTES.
    """
    data = read_bundle_file(bundle_dir, schema.MANIFEST_FILE, MAX_MANIFEST_BYTES)
    return _parse_manifest(data, Path(bundle_dir) / schema.MANIFEST_FILE)


def read_bundle_file(bundle_dir: str | os.PathLike[str], name: str, limit: int) -> bytes:
    """File ``name`` of a bundle folder, read whole: a regular file inside it (not a link), at most ``limit`` bytes."""
    with _BundleDir(Path(bundle_dir)) as folder:
        return folder.read_small(name, limit)


def find_bundles(root: str | os.PathLike[str]) -> list[Path]:
    """Bundle directories under ``root`` (``root`` included) whose manifest says ``complete``, sorted.

    Only the manifest is read (no hashing): this is for listings; ``read_manifest``/``load`` verify.
    Temporaries of exports killed midway are settled on the way (``zoo_runtime.publishing.settle``).
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        # A bundle whose writer was killed mid-publish is put back in place (publishing.settle) before listing.
        dirnames += [d for d in publishing.settle_folder(Path(dirpath), filenames) if d not in dirnames]
        # Skip hidden folders and the writer's transient ones (<target>.tmp-*, <target>.old-*).
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and ".tmp-" not in d and ".old-" not in d)
        if schema.MANIFEST_FILE in filenames:
            try:
                manifest = peek_manifest(dirpath)
            except BundleError:
                continue
            if isinstance(manifest, dict) and manifest.get("format") == schema.FORMAT and manifest.get("complete") is True:
                found.append(Path(dirpath))
    return sorted(found)


# ----------------------------------------------------------------------------- files of a bundle folder


class _BundleDir:
    """The folder of a bundle, opened once: its files are opened relative to it, never through a link.

    The folder itself may be reached through links (the user named it); a name inside it must be a
    regular file, checked on the descriptor that is then read, so a swap after the check changes nothing.
    """

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> _BundleDir:
        if _DIR_FD:
            try:
                self.fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            except OSError as exc:
                raise BundleError(f"{self.path}: cannot open the bundle folder ({exc.strerror})") from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def where(self, name: str) -> Path:
        return self.path / name

    def open(self, name: str) -> tuple[IO[bytes], int]:
        """The named file opened for reading, and its size; BundleError unless it is a regular file inside."""
        where = self.where(name)
        target: str | Path = name if self.fd is not None else where
        try:
            if stat.S_ISLNK(os.stat(target, dir_fd=self.fd, follow_symlinks=False).st_mode):
                raise BundleError(f"{where}: a symbolic link; {_LINK_RULE}")
            fd = os.open(target, _OPEN_FLAGS, dir_fd=self.fd)
        except FileNotFoundError:
            if name == schema.MANIFEST_FILE:
                raise InputError(f"{where}: missing; {self.path} is not a bundle directory") from None
            raise BundleError(f"{where}: missing; the manifest lists it, the bundle is incomplete") from None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK):  # O_NOFOLLOW met a link made after the lstat
                raise BundleError(f"{where}: a symbolic link; {_LINK_RULE}") from None
            raise BundleError(f"{where}: cannot read ({exc.strerror})") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise BundleError(f"{where}: not a regular file; {_LINK_RULE}")
        return open(fd, "rb"), info.st_size

    def read_small(self, name: str, limit: int) -> bytes:
        """A file read whole, refused unread when larger than ``limit``."""
        f, size = self.open(name)
        with f:
            if size > limit:
                raise BundleError(f"{self.where(name)}: {size} bytes, more than the {_human(limit)} this file may have")
            data = f.read(limit + 1)
        if len(data) > limit:
            raise BundleError(f"{self.where(name)}: more than the {_human(limit)} this file may have")
        return data


_LINK_RULE = "a bundle's files must be regular files inside its folder (copy the bundle with its links resolved: cp -rL)"


def _human(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} bytes"


def _hash_stream(f: IO[bytes], limit: int) -> tuple[str, int]:
    """sha256 and length of at most ``limit`` + 1 bytes of ``f``, read in chunks: memory stays at one chunk.

    One byte past ``limit`` is enough to tell that a file grew after its size was checked.
    """
    h = hashlib.sha256()
    buffer = memoryview(bytearray(_CHUNK))
    total = 0
    while total <= limit:
        n = f.readinto(buffer[: min(_CHUNK, limit + 1 - total)])  # type: ignore[attr-defined]
        if not n:
            break
        h.update(buffer[:n])
        total += n
    return h.hexdigest(), total


# ----------------------------------------------------------------------------- directory bundles


def _open(path: Path, keep_graphs: bool, max_file_bytes: int) -> Bundle:
    if not isinstance(max_file_bytes, int) or isinstance(max_file_bytes, bool) or max_file_bytes < 1:
        raise BundleError(f"max_file_bytes {max_file_bytes!r}: expected a positive integer")
    if not path.exists():
        raise InputError(f"{path}: no such bundle (directory or .onnx file)")
    if path.is_file() and path.name == schema.MANIFEST_FILE:
        path = path.parent
    if path.is_file():
        if path.suffix.lower() != ".onnx":
            raise InputError(f"{path}: not a bundle; give a bundle directory (with {schema.MANIFEST_FILE}) or an .onnx file")
        return _open_lone(path, keep_graphs, max_file_bytes)
    return _open_dir(path, keep_graphs, max_file_bytes)


def _parse_manifest(data: bytes, mpath: Path) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{mpath}: not valid JSON ({exc})") from None


def _open_dir(path: Path, keep_graphs: bool, max_file_bytes: int) -> Bundle:
    mpath = path / schema.MANIFEST_FILE
    with _BundleDir(path) as folder:
        manifest_bytes = folder.read_small(schema.MANIFEST_FILE, MAX_MANIFEST_BYTES)
        manifest = _parse_manifest(manifest_bytes, mpath)
        check_manifest(manifest, mpath)
        digests = {schema.MANIFEST_FILE: hashlib.sha256(manifest_bytes).hexdigest()}
        size = len(manifest_bytes)
        onnx_bytes: dict[str, bytes] = {}
        for name, entry in manifest["files"].items():
            data, digests[name] = _verified_file(folder, name, entry, max_file_bytes, keep=_is_onnx(name))
            if data is not None:
                onnx_bytes[name] = data
            size += entry["bytes"]
    for name, data in onnx_bytes.items():
        props = _checked_graph(path / name, data)
        check_metadata_agrees(manifest, mpath, name, props)
    graph_bytes = {}
    if keep_graphs:
        graph_bytes = {role: onnx_bytes[g["file"]] for role, g in manifest["graphs"].items() if g["file"] in onnx_bytes}
    return Bundle(path=path, manifest=manifest, graph_bytes=graph_bytes, size_bytes=size, lone=False, digests=digests)


def _is_onnx(name: str) -> bool:
    return name.lower().endswith(".onnx")


def _verified_file(
    folder: _BundleDir, name: str, entry: dict[str, Any], max_file_bytes: int, keep: bool
) -> tuple[bytes | None, str]:
    """Check a listed file's size before reading it, then its sha256 in chunks; with ``keep`` also its bytes.

    Kept bytes are read only after the streamed hash matched, and hashed again: what a session is
    built from is exactly what was verified, and a file with a wrong hash never costs its size in memory.
    """
    where = folder.where(name)
    f, actual_size = folder.open(name)
    with f:
        if actual_size != entry["bytes"]:
            raise BundleError(
                f"{where}: size {actual_size} bytes, the manifest says {entry['bytes']}; the bundle was altered or truncated"
            )
        if actual_size > max_file_bytes:
            raise BundleError(
                f"{where}: {actual_size} bytes, more than the {_human(max_file_bytes)} a bundle file may have "
                "(max_file_bytes); refused unread"
            )
        expected = entry["sha256"].lower()
        digest, read = _hash_stream(f, actual_size)
        if read != actual_size:
            raise BundleError(f"{where}: changed while it was read ({read} bytes, not {actual_size}); load the bundle again")
        if digest != expected:
            raise BundleError(
                f"{where}: sha256 mismatch (file {digest[:12]}…, manifest {entry['sha256'][:12]}…); "
                "the bundle was altered or corrupted"
            )
        if not keep:
            return None, digest
        f.seek(0)
        data = f.read(actual_size)
    if hashlib.sha256(data).hexdigest() != expected:
        raise BundleError(f"{where}: changed while it was read; load the bundle again")
    return data, digest


def _checked_graph(where: Path, data: bytes) -> dict[str, str]:
    """Refuse an ONNX graph that is unreadable or reads external data; return its metadata_props."""
    try:
        external = onnx_external_data(data)
        props = onnx_metadata_props(data)
    except ValueError as exc:
        raise BundleError(f"{where}: not a readable ONNX model ({exc})") from None
    if external:
        shown = ", ".join(f"{tensor!r} from {location!r}" for tensor, location in external[:3])
        more = f" and {len(external) - 3} more" if len(external) > 3 else ""
        raise BundleError(
            f"{where}: the graph reads external data ({shown}{more}); a bundle's graphs must hold all their "
            "weights, and nothing outside the bundle's hashed files is ever read"
        )
    return props


# What manifest.json and every graph's metadata_props both carry (zoo_export.bundle.onnx_metadata writes them):
# manifest field, metadata key, and how the manifest's value is written there.
_SHARED_TEXT = (("model", schema.META_MODEL), ("task", schema.META_TASK))
_SHARED_JSON = (
    ("labels", schema.META_LABELS),
    ("vocab", schema.META_VOCAB),
    ("preprocessing", schema.META_PREPROCESSING),
    ("generation", schema.META_GENERATION),
)


def _canonical(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _graph_entry_of(manifest: dict[str, Any], name: str) -> tuple[list[str], dict[str, Any] | None]:
    """The roles a file serves, and the graphs entry its zoo.io must equal (None: not a graph of the manifest)."""
    roles = [role for role, graph in manifest["graphs"].items() if graph["file"] == name]
    if roles:
        return roles, None
    quantized = manifest.get("quantized")
    if isinstance(quantized, dict) and quantized.get("file") == name and schema.ROLE_MODEL in manifest["graphs"]:
        # The int8 twin of the model graph: the writer records the model's entry under its own file name.
        return [schema.ROLE_MODEL], dict(manifest["graphs"][schema.ROLE_MODEL], file=name, torchscript=None)
    return [], None


def check_metadata_agrees(manifest: dict[str, Any], mpath: Path, name: str, props: dict[str, str]) -> None:
    """Refuse a bundle whose manifest and the hashed metadata_props of graph ``name`` disagree on what both carry."""
    gpath = mpath.parent / name

    def refuse(field_name: str, key: str, problem: str) -> BundleError:
        return BundleError(
            f"{mpath}: {field_name} {problem} {gpath.name}'s metadata ({key}, in {gpath}); "
            "the manifest or the graph was altered after export"
        )

    expected: list[tuple[str, str, str, bool]] = [(f, k, str(manifest[f]), False) for f, k in _SHARED_TEXT]
    expected.append(("schema_version", schema.META_SCHEMA_VERSION, str(manifest["schema_version"]), False))
    for field_name, key in _SHARED_JSON:
        value = manifest.get(field_name)
        if field_name == "preprocessing":
            value = value or {}  # the writer stores a missing block as {}
        expected.append((field_name, key, _canonical(value), True))
    roles, io = _graph_entry_of(manifest, name)
    if roles:
        role = props.get(schema.META_GRAPH_ROLE)
        if role in roles:
            entry = io if io is not None else manifest["graphs"][role]
            expected.append((f"graphs.{role}", schema.META_IO, _canonical(entry), True))
    for field_name, key, want, is_json in expected:
        if key not in props:
            raise refuse(field_name, key, "is in the manifest but missing from")
        got = props[key]
        if is_json:
            try:
                got = _canonical(json.loads(got))
            except ValueError:
                raise refuse(field_name, key, "cannot be compared: not valid JSON in") from None
        if got != want:
            raise refuse(field_name, key, "differs from")
    if roles and props.get(schema.META_GRAPH_ROLE) not in roles:
        shown = props.get(schema.META_GRAPH_ROLE)
        raise refuse("graphs", schema.META_GRAPH_ROLE, f"name this file for {', '.join(roles)}, not for {shown!r} as")


def check_manifest(manifest: Any, where: Path) -> None:
    """Schema checks that need no file access; raises BundleError naming ``where``."""
    if not isinstance(manifest, dict):
        raise BundleError(f"{where}: not a bundle manifest (expected a JSON object)")
    if manifest.get("format") != schema.FORMAT:
        raise BundleError(f"{where}: not a Model Zoo bundle (format is {manifest.get('format')!r}, expected {schema.FORMAT!r})")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError(f"{where}: schema_version is {version!r}, expected an integer")
    if version > schema.SCHEMA_VERSION:
        raise BundleError(
            f"{where}: bundle schema version {version} is newer than this runtime reads ({schema.SCHEMA_VERSION}); "
            "upgrade model-zoo to load it"
        )
    if version < 1:
        raise BundleError(f"{where}: schema_version {version} is not a valid version")
    missing = [k for k in schema.REQUIRED_MANIFEST_KEYS if k not in manifest]
    if missing:
        raise BundleError(f"{where}: manifest lacks {', '.join(missing)}")
    if manifest["complete"] is not True:
        raise BundleError(f'{where}: bundle is incomplete ("complete" is not true): its export did not finish or failed')
    task = manifest["task"]
    if task not in TASK_KINDS:
        raise BundleError(f"{where}: unknown task {task!r}; this runtime knows {', '.join(TASK_KINDS)}")
    files = manifest["files"]
    if not isinstance(files, dict) or not files:
        raise BundleError(f'{where}: "files" must be a non-empty object of name -> {{sha256, bytes}}')
    for name, entry in files.items():
        if not _plain_name(name):
            raise BundleError(f"{where}: file name {name!r} is not a plain file name inside the bundle")
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or len(entry["sha256"]) != 64:
            raise BundleError(f"{where}: file {name!r} has no valid sha256")
        size = entry.get("bytes")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BundleError(f"{where}: file {name!r} has no valid size (bytes)")
    graphs = manifest["graphs"]
    if not isinstance(graphs, dict):
        raise BundleError(f'{where}: "graphs" must be an object of role -> graph')
    for role in TASK_KINDS[task].roles:
        if role not in graphs:
            raise BundleError(f"{where}: a {task} bundle needs a {role!r} graph; the manifest has {sorted(graphs)}")
    for role, graph in graphs.items():
        if not isinstance(graph, dict) or not isinstance(graph.get("file"), str):
            raise BundleError(f"{where}: graph {role!r} names no file")
        if graph["file"] not in files:
            raise BundleError(f'{where}: graph {role!r} file {graph["file"]!r} is not listed (with its sha256) in "files"')
        for key in ("inputs", "outputs"):
            if not isinstance(graph.get(key), list) or not all(isinstance(t, dict) and "name" in t for t in graph[key]):
                raise BundleError(f"{where}: graph {role!r} has no valid {key!r} list")


def _plain_name(name: Any) -> bool:
    return (
        isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name and not os.path.isabs(name)
    )


# ----------------------------------------------------------------------------- lone .onnx files


def _open_lone(path: Path, keep_graphs: bool, max_file_bytes: int) -> Bundle:
    data = _read_lone(path, max_file_bytes)
    props = _checked_graph(path, data)
    if schema.META_TASK not in props:
        raise BundleError(f"{path}: this .onnx carries no Model Zoo metadata ({schema.META_TASK}); load its bundle directory")
    try:
        version = int(props.get(schema.META_SCHEMA_VERSION, "0"))
    except ValueError:
        raise BundleError(
            f"{path}: {schema.META_SCHEMA_VERSION} is {props[schema.META_SCHEMA_VERSION]!r}, not an integer"
        ) from None
    if version > schema.SCHEMA_VERSION:
        raise BundleError(
            f"{path}: bundle schema version {version} is newer than this runtime reads ({schema.SCHEMA_VERSION}); "
            "upgrade model-zoo to load it"
        )
    task = props[schema.META_TASK]
    if task not in TASK_KINDS or not TASK_KINDS[task].single_graph:
        raise BundleError(f"{path}: a lone .onnx of a {task} model cannot run alone; load its bundle directory")
    decoded: dict[str, Any] = {}
    for key in schema.META_JSON_KEYS:
        if key in props:
            try:
                decoded[key] = json.loads(props[key])
            except ValueError:
                raise BundleError(f"{path}: metadata {key} is not valid JSON") from None
    io = decoded.get(schema.META_IO)
    if not isinstance(io, dict):
        raise BundleError(f"{path}: metadata {schema.META_IO} (the graph's inputs and outputs) is missing")
    io = dict(io, file=path.name)
    manifest = {
        "format": schema.FORMAT,
        "schema_version": version,
        "complete": True,
        "model": props.get(schema.META_MODEL, path.stem),
        "task": task,
        "files": {path.name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}},
        "graphs": {schema.ROLE_MODEL: io},
        "labels": decoded.get(schema.META_LABELS),
        "vocab": decoded.get(schema.META_VOCAB),
        "preprocessing": decoded.get(schema.META_PREPROCESSING) or {},
        "generation": decoded.get(schema.META_GENERATION),
        "sampling": {},
        "metrics": {},
        "lone_onnx": True,  # not from a manifest: hashes could not be checked against a reference
    }
    check_manifest(manifest, path)
    return Bundle(
        path=path,
        manifest=manifest,
        graph_bytes={schema.ROLE_MODEL: data} if keep_graphs else {},
        size_bytes=len(data),
        lone=True,
    )


def _read_lone(path: Path, max_file_bytes: int) -> bytes:
    """A lone .onnx the user named (a link to it is their choice): a regular file within the size ceiling."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise BundleError(f"{path}: cannot read ({exc.strerror})") from None
    info = os.fstat(fd)
    with open(fd, "rb") as f:
        if not stat.S_ISREG(info.st_mode):
            raise BundleError(f"{path}: not a regular file")
        if info.st_size > max_file_bytes:
            raise BundleError(
                f"{path}: {info.st_size} bytes, more than the {_human(max_file_bytes)} a model file may have "
                "(max_file_bytes); refused unread"
            )
        data = f.read(max_file_bytes + 1)
    if len(data) > max_file_bytes:
        raise BundleError(f"{path}: more than the {_human(max_file_bytes)} a model file may have (max_file_bytes)")
    return data


# ----------------------------------------------------------------------------- ONNX protobuf, read without the onnx package


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated protobuf varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("malformed protobuf varint")


def _fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, Any]]:
    """Top-level (field number, wire type, value) of a protobuf message; length-delimited values are
    memoryviews into ``buf`` (no copies: a graph's weights are not duplicated to be skipped)."""
    view = memoryview(buf)
    pos, end = 0, len(view)
    while pos < end:
        key, pos = _varint(view, pos)
        number, wire = key >> 3, key & 7
        value: int | memoryview
        if wire == 0:
            value, pos = _varint(view, pos)
        elif wire == 1:
            value, pos = view[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(view, pos)
            if pos + length > end:
                raise ValueError("truncated protobuf field")
            value, pos = view[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = view[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise ValueError("truncated protobuf field")
        yield number, wire, value


def _text(value: memoryview) -> str:
    return bytes(value).decode("utf-8")


def onnx_metadata_props(data: bytes) -> dict[str, str]:
    """``ModelProto.metadata_props`` (field 14) read straight from the bytes: no onnx package needed."""
    props: dict[str, str] = {}
    saw_graph = False
    for number, wire, value in _fields(data):
        if number == 7 and wire == 2:
            saw_graph = True
        if number == 14 and wire == 2:
            key = val = ""
            for n, w, v in _fields(value):
                if w == 2 and n == 1:
                    key = _text(v)
                elif w == 2 and n == 2:
                    val = _text(v)
            props[key] = val
    if not saw_graph:
        raise ValueError("no graph in the file")
    return props


# The ONNX messages (onnx.proto) that can hold a TensorProto at some depth, and the fields that lead there.
_MODEL, _GRAPH, _NODE, _ATTRIBUTE, _TENSOR, _SPARSE_TENSOR, _TRAINING_INFO, _FUNCTION = range(8)
_CHILDREN: dict[int, dict[int, int]] = {
    _MODEL: {7: _GRAPH, 20: _TRAINING_INFO, 25: _FUNCTION},  # graph, training_info, functions
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE_TENSOR},  # node, initializer, sparse_initializer
    _NODE: {5: _ATTRIBUTE},
    # t, g, tensors, graphs, sparse_tensor, sparse_tensors
    _ATTRIBUTE: {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH, 22: _SPARSE_TENSOR, 23: _SPARSE_TENSOR},
    _SPARSE_TENSOR: {1: _TENSOR, 2: _TENSOR},  # values, indices
    _TRAINING_INFO: {1: _GRAPH, 2: _GRAPH},  # initialization, algorithm
    _FUNCTION: {7: _NODE, 11: _ATTRIBUTE},  # node, attribute_proto
    _TENSOR: {},
}
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION, _DATA_LOCATION_EXTERNAL = 8, 13, 14, 1


def onnx_external_data(data: bytes) -> list[tuple[str, str]]:
    """(tensor name, location) of every tensor of an ONNX model that keeps its data outside the file.

    Every place a tensor can sit is searched: initializers, sparse initializers, node attributes
    (Constant values, tensors of lists), subgraphs of If/Loop/Scan at any depth, functions and
    training graphs. A tensor counts when its ``data_location`` is EXTERNAL or it has any
    ``external_data`` entry. ValueError for malformed bytes or nesting deeper than MAX_ONNX_NESTING.
    """
    found: list[tuple[str, str]] = []
    stack: list[tuple[int, memoryview, int]] = [(_MODEL, memoryview(data), 1)]
    while stack:
        kind, message, depth = stack.pop()
        if depth > MAX_ONNX_NESTING:
            raise ValueError(f"messages nested deeper than {MAX_ONNX_NESTING} levels")
        if kind == _TENSOR:
            external = _tensor_external_location(message)
            if external is not None:
                found.append(external)
            continue
        children = _CHILDREN[kind]
        for number, wire, value in _fields(message):
            if wire == 2 and number in children:
                stack.append((children[number], value, depth + 1))
    return found


def _tensor_external_location(tensor: memoryview) -> tuple[str, str] | None:
    name, location, external = "", "", False
    for number, wire, value in _fields(tensor):
        if number == _TENSOR_NAME and wire == 2:
            name = _text(value)
        elif number == _TENSOR_DATA_LOCATION and wire == 0 and value == _DATA_LOCATION_EXTERNAL:
            external = True
        elif number == _TENSOR_EXTERNAL_DATA and wire == 2:
            external = True
            entry = {n: _text(v) for n, w, v in _fields(value) if w == 2 and n in (1, 2)}
            if entry.get(1) == "location":
                location = entry.get(2, "")
    return (name, location or "(no location)") if external else None
