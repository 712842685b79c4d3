"""How fast zoo_runtime looks inside a model (issue 27): feature maps, occlusion saliency, GPT attention.

Exports two untrained checkpoints (speed does not depend on the weights) with their inspect graphs
into ``--out``, then times, each as the median of ``--repeat`` calls after a warm-up, on the CPU:

- ``inspect`` of one 28x28 image through a LeNet-5 bundle (every stage's activation);
- ``saliency`` of that image with the default patch and stride (a batch of occluded copies);
- ``inspect`` of a 256-character prompt through a char GPT of the quick preset's size
  (4 layers, 4 heads, 128 wide) with a 256-position context: attention [4, 1, 4, 256, 256].

    python benchmarks/inside.py --out /tmp/inside-bench --threads 2 --append benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

GPT_CONFIG = {"vocab_size": 65, "block_size": 256, "n_embd": 128, "n_head": 4, "n_layer": 4, "dropout": 0.0}
PROMPT_CHARS = 256


def median_ms(call: Callable[[], Any], repeat: int) -> float:
    call()  # warm-up: the first run of a session allocates its buffers
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def export(name: str, config: dict[str, Any], out: Path) -> Path:
    from zoo_export import export_checkpoint
    from zoo_export.synthetic import write_checkpoint

    checkpoint = write_checkpoint(name, out / name / "checkpoints" / "best.pt", config=config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # export warnings are recorded in the manifest
        result = export_checkpoint(checkpoint)
    if not result.passed or result.bundle is None:
        raise SystemExit(f"export of {name} failed: {result.status}: {result.error}")
    return result.bundle


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder for the two exported bundles")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    p.add_argument("--repeat", type=int, default=30, help="timed calls per figure (median)")
    p.add_argument("--append", type=Path, default=None, help="append the results as a section to this markdown file")
    p.add_argument("--date", default=_dt.date.today().isoformat(), help="date written in the section heading")
    args = p.parse_args(argv)

    import zoo_runtime
    from zoo_runtime import ImageClassifier, TextGenerator

    lenet = zoo_runtime.load(export("lenet5", {}, args.out), device="cpu", threads=args.threads)
    gpt = zoo_runtime.load(export("char-gpt", GPT_CONFIG, args.out), device="cpu", threads=args.threads)
    assert isinstance(lenet, ImageClassifier) and isinstance(gpt, TextGenerator)
    image = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    prompt = "".join(gpt.vocab[i % len(gpt.vocab)] for i in range(PROMPT_CHARS))
    windows = len(range(0, 28 - 4 + 1, 2)) ** 2  # the default 4x4 patch by 2: 13 x 13 occluded copies
    rows = [
        ("lenet5: feature maps of one 28x28 image (`inspect`)", median_ms(lambda: lenet.inspect(image), args.repeat), 50),
        (
            f"lenet5: occlusion saliency of one image (`saliency`, {windows} occluded copies)",
            median_ms(lambda: lenet.saliency(image, 0), args.repeat),
            300,
        ),
        (
            f"char GPT (4 layers, 4 heads, 256 positions): attention over a {PROMPT_CHARS}-character prompt",
            median_ms(lambda: gpt.inspect(prompt), args.repeat),
            None,
        ),
    ]
    load = os.getloadavg()[0]
    lines = [
        f"## Looking inside: feature maps, saliency, attention ({args.date})",
        "",
        f"- Machine: {os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}); onnxruntime "
        f"CPUExecutionProvider, {args.threads} thread(s); load average (1 min) {load:.1f}.",
        f"- Command: `python benchmarks/inside.py --out OUT --threads {args.threads} --repeat {args.repeat}`; "
        "untrained checkpoints of the default LeNet-5 and of a char GPT with a 256-position context, exported with "
        "their inspect graphs. Median of the timed calls after a warm-up.",
        "",
        "| what | median | aim (issue 27) |",
        "|---|---|---|",
        *[f"| {what} | {ms:.2f} ms | {f'under {aim} ms' if aim else '-'} |" for what, ms, aim in rows],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.append:
        with args.append.open("a", encoding="utf-8") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
