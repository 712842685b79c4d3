"""``python -m zoo_serve`` = ``zoo-serve``."""

from __future__ import annotations

import sys

from zoo_serve.cli import main

sys.exit(main())
