"""Tables of what was trained and exported, built from the runs' own metrics files (never typed by hand).

python -m zoo_train.report --runs models_out                      print the table
python -m zoo_train.report --runs models_out --readme README.md   refresh the README's table: each model's demo
                                      figure and demo target beside its full recipe's from docs/QUALITY.md
python -m zoo_train.report --runs runs_full models_out --quality docs/QUALITY.md
                                      full runs where made, the demo's quick runs elsewhere
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from zoo_runtime import schema
from zoo_runtime.rundir import CURVES_FILE, SAMPLES_TEXT_FILE, RunDir
from zoo_train.data.paths import output_file_problem
from zoo_train.registry import BY_THOROUGHNESS, ModelEntry, get_entry, list_models
from zoo_train.run_folder import headline_figure

README_START = "<!-- zoo-table:start -->"
README_END = "<!-- zoo-table:end -->"
# Tables a task writes beside its runs, comparing them; shown before the task's first model.
SIDE_BY_SIDE = {schema.TASK_SEQUENCE_CLASSIFICATION: "sequence-classification.md"}
# The hand-written tail of docs/QUALITY.md (experiments, with the commands that rerun them): kept as it is written.
EXPERIMENTS_HEADING = "# Experiments"
# Secondary figures worth a line in docs/QUALITY.md when a run reports them.
DETAIL_KEYS = (
    "test_loss",
    "macro_f1",
    "majority_class_accuracy",
    "class_imbalance",
    "val_bpc",
    "val_perplexity",
    "markov_order",
    "uniform_bpc",
    "chance_accuracy",
    "order_blind_ceiling",
    "baseline_name",
    "baseline_val_accuracy_by_k",
    "reads_per_second",
    "baseline_reads_per_second",
    "seconds_per_epoch",
    "test_token_accuracy",
    "fid_features",
    "fid_untrained",
    "fid_real_train",
    "fd_pixels",
    "fd_pixels_untrained",
    "sample_class_counts",
)
ARTEFACTS = (CURVES_FILE, "confusion_matrix.png", "predictions.png", "samples.png", SAMPLES_TEXT_FILE)


def load_runs(roots: Sequence[Path]) -> list[dict[str, Any]]:
    """One record per registered model that has a summary.json under one of ``roots``, in registry order.

    When several roots hold a model, the run of the most thorough preset wins (full > speedrun > quick > smoke),
    so a table can combine full runs where they were made with the quick runs of ``make demo``.
    """
    records = []
    for name in list_models():
        found = []
        for root in roots:
            run = RunDir(root / name)
            summary = run.read_summary()
            if summary is not None:
                preset = summary.get("preset")
                found.append((BY_THOROUGHNESS.index(preset) if preset in BY_THOROUGHNESS else -1, run, summary))
        if not found:
            continue
        _, run, summary = max(found, key=lambda item: item[0])
        manifest = json.loads(run.manifest.read_text()) if run.manifest.exists() else None
        records.append({"name": name, "dir": run.path, "summary": summary, "manifest": manifest})
    return records


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    return "—" if value is None else str(value)


def headline(summary: dict[str, Any]) -> tuple[str, str, str, str]:
    """(metric name, value, baseline name, baseline value) as the task's final report named them."""
    metric, value = headline_figure(summary)
    base_name = summary.get("baseline_metric") or ""
    return metric, _fmt(value), base_name, _fmt(summary.get(base_name)) if base_name else "—"


def device_label(summary: dict[str, Any]) -> str:
    """ "NVIDIA H100 80GB HBM3" for CUDA runs, "CPU (x86_64)" for CPU runs; ", bf16" for a CPU run in bf16."""
    device, name = str(summary.get("device", "?")), summary.get("device_name")
    if device.startswith("cuda"):
        return name or device
    label = f"{device.upper()} ({name})" if name else device.upper()
    # bf16 is the default on CUDA and the exception on a CPU, so only the exception is named.
    return f"{label}, bf16" if summary.get("precision") == "bf16" else label


