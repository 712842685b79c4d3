"""The one runtime interface: every task object answers ``describe()`` and ``predict(request)``.

``describe`` is plain JSON; ``predict`` on the contract's example request (and on others) gives
what the task's own method gives; a request that does not fit is a BundleError naming the field.
One tiny bundle per task kind (the first registry model of each).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import zoo_runtime
from zoo_runtime import schema
from zoo_runtime.cli import main as zoo_run
from zoo_runtime.contract import TASK_KINDS, example_request
from zoo_runtime.errors import BundleError
from zoo_runtime.tasks import TASK_CLASSES, BundleModel
from zoo_train.registry import list_models


def as_json(value: Any) -> Any:
    """What a server would send: arrays as nested lists."""
    return json.loads(json.dumps(value, default=lambda a: a.tolist() if isinstance(a, np.ndarray) else repr(a)))


@pytest.fixture(scope="module", params=list(TASK_KINDS))
def model(request: pytest.FixtureRequest, tiny_bundle: Callable[[str], Path]) -> BundleModel:
    return zoo_runtime.load(tiny_bundle(list_models(request.param)[0]), device="cpu")


@pytest.mark.parametrize("cls", list(TASK_CLASSES.values()), ids=list(TASK_CLASSES))
def test_every_task_class_implements_the_interface(cls: type[BundleModel]) -> None:
    assert cls.predict_checked is not BundleModel.predict_checked
    assert cls.describe_task is not BundleModel.describe_task
    assert any(field.required for field in cls.inputs.values()) or cls.task == schema.TASK_IMAGE_GENERATION
    assert cls.outputs
    assert set(TASK_CLASSES) == set(TASK_KINDS)


def test_describe_is_plain_json(model: BundleModel) -> None:
    described = model.describe()
    assert json.loads(json.dumps(described)) == described
    assert described["model"] == model.name and described["task"] == model.task
    assert described["title"] == TASK_KINDS[model.task].title
    assert set(described["inputs"]) == set(model.inputs) and set(described["outputs"]) == set(model.outputs)
    assert all(set(f) == {"type", "required", "help"} and f["help"] for f in described["inputs"].values())


def test_predict_on_the_example_request_gives_the_described_outputs(model: BundleModel) -> None:
    request = example_request(model.manifest)
    assert set(request) <= set(model.inputs)
    result = model.predict(request)
    assert set(result) == set(model.outputs)
    assert as_json(result)  # arrays become lists, nothing else needs converting


def own_method_cases(model: Any) -> list[tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]]:
    """(request, check of predict's result against the task's own method) per task kind."""
    if model.task == schema.TASK_IMAGE_CLASSIFICATION:
        images = np.random.default_rng(1).random((3, *model.image_spec.chw), dtype=np.float32)
        own = [[p._asdict() for p in preds] for preds in model.classify(images, top_k=2)]
        return [({"images": images, "top_k": 2}, lambda r: r["predictions"] == own)]
    if model.task == schema.TASK_IMAGE_GENERATION:
        z = model.sample_latents(2, seed=4)
        return [
            ({"z": z}, lambda r: np.array_equal(r["images"], model.decode(z)) and np.array_equal(r["z"], z)),
            ({"n": 3, "seed": 5}, lambda r: np.array_equal(r["images"], model.sample(3, seed=5))),
        ]
    if model.task == schema.TASK_TEXT_GENERATION:
        prompt = example_request(model.manifest)["prompt"]
        settings = {"max_new_tokens": 12, "temperature": 1.0, "top_k": 0, "seed": 3}
        own = model.generate_text(prompt, **settings)
        return [({"prompt": prompt, **settings}, lambda r: r["text"] == own and r["pieces"] == 12 and r["skipped"] == [])]
    if model.task == schema.TASK_SEQUENCE_CLASSIFICATION:
        tokens = example_request(model.manifest)["tokens"]
        own = [p._asdict() for p in model.classify_sequence(tokens, top_k=2)]
        return [({"tokens": tokens, "top_k": 2}, lambda r: r["predictions"] == own)]
    src = example_request(model.manifest)["src"][:6]
    own_ids = model.translate(src, max_len=4)
    return [({"src": src, "max_len": 4}, lambda r: r["output"] == own_ids)]


def test_predict_gives_what_the_tasks_own_method_gives(model: BundleModel) -> None:
    for request, same in own_method_cases(model):
        assert same(model.predict(request)), request


def test_the_trainers_torch_reference_computes_what_predict_computes(
    model: BundleModel, tiny_checkpoint: Callable[[str], Path]
) -> None:
    """benchmarks/runtime.py times each kind's ``Task.reference_call`` against ``predict``: the same work."""
    import torch

    from zoo_train.checkpoint import build_from_checkpoint, load_checkpoint
    from zoo_train.tasks.base import get_task

    ckpt = tiny_checkpoint(model.name)
    net = build_from_checkpoint(load_checkpoint(ckpt), ckpt)
    request = example_request(model.manifest)
    with torch.inference_mode():
        torch_out = get_task(model.task).reference_call(net, model.manifest, request)()
    result = model.predict(request)
    if "predictions" in result:  # classifiers: each label's probability, as torch computes it
        predictions = result["predictions"]
        if isinstance(predictions[0], list):  # images: one top-k list per image; torch's top-k comes with its indices
            predictions = predictions[0]
            by_index = dict(zip(torch_out["indices"][0].tolist(), torch_out["probabilities"][0].tolist(), strict=True))
        else:
            by_index = dict(enumerate(torch_out["probabilities"][0].tolist()))
        expected = [by_index[p["index"]] for p in predictions]
        assert [p["probability"] for p in predictions] == pytest.approx(expected, abs=1e-4)
    else:
        shared = set(torch_out) & set(result)
        assert shared, (set(torch_out), set(result))
        for key in shared:
            if key == "images":  # uint8 after rounding: ONNX and torch may differ by one level
                assert np.abs(torch_out[key].numpy().astype(int) - result[key].astype(int)).max() <= 1
            else:
                assert torch_out[key] == result[key], key


def test_a_request_that_does_not_fit_is_named(model: BundleModel) -> None:
    with pytest.raises(BundleError, match=r"request: .* takes no colour; it takes "):
        model.predict({**example_request(model.manifest), "colour": 1})
    required = [name for name, field in model.inputs.items() if field.required]
    if required:
        with pytest.raises(BundleError, match=rf"request: {required[0]} missing"):
            model.predict({})
    with pytest.raises(BundleError, match="request: expected a mapping"):
        model.predict([1, 2])  # type: ignore[arg-type]


def test_zoo_run_applies_a_flag_by_the_models_inputs(model: BundleModel, capsys: pytest.CaptureFixture[str]) -> None:
    assert zoo_run([str(model.path), "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["inputs"] == model.describe()["inputs"]
    takes_tokens = bool({"tokens", "src"} & set(model.inputs))
    code = zoo_run([str(model.path), "--tokens", "3 4 3"])
    captured = capsys.readouterr()
    if takes_tokens:
        assert code == 0 and captured.out.strip()
    else:
        assert code == 2 and f"--tokens does not apply to {model.name} (task {model.task})" in captured.err
