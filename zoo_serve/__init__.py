"""zoo_serve: Model Zoo bundles over HTTP with zoo_runtime (numpy and onnxruntime, never torch).

    zoo-serve models_out                       # every bundle under models_out, on 127.0.0.1:8000
    curl -F image=@shoe.png localhost:8000/models/lenet5/classify

The Open Inference Protocol (KServe V2, as Triton implements it) under /v2, so standard clients work;
task endpoints under /models/NAME; dynamic batching of the tensor-in, tensor-out graphs; Prometheus
metrics at /metrics; ``zoo-serve export-triton`` writes the same graphs as a Triton model repository.
In code: ``create_app(load_models([...]).models, ServeSettings())`` is an ASGI app.
"""

from __future__ import annotations

from zoo_serve.app import create_app
from zoo_serve.models import load_models
from zoo_serve.settings import BatchPolicy, ServeSettings

__all__ = ["BatchPolicy", "ServeSettings", "create_app", "load_models"]
