"""What a run folder holds, and what a new run may do with it: start, continue, replace or refuse.

The folder's layout is ``zoo_runtime.rundir``'s. The policy is here, in one place: zoo-train never trains
over a run it was not asked to replace (the trainer checks that a resumed checkpoint matches the run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo_runtime.rundir import RunDir
from zoo_train.data.paths import file_in_the_way


def checked_run_dir(out: Path, run_name: str) -> RunDir:
    """``out/run_name``, refused (ValueError) before any work where it could not hold a run or would leave ``out``."""
    if run_name in (".", "..") or Path(run_name).name != run_name:
        raise ValueError(f"run name {run_name!r}: must be a plain folder name (no '/', '.' or '..'), as it goes under {out}")
    blocking = file_in_the_way(out)
    if blocking is not None:
        raise ValueError(f"{blocking}: exists and is not a folder, so {out} cannot hold the runs; give another --out")
    return RunDir(out / run_name)


def headline_figure(summary: dict[str, Any]) -> tuple[str, Any]:
    """A summary's headline (metric name, value): the task's final-report metric, else the best validation value."""
    metric = summary.get("metric") or summary.get("primary_metric") or ""
    return metric, summary.get(metric, summary.get("best_val"))


def headline_text(summary: dict[str, Any]) -> str:
    """The headline as zoo-train says it, e.g. "test_accuracy 0.9425"; empty where the summary has no figure."""
    metric, value = headline_figure(summary)
    return f"{metric} {value:.4f}" if isinstance(value, (int, float)) else ""


def existing_run(run: RunDir) -> str | None:
    """What a fresh run in ``run`` would destroy, in words, or None where it holds no run."""
    if run.summary.is_file():
        summary = run.read_summary()
        if summary is None:
            return "holds a finished run"
        figure = f", {headline}" if (headline := headline_text(summary)) else ""
        epochs = summary.get("epochs_run")
        return (
            f"holds a finished {summary.get('preset')} run of {summary.get('model')} "
            f"({epochs} epoch{'' if epochs == 1 else 's'}{figure})"
        )
    if run.last_checkpoint.is_file():
        return f"holds an unfinished run ({run.last_checkpoint.relative_to(run.path)})"
    return None  # at most a run stopped before its first epoch: nothing to lose


def resume_plan(run: RunDir, preset: str) -> str:
    """What ``--all --resume`` does with one model's run folder: "done", "resume" or "start".

    A run is done when its summary (written after the last epoch) is of this preset and no
    checkpoint was written after it (or the checkpoints were deleted since); an interrupted run
    has only the checkpoint.
    """
    last = run.last_checkpoint
    if run.summary.exists():
        finished_preset = (run.read_summary() or {}).get("preset")
        if finished_preset == preset and (not last.exists() or run.summary.stat().st_mtime >= last.stat().st_mtime):
            return "done"
    return "resume" if last.exists() else "start"


def run_to_replace(run: RunDir, resume: bool, overwrite: bool) -> bool:
    """Whether a fresh run replaces one in ``run``; refuses (ValueError) to train over a run unasked."""
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: continue the run or replace it")
    replaced = None if resume else existing_run(run)
    if replaced is not None and not overwrite:
        raise ValueError(
            f"{run.path}: {replaced}; --resume continues it, --overwrite replaces it, --run-name NAME trains beside it"
        )
    return replaced is not None
