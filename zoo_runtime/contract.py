"""The task contract: one typed description per task kind, shared by train, export, runtime and app.

A ``TaskKind`` names what a bundle of its kind needs (graph roles), what its checkpoint ``meta``
holds (a TypedDict below, written by ``zoo_train.tasks.*.load_data``, checked by
``check_meta`` in each exporter's ``validate``), its title for people, and small examples: the
meta of a model of given sizes (``zoo_export.synthetic`` builds test checkpoints from it) and
a ``predict`` request built from a manifest alone (benchmarks and tests). Each package holds a
kind's part in a module named after it (``kind_module``), so a new kind is added without editing
any list; docs/ARCHITECTURE.md names its files.

Standard library and numpy only. Optional keys sit in a ``total=False`` subclass (``NotRequired``
needs Python 3.11; the project supports 3.10).
"""

import importlib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Annotated, Any, TypedDict

import numpy as np

from zoo_runtime import schema


class NonEmpty:
    """Marks (in ``Annotated``) a list that must hold at least one item."""


NON_EMPTY = NonEmpty()

# ------------------------------------------------------------------------------ the meta blocks (docs/BUNDLE.md)


class Specials(TypedDict):
    pad: int | None
    bos: int | None
    eos: int | None


class Vocab(TypedDict, total=False):
    kind: str  # schema.VOCAB_CHAR or schema.VOCAB_IDS
    tokens: list[str] | list[int]
    size: int
    unknown: str  # schema.UNKNOWN_ERROR or schema.UNKNOWN_SKIP
    specials: Specials


class _ClassifierImageRequired(TypedDict):
    channels: int
    height: int
    width: int
    mean: Annotated[list[float], NON_EMPTY]
    std: Annotated[list[float], NON_EMPTY]


class ClassifierImage(_ClassifierImageRequired, total=False):
    """preprocessing.image of a classifier: the pixels the graph takes and their normalisation."""

    color: str
    input_range: list[float]
    normalisation: str


class ClassifierPreprocessing(TypedDict):
    image: ClassifierImage


class GeneratedImage(TypedDict, total=False):
    """preprocessing.image of a generator (the exporter takes the sizes from the model itself)."""

    channels: int
    height: int
    width: int
    color: str
    output_range: list[float]


class Latent(TypedDict, total=False):
    dim: int  # the model's latent_dim; the exporter writes it
    distribution: str  # "normal" or "uniform"


class GeneratorPreprocessing(TypedDict, total=False):
    image: GeneratedImage
    latent: Latent


class Sampling(TypedDict, total=False):
    temperature: float | None
    top_k: int | None
    top_p: float | None
    max_new_tokens: int


class Decoding(TypedDict, total=False):
    strategy: str
    max_new_tokens: int


# ------------------------------------------------------------------------------ the meta of each task kind


class _ImageClassificationRequired(TypedDict):
    labels: Annotated[list[str], NON_EMPTY]
    preprocessing: ClassifierPreprocessing


class ImageClassificationMeta(_ImageClassificationRequired, total=False):
    dataset: str


class ImageGenerationMeta(TypedDict, total=False):
    dataset: str
    labels: None
    preprocessing: GeneratorPreprocessing


class _TextGenerationRequired(TypedDict):
    vocab: Vocab


class TextGenerationMeta(_TextGenerationRequired, total=False):
    sampling: Sampling
    block_size: int  # the training context
    dataset: str


class _SequenceClassificationRequired(TypedDict):
    labels: Annotated[list[str], NON_EMPTY]


class SequenceClassificationMeta(_SequenceClassificationRequired, total=False):
    vocab: Vocab  # without it the exporter takes the size from the model config
    generator: dict[str, Any]  # how the generated data was made
    dataset: str
    examples: list[list[str]]  # held-out (label, sequence) pairs people can try


class _Seq2SeqRequired(TypedDict):
    vocab: Vocab  # the source's; specials.bos of the output vocabulary is required (see _seq2seq_problems)


class Seq2SeqMeta(_Seq2SeqRequired, total=False):
    target_vocab: Vocab  # the output's, where the source has its own alphabet (DNA in, amino acids out)
    examples: list[list[str]]  # held-out (source, target) pairs people can try
    generator: dict[str, Any]
    decoding: Decoding
    dataset: str