def bundle_status(manifest: dict[str, Any] | None) -> str:
    if manifest is None:
        return "not exported"
    return "parity passed" if manifest.get("parity", {}).get("passed") else "parity FAILED"


def target_status(name: str, summary: dict[str, Any], explain_preset: bool = False) -> str:
    """Each quality target for the run's preset with met / missed / unmeasured, e.g. "test_accuracy >= 0.9: missed".

    A quick run is judged by the model's demo targets, any other by its full recipe's targets.
    """
    verdicts = {True: "met", False: "missed", None: "not measured"}
    preset = str(summary.get("preset"))
    parts = [f"{t.describe()}: {verdicts[t.met(summary)]}" for t in get_entry(name).targets_for(preset)]
    if explain_preset and preset != "full":
        why = "the demo's targets" if preset == "quick" else "the targets are for full"
        parts.append(f"({preset} preset; {why})")
    return "; ".join(parts) or "—"


def targets_met(name: str, summary: dict[str, Any]) -> str:
    """ "met", "missed" (any target missed), "not measured" or "—" (no targets) for the run's preset."""
    verdicts = [t.met(summary) for t in get_entry(name).targets_for(str(summary.get("preset")))]
    if not verdicts:
        return "—"
    if False in verdicts:
        return "missed"
    return "not measured" if None in verdicts else "met"


def full_recipe_rows(quality: Path) -> dict[str, dict[str, str]]:
    """Each model's row of docs/QUALITY.md's overview (its full run where one was made), as column -> cell."""
    if not quality.is_file():
        return {}
    text = quality.read_text()
    header = next((line for line in text.splitlines() if line.startswith("| model |")), None)
    if header is None:
        return {}
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    rows = {}
    for name, (row, _) in previous_entries(text).items():
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        rows[name] = dict(zip(columns, cells, strict=False))
    return rows


def full_recipe_cells(record: dict[str, Any], full_rows: dict[str, dict[str, str]]) -> tuple[str, str]:
    """(figure, target) of the model's full recipe, when docs/QUALITY.md has a full run on the same data and metric."""
    row = full_rows.get(record["name"], {})
    summary = record["summary"]
    metric, _, _, _ = headline(summary)
    same_data = row.get("data") == summary.get("data", "").split(" (")[0]
    if "full" not in row.get("device", "") or not same_data or row.get("metric") != metric:
        return "no full run yet", "—"
    return row.get("value", "—"), row.get("target", "—")


def leading_cells(record: dict[str, Any]) -> tuple[str, str | None, Any]:
    """The cells from model to value that both tables open a row with, and the headline's baseline name and value."""
    s = record["summary"]
    metric, value, base_name, base_value = headline(s)
    data = s.get("data", "").split(" (")[0]
    return (
        f"| {record['name']} | {s.get('task')} | {data} | {s.get('parameters', 0):,} | {metric} | {value} | ",
        base_name,
        base_value,
    )


def trailing_cells(record: dict[str, Any]) -> str:
    """The cells both tables close a row with: training seconds, device and preset, the bundle's parity."""
    s = record["summary"]
    return (
        f"{s.get('train_seconds', 0):.0f} | {device_label(s)} ({preset_label(get_entry(record['name']), s)}) | "
        f"{bundle_status(record['manifest'])} |"
    )


def markdown_table(records: list[dict[str, Any]]) -> str:
    rows = [
        "| model | task | data | params | metric | value | baseline | baseline value | target | train s | device | bundle |",
        "|---|---|---|---:|---|---:|---|---:|---|---:|---|---|",
    ]
    for record in records:
        lead, base_name, base_value = leading_cells(record)
        status = target_status(record["name"], record["summary"])
        rows.append(f"{lead}{base_name or '—'} | {base_value} | {status} | {trailing_cells(record)}")
    return "\n".join(rows)


