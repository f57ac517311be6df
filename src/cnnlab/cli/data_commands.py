"""``cnnlab data info`` and ``cnnlab data show``, and the dataset options every command shares."""

from __future__ import annotations

import argparse

from cnnlab.cli.common import DIRECTORY, FILE, UsageError, add_json_option, add_out_file_option, completes, print_json

DEFAULT_DATASET = "cifar10"
POSITIONAL = "dataset_positional"  # the deprecated ``cnnlab data info DATASET`` form


def add_dataset_options(parser: argparse.ArgumentParser, default: str = DEFAULT_DATASET,
                        deprecated_positional: bool = False) -> None:
    """The options every command that reads a dataset takes: ``--dataset`` and the loading options.

    ``deprecated_positional`` also accepts the dataset as a positional argument (the old
    form of ``data info``/``data show``); :func:`resolve_dataset` turns it into ``--dataset``.
    """
    if deprecated_positional:
        parser.add_argument(POSITIONAL, nargs="?", metavar="DATASET",
                            help="deprecated: use --dataset DATASET (still accepted, with a note)")
        parser.set_defaults(dataset_default=default)
    completes(parser.add_argument("--dataset", default=None if deprecated_positional else default,
                                  metavar="DATASET", help=f"cifar10, digits, or a path (default: {default})"), FILE)
    completes(parser.add_argument("--cache-dir", metavar="DIR", help="cache folder (default: $CNNLAB_CACHE "
                                  "or ~/.cache/cnnlab)"), DIRECTORY)
    parser.add_argument("--channels", type=int, choices=(1, 3), help="image folders: 1 or 3 (default 3)")
    parser.add_argument("--size", type=parse_size, metavar="HxW", help="image folders: resize to HxW")
    parser.add_argument("--skip-bad", action="store_true", help="image folders: skip unreadable files")
    parser.add_argument("--no-download", action="store_true", help="never download; use the cache only")


def resolve_dataset(args: argparse.Namespace) -> str | None:
    """Move a dataset given positionally (deprecated) to ``args.dataset``; returns the deprecation note.

    Both forms with different datasets is an error; neither is the default dataset.
    """
    if not hasattr(args, POSITIONAL):
        return None
    positional = getattr(args, POSITIONAL)
    if positional is not None and args.dataset is not None and positional != args.dataset:
        raise UsageError(f"two datasets given: '{positional}' and --dataset '{args.dataset}'; "
                         "give it once, as --dataset")
    args.dataset = args.dataset or positional or args.dataset_default
    if positional is None:
        return None
    return (f"the dataset as a positional argument is deprecated; use --dataset {positional} "
            "(as every other command takes it)")


def parse_size(text: str) -> tuple[int, int]:
    """'32x32' -> (32, 32): the ``--size`` option."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW (e.g. 32x32), got '{text}'") from None
    return height, width


def open_dataset(args: argparse.Namespace):
    """The dataset the options name, loaded."""
    from cnnlab.data import load_dataset

    return load_dataset(args.dataset, args.cache_dir, channels=args.channels, size=args.size,
                        skip_bad=args.skip_bad, allow_download=not args.no_download)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``cnnlab data info`` and ``cnnlab data show`` to the command line."""
    data = commands.add_parser("data", help="look at a dataset").add_subparsers(
        dest="data_command", metavar="SUBCOMMAND", required=True)
    info = data.add_parser("info", help="source, hash status, sizes, classes, images per class")
    add_dataset_options(info, deprecated_positional=True)
    add_json_option(info)
    info.set_defaults(handler=run_info)
    show = data.add_parser("show", help="save a grid of random labelled images")
    add_dataset_options(show, deprecated_positional=True)
    show.add_argument("--split", choices=("train", "test"), default="train",
                      help="the part to draw from (default train)")
    show.add_argument("--n", type=int, default=10, help="number of images, 1 to 100 (default 10)")
    show.add_argument("--seed", type=int, default=0, help="which random images (default 0)")
    add_out_file_option(show, "the image to write (.png, .pdf, .svg, .jpg, ...); -o and --output also work",
                        required=True)
    show.set_defaults(handler=run_show)


def format_info(info: dict) -> str:
    """``cnnlab data info`` as text."""
    source = info["source"]
    lines = [f"dataset: {info['name']}", f"source: {source.get('source')}",
             f"location: {source.get('location')}",
             f"sha256: {source.get('sha256')} ({source.get('verified')})",
             f"image shape: {'x'.join(map(str, info['image_shape']))}",
             f"train: {info['train']['count']:,}   test: {info['test']['count']:,}   "
             f"classes: {len(info['classes'])}"]
    width = max(len("class"), *map(len, info["classes"]))
    lines.append(f"  {'class'.ljust(width)}  {'train':>7}  {'test':>7}")
    for name in info["classes"]:
        lines.append(f"  {name.ljust(width)}  {info['train']['per_class'][name]:>7,}  "
                     f"{info['test']['per_class'][name]:>7,}")
    lines += [f"note: {note}" for note in info["notes"]]
    return "\n".join(lines)


def run_info(args: argparse.Namespace) -> int:
    """``cnnlab data info``: what the dataset is, as text or JSON."""
    info = open_dataset(args).info()
    if args.json:
        print_json(info)
    else:
        print(format_info(info))
    return 0


def run_show(args: argparse.Namespace) -> int:
    """``cnnlab data show``: a grid of random labelled images, saved to ``--out``."""
    from cnnlab.presenters.plots import check_sample_options, figure_format, sample_grid, save_figure

    check_sample_options(args.n, args.seed)  # before loading: a typo should not cost a CIFAR-10 load
    figure_format(args.out)
    dataset = open_dataset(args)
    images, labels = dataset.split(args.split)
    fig = sample_grid(images, labels, dataset.class_names, args.n, args.seed,
                      title=f"{dataset.name} ({args.split}): {min(args.n, len(images))} random images")
    print(f"saved {save_figure(fig, args.out)}")
    return 0