TaskMeta = ImageClassificationMeta | ImageGenerationMeta | TextGenerationMeta | SequenceClassificationMeta | Seq2SeqMeta

# ------------------------------------------------------------------------------ checking a meta


def check_meta(task: str, meta: Any) -> list[str]:
    """What is missing or wrong in a checkpoint ``meta`` for ``task``: one line per problem, [] when it fits."""
    kind = task_kind(task)
    found = _problems(meta, kind.meta_type, "meta")
    return found or kind.extra_checks(meta)


def _problems(value: Any, hint: Any, where: str) -> list[str]:
    origin = typing.get_origin(hint)
    if hint is Any:
        return []
    if origin is Annotated:
        base, *marks = typing.get_args(hint)
        found = _problems(value, base, where)
        return found or ([f"{where} is empty"] if NON_EMPTY in marks and not value else [])
    if origin in (typing.Union, types.UnionType):
        if any(not _problems(value, option, where) for option in typing.get_args(hint)):
            return []
        return [f"{where}: expected {_name(hint)}, got {_value_name(value)}"]
    if typing.is_typeddict(hint):
        return _typeddict_problems(value, hint, where)
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: expected {_name(hint)}, got {_value_name(value)}"]
        (item,) = typing.get_args(hint)
        for i, v in enumerate(value):  # the first wrong item only: one line, however long the list
            if found := _problems(v, item, f"{where}[{i}]"):
                return found
        return []
    if _fits(value, origin or hint):
        return []
    return [f"{where}: expected {_name(hint)}, got {_value_name(value)}"]


def _typeddict_problems(value: Any, hint: Any, where: str) -> list[str]:
    if not isinstance(value, Mapping):
        return [f"{where}: expected a mapping, got {_value_name(value)}"]
    hints = typing.get_type_hints(hint, include_extras=True)
    found = [f"{where}.{key} is missing" for key in sorted(hint.__required_keys__) if key not in value]
    for key, field_hint in hints.items():
        if key in value:
            found += _problems(value[key], field_hint, f"{where}.{key}")
    return found


def _fits(value: Any, expected: Any) -> bool:
    if expected is None or expected is type(None):
        return value is None
    if expected is float:  # JSON writes 1.0 as 1
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _name(hint: Any) -> str:
    if hint is None or hint is type(None):
        return "null"
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_name(option) for option in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        item = typing.get_args(hint)[0]
        return f"a list of {_PLURALS.get(item, _name(item))}"
    if typing.is_typeddict(hint):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", dict: "a mapping"}.get(hint, str(hint))


_PLURALS = {int: "integers", float: "numbers", str: "strings"}


