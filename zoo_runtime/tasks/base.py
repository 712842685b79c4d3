"""What every task object shares: the verified bundle's facts, its sessions, and one way to run them.

Besides its own methods (``classify``, ``generate``, ``translate``, ...), every task object answers
one small interface: ``describe()`` says what the model takes and returns, as plain JSON-ready data,
and ``predict(request)`` runs it on a mapping of those inputs. CLIs, benchmarks and servers use
these two and never ask which task they hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from zoo_runtime import schema
from zoo_runtime.bundle import Bundle
from zoo_runtime.contract import task_kind
from zoo_runtime.errors import BundleError
from zoo_runtime.providers import SessionFactory
from zoo_runtime.sampling import softmax
from zoo_runtime.signing import SignatureStatus

_NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16, "float64": np.float64, "int64": np.int64, "int32": np.int32}


class Prediction(NamedTuple):
    label: str
    index: int  # type: ignore[assignment]  # shadows tuple.index: the class index is the public name callers use
    probability: float


@dataclass(frozen=True)
class Field:
    """One input or output of ``predict``: its JSON type, whether a request must give it, and a line for people."""

    type: str
    help: str
    required: bool = False

    def describe(self) -> dict[str, Any]:
        return {"type": self.type, "required": self.required, "help": self.help}


class BundleModel:
    """Base of the task objects returned by ``zoo_runtime.load``."""

    task: ClassVar[str] = ""
    roles: ClassVar[tuple[str, ...]] = (schema.ROLE_MODEL,)  # graphs this task runs (sessions are built for these only)
    inputs: ClassVar[Mapping[str, Field]] = {}  # what a predict request may hold
    outputs: ClassVar[Mapping[str, Field]] = {}  # what a predict result holds

    def __init__(self, bundle: Bundle, factory: SessionFactory):
        self.path: Path = bundle.path
        self.manifest: dict[str, Any] = bundle.manifest
        self.name: str = bundle.manifest["model"]
        self.labels: list[str] | None = bundle.manifest.get("labels")
        self.metrics: dict[str, Any] = dict(bundle.manifest.get("metrics") or {})
        self.size_bytes: int = bundle.size_bytes
        self.signature = SignatureStatus(signed=False)  # set by zoo_runtime.load after checking model.sig
        self.session_runs = 0  # how many times a graph ran (lets callers see that a stop really stopped)
        self._sessions = {}
        # Optional graphs (the task contract's optional_roles, e.g. "inspect") run when the bundle has them.
        optional = [role for role in task_kind(self.task).optional_roles if role in bundle.graph_bytes]
        for role in (*self.roles, *optional):
            if role not in bundle.graph_bytes:
                file = self.manifest["graphs"].get(role, {}).get("file")
                if file:  # a TorchScript-only bundle (zoo-export --format torchscript)
                    raise BundleError(f"{self.path / file}: the {role!r} graph is not ONNX; zoo_runtime runs .onnx graphs only")
                raise BundleError(f"{self.path}: a {self.task} bundle needs a {role!r} graph")
            where = self.path / bundle.graph_file(role) if not bundle.lone else self.path
            session = factory.create(bundle.graph_bytes[role], str(where))
            self._check_io(role, session, where)
            self._sessions[role] = session
        self.provider: str = factory.provider or "CPUExecutionProvider"
        self.provider_note: str | None = factory.provider_note

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} from {self.path} on {self.provider}>"

    # ------------------------------------------------------------------------------ the common interface

    def describe(self) -> dict[str, Any]:
        """What this model is, takes and returns: plain JSON-ready data (for CLIs, servers and docs).

        ``inspect`` lists what ``inspect(...)`` returns ({name, dtype, shape}, in order; [] where the model cannot
        be looked inside)."""
        return {
            "model": self.name,
            "task": self.task,
            "title": task_kind(self.task).title,
            "inputs": {name: field.describe() for name, field in self.inputs.items()},
            "outputs": {name: field.describe() for name, field in self.outputs.items()},
            "labels": self.labels,
            "metrics": self.metrics,
            "provider": self.provider,
            "inspect": self.inspect_layers,
            **self.describe_task(),
        }

    def describe_task(self) -> dict[str, Any]:
        """What this task kind adds to ``describe`` (sizes, vocabulary, sampling defaults)."""
        return {}

    def predict(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Run the model on ``request`` (keys of ``describe()["inputs"]``); the result has the keys of its "outputs".

        Results hold plain numbers, strings, lists and numpy arrays. Every problem with the request is a
        BundleError naming the field.
        """
        if not isinstance(request, Mapping):
            raise BundleError(f"request: expected a mapping of {', '.join(self.inputs)}, got {type(request).__name__}")
        unknown = sorted(set(request) - set(self.inputs))
        if unknown:
            raise BundleError(
                f"request: {self.name} ({self.task}) takes no {', '.join(unknown)}; it takes {', '.join(self.inputs)}"
            )
        missing = [name for name, field in self.inputs.items() if field.required and name not in request]
        if missing:
            raise BundleError(f"request: {', '.join(missing)} missing; {self.name} ({self.task}) needs it")
        return self.predict_checked(request)

    def predict_checked(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """``predict`` once the request's keys are known to fit ``inputs``."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------ helpers

    def graph(self, role: str) -> dict[str, Any]:
        spec: dict[str, Any] = self.manifest["graphs"][role]
        return spec

    def input_spec(self, role: str, name: str) -> dict[str, Any]:
        for spec in self.graph(role)["inputs"]:
            if spec["name"] == name:
                return dict(spec)
        raise BundleError(f"{self.path}: graph {role!r} has no input {name!r}")

    def _check_io(self, role: str, session: Any, where: Path) -> None:
        declared = {t["name"] for t in self.graph(role)["inputs"]}
        actual = {i.name for i in session.get_inputs()}
        if declared != actual:
            raise BundleError(f"{where}: the graph's inputs {sorted(actual)} differ from the manifest's {sorted(declared)}")
        declared_out = {t["name"] for t in self.graph(role)["outputs"]}
        actual_out = {o.name for o in session.get_outputs()}
        if not declared_out <= actual_out:
            raise BundleError(f"{where}: the graph lacks outputs {sorted(declared_out - actual_out)} named in the manifest")

    def _run(self, role: str, feeds: dict[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        session = self._sessions[role]
        self.session_runs += 1
        try:
            results: list[np.ndarray] = session.run(list(outputs) if outputs is not None else None, feeds)
            return results
        except Exception as exc:  # onnxruntime's InvalidArgument / Fail / RuntimeException
            shapes = ", ".join(f"{k} {list(np.shape(v))}" for k, v in feeds.items())
            text = str(exc).strip().splitlines()
            raise BundleError(
                f"{self.path}: the {role} graph refused the input ({shapes}): {text[0] if text else type(exc).__name__}"
            ) from None

    def run_graph(self, role: str, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        """Run one of this task's graphs on raw tensors (no pre- or post-processing): for servers and batchers.

        ``feeds`` maps every input name to an array of the graph's dtype; the outputs come in the order asked
        (all of the graph's when None). A graph the task does not run, or a refused input, is a BundleError.
        """
        if role not in self._sessions:
            raise BundleError(f"{self.name}: no {role!r} graph runs here (it has {', '.join(self._sessions)})")
        return self._run(role, dict(feeds), outputs)

    @property
    def inspect_layers(self) -> list[dict[str, Any]]:
        """The named stages the ``inspect`` graph returns ({name, dtype, shape}, in order); [] without one."""
        if schema.ROLE_INSPECT not in self._sessions:
            return []
        return [dict(spec) for spec in self.graph(schema.ROLE_INSPECT)["outputs"]]

    def _inspect(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output of the ``inspect`` graph by its manifest name; a bundle without one is a BundleError."""
        if schema.ROLE_INSPECT not in self._sessions:
            raise self._no_inspect_graph()
        names = [spec["name"] for spec in self.graph(schema.ROLE_INSPECT)["outputs"]]
        return dict(zip(names, self._run(schema.ROLE_INSPECT, feeds, names), strict=True))

    def _no_inspect_graph(self) -> BundleError:
        return BundleError(
            f"{self.path}: this bundle has no inspect graph (its model names no stages, or it was exported "
            "before zoo-export wrote one); export it again to look inside"
        )

    def top_predictions(self, logits: np.ndarray, top_k: int | None) -> list[Prediction]:
        """One row of logits ``[K]`` -> the ``top_k`` (every one when None) labels, most probable first."""
        return self._predictions(softmax(np.asarray(logits)), top_k)

    def numpy_dtype(self, role: str, name: str) -> Any:
        return _NUMPY_DTYPES.get(self.input_spec(role, name).get("dtype", "float32"), np.float32)

    def vocab_size(self) -> int | None:
        vocab = self.manifest.get("vocab") or {}
        if isinstance(vocab.get(schema.VOCAB_TOKENS), list):
            return len(vocab[schema.VOCAB_TOKENS])
        size = vocab.get("size")
        return int(size) if isinstance(size, int) else None

    def _label(self, index: int) -> str:
        if self.labels and 0 <= index < len(self.labels):
            return str(self.labels[index])
        return str(index)

    def _predictions(self, probs: np.ndarray, top_k: int | None) -> list[Prediction]:
        k = probs.shape[-1] if top_k is None else max(1, min(int(top_k), probs.shape[-1]))
        order = np.argsort(-probs, kind="stable")[:k]
        return [Prediction(self._label(int(i)), int(i), float(probs[i])) for i in order]


def as_token_ids(tokens: Any, vocab_size: int | None, what: str = schema.INPUT_TOKENS) -> np.ndarray:
    """A 1-D int64 array of token ids, checked against the vocabulary size."""
    arr = np.asarray(tokens)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise BundleError(f"{what}: expected a 1-D sequence of token ids, got shape {list(arr.shape)}")
    if arr.size == 0:
        raise BundleError(f"{what}: the sequence is empty")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int64)
        else:
            raise BundleError(f"{what}: token ids must be integers, got {arr.dtype}")
    arr = arr.astype(np.int64)
    if vocab_size is not None and (arr.min() < 0 or arr.max() >= vocab_size):
        bad = int(arr[(arr < 0) | (arr >= vocab_size)][0])
        raise BundleError(f"{what}: token id {bad} is outside the vocabulary 0..{vocab_size - 1}")
    return arr
