"""The exception types the runtime raises for anything a user caused."""

from __future__ import annotations


class BundleError(Exception):
    """A bundle or an input that cannot be used; ``str()`` names the file (or input) and the problem."""


class InputError(BundleError, ValueError):
    """What the caller passed cannot be used (a path that is no bundle, a seed or count out of range, an
    image too large): a usage error (``zoo-run`` exits 2), where a plain ``BundleError`` from ``load``
    means the bundle itself failed verification (exit 1).

    Also a ``ValueError``, so callers that caught the ValueError numpy or Pillow used to raise still do.
    """
