"""Exported graphs vs torch eager on CPU, for every model of the zoo, as ratios in one run.

For each model: latency of each exported graph in onnxruntime (CPU) and of the same wrapper
module in torch eager, at batch 1 and 32; for text generators, tokens per second of a greedy
generation with the step graph (state / key-value cache) against recomputing the full graph
each token, in onnxruntime and in torch; for seq2seq, greedy decoding tokens per second.

Models come from ``--runs`` (trained checkpoints, ``<run>/checkpoints/best.pt``) where there
are some, else from the registry at the ``quick`` preset's size with untrained weights (latency
does not depend on the weights' values). Runs of torch and onnxruntime alternate so that load
from other processes falls on both alike; both get the same thread count.

    python benchmarks/export_inference.py [--runs models_out] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zoo_export import export_checkpoint, load_for_export
from zoo_export.graphs import GraphSpec
from zoo_export.synthetic import write_checkpoint
from zoo_export.tasks.base import BundleContext, get_exporter
from zoo_runtime import schema
from zoo_runtime.contract import task_kind
from zoo_runtime.generation import LoopSettings, full_graph_step, greedy_decode, greedy_tokens
from zoo_runtime.rundir import RunDir
from zoo_train.models.char_lstm import RecurrentLM
from zoo_train.models.gpt import GPT
from zoo_train.models.seq2seq import Seq2SeqTransformer
from zoo_train.registry import config_fields, get_entry, list_models
from zoo_train.tasks.base import get_task
from zoo_train.tasks.text_generation import numpy_step

BATCHES = (1, 32)
REAL_VOCAB = {"shakespeare": 65}  # characters of the Shakespeare corpus (the text models' default data)


def quick_checkpoint(name: str, folder: Path) -> Path:
    """An untrained checkpoint at the quick preset's size and the default dataset's shapes."""
    entry = get_entry(name)
    fields = config_fields(entry)
    data = dict(task_kind(entry.task).example_sizes)
    data.update(get_task(entry.task).nominal_model_config(entry.default_dataset))
    if entry.default_dataset in REAL_VOCAB:
        data.update({k: REAL_VOCAB[entry.default_dataset] for k in ("vocab_size", "input_size", "output_size")})
    config = {k: v for k, v in data.items() if k in fields}
    config.update(entry.recipe("quick").model_overrides)
    return write_checkpoint(name, RunDir(folder / name).best_checkpoint, config=config, preset="quick")


def timed(fns: list[Callable[[], Any]], min_seconds: float = 0.4, max_reps: int = 200) -> list[float]:
    """Median ms of each function; calls alternate between them."""
    for fn in fns:
        fn()
        fn()
    times: list[list[float]] = [[] for _ in fns]
    start = time.perf_counter()
    while len(times[0]) < max_reps and (len(times[0]) < 5 or time.perf_counter() - start < min_seconds * len(fns)):
        for fn, acc in zip(fns, times, strict=True):
            t = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t)
    return [statistics.median(acc) * 1000 for acc in times]


def inputs_for(spec: GraphSpec, batch: int, dims: dict[str, int], vocab: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    out = []
    for t in spec.inputs:
        shape = [batch if d == "batch" else dims.get(d, 1) if isinstance(d, str) else d for d in t.shape]
        if t.dtype == "int64":
            out.append(torch.randint(0, vocab, shape, generator=gen))
        elif t.name == "image":
            out.append(torch.rand(shape, generator=gen))
        else:
            out.append(torch.randn(shape, generator=gen))
    return tuple(out)


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def forward_no_grad(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
    with torch.no_grad():
        module(*inputs)


def bench_model(name: str, checkpoint: Path, workdir: Path, threads: int, tokens: int) -> dict[str, Any]:
    loaded = load_for_export(checkpoint)
    bundle = workdir / f"{name}-bundle"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = export_checkpoint(checkpoint, bundle, formats=("onnx",), check=False, loaded=loaded)
    manifest = result.manifest
    if not result.passed or manifest is None:
        return {"model": name, "error": result.error}
    ctx = BundleContext(loaded.model, loaded.payload, checkpoint)
    specs = {s.role: s for s in get_exporter(loaded.payload["task"]).graphs(ctx)}
    vocab = manifest.get("vocab") or {}
    vocab_size = len(vocab[schema.VOCAB_TOKENS]) if vocab.get(schema.VOCAB_TOKENS) else vocab.get("size", 2)
    gen_block = manifest.get("generation") or {}
    max_context = gen_block.get("max_context") or gen_block.get("max_source")
    length = min(64, max_context) if max_context else 64
    dims = {"time": length, "new": 1, "past": min(32, (max_context or 64) - 1), "src_time": length, "tgt_time": length}
    g = torch.Generator().manual_seed(0)
    rows = []
    for role, spec in specs.items():
        sess = session(bundle / manifest["graphs"][role]["file"], threads)
        names = [t.name for t in spec.inputs]
        for batch in BATCHES:
            x = inputs_for(spec, batch, dims, vocab_size, g)
            feeds = {n: v.numpy() for n, v in zip(names, x, strict=True)}
            torch_ms, ort_ms = timed([partial(forward_no_grad, spec.module.eval(), x), partial(sess.run, None, feeds)])
            rows.append(
                {
                    "graph": role,
                    "batch": batch,
                    "dims": {k: v for k, v in dims.items() if any(k in t.shape for t in spec.inputs)},
                    "torch_ms": torch_ms,
                    "ort_ms": ort_ms,
                    "speedup": torch_ms / ort_ms,
                }
            )
    out: dict[str, Any] = {
        "model": name,
        "task": manifest["task"],
        "parameters": manifest["training"]["parameters"],
        "latency": rows,
    }
    model = loaded.model
    if manifest["task"] == schema.TASK_TEXT_GENERATION:
        assert isinstance(model, (RecurrentLM, GPT)), type(model)
        out["generation"] = bench_generation(model, bundle, manifest, threads, tokens, vocab_size)
    if manifest["task"] == schema.TASK_SEQ2SEQ:
        assert isinstance(model, Seq2SeqTransformer), type(model)
        out["generation"] = bench_decoding(model, bundle, manifest, threads, vocab_size)
    return out


def bench_generation(
    model: RecurrentLM | GPT, bundle: Path, manifest: dict[str, Any], threads: int, tokens: int, vocab: int
) -> dict[str, Any]:
    gen = manifest["generation"]
    prompt = np.random.default_rng(0).integers(0, vocab, (1, 8)).astype(np.int64)
    state_names = [schema.INPUT_TOKENS] + [s["input"] for s in gen["state"]]
    step_sess = session(bundle / schema.STEP_FILE, threads)

    torch_step, initial = numpy_step(model, torch.device("cpu"))

    def ort_step(feed: np.ndarray, state: list[np.ndarray]):
        out = step_sess.run(None, dict(zip(state_names, [feed, *state], strict=True)))
        return out[0], list(out[1:])

    def tps(fn: Callable[[], Any]) -> float:
        t = time.perf_counter()
        fn()
        return tokens / (time.perf_counter() - t)

    ctx = gen["max_context"]
    settings = LoopSettings.from_generation(gen)
    # The full graph recomputed each token over the same window, reset to a whole window as the
    # contract's default loop does (no reset_keep).
    full_settings = LoopSettings(max_context=ctx)
    result = {
        "new_tokens": tokens,
        "prompt": int(prompt.shape[1]),
        "batch": 1,
        "max_context": ctx,
        "reset_keep": gen.get("reset_keep"),
        "ort_step_tps": tps(lambda: greedy_tokens(ort_step, initial, settings, prompt, tokens)),
        "torch_step_tps": tps(lambda: greedy_tokens(torch_step, initial, settings, prompt, tokens)),
    }
    if ctx:
        # The same step graph with a half-window reset (a model's optional reset_keep, docs/BUNDLE.md).
        half = dataclasses.replace(settings, reset_keep=ctx // 2)
        result["ort_step_half_reset_tps"] = tps(lambda: greedy_tokens(ort_step, initial, half, prompt, tokens))
        result["torch_step_half_reset_tps"] = tps(lambda: greedy_tokens(torch_step, initial, half, prompt, tokens))
    if "model" in manifest["graphs"]:
        full_sess = session(bundle / schema.MODEL_FILE, threads)
        from zoo_export.tasks.text_generation import FullGraph

        full_module = FullGraph(model).eval()

        def torch_full(t: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return full_module(torch.from_numpy(t)).numpy()

        ort_full = full_graph_step(lambda t: full_sess.run(None, {schema.INPUT_TOKENS: t})[0])
        result["ort_full_tps"] = tps(lambda: greedy_tokens(*ort_full, full_settings, prompt, tokens))
        result["torch_full_tps"] = tps(lambda: greedy_tokens(*full_graph_step(torch_full), full_settings, prompt, tokens))
        result["ort_step_over_full"] = result["ort_step_tps"] / result["ort_full_tps"]
        result["torch_step_over_full"] = result["torch_step_tps"] / result["torch_full_tps"]
        if ctx:
            result["ort_half_reset_over_full"] = result["ort_step_half_reset_tps"] / result["ort_full_tps"]
            result["torch_half_reset_over_full"] = result["torch_step_half_reset_tps"] / result["torch_full_tps"]
    result["ort_over_torch_step"] = result["ort_step_tps"] / result["torch_step_tps"]
    return result


def bench_decoding(model: Seq2SeqTransformer, bundle: Path, manifest: dict[str, Any], threads: int, vocab: int) -> dict[str, Any]:
    gen = manifest["generation"]
    steps, bos = gen["max_new_tokens"], gen["bos"]
    src = np.random.default_rng(0).integers(3, vocab, (1, gen["max_source"] - 2)).astype(np.int64)
    files = manifest["graphs"]
    enc = session(bundle / files[schema.ROLE_ENCODER]["file"], threads)
    dec = session(bundle / files[schema.ROLE_DECODER]["file"], threads)

    def ort_decode() -> None:
        greedy_decode(
            lambda s: enc.run(None, {schema.INPUT_SRC: s})[0],
            lambda t, m, s: dec.run(None, {schema.INPUT_TGT: t, schema.INPUT_MEMORY: m, schema.INPUT_SRC: s})[0],
            src,
            bos,
            steps,
        )

    def torch_decode() -> None:
        with torch.no_grad():
            greedy_decode(
                lambda s: model.encode(torch.from_numpy(s)),
                lambda t, m, s: model.decode(torch.from_numpy(t), m, torch.from_numpy(s)).numpy(),
                src,
                bos,
                steps,
            )

    torch_ms, ort_ms = timed([torch_decode, ort_decode], min_seconds=0.5, max_reps=30)
    return {
        "new_tokens": steps,
        "batch": 1,
        "ort_tps": steps / ort_ms * 1000,
        "torch_tps": steps / torch_ms * 1000,
        "ort_over_torch": torch_ms / ort_ms,
    }


def figure(values: dict[str, float], key: str, template: str, missing: str) -> str:
    return template.format(values[key]) if key in values else missing


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| model | graph | torch b1 ms | ORT b1 ms | ORT speed-up b1 | torch b32 ms | ORT b32 ms | ORT speed-up b32 |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | error: {r['error']} | | | | | | |")
            continue
        by_graph: dict[str, dict[int, dict[str, Any]]] = {}
        for row in r["latency"]:
            by_graph.setdefault(row["graph"], {})[row["batch"]] = row
        for graph, rows in by_graph.items():
            b1, b32 = rows[1], rows[32]
            lines.append(
                f"| {r['model']} | {graph} | {b1['torch_ms']:.3f} | {b1['ort_ms']:.3f} | {b1['speedup']:.2f}x "
                f"| {b32['torch_ms']:.2f} | {b32['ort_ms']:.2f} | {b32['speedup']:.2f}x |"
            )
    lines += [
        "",
        "| model | ORT step tok/s | ORT full-recompute tok/s | step / full (ORT) | torch step tok/s "
        "| torch full tok/s | step / full (torch) | ORT / torch (step) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        g = r.get("generation")
        if not g or "ort_step_tps" not in g:
            continue
        full = partial(figure, g, template="{:.0f}", missing="n/a")
        ratio = partial(figure, g, template="{:.2f}x", missing="n/a (no full graph)")
        lines.append(
            f"| {r['model']} | {g['ort_step_tps']:.0f} | {full('ort_full_tps')} | {ratio('ort_step_over_full')} "
            f"| {g['torch_step_tps']:.0f} | {full('torch_full_tps')} | {ratio('torch_step_over_full')} "
            f"| {g['ort_over_torch_step']:.2f}x |"
        )
    for r in results:
        g = r.get("generation")
        if g and "ort_step_half_reset_tps" in g and "ort_full_tps" in g:
            lines.append(
                f"\n{r['model']} (max_context {g['max_context']}), step graph resetting to half the window: "
                f"ORT {g['ort_step_half_reset_tps']:.0f} tok/s = {g['ort_half_reset_over_full']:.2f}x full recompute; "
                f"torch {g['torch_step_half_reset_tps']:.0f} tok/s = {g['torch_half_reset_over_full']:.2f}x"
            )
    for r in results:
        g = r.get("generation")
        if g and "ort_tps" in g:
            lines.append(
                f"\nseq2seq greedy decoding ({r['model']}, {g['new_tokens']} tokens, decoder recomputed per token): "
                f"ORT {g['ort_tps']:.0f} tok/s, torch {g['torch_tps']:.0f} tok/s, ORT / torch {g['ort_over_torch']:.2f}x"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--runs", type=Path, default=Path("models_out"), help="trained runs to use where present")
    p.add_argument("--models", default="", help="comma-separated registry names (default: all)")
    p.add_argument("--threads", type=int, default=1, help="threads for both torch and onnxruntime")
    p.add_argument("--tokens", type=int, default=200, help="new tokens per generation")
    p.add_argument("--json", type=Path, default=None, help="write the raw results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [n for n in args.models.split(",") if n] or list_models()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in names:
            run = RunDir(args.runs / name)
            trained = run.best_checkpoint
            checkpoint = trained if trained.is_file() else quick_checkpoint(name, work / "runs")
            print(
                f"{name}: {'trained run ' + str(run.path) if trained.is_file() else 'quick-size, untrained'}",
                file=sys.stderr,
                flush=True,
            )
            r = bench_model(name, checkpoint, work, args.threads, args.tokens)
            r["source"] = "trained" if trained.is_file() else "quick config, untrained weights"
            torch.set_num_threads(args.threads)  # export_checkpoint restores the caller's count; keep ours
            results.append(r)
    print(markdown(results))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"threads": args.threads, "torch": torch.__version__, "onnxruntime": ort.__version__, "results": results},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
