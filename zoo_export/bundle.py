"""The one bundle writer (docs/BUNDLE.md): temp folder, metadata_props, manifest with hashes, atomic publish.

A bundle is built in ``<target>.tmp-<random>/`` beside the target, claimed by a ``.writer`` file that
names this process. ``publish`` writes the manifest (``"complete": true``) last and exchanges the
folder with the target in one atomic step (``zoo_runtime.publishing``); ``fail`` writes a manifest
with ``"complete": false`` and renames the folder to ``<target>.failed/``; an error removes the temp
folder, and a writer killed outright leaves temporaries that the next export (or a reader) removes
once the process is provably gone. So nothing at the target ever looks whole unless every check
passed, and an earlier bundle stays at the target until the new one has taken its place.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from zoo_export import graphs as graph_io
from zoo_runtime import publishing, schema, signing


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def onnx_metadata(manifest: dict[str, Any], role: str, graph_entry: dict[str, Any]) -> dict[str, str]:
    """The ``zoo.*`` metadata_props of one .onnx file: enough to use a lone classifier or GAN graph."""

    def js(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)

    return {
        schema.META_SCHEMA_VERSION: str(schema.SCHEMA_VERSION),
        schema.META_MODEL: manifest["model"],
        schema.META_TASK: manifest["task"],
        schema.META_GRAPH_ROLE: role,
        schema.META_LABELS: js(manifest.get("labels")),
        schema.META_VOCAB: js(manifest.get("vocab")),
        schema.META_PREPROCESSING: js(manifest.get("preprocessing") or {}),
        schema.META_GENERATION: js(manifest.get("generation")),
        schema.META_IO: js(graph_entry),
        # Only where the output alphabet differs from the input's (seq2seq, docs/BUNDLE.md).
        **({schema.META_TARGET_VOCAB: js(manifest["target_vocab"])} if manifest.get("target_vocab") else {}),
    }


class BundleWriter:
    """Collects a bundle's files in a temp folder beside ``target`` and publishes them in one atomic exchange."""

    def __init__(self, target: Path):
        self.target = Path(target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        publishing.settle(self.target)  # what an export killed earlier left behind
        self.id = secrets.token_hex(4)
        self.claim = publishing.staging_path(self.target, self.id, publishing.CLAIM_SUFFIX)
        publishing.write_claim(self.claim)  # first, so that no folder of this writer is ever without one
        self.tmp = publishing.staging_path(self.target, self.id)
        self.tmp.mkdir()
        self.failed_dir = self.target.parent / f"{self.target.name}.failed"
        self.done = False

    def path(self, name: str) -> Path:
        return self.tmp / name

    def write_metadata(self, manifest: dict[str, Any]) -> None:
        """Put the zoo.* keys into every .onnx file of the bundle (before hashing)."""
        for role, entry in manifest["graphs"].items():
            if entry.get("file", "").endswith(".onnx") and (self.tmp / entry["file"]).exists():
                graph_io.set_metadata(
                    self.tmp / entry["file"],
                    onnx_metadata(manifest, role, entry),
                    doc=f"Model Zoo {manifest['model']} ({manifest['task']}), graph {role!r}",
                )
        quantized = manifest.get("quantized") or {}
        if quantized.get("file") and (self.tmp / quantized["file"]).exists():
            entry = dict(manifest["graphs"]["model"], file=quantized["file"], torchscript=None)
            graph_io.set_metadata(
                self.tmp / quantized["file"],
                onnx_metadata(manifest, "model", entry),
                doc=f"Model Zoo {manifest['model']} int8 (QDQ)",
            )

    def file_table(self) -> dict[str, dict[str, Any]]:
        table = {}
        for path in sorted(self.tmp.iterdir()):
            if path.is_file() and path.name != schema.MANIFEST_FILE:
                table[path.name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        return table

    def _write_manifest(self, manifest: dict[str, Any], complete: bool) -> dict[str, Any]:
        manifest = dict(manifest, complete=complete, files=self.file_table())
        path = self.tmp / schema.MANIFEST_FILE
        with open(path, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        for item in self.tmp.iterdir():
            if item.is_file():
                with open(item, "rb") as f:
                    os.fsync(f.fileno())
        _fsync_dir(self.tmp)
        return manifest

    def publish(self, manifest: dict[str, Any], sign_key: Path | None = None) -> tuple[Path, dict[str, Any]]:
        """Manifest last (then the signature over every file, when a key is given), then swap the temp
        folder in for the target (an old bundle is replaced)."""
        manifest = self._write_manifest(manifest, complete=True)
        if sign_key is not None:
            signing.sign_bundle(self.tmp, sign_key)
            _fsync_dir(self.tmp)
        ready = publishing.staging_path(self.target, self.id, publishing.READY_SUFFIX)
        old = publishing.staging_path(self.target, self.id, publishing.OLD_SUFFIX)
        try:
            os.replace(self.tmp, ready)  # finished: from now on a dead writer's bundle may be rolled forward
            publishing.switch_in(ready, self.target, old)
            _fsync_dir(self.target.parent)
        except BaseException:
            # Publishing failed: the target keeps (or gets back) the bundle it had before.
            if not self.target.exists() and old.is_dir():
                os.replace(old, self.target)
            publishing.remove_staging(self.target, self.id)
            self.done = True
            raise
        publishing.remove_staging(self.target, self.id)  # the old bundle, wherever the switch left it
        if self.failed_dir.exists():
            shutil.rmtree(self.failed_dir, ignore_errors=True)
        self.done = True
        return self.target, manifest

    def fail(self, manifest: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
        """Keep what was built for inspection as ``<target>.failed/``, marked incomplete."""
        manifest = self._write_manifest(manifest, complete=False)
        if self.failed_dir.exists():
            shutil.rmtree(self.failed_dir)
        os.replace(self.tmp, self.failed_dir)
        publishing.remove_staging(self.target, self.id)
        self.done = True
        return self.failed_dir, manifest

    def discard(self) -> None:
        if not self.done:
            publishing.remove_staging(self.target, self.id)
            self.done = True


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
