"""zoo-train: train a model of the zoo (or all of them) and write checkpoints, logs and samples."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from zoo_runtime import schema
from zoo_runtime.cli import checked_number, non_negative_int, positive_float, positive_int
from zoo_runtime.rundir import RunDir
from zoo_train.data.image_folder import DEFAULT_IMAGE_SIZE
from zoo_train.data.paths import existing_folder
from zoo_train.jobs import Outcome, train_in_parallel, train_one
from zoo_train.model_config import count_parameters
from zoo_train.registry import OPTIONAL_PRESETS, PRESETS, get_entry, list_models
from zoo_train.run_folder import existing_run, headline_text, resume_plan
from zoo_train.tasks.base import get_task
from zoo_train.tasks.image_generation import FID_CLASSIFIER, fid_classifier_problem
from zoo_train.trainer import COMPILE_MODES, PRECISIONS, TrainConfig, launched_by_torchrun, requested_compile_mode
from zoo_train.transfer import FREEZE_CHOICES

EXAMPLES = """examples:
  zoo-train --list                                   what can be trained
  zoo-train lenet5 --data fashion-mnist              train LeNet-5 on Fashion-MNIST (quick preset)
  zoo-train char-gpt --preset full --device cuda     the full recipe on a GPU
  zoo-train --all --preset quick --jobs 2            every model, two at a time, as `make demo` does on 2 cores
  zoo-train lenet5 --resume                          continue from models_out/lenet5/checkpoints/last.pt
  zoo-train lenet5 --overwrite                       train again, replacing models_out/lenet5
  zoo-train --all --preset full --resume             pick an interrupted `make full` up where it stopped
  zoo-train simple-cnn --set dropout=0.3 --set 'widths=[16,32,64]'
  zoo-train simple-cnn --data photos/ --image-size 96    your own images: photos/CLASS/IMAGE (or photos/train|val|test/CLASS/...)
  zoo-train mobilenet-v3-small --data photos/ --image-size 224 --init-from torchvision --freeze backbone --no-augment
                                                     a head on torchvision's ImageNet features, computed once