def readme_table(records: list[dict[str, Any]], full_rows: dict[str, dict[str, str]]) -> str:
    """The README's table: per model the run's figure against its preset's targets, beside the full recipe's."""
    rows = [
        "| model | task | data | params | metric | demo | demo target | full recipe | full target | baseline | train s "
        "| device | bundle |",
        "|---|---|---|---:|---|---:|---|---:|---|---|---:|---|---|",
    ]
    for record in records:
        lead, base_name, base_value = leading_cells(record)
        full_value, full_target = full_recipe_cells(record, full_rows)
        baseline = f"{base_name} {base_value}" if base_name else "—"
        status = target_status(record["name"], record["summary"])
        rows.append(f"{lead}{status} | {full_value} | {full_target} | {baseline} | {trailing_cells(record)}")
    return "\n".join(rows)


def text_table(records: list[dict[str, Any]]) -> str:
    header = ("model", "task", "params", "metric", "value", "baseline", "target", "train s", "bundle")
    rows = [header]
    for record in records:
        s = record["summary"]
        metric, value, base_name, base_value = headline(s)
        rows.append(
            (
                record["name"],
                s.get("task", ""),
                f"{s.get('parameters', 0):,}",
                metric,
                value,
                f"{base_name} {base_value}" if base_name else "—",
                targets_met(record["name"], s),
                f"{s.get('train_seconds', 0):.0f}",
                bundle_status(record["manifest"]),
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) for row in rows)


class ReportError(Exception):
    """A --readme or --quality target the report cannot write to; the message names it."""


def readme_text(readme: Path) -> str:
    """The README's text, checked to have the markers the table goes between."""
    if not readme.is_file():
        raise ReportError(f"{readme}: no such file to put the table in")
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise ReportError(f"{readme}: no {README_START} ... {README_END} markers to put the table between")
    return text


def update_readme(readme: Path, text: str, table: str) -> None:
    """Put ``table`` between the markers of ``readme``, whose checked content is ``text`` (see readme_text)."""
    before, rest = text.split(README_START, 1)
    _, after = rest.split(README_END, 1)
    readme.write_text(f"{before}{README_START}\n{table}\n{README_END}{after}")


def preset_label(entry: ModelEntry, summary: dict[str, Any]) -> str:
    """ "full, 40 epochs", or "full, 4 of 25 epochs" for a run shorter than its recipe that did not stop early."""
    preset, run = str(summary.get("preset")), summary.get("epochs_run") or 0
    if preset in entry.recipes and not summary.get("stopped_early") and run < entry.recipe(preset).epochs:
        return f"{preset}, {run} of {entry.recipe(preset).epochs} epochs"
    return f"{preset}, {run} epoch{'' if run == 1 else 's'}"


def split_experiments(text: str) -> tuple[str, str]:
    """An earlier docs/QUALITY.md as (its generated part, its hand-written experiments from EXPERIMENTS_HEADING on)."""
    before, heading, after = text.partition(f"\n{EXPERIMENTS_HEADING}\n")
    return (before, f"{EXPERIMENTS_HEADING}\n{after}".rstrip() + "\n") if heading else (text, "")


def previous_entries(text: str) -> dict[str, tuple[str, str]]:
    """Each model's table row and section in an earlier docs/QUALITY.md, keyed by model name.

    A section runs from the side-by-side table before its heading (if any) to the next model's.
    Headings inside ```text excerpts (generated samples have them) are not sections.
    """
    names = set(list_models())
    # The first table is the overview; side-by-side tables further down have rows named by model too.
    overview = text.split("\n| ", 1)[-1].split("\n\n", 1)[0].splitlines()
    rows = {line.split(" | ", 1)[0][2:]: line for line in ["| " + overview[0], *overview[1:]]}
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None  # the section being read; None before the first and in side tables
    side_table: list[str] = []
    in_excerpt = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_excerpt = not in_excerpt
        elif not in_excerpt and line.startswith("### ") and current is not None:
            current, side_table = None, []
        elif not in_excerpt and line.startswith("## ") and line[3:] in names:
            current = sections[line[3:]] = side_table
            side_table = []
        if current is not None:
            current.append(line)
        elif side_table or line.startswith("### "):
            side_table.append(line)
    return {name: (rows[name], "\n".join(lines).rstrip()) for name, lines in sections.items() if name in rows}


