"""The served set: every bundle under the given paths, verified at start, and the graphs each one offers.

A bundle that fails verification (a sha256 mismatch, a broken manifest) is reported and left out; a
request can only ever name a model of this set, never a path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zoo_runtime
from zoo_runtime import schema
from zoo_runtime.errors import BundleError
from zoo_runtime.tasks import BundleModel

# Tasks whose "model" graph is one tensor in, one tensor out, batch first: these are dynamically batched.
BATCHED_TASKS = (schema.TASK_IMAGE_CLASSIFICATION, schema.TASK_IMAGE_GENERATION, schema.TASK_SEQUENCE_CLASSIFICATION)
# Graphs a stateless tensor server (V2 infer here, Triton's ONNX Runtime backend) can run on its own: the
# step graph needs the generation loop around it (its state, cache resets and sampling) on the client.
STATEFUL_ROLES = (schema.ROLE_STEP,)


def graph_model_name(bundle_name: str, role: str) -> str:
    """The V2 (and Triton) model name of one graph: the bundle's name for its main graph, else ``name.role``."""
    return bundle_name if role == schema.ROLE_MODEL else f"{bundle_name}.{role}"


@dataclass(frozen=True)
class Graph:
    """One ONNX graph of a served bundle, as the Open Inference Protocol sees it."""

    name: str  # the V2 model name
    model: BundleModel
    role: str

    @property
    def spec(self) -> dict[str, Any]:
        return self.model.graph(self.role)

    @property
    def batched(self) -> bool:
        return self.role == schema.ROLE_MODEL and self.model.task in BATCHED_TASKS


def model_graphs(model: BundleModel) -> list[Graph]:
    """Every graph ``model`` runs (its task's roles), the main one first."""
    roles = sorted(model.roles, key=lambda role: (role != schema.ROLE_MODEL, role))
    return [Graph(graph_model_name(model.name, role), model, role) for role in roles]


@dataclass
class LoadReport:
    models: dict[str, BundleModel]  # bundle name -> task object
    problems: list[str]  # one line per bundle left out


def load_models(
    paths: Iterable[str | os.PathLike[str]],
    device: str = "auto",
    threads: int | None = None,
    trusted_keys: Iterable[str | os.PathLike[str]] | None = None,
) -> LoadReport:
    """Load every bundle under ``paths`` (a bundle directory, a folder of them, or a lone .onnx), verifying each.

    With ``trusted_keys``, a bundle must also carry a signature by one of them (``zoo_runtime.load``).
    """
    keys = list(trusted_keys) if trusted_keys is not None else None
    report = LoadReport({}, [])
    for root in map(Path, paths):
        found = zoo_runtime.find_bundles(root) if root.is_dir() else [root]
        for path in found:
            try:
                model = zoo_runtime.load(path, device=device, threads=threads, trusted_keys=keys)
            except BundleError as exc:
                report.problems.append(f"{exc}; left out")
                continue
            if model.name in report.models:
                first = report.models[model.name].path
                report.problems.append(f"{path}: a bundle named {model.name!r} is already served (from {first}); left out")
                continue
            report.models[model.name] = model
    return report