def _value_name(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"[:80]


def _no_problems(meta: Mapping[str, Any]) -> list[str]:
    return []


def _classifier_problems(meta: Mapping[str, Any]) -> list[str]:
    image = meta["preprocessing"]["image"]
    if len(image["mean"]) != image["channels"] or len(image["std"]) != image["channels"]:
        return ["meta.preprocessing.image: mean and std need one value per channel"]
    return []


def _seq2seq_problems(meta: Mapping[str, Any]) -> list[str]:
    output = "target_vocab" if meta.get("target_vocab") else "vocab"
    bos = (meta[output].get("specials") or {}).get("bos")
    return [] if _fits(bos, int) else [f"meta.{output}.specials.bos is missing: decoding starts from it"]


# ------------------------------------------------------------------------------ example metas (test checkpoints)

# Characters of the example text vocabularies, in order (sizes up to len(EXAMPLE_CHARS)).
EXAMPLE_CHARS = "\n !',.:;?abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
EXAMPLE_ORDER_LABELS = ["XX", "XY", "YX", "YY"]
NO_SPECIALS: Specials = {"pad": None, "bos": None, "eos": None}


def _vocab_size(config: Mapping[str, Any]) -> int:
    for key in ("vocab_size", "output_size", "input_size"):
        if isinstance(config.get(key), int):
            return int(config[key])
    raise ValueError(f"config {dict(config)} names no vocabulary size")


def _image_classification_example(config: Mapping[str, Any], dataset: str) -> ImageClassificationMeta:
    c, size, k = config["in_channels"], config["image_size"], config["num_classes"]
    image: ClassifierImage = {
        "channels": c,
        "height": size,
        "width": size,
        "color": "L" if c == 1 else "RGB",
        "mean": [0.286] * c,
        "std": [0.353] * c,
        "input_range": [0, 1],
        "normalisation": "in-graph",
    }
    return {"dataset": dataset, "labels": [f"class-{i}" for i in range(k)], "preprocessing": {"image": image}}


def _image_generation_example(config: Mapping[str, Any], dataset: str) -> ImageGenerationMeta:
    c, size = config["channels"], config["image_size"]
    image: GeneratedImage = {
        "channels": c,
        "height": size,
        "width": size,
        "color": "L" if c == 1 else "RGB",
        "output_range": [0, 1],
    }
    latent: Latent = {"dim": config["latent_dim"], "distribution": "normal"}
    return {"dataset": dataset, "labels": None, "preprocessing": {"image": image, "latent": latent}}


def _text_generation_example(config: Mapping[str, Any], dataset: str) -> TextGenerationMeta:
    size = _vocab_size(config)
    vocab: Vocab
    if size == len(schema.DNA_TOKENS):
        vocab = {"kind": schema.VOCAB_CHAR, schema.VOCAB_TOKENS: list(schema.DNA_TOKENS), "unknown": schema.UNKNOWN_SKIP}
    else:
        vocab = {"kind": schema.VOCAB_CHAR, schema.VOCAB_TOKENS: list(EXAMPLE_CHARS[:size]), "unknown": schema.UNKNOWN_ERROR}
    vocab["specials"] = NO_SPECIALS.copy()
    sampling: Sampling = {"temperature": 0.8, "top_k": 10, "top_p": 0.95, "max_new_tokens": 200}
    return {"dataset": dataset, "vocab": vocab, "sampling": sampling}


def _sequence_classification_example(config: Mapping[str, Any], dataset: str) -> SequenceClassificationMeta:
    k = config["num_classes"]
    labels = EXAMPLE_ORDER_LABELS[:k] if k <= len(EXAMPLE_ORDER_LABELS) else [f"class-{i}" for i in range(k)]
    vocab: Vocab = {"kind": schema.VOCAB_IDS, "size": _vocab_size(config), "specials": NO_SPECIALS.copy()}
    return {"dataset": dataset, "labels": labels, "vocab": vocab}


def _seq2seq_example(config: Mapping[str, Any], dataset: str) -> Seq2SeqMeta:
    specials: Specials = {"pad": config.get("pad_id", 0), "bos": 1, "eos": 2}
    return {"dataset": dataset, "vocab": {"kind": schema.VOCAB_IDS, "size": _vocab_size(config), "specials": specials}}


# ------------------------------------------------------------------------------ example requests (from a manifest)


def _vocab_of(manifest: Mapping[str, Any]) -> tuple[list[Any], int]:
    vocab = manifest.get("vocab") or {}
    tokens: list[Any] = vocab[schema.VOCAB_TOKENS] if isinstance(vocab.get(schema.VOCAB_TOKENS), list) else []
    return tokens, len(tokens) if tokens else int(vocab.get("size") or 0)


def _example_token_ids(manifest: Mapping[str, Any], rng: np.random.Generator) -> list[int]:
    """Up to 24 ids that are not special tokens (no longer than the longest source the model knows)."""
    vocab = manifest.get("vocab") or {}
    specials = {v for v in (vocab.get("specials") or {}).values() if v is not None}
    ordinary = [i for i in range(_vocab_of(manifest)[1]) if i not in specials]
    length = min(24, (manifest.get("generation") or {}).get("max_source") or 24)
    return [ordinary[int(i) % len(ordinary)] for i in rng.integers(0, 10**6, length)]


def _image_classification_request(manifest: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    pre = manifest["preprocessing"]["image"]
    return {"images": rng.random((1, pre["channels"], pre["height"], pre["width"]), dtype=np.float32), "top_k": 5}


def _image_generation_request(manifest: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    return {"z": rng.standard_normal((1, manifest["preprocessing"]["latent"]["dim"])).astype(np.float32)}


def _text_generation_request(manifest: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    tokens = _vocab_of(manifest)[0]
    if sorted(tokens) == sorted(schema.DNA_TOKENS):
        prompt = "GATTACA"
    else:
        prompt = "".join(t for t in "ROMEO: " if t in tokens) or tokens[min(1, len(tokens) - 1)]
    return {"prompt": prompt, "max_new_tokens": 1, "temperature": 0}


def _sequence_classification_request(manifest: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    return {schema.INPUT_TOKENS: _example_token_ids(manifest, rng)}


def _seq2seq_request(manifest: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    return {"src": _example_token_ids(manifest, rng)}


# ------------------------------------------------------------------------------ the task kinds


@dataclass(frozen=True)
class TaskKind:
    """Everything about one task kind that is not torch or onnxruntime code."""

    name: str  # manifest["task"]
    title: str  # for people (the app's task filter, docs)
    roles: tuple[str, ...]  # graph roles a bundle must have
    single_graph: bool  # a lone .onnx of this kind can be run from its metadata_props alone
    meta_type: Any  # the TypedDict of the checkpoint meta
    example_sizes: Mapping[str, int]  # data-dependent constructor arguments of a small test model
    example_meta: Callable[[Mapping[str, Any], str], TaskMeta]  # (model config, dataset) -> meta for test checkpoints
    example_request: Callable[[Mapping[str, Any], np.random.Generator], dict[str, Any]]  # (manifest, rng) -> predict request
    extra_checks: Callable[[Mapping[str, Any]], list[str]] = _no_problems  # across fields, after the types fit
    optional_roles: tuple[str, ...] = ()  # graph roles a bundle may have; the runtime uses them when present


TASK_KINDS: dict[str, TaskKind] = {
    kind.name: kind
    for kind in (
        TaskKind(
            schema.TASK_IMAGE_CLASSIFICATION,
            "Image classification",
            (schema.ROLE_MODEL,),
            True,
            ImageClassificationMeta,
            {"in_channels": 1, "num_classes": 10, "image_size": 28},
            _image_classification_example,
            _image_classification_request,
            _classifier_problems,
            optional_roles=(schema.ROLE_INSPECT,),
        ),
        TaskKind(
            schema.TASK_TEXT_GENERATION,
            "Text generation",
            (schema.ROLE_STEP,),  # "model" (the full graph) is optional, see BUNDLE.md "full_graph"
            False,
            TextGenerationMeta,
            {"vocab_size": 30, "input_size": 30, "output_size": 30},
            _text_generation_example,
            _text_generation_request,
            optional_roles=(schema.ROLE_INSPECT,),
        ),
        TaskKind(
            schema.TASK_IMAGE_GENERATION,
            "Image generation",
            (schema.ROLE_MODEL,),
            True,
            ImageGenerationMeta,
            {"channels": 1, "image_size": 28},
            _image_generation_example,
            _image_generation_request,
        ),
        TaskKind(
            schema.TASK_SEQUENCE_CLASSIFICATION,
            "Sequence classification",
            (schema.ROLE_MODEL,),
            True,
            SequenceClassificationMeta,
            {"vocab_size": 8, "num_classes": 4},
            _sequence_classification_example,
            _sequence_classification_request,
            optional_roles=(schema.ROLE_INSPECT,),
        ),
        TaskKind(
            schema.TASK_SEQ2SEQ,
            "Sequence to sequence",
            (schema.ROLE_ENCODER, schema.ROLE_DECODER),
            False,
            Seq2SeqMeta,
            # 14 positions: a greedy decoding of 8 sources then covers 8 x 13 = 104 tokens.
            {"vocab_size": 13, "max_len": 14, "pad_id": 0},
            _seq2seq_example,
            _seq2seq_request,
            _seq2seq_problems,
            optional_roles=(schema.ROLE_INSPECT,),
        ),
    )
}


def task_kind(task: str) -> TaskKind:
    try:
        return TASK_KINDS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASK_KINDS)}") from None


def kind_module(package: str, task: str) -> ModuleType:
    """Import ``<package>.<task, "-" as "_">``: the module that holds ``task``'s part in ``package``
    (its trainer task, exporter or runtime class), which registers it; only that kind's module is loaded."""
    name = f"{package}.{task_kind(task).name.replace('-', '_')}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:  # a module it imports is missing: not ours to explain
            raise
        raise ValueError(f"task {task!r} has no module {name} (see docs/ARCHITECTURE.md, adding a task kind)") from None


def example_request(manifest: Mapping[str, Any], seed: int = 0) -> dict[str, Any]:
    """A small valid ``predict`` request for the bundle of ``manifest`` (the same for every engine, by seed)."""
    return task_kind(manifest["task"]).example_request(manifest, np.random.default_rng(seed))
