"""Importing this module registers every task kind with the trainer."""

from zoo_train.tasks import (  # noqa: F401
    image_classification,
    image_generation,
    seq2seq,
    sequence_classification,
    text_generation,
)
