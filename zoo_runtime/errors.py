"""The one exception type the runtime raises for anything a user caused."""

from __future__ import annotations


class BundleError(Exception):
    """A bundle or an input that cannot be used; ``str()`` names the file (or input) and the problem."""
