"""Reading and verifying bundles (docs/BUNDLE.md): the manifest, every file's sha256, lone .onnx files.

Nothing here builds an inference session: ``open_bundle`` returns the verified manifest and the
verified bytes of each ONNX graph, so a session is made from exactly the bytes that were hashed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo_runtime import publishing, schema
from zoo_runtime.errors import BundleError, InputError

_CHUNK = 1 << 20


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
        return self.manifest["graphs"][role]["file"]


# ----------------------------------------------------------------------------- public entry points


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Verify a bundle (schema, completeness, every file's sha256) and return its manifest."""
    return _open(Path(path), keep_graphs=False).manifest


def open_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Verify a bundle and keep the verified bytes of its ONNX graphs for building sessions."""
    return _open(Path(path), keep_graphs=True)


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
                manifest = json.loads((Path(dirpath) / schema.MANIFEST_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(manifest, dict) and manifest.get("format") == schema.FORMAT and manifest.get("complete") is True:
                found.append(Path(dirpath))
    return sorted(found)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- directory bundles


def _open(path: Path, keep_graphs: bool) -> Bundle:
    if not path.exists():
        raise InputError(f"{path}: no such bundle (directory or .onnx file)")
    if path.is_file() and path.name == schema.MANIFEST_FILE:
        path = path.parent
    if path.is_file():
        if path.suffix.lower() != ".onnx":
            raise InputError(f"{path}: not a bundle; give a bundle directory (with {schema.MANIFEST_FILE}) or an .onnx file")
        return _open_lone(path, keep_graphs)
    return _open_dir(path, keep_graphs)


def _open_dir(path: Path, keep_graphs: bool) -> Bundle:
    mpath = path / schema.MANIFEST_FILE
    if not mpath.is_file():
        raise InputError(f"{mpath}: missing; {path} is not a bundle directory")
    try:
        manifest_bytes = mpath.read_bytes()
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{mpath}: not valid JSON ({exc})") from None
    check_manifest(manifest, mpath)
    digests = {schema.MANIFEST_FILE: hashlib.sha256(manifest_bytes).hexdigest()}

    size = mpath.stat().st_size
    graph_files = {g["file"] for g in manifest["graphs"].values() if g["file"].lower().endswith(".onnx")}
    graph_bytes_by_file: dict[str, bytes] = {}
    for name, entry in manifest["files"].items():
        fpath = path / name
        if not fpath.is_file():
            raise BundleError(f"{fpath}: missing; the manifest lists it, the bundle is incomplete")
        actual_size = fpath.stat().st_size
        if isinstance(entry.get("bytes"), int) and entry["bytes"] != actual_size:
            raise BundleError(
                f"{fpath}: size {actual_size} bytes, the manifest says {entry['bytes']}; the bundle was altered or truncated"
            )
        if keep_graphs and name in graph_files:
            data = fpath.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
        else:
            data, digest = None, sha256_file(fpath)
        if digest != entry["sha256"].lower():
            raise BundleError(
                f"{fpath}: sha256 mismatch (file {digest[:12]}…, manifest {entry['sha256'][:12]}…); "
                "the bundle was altered or corrupted"
            )
        if data is not None:
            graph_bytes_by_file[name] = data
        digests[name] = digest
        size += actual_size
    graph_bytes = {
        role: graph_bytes_by_file[g["file"]] for role, g in manifest["graphs"].items() if g["file"] in graph_bytes_by_file
    }
    return Bundle(path=path, manifest=manifest, graph_bytes=graph_bytes, size_bytes=size, lone=False, digests=digests)


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
    if task not in schema.TASKS:
        raise BundleError(f"{where}: unknown task {task!r}; this runtime knows {', '.join(schema.TASKS)}")
    files = manifest["files"]
    if not isinstance(files, dict) or not files:
        raise BundleError(f'{where}: "files" must be a non-empty object of name -> {{sha256, bytes}}')
    for name, entry in files.items():
        if not _plain_name(name):
            raise BundleError(f"{where}: file name {name!r} is not a plain file name inside the bundle")
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or len(entry["sha256"]) != 64:
            raise BundleError(f"{where}: file {name!r} has no valid sha256")
    graphs = manifest["graphs"]
    if not isinstance(graphs, dict):
        raise BundleError(f'{where}: "graphs" must be an object of role -> graph')
    for role in schema.REQUIRED_ROLES[task]:
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


def _open_lone(path: Path, keep_graphs: bool) -> Bundle:
    data = path.read_bytes()
    try:
        props = onnx_metadata_props(data)
    except ValueError as exc:
        raise BundleError(f"{path}: not a readable ONNX model ({exc})") from None
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
    if task not in schema.SINGLE_GRAPH_TASKS:
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


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
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


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """Top-level (field number, wire type, value) of a protobuf message; length-delimited values are bytes."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise ValueError("truncated protobuf field")
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise ValueError("truncated protobuf field")
        yield number, wire, value


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
                    key = v.decode("utf-8")
                elif w == 2 and n == 2:
                    val = v.decode("utf-8")
            props[key] = val
    if not saw_graph:
        raise ValueError("no graph in the file")
    return props
