"""zoo_runtime (onnxruntime, no torch) against torch eager on the same checkpoints.

For every complete bundle under ``--runs`` whose checkpoint is still beside it, two fresh
child processes (one per engine) each measure:

- cold start: interpreter start -> imports -> load -> first result (wall time of the child,
  and the in-process time from before the first import);
- steady latency of the task's call at batch 1 (median over ``--repeat`` calls after warm-up);
  for text generators, tokens per second of a ``--tokens``-token greedy generation;
- peak RSS (``ru_maxrss``) of that process, which only loads the model and runs its task
  (for classifiers: a process that only classifies).

    python benchmarks/runtime.py --runs models_out --threads 2 --append benchmarks/RESULTS.md

The runtime child asserts that torch was never imported.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()  # before any other import: the child's cold start begins here

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# ============================================================================ child side: one engine, one bundle


def _timeit(fn: Callable[[], Any], repeat: int, warmup_calls: int = 10, warmup_s: float = 1.0) -> float:
    # torch's first calls at a new shape are slow (oneDNN primitive creation): warm up well.
    start, calls = time.perf_counter(), 0
    while calls < warmup_calls or time.perf_counter() - start < warmup_s:
        fn()
        calls += 1
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _since_spawn() -> float:
    """Seconds since the parent started this process (interpreter start-up included)."""
    return time.time() - float(os.environ["ZOO_BENCH_SPAWNED_AT"])


def child_runtime(bundle: Path, threads: int, repeat: int, n_tokens: int) -> dict[str, Any]:
    import zoo_runtime
    from zoo_runtime.contract import example_request

    model = zoo_runtime.load(bundle, device="cpu", threads=threads)
    t_loaded = time.perf_counter()
    request = example_request(model.manifest)  # the task's one call at batch 1 (a generator: one greedy token)
    out: dict[str, Any] = {}
    call = partial(model.predict, request)
    call()
    out["first_result_s"] = time.perf_counter() - T_START
    out["from_spawn_s"] = _since_spawn()
    out["load_s"] = t_loaded - T_START
    if "pieces" in model.outputs:  # a generator: tokens per second of a longer greedy generation
        t = time.perf_counter()
        n = model.predict({**request, "max_new_tokens": n_tokens})["pieces"]
        out["tokens_per_s"] = n / (time.perf_counter() - t)
        out["latency_s"] = 1.0 / out["tokens_per_s"]
    else:
        out["latency_s"] = _timeit(call, repeat)
    out["torch_imported"] = any(m.split(".")[0] == "torch" for m in sys.modules)
    out["provider"] = model.provider
    return out


def child_torch(bundle: Path, threads: int, repeat: int, n_tokens: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    from zoo_runtime import schema
    from zoo_runtime.contract import example_request
    from zoo_train.checkpoint import build_from_checkpoint, load_checkpoint
    from zoo_train.tasks.base import get_task

    manifest = json.loads((bundle / schema.MANIFEST_FILE).read_text())
    ckpt = checkpoint_of(bundle, manifest)
    payload = load_checkpoint(ckpt)
    net = build_from_checkpoint(payload, ckpt)
    task = get_task(manifest["task"])  # imports that kind's trainer module only
    t_loaded = time.perf_counter()
    request = example_request(manifest)  # the runtime child's request: the same inputs
    call = task.reference_call(net, manifest, request)  # torch's counterpart of the runtime's predict
    with torch.inference_mode():
        first = call()
        out: dict[str, Any] = {
            "first_result_s": time.perf_counter() - T_START,
            "from_spawn_s": _since_spawn(),
            "load_s": t_loaded - T_START,
        }
        if "pieces" in first:  # a generator: tokens per second of a longer greedy generation
            t = time.perf_counter()
            n = task.reference_call(net, manifest, {**request, "max_new_tokens": n_tokens})()["pieces"]
            out["tokens_per_s"] = n / (time.perf_counter() - t)
            out["latency_s"] = 1.0 / out["tokens_per_s"]
        else:
            out["latency_s"] = _timeit(call, repeat)
    out["provider"] = "torch-eager-cpu"
    return out


def checkpoint_of(bundle: Path, manifest: dict[str, Any]) -> Path:
    from zoo_runtime.rundir import RunDir  # here, not at the top: a child's cold start is timed from its first import

    run = RunDir(bundle.parent)
    recorded = (manifest.get("checkpoint") or {}).get("path")
    for candidate in ([Path(recorded)] if recorded else []) + [run.best_checkpoint, run.last_checkpoint]:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{bundle}: no checkpoint beside the bundle")


# ============================================================================ parent side


def run_child(engine: str, bundle: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        engine,
        "--bundle",
        str(bundle),
        "--threads",
        str(args.threads),
        "--repeat",
        str(args.repeat),
        "--tokens",
        str(args.tokens),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": str(args.threads),
    }
    env["ZOO_BENCH_SPAWNED_AT"] = repr(time.time())
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} child on {bundle} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(bundle: Path, args: argparse.Namespace) -> dict[str, Any]:
    from zoo_runtime.schema import MANIFEST_FILE

    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    rows = {"bundle": str(bundle), "model": manifest["model"], "task": manifest["task"]}
    best: dict[str, dict[str, Any]] = {}
    for _ in range(args.cold_runs):  # cold figures: the best of a few fresh processes (page cache warm)
        for engine in ("runtime", "torch"):
            r = run_child(engine, bundle, args)
            if engine == "runtime" and r["torch_imported"]:
                raise RuntimeError(f"the runtime child imported torch for {bundle}")
            prev = best.get(engine)
            if prev is None or r["from_spawn_s"] < prev["from_spawn_s"]:
                best[engine] = r
    rows.update(best)
    return rows


def fmt_s(s: float) -> str:
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| model | task | cold start to first result, runtime / torch | of which imports + load "
        "| steady latency runtime / torch | tokens/s runtime / torch | peak RSS runtime / torch |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rt, th = r["runtime"], r["torch"]
        cold = f"{fmt_s(rt['from_spawn_s'])} / {fmt_s(th['from_spawn_s'])} ({th['from_spawn_s'] / rt['from_spawn_s']:.1f}x)"
        load = f"{fmt_s(rt['load_s'])} / {fmt_s(th['load_s'])}"
        if "tokens_per_s" in rt:
            lat = f"{fmt_s(rt['latency_s'])} / {fmt_s(th['latency_s'])} per token"
            tps = f"{rt['tokens_per_s']:.0f} / {th['tokens_per_s']:.0f} ({rt['tokens_per_s'] / th['tokens_per_s']:.1f}x)"
        else:
            lat = f"{fmt_s(rt['latency_s'])} / {fmt_s(th['latency_s'])} ({th['latency_s'] / rt['latency_s']:.1f}x)"
            tps = "-"
        rss = f"{rt['rss_mb']:.0f} / {th['rss_mb']:.0f} MiB ({th['rss_mb'] / rt['rss_mb']:.1f}x)"
        lines.append(f"| {r['model']} | {r['task']} | {cold} | {load} | {lat} | {tps} | {rss} |")
    return "\n".join(lines)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument(
        "--runs", type=Path, default=ROOT / "models_out", help="folder with <run>/export bundles and their checkpoints"
    )
    p.add_argument("--models", nargs="*", default=None, help="only these registry names")
    p.add_argument("--threads", type=int, default=2, help="threads for both engines")
    p.add_argument("--repeat", type=int, default=50, help="timed calls for steady latency (median)")
    p.add_argument("--tokens", type=int, default=200, help="tokens generated for tokens/s")
    p.add_argument("--cold-runs", type=int, default=3, help="fresh processes per engine; the fastest counts")
    p.add_argument("--append", type=Path, default=None, help="append the results as a section to this markdown file")
    p.add_argument("--json", type=Path, default=None, help="also write raw results here")
    p.add_argument("--date", default=_dt.date.today().isoformat(), help="date written in the section heading")
    p.add_argument("--note", default="", help="a sentence for the section (where the bundles came from)")
    p.add_argument("--child", choices=("runtime", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--bundle", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        fn = child_runtime if args.child == "runtime" else child_torch
        out = fn(args.bundle, args.threads, args.repeat, args.tokens)
        out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        return 0

    sys.path.insert(0, str(ROOT))
    from zoo_runtime import find_bundles
    from zoo_runtime.schema import MANIFEST_FILE

    bundles = []
    for b in find_bundles(args.runs):
        manifest = json.loads((b / MANIFEST_FILE).read_text())
        if args.models and manifest["model"] not in args.models:
            continue
        try:
            checkpoint_of(b, manifest)
        except FileNotFoundError as exc:
            print(f"skip: {exc}", file=sys.stderr)
            continue
        bundles.append(b)
    if not bundles:
        print(f"no bundles with checkpoints under {args.runs} (run `make demo` first)", file=sys.stderr)
        return 2
    load_before = os.getloadavg()[0]
    results = []
    for b in bundles:
        print(f"measuring {b} ...", file=sys.stderr, flush=True)
        results.append(measure(b, args))
    text = table(results)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.append:
        import shlex

        cmd = shlex.join(["python", "benchmarks/runtime.py", *(argv if argv is not None else sys.argv[1:])])
        section = (
            f"\n## zoo_runtime vs torch eager ({args.date})\n\n"
            f"- Machine: {os.cpu_count()}-core CPU ({cpu_name()}); {args.threads} thread(s) for both engines; "
            "onnxruntime CPUExecutionProvider vs torch eager (`inference_mode`), batch 1.\n"
            f"- Command: `{cmd}`\n"
            f"- Load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f} "
            "(a shared machine: both engines ran interleaved under the same load).\n"
            + (f"- Bundles: {args.note.strip()}\n" if args.note.strip() else "")
            + "- Cold start: a fresh process from its spawn (interpreter start-up included) through imports, load "
            f"(the runtime also verifies every sha256) and the first result; the best of {args.cold_runs} processes per "
            "engine (torch: import torch + zoo_train, load the checkpoint with weights_only, build the model). "
            f"Steady latency: median of {args.repeat} calls after warm-up (text "
            f"generators: per token of a {args.tokens}-token greedy generation). Peak RSS: `ru_maxrss` of that "
            "process, which only loads the model and runs its task (for classifiers: a process that only classifies).\n\n"
            + text
            + "\n"
        )
        with open(args.append, "a", encoding="utf-8") as f:
            f.write(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
