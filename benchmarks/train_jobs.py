"""Wall time of ``zoo-train --all`` one model at a time against ``--jobs N`` models at once, side by side.

Trains the models of ``--task`` (every model without it) with the ``--preset`` recipe once per ``--jobs`` value,
each time into a fresh temporary folder, and prints a markdown table: seconds, the ratio to the first value, and
each run's headline figures (models trained on fewer threads may differ in the last digits: float sums are taken in
another order). Run it on otherwise idle cores; the quick recipes need the data of ``zoo-data fetch``.

    python benchmarks/train_jobs.py --task text-generation --jobs 1 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed_training(out: Path, jobs: int, task: str | None, preset: str) -> tuple[float, int, dict[str, str]]:
    """(seconds, exit code, headline per model) of ``zoo-train --all --jobs jobs`` into ``out``."""
    from zoo_runtime.rundir import RunDir
    from zoo_train.cli import main as train_main
    from zoo_train.run_folder import headline_text

    argv = ["--all", "--preset", preset, "--out", str(out), "--jobs", str(jobs), "--quiet"]
    started = time.perf_counter()
    code = train_main(argv + (["--task", task] if task else []))
    seconds = time.perf_counter() - started
    headlines = {run.name: headline_text(RunDir(run).read_summary() or {}) for run in sorted(out.iterdir())}
    return seconds, code, headlines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", help="only the models of this task kind (default: every model, as make demo trains)")
    p.add_argument("--preset", default="quick", help="recipe to train (default: %(default)s)")
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="--jobs values to compare (default: 1 2)")
    args = p.parse_args(argv)
    results = {}
    for jobs in args.jobs:
        with tempfile.TemporaryDirectory(prefix="train-jobs-") as tmp:
            seconds, code, headlines = timed_training(Path(tmp), jobs, args.task, args.preset)
        if code != 0:
            print(f"train_jobs: zoo-train --jobs {jobs} exited {code}", file=sys.stderr)
            return 1
        results[jobs] = (seconds, headlines)
    base = results[args.jobs[0]][0]
    print(f"\nzoo-train --all --preset {args.preset}" + (f" --task {args.task}" if args.task else "") + "\n")
    print("| --jobs | seconds | speed-up | figures |\n|---:|---:|---:|---|")
    for jobs, (seconds, headlines) in results.items():
        figures = "; ".join(f"{name} {text}" for name, text in headlines.items())
        print(f"| {jobs} | {seconds:.1f} | {base / seconds:.2f}x | {figures} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
