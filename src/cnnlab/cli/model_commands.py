"""``cnnlab summary`` and ``cnnlab models``: pure Python, no torch import."""

from __future__ import annotations

import argparse
import sys

from cnnlab.net.presets import PRESETS, default_input
from cnnlab.net.resolve import summarize
from cnnlab.presenters.kinds_table import format_kinds
from cnnlab.presenters.summary_table import format_summary, format_summary_json


def parse_shape(text: str) -> tuple[int, ...]:
    """'32x32x3' -> (32, 32, 3); also accepts commas and a flat 'D'."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        shape = tuple(int(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxWxC (e.g. 32x32x3), got '{text}'") from None
    if len(shape) not in (1, 3) or min(shape) <= 0:
        raise argparse.ArgumentTypeError(f"expected HxWxC with positive sizes, got '{text}'")
    return shape


def register(commands: argparse._SubParsersAction) -> None:
    summary = commands.add_parser(
        "summary", help="layer-by-layer output shapes, parameters and MACs of a network")
    summary.add_argument("spec", metavar="SPEC", help="a preset name (see 'cnnlab models') or a spec file")
    summary.add_argument("--input", type=parse_shape, metavar="HxWxC", help="input shape")
    summary.add_argument("--classes", type=int, metavar="N", help="units of the last dense layer")
    summary.add_argument("--json", action="store_true", help="print one JSON object")
    summary.set_defaults(handler=run_summary)
    models = commands.add_parser("models", help="list the built-in networks and the layer kinds")
    models.set_defaults(handler=run_models)


def run_summary(args: argparse.Namespace) -> int:
    info = summarize(args.spec, args.input, args.classes)
    for warning in info.warnings:
        print(f"cnnlab: warning: {warning}", file=sys.stderr)
    print(format_summary_json(info) if args.json else format_summary(info), end="")
    return 0


def run_models(args: argparse.Namespace) -> int:
    width = max(map(len, PRESETS))
    for name, entry in PRESETS.items():
        shape = default_input(name)
        print(f"{name.ljust(width)}  input {'x'.join(map(str, shape))}  {entry['description']}")
    print("\nlayer kinds (kind, Keras class, fields with defaults):")
    print(format_kinds(), end="")
    return 0

