"""Rewriting a copy of an exported bundle as a producer (honest or hostile) would: what the reader sees.

``rehash`` makes the manifest's sizes and sha256s fit the files again, so that a test reaches the
checks past the hashes; ``write_manifest`` also puts the manifest's shared fields into every graph's
``metadata_props`` first, as zoo-export does, so that an edit of a manifest field stays consistent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo_export import graphs as graph_io
from zoo_export.bundle import onnx_metadata, sha256_file
from zoo_runtime import schema


def read_manifest_json(bundle: Path) -> dict[str, Any]:
    return json.loads((bundle / schema.MANIFEST_FILE).read_text())


def rehash(bundle: Path, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``manifest`` (default: the bundle's own) with the size and sha256 of every listed file as it is now."""
    manifest = manifest if manifest is not None else read_manifest_json(bundle)
    for name, entry in manifest["files"].items():
        path = bundle / name
        entry["sha256"], entry["bytes"] = sha256_file(path), path.stat().st_size
    (bundle / schema.MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return manifest


def write_manifest(bundle: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write ``manifest`` as zoo-export would: its shared fields into each .onnx graph's metadata, then hashes."""
    for role, entry in manifest["graphs"].items():
        if entry["file"].endswith(".onnx"):
            graph_io.set_metadata(bundle / entry["file"], onnx_metadata(manifest, role, entry))
    return rehash(bundle, manifest)
