"""The one exception a request handler raises for anything the client caused (or must wait for)."""

from __future__ import annotations


class ServeError(Exception):
    """An HTTP error answered as ``{"error": message}``: ``status`` is the code, ``message`` one sentence."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
