"""Task kind -> runtime class: the one place that maps a bundle's task to the object ``load`` returns.

The runtime class of a kind is the ``BundleModel`` in ``zoo_runtime/tasks/<kind>.py`` (``kind_module``)
whose ``task`` is that kind; a new kind's module is found without an edit here.
"""

from __future__ import annotations

from zoo_runtime.contract import TASK_KINDS, kind_module
from zoo_runtime.tasks.base import BundleModel, Prediction
from zoo_runtime.tasks.image_classification import ImageClassifier
from zoo_runtime.tasks.image_generation import ImageGenerator
from zoo_runtime.tasks.seq2seq import Translator
from zoo_runtime.tasks.sequence_classification import SequenceClassifier
from zoo_runtime.tasks.text_generation import TextGenerator


def runtime_class(task: str) -> type[BundleModel]:
    module = kind_module("zoo_runtime.tasks", task)
    found = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, BundleModel) and c.task == task]
    if len(found) != 1:
        raise ValueError(f"{module.__name__} holds {len(found)} BundleModel classes of task {task!r}; it must hold one")
    return found[0]


TASK_CLASSES: dict[str, type[BundleModel]] = {task: runtime_class(task) for task in TASK_KINDS}

__all__ = [
    "TASK_CLASSES",
    "BundleModel",
    "ImageClassifier",
    "ImageGenerator",
    "Prediction",
    "SequenceClassifier",
    "TextGenerator",
    "Translator",
    "runtime_class",
]