def trained_model(entry: ModelEntry, run_dir: Path) -> str:
    """How the trained model differs from the registry's description, which names the config's defaults.

    Recipes enlarge their models (char-gpt's full recipe has 6 layers of 256, not 4 of 128), the data
    sets sizes such as the vocabulary, and `zoo-train --set` changes any field, so the configuration
    the run built (run.json) is compared with the defaults rather than the recipe's overrides alone.
    """
    run_record = RunDir(run_dir).run_record
    if not run_record.is_file():
        return "configuration not recorded (no run.json)"
    built = json.loads(run_record.read_text()).get("config") or {}
    # JSON round-trip so that a tuple default equals the list the run recorded.
    defaults = json.loads(json.dumps(asdict(entry.config_cls())))
    changed = {key: value for key, value in built.items() if defaults.get(key) != value}
    if not changed:
        return "the defaults above"
    return "the defaults above with " + ", ".join(f"{key} {value}" for key, value in changed.items())


def rerun_command(entry: ModelEntry, run_dir: Path, summary: dict[str, Any]) -> str:
    """The zoo-train command that trains the run again (its preset and seed; the registry's data and recipe)."""
    run_record = RunDir(run_dir).run_record
    seed = json.loads(run_record.read_text()).get("seed", 0) if run_record.is_file() else 0
    return f"zoo-train {entry.name} --preset {summary.get('preset')} --seed {seed}"


