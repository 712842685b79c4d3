"""Bearer tokens and the body size limit, as one ASGI middleware in front of everything else.

Tokens are compared with ``hmac.compare_digest`` against every configured token (no early exit), so
the time taken says nothing about how much of a token was right. Bodies are limited twice: a declared
Content-Length past the limit is refused before any byte is read; a chunked body is counted as it
arrives and refused as soon as it passes the limit.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MIN_TOKEN_LENGTH = 16
# Answered without a token: liveness and readiness probes, and the API's own description.
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/docs", "/openapi.json"})


class TokenFileError(Exception):
    """The token file cannot be used; the message names the file and the problem."""


def read_token_file(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """One token per line; blank lines and lines starting with # are skipped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"--token-file {path}: cannot read it ({exc.__class__.__name__})") from None
    tokens = []
    for number, line in enumerate(lines, start=1):
        token = line.strip()
        if not token or token.startswith("#"):
            continue
        if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
            raise TokenFileError(
                f"--token-file {path}: line {number} is not a token (one word of at least {MIN_TOKEN_LENGTH} characters)"
            )
        tokens.append(token)
    if not tokens:
        raise TokenFileError(f"--token-file {path}: holds no token")
    return tuple(tokens)


async def send_error(send: Send, status: int, message: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"error": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Refuses requests without a valid bearer token (401) and bodies past ``max_body_bytes`` (413)."""

    def __init__(self, app: ASGIApp, tokens: Iterable[str], max_body_bytes: int):
        self.app = app
        self.tokens = [t.encode() for t in tokens]
        self.max_body_bytes = max_body_bytes

    def authorized(self, scope: Scope) -> bool:
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        matched = False
        for known in self.tokens:
            matched |= hmac.compare_digest(known, token.strip())
        return scheme.lower() == b"bearer" and matched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.tokens and scope["path"] not in OPEN_PATHS and not self.authorized(scope):
            await send_error(
                send, 401, "a valid bearer token is required (Authorization: Bearer <token>)", [(b"www-authenticate", b"Bearer")]
            )
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await send_error(send, 413, f"the body is {int(declared)} bytes; this server takes at most {self.max_body_bytes}")
            return
        await self.app(scope, *self._counted(receive, send))

    def _counted(self, receive: Receive, send: Send) -> tuple[Receive, Send]:
        """``receive`` that answers 413 and reports a disconnect once the body passes the limit, and a ``send``
        that then drops whatever the app still answers."""
        state: dict[str, Any] = {"received": 0, "refused": False, "started": False}

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_body_bytes:
                    if not state["started"]:
                        state["refused"] = True
                        await send_error(send, 413, f"the body is over this server's limit of {self.max_body_bytes} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if state["refused"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        return counted_receive, guarded_send
