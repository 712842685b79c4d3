"""zoo-serve: the ASGI app in process (httpx), one real server driven by tritonclient, and the Triton repository.

Bundles are the tiny exports of conftest (one per task kind). Every test builds its own app over the
module's loaded models, so settings (limits, batching) are per test and event loops never mix.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
from PIL import Image

from zoo_runtime.tasks import BundleModel
from zoo_serve import BatchPolicy, ServeSettings, create_app, load_models
from zoo_serve.app import Server
from zoo_serve.cli import main as zoo_serve
from zoo_serve.security import TokenFileError, read_token_file

ROOT = Path(__file__).resolve().parents[1]
SERVED = ("lenet5", "dcgan", "char-gpt", "gru-classifier", "seq2seq-transformer")
TOKEN = "s3cret-token-0123456789"
T = TypeVar("T")


@pytest.fixture(scope="module")
def bundles(tiny_bundle: Callable[[str], Path]) -> dict[str, Path]:
    return {name: tiny_bundle(name) for name in SERVED}


@pytest.fixture(scope="module")
def models(bundles: dict[str, Path]) -> dict[str, BundleModel]:
    report = load_models(bundles.values(), device="cpu", threads=1)
    assert report.problems == []
    return report.models


def run(scenario: Callable[[httpx.AsyncClient, Server], Awaitable[T]], models: dict[str, BundleModel], **settings: Any) -> T:
    """``scenario(client, server)`` against a fresh app, in a fresh event loop."""
    app = create_app(models, ServeSettings(**settings))

    async def go() -> T:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://zoo") as client:
            return await scenario(client, app.state.zoo)

    try:
        return asyncio.run(go())
    finally:
        app.state.zoo.close()


def png_bytes(size: tuple[int, int] = (40, 30), color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def assert_error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str)
    assert "Traceback" not in body["error"] and "pytest-of" not in body["error"]  # nor the server's paths
    for word in words:
        assert word in body["error"], body["error"]


def v2_json_input(name: str, array: np.ndarray, datatype: str) -> dict[str, Any]:
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": array.reshape(-1).tolist()}


# ------------------------------------------------------------------------------------------ V2 protocol


def test_health_server_and_model_metadata(models: dict[str, BundleModel]) -> None:
    async def scenario(client: httpx.AsyncClient, server: Server) -> None:
        assert (await client.get("/v2/health/live")).json() == {"live": True}
        assert (await client.get("/v2/health/ready")).json() == {"ready": True}
        meta = (await client.get("/v2")).json()
        assert meta["name"] == "zoo-serve" and "binary_tensor_data" in meta["extensions"]
        lenet = (await client.get("/v2/models/lenet5")).json()
        assert lenet["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
        assert lenet["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
        assert (await client.get("/v2/models/lenet5/versions/1")).json() == lenet
        assert (await client.get("/v2/models/lenet5/ready")).json() == {"name": "lenet5", "ready": True}
        step = (await client.get("/v2/models/char-gpt.step")).json()
        assert step["inputs"][0] == {"name": "tokens", "datatype": "INT64", "shape": [-1, -1]}
        assert step["inputs"][1]["shape"] == [1, -1, 2, -1, 16]  # symbolic batch and past axes are -1
        decoder = (await client.get("/v2/models/seq2seq-transformer.decoder")).json()
        assert [t["name"] for t in decoder["inputs"]] == ["tgt", "memory", "src"]
        assert_error(await client.get("/v2/models/char-gpt"), 404, "char-gpt.step")
        assert_error(await client.get("/v2/models/nope"), 404, "'nope'")
        assert_error(await client.get("/v2/models/lenet5/versions/2"), 404, "version 1")
        listing = (await client.get("/models")).json()["models"]
        assert {m["name"]: m["task"] for m in listing} == {name: models[name].task for name in SERVED}
        by_name = {m["name"]: m for m in listing}
        assert by_name["lenet5"]["endpoints"] == ["POST /models/lenet5/classify"] and by_name["lenet5"]["batched"]
        assert not by_name["char-gpt"]["batched"]
        for name in SERVED:  # the runtime interface's describe(), served as it is
            assert (await client.get(f"/models/{name}")).json() == json.loads(json.dumps(models[name].describe()))
        assert_error(await client.get("/models/nope"), 404, "'nope'")

    run(scenario, models)


def test_v2_infer_json_and_binary(models: dict[str, BundleModel]) -> None:
    lenet = models["lenet5"]
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    expected = lenet.run_graph("model", {"image": x})[0]
    src = np.array([[3, 4, 5, 6]], dtype=np.int64)
    memory = models["seq2seq-transformer"].run_graph("encoder", {"src": src})[0]

    async def scenario(client: httpx.AsyncClient, server: Server) -> None:
        body = {"id": "r1", "inputs": [v2_json_input("image", x, "FP32")]}
        answer = (await client.post("/v2/models/lenet5/infer", json=body)).json()
        assert answer["model_name"] == "lenet5" and answer["id"] == "r1"
        (out,) = answer["outputs"]
        assert out["name"] == "logits" and out["datatype"] == "FP32" and out["shape"] == [3, 10]
        np.testing.assert_allclose(np.array(out["data"]).reshape(3, 10), expected, rtol=1e-6, atol=1e-6)

        # The binary tensor data extension, both ways (what tritonclient.http sends by default).
        header = json.dumps(
            {
                "inputs": [
                    {"name": "image", "shape": [3, 1, 28, 28], "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}
                ],
                "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
            }
        ).encode()
        response = await client.post(
            "/v2/models/lenet5/infer",
            content=header + x.tobytes(),
            headers={"Inference-Header-Content-Length": str(len(header))},
        )
        length = int(response.headers["inference-header-content-length"])
        meta = json.loads(response.content[:length])
        assert meta["outputs"][0]["parameters"]["binary_data_size"] == 3 * 10 * 4
        np.testing.assert_allclose(np.frombuffer(response.content[length:], dtype="<f4").reshape(3, 10), expected, rtol=1e-6)

        # A graph that is not batched runs directly: the seq2seq encoder.
        enc = (
            await client.post(
                "/v2/models/seq2seq-transformer.encoder/infer", json={"inputs": [v2_json_input("src", src, "INT64")]}
            )
        ).json()
        np.testing.assert_allclose(np.array(enc["outputs"][0]["data"]).reshape(memory.shape), memory, rtol=1e-5, atol=1e-6)

        bad = {"inputs": [v2_json_input("image", x[:, :, :27], "FP32")]}
        assert_error(await client.post("/v2/models/lenet5/infer", json=bad), 400, "shape [3, 1, 27, 28]")
        wrong_type = {"inputs": [v2_json_input("image", x, "FP64")]}
        assert_error(await client.post("/v2/models/lenet5/infer", json=wrong_type), 400, "FP32")
        assert_error(await client.post("/v2/models/lenet5/infer", json={"inputs": [{"name": "z"}]}), 400, "['image']")
        assert_error(await client.post("/v2/models/lenet5/infer", content=b"{not json"), 400, "JSON")
        out_of_vocab = {"inputs": [v2_json_input("src", np.array([[3, 400]]), "INT64")]}
        assert_error(await client.post("/v2/models/seq2seq-transformer.encoder/infer", json=out_of_vocab), 400, "encoder")

    run(scenario, models)


# ------------------------------------------------------------------------------------------ task endpoints


def test_classify_uploaded_image(models: dict[str, BundleModel]) -> None:
    image = png_bytes()
    expected = models["lenet5"].classify(Image.open(io.BytesIO(image)), top_k=3)[0]  # type: ignore[attr-defined]

    async def scenario(client: httpx.AsyncClient, server: Server) -> None:
        answer = (await client.post("/models/lenet5/classify?top_k=3", files={"image": ("red.png", image, "image/png")})).json()
        assert answer["model"] == "lenet5"
        assert [(p["label"], p["index"]) for p in answer["predictions"]] == [(p.label, p.index) for p in expected]
        probs = [p["probability"] for p in answer["predictions"]]
        assert probs == sorted(probs, reverse=True)
        np.testing.assert_allclose(probs, [p.probability for p in expected], rtol=1e-5)

    run(scenario, models)


def test_sequence_classification_translation_and_gan_png(models: dict[str, BundleModel]) -> None:
    seq, translator, gan = models["gru-classifier"], models["seq2seq-transformer"], models["dcgan"]

    async def scenario(client: httpx.AsyncClient, server: Server) -> None:
        answer = (
            await client.post("/models/gru-classifier/classify-sequence", json={"tokens": [1, 2, 3, 4, 5], "top_k": 2})
        ).json()
        expected = seq.classify_sequence([1, 2, 3, 4, 5], top_k=2)  # type: ignore[attr-defined]
        assert [p["label"] for p in answer["predictions"]] == [p.label for p in expected]

        answer = (
            await client.post("/models/seq2seq-transformer/translate", json={"tokens": [3, 4, 5, 6], "max_new_tokens": 5})
        ).json()
        assert answer["tokens"] == translator.translate([3, 4, 5, 6], max_len=5)  # type: ignore[attr-defined]
        # Text is for bundles with a character vocabulary (tests/test_sequence_bundles.py has those); these take ids.
        assert_error(
            await client.post("/models/gru-classifier/classify-sequence", json={"sequence": "ACGT"}),
            400,
            "takes token ids, not text",
        )
        both = await client.post("/models/seq2seq-transformer/translate", json={"tokens": [3], "sequence": "A"})
        assert both.status_code == 400 and "either tokens (ids) or sequence (text)" in both.json()["error"]

        first = await client.get("/models/dcgan/sample.png?n=4&seed=7")
        again = await client.get("/models/dcgan/sample.png?n=4&seed=7")
        assert first.headers["content-type"] == "image/png" and first.headers["x-seed"] == "7"
        assert first.content == again.content
        grid = np.asarray(Image.open(io.BytesIO(first.content)))
        assert grid.shape == (56, 56)  # 2x2 grid of 28x28 grayscale images
        alone = gan.sample(4, seed=7)  # type: ignore[attr-defined]
        np.testing.assert_array_equal(grid[:28, 28:], alone[1][:, :, 0])
        unseeded = await client.get("/models/dcgan/sample.png")
        assert int(unseeded.headers["x-seed"]) >= 0

    run(scenario, models)


def test_generate_and_stream_token_by_token(models: dict[str, BundleModel]) -> None:
    gpt = models["char-gpt"]
    expected = gpt.generate_text("the ", max_new_tokens=12, temperature=0)  # type: ignore[attr-defined]

    async def scenario(client: httpx.AsyncClient, server: Server) -> None:
        body = {"text_input": "the ", "max_tokens": 12, "temperature": 0}
        answer = (await client.post("/v2/models/char-gpt/generate", json=body)).json()
        assert answer == {"model_name": "char-gpt", "model_version": "1", "text_output": expected}
        streamed = await client.post("/v2/models/char-gpt/generate_stream", json=body)
        assert streamed.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[len("data: ") :]) for line in streamed.text.split("\n\n") if line]
        assert len(events) == 12 and all(len(e["text_output"]) == 1 for e in events)
        assert "".join(e["text_output"] for e in events) == expected
        assert server.streams == 0
        metrics = (await client.get("/metrics")).text
        assert 'zoo_serve_generated_tokens_total{model="char-gpt"} 24.0' in metrics

    run(scenario, models)


# ------------------------------------------------------------------------------------------ errors and limits


def test_errors_are_one_json_sentence_with_the_right_code(models: dict[str, BundleModel]) -> None:
    async def scenario(client: httpx.AsyncClient, server: Server) -> None:
        image = {"image": ("red.png", png_bytes(), "image/png")}
        assert_error(await client.post("/models/nope/classify", files=image), 404, "'nope'")
        assert_error(await client.post("/models/dcgan/classify", files=image), 404, "image-generation")
        assert_error(await client.post("/v2/models/nope/generate", json={"text_input": "a"}), 404, "'nope'")
        assert_error(await client.get("/no/such/path"), 404, "no such endpoint")
        assert_error(await client.get("/v2/models/lenet5/infer"), 405, "GET")
        assert_error(await client.post("/models/lenet5/classify"), 400, "image")
        text_file = {"image": ("notes.txt", b"not an image at all", "text/plain")}
        assert_error(await client.post("/models/lenet5/classify", files=text_file), 415, "notes.txt")
        big = {"image": ("big.png", png_bytes((200, 200)), "image/png")}
        assert_error(await client.post("/models/lenet5/classify", files=big), 413, "200x200")
        gen = "/v2/models/char-gpt/generate"
        assert_error(await client.post(gen, json={"text_input": "the", "max_tokens": 9999}), 400, "max_tokens 9999")
        assert_error(await client.post(gen, json={"text_input": "x" * 300}), 400, "300 characters")
        assert_error(await client.post(gen, json={"text_input": "THE"}), 400, "'T'")
        assert_error(await client.post(gen, json={"text_input": "the", "top_p": 2}), 400, "top_p")
        assert_error(await client.post(gen, json={"prompt": "the"}), 400, "text_input")
        seq = "/models/gru-classifier/classify-sequence"
        assert_error(await client.post(seq, json={"tokens": list(range(8)) * 40}), 400, "320 ids")
        assert_error(await client.post(seq, json={"tokens": [1, 99]}), 400, "99")
        assert_error(await client.get("/models/dcgan/sample.png?n=500"), 400, "500 images")
        assert_error(
            await client.post("/models/seq2seq-transformer/translate", json={"tokens": [3], "max_new_tokens": 9999}), 400, "9999"
        )
        # The body limit, declared (Content-Length) and streamed (chunked).
        assert_error(await client.post("/v2/models/lenet5/infer", content=b"x" * 5000), 413, "5000 bytes")

        async def chunks() -> Any:
            for _ in range(10):
                yield b"x" * 1000

        assert_error(await client.post("/v2/models/lenet5/infer", content=chunks()), 413, "limit of 4096 bytes")

    run(scenario, models, max_image_pixels=10_000, max_new_tokens=64, max_sequence=256, max_samples=16, max_body_bytes=4096)


def test_bearer_tokens(models: dict[str, BundleModel], tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text(f"# the clients' tokens\n{TOKEN}\n\nanother-token-abcdefgh\n")
    tokens = read_token_file(token_file)
    assert tokens == (TOKEN, "another-token-abcdefgh")

    async def scenario(client: httpx.AsyncClient, server: Server) -> None:
        assert_error(await client.get("/v2/models/lenet5"), 401, "bearer token")
        assert_error(await client.get("/v2/models/lenet5", headers={"Authorization": "Bearer wrong-token-0123456789"}), 401)
        assert_error(await client.get("/v2/models/lenet5", headers={"Authorization": f"Basic {TOKEN}"}), 401)
        assert (await client.get("/v2/models/lenet5", headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 200
        assert (await client.get("/metrics", headers={"Authorization": "Bearer another-token-abcdefgh"})).status_code == 200
        assert (await client.get("/v2/health/ready")).status_code == 200  # probes need no token
        assert (await client.get("/docs")).status_code == 200

    run(scenario, models, tokens=tokens)
    token_file.write_text("short\n")
    with pytest.raises(TokenFileError, match="line 1"):
        read_token_file(token_file)


def test_docs_page_and_schema_work_offline(models: dict[str, BundleModel]) -> None:
    async def scenario(client: httpx.AsyncClient, server: Server) -> None:
        page = (await client.get("/docs")).text
        assert "openapi.json" in page and "http" not in page.replace('href="openapi.json"', "").split("<script>")[1]
        schema = (await client.get("/openapi.json")).json()
        assert "/v2/models/{name}/infer" in schema["paths"] and "/models/{name}/classify" in schema["paths"]
        assert (await client.get("/redoc")).status_code == 404

    run(scenario, models)


# ------------------------------------------------------------------------------------------ batching and back-pressure


def test_concurrent_requests_share_onnxruntime_calls_and_get_their_own_rows(models: dict[str, BundleModel]) -> None:
    lenet = models["lenet5"]
    images = np.random.default_rng(1).random((16, 1, 1, 28, 28), dtype=np.float32)
    expected = [lenet.run_graph("model", {"image": x})[0] for x in images]

    async def scenario(client: httpx.AsyncClient, server: Server) -> int:
        runs_before = lenet.session_runs
        answers = await asyncio.gather(
            *(client.post("/v2/models/lenet5/infer", json={"inputs": [v2_json_input("image", x, "FP32")]}) for x in images)
        )
        for answer, want in zip(answers, expected, strict=True):
            got = np.array(answer.json()["outputs"][0]["data"], dtype=np.float32).reshape(1, 10)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        metrics = (await client.get("/metrics")).text
        assert 'zoo_serve_batch_size_count{model="lenet5"}' in metrics
        return lenet.session_runs - runs_before

    runs = run(scenario, models, batching=BatchPolicy(max_batch=16, window_s=0.05))
    assert runs < 16 / 2, f"16 concurrent requests took {runs} onnxruntime calls"
    unbatched = run(scenario, models, batching=BatchPolicy(max_batch=1))
    assert unbatched == 16


def test_full_queue_answers_503_and_the_rest_complete(models: dict[str, BundleModel], monkeypatch: pytest.MonkeyPatch) -> None:
    lenet = models["lenet5"]
    entered, release = threading.Event(), threading.Event()
    real_run = lenet.run_graph

    def held_run(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(10)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(lenet, "run_graph", held_run)
    x = np.zeros((1, 1, 28, 28), dtype=np.float32)
    body = {"inputs": [v2_json_input("image", x, "FP32")]}

    async def scenario(client: httpx.AsyncClient, server: Server) -> None:
        running = asyncio.create_task(client.post("/v2/models/lenet5/infer", json=body))
        while not entered.is_set():  # the first request holds the graph
            await asyncio.sleep(0.01)
        queued = [asyncio.create_task(client.post("/v2/models/lenet5/infer", json=body)) for _ in range(2)]
        while server.batchers["lenet5"].depth < 2:
            await asyncio.sleep(0.01)
        refused = await client.post("/v2/models/lenet5/infer", json=body)
        assert_error(refused, 503, "queue is full")
        assert refused.headers["retry-after"] == "1"
        release.set()
        for answer in await asyncio.gather(running, *queued):
            assert answer.status_code == 200

    run(scenario, models, max_queue=2, batching=BatchPolicy(max_batch=1))


def test_request_timeout_answers_504(models: dict[str, BundleModel], monkeypatch: pytest.MonkeyPatch) -> None:
    translator = models["seq2seq-transformer"]
    release = threading.Event()
    monkeypatch.setattr(translator, "translate_ids", lambda *args: release.wait(10) and [])

    async def scenario(client: httpx.AsyncClient, server: Server) -> None:
        answer = await client.post("/models/seq2seq-transformer/translate", json={"tokens": [3, 4]})
        release.set()
        assert_error(answer, 504, "0.2 s")

    run(scenario, models, timeout_s=0.2)


def test_streams_are_limited_and_a_disconnect_frees_the_slot(models: dict[str, BundleModel]) -> None:
    """A client that leaves mid-stream stops its generation; until then a second stream gets 429."""
    gpt = models["char-gpt"]
    app = create_app(models, ServeSettings(max_streams=1))
    server: Server = app.state.zoo
    body = json.dumps({"text_input": "the ", "max_tokens": 512}).encode()

    async def scenario() -> None:
        first_token, leave = asyncio.Event(), asyncio.Event()
        request_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal request_sent
            if not request_sent:
                request_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await leave.wait()
            return {"type": "http.disconnect"}

        chunks: list[bytes] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                chunks.append(message["body"])
                first_token.set()

        path = "/v2/models/char-gpt/generate_stream"
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 50000), "server": ("zoo", 80),
        }  # fmt: skip
        runs_before = gpt.session_runs
        stream = asyncio.create_task(app(scope, receive, send))
        await first_token.wait()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://zoo") as client:
            assert_error(
                await client.post(path, content=body, headers={"content-type": "application/json"}), 429, "1 generations"
            )
            leave.set()
            await stream
            assert server.streams == 0
            assert gpt.session_runs - runs_before < 512  # generation stopped when the client left
            assert 'zoo_serve_active_streams{model="char-gpt"} 0.0' in (await client.get("/metrics")).text
            again = await client.post(path, json={"text_input": "the ", "max_tokens": 3})
            assert again.status_code == 200 and again.text.count("data: ") == 3

    try:
        asyncio.run(scenario())
    finally:
        server.close()


# ------------------------------------------------------------------------------------------ loading and the CLI


def test_a_tampered_bundle_is_reported_and_left_out(bundles: dict[str, Path], writable_bundle: Callable[[str], Path]) -> None:
    tampered = writable_bundle("gru-classifier")
    data = bytearray((tampered / "model.onnx").read_bytes())
    data[-10] ^= 0xFF
    (tampered / "model.onnx").write_bytes(bytes(data))
    report = load_models([bundles["lenet5"], tampered], device="cpu")
    assert list(report.models) == ["lenet5"]
    (problem,) = report.problems
    assert "sha256 mismatch" in problem and "left out" in problem
    assert zoo_serve([str(tampered), "--port", "0"]) == 1


def test_cli_usage_errors(tmp_path: Path, bundles: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert zoo_serve([str(tmp_path / "missing")]) == 2
    assert "no such bundle or folder" in capsys.readouterr().err
    assert zoo_serve([str(tmp_path)]) == 2
    assert "no bundles found" in capsys.readouterr().err
    assert zoo_serve([str(bundles["lenet5"]), "--token-file", str(tmp_path / "none")]) == 2
    assert "--token-file" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert zoo_serve([str(bundles["lenet5"]), "--port", str(taken.getsockname()[1])]) == 2
        assert "cannot listen there" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        zoo_serve([str(bundles["lenet5"]), "--port", "0", "--max-batch", "nope=4"])
    assert exit_info.value.code == 2
    assert "no model named 'nope'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ a real server


def start_server(paths: list[Path], *flags: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "zoo_serve", *map(str, paths), "--port", "0", "--cpu", "--threads", "1", *flags]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "serving" in line, proc.stderr.read() if proc.stderr else line
    return proc, line.rsplit("http://", 1)[1].split()[0]


def test_real_server_speaks_v2_to_tritonclient_and_drains_on_sigterm(
    bundles: dict[str, Path], models: dict[str, BundleModel]
) -> None:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    proc, address = start_server([bundles["lenet5"], bundles["seq2seq-transformer"]])
    try:
        client = triton.InferenceServerClient(address)
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("lenet5")
        assert client.get_model_metadata("lenet5")["inputs"][0]["shape"] == [-1, 1, 28, 28]
        x = np.random.default_rng(2).random((2, 1, 28, 28), dtype=np.float32)
        image = triton.InferInput("image", list(x.shape), "FP32")
        image.set_data_from_numpy(x)  # binary tensor data, both ways
        result = client.infer("lenet5", [image], outputs=[triton.InferRequestedOutput("logits")])
        expected = models["lenet5"].run_graph("model", {"image": x})[0]
        np.testing.assert_allclose(result.as_numpy("logits"), expected, rtol=1e-5)
        np.testing.assert_allclose(client.infer("lenet5", [image]).as_numpy("logits"), expected, rtol=1e-5)  # outputs unnamed
        src = triton.InferInput("src", [1, 3], "INT64")
        src.set_data_from_numpy(np.array([[3, 4, 5]], dtype=np.int64), binary_data=False)
        assert client.infer("seq2seq-transformer.encoder", [src]).as_numpy("memory").shape == (1, 3, 16)
        with pytest.raises(InferenceServerException, match="no model named"):
            client.infer("nope", [src])

        # SIGTERM while a request is in flight (its body half sent): the server stops accepting
        # connections, answers that request in full, and exits 0.
        host, port = address.rsplit(":", 1)
        boundary = "zooboundary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="red.png"\r\n'
                "Content-Type: image/png\r\n\r\n"
            ).encode()
            + png_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        # "Expect: 100-continue": the server says "100 Continue" once the app reads the body, so the SIGTERM
        # comes after the request has begun (sent at once, the signal could overtake the request on a busy machine,
        # and an idle connection is rightly closed).
        head = (
            f"POST /models/lenet5/classify?top_k=2 HTTP/1.1\r\nHost: {address}\r\nContent-Length: {len(body)}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nExpect: 100-continue\r\n\r\n"
        ).encode()
        with socket.create_connection((host, int(port))) as conn:
            conn.sendall(head)
            interim = b""
            while not interim.endswith(b"\r\n\r\n"):
                interim += conn.recv(1)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            conn.sendall(body[:40])
            proc.send_signal(signal.SIGTERM)
            while True:  # wait until shutdown has begun: new connections are refused
                try:
                    socket.create_connection((host, int(port)), timeout=1).close()
                except OSError:
                    break
            conn.sendall(body[40:])
            response = b""
            while chunk := conn.recv(65536):
                response += chunk
        status, _, rest = response.partition(b"\r\n")
        assert status == b"HTTP/1.1 200 OK", response[:300]
        assert len(json.loads(rest.split(b"\r\n\r\n", 1)[1])["predictions"]) == 2
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------------------ Triton repository


def test_triton_repository_configs_parse_against_tritons_schema(bundles: dict[str, Path], tmp_path: Path) -> None:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    repo = tmp_path / "repo"
    assert zoo_serve(["export-triton", *map(str, bundles.values()), "--out", str(repo), "--max-batch", "8"]) == 0
    written = sorted(p.name for p in repo.iterdir())
    # Every stateless graph, the text generator's full graph and the inspect graphs included; step graphs left out.
    assert written == sorted(
        [
            "lenet5",
            "lenet5.inspect",
            "dcgan",
            "char-gpt",
            "char-gpt.inspect",
            "gru-classifier",
            "gru-classifier.inspect",
            "seq2seq-transformer.decoder",
            "seq2seq-transformer.encoder",
            "seq2seq-transformer.inspect",
        ]
    )
    configs = {}
    for folder in repo.iterdir():
        config = model_config_pb2.ModelConfig()
        text_format.Parse((folder / "config.pbtxt").read_text(), config)
        assert config.name == folder.name and config.backend == "onnxruntime"
        configs[folder.name] = config
    lenet = configs["lenet5"]
    assert lenet.max_batch_size == 8 and lenet.dynamic_batching.max_queue_delay_microseconds == 2000
    assert list(lenet.input[0].dims) == [1, 28, 28] and lenet.input[0].data_type == model_config_pb2.TYPE_FP32
    assert lenet.output[0].label_filename == "labels.txt"
    manifest = json.loads((bundles["lenet5"] / "manifest.json").read_text())
    assert (repo / "lenet5" / "labels.txt").read_text().splitlines() == manifest["labels"]
    onnx = (repo / "lenet5" / "1" / "model.onnx").read_bytes()
    assert hashlib.sha256(onnx).hexdigest() == manifest["files"]["model.onnx"]["sha256"]
    decoder = configs["seq2seq-transformer.decoder"]
    assert [list(t.dims) for t in decoder.input] == [[-1], [-1, 16], [-1]]
    assert decoder.input[0].data_type == model_config_pb2.TYPE_INT64
    assert configs["gru-classifier"].output[0].label_filename == "labels.txt"
    assert list(configs["char-gpt"].output[0].dims) == [-1, 30] and not configs["char-gpt"].output[0].label_filename
    assert zoo_serve(["export-triton", str(bundles["lenet5"]), "--out", str(repo)]) == 2  # not an empty folder


def test_batching_flags_apply_to_every_model_or_one() -> None:
    from zoo_serve.cli import batch_settings, build_parser

    parser = build_parser()
    args = parser.parse_args(["models_out", "--max-batch", "8", "--max-batch", "lenet5=4", "--batch-window-ms", "dcgan=0"])
    default, overrides = batch_settings(parser, args, {"lenet5", "dcgan", "char-gpt"})
    assert default == BatchPolicy(max_batch=8, window_s=0.002)
    assert overrides == {"lenet5": BatchPolicy(4, 0.002), "dcgan": BatchPolicy(8, 0.0)}
    assert ServeSettings(batching=default, model_batching=overrides).batch_policy("char-gpt") == default


def test_listening_socket_is_tcp_so_answers_are_not_held_by_nagle() -> None:
    """asyncio sets TCP_NODELAY on accepted sockets only when the socket says it is TCP (proto 6, not 0)."""
    from zoo_serve.cli import bind

    with bind("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        with socket.create_connection(sock.getsockname()[:2]):
            accepted, _ = sock.accept()
            with accepted:
                assert accepted.proto == socket.IPPROTO_TCP
