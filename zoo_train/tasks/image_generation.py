"""Image generation: DCGAN training with two optimisers, sample grids, Fréchet distances.

Per epoch (the checkpoint-selection metric): ``val_fd_pixels``, the Fréchet distance between
held-out real images and as many generated ones, in the space of 4x4-average-pooled pixels
(49 numbers for a 28x28 image). It needs nothing outside the run, moves with sample quality
(wrong shapes, wrong contrast and mode collapse all shift the mean or covariance), and,
unlike the discriminator's loss, it does not depend on how strong the discriminator
happens to be. The grid of a fixed batch of noise is kept every epoch and written after
training as ``samples/epoch_NNN.png``.

After training (the quality figure): FID in the feature space (penultimate layer) of a trained
zoo classifier of the same images, between the real test images and samples of the trained
generator, of an untrained generator (same architecture, fresh initialisation), and of real
training images (the floor). The classifier is an input of the run, ``zoo-train --fid-classifier``
(``TrainConfig.data_options["fid_classifier"]``): a checkpoint file, a run folder, or a registry
name, meaning that model's run beside this one (``<out>/<name>/checkpoints/best.pt``); by default
``simple-cnn``'s. Without that checkpoint the figure is reported as missing, never estimated otherwise.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from zoo_runtime import schema
from zoo_runtime.contract import ImageGenerationMeta
from zoo_runtime.rundir import BEST_CHECKPOINT, CHECKPOINT_DIR, SUMMARY_FILE, RunDir
from zoo_train.checkpoint import CheckpointError, build_from_checkpoint, load_checkpoint
from zoo_train.data.images import load_image_arrays
from zoo_train.models.protocols import as_gan
from zoo_train.registry import ModelEntry, Recipe, list_models
from zoo_train.tasks.base import BatchLoader, Task, TaskData, average_gradients, register_task

FID_CLASSIFIER = "simple-cnn"  # the default --fid-classifier: a registry name, so the run beside this one
GRID_SIZE = 64  # an 8 x 8 grid
POOL = 4


class HeldOutImages(TensorDataset):
    """Real held-out images, plus the fixed noise whose samples are saved after every epoch."""

    def __init__(self, images: torch.Tensor, noise_seed: int):
        super().__init__(images)
        self.noise_seed = noise_seed

    def fixed_noise(self, latent_dim: int) -> torch.Tensor:
        return torch.randn(GRID_SIZE, latent_dim, generator=torch.Generator().manual_seed(self.noise_seed))


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2) for features [N, D], [M, D], in float64."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], a.shape[1]), torch.cov(b.T).reshape(b.shape[1], b.shape[1])
    vals, vecs = torch.linalg.eigh(cov_a)
    root_a = vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    return float((mu_a - mu_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross)


def pixel_features(images: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(images.float(), POOL).flatten(1)


@torch.no_grad()
def sample_images(model: nn.Module, count: int, seed: int, device: torch.device, batch: int = 500) -> torch.Tensor:
    """``count`` images in [0, 1] from noise drawn with ``seed`` (the same noise for any model)."""
    generator = torch.Generator().manual_seed(seed)
    gan = as_gan(model)
    z = torch.randn(count, gan.latent_dim, generator=generator)
    return torch.cat([gan.generate(z[i : i + batch].to(device)).float().cpu() for i in range(0, count, batch)])


@torch.no_grad()
def save_grid(model: nn.Module, data: TaskData, path: Path, device: torch.device) -> None:
    """The samples of the fixed noise as an 8 x 8 PNG grid (the same noise every epoch)."""
    from torchvision.utils import save_image

    held_out: HeldOutImages = data.val  # type: ignore[assignment]
    gan = as_gan(model)
    grid = gan.generate(held_out.fixed_noise(gan.latent_dim).to(device)).float().cpu()
    save_image(grid, path, nrow=int(math.sqrt(GRID_SIZE)), padding=1)


def to_unit(batch: Sequence[torch.Tensor], train: bool) -> list[torch.Tensor]:
    """uint8 images -> float in [0, 1] (the batch transform, so it runs on the training device)."""
    return [batch[0].float() / 255.0]


class ImageGeneration(Task):
    name = schema.TASK_IMAGE_GENERATION
    primary_metric = "val_fd_pixels"
    mode = "min"
    cpu_bf16_pays = True

    def nominal_model_config(self, dataset: str) -> dict[str, Any]:
        shapes = {"fashion-mnist": (1, 28), "mnist": (1, 28), "cifar10": (3, 32), "cifar100": (3, 32)}
        return {"channels": shapes[dataset][0], "image_size": shapes[dataset][1]} if dataset in shapes else {}

    def load_data(self, entry: ModelEntry, recipe: Recipe, data: str | None, data_dir: Path | None, seed: int) -> TaskData:
        name = data or entry.default_dataset
        arrays = load_image_arrays(name, data_dir)
        if arrays.height != arrays.width:
            raise ValueError(f"{name}: DCGAN takes square images, got {arrays.height}x{arrays.width}")
        train = torch.from_numpy(arrays.train_images[: recipe.limit_train]).permute(0, 3, 1, 2).contiguous()
        test = torch.from_numpy(arrays.test_images).permute(0, 3, 1, 2).contiguous()
        meta: ImageGenerationMeta = {
            "dataset": name,
            "labels": None,
            "preprocessing": {
                "image": {
                    "channels": arrays.channels,
                    "height": arrays.height,
                    "width": arrays.width,
                    "color": "L" if arrays.channels == 1 else "RGB",
                    "output_range": [0, 1],
                },
                # The latent size is the model's (``latent_dim``), which overrides may change after this.
                "latent": {"distribution": "normal"},
            },
        }
        return TaskData(
            train=TensorDataset(train),
            val=HeldOutImages(test[: recipe.limit_eval], seed),
            test=TensorDataset(test),
            model_config={"channels": arrays.channels, "image_size": arrays.height},
            meta=meta,
            description=f"{name} ({arrays.source}): train {len(train)} images / held out {len(test)} (official test split)",
            batch_transform=to_unit,
            extras={"train_images": train},
        )

    def make_optimizers(self, model: nn.Module, recipe: Recipe, device: torch.device) -> list[torch.optim.Optimizer]:
        # The DCGAN paper's Adam (unless the recipe says otherwise): beta1 0.5 keeps the adversarial game from oscillating.
        betas = recipe.betas or (0.5, 0.999)
        return [
            torch.optim.Adam(part.parameters(), lr=recipe.lr, betas=betas, fused=device.type == "cuda")
            for part in (as_gan(model).generator, as_gan(model).discriminator)
        ]

    def fit_batch(
        self,
        model: nn.Module,
        batch: Any,
        optimizers: Sequence[torch.optim.Optimizer],
        recipe: Recipe,
        autocast: Callable[[], Any],
    ) -> dict[str, torch.Tensor]:
        net = as_gan(model)
        opt_g, opt_d = optimizers
        real = batch[0] * 2.0 - 1.0
        z = torch.randn(real.shape[0], net.latent_dim, device=real.device)
        ones = torch.ones(real.shape[0], device=real.device)
        with autocast():
            fake = net.generator(z)
            d_real = net.discriminator(real).float()
            d_fake = net.discriminator(fake.detach()).float()
            d_loss = F.binary_cross_entropy_with_logits(d_real, ones) + F.binary_cross_entropy_with_logits(d_fake, ones * 0)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        average_gradients(net.discriminator)
        opt_d.step()
        with autocast():
            # The non-saturating generator loss: make D call the fakes real.
            g_loss = F.binary_cross_entropy_with_logits(net.discriminator(fake).float(), ones)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        average_gradients(net.generator)
        opt_g.step()
        return {"loss": (g_loss + d_loss).detach(), "g_loss": g_loss.detach(), "d_loss": d_loss.detach()}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: BatchLoader, device: torch.device, recipe: Recipe) -> dict[str, float]:
        model.eval()
        real = torch.cat([batch[0].float().cpu() for batch in loader])
        fake = sample_images(model, len(real), seed=0, device=device)
        discriminator = as_gan(model).discriminator
        d_real = discriminator(real.to(device) * 2 - 1).float()
        d_fake = discriminator(fake.to(device) * 2 - 1).float()
        return {
            "val_fd_pixels": frechet_distance(pixel_features(real), pixel_features(fake)),
            "val_d_loss": float(
                F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
            ),
            "val_d_real_score": float(torch.sigmoid(d_real).mean()),
            "val_d_fake_score": float(torch.sigmoid(d_fake).mean()),
        }

    def epoch_end(self, model: nn.Module, data: TaskData, out_dir: Path, epoch: int, device: torch.device) -> None:
        # Written at once, not kept for the end, so that a resumed run keeps its earlier epochs' grids.
        (out_dir / "samples").mkdir(exist_ok=True)
        save_grid(model, data, out_dir / "samples" / f"epoch_{epoch:03d}.png", device)

    @torch.no_grad()
    def final_report(
        self, model: nn.Module, data: TaskData, out_dir: Path, device: torch.device, recipe: Recipe
    ) -> dict[str, Any]:
        model.eval()
        save_grid(model, data, out_dir / "samples.png", device)

        count = min(int(recipe.data_options.get("fid_samples", 2000)), len(data.test))  # type: ignore[arg-type]
        real_test = data.test.tensors[0][:count].float() / 255.0  # type: ignore[union-attr]
        real_train = data.extras["train_images"][:count].float() / 255.0
        untrained = type(model)(model.config).to(device).eval()
        fakes = {
            "trained": sample_images(model, count, seed=1, device=device),
            "untrained": sample_images(untrained, count, seed=1, device=device),
        }
        report: dict[str, Any] = {
            "fd_pixels": frechet_distance(pixel_features(real_test), pixel_features(fakes["trained"])),
            "fd_pixels_untrained": frechet_distance(pixel_features(real_test), pixel_features(fakes["untrained"])),
            "fid_samples": count,
            "samples": "samples.png",
            "metric": "fid",
            "baseline_metric": "fid_untrained",
            "split": "official test split",
        }
        classifier_path = fid_classifier_checkpoint(fid_classifier_spec(recipe.data_options), out_dir.parent)
        features, problem = classifier_features(classifier_path, data.meta["preprocessing"]["image"], device)
        if features is None:
            print(f"{out_dir.name}: FID not measured: {problem}", file=sys.stderr)
            return {**report, "fid": None, "fid_untrained": None, "fid_status": f"missing: {problem}"}
        reference, _ = features(real_test)
        trained, trained_logits = features(fakes["trained"])
        class_counts = torch.bincount(trained_logits.argmax(-1), minlength=trained_logits.shape[1]).tolist()
        return {
            **report,
            "fid": frechet_distance(reference, trained),
            "fid_untrained": frechet_distance(reference, features(fakes["untrained"])[0]),
            "fid_real_train": frechet_distance(reference, features(real_train)[0]),
            "fid_status": "measured",
            "fid_features": classifier_provenance(classifier_path),
            # Mode collapse shows as samples the classifier puts in few classes.
            "sample_class_counts": class_counts,
            "sample_classes_covered": sum(1 for c in class_counts if c > 0),
        }

    def runs_read(self, data_options: Mapping[str, Any]) -> tuple[str, ...]:
        spec = fid_classifier_spec(data_options)
        return (spec,) if spec in list_models() else ()

    def reference_call(
        self, model: nn.Module, manifest: Mapping[str, Any], request: Mapping[str, Any]
    ) -> Callable[[], dict[str, Any]]:
        gan = as_gan(model)
        z = torch.from_numpy(request[schema.INPUT_Z])
        return lambda: {"images": (gan.generate(z).clamp(0, 1) * 255).round().to(torch.uint8)}


def fid_classifier_spec(data_options: Mapping[str, Any]) -> str:
    """What ``--fid-classifier`` named (stored in the recipe's data_options), or the default classifier's name."""
    return str(data_options.get("fid_classifier", FID_CLASSIFIER))


def fid_classifier_checkpoint(spec: str, runs_root: Path) -> Path:
    """The checkpoint named by ``--fid-classifier``: a registry name (its run under ``runs_root``), a run folder or a file."""
    if spec in list_models():
        return RunDir(runs_root / spec).best_checkpoint
    path = Path(spec)
    return RunDir(path).best_checkpoint if path.is_dir() else path


def fid_classifier_problem(spec: str) -> str | None:
    """Why ``--fid-classifier spec`` names no classifier, or None (a registry name's run is looked for after training)."""
    if spec in list_models() or fid_classifier_checkpoint(spec, Path()).is_file():
        return None
    return f"{spec}: not a registry name, a checkpoint file, or a run folder holding {CHECKPOINT_DIR}/{BEST_CHECKPOINT}"


def classifier_provenance(path: Path) -> str:
    """Which classifier's features the FID is in, and how good it was: FIDs in different feature spaces do not compare."""
    run = RunDir.of_checkpoint(path)
    summary = run.read_summary()
    if summary is None:
        return f"penultimate layer of {run.name} ({path.name}; its run has no readable {SUMMARY_FILE})"
    metric = summary.get("metric", "test_accuracy")
    score = summary.get(metric)
    figure = f"{metric} {score:.4f}" if isinstance(score, float) else f"{metric} not recorded"
    epochs = summary.get("epochs_run")
    trained = f"{summary.get('preset')} preset, {epochs} epoch{'' if epochs == 1 else 's'}"
    return f"penultimate layer of {run.name} ({trained}, {figure})"


def classifier_features(
    path: Path, image: dict[str, Any], device: torch.device
) -> tuple[Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None, str]:
    """``f(images in [0, 1]) -> (features [N, D], logits [N, K])`` of a trained zoo classifier, or (None, why not)."""
    if not path.is_file():
        return None, f"no trained classifier at {path} (train {FID_CLASSIFIER} first, or name one with --fid-classifier)"
    try:
        payload = load_checkpoint(path)
        classifier = build_from_checkpoint(payload, path).to(device)
    except CheckpointError as exc:
        return None, str(exc)
    prep = payload["meta"].get("preprocessing", {}).get("image", {})
    shape = (prep.get("channels"), prep.get("height"), prep.get("width"))
    if shape != (image["channels"], image["height"], image["width"]) or not hasattr(classifier, "features"):
        return (
            None,
            f"{path}: classifier takes {shape} images or has no features(); "
            f"the GAN makes {(image['channels'], image['height'], image['width'])}",
        )
    penultimate = cast(Callable[[torch.Tensor], torch.Tensor], classifier.features)  # checked by hasattr above
    mean = torch.tensor(prep["mean"], device=device).view(1, -1, 1, 1)
    std = torch.tensor(prep["std"], device=device).view(1, -1, 1, 1)

    @torch.no_grad()
    def features(images: torch.Tensor, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        feats, logits = [], []
        for i in range(0, len(images), batch):
            x = (images[i : i + batch].to(device) - mean) / std
            feats.append(penultimate(x).float().cpu())
            logits.append(classifier(x).float().cpu())
        return torch.cat(feats), torch.cat(logits)

    return features, ""


register_task(ImageGeneration())
