"""The Open Inference Protocol (KServe V2, as Triton speaks it): datatypes, metadata, and infer bodies.

Infer requests and responses are JSON, or JSON followed by raw tensor bytes (the binary tensor data
extension): the header ``Inference-Header-Content-Length`` then gives the JSON's length, and each
binary input says its byte count in ``parameters.binary_data_size``. ``tritonclient.http`` sends binary
inputs and asks for binary outputs by default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np

from zoo_serve.errors import ServeError

HEADER_LENGTH = "inference-header-content-length"
# Bundle dtypes (docs/BUNDLE.md) -> V2 datatypes; Triton's config.pbtxt spells them TYPE_<V2 name>
# (except BOOL, which the bundles do not use).
V2_DATATYPES = {
    "float32": "FP32",
    "float16": "FP16",
    "float64": "FP64",
    "int64": "INT64",
    "int32": "INT32",
    "int8": "INT8",
    "uint8": "UINT8",
}
_NUMPY = {v2: np.dtype(name) for name, v2 in V2_DATATYPES.items()}


def v2_dims(shape: list[Any]) -> list[int]:
    """A manifest shape as V2 gives it: fixed dims as they are, symbolic ones (``"batch"``, ``"time"``) -1."""
    return [d if isinstance(d, int) and not isinstance(d, bool) else -1 for d in shape]


def tensor_metadata(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": spec["name"],
        "datatype": V2_DATATYPES.get(spec.get("dtype", "float32"), "FP32"),
        "shape": v2_dims(spec["shape"]),
    }


def model_metadata(name: str, graph: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [tensor_metadata(t) for t in graph["inputs"]],
        "outputs": [tensor_metadata(t) for t in graph["outputs"]],
    }


@dataclass
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[str]  # the outputs asked for, in order (all of the graph's when the request names none)
    binary_outputs: set[str]  # of those, the ones to answer as raw bytes


def parse_infer(body: bytes, header_length: str | None, graph: dict[str, Any], max_axis: int) -> InferRequest:
    """An infer body checked against ``graph`` (names, datatypes, ranks, fixed dims, sizes); ServeError 400 if wrong."""
    json_end = len(body)
    if header_length is not None:
        try:
            json_end = int(header_length)
        except ValueError:
            raise ServeError(400, f"Inference-Header-Content-Length {header_length!r} is not a byte count") from None
        if not 0 <= json_end <= len(body):
            raise ServeError(400, f"Inference-Header-Content-Length {json_end} is outside the {len(body)}-byte body")
    try:
        request = json.loads(body[:json_end])
    except (UnicodeDecodeError, ValueError):
        raise ServeError(400, "the infer request is not valid JSON") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise ServeError(400, 'the infer request needs "inputs": a list of tensors')
    specs = {t["name"]: t for t in graph["inputs"]}
    given = [t for t in request["inputs"] if isinstance(t, dict)]
    names = [t.get("name") for t in given]
    if len(given) != len(request["inputs"]) or sorted(map(str, names)) != sorted(specs):
        raise ServeError(400, f"the inputs are {names}; this model takes exactly {sorted(specs)}")
    binary = body[json_end:]
    inputs = {}
    for tensor in given:
        array, used = _input_tensor(tensor, specs[tensor["name"]], binary, max_axis)
        binary = binary[used:]
        inputs[tensor["name"]] = array
    if binary:
        raise ServeError(400, f"{len(binary)} bytes of binary data are left over after the inputs")
    return InferRequest(
        id=str(request["id"]) if request.get("id") is not None else None,
        inputs=inputs,
        **_requested_outputs(request, graph),
    )


def _input_tensor(tensor: dict[str, Any], spec: dict[str, Any], binary: bytes, max_axis: int) -> tuple[np.ndarray, int]:
    name = spec["name"]
    want = V2_DATATYPES.get(spec.get("dtype", "float32"), "FP32")
    if tensor.get("datatype") != want:
        raise ServeError(400, f"input {name}: datatype {tensor.get('datatype')!r}, this model takes {want}")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ServeError(400, f"input {name}: shape must be a list of non-negative integers")
    dims = v2_dims(spec["shape"])
    if len(shape) != len(dims) or any(d != -1 and d != s for d, s in zip(dims, shape, strict=True)):
        raise ServeError(400, f"input {name}: shape {shape}, this model takes {dims} (-1: any size)")
    for axis, size in enumerate(shape[1:], start=1):
        if dims[axis] == -1 and size > max_axis:
            raise ServeError(400, f"input {name}: axis {axis} has {size} elements; this server takes at most {max_axis}")
    dtype = _NUMPY[want]
    count = prod(shape)
    size = (tensor.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size != count * dtype.itemsize or size > len(binary):
            raise ServeError(400, f"input {name}: binary_data_size {size!r} does not hold {count} {want} values")
        return np.frombuffer(binary[:size], dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape), size
    try:
        array = np.asarray(tensor.get("data"), dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        raise ServeError(400, f"input {name}: data is not a list of {want} numbers") from None
    if array.size != count:
        raise ServeError(400, f"input {name}: {array.size} values for shape {shape} ({count} expected)")
    return array.reshape(shape), 0


def _requested_outputs(request: dict[str, Any], graph: dict[str, Any]) -> dict[str, Any]:
    declared = [t["name"] for t in graph["outputs"]]
    all_binary = bool((request.get("parameters") or {}).get("binary_data_output"))
    asked = request.get("outputs")
    if asked is None:
        return {"outputs": declared, "binary_outputs": set(declared) if all_binary else set()}
    if not isinstance(asked, list) or not all(isinstance(o, dict) and o.get("name") in declared for o in asked):
        raise ServeError(400, f"outputs: each must name one of this model's outputs {declared}")
    binary = {o["name"] for o in asked if all_binary or (o.get("parameters") or {}).get("binary_data")}
    return {"outputs": [o["name"] for o in asked], "binary_outputs": binary}


def encode_infer(model_name: str, request: InferRequest, outputs: list[np.ndarray]) -> tuple[bytes, dict[str, str]]:
    """The response body and its extra headers (``Inference-Header-Content-Length`` when any output is binary)."""
    tensors, blobs = [], []
    for name, array in zip(request.outputs, outputs, strict=True):
        array = np.ascontiguousarray(array)
        entry: dict[str, Any] = {"name": name, "datatype": V2_DATATYPES[array.dtype.name], "shape": list(array.shape)}
        if name in request.binary_outputs:
            blob = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = array.reshape(-1).tolist()
        tensors.append(entry)
    response: dict[str, Any] = {"model_name": model_name, "model_version": "1", "outputs": tensors}
    if request.id is not None:
        response["id"] = request.id
    header = json.dumps(response, separators=(",", ":")).encode()
    if not blobs:
        return header, {"content-type": "application/json"}
    return header + b"".join(blobs), {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(header))}
