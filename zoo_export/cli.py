"""zoo-export: checkpoints -> bundles (ONNX + TorchScript) with parity proven, for humans and build pipelines.

Exit codes: 0 every model asked for was exported and passed; 1 a parity check (or an export)
failed, and that bundle was not published as whole; 2 bad usage or input (a missing, corrupt
or foreign checkpoint), in which case nothing is written at all.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import traceback
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_export.export import (
    DTYPES,
    ExportResult,
    LoadedCheckpoint,
    check_target,
    default_bundle_dir,
    export_checkpoint,
    load_for_export,
    versions,
)
from zoo_export.tasks.base import ExportInputError
from zoo_runtime import signing
from zoo_runtime.cli import HelpFormatter, positive_int
from zoo_runtime.errors import BundleError
from zoo_runtime.rundir import BEST_CHECKPOINT, CHECKPOINT_DIR
from zoo_train.data.paths import existing_folder, output_file_problem
from zoo_train.files import atomic_write_bytes
from zoo_train.jobs import worker_threads

CHECKPOINT = Path(CHECKPOINT_DIR, BEST_CHECKPOINT)  # in a run directory


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zoo-export",
        description="Export trained checkpoints to bundles (model.onnx, model.ts, step.onnx, manifest.json) and "
        "prove parity: torch vs TorchScript vs onnxruntime at several batch sizes and lengths.",
        epilog="Exit codes: 0 all exported and passed; 1 a parity check failed (bundle left as <out>.failed/); "
        "2 bad usage or input (nothing written).",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "inputs",
        nargs="*",
        metavar="CHECKPOINT_OR_RUN_DIR",
        help="a checkpoint file, or a run directory (its checkpoints/best.pt is exported)",
    )
    p.add_argument("--all", action="store_true", help="export every run under --runs that has checkpoints/best.pt")
    p.add_argument("--runs", type=Path, default=Path("models_out"), help="where --all looks for run directories")
    p.add_argument("--format", choices=("onnx", "torchscript", "all"), default="all", help="which files to write")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="bundle directory (one input) or parent of one bundle per run (several inputs); default: <run>/export",
    )
    p.add_argument("--opset", type=positive_int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument("--dtype", choices=DTYPES, default="fp32", help="fp16 graphs (float32 interface) for GPU use")
    p.add_argument(
        "--quantize",
        choices=("int8",),
        default=None,
        help="also write model.int8.onnx (static QDQ, classifiers; calibration from the training data)",
    )
    p.add_argument(
        "--data-dir",
        type=existing_folder,
        help="where to look first for the dataset that --quantize calibrates on and tests with",
    )
    p.add_argument(
        "--sign-key",
        type=Path,
        default=None,
        metavar="KEY.pem",
        help="sign each bundle with this EC private key (OpenSSF Model Signing: writes model.sig over every file; "
        "needs model-zoo[signing])",
    )
    p.add_argument("--no-check", action="store_true", help="skip parity checks (the report says so)")
    p.add_argument("--report", type=Path, default=None, help="write the full JSON report here")
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="export this many checkpoints at once, each in its own process (the cores are shared among them)",
    )
    p.add_argument("--quiet", action="store_true", help="print only the table")
    return p


def find_runs(root: Path) -> list[Path]:
    """Run directories under ``root`` (at any depth) holding checkpoints/best.pt, sorted."""
    if not root.is_dir():
        return []
    return sorted(
        p.parent.parent for p in root.rglob(str(CHECKPOINT)) if p.is_file() and ".tmp-" not in str(p) and "export" not in p.parts
    )


def resolve_input(arg: str) -> Path:
    path = Path(arg)
    if path.is_dir():
        ckpt = path / CHECKPOINT
        if not ckpt.is_file():
            raise ExportInputError(f"{path}: a run directory needs {CHECKPOINT}; none found")
        return ckpt
    if not path.exists():
        raise ExportInputError(f"{path}: no such checkpoint file or run directory")
    return path


def run_name(checkpoint: Path) -> str:
    return checkpoint.parent.parent.name if checkpoint.parent.name == CHECKPOINT_DIR else checkpoint.stem


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.all == bool(args.inputs):
        parser.print_usage(sys.stderr)
        print("zoo-export: error: give checkpoints/run directories or --all (not both, not neither)", file=sys.stderr)
        return 2
    formats = ("onnx", "torchscript") if args.format == "all" else (args.format,)
    if args.quantize and "onnx" not in formats:
        print("zoo-export: error: --quantize int8 needs --format onnx or all", file=sys.stderr)
        return 2

    # Every input is read and validated before anything is written: a bad one changes nothing on disk.
    try:
        if args.all:
            runs = find_runs(args.runs)
            if not runs:
                raise ExportInputError(f"{args.runs}: no run directories with {CHECKPOINT}")
            checkpoints = [r / CHECKPOINT for r in runs]
        else:
            checkpoints = [resolve_input(a) for a in args.inputs]
        loaded = [load_for_export(c) for c in checkpoints]
    except ExportInputError as exc:
        print(f"zoo-export: error: {exc}", file=sys.stderr)
        return 2

    targets = _targets(loaded, args.out)
    try:
        for item, target in zip(loaded, targets, strict=False):
            check_target(target if target is not None else default_bundle_dir(item.path))
        # Before minutes of exporting, not after them.
        if args.sign_key is not None:
            try:
                signing.check_private_key(args.sign_key)
            except BundleError as exc:
                raise ExportInputError(str(exc)) from None
        report_problem = args.report and output_file_problem(args.report, "--report", "JSON file")
        if report_problem:
            raise ExportInputError(report_problem)
    except ExportInputError as exc:
        print(f"zoo-export: error: {exc}", file=sys.stderr)
        return 2
    options = ExportOptions(
        formats=formats,
        opset=args.opset,
        check=not args.no_check,
        dtype=args.dtype,
        quantize=args.quantize,
        data_dir=args.data_dir,
        sign_key=args.sign_key,
        quiet=args.quiet,
    )
    jobs = min(args.jobs, len(loaded))
    try:
        results = export_in_parallel(loaded, targets, options, jobs) if jobs > 1 else export_one_by_one(loaded, targets, options)
    except ExportStopped as stopped:
        print(f"\nzoo-export: {stopped}", file=sys.stderr)
        return 130

    print(table(results))
    for r in results:
        if r.error:
            print(f"{r.model}: {r.status}: {r.error}", file=sys.stderr)
    code = max((r.exit_code for r in results), default=0)
    if args.report:
        write_report(args.report, results, code, argv=list(argv) if argv is not None else sys.argv[1:])
    return code


@dataclass(frozen=True)
class CheckpointToExport:
    """A validated input: its checkpoint read already (``loaded``) in this process, or again by a worker (None)."""

    checkpoint: Path
    model: str
    task: str
    loaded: LoadedCheckpoint | None = None

    @classmethod
    def of(cls, item: LoadedCheckpoint, keep: bool) -> CheckpointToExport:
        return cls(item.path, item.payload["model"], item.payload["task"], item if keep else None)

    def failed(self, status: str, error: str, trace: str | None = None) -> ExportResult:
        return ExportResult(
            checkpoint=self.checkpoint, model=self.model, task=self.task, status=status, error=error, traceback=trace
        )


@dataclass(frozen=True)
class ExportOptions:
    """What every checkpoint of one zoo-export call is exported with."""

    formats: tuple[str, ...]
    opset: int | None
    check: bool
    dtype: str
    quantize: str | None
    data_dir: Path | None
    sign_key: Path | None
    quiet: bool


def export_one(item: CheckpointToExport, target: Path | None, options: ExportOptions) -> ExportResult:
    """One checkpoint's export; a failure becomes its result (the others go on), an interrupt propagates."""
    if not options.quiet:
        print(f"exporting {item.model} from {item.checkpoint} ...", file=sys.stderr, flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # export warnings are collected, with what they mean, into the report
        try:
            return export_checkpoint(
                item.checkpoint,
                target,
                formats=options.formats,
                opset=options.opset,
                check=options.check,
                dtype=options.dtype,
                quantize=options.quantize,
                data_dir=options.data_dir,
                loaded=item.loaded,
                sign_key=options.sign_key,
            )
        except ExportInputError as exc:
            return item.failed("input-error", str(exc))
        except Exception as exc:
            return item.failed("export-failed", f"{type(exc).__name__}: {exc}", traceback.format_exc())


class ExportStopped(Exception):
    """Ctrl-C during an export: what was stopped. Each writer discards its half-built bundle, so an earlier bundle
    at the same target is untouched."""


def export_one_by_one(loaded: list[LoadedCheckpoint], targets: list[Path | None], options: ExportOptions) -> list[ExportResult]:
    results: list[ExportResult] = []
    for item, target in zip(loaded, targets, strict=True):
        try:
            results.append(export_one(CheckpointToExport.of(item, keep=True), target, options))
        except KeyboardInterrupt:
            before = f" ({len(results)} exported before it)" if results else ""
            raise ExportStopped(f"stopped while exporting {item.path}; nothing of it was written{before}") from None
    return results


def export_in_parallel(
    loaded: list[LoadedCheckpoint], targets: list[Path | None], options: ExportOptions, jobs: int
) -> list[ExportResult]:
    """Each checkpoint in one of ``jobs`` worker processes (spawned: torch's thread pools do not survive a fork),
    the cores shared among them; results in the order of the inputs."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=worker_threads, initargs=(jobs,)) as pool:
        items = [CheckpointToExport.of(item, keep=False) for item in loaded]
        futures = [pool.submit(export_one, item, target, options) for item, target in zip(items, targets, strict=True)]
        try:
            return [result_of(future, item) for future, item in zip(futures, items, strict=True)]
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)
            done = sum(f.done() and not f.cancelled() and f.exception() is None for f in futures)
            raise ExportStopped(f"stopped; the exports under way were not written ({done} finished before)") from None


def result_of(future: Future[ExportResult], item: CheckpointToExport) -> ExportResult:
    """A worker's result; a worker that died (killed, out of memory) is that checkpoint's failed export."""
    try:
        return future.result()
    except BrokenProcessPool:
        return item.failed(
            "export-failed", "its export process ended without a result (killed, or out of memory?); nothing of it was written"
        )


def _targets(loaded: list[LoadedCheckpoint], out: Path | None) -> list[Path | None]:
    if out is None:
        return [None] * len(loaded)
    if len(loaded) == 1:
        return [out]
    names = [run_name(item.path) for item in loaded]
    if len(set(names)) != len(names):
        names = [f"{n}-{i}" for i, n in enumerate(names)]
    return [out / n for n in names]


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1e}"


def table(results: list[ExportResult]) -> str:
    rows = [("model", "task", "graphs", "checks", "max |err|", "top-1", "greedy", "int8 Δacc", "status", "sec")]
    for r in results:
        parity = r.parity or {}
        checks = parity.get("checks", [])
        tensor = [c for c in checks if "backend" in c]
        gen = [c for c in checks if "check" in c]
        top1 = [c["top1_agree"] for c in tensor if "top1_agree" in c]
        graphs = ",".join(sorted((r.manifest or {}).get("graphs", {}))) or "-"
        quant = r.quantized or {}
        rows.append(
            (
                r.model or "?",
                r.task or "?",
                graphs,
                f"{sum(c['passed'] for c in checks)}/{len(checks)}" if checks else ("skipped" if parity.get("skipped") else "-"),
                _fmt(parity.get("max_abs_err")),
                ("all" if all(top1) else "NO") if top1 else "-",
                ("same" if all(c.get("identical") for c in gen) else "DIFF")
                + f" {max(c.get('total_tokens', c.get('tokens', 0)) for c in gen)}t"
                if gen
                else "-",
                f"{quant['accuracy_delta']:+.4f}" if "accuracy_delta" in quant else "-",
                r.status,
                f"{r.seconds:.1f}",
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=False)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    passed = sum(r.passed for r in results)
    lines.append(f"{passed}/{len(results)} exported and passed")
    return "\n".join(lines)


def write_report(path: Path, results: list[ExportResult], code: int, argv: list[str]) -> None:
    report: dict[str, Any] = {
        "passed": code == 0,
        "exit_code": code,
        "command": ["zoo-export", *argv],
        "versions": versions(None, "dynamo"),
        "models": [r.to_json() for r in results],
        "largest_errors": largest_errors(results),
    }
    text = json.dumps(report, indent=2, default=str) + "\n"
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def largest_errors(results: list[ExportResult]) -> dict[str, Any]:
    """Per task kind and backend, the largest parity error seen and where."""
    out: dict[str, Any] = {}
    for r in results:
        for c in (r.parity or {}).get("checks", []):
            if "max_abs_err" not in c:
                continue
            key = f"{r.task}/{c['backend']}"
            if key not in out or c["max_abs_err"] > out[key]["max_abs_err"]:
                out[key] = {"max_abs_err": c["max_abs_err"], "model": r.model, "graph": c["graph"], "shape": c["shape"]}
    return out


if __name__ == "__main__":
    raise SystemExit(main())
