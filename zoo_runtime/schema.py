"""Constants of the bundle format (docs/BUNDLE.md), shared by the writer and the reader.

``zoo_export`` is the only writer and imports these; ``zoo_runtime`` is the only reader; the trainer
and the app name task kinds, vocabularies and tensors by them too. What each task kind needs
(roles, checkpoint meta, titles) is in ``zoo_runtime.contract``. Nothing here imports anything
beyond the standard library.
"""

from __future__ import annotations

from typing import Final

FORMAT = "model-zoo-bundle"
SCHEMA_VERSION = 1

# File names inside a bundle directory.
MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
STEP_FILE = "step.onnx"
INT8_FILE = "model.int8.onnx"

# The bundle's folder inside a run folder.
EXPORT_DIR = "export"

# Task kinds.
TASK_IMAGE_CLASSIFICATION = "image-classification"
TASK_IMAGE_GENERATION = "image-generation"
TASK_SEQUENCE_CLASSIFICATION = "sequence-classification"
TASK_TEXT_GENERATION = "text-generation"
TASK_SEQ2SEQ = "seq2seq"

# Graph roles (keys of manifest["graphs"]); role R is written to "R.onnx".
ROLE_MODEL = "model"
ROLE_STEP = "step"
ROLE_ENCODER = "encoder"
ROLE_DECODER = "decoder"
ROLE_INSPECT = "inspect"  # optional: what the model computes inside (docs/BUNDLE.md, "The inspect graph")

# Top-level manifest keys a reader requires.
REQUIRED_MANIFEST_KEYS = ("format", "schema_version", "complete", "model", "task", "files", "graphs")

# ONNX metadata_props keys (every .onnx file of a bundle). JSON-valued keys hold json.dumps(...).
META_SCHEMA_VERSION = "zoo.schema_version"
META_MODEL = "zoo.model"
META_TASK = "zoo.task"
META_GRAPH_ROLE = "zoo.graph_role"
META_LABELS = "zoo.labels"  # JSON
META_VOCAB = "zoo.vocab"  # JSON: the input vocabulary
META_TARGET_VOCAB = "zoo.target_vocab"  # JSON: seq2seq output vocabulary, where it differs from the input's
META_PREPROCESSING = "zoo.preprocessing"  # JSON
META_GENERATION = "zoo.generation"  # JSON
META_IO = "zoo.io"  # JSON: the manifest["graphs"] entry of this file
META_JSON_KEYS = (META_LABELS, META_VOCAB, META_TARGET_VOCAB, META_PREPROCESSING, META_GENERATION, META_IO)

# Vocabulary.
VOCAB_CHAR = "char"
VOCAB_IDS = "ids"
VOCAB_TOKENS: Final = "tokens"  # a vocabulary block's key for its token list (Final: mypy reads it as a TypedDict key)
UNKNOWN_ERROR = "error"
UNKNOWN_SKIP = "skip"
DNA_TOKENS = ("A", "C", "G", "T")
# Tokens standing for the specials in a character vocabulary's token list (never typed: not one character).
SPECIAL_TOKENS = {"pad": "<pad>", "bos": "<bos>", "eos": "<eos>"}

# Generation.
GENERATION_RECURRENT = "recurrent"
GENERATION_KV_CACHE = "kv-cache"
STEP_TOKENS_ANY = "any"
PARITY_TOKENS = "tokens"  # a generation parity check's key: how many tokens it compared

# Standard tensor names.
INPUT_IMAGE = "image"
INPUT_TOKENS = "tokens"
INPUT_Z = "z"
INPUT_SRC = "src"
INPUT_TGT = "tgt"
INPUT_MEMORY = "memory"
OUTPUT_LOGITS = "logits"
OUTPUT_IMAGE = "image"
OUTPUT_MEMORY = "memory"
