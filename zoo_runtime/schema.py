"""Constants of the bundle format (docs/BUNDLE.md), shared by the writer and the reader.

``zoo_export`` is the only writer and imports these; ``zoo_runtime`` is the only reader.
Nothing here imports anything beyond the standard library.
"""

from __future__ import annotations

FORMAT = "model-zoo-bundle"
SCHEMA_VERSION = 1

# File names inside a bundle directory.
MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.ts"
STEP_FILE = "step.onnx"
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
INT8_FILE = "model.int8.onnx"

# Directory naming used when publishing a bundle atomically.
EXPORT_DIR = "export"
TMP_PREFIX = "export.tmp-"
FAILED_DIR = "export.failed"

# Task kinds.
TASK_IMAGE_CLASSIFICATION = "image-classification"
TASK_IMAGE_GENERATION = "image-generation"
TASK_SEQUENCE_CLASSIFICATION = "sequence-classification"
TASK_TEXT_GENERATION = "text-generation"
TASK_SEQ2SEQ = "seq2seq"
TASKS = (
    TASK_IMAGE_CLASSIFICATION,
    TASK_IMAGE_GENERATION,
    TASK_SEQUENCE_CLASSIFICATION,
    TASK_TEXT_GENERATION,
    TASK_SEQ2SEQ,
)

# Graph roles (keys of manifest["graphs"]) and the file each role is written to.
ROLE_MODEL = "model"
ROLE_STEP = "step"
ROLE_ENCODER = "encoder"
ROLE_DECODER = "decoder"
ROLE_FILES = {
    ROLE_MODEL: MODEL_FILE,
    ROLE_STEP: STEP_FILE,
    ROLE_ENCODER: ENCODER_FILE,
    ROLE_DECODER: DECODER_FILE,
}

# Roles each task needs in a bundle ("model" is optional for text generators whose step
# loops over time in Python, see BUNDLE.md "full_graph").
REQUIRED_ROLES = {
    TASK_IMAGE_CLASSIFICATION: (ROLE_MODEL,),
    TASK_IMAGE_GENERATION: (ROLE_MODEL,),
    TASK_SEQUENCE_CLASSIFICATION: (ROLE_MODEL,),
    TASK_TEXT_GENERATION: (ROLE_STEP,),
    TASK_SEQ2SEQ: (ROLE_ENCODER, ROLE_DECODER),
}

# Tasks whose lone model.onnx can be loaded from its metadata_props alone.
SINGLE_GRAPH_TASKS = (TASK_IMAGE_CLASSIFICATION, TASK_IMAGE_GENERATION, TASK_SEQUENCE_CLASSIFICATION)

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
UNKNOWN_ERROR = "error"
UNKNOWN_SKIP = "skip"
DNA_TOKENS = ("A", "C", "G", "T")
# Tokens standing for the specials in a character vocabulary's token list (never typed: not one character).
SPECIAL_TOKENS = {"pad": "<pad>", "bos": "<bos>", "eos": "<eos>"}

# Generation.
GENERATION_RECURRENT = "recurrent"
GENERATION_KV_CACHE = "kv-cache"
STEP_TOKENS_ANY = "any"

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
