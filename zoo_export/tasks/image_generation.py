"""Image generators (DCGAN): latent ``z`` in, pixels in 0..1 out (the model's ``generate``)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from zoo_export.graphs import GraphSpec, ParityCase, TensorKind, TensorSpec
from zoo_export.tasks.base import BundleContext, ExportInputError, TaskExporter, generator_seed, register_exporter
from zoo_runtime import schema
from zoo_train.models.protocols import as_gan

EXPORT_BATCH = 2
PARITY_BATCHES = (1, 3, 7)


class PixelGenerator(nn.Module):
    """``z`` [N,Z] -> ``image`` [N,C,H,W] in 0..1 (the generator only; the discriminator is not exported)."""

    def __init__(self, gan: nn.Module):
        super().__init__()
        self.gan = gan

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return as_gan(self.gan).generate(z)


class ImageGenerationExporter(TaskExporter):
    task = schema.TASK_IMAGE_GENERATION

    def validate(self, ctx: BundleContext) -> None:
        super().validate(ctx)
        missing = [a for a in ("generator", "latent_dim", "generate") if not hasattr(ctx.model, a)]
        if missing:
            raise ExportInputError(f"{ctx.checkpoint}: model {ctx.name!r} lacks {missing} of the GAN protocol (docs/BUNDLE.md)")

    def _output_shape(self, ctx: BundleContext) -> tuple[int, int, int]:
        with torch.no_grad():
            out = as_gan(ctx.model).generate(torch.zeros(EXPORT_BATCH, as_gan(ctx.model).latent_dim))
        if out.dim() != 4:
            raise ExportInputError(f"{ctx.checkpoint}: generate() gives shape {list(out.shape)}, expected [N,C,H,W]")
        return int(out.shape[1]), int(out.shape[2]), int(out.shape[3])

    def graphs(self, ctx: BundleContext) -> list[GraphSpec]:
        z_dim = as_gan(ctx.model).latent_dim
        c, h, w = self._output_shape(ctx)
        gen = generator_seed(ctx.name)
        cases = [ParityCase((torch.randn(n, z_dim, generator=gen),), {"batch": n}) for n in PARITY_BATCHES]
        return [
            GraphSpec(
                role=schema.ROLE_MODEL,
                module=PixelGenerator(ctx.model).eval(),
                inputs=[TensorSpec(schema.INPUT_Z, "float32", ("batch", z_dim))],
                outputs=[TensorSpec(schema.OUTPUT_IMAGE, "float32", ("batch", c, h, w), kind=TensorKind.IMAGE)],
                example=(torch.randn(EXPORT_BATCH, z_dim, generator=gen),),
                cases=cases,
            )
        ]

    def manifest_fields(self, ctx: BundleContext) -> dict[str, Any]:
        c, h, w = self._output_shape(ctx)
        pre = dict(ctx.meta.get("preprocessing") or {})
        image = dict(pre.get("image") or {})
        image.update(channels=c, height=h, width=w)
        image.setdefault("color", "L" if c == 1 else "RGB")
        image.setdefault("output_range", [0, 1])
        pre["image"] = image
        latent = dict(pre.get("latent") or {})
        latent["dim"] = as_gan(ctx.model).latent_dim
        latent.setdefault("distribution", "normal")
        pre["latent"] = latent
        return {"labels": ctx.meta.get("labels"), "vocab": None, "preprocessing": pre, "generation": None, "sampling": None}


register_exporter(ImageGenerationExporter())
