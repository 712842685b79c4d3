"""zoo_gui: the PySide6 desktop app over exported bundles (no torch; only zoo_runtime).

Start it with ``zoo-gui [DIR_OR_BUNDLE...]`` or ``python -m zoo_gui``.
"""

from __future__ import annotations

from importlib import metadata

APP_NAME = "Model Zoo"
ORG_NAME = "Model Zoo"
ORG_DOMAIN = "model-zoo.local"

try:
    __version__ = metadata.version("model-zoo")
except metadata.PackageNotFoundError:  # running from a plain checkout
    __version__ = "0.0.0+local"
