"""``cnnlab compare``: the experiment in one command."""

from __future__ import annotations

import argparse
import sys

from cnnlab.cli.data_commands import add_dataset_options
from cnnlab.cli.train_commands import (
    add_train_options,
    close_callback,
    config_from_args,
    dataset_options,
    make_callback,
)


def register(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser("compare", help="train and compare networks; writes a report")
    compare.add_argument("specs", metavar="SPEC", nargs="*", default=["mlp", "cnn"],
                         help="presets or spec files (default: mlp cnn)")
    add_dataset_options(compare, default="cifar10")
    add_train_options(compare)
    compare.add_argument("--seeds", type=int, default=1, help="seeds per model (default 1)")
    compare.add_argument("--name", help="comparison folder name (default: from the specs and dataset)")
    compare.set_defaults(handler=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    """``cnnlab compare``: trains (or reuses) every run, prints the table, writes the report."""
    from cnnlab.experiment.comparison import compare
    from cnnlab.presenters.comparison import format_comparison
    from cnnlab.presenters.report import write_report

    specs = args.specs if len(args.specs) >= 2 else (args.specs or ["mlp", "cnn"])
    options = dataset_options(args)
    callback = make_callback(args)
    try:
        comparison = compare(specs, args.dataset, config_from_args(args), seeds=args.seeds, out=args.out,
                             name=args.name, dataset_options=options, callback=callback)
    finally:
        close_callback(callback)
    print(format_comparison(comparison))
    markdown, page = write_report(comparison, sys.argv)
    print(f"\nreport: {page}\n        {markdown}")
    return 0
