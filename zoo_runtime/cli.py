"""``zoo-run``: run a bundle from a script. Exit 0 ok, 1 the bundle failed verification, 2 usage or input error
(a path that is not a bundle included)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

import zoo_runtime
from zoo_runtime import schema
from zoo_runtime.errors import BundleError, InputError
from zoo_runtime.tasks.base import BundleModel
from zoo_runtime.tasks.seq2seq import Translator
from zoo_runtime.tasks.sequence_classification import SequenceClassifier


def add_trusted_key_option(parser: argparse.ArgumentParser, what: str, otherwise: str) -> None:
    """``--trusted-key PUB.pem`` (repeatable), as zoo-run, zoo-gui and zoo-serve share it."""
    parser.add_argument(
        "--trusted-key",
        type=Path,
        action="append",
        default=None,
        metavar="PUB.pem",
        help=f"{what} (model.sig, OpenSSF Model Signing) by this EC public key{otherwise} "
        "(repeatable: any of them; needs model-zoo[signing])",
    )


def missing_trusted_keys(keys: Sequence[Path] | None) -> list[str]:
    """One problem line per ``--trusted-key`` file that does not exist."""
    return [f"--trusted-key {key}: no such public key file" for key in keys or [] if not key.is_file()]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends an option's default only where it informs: "(default: None)" or a second default says nothing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if action.default is None or action.default is False or "default" in help_text:
            return help_text
        return super()._get_help_string(action) or help_text


def checked_number(convert: Callable[[str], Any], accept: Callable[[Any], bool], expected: str) -> Callable[[str], Any]:
    """An argparse type: ``convert`` the text, then refuse a value ``accept`` rejects, saying what was ``expected``.

    Checked as the command line is parsed, a bad value is a usage error that names its flag, not a failure later on.
    """

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    return parse


# Counts (epochs, threads, samples): zero or less would do nothing, or fail later and less clearly.
positive_int = checked_number(int, lambda value: value > 0, "a positive integer")
# Rates such as --lr: zero, negative or infinite values do not train.
positive_float = checked_number(float, lambda value: 0 < value < math.inf, "a positive finite number")
# --max-new-tokens: 0 gives the prompt alone.
non_negative_int = checked_number(int, lambda value: value >= 0, "0 or a positive integer")
# --temperature: 0 is greedy.
non_negative_float = checked_number(float, lambda value: 0 <= value < math.inf, "0 or a positive finite number")
# --top-p: the share of the probability mass sampled from.
nucleus_probability = checked_number(float, lambda value: 0 < value <= 1, "a number above 0 and at most 1 (1 = off)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zoo-run",
        description="Run a Model Zoo bundle (numpy + onnxruntime, no torch). With no action, describe the bundle.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("bundle", type=Path, help="bundle directory (with manifest.json) or a lone .onnx with Model Zoo metadata")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--image", type=Path, nargs="+", metavar="PATH", help="classify image files (image-classification)")
    action.add_argument("--prompt", help="generate text or DNA from this prompt (text-generation)")
    action.add_argument(
        "--sample",
        type=positive_int,
        metavar="N",
        help="sample N images and write PNGs to --out (image-generation; refused up front when "
        "the images would need more memory than $ZOO_MAX_OUTPUT_BYTES, 1 GiB unless set)",
    )
    action.add_argument("--tokens", help='token ids such as "1 2 3" (sequence-classification, seq2seq)')
    action.add_argument(
        "--sequence",
        metavar="TEXT",
        help='a sequence as text, such as a DNA read "ACGT..." (sequence-classification, seq2seq bundles with a '
        "character vocabulary)",
    )
    p.add_argument(
        "--inspect",
        action="store_true",
        help="look inside instead of answering: run the bundle's inspect graph on the --image, --prompt, --tokens or "
        "--sequence input and print each array's name, shape and range (describe lists what there is)",
    )
    p.add_argument(
        "--inspect-out",
        type=Path,
        default=None,
        metavar="FILE.npz",
        help="with --inspect: also save the arrays, by name, to this numpy .npz file (np.load reads it)",
    )
    p.add_argument("--top-k", type=int, default=None, help="labels to show (--image, default 5) or top-k sampling (--prompt)")
    p.add_argument("--max-new-tokens", type=non_negative_int, default=None, help="tokens to generate (default: the bundle's)")
    p.add_argument("--temperature", type=non_negative_float, default=None, help="0 = greedy (default: the bundle's)")
    p.add_argument("--top-p", type=nucleus_probability, default=None, help="nucleus sampling (default: the bundle's)")
    p.add_argument(
        "--seed",
        type=non_negative_int,
        default=None,
        help="random seed for --prompt and --sample, 0 or more (default: a fresh one each run)",
    )
    p.add_argument("--stop", action="append", default=None, help="stop generating at this string (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="folder for --sample PNGs (required with --sample)")
    p.add_argument("--cpu", action="store_true", help="run on CPU even when CUDA is available")
    p.add_argument("--threads", type=positive_int, default=None, help="onnxruntime intra-op threads (default: onnxruntime's)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    add_trusted_key_option(p, "refuse the bundle unless it is signed", "")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.sample is not None and args.out is None:
        parser.error("--sample needs --out DIR")
    if args.inspect_out is not None and not args.inspect:
        parser.error("--inspect-out needs --inspect")
    if args.inspect_out is not None and args.inspect_out.suffix != ".npz":
        parser.error(f"--inspect-out {args.inspect_out}: the file name must end in .npz")
    if args.inspect and all(getattr(args, name) is None for name in INSPECTED_INPUTS):
        parser.error("--inspect needs an input to look inside: --image, --prompt, --tokens or --sequence")
    if args.top_k is not None and args.top_k < (0 if args.prompt is not None else 1):
        parser.error("--top-k must be at least 1 (labels to show), or 0 (off) with --prompt")
    if not args.bundle.exists():
        print(f"zoo-run: error: {args.bundle}: no such bundle", file=sys.stderr)
        return 2
    for problem in missing_trusted_keys(args.trusted_key):
        print(f"zoo-run: error: {problem}", file=sys.stderr)
        return 2
    try:
        model = zoo_runtime.load(
            args.bundle, device="cpu" if args.cpu else "auto", threads=args.threads, trusted_keys=args.trusted_key
        )
    except BundleError as exc:
        print(f"zoo-run: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, InputError) else 1
    if model.provider_note and not args.json:
        print(f"zoo-run: note: {model.provider_note}", file=sys.stderr)
    try:
        return _dispatch(model, args)
    except BundleError as exc:
        print(f"zoo-run: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nzoo-run: stopped", file=sys.stderr)
        return 130


# The predict input each action flag gives: a flag applies to a model whose ``inputs`` hold one of these.
FLAG_INPUTS = {
    "--image": ("images",),
    "--prompt": ("prompt",),
    "--sample": ("n",),
    "--tokens": (schema.INPUT_TOKENS, schema.INPUT_SRC),
    "--sequence": (schema.INPUT_TOKENS, schema.INPUT_SRC),
}


# The action flags whose input --inspect looks inside (--sample draws from noise: there is no input).
INSPECTED_INPUTS = tuple(flag.removeprefix("--") for flag in FLAG_INPUTS if flag != "--sample")


def _flag_input(model: BundleModel, flag: str) -> str | None:
    return next((name for name in FLAG_INPUTS[flag] if name in model.inputs), None)


def _dispatch(model: BundleModel, args: argparse.Namespace) -> int:
    for flag in FLAG_INPUTS:
        if getattr(args, flag.removeprefix("--")) is not None and _flag_input(model, flag) is None:
            print(f"zoo-run: error: {flag} does not apply to {model.name} (task {model.task})", file=sys.stderr)
            return 2
    if args.inspect:
        return _inspect(model, args)
    if args.image is not None:
        return _classify(model, args)
    if args.prompt is not None:
        return _generate(model, args)
    if args.sample is not None:
        return _sample(model, args)
    if args.tokens is not None:
        return _tokens(model, args)
    if args.sequence is not None:
        return _sequence(model, args)
    return _describe(model, args)


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> int:
    print(json.dumps(payload, indent=2) if args.json else text)
    return 0


def _base(model: BundleModel) -> dict[str, Any]:
    return {
        "bundle": str(model.path),
        "model": model.name,
        "task": model.task,
        "provider": model.provider,
        "provider_note": model.provider_note,
    }


def _describe(model: BundleModel, args: argparse.Namespace) -> int:
    described = model.describe()
    info = {
        **_base(model),
        "size_bytes": model.size_bytes,
        "metrics": model.metrics,
        "labels": model.labels,
        "signature": dataclasses.asdict(model.signature),
        "inputs": described["inputs"],
        "outputs": described["outputs"],
    }
    lines = [f"{model.name}: {model.task}, {model.size_bytes / 1024:.1f} KiB, on {model.provider}, {model.signature.badge()}"]
    lines += [f"  {k}: {v}" for k, v in model.metrics.items()]
    return _emit(args, info, "\n".join(lines))


def _inspect(model: Any, args: argparse.Namespace) -> int:
    """``--inspect``: ``model.inspect`` on the action flag's input; each array's shape and range, saved with --inspect-out."""
    if args.image is not None:
        arrays = model.inspect([str(p) for p in args.image])
    elif args.prompt is not None:
        arrays = model.inspect(args.prompt)
    elif args.sequence is not None:
        arrays = model.inspect(args.sequence.strip())
    else:
        try:
            arrays = model.inspect([int(t) for t in args.tokens.replace(",", " ").split()])
        except ValueError:
            raise BundleError(f"--tokens {args.tokens!r}: expected integers separated by spaces") from None
    summary = {
        name: {
            "dtype": str(value.dtype),
            "shape": list(value.shape),
            "min": float(value.min()),
            "mean": float(value.mean()),
            "max": float(value.max()),
        }
        for name, value in arrays.items()
    }
    payload: dict[str, Any] = {**_base(model), "inspect": summary}
    lines = [
        f"{name}: {s['dtype']} {s['shape']}  min {s['min']:.4g}  mean {s['mean']:.4g}  max {s['max']:.4g}"
        for name, s in summary.items()
    ]
    if args.inspect_out is not None:
        payload["saved"] = str(_save_arrays(args.inspect_out, arrays))
        lines.append(f"saved {len(arrays)} arrays to {args.inspect_out}")
    return _emit(args, payload, "\n".join(lines))


def _save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` (.npz) through a temporary file beside it: a failed write leaves nothing behind."""
    if not path.parent.is_dir():
        raise BundleError(f"--inspect-out {path}: the folder {path.parent} does not exist")
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as file:
            np.savez(file, **cast(dict[str, Any], arrays))  # names of the model, never savez options
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise BundleError(f"--inspect-out {path}: cannot write it ({exc.strerror or exc})") from None
    return path


