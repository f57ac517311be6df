"""``cnnlab data info`` and ``cnnlab data show``."""

from __future__ import annotations

import argparse
import json


def add_dataset_options(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """The options every command that reads a dataset takes."""
    if default is None:
        parser.add_argument("dataset", metavar="DATASET", help="cifar10, digits, or a path")
    else:
        parser.add_argument("--dataset", default=default, metavar="DATASET",
                            help=f"cifar10, digits, or a path (default: {default})")
    parser.add_argument("--cache-dir", metavar="DIR", help="cache folder (default: $CNNLAB_CACHE "
                        "or ~/.cache/cnnlab)")
    parser.add_argument("--channels", type=int, choices=(1, 3), help="image folders: 1 or 3 (default 3)")
    parser.add_argument("--size", type=parse_size, metavar="HxW", help="image folders: resize to HxW")
    parser.add_argument("--skip-bad", action="store_true", help="image folders: skip unreadable files")
    parser.add_argument("--no-download", action="store_true", help="never download; use the cache only")


def parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW (e.g. 32x32), got '{text}'") from None
    return height, width


def open_dataset(args: argparse.Namespace):
    from cnnlab.data import load_dataset

    return load_dataset(args.dataset, args.cache_dir, channels=args.channels, size=args.size,
                        skip_bad=args.skip_bad, allow_download=not args.no_download)


def register(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="look at a dataset").add_subparsers(
        dest="data_command", metavar="SUBCOMMAND", required=True)
    info = data.add_parser("info", help="source, hash status, sizes, classes, images per class")
    add_dataset_options(info)
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(handler=run_info)
    show = data.add_parser("show", help="save a grid of random labelled images")
    add_dataset_options(show)
    show.add_argument("--split", choices=("train", "test"), default="train")
    show.add_argument("--n", type=int, default=10, help="number of images, 1 to 100 (default 10)")
    show.add_argument("--seed", type=int, default=0)
    show.add_argument("-o", "--output", required=True, metavar="FILE.png",
                      help="the image to write (.png, .pdf, .svg, .jpg, ...)")
    show.set_defaults(handler=run_show)


def format_info(info: dict) -> str:
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
    info = open_dataset(args).info()
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def run_show(args: argparse.Namespace) -> int:
    from cnnlab.presenters.plots import check_sample_options, figure_format, sample_grid, save_figure

    check_sample_options(args.n, args.seed)  # before loading: a typo should not cost a CIFAR-10 load
    figure_format(args.output)
    dataset = open_dataset(args)
    images, labels = dataset.split(args.split)
    fig = sample_grid(images, labels, dataset.class_names, args.n, args.seed,
                      title=f"{dataset.name} ({args.split}): {min(args.n, len(images))} random images")
    print(f"saved {save_figure(fig, args.output)}")
    return 0