"""

# An image side below 8 pixels leaves nothing for a convolution to see.
image_side = checked_number(int, lambda value: value >= 8, "an image side of at least 8 pixels")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zoo-train",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(prog, max_help_position=36),
    )
    p.add_argument("model", nargs="?", help="registry name of the model (see --list)")
    p.add_argument("--all", action="store_true", help="train every registered model (optionally only --task)")
    p.add_argument("--task", help="with --all/--list: only models of this task kind")
    p.add_argument("--list", action="store_true", help="list the models with task, default dataset, parameters and extra presets")
    p.add_argument(
        "--preset",
        choices=PRESETS + OPTIONAL_PRESETS,
        default="quick",
        help="recipe size: smoke (seconds), quick (minutes on a CPU), full (quality; for a GPU), speedrun "
        "(the shortest schedule known to reach the target; only some models, see --list) "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--data",
        help="dataset name or path (default: the model's own dataset); sequence models also take a .tsv file "
        "(label<TAB>sequence, or source<TAB>target for seq2seq) or, for classifiers, a folder of FASTA files one per class",
    )
    p.add_argument("--text", dest="data", metavar="PATH", help="a UTF-8 text file for the text models (same as --data PATH)")
    p.add_argument(
        "--truncate",
        action="store_true",
        help="--data FILE.tsv: cut sequences longer than the model takes (the data option max_length) instead of "
        "refusing the file",
    )
    p.add_argument(
        "--data-dir",
        type=existing_folder,
        help="where to look for datasets first (then $ZOO_DATA, ~/.cache/model-zoo, system copies)",
    )
    p.add_argument("--epochs", type=positive_int, help="override the recipe's epochs")
    p.add_argument("--batch-size", type=positive_int, help="override the recipe's global batch size")
    p.add_argument("--lr", type=positive_float, help="override the recipe's peak learning rate")
    p.add_argument("--max-steps", type=positive_int, help="stop after this many optimiser steps")
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument(
        "--out", type=Path, default=Path("models_out"), help="output root; the run goes to OUT/RUN_NAME (default: %(default)s)"
    )
    p.add_argument("--run-name", help="run directory name (default: the model name)")
    again = p.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue from the run's checkpoints/last.pt (a changed --epochs, --batch-size or --lr is "
        "reported and recomputes the learning-rate schedule from there, e.g. to train longer); "
        "with --all, also skip the models already trained with this preset and start those never started",
    )
    again.add_argument(
        "--overwrite",
        action="store_true",
        help="delete a run already in OUT/RUN_NAME and train from scratch (without this or --resume, "
        "zoo-train refuses to train over an existing run)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="training arithmetic: auto (bf16 autocast on CUDA; on a CPU with bf16 instructions (AMX or "
        "AVX512-BF16) bf16 for the image models whose convolutions it speeds up (all but those whose registry "
        "entry says no), fp32 for the others; fp32 on other CPUs), bf16 (also on a CPU: see benchmarks/RESULTS.md; "
        "slower than fp32 on CPUs without bf16 instructions) or fp32 (default: %(default)s)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model (falls back to eager if it cannot); summary.json gives the seconds "
        "spent compiling apart (compile_seconds)",
    )
    p.add_argument(
        "--compile-mode",
        choices=COMPILE_MODES,
        help="torch.compile's mode, implies --compile: reduce-overhead replays each step as a CUDA graph, which "
        "pays for small models on a GPU (see benchmarks/RESULTS.md); max-autotune also tunes kernels, compiling longer",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a model config field (VALUE parsed as JSON, else a string); repeatable",
    )
    p.add_argument(
        "--fid-classifier",
        metavar="PATH_OR_NAME",
        help="image generation: the trained classifier in whose features the FID is measured: a checkpoint, a run "
        f"folder, or a registry name meaning its run under --out (default: {FID_CLASSIFIER}, so OUT/{FID_CLASSIFIER}; "
        "without it the FID is reported as missing)",
    )
    p.add_argument(
        "--init-from",
        metavar="RUN_OR_FILE",
        help="start from these weights: a run folder, a zoo checkpoint, a PyTorch state dict (.pth, e.g. torchvision's), "
        "or 'torchvision' for torchvision's ImageNet weights of a torchvision architecture (downloaded once; see "
        "--list); every tensor whose name and shape match is loaded, an RGB stem is adapted to grey images, the rest "
        "(a head for other classes) starts fresh and is listed; images are normalised with the mean and std the "
        "weights were trained with (ImageNet's for torchvision's)",
    )
    p.add_argument(
        "--freeze",
        choices=FREEZE_CHOICES,
        help="backbone: train only the classifier head (the last Linear layer); use with --init-from. With "
        "--no-augment the backbone's features are computed once and the epochs train the head alone",
    )
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with or without augmentation of the training images (flips, shifts, erasing); default: the recipe's "
        "(the quick recipes train without it, the full ones with it)",
    )
    folder = p.add_argument_group(
        "your own images (--data FOLDER: one subfolder of images per class, optionally inside train/, val/, test/)"
    )
    folder.add_argument(
        "--image-size",
        type=image_side,
        metavar="N",
        help=f"train on N x N pixels: each image's centred square, resized (default: {DEFAULT_IMAGE_SIZE})",
    )
    folder.add_argument(
        "--color",
        choices=("auto", "rgb", "gray"),
        help="colour mode to train in; auto: gray only when every image file is gray (default: auto)",
    )
    folder.add_argument(
        "--memory-budget",
        type=positive_float,
        metavar="MB",
        help="decoded pixels up to this size stay in memory; a larger folder is decoded once into a cache on disk "
        "and streamed from it (default: a quarter of this machine's memory)",
    )
    folder.add_argument(
        "--decode-cache",
        type=Path,
        metavar="DIR",
        help="where streamed folders keep their decoded pixels, keyed by the files' paths, sizes and times "
        "(default: ~/.cache/model-zoo/decoded-images)",
    )
    folder.add_argument(
        "--workers",
        type=non_negative_int,
        metavar="N",
        help="processes that decode images and stream a cached folder (0: the main process; default: up to 4)",
    )
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        metavar="N",
        help="with --all: train N models at once, each in its own process on its share of the cores (small models "
        "use several cores poorly; make demo uses one per core); progress bars are off then (default: 1)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def folder_options(args: argparse.Namespace) -> dict[str, Any]:
    """The image-folder flags given, as the task's data_options."""
    given = {
        "image_size": args.image_size,
        "color": args.color,
        "memory_budget_mb": args.memory_budget,
        "cache_dir": args.decode_cache,
        "workers": args.workers,
    }
    return {key: value for key, value in given.items() if value is not None}


def parse_overrides(pairs: list[str], parser: argparse.ArgumentParser) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            parser.error(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        overrides[key] = tuple(value) if isinstance(value, list) else value
    return overrides


def print_model_list(task: str | None) -> None:
    rows = []
    for name in list_models(task):
        entry = get_entry(name)
        nominal = get_task(entry.task).nominal_model_config(entry.default_dataset)
        params = count_parameters(entry.build(**nominal))
        extra = ", ".join(p for p in OPTIONAL_PRESETS if p in entry.recipes) or "-"
        rows.append((name, entry.task, entry.default_dataset, f"{params:,}", extra, entry.description))
    header = ("model", "task", "default data", "params", "extra presets", "description")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[5])


