"""``python -m zoo_runtime`` is ``zoo-run``."""

import sys

from zoo_runtime.cli import main

sys.exit(main())
