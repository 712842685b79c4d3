"""Image classifiers: raw pixels 0..1 in, normalisation inside the graph, logits out."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn as nn

from zoo_export.graphs import GraphSpec, ParityCase, TensorKind, TensorSpec
from zoo_export.tasks.base import BundleContext, ExportInputError, TaskExporter, generator_seed, register_exporter
from zoo_runtime import schema
from zoo_runtime.contract import ClassifierImage
from zoo_train.models.protocols import InspectableModel, as_inspectable

EXPORT_BATCH = 2
PARITY_BATCHES = (1, 3, 7)


class NormalisedClassifier(nn.Module):
    """``image`` [N,C,H,W] in 0..1 -> ``logits``: (x - mean) / std, then the trained model."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        mean, std = cast(torch.Tensor, self.mean), cast(torch.Tensor, self.std)  # registered buffers
        return self.model((image - mean) / std)


class InspectedClassifier(nn.Module):
    """``image`` [N,C,H,W] in 0..1 -> each named stage's activation (the ``inspect`` graph), normalised as the model graph."""

    def __init__(self, normalised: NormalisedClassifier):
        super().__init__()
        self.normalised = normalised

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mean, std = cast(torch.Tensor, self.normalised.mean), cast(torch.Tensor, self.normalised.std)
        stages = cast(InspectableModel, self.normalised.model)
        return tuple(activation for _name, activation in stages.inspect_stages((image - mean) / std))


def image_block(ctx: BundleContext) -> ClassifierImage:
    """The pixels the graph takes (checked by ``validate``, through the task contract)."""
    block: ClassifierImage = ctx.meta["preprocessing"]["image"]
    return block


class ImageClassificationExporter(TaskExporter):
    task = schema.TASK_IMAGE_CLASSIFICATION
    supports_int8 = True

    def graphs(self, ctx: BundleContext) -> list[GraphSpec]:
        block = image_block(ctx)
        c, h, w = int(block["channels"]), int(block["height"]), int(block["width"])
        k = len(ctx.meta["labels"])
        wrapper = NormalisedClassifier(ctx.model, block["mean"], block["std"]).eval()
        gen = generator_seed(ctx.name)
        example = (torch.rand(EXPORT_BATCH, c, h, w, generator=gen),)
        with torch.no_grad():
            out = wrapper(*example)
        if tuple(out.shape) != (EXPORT_BATCH, k):
            raise ExportInputError(
                f"{ctx.checkpoint}: the model gives logits of shape {list(out.shape)} for {EXPORT_BATCH} images; "
                f"{k} labels expect [{EXPORT_BATCH}, {k}]"
            )
        cases = [ParityCase((torch.rand(n, c, h, w, generator=gen),), {"batch": n}) for n in PARITY_BATCHES]
        image_input = TensorSpec(schema.INPUT_IMAGE, "float32", ("batch", c, h, w))
        specs = [
            GraphSpec(
                role=schema.ROLE_MODEL,
                module=wrapper,
                inputs=[image_input],
                outputs=[TensorSpec(schema.OUTPUT_LOGITS, "float32", ("batch", k), kind=TensorKind.LOGITS)],
                example=example,
                cases=cases,
            )
        ]
        stages = as_inspectable(ctx.model)
        if stages is not None:
            specs.append(inspect_spec(ctx, wrapper, stages, image_input, example, cases))
        return specs

    def manifest_fields(self, ctx: BundleContext) -> dict[str, Any]:
        return {
            "labels": list(ctx.meta["labels"]),
            "vocab": None,
            "preprocessing": {"image": dict(image_block(ctx))},
            "generation": None,
        }

    def calibration_and_test(
        self, ctx: BundleContext, data_dir: Path | None, calibration: int, test: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """Calibration images from the training split, test images and labels: raw pixels 0..1."""
        from zoo_train.registry import get_entry
        from zoo_train.tasks.base import DataError, dataset_size, get_task

        entry = get_entry(ctx.name)
        dataset = ctx.meta.get("dataset") or entry.default_dataset
        preset = ctx.payload.get("preset") or "quick"
        # A folder of the user's images is read again with the size and colour it was trained with.
        recipe = entry.recipe(preset).replace(data_options=ctx.meta.get("folder_options"))
        try:
            data = get_task(self.task).load_data(entry, recipe, dataset, data_dir, seed=0)
        except DataError as exc:
            raise ExportInputError(f"{ctx.checkpoint}: calibration data for int8: {exc}") from None
        held_out = data.test if data.test is not None else data.val  # a folder without test/ has validation images only
        size = dataset_size(data.train)
        pick = torch.linspace(0, size - 1, min(calibration, size)).long().tolist()
        calib = torch.stack([data.train[i][0] for i in pick]).float().numpy() / 255.0
        tests = [held_out[i] for i in range(min(test, dataset_size(held_out)))]
        test_x = torch.stack([image for image, _ in tests]).float().numpy() / 255.0
        test_y = torch.stack([torch.as_tensor(label) for _, label in tests]).numpy()
        return calib.astype(np.float32), test_x.astype(np.float32), test_y, dataset


def inspect_spec(
    ctx: BundleContext,
    wrapper: NormalisedClassifier,
    stages: InspectableModel,
    image_input: TensorSpec,
    example: tuple[torch.Tensor, ...],
    cases: list[ParityCase],
) -> GraphSpec:
    """The optional ``inspect`` graph: one output per named stage, with the stage's name and its shape at any batch."""
    module = InspectedClassifier(wrapper).eval()
    with torch.no_grad():
        named = stages.inspect_stages(example[0])
    names = [name for name, _activation in named]
    if len(set(names)) != len(names) or schema.INPUT_IMAGE in names:
        raise ExportInputError(f"{ctx.checkpoint}: the model's inspect_stages names {names}: each name once, none 'image'")
    outputs = [
        TensorSpec(name, "float32", ("batch", *(int(d) for d in activation.shape[1:])), kind=TensorKind.STATE)
        for name, activation in named
    ]
    return GraphSpec(schema.ROLE_INSPECT, module, [image_input], outputs, example, cases)


register_exporter(ImageClassificationExporter())
