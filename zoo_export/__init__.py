"""zoo_export: checkpoint -> bundle (ONNX + TorchScript) with parity proven against onnxruntime.

``export_checkpoint`` is the Python API; ``zoo-export`` (``zoo_export.cli``) the command line.
The bundle format is docs/BUNDLE.md; its constants live in ``zoo_runtime.schema``.
"""

from zoo_export.export import ExportResult, export_checkpoint, load_for_export
from zoo_export.parity import Tolerances
from zoo_export.tasks.base import ExportInputError

__all__ = ["ExportInputError", "ExportResult", "Tolerances", "export_checkpoint", "load_for_export"]