def _classify(model: BundleModel, args: argparse.Namespace) -> int:
    top_k = args.top_k if args.top_k is not None else 5
    results = model.predict({"images": [str(p) for p in args.image], "top_k": top_k})["predictions"]
    payload = {
        **_base(model),
        "results": [{"image": str(path), "predictions": preds} for path, preds in zip(args.image, results, strict=False)],
    }
    lines = []
    for path, preds in zip(args.image, results, strict=False):
        lines.append(f"{path}:")
        lines += [f"  {p['probability']:7.2%}  {p['label']}" for p in preds]
    return _emit(args, payload, "\n".join(lines))


def _generate(model: Any, args: argparse.Namespace) -> int:
    pieces = model.generate(
        args.prompt,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        stop=args.stop,
    )
    start = time.perf_counter()
    out, count = [], 0
    if not args.json:
        sys.stdout.write(args.prompt)
    for piece in pieces:
        out.append(piece)
        count += 1
        if not args.json:
            sys.stdout.write(piece)
            sys.stdout.flush()
    seconds = time.perf_counter() - start
    if args.json:
        print(
            json.dumps(
                {
                    **_base(model),
                    "prompt": args.prompt,
                    "text": "".join(out),
                    "pieces": count,
                    "seconds": round(seconds, 4),
                    "skipped": model.last_skipped,
                },
                indent=2,
            )
        )
    else:
        sys.stdout.write("\n")
        if model.last_skipped:
            print(f"zoo-run: note: skipped characters not in the vocabulary: {model.last_skipped}", file=sys.stderr)
    return 0


