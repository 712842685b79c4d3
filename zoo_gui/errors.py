"""One line for the user from an exception. Pure: no Qt."""

from __future__ import annotations

from zoo_runtime import BundleError


def describe_error(exc: BaseException) -> str:
    """``BundleError`` and other ``ValueError``/``OSError``/``LookupError`` messages already name
    the file and the problem; anything else also gets its type."""
    text = str(exc).strip()
    if isinstance(exc, (BundleError, ValueError, OSError, LookupError)):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