def training_order(names: list[str]) -> list[str]:
    """``names`` in the order --all trains them: image classifiers first, since the GAN's FID is measured in a
    trained classifier's features, by default those of the simple-cnn run trained beside it (--fid-classifier)."""
    return sorted(names, key=lambda name: get_entry(name).task != schema.TASK_IMAGE_CLASSIFICATION)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        print_model_list(args.task)
        return 0
    if args.all == bool(args.model):
        parser.error("name one MODEL or give --all (see --list)")
    overrides = parse_overrides(args.set, parser)
    if args.model and args.model not in list_models():
        parser.error(f"unknown model {args.model!r}; known: {', '.join(list_models())}")
    if args.fid_classifier and (problem := fid_classifier_problem(args.fid_classifier)):
        parser.error(f"--fid-classifier {problem}")
    data_options = folder_options(args)
    if data_options and (args.all or get_entry(args.model).task != schema.TASK_IMAGE_CLASSIFICATION):
        parser.error("--image-size, --color, --memory-budget, --decode-cache and --workers are for one image classifier")
    if args.fid_classifier:
        data_options["fid_classifier"] = args.fid_classifier
    if args.truncate:
        data_options["truncate"] = True
    if args.all and (args.init_from or args.freeze):
        parser.error("--init-from and --freeze are for one MODEL, not --all")
    if args.jobs > 1 and not args.all:
        parser.error("--jobs is for --all (one model trains in one process; torchrun spreads one model over several)")
    if args.jobs > 1 and launched_by_torchrun():
        parser.error("--jobs under torchrun: each model already trains on every process; leave --jobs out")

    names = training_order(list_models(args.task)) if args.all else [args.model]
    if args.all and not names:
        parser.error(f"no models of task {args.task!r}")
    if args.preset in OPTIONAL_PRESETS:
        having = [name for name in list_models() if args.preset in get_entry(name).recipes]
        if not args.all and args.model not in having:
            parser.error(f"{args.model} has no {args.preset} recipe; models with one: {', '.join(having)}")
        names = [name for name in names if name in having]
        if not names:
            parser.error(f"no models of task {args.task!r} have a {args.preset} recipe; models with one: {', '.join(having)}")

    runs = {name: RunDir(Path(args.out) / (name if args.all else args.run_name or name)) for name in names}
    if not (args.resume or args.overwrite):
        # Checked for every model first: --all should not train half the zoo and then stop at a run it would destroy.
        in_the_way = [f"{run.path}: {what}" for run in runs.values() if (what := existing_run(run)) is not None]
        if in_the_way:
            print(
                "zoo-train: error: training would replace\n  "
                + "\n  ".join(in_the_way)
                + "\n--resume continues, --overwrite replaces, --out or --run-name trains elsewhere",
                file=sys.stderr,
            )
            return 2

    configs = []
    for name in names:
        resume = args.resume
        if args.all and args.resume:
            plan = resume_plan(runs[name], args.preset)
            if plan == "done":
                print(f"{name}: already trained ({runs[name].summary}), skipped")
                continue
            resume = plan == "resume"
        configs.append(
            TrainConfig(
                model=name,
                preset=args.preset,
                data=None if args.all else args.data,
                data_dir=args.data_dir,
                out=args.out,
                run_name=None if args.all else args.run_name,
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                max_steps=args.max_steps,
                device=args.device,
                seed=args.seed,
                resume=resume,
                overwrite=args.overwrite,
                precision=args.precision,
                compile=requested_compile_mode(args.compile, args.compile_mode),
                show_progress=not args.quiet and args.jobs == 1,  # bars of models side by side would overwrite each other
                model_overrides=overrides,
                data_options=data_options or None,
                init_from=args.init_from,
                freeze=args.freeze,
                augment=args.augment,
            )
        )
    if args.jobs > 1 and len(configs) > 1:
        outcomes = train_in_parallel(configs, args.jobs, print_outcome)
    else:
        outcomes = []
        for config in configs:
            outcomes.append(train_one(config))
            print_outcome(outcomes[-1])
            if outcomes[-1].stopped:
                break
    return finish(outcomes, runs, single=not args.all)


def print_outcome(outcome: Outcome) -> None:
    if outcome.run_dir is not None:
        headline = headline_text(RunDir(outcome.run_dir).read_summary() or {})
        print(f"{outcome.model}: {headline}  ({outcome.seconds:.0f} s) -> {outcome.run_dir}")
    elif outcome.error is not None:
        print(f"zoo-train: error: {outcome.error}", file=sys.stderr)


def finish(outcomes: list[Outcome], runs: dict[str, RunDir], single: bool) -> int:
    """The exit code, after saying which models were stopped (and how to go on) or did not train."""
    stopped = [outcome.model for outcome in outcomes if outcome.stopped]
    if stopped:
        for name in stopped:
            last = runs[name].last_checkpoint
            kept = (
                f"{last} holds the last finished epoch; add --resume to go on from it"
                if last.exists()
                else "no epoch had finished, so there is nothing to resume"
            )
            print(f"\nzoo-train: {name}: stopped; {kept}", file=sys.stderr)
        return 130
    if single:
        return outcomes[0].exit_code if outcomes else 0
    failures = [f"{outcome.model}: {outcome.error}" for outcome in outcomes if outcome.error is not None]
    if failures:
        print("zoo-train: some models did not train:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
