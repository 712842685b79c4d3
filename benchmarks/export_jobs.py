"""Wall time of ``zoo-export --all`` one checkpoint at a time against ``--jobs N`` worker processes, side by side.

Copies each run's ``checkpoints/best.pt``, ``summary.json`` and ``run.json`` under ``--runs`` (a ``make demo``'s
models_out) into a temporary folder, so the runs' own bundles are left alone, then exports them all with every
``--jobs`` value in turn (``--format all``, parity checked, as ``make demo`` does) and prints a markdown table with
the ratio to one job. Run it on otherwise idle cores.

    python benchmarks/export_jobs.py --runs models_out --jobs 1 2
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def copy_runs(runs: Path, into: Path) -> int:
    """The files an export reads of each run under ``runs``; returns how many runs."""
    from zoo_export.cli import find_runs
    from zoo_runtime.rundir import RunDir

    found = find_runs(runs)
    for run in found:
        source, target = RunDir(run), RunDir(into / run.name)
        target.best_checkpoint.parent.mkdir(parents=True)
        shutil.copy2(source.best_checkpoint, target.best_checkpoint)
        for read, copy in ((source.summary, target.summary), (source.run_record, target.run_record)):
            if read.is_file():
                shutil.copy2(read, copy)
    return len(found)


def timed_export(runs: Path, jobs: int) -> tuple[float, int]:
    """(seconds, exit code) of ``zoo-export --all --runs runs --jobs jobs`` after removing earlier bundles."""
    from zoo_export.cli import main as export_main

    for bundle in runs.glob("*/export*"):
        shutil.rmtree(bundle)
    started = time.perf_counter()
    code = export_main(["--all", "--runs", str(runs), "--format", "all", "--jobs", str(jobs), "--quiet"])
    return time.perf_counter() - started, code


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=Path("models_out"), help="run folders to export (default: %(default)s)")
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="--jobs values to compare (default: 1 2)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="export-jobs-") as tmp:
        count = copy_runs(args.runs, Path(tmp))
        if not count:
            print(f"export_jobs: error: {args.runs}: no runs with checkpoints/best.pt (run make demo first)", file=sys.stderr)
            return 2
        seconds = {}
        for jobs in args.jobs:
            seconds[jobs], code = timed_export(Path(tmp), jobs)
            if code != 0:
                print(f"export_jobs: zoo-export --jobs {jobs} exited {code}", file=sys.stderr)
                return 1
    base = seconds[args.jobs[0]]
    print(f"\n{count} runs of {args.runs}, --format all with parity checks\n")
    print("| --jobs | seconds | speed-up |\n|---:|---:|---:|")
    for jobs, value in seconds.items():
        print(f"| {jobs} | {value:.1f} | {base / value:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