def write_quality(records: list[dict[str, Any]], out: Path) -> list[str]:
    """docs/QUALITY.md: per model its data, split, metric vs target, baseline, time, device, and pictures.

    Runs are not committed and each machine trains only some models, so a model with no run under
    --runs keeps its row and section (and pictures) from the existing file. Returns the names kept.
    """
    assets = out.parent / "quality"
    assets.mkdir(parents=True, exist_ok=True)
    fresh = {record["name"] for record in records}
    earlier, experiments = split_experiments(out.read_text() if out.exists() else "")
    kept = {name: entry for name, entry in (previous_entries(earlier) if earlier else {}).items() if name not in fresh}
    order = [name for name in list_models() if name in fresh or name in kept]
    overview = markdown_table(records).splitlines()
    rows = dict(zip([record["name"] for record in records], overview[2:], strict=False))
    header = [
        "# Quality of the zoo",
        "",
        "Generated by `python -m zoo_train.report --quality` from each run's `summary.json`; figures are on "
        "held-out data (validation or test split as stated), never on training data. Each model's run is "
        "its most thorough one found (a model with no run at hand keeps its entry from the last report); "
        "a full run is judged by the `full` recipe's targets, a quick run (`make demo`) by the demo's. "
        "`make full` trains every model's full recipe (`zoo-train --all --preset full --resume --out runs_full`) "
        "and `make quality` writes this file; each model's section gives the command of its run.",
        "",
        *overview[:2],
        *(rows[name] if name in rows else kept[name][0] for name in order),
        "",
    ]
    sections: dict[str, list[str]] = {name: [kept[name][1], ""] for name in kept}
    shown_tables: set[Path] = set()
    for record in records:
        lines = sections[record["name"]] = []
        s = record["summary"]
        entry = get_entry(record["name"])
        metric, value, base_name, base_value = headline(s)
        # Side-by-side tables that a task writes beside its runs (e.g. LSTM vs GRU classifiers), once per folder.
        table = record["dir"].parent / SIDE_BY_SIDE.get(entry.task, "")
        if entry.task in SIDE_BY_SIDE and table.is_file() and table not in shown_tables:
            shown_tables.add(table)
            lines += [table.read_text().replace("\n# ", "\n### ").replace("# ", "### ", 1).rstrip(), ""]
        lines += [
            f"## {record['name']}",
            "",
            f"*{entry.description}*",
            "",
            f"- data: {s.get('data')}",
            f"- split: {s.get('split', 'see data line')}",
            f"- {metric}: **{value}**" + (f" (baseline {base_name}: {base_value})" if base_name else ""),
            f"- target: {target_status(record['name'], s, explain_preset=True)}",
            f"- preset {preset_label(entry, s)}, {s.get('steps')} steps, "
            f"{s.get('train_seconds', 0):.0f} s of training on {device_label(s)}"
            f" (world size {s.get('world_size', 1)})",
            f"- parameters: {s.get('parameters', 0):,}",
            f"- model: {trained_model(entry, record['dir'])}",
            f"- command: `{rerun_command(entry, record['dir'], s)}`",
        ]
        lines += [f"- {key}: {_fmt(s[key])}" for key in DETAIL_KEYS if key in s] + [""]
        for name in ARTEFACTS:
            source = record["dir"] / name
            if not source.exists():
                continue
            target = assets / f"{record['name']}-{name}"
            shutil.copyfile(source, target)
            if name.endswith(".png"):
                lines += [f"![{record['name']} {name}](quality/{target.name})", ""]
            else:
                excerpt = source.read_text(errors="replace")[:1200]
                lines += ["```text", excerpt.rstrip(), "```", ""]
    document = header + [line for name in order for line in sections[name]] + ([experiments] if experiments else [])
    # Data paths under the home folder name this machine; the reader's is elsewhere.
    out.write_text("\n".join(document).replace(str(Path.home()), "~"))
    return sorted(kept, key=order.index)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m zoo_train.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs",
        type=Path,
        nargs="+",
        default=[Path("models_out")],
        help="output roots of zoo-train; a model found in several is taken from its most thorough "
        "preset (full > quick > smoke) (default: %(default)s)",
    )
    parser.add_argument(
        "--readme",
        type=Path,
        help="rewrite the table between the zoo-table markers of this file: each run against its preset's targets, "
        "beside its full recipe's figure read from --full-figures",
    )
    parser.add_argument(
        "--full-figures",
        type=Path,
        default=Path("docs/QUALITY.md"),
        help="with --readme: the quality report whose full runs give the full-recipe columns (default: %(default)s)",
    )
    parser.add_argument("--quality", type=Path, help="write a quality report (markdown + pictures beside it)")
    args = parser.parse_args(argv)
    records = load_runs(args.runs)
    if not records:
        print(
            f"{', '.join(map(str, args.runs))}: no trained runs (no */summary.json); run `zoo-train --all` first", file=sys.stderr
        )
        return 2
    try:
        readme = readme_text(args.readme) if args.readme else None
        quality_problem = args.quality and output_file_problem(args.quality, "--quality", "markdown file (e.g. docs/QUALITY.md)")
        if quality_problem:
            raise ReportError(quality_problem)
    except ReportError as exc:
        print(f"zoo_train.report: error: {exc}", file=sys.stderr)
        return 2
    print(text_table(records))
    if args.readme and readme is not None:
        update_readme(args.readme, readme, readme_table(records, full_recipe_rows(args.full_figures)))
    if args.quality:
        kept = write_quality(records, args.quality)
        print(f"wrote {args.quality}" + (f" (kept from it, no run at hand: {', '.join(kept)})" if kept else ""))
    bundles = [r for r in records if r["manifest"]]
    roots = " ".join(map(str, args.runs))
    print(f"\n{len(records)} models trained under {roots}, {len(bundles)} exported as bundles (<root>/<model>/export/).")
    print(f"Open them in the app:  .venv/bin/zoo-gui {roots}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
