"""Task exporters: each module registers the exporter of one task kind."""

from zoo_export.tasks import (  # noqa: F401
    image_classification,
    image_generation,
    seq2seq,
    sequence_classification,
    text_generation,
)
