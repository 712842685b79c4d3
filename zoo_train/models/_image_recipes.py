"""Recipe helpers shared by the image classifiers (one place for the preset shapes)."""

from __future__ import annotations

from functools import partial

from zoo_train.registry import QualityTarget, Recipe

# What every Fashion-MNIST classifier reaches in `make demo` (a few minutes of 2 CPU cores).
DEMO_ACCURACY = (QualityTarget("test_accuracy", at_least=0.87),)


def image_recipes(
    *,
    quick_epochs: int,
    full_epochs: int,
    lr: float,
    batch_size: int = 128,
    quick_limit: int | None = None,
    quick_changes: dict | None = None,
    quick_overrides: dict | None = None,
    optimizer: str = "adamw",
    weight_decay: float = 5e-4,
    label_smoothing: float = 0.0,
    full_random_erasing: float = 0.0,
    full_overrides: dict | None = None,
) -> dict[str, Recipe]:
    """smoke: seconds, for tests; quick: minutes on 2 CPU cores (make demo); full: the quality target.

    The quick recipe spends its minutes as a short schedule should (measured in benchmarks/RESULTS.md, "Quick
    recipes"): the whole training split (quick_limit only where an epoch of it is too slow), no augmentation (it
    pays only over many epochs), and the rate annealed to 0 at the end. ``quick_changes`` are Recipe fields
    that differ for the quick recipe alone (a higher rate for a one-epoch schedule, say).
    """
    recipe = partial(
        Recipe, lr=lr, batch_size=batch_size, optimizer=optimizer, weight_decay=weight_decay, label_smoothing=label_smoothing
    )
    return {
        "smoke": recipe(epochs=1, limit_train=256, limit_eval=128, augment=False),
        "quick": recipe(
            epochs=quick_epochs,
            limit_train=quick_limit,
            limit_eval=2000,
            warmup_steps=50,
            augment=False,
            final_lr_fraction=0.0,
            model_overrides=dict(quick_overrides or {}),
        ).replace(**(quick_changes or {})),
        "full": recipe(
            epochs=full_epochs,
            warmup_steps=200,
            early_stop_patience=8,
            random_erasing=full_random_erasing,
            model_overrides=dict(full_overrides or {}),
        ),
    }
