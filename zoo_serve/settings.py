"""What a server is allowed to do: limits on requests, batching per model, streams and timeouts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BatchPolicy:
    """Dynamic batching of one graph: up to ``max_batch`` rows per onnxruntime call.

    ``window_s``: how long a busy graph waits for more requests before running a batch that is not full
    (an idle graph runs a lone request at once). ``max_batch`` 1 turns batching off (each request runs
    alone, still through the bounded queue).
    """

    max_batch: int = 32
    window_s: float = 0.002


@dataclass(frozen=True)
class ServeSettings:
    max_body_bytes: int = 16 << 20  # any request body (413 past it)
    max_image_pixels: int = 16_000_000  # width x height of an uploaded image, read from its header (413 past it)
    max_new_tokens: int = 512  # tokens one generation or translation may produce (400 past it)
    max_sequence: int = 4096  # prompt characters, token ids, and the non-batch axes of V2 tensors (400 past it)
    max_samples: int = 64  # GAN images per request (400 past it)
    max_queue: int = 256  # requests waiting for one batched graph (503 with Retry-After past it)
    max_streams: int = 8  # generations running at once, streamed or not (429 past it)
    timeout_s: float = 30.0  # one request's compute, streams excepted (504 past it)
    batching: BatchPolicy = field(default_factory=BatchPolicy)  # every batched model's, unless overridden
    model_batching: Mapping[str, BatchPolicy] = field(default_factory=dict)  # per model name
    tokens: tuple[str, ...] = ()  # bearer tokens; empty: no authentication

    def batch_policy(self, model_name: str) -> BatchPolicy:
        return self.model_batching.get(model_name, self.batching)
