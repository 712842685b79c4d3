"""zoo-export: checkpoints -> bundles (ONNX + TorchScript) with parity proven, for humans and build pipelines.

Exit codes: 0 every model asked for was exported and passed; 1 a parity check (or an export)
failed, and that bundle was not published as whole; 2 bad usage or input (a missing, corrupt
or foreign checkpoint), in which case nothing is written at all.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
import warnings
from collections.abc import Sequence
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
    results: list[ExportResult] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # export warnings are collected, with what they mean, into the report
        for item, target in zip(loaded, targets, strict=False):
            if not args.quiet:
                print(f"exporting {item.payload['model']} from {item.path} ...", file=sys.stderr, flush=True)
            try:
                result = export_checkpoint(
                    item.path,
                    target,
                    formats=formats,
                    opset=args.opset,
                    check=not args.no_check,
                    dtype=args.dtype,
                    quantize=args.quantize,
                    data_dir=args.data_dir,
                    loaded=item,
                    sign_key=args.sign_key,
                )
            except KeyboardInterrupt:
                # The writer has discarded the half-built bundle: an earlier bundle at the target is untouched.
                print(
                    f"\nzoo-export: stopped while exporting {item.path}; nothing of it was written"
                    + (f" ({len(results)} exported before it)" if results else ""),
                    file=sys.stderr,
                )
                return 130
            except ExportInputError as exc:
                result = ExportResult(
                    checkpoint=item.path,
                    model=item.payload["model"],
                    task=item.payload["task"],
                    status="input-error",
                    error=str(exc),
                )
            except Exception as exc:
                result = ExportResult(
                    checkpoint=item.path,
                    model=item.payload["model"],
                    task=item.payload["task"],
                    status="export-failed",
                    error=f"{type(exc).__name__}: {exc}",
                    traceback=traceback.format_exc(),
                )
            results.append(result)

    print(table(results))
    for r in results:
        if r.error:
            print(f"{r.model}: {r.status}: {r.error}", file=sys.stderr)
    code = max((r.exit_code for r in results), default=0)
    if args.report:
        write_report(args.report, results, code, argv=list(argv) if argv is not None else sys.argv[1:])
    return code


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
