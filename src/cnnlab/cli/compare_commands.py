"""``cnnlab compare``: the experiment in one command."""

from __future__ import annotations

import argparse
import sys

from cnnlab.cli.common import FILE, add_json_option, completes, print_json
from cnnlab.cli.data_commands import add_dataset_options
from cnnlab.cli.train_commands import (
    add_train_options,
    add_tta_option,
    close_callback,
    config_from_args,
    dataset_options,
    make_callback,
    recipe_overrides,
    start_threads,
)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``cnnlab compare`` to the command line."""
    compare = commands.add_parser("compare", help="train and compare networks; writes a report")
    completes(compare.add_argument("specs", metavar="SPEC", nargs="*", default=["mlp", "cnn"],
                                   help="presets or spec files (default: mlp cnn)"), FILE)
    add_dataset_options(compare, default="cifar10")
    add_train_options(compare)
    compare.add_argument("--seeds", type=int, default=1, help="seeds per model (default 1)")
    compare.add_argument("--name", help="comparison folder name (default: from the specs and dataset)")
    compare.add_argument("--executor", choices=("local", "dask"),
                         help="train the runs at once: local (a process pool here) or dask (a Dask cluster); "
                              "default: one after another in this process")
    compare.add_argument("--jobs", type=int, metavar="N",
                         help="runs at once (local pool processes, or LocalCluster workers; default: the runs, "
                              "at most the cores)")
    compare.add_argument("--scheduler", metavar="ADDRESS",
                         help="--executor dask: the scheduler to submit to, e.g. tcp://host:8786 "
                              "(default: a LocalCluster on this machine)")
    add_tta_option(compare, ", scored as well as without it, in a column beside test accuracy")
    add_json_option(compare)
    compare.set_defaults(handler=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    """``cnnlab compare``: trains (or reuses) every run, prints the table (or JSON), writes the report."""
    start_threads(args)  # first: before torch loads
    from cnnlab.experiment.comparison import compare
    from cnnlab.experiment.executor import ExecutorOptions
    from cnnlab.experiment.findings import contrast
    from cnnlab.presenters.comparison import format_comparison
    from cnnlab.report import write_report

    specs = args.specs if len(args.specs) >= 2 else (args.specs or ["mlp", "cnn"])
    options = dataset_options(args)
    executor = ExecutorOptions(args.executor or "sequential", args.jobs, args.threads, args.scheduler).validate()
    callback = make_callback(args)
    try:
        # --recipe: every model's; otherwise each model its own recipe, the options given on top
        config = config_from_args(args) if args.recipe else None
        comparison = compare(specs, args.dataset, config, seeds=args.seeds, out=args.out, name=args.name,
                             dataset_options=options, callback=callback, executor=executor,
                             options=None if args.recipe else recipe_overrides(args), tta=args.tta)
    finally:
        close_callback(callback)
    if comparison is None:  # another process of a torchrun job: rank 0 prints and writes the report
        return 0
    if not args.json:
        first, second = comparison.models[:2]  # the table's verdict: the second model against the first
        print(format_comparison(comparison, contrast(first, second)))  # before the report: shown even if it fails
    markdown, page = write_report(comparison, sys.argv)
    if args.json:
        print_json({**comparison.to_dict(), "report": {"html": page, "markdown": markdown}})
    else:
        print(f"\nreport: {page}\n        {markdown}")
    return 0
