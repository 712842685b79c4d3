"""The ASGI app: Open Inference Protocol endpoints, task endpoints for curl, metrics, and the docs page.

``create_app(models, settings)`` builds it over task objects that ``zoo_runtime.load`` returned
(``zoo_serve.models.load_models`` finds and verifies them); nothing here reads a path from a request.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import secrets
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zoo_runtime import schema
from zoo_runtime.errors import BundleError
from zoo_runtime.tasks import BundleModel, ImageClassifier, ImageGenerator, SequenceClassifier, TextGenerator, Translator
from zoo_runtime.tasks.base import Prediction, as_token_ids
from zoo_runtime.tasks.image_generation import images_uint8
from zoo_serve.batching import Batcher, QueueFull
from zoo_serve.docs_page import DOCS_HTML
from zoo_serve.errors import ServeError
from zoo_serve.metrics import Metrics
from zoo_serve.models import Graph, model_graphs
from zoo_serve.security import Guard
from zoo_serve.settings import ServeSettings
from zoo_serve.v2 import HEADER_LENGTH, encode_infer, model_metadata, parse_infer

log = logging.getLogger("zoo_serve")
T = TypeVar("T")
RETRY_AFTER = {"retry-after": "1"}
# Endpoints beside the V2 graph ones, per task; a kind without its own gets the V2 endpoints only.
TASK_ENDPOINTS = {
    schema.TASK_IMAGE_CLASSIFICATION: ["POST /models/{name}/classify"],
    schema.TASK_IMAGE_GENERATION: ["GET /models/{name}/sample.png"],
    schema.TASK_SEQUENCE_CLASSIFICATION: ["POST /models/{name}/classify-sequence"],
    schema.TASK_TEXT_GENERATION: ["POST /v2/models/{name}/generate", "POST /v2/models/{name}/generate_stream"],
    schema.TASK_SEQ2SEQ: ["POST /models/{name}/translate"],
}


def package_version() -> str:
    try:
        return metadata.version("model-zoo")
    except metadata.PackageNotFoundError:  # run from a checkout without installing
        return "unknown"


class Server:
    """What the routes share: the served models and graphs, their batchers, the metrics and the stream slots."""

    def __init__(self, models: Mapping[str, BundleModel], settings: ServeSettings):
        self.models = dict(models)
        self.settings = settings
        self.metrics = Metrics()
        self.graphs = {g.name: g for model in self.models.values() for g in model_graphs(model)}
        self.batchers = {name: self._batcher(g) for name, g in self.graphs.items() if g.batched}
        self.streams = 0

    def _batcher(self, graph: Graph) -> Batcher:
        spec = graph.spec
        input_name, output_name = spec["inputs"][0]["name"], spec["outputs"][0]["name"]

        def run(rows: np.ndarray) -> np.ndarray:
            return graph.model.run_graph(graph.role, {input_name: rows}, [output_name])[0]

        return Batcher(
            run,
            self.settings.batch_policy(graph.model.name),
            self.settings.max_queue,
            on_batch=self.metrics.batch_size.labels(graph.name).observe,
            on_queue=self.metrics.queue_depth.labels(graph.name).set,
        )

    # ---------------------------------------------------------------------------------------- lookups

    def model(self, name: str, task: str | None = None) -> BundleModel:
        model = self.models.get(name)
        if model is None:
            raise ServeError(404, f"no model named {name!r} is served here (GET /models lists them)")
        if task is not None and model.task != task:
            raise ServeError(404, f"{name!r} is a {model.task} model; this endpoint is for {task} models")
        return model

    def graph(self, name: str, version: str | None = None) -> Graph:
        graph = self.graphs.get(name)
        if graph is None:
            model = self.models.get(name)
            if model is not None:  # a bundle whose graphs all have role names (a text generator's step graph)
                others = ", ".join(g.name for g in model_graphs(model))
                raise ServeError(404, f"{name!r} has no single graph; its graphs are served as {others}")
            raise ServeError(404, f"no model named {name!r} is served here (GET /v2/models lists them)")
        if version not in (None, "1"):
            raise ServeError(404, f"{name!r} has only version 1")
        return graph

    # ---------------------------------------------------------------------------------------- running

    def user_error(self, exc: BundleError, model: BundleModel) -> ServeError:
        """A runtime error caused by the request, without the server's paths in it."""
        return ServeError(400, str(exc).replace(str(model.path), model.name))

    async def batched(self, graph: Graph, rows: np.ndarray) -> np.ndarray:
        try:
            return await self.batchers[graph.name].submit(rows, self.settings.timeout_s)
        except QueueFull:
            raise ServeError(503, f"{graph.name}: the queue is full; retry shortly", RETRY_AFTER) from None
        except TimeoutError:
            raise ServeError(504, f"{graph.name}: no answer within {self.settings.timeout_s:g} s") from None
        except BundleError as exc:
            raise self.user_error(exc, graph.model) from None

    async def compute(self, model: BundleModel, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread, within the request timeout."""
        work = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        try:
            return await asyncio.wait_for(work, self.settings.timeout_s)
        except TimeoutError:
            raise ServeError(504, f"{model.name}: no answer within {self.settings.timeout_s:g} s") from None
        except BundleError as exc:
            raise self.user_error(exc, model) from None

    def take_stream(self, model: BundleModel) -> Callable[[], None]:
        """A generation slot (429 when all are taken); returns the function that gives it back, once."""
        if self.streams >= self.settings.max_streams:
            raise ServeError(429, f"{self.settings.max_streams} generations are running; retry shortly", RETRY_AFTER)
        self.streams += 1
        gauge = self.metrics.active_streams.labels(model.name)
        gauge.inc()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.streams -= 1
                gauge.dec()

        return release

    def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.close()


# -------------------------------------------------------------------------------------------- request bodies


class _SequenceInput(BaseModel):
    """A sequence as token ids or, for a bundle with a character vocabulary (DNA, text), as text: one of the two."""

    model_config = ConfigDict(extra="forbid")
    tokens: list[int] | None = Field(None, description="token ids, 0..vocabulary size - 1")
    sequence: str | None = Field(None, description='the sequence as text, e.g. a DNA read "ACGT..."')

    @model_validator(mode="after")
    def _one_of(self) -> _SequenceInput:
        if (self.tokens is None) == (self.sequence is None):
            raise ValueError("give either tokens (ids) or sequence (text)")
        return self

    def length(self) -> int:
        return len(self.tokens) if self.tokens is not None else len(self.sequence or "")

    def size_text(self) -> str:
        return f"tokens: {self.length()} ids" if self.tokens is not None else f"sequence: {self.length()} characters"


class SequenceRequest(_SequenceInput):
    top_k: int | None = Field(None, ge=1, description="labels to return (default: all)")


class TranslateRequest(_SequenceInput):
    max_new_tokens: int | None = Field(None, ge=1, description="longest output (default: the bundle's)")


class GenerateRequest(BaseModel):
    """The body of Triton's generate extension: ``text_input`` and sampling parameters at the top level."""

    model_config = ConfigDict(extra="forbid")
    text_input: str = Field(description="the prompt (text, or DNA bases A/C/G/T)")
    max_tokens: int | None = Field(
        None, ge=0, description="tokens to generate (default: the bundle's, within the server's limit)"
    )
    temperature: float | None = Field(None, ge=0, description="0 = greedy (default: the bundle's)")
    top_k: int | None = Field(None, ge=0, description="0 = off (default: the bundle's)")
    top_p: float | None = Field(None, gt=0, le=1, description="1 = off (default: the bundle's)")
    seed: int | None = Field(None, description="random seed (default: a fresh one)")
    stop: str | list[str] | None = Field(None, description="stop at this string (not included)")


def predictions_json(name: str, predictions: list[Prediction]) -> dict[str, Any]:
    return {"model": name, "predictions": [p._asdict() for p in predictions]}


def sse(event: dict[str, Any]) -> str:
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n"


class ClosingStream(StreamingResponse):
    """A streamed response that closes its generator and runs ``on_close`` however it ends (done, failed, client gone)."""

    def __init__(self, events: AsyncIterator[str], on_close: Callable[[], None]):
        super().__init__(events, media_type="text/event-stream", headers={"cache-control": "no-cache", "x-accel-buffering": "no"})
        self._events = events
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                aclose = getattr(self._events, "aclose", None)
                if aclose is not None:
                    await aclose()
            finally:
                self._on_close()  # even when the close itself is cancelled (a drain that timed out)


# -------------------------------------------------------------------------------------------- images


def read_image(data: bytes, filename: str, max_pixels: int) -> Any:
    """An uploaded file as a Pillow image, its size checked from the header before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    what = f"the upload {filename!r}" if filename else "the upload"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower limit applies below
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > max_pixels:
                raise ServeError(413, f"{what} is {img.width}x{img.height} pixels; this server takes at most {max_pixels}")
            img.load()
            return img
    except Image.DecompressionBombError:
        raise ServeError(413, f"{what} is too many pixels to decode; this server takes at most {max_pixels}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ServeError(415, f"{what} is not an image Pillow can read (PNG, JPEG, ...)") from None


def png_grid(images: np.ndarray) -> bytes:
    """uint8 images [n, H, W, C] as one PNG, tiled in a near-square grid."""
    from PIL import Image

    n, h, w, c = images.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * h, cols * w, c), dtype=np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, cols)
        grid[r * h : (r + 1) * h, col * w : (col + 1) * w] = image
    out = io.BytesIO()
    Image.fromarray(grid[:, :, 0] if c == 1 else grid).save(out, format="PNG")
    return out.getvalue()


# -------------------------------------------------------------------------------------------- metrics middleware


class RecordRequests:
    """Counts every answer and times it (streams to their end), labelled by model and route template."""

    def __init__(self, app: ASGIApp, server: Server):
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            endpoint = getattr(scope.get("route"), "path", "unmatched")
            name = (scope.get("path_params") or {}).get("name", "")
            model = name if name in self.server.models or name in self.server.graphs else ""
            metrics = self.server.metrics
            metrics.requests.labels(model, endpoint, str(status)).inc()
            metrics.latency.labels(model, endpoint).observe(time.perf_counter() - start)


# -------------------------------------------------------------------------------------------- the app


def create_app(models: Mapping[str, BundleModel], settings: ServeSettings | None = None) -> FastAPI:
    server = Server(models, settings or ServeSettings())
    limits = server.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        server.close()

    app = FastAPI(
        title="zoo-serve",
        version=package_version(),
        summary="Model Zoo bundles over HTTP: the Open Inference Protocol (KServe V2) and task endpoints.",
        docs_url=None,  # FastAPI's pages load their scripts from a CDN; /docs below works offline
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.zoo = server

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, exc: ServeError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path"))
        message = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid request"))
        return JSONResponse({"error": f"{message} (see /docs)"}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path} (see /docs)"
        else:
            message = str(exc.detail)
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(ClientDisconnect)
    async def client_left(request: Request, exc: ClientDisconnect) -> Response:
        return Response(status_code=400)  # nobody reads it: the client is gone, or the body limit already answered 413

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": "internal error while answering this request; the server log has the details"}, 500)

    # ------------------------------------------------------------------------------ server and listing

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(DOCS_HTML)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        return Response(generate_latest(server.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/models", summary="The served models, their tasks, V2 graphs and task endpoints")
    async def list_models() -> dict[str, Any]:
        return {
            "models": [
                {
                    "name": model.name,
                    "task": model.task,
                    "graphs": [g.name for g in model_graphs(model)],
                    "endpoints": [e.replace("{name}", model.name) for e in TASK_ENDPOINTS.get(model.task, [])],
                    "labels": model.labels,
                    "batched": any(g.batched for g in model_graphs(model)),
                    "provider": model.provider,
                }
                for model in server.models.values()
            ]
        }

    @app.get("/models/{name}", summary="What a model is, takes and returns (the runtime's describe())")
    async def describe_model(name: str) -> dict[str, Any]:
        return server.model(name).describe()

    @app.get("/v2/health/live", summary="Liveness (V2)")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready", summary="Readiness (V2): every served bundle was verified and loaded at start")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.get("/v2", summary="Server metadata (V2)")
    async def server_metadata() -> dict[str, Any]:
        return {"name": "zoo-serve", "version": package_version(), "extensions": ["binary_tensor_data", "generate"]}

    @app.get("/v2/models", summary="The V2 model names (one per graph)")
    async def v2_models() -> dict[str, Any]:
        return {"models": [{"name": g.name, "version": "1", "state": "READY"} for g in server.graphs.values()]}

    # ------------------------------------------------------------------------------ V2 models

    @app.get("/v2/models/{name}", summary="Model metadata (V2): inputs and outputs, -1 for dynamic axes")
    @app.get("/v2/models/{name}/versions/{version}", summary="Model metadata (V2) of a version (only 1)")
    async def graph_metadata(name: str, version: str | None = None) -> dict[str, Any]:
        graph = server.graph(name, version)
        return model_metadata(graph.name, graph.spec)

    @app.get("/v2/models/{name}/ready", summary="Model readiness (V2)")
    @app.get("/v2/models/{name}/versions/{version}/ready", summary="Model readiness (V2) of a version (only 1)")
    async def graph_ready(name: str, version: str | None = None) -> dict[str, Any]:
        return {"name": server.graph(name, version).name, "ready": True}

    @app.post(
        "/v2/models/{name}/infer",
        summary="Inference (V2): JSON tensors, or the binary tensor data extension",
        description="Batched graphs (classifiers, GANs, sequence classifiers) share onnxruntime calls with other requests.",
    )
    @app.post("/v2/models/{name}/versions/{version}/infer", summary="Inference (V2) on a version (only 1)")
    async def infer(name: str, request: Request, version: str | None = None) -> Response:
        graph = server.graph(name, version)
        body = await request.body()
        parsed = parse_infer(body, request.headers.get(HEADER_LENGTH), graph.spec, limits.max_sequence)
        if graph.batched:
            (rows,) = parsed.inputs.values()
            if len(rows) == 0:
                raise ServeError(400, f"{name}: the batch axis is empty")
            out = await server.batched(graph, rows)
            outputs = [out for _ in parsed.outputs]  # a batched graph has one output
        else:
            outputs = await server.compute(graph.model, graph.model.run_graph, graph.role, parsed.inputs, parsed.outputs)
        content, headers = encode_infer(graph.name, parsed, outputs)
        return Response(content, headers=headers)

    # ------------------------------------------------------------------------------ generation

    def start_generation(name: str, body: GenerateRequest) -> tuple[TextGenerator, Iterator[str], Callable[[], None]]:
        model = server.model(name, schema.TASK_TEXT_GENERATION)
        assert isinstance(model, TextGenerator)
        if len(body.text_input) > limits.max_sequence:
            raise ServeError(
                400, f"text_input has {len(body.text_input)} characters; this server takes at most {limits.max_sequence}"
            )
        if body.max_tokens is not None and body.max_tokens > limits.max_new_tokens:
            raise ServeError(400, f"max_tokens {body.max_tokens} is above this server's limit of {limits.max_new_tokens}")
        default = int(model.sampling.get("max_new_tokens") or limits.max_new_tokens)
        max_tokens = body.max_tokens if body.max_tokens is not None else min(default, limits.max_new_tokens)
        release = server.take_stream(model)
        try:
            pieces = model.generate(body.text_input, max_tokens, body.temperature, body.top_k, body.top_p, body.seed, body.stop)
        except BundleError as exc:
            release()
            raise server.user_error(exc, model) from None
        return model, pieces, release

    @app.post("/v2/models/{name}/generate", summary="Generate text or DNA (Triton's generate extension), all at once")
    async def generate(name: str, body: GenerateRequest) -> dict[str, Any]:
        model, pieces, release = start_generation(name, body)
        deadline = time.monotonic() + limits.timeout_s

        def collect() -> tuple[str, bool]:
            text = []
            for piece in pieces:
                text.append(piece)
                if time.monotonic() > deadline:
                    return "".join(text), False
            return "".join(text), True

        try:
            text, finished = await run_in_threadpool(collect)
        except BundleError as exc:
            raise server.user_error(exc, model) from None
        finally:
            release()
        if not finished:
            raise ServeError(504, f"{name}: generation took longer than {limits.timeout_s:g} s; ask for fewer max_tokens")
        server.metrics.generated_tokens.labels(name).inc(len(text))
        return {"model_name": name, "model_version": "1", "text_output": text}

    @app.post(
        "/v2/models/{name}/generate_stream",
        summary="Generate text or DNA as Server-Sent Events, one token per event (Triton's generate_stream)",
        description='Each event is `data: {"model_name": ..., "text_output": "<token>"}`; a failure mid-stream is '
        '`data: {"error": ...}`. Closing the connection stops the generation.',
        response_class=StreamingResponse,
    )
    async def generate_stream(name: str, body: GenerateRequest) -> StreamingResponse:
        model, pieces, release = start_generation(name, body)
        tokens = server.metrics.generated_tokens.labels(name)

        async def events() -> AsyncIterator[str]:
            try:
                while True:
                    # One token per worker-thread call: a cancelled stream waits for the current token, then stops.
                    piece = await run_in_threadpool(next, pieces, None)
                    if piece is None:
                        return
                    tokens.inc(len(piece))
                    yield sse({"model_name": name, "model_version": "1", "text_output": piece})
            except BundleError as exc:
                yield sse({"error": server.user_error(exc, model).message})
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()

        return ClosingStream(events(), release)

    # ------------------------------------------------------------------------------ other tasks

    @app.post("/models/{name}/classify", summary="Classify an uploaded image (multipart field `image`), top-k labels")
    async def classify(
        name: str,
        image: Annotated[UploadFile, File(description="an image file (PNG, JPEG, ...)")],
        top_k: Annotated[int, Query(ge=1, description="labels to return")] = 5,
    ) -> dict[str, Any]:
        model = server.model(name, schema.TASK_IMAGE_CLASSIFICATION)
        assert isinstance(model, ImageClassifier)
        data = await image.read()

        def prepare() -> np.ndarray:
            return model.preprocess(read_image(data, image.filename or "", limits.max_image_pixels))

        try:
            rows = await run_in_threadpool(prepare)
        except BundleError as exc:
            raise server.user_error(exc, model) from None
        logits = await server.batched(server.graph(name), rows)
        return predictions_json(name, model.top_predictions(logits[0], top_k))

    @app.post("/models/{name}/classify-sequence", summary="Classify a sequence of token ids")
    async def classify_sequence(name: str, body: SequenceRequest) -> dict[str, Any]:
        model = server.model(name, schema.TASK_SEQUENCE_CLASSIFICATION)
        assert isinstance(model, SequenceClassifier)
        if body.length() > limits.max_sequence:
            raise ServeError(400, f"{body.size_text()}; this server takes at most {limits.max_sequence}")
        try:
            if body.sequence is not None:
                ids = np.asarray(model.vocab.encode(body.sequence), dtype=np.int64)
            else:
                ids = as_token_ids(body.tokens, model.vocab_size())
        except BundleError as exc:
            raise server.user_error(exc, model) from None
        logits = await server.batched(server.graph(name), ids[None])
        return predictions_json(name, model.top_predictions(logits[0], body.top_k))

    @app.post("/models/{name}/translate", summary="Translate a sequence of token ids (greedy seq2seq decoding)")
    async def translate(name: str, body: TranslateRequest) -> dict[str, Any]:
        model = server.model(name, schema.TASK_SEQ2SEQ)
        assert isinstance(model, Translator)
        if body.length() > limits.max_sequence:
            raise ServeError(400, f"{body.size_text()}; this server takes at most {limits.max_sequence}")
        if body.max_new_tokens is not None and body.max_new_tokens > limits.max_new_tokens:
            raise ServeError(400, f"max_new_tokens {body.max_new_tokens} is above this server's limit of {limits.max_new_tokens}")
        max_len = (
            body.max_new_tokens
            if body.max_new_tokens is not None
            else min(model.max_len or limits.max_new_tokens, limits.max_new_tokens)
        )
        if body.sequence is not None:  # text in, text out (a DNA window -> its protein)
            return {"model": name, "output": await server.compute(model, model.translate, body.sequence, max_len)}
        return {"model": name, "tokens": await server.compute(model, model.translate_ids, body.tokens, max_len)}

    @app.get(
        "/models/{name}/sample.png",
        summary="Sample GAN images as one PNG (a grid when n > 1)",
        description="The seed used is in the X-Seed header: the same seed gives the same images.",
        response_class=Response,
    )
    async def sample_png(
        name: str,
        n: Annotated[int, Query(ge=1, description="images to sample")] = 1,
        seed: Annotated[int | None, Query(ge=0, description="random seed (default: a fresh one)")] = None,
    ) -> Response:
        model = server.model(name, schema.TASK_IMAGE_GENERATION)
        assert isinstance(model, ImageGenerator)
        if n > limits.max_samples:
            raise ServeError(400, f"n: {n} images; this server samples at most {limits.max_samples} per request")
        seed = secrets.randbelow(2**31) if seed is None else seed
        images = await server.batched(server.graph(name), model.sample_latents(n, seed))
        png = await run_in_threadpool(png_grid, images_uint8(images))
        return Response(png, media_type="image/png", headers={"x-seed": str(seed)})

    app.add_middleware(Guard, tokens=limits.tokens, max_body_bytes=limits.max_body_bytes)
    app.add_middleware(RecordRequests, server=server)
    return app
