"""Task kind -> runtime class: the one place that maps a bundle's task to the object ``load`` returns."""

from __future__ import annotations

from zoo_runtime import schema
from zoo_runtime.tasks.base import BundleModel, Prediction
from zoo_runtime.tasks.image_classification import ImageClassifier
from zoo_runtime.tasks.image_generation import ImageGenerator
from zoo_runtime.tasks.seq2seq import Translator
from zoo_runtime.tasks.sequence_classification import SequenceClassifier
from zoo_runtime.tasks.text_generation import TextGenerator

TASK_CLASSES: dict[str, type[BundleModel]] = {
    schema.TASK_IMAGE_CLASSIFICATION: ImageClassifier,
    schema.TASK_TEXT_GENERATION: TextGenerator,
    schema.TASK_IMAGE_GENERATION: ImageGenerator,
    schema.TASK_SEQUENCE_CLASSIFICATION: SequenceClassifier,
    schema.TASK_SEQ2SEQ: Translator,
}

__all__ = [
    "TASK_CLASSES",
    "BundleModel",
    "ImageClassifier",
    "ImageGenerator",
    "Prediction",
    "SequenceClassifier",
    "TextGenerator",
    "Translator",
]
