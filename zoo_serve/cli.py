"""``zoo-serve``: serve bundles over HTTP, or write a Triton model repository (``zoo-serve export-triton``).

Exit codes: 0 served until SIGTERM/Ctrl-C (in-flight requests drained) or repository written; 1 no
bundle passed verification (or a Triton config failed its schema); 2 usage or input error.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import socket
import sys
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import TypeVar

import uvicorn

from zoo_runtime.cli import HelpFormatter, add_trusted_key_option, checked_number, missing_trusted_keys, positive_int
from zoo_runtime.tasks import BundleModel
from zoo_serve.settings import BatchPolicy, ServeSettings

T = TypeVar("T")

EXPORT_COMMAND = "export-triton"
positive_number = checked_number(float, lambda value: 0 < value < math.inf, "a positive finite number")
non_negative_number = checked_number(float, lambda value: 0 <= value < math.inf, "0 or a positive finite number")
port_number = checked_number(int, lambda value: 0 <= value <= 65535, "a port number 0..65535 (0: any free port)")


def per_model(convert: Callable[[str], T]) -> Callable[[str], tuple[str | None, T]]:
    """An argparse type for ``VALUE`` (every model) or ``NAME=VALUE`` (one model): (name or None, value)."""

    def parse(text: str) -> tuple[str | None, T]:
        name, sep, value = text.rpartition("=")
        return (name if sep else None), convert(value)

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zoo-serve",
        description="Serve Model Zoo bundles over HTTP (no torch): the Open Inference Protocol (KServe V2, as Triton "
        "speaks it) under /v2, task endpoints under /models/NAME, Prometheus metrics at /metrics, docs at /docs. "
        f"`zoo-serve {EXPORT_COMMAND} --help`: write a Triton model repository instead.",
        epilog="Exit codes: 0 stopped by SIGTERM or Ctrl-C after finishing in-flight requests; 1 no bundle passed "
        "verification; 2 bad usage or input.",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="a bundle, or a folder searched for bundles (e.g. models_out)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface; use --token-file then)")
    p.add_argument("--port", type=port_number, default=8000, help="port to listen on (0: any free port, printed at start)")
    p.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="require 'Authorization: Bearer TOKEN' with a token from this file (one per line)",
    )
    add_trusted_key_option(p, "serve only bundles signed", "; others are reported and left out")
    p.add_argument("--cpu", action="store_true", help="run on CPU even when CUDA is available")
    p.add_argument(
        "--threads", type=positive_int, default=None, help="onnxruntime intra-op threads per graph (default: onnxruntime's)"
    )
    batching = p.add_argument_group("dynamic batching (classifiers, GANs, sequence classifiers)")
    batching.add_argument(
        "--max-batch",
        action="append",
        type=per_model(positive_int),
        default=None,
        metavar="[NAME=]N",
        help="rows per onnxruntime call (1: no batching); NAME=N for one model (repeatable) (default: 32)",
    )
    batching.add_argument(
        "--batch-window-ms",
        action="append",
        type=per_model(non_negative_number),
        default=None,
        metavar="[NAME=]MS",
        help="how long a busy model waits for more requests before running a batch that is not full (an idle "
        "model runs a lone request at once); NAME=MS for one model (repeatable) (default: 2)",
    )
    batching.add_argument("--max-queue", type=positive_int, default=256, help="waiting requests per batched graph (503 past it)")
    limits = p.add_argument_group("limits")
    limits.add_argument("--max-streams", type=positive_int, default=8, help="generations running at once (429 past it)")
    limits.add_argument(
        "--timeout", type=positive_number, default=30.0, help="seconds one request may compute (504 past it; streams excepted)"
    )
    limits.add_argument("--max-body-mb", type=positive_number, default=16.0, help="request body size in MiB (413 past it)")
    limits.add_argument(
        "--max-image-pixels", type=positive_int, default=16_000_000, help="pixels of an uploaded image (413 past it)"
    )
    limits.add_argument(
        "--max-new-tokens", type=positive_int, default=512, help="tokens one generation or translation may ask for"
    )
    limits.add_argument("--max-sequence", type=positive_int, default=4096, help="prompt characters, token ids, V2 tensor axes")
    limits.add_argument(
        "--drain-timeout", type=positive_number, default=30.0, help="seconds SIGTERM waits for in-flight requests"
    )
    p.add_argument("--access-log", action="store_true", help="log every request (off: faster, quieter)")
    return p


def batch_settings(
    parser: argparse.ArgumentParser, args: argparse.Namespace, names: set[str]
) -> tuple[BatchPolicy, dict[str, BatchPolicy]]:
    """The default batch policy and the per-model ones from --max-batch / --batch-window-ms."""
    default = BatchPolicy()
    sizes: dict[str | None, int] = dict(args.max_batch or [])
    windows: dict[str | None, float] = dict(args.batch_window_ms or [])
    for flag, values in (("--max-batch", sizes), ("--batch-window-ms", windows)):
        for name in values:
            if name is not None and name not in names:
                parser.error(f"{flag} {name}=...: no model named {name!r} is served (served: {', '.join(sorted(names))})")
    default = BatchPolicy(sizes.get(None, default.max_batch), windows.get(None, default.window_s * 1000) / 1000)
    overrides = {
        name: BatchPolicy(sizes.get(name, default.max_batch), windows.get(name, default.window_s * 1000) / 1000)
        for name in {*sizes, *windows} - {None}
        if name is not None
    }
    return default, overrides


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == EXPORT_COMMAND:
        from zoo_serve.triton import main as export_main

        return export_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    for path in args.paths:
        if not path.exists():
            print(f"zoo-serve: error: {path}: no such bundle or folder", file=sys.stderr)
            return 2
    for problem in missing_trusted_keys(args.trusted_key):
        print(f"zoo-serve: error: {problem}", file=sys.stderr)
        return 2
    tokens: tuple[str, ...] = ()
    if args.token_file is not None:
        from zoo_serve.security import TokenFileError, read_token_file

        try:
            tokens = read_token_file(args.token_file)
        except TokenFileError as exc:
            print(f"zoo-serve: error: {exc}", file=sys.stderr)
            return 2
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(
            f"zoo-serve: error: --host {args.host} --port {args.port}: cannot listen there ({exc.strerror or exc})",
            file=sys.stderr,
        )
        return 2

    from zoo_serve.models import load_models

    report = load_models(args.paths, device="cpu" if args.cpu else "auto", threads=args.threads, trusted_keys=args.trusted_key)
    for problem in report.problems:
        print(f"zoo-serve: error: {problem}", file=sys.stderr)
    if not report.models:
        sock.close()
        found = "no bundle passed verification" if report.problems else "no bundles found"
        print(f"zoo-serve: error: {found} under {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 1 if report.problems else 2
    default, overrides = batch_settings(parser, args, set(report.models))
    settings = ServeSettings(
        max_body_bytes=int(args.max_body_mb * (1 << 20)),
        max_image_pixels=args.max_image_pixels,
        max_new_tokens=args.max_new_tokens,
        max_sequence=args.max_sequence,
        max_queue=args.max_queue,
        max_streams=args.max_streams,
        timeout_s=args.timeout,
        batching=default,
        model_batching=overrides,
        tokens=tokens,
    )
    return serve(report.models, settings, sock, args)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the (slow) bundle loading so that a taken port fails at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and without it
    # Nagle's algorithm holds a response's body behind its headers for a delayed ACK (40 ms a request).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # connections wait in the backlog until the server starts, instead of being refused
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve(models: dict[str, BundleModel], settings: ServeSettings, sock: socket.socket, args: argparse.Namespace) -> int:
    from zoo_serve.app import create_app

    config = uvicorn.Config(
        create_app(models, settings),
        log_level="info",
        access_log=args.access_log,
        timeout_graceful_shutdown=math.ceil(args.drain_timeout),
        lifespan="on",
    )
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    auth = " (bearer tokens required)" if settings.tokens else ""
    print(f"zoo-serve: serving {', '.join(sorted(models))} on http://{shown}:{port}{auth}", flush=True)
    DrainingServer(config).run(sockets=[sock])
    return 0


class DrainingServer(uvicorn.Server):
    """uvicorn's server, except that SIGTERM and Ctrl-C end with exit 0 once in-flight requests are answered.

    uvicorn drains in-flight requests on SIGTERM, then raises the signal again so that the process dies
    of it, which a service manager reads as a crash; here the drain is the whole of the shutdown.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
