"""zoo-serve over loopback: classifier requests/s and latency with and without dynamic batching, generation tokens/s.

For each batching mode a fresh ``zoo-serve`` process serves lenet5, resnet-cifar and char-gpt on a free
127.0.0.1 port. Classifiers: closed-loop clients (concurrency 1, 8, 32, 64) send V2 infer requests of one
image each in the binary tensor format (what tritonclient sends), each cell bounded by ``--requests``
and ``--seconds``; requests/s, p50 and p99 latency. Generation: 1 and 8 concurrent
``generate_stream`` requests of ``--tokens`` tokens each; tokens/s over all streams. The server's
RSS (VmHWM, its peak) is read from /proc at the end of each mode. Nothing leaves the loopback.

Bundles come from ``--bundles`` (a folder with lenet5, resnet-cifar and char-gpt bundles, e.g.
models_out), else are made here: untrained, at the quick preset's size (speed does not depend on the
weights), exported with zoo-export (this script needs torch for that; the server never imports it).

    python benchmarks/serve.py [--bundles models_out] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CLASSIFIERS = ("lenet5", "resnet-cifar")
GENERATOR = "char-gpt"
CONCURRENCY = (1, 8, 32, 64)
STREAMS = (1, 8)


def make_bundles(folder: Path) -> Path:
    """Untrained quick-preset bundles of the benchmarked models, exported (ONNX only) under ``folder``."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.path.insert(0, str(ROOT))
    from export_inference import quick_checkpoint  # the same quick-preset sizes as the export benchmark

    from zoo_export import export_checkpoint

    for name in (*CLASSIFIERS, GENERATOR):
        checkpoint = quick_checkpoint(name, folder)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = export_checkpoint(checkpoint, folder / name / "export", formats=("onnx",), check=False)
        if not result.passed:
            raise SystemExit(f"export of {name} failed: {result.error}")
    return folder


def start_server(bundles: Path, flags: list[str]) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "zoo_serve", str(bundles), "--host", "127.0.0.1", "--port", "0", "--cpu", *flags]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "serving" not in line:
        proc.kill()
        raise SystemExit(f"zoo-serve did not start: {line!r}")
    return proc, "http://" + line.rsplit("http://", 1)[1].split()[0]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Connection:
    """One keep-alive HTTP/1.1 connection, as little client as possible: on two shared cores a full client
    library (httpx) spends more CPU per request than the server does, and the benchmark would measure it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def send(self, request: bytes) -> int:
        """Send one whole request; read the answer (zoo-serve always sends Content-Length); return its status."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
        await self.reader.readexactly(length)
        return int(lines[0].split()[1])

    def close(self) -> None:
        self.writer.close()


