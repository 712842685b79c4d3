"""zoo_runtime (and zoo_gui, zoo_serve) import and run with torch impossible to import.

A fresh interpreter gets a meta-path finder that makes ``import torch`` (and torchvision)
raise ImportError; it then imports every submodule of zoo_runtime, zoo_gui and zoo_serve and
classifies an image with a bundle that zoo-export made, through the API, through ``zoo-run``
and through zoo-serve's app.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

BLOCK_TORCH = r"""
import importlib.abc, sys

class BlockTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "torchaudio"):
            raise ImportError(f"import of {name!r} blocked: this process must run without torch")
        return None

sys.meta_path.insert(0, BlockTorch())
"""

PROGRAM = (
    BLOCK_TORCH
    + r"""
import importlib, json, pkgutil, sys
import numpy as np

try:
    import torch  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("the torch blocker does not work")

packages = ["zoo_runtime"] + [p for p in ("zoo_gui", "zoo_serve") if importlib.util.find_spec(p) is not None]
imported = []
for pkg_name in packages:
    pkg = importlib.import_module(pkg_name)
    imported.append(pkg_name)
    for info in pkgutil.walk_packages(pkg.__path__, pkg_name + "."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue  # running the app is not importing it
        importlib.import_module(info.name)
        imported.append(info.name)
    if pkg_name == "zoo_runtime":
        pil_before_use = "PIL" in sys.modules  # checked before zoo_gui, which is free to use Pillow

import zoo_runtime
from zoo_runtime.cli import main as zoo_run

model = zoo_runtime.load(sys.argv[1], device="cpu")
preds = model.classify(np.full((28, 28), 0.5, dtype=np.float32), top_k=3)
rc = zoo_run([sys.argv[1], "--image", sys.argv[2], "--json", "--cpu"])

import asyncio, httpx
from zoo_serve import ServeSettings, create_app

async def serve_one():
    app = create_app({model.name: model}, ServeSettings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zoo") as client:
        with open(sys.argv[2], "rb") as image:
            answer = await client.post(f"/models/{model.name}/classify?top_k=3", files={"image": image})
    app.state.zoo.close()
    return answer.json()["predictions"]

served = asyncio.run(serve_one())
print(json.dumps({
    "imported": imported,
    "torch_loaded": sorted(m for m in sys.modules if m.split(".")[0] == "torch"),
    "pil_before_use": pil_before_use,
    "top3": [p.label for p in preds[0]],
    "cli_rc": rc,
    "served_top3": [p["label"] for p in served],
    "file_top3": [p.label for p in model.classify(sys.argv[2], top_k=3)[0]],
}))
"""
)


@pytest.fixture(scope="module")
def lenet_bundle(tiny_bundle):
    return tiny_bundle("lenet5")


def test_runtime_and_gui_run_without_torch(lenet_bundle, tmp_path):
    from PIL import Image

    image = tmp_path / "digit.png"
    Image.new("L", (40, 40), color=128).save(image)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(lenet_bundle), str(image)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["torch_loaded"] == []
    assert report["cli_rc"] == 0
    assert len(report["top3"]) == 3
    assert report["served_top3"] == report["file_top3"]
    modules = set(report["imported"])
    for name in (
        "zoo_runtime.bundle",
        "zoo_runtime.providers",
        "zoo_runtime.sampling",
        "zoo_runtime.cli",
        "zoo_runtime.schema",
        "zoo_runtime.tasks.text_generation",
        "zoo_runtime.tasks.seq2seq",
        "zoo_serve.app",
        "zoo_serve.cli",
        "zoo_serve.triton",
    ):
        assert name in modules
    # Pillow is imported only where image files are read or written.
    assert report["pil_before_use"] is False


def test_blocker_really_blocks(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH + "import torch"], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert proc.returncode != 0
    assert "blocked" in proc.stderr
