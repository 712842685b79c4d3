"""Prometheus metrics of one server (its own registry, so several apps in one process do not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Requests, latency, batch sizes, queue depth, active streams and generated tokens, per model.

    ``model`` is a served model's name or "" (requests naming no model, or an unknown one: unknown
    names never become label values, so a client cannot grow the series without bound).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "zoo_serve_requests",
            "Requests answered, by model, endpoint and HTTP status",
            ["model", "endpoint", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "zoo_serve_request_seconds",
            "Time from request to the end of the response (streams: to their end)",
            ["model", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "zoo_serve_batch_size",
            "Rows per onnxruntime call of a dynamically batched graph",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "zoo_serve_queue_depth", "Requests waiting for a batched graph", ["model"], registry=self.registry
        )
        self.active_streams = Gauge(
            "zoo_serve_active_streams", "Generations running now (streamed or not)", ["model"], registry=self.registry
        )
        self.generated_tokens = Counter(
            "zoo_serve_generated_tokens", "Tokens generated (text and DNA generation)", ["model"], registry=self.registry
        )
