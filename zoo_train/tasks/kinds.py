"""Importing this module registers every task kind with the trainer."""

from zoo_train.tasks import image_classification  # noqa: F401
from zoo_train.tasks import image_generation, seq2seq, sequence_classification, text_generation  # noqa: F401,E402
