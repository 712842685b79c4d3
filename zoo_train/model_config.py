"""Checks of a model config before any weight is allocated: field names, values, and the size it describes.

A config comes from ``zoo-train --set`` or from a checkpoint. A mistyped field, a negative size or a
size the machine cannot hold (``--set n_embd=10000000``) is refused here with one line, not found
by a RuntimeError or MemoryError (or an exhausted machine) once the model is built. The size is read
from the model built on torch's meta device, which has shapes but no storage.
"""

from __future__ import annotations

import json
import math
import os
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn as nn

from zoo_runtime.limits import human_bytes, max_image_pixels
from zoo_train.registry import ModelEntry, config_fields

# Training keeps each fp32 parameter with its gradient and Adam's two moments: 4 x 4 bytes.
BYTES_PER_TRAINED_PARAMETER = 16
# Modules, parameters and buffers together: far more than any model of the zoo has (a few hundred); a
# config past this describes an absurd depth.
MAX_PARTS = 20_000
# The config field that gives an image model's input side, in pixels.
IMAGE_SIZE_FIELD = "image_size"
# Errors a builder raises for a config it cannot make (a size of 0, heads that do not divide the width, ...).
BUILD_ERRORS = (TypeError, ValueError, AssertionError, RuntimeError, ZeroDivisionError, OverflowError)


def check_config_fields(entry: ModelEntry, names: Iterable[str]) -> None:
    allowed = config_fields(entry)
    unknown = sorted(set(names) - allowed)
    if unknown:
        raise ValueError(f"model {entry.name!r} takes no config field(s) {unknown}; it takes {sorted(allowed)}")


def _is_count(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _config_value_problem(kind: Any, name: str, value: Any) -> str | None:
    """What is wrong with ``value`` for a config field of type ``kind``, or None.

    Integer fields are sizes and counts (at least 1), except token ids (``*_id``, at least 0).
    """
    if kind is bool:
        return None if isinstance(value, bool) else "takes true or false"
    if kind is int:
        least = 0 if name.endswith("_id") else 1
        return None if _is_count(value, least) else f"takes a whole number of at least {least}"
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else "takes a finite number"
    if kind is str:
        return None if isinstance(value, str) else "takes a string"
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        length = None if Ellipsis in args else len(args)
        ok = (
            isinstance(value, (list, tuple))
            and len(value) >= 1
            and (length is None or len(value) == length)
            and all(_is_count(v, 1) for v in value)
        )
        size = "one or more" if length is None else str(length)
        return None if ok else f"takes a list of {size} whole numbers, each at least 1 (e.g. [32, 64])"
    return None


def check_config_values(entry: ModelEntry, values: Mapping[str, Any], flag: str = "--set") -> None:
    """A value of the wrong type or size is a usage error (ValueError naming ``flag`` and the field), not a crash
    minutes into training or a RuntimeError from the builder."""
    hints = typing.get_type_hints(entry.config_cls)
    for name, value in values.items():
        problem = _config_value_problem(hints.get(name), name, value)
        # The input size shapes no weight of a model with global pooling: bounded by what the runtime opens.
        if problem is None and name == IMAGE_SIZE_FIELD and value * value > max_image_pixels():
            problem = f"makes images of {value * value:,} pixels, more than the runtime's limit of {max_image_pixels():,}"
        if problem:
            raise ValueError(f"{flag} {name}={json.dumps(value)}: {entry.name}'s {name} {problem}")


class _TooManyParts(Exception):
    pass


def meta_model(entry: ModelEntry, config: Mapping[str, Any]) -> nn.Module:
    """The model ``config`` describes, built on the meta device: its shapes, none of its memory.

    Raises ValueError when the builder refuses the config, or when the config describes more than
    MAX_PARTS modules, parameters and buffers: the meta device saves memory, not the Python time of
    building each layer, so a depth of millions is stopped as it is being built.
    """
    from torch.nn.modules import module as torch_module

    registered = 0

    def count(*_: object) -> None:
        nonlocal registered
        registered += 1
        if registered > MAX_PARTS:
            raise _TooManyParts

    hooks = [
        torch_module.register_module_module_registration_hook(count),
        torch_module.register_module_parameter_registration_hook(count),
        torch_module.register_module_buffer_registration_hook(count),
    ]
    try:
        with torch.device("meta"):
            return entry.build(**config)
    except _TooManyParts:
        raise ValueError(f"this config makes {entry.name} of more than {MAX_PARTS:,} modules, parameters and buffers") from None
    except BUILD_ERRORS as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{entry.name} cannot be built from this config: {first}") from None
    finally:
        for hook in hooks:
            hook.remove()


def tensor_bytes(model: nn.Module) -> int:
    """Memory of a model's parameters and buffers (those not saved with it included)."""
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def device_memory(device: torch.device) -> int | None:
    """Bytes of memory of the device a model trains on (the machine's RAM for the CPU), or None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        return None


def check_trainable(entry: ModelEntry, config: Mapping[str, Any], device: torch.device, flag: str) -> None:
    """Refuse (ValueError naming ``flag``) a config whose weights, gradients and optimiser state alone
    would not fit the training device's memory; activations come on top, so passing is no promise."""
    params = count_parameters(meta_model(entry, config))
    needed = params * BYTES_PER_TRAINED_PARAMETER
    memory = device_memory(device)
    if memory is not None and needed > memory:
        raise ValueError(
            f"{flag}: {entry.name} would have {params:,} parameters, needing at least {human_bytes(needed)} for "
            f"weights, gradients and optimiser state; the {device.type} has {human_bytes(memory)}"
        )


def check_checkpoint_config(entry: ModelEntry, config: Any, state_dict: Mapping[str, Any]) -> None:
    """A checkpoint's config must be valid and describe exactly the tensors its weights hold (ValueError).

    Compared on the meta device, so a config with an absurd size is refused without allocating it.
    """
    if not isinstance(config, dict):
        raise ValueError(f"config is a {type(config).__name__}, expected a mapping of field names to values")
    check_config_fields(entry, config)
    check_config_values(entry, config, flag="config")
    skeleton = meta_model(entry, config)
    memory = device_memory(torch.device("cpu"))
    if memory is not None and tensor_bytes(skeleton) > memory:
        raise ValueError(
            f"the config describes a model of {human_bytes(tensor_bytes(skeleton))}, more than this machine's "
            f"{human_bytes(memory)} of memory"
        )
    expected = skeleton.state_dict()
    for key, tensor in expected.items():
        held = state_dict.get(key)
        shape = tuple(held.shape) if isinstance(held, torch.Tensor) else None
        if shape != tuple(tensor.shape):
            raise ValueError(
                f"the config describes {key} of shape {list(tensor.shape)}, the weights hold "
                + ("no such tensor" if shape is None else f"one of shape {list(shape)}")
            )