def _sample(model: Any, args: argparse.Namespace) -> int:
    from PIL import Image

    count = model.check_count(args.sample, "--sample")  # before the PNGs' memory is taken
    images = model.sample(count, seed=args.seed)
    if args.out.exists() and not args.out.is_dir():
        raise BundleError(f"--out {args.out}: a file, not a folder for the sample PNGs")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BundleError(f"--out {args.out}: cannot create the folder for the sample PNGs ({exc.strerror or exc})") from None
    files = []
    for i, img in enumerate(images):
        path = args.out / f"sample_{i:03d}.png"
        Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(path)
        files.append(str(path))
    grid_path = args.out / "grid.png"
    grid = make_grid(images)
    Image.fromarray(grid[:, :, 0] if grid.shape[2] == 1 else grid).save(grid_path)
    payload = {**_base(model), "seed": args.seed, "files": files, "grid": str(grid_path)}
    return _emit(args, payload, f"wrote {len(files)} images and {grid_path}")


def make_grid(images: np.ndarray, pad: int = 2) -> np.ndarray:
    """uint8 [n,H,W,C] -> one uint8 [rows*(H+pad)+pad, cols*(W+pad)+pad, C] image."""
    n, h, w, c = images.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, cols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = img
    return grid


def _tokens(model: BundleModel, args: argparse.Namespace) -> int:
    try:
        ids = [int(t) for t in args.tokens.replace(",", " ").split()]
    except ValueError:
        raise BundleError(f"--tokens {args.tokens!r}: expected integers separated by spaces") from None
    name = _flag_input(model, "--tokens")
    assert name is not None  # _dispatch checked that --tokens applies
    request: dict[str, Any] = {name: ids}
    if args.top_k is not None and "top_k" in model.inputs:
        request["top_k"] = args.top_k
    result = model.predict(request)
    payload = {**_base(model), name: ids, **result}
    if "predictions" in result:  # labels with probabilities
        return _emit(args, payload, "\n".join(f"{p['probability']:7.2%}  {p['label']}" for p in result["predictions"]))
    return _emit(args, payload, " ".join(map(str, result["output"])))


def _sequence(model: BundleModel, args: argparse.Namespace) -> int:
    text = args.sequence.strip()
    if isinstance(model, Translator):
        out = model.translate(text)
        skipped = model.vocab.skipped_message()
        payload = {**_base(model), "src": text, "output": out, "skipped": model.vocab.last_skipped}
    elif isinstance(model, SequenceClassifier):
        preds = model.classify_sequence(text, top_k=args.top_k)
        skipped = model.vocab.skipped_message()
        payload = {
            **_base(model),
            "sequence": text,
            "predictions": [p._asdict() for p in preds],
            "skipped": model.vocab.last_skipped,
        }
        out = "\n".join(f"{p.probability:7.2%}  {p.label}" for p in preds)
    else:  # _dispatch let --sequence through only for the two sequence tasks
        raise BundleError(f"--sequence does not apply to {model.name} (task {model.task})")
    if skipped and not args.json:
        print(f"zoo-run: note: --sequence: {skipped}", file=sys.stderr)
    return _emit(args, payload, out)


if __name__ == "__main__":
    sys.exit(main())