def infer_request(base: str, model: str, meta: dict[str, Any], rng: np.random.Generator) -> bytes:
    spec = meta["inputs"][0]
    x = rng.random([1, *spec["shape"][1:]], dtype=np.float32)
    header = json.dumps(
        {
            "inputs": [
                {"name": spec["name"], "shape": list(x.shape), "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}
            ],
            "outputs": [{"name": meta["outputs"][0]["name"], "parameters": {"binary_data": True}}],
        }
    ).encode()
    body = header + x.tobytes()
    head = (
        f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: {base.split('//')[1]}\r\nContent-Length: {len(body)}\r\n"
        f"Inference-Header-Content-Length: {len(header)}\r\n\r\n"
    )
    return head.encode() + body


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def classify_cell(
    base: str, server_pid: int, model: str, concurrency: int, requests: int, seconds: float
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base) as client:
        meta = (await client.get(f"/v2/models/{model}")).json()
    request = infer_request(base, model, meta, np.random.default_rng(0))
    host, port = base.split("//")[1].rsplit(":", 1)
    connections = [await Connection.open(host, int(port)) for _ in range(concurrency)]
    for connection in connections:  # warm-up: sessions, connections
        await connection.send(request)
    latencies: list[float] = []
    failures = 0
    sent = 0
    stop_at = time.perf_counter() + seconds

    async def worker(connection: Connection) -> None:
        nonlocal sent, failures
        while sent < requests and time.perf_counter() < stop_at:
            sent += 1
            t = time.perf_counter()
            status = await connection.send(request)
            latencies.append(time.perf_counter() - t)
            failures += status != 200

    cpu_before = cpu_seconds(server_pid)
    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    wall = time.perf_counter() - start
    server_cpu = cpu_seconds(server_pid) - cpu_before
    for connection in connections:
        connection.close()
    ms = np.array(latencies) * 1000
    return {"latencies_ms": ms.tolist(), "failures": failures, "rps": len(latencies) / wall, "server_cpu_s": server_cpu}


def pooled(model: str, concurrency: int, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One cell over its rounds: the median req/s, latency percentiles of every request, server CPU per request."""
    ms = np.concatenate([r["latencies_ms"] for r in rounds])
    return {
        "model": model,
        "concurrency": concurrency,
        "requests": len(ms),
        "failures": sum(r["failures"] for r in rounds),
        "rps": float(np.median([r["rps"] for r in rounds])),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "server_cpu_ms_per_request": sum(r["server_cpu_s"] for r in rounds) / len(ms) * 1000,
    }


async def stream_cell(base: str, streams: int, tokens: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        body = {"text_input": "the ", "max_tokens": tokens, "temperature": 0.8, "seed": 0}

        async def one(seed: int) -> int:
            count = 0
            async with client.stream("POST", f"/v2/models/{GENERATOR}/generate_stream", json={**body, "seed": seed}) as response:
                async for line in response.aiter_lines():
                    count += line.startswith("data: ") and "text_output" in line
            return count

        await one(99)  # warm-up
        start = time.perf_counter()
        counts = await asyncio.gather(*(one(seed) for seed in range(streams)))
        wall = time.perf_counter() - start
    return {"streams": streams, "new_tokens": sum(counts), "tokens_per_s": sum(counts) / wall}


def measure(bundles: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Both servers run at once and their cells alternate, round after round: load from other jobs on a
    shared machine then falls on both modes alike."""
    modes = {
        "unbatched": ["--max-batch", "1"],
        "batched": ["--max-batch", str(args.max_batch), "--batch-window-ms", str(args.window_ms)],
    }
    results: dict[str, Any] = {"classify": [], "generate": [], "rss_mib": {}}
    servers = {}
    try:
        for mode, flags in modes.items():
            servers[mode] = start_server(bundles, [*flags, "--threads", str(args.server_threads), "--max-streams", "16"])
        for model in CLASSIFIERS:
            for concurrency in CONCURRENCY:
                print(f"{model} concurrency {concurrency} ...", file=sys.stderr, flush=True)
                rounds: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
                for _ in range(args.rounds):
                    for mode, (proc, base) in servers.items():
                        cell = classify_cell(base, proc.pid, model, concurrency, args.requests, args.seconds)
                        rounds[mode].append(asyncio.run(cell))
                results["classify"] += [{"mode": mode, **pooled(model, concurrency, rounds[mode])} for mode in modes]
        proc, base = servers["batched"]  # generation does not go through the batcher: measured once
        for streams in STREAMS:
            print(f"generate {streams} stream(s) ...", file=sys.stderr, flush=True)
            results["generate"].append(asyncio.run(stream_cell(base, streams, args.tokens)))
        results["rss_mib"] = {mode: peak_rss_mib(proc.pid) for mode, (proc, _) in servers.items()}
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=60)
    return results


def table(results: dict[str, Any]) -> str:
    cells = {(c["mode"], c["model"], c["concurrency"]): c for c in results["classify"]}
    lines = [
        "| model | clients | req/s unbatched / batched | ratio | p50 ms unbatched / batched | p99 ms | server CPU ms/req |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for model in CLASSIFIERS:
        for concurrency in CONCURRENCY:
            u, b = cells[("unbatched", model, concurrency)], cells[("batched", model, concurrency)]
            failed = u["failures"] + b["failures"]
            lines.append(
                f"| {model} | {concurrency} | {u['rps']:.0f} / {b['rps']:.0f} | {b['rps'] / u['rps']:.2f}x | "
                f"{u['p50_ms']:.1f} / {b['p50_ms']:.1f} | {u['p99_ms']:.1f} / {b['p99_ms']:.1f} | "
                f"{u['server_cpu_ms_per_request']:.2f} / {b['server_cpu_ms_per_request']:.2f}"
                + (f" ({failed} failed)" if failed else "")
                + " |"
            )
    lines += ["", "| generation (char-gpt) | tokens/s, all streams |", "|---|---:|"]
    lines += [
        f"| {g['streams']} stream(s) x {g['new_tokens'] // g['streams']} tokens | {g['tokens_per_s']:.0f} |"
        for g in results["generate"]
    ]
    rss = results["rss_mib"]
    lines += [
        "",
        f"Server peak RSS (VmHWM, 3 models loaded): {rss['unbatched']:.0f} MiB unbatched, {rss['batched']:.0f} MiB batched.",
    ]
    return "\n".join(lines)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument(
        "--bundles", type=Path, default=None, help="folder with lenet5, resnet-cifar and char-gpt bundles (default: make them)"
    )
    p.add_argument("--requests", type=int, default=400, help="requests per cell and round at most")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds per cell and round at most")
    p.add_argument("--rounds", type=int, default=3, help="rounds per cell, alternating between the two servers")
    p.add_argument("--tokens", type=int, default=200, help="tokens per generation stream")
    p.add_argument("--max-batch", type=int, default=32, help="zoo-serve --max-batch of the batched mode")
    p.add_argument("--window-ms", type=float, default=2.0, help="zoo-serve --batch-window-ms of the batched mode")
    p.add_argument("--server-threads", type=int, default=1, help="zoo-serve --threads (onnxruntime intra-op threads)")
    p.add_argument("--append", type=Path, default=None, help="append the results as a section to this markdown file")
    p.add_argument("--json", type=Path, default=None, help="also write raw results here")
    p.add_argument("--date", default=_dt.date.today().isoformat(), help="date written in the section heading")
    args = p.parse_args(argv)

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="zoo-serve-bench-") as tmp:
        bundles = args.bundles or make_bundles(Path(tmp))
        results = measure(bundles, args)
    text = table(results)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.append:
        command = shlex.join(["python", "benchmarks/serve.py", *(argv if argv is not None else sys.argv[1:])])
        bundles_note = f"bundles from {args.bundles}" if args.bundles else "untrained quick-preset bundles made by the script"
        section = (
            f"\n## zoo-serve: dynamic batching over loopback ({args.date})\n\n"
            f"- Machine: {os.cpu_count()}-core CPU ({cpu_name()}), shared with other jobs; the load generator (Python "
            "asyncio + httpx) runs on the same cores as the server, so absolute figures are low and noisy.\n"
            f"- Command: `{command}` ({bundles_note}).\n"
            f"- Load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f}.\n"
            "- Classifiers: V2 infer, one image per request, binary tensors, over keep-alive connections; closed loop "
            "(each client sends its next request when the last is answered). Both servers run at once and each cell "
            f"alternates between them for {args.rounds} rounds of at most {args.requests} requests or {args.seconds:g} s; "
            "req/s is the median round, p50/p99 over every request of the rounds, server CPU from /proc. "
            f"Unbatched: `--max-batch 1`; batched: `--max-batch {args.max_batch} --batch-window-ms {args.window_ms:g}`; "
            f"both `--threads {args.server_threads}`.\n\n" + text + "\n"
        )
        with open(args.append, "a", encoding="utf-8") as f:
            f.write(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
