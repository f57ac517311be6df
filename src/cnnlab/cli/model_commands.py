"""``cnnlab summary`` and ``cnnlab models``: pure Python, no torch import."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from cnnlab.cli.common import FILE, add_json_option, completes, print_json
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
    """Add ``cnnlab summary`` and ``cnnlab models`` to the command line."""
    summary = commands.add_parser(
        "summary", help="layer-by-layer output shapes, parameters and MACs of a network")
    completes(summary.add_argument("spec", metavar="SPEC", help="a preset name (see 'cnnlab models') or a spec file"),
              FILE)
    summary.add_argument("--input", type=parse_shape, metavar="HxWxC", help="input shape")
    summary.add_argument("--classes", type=int, metavar="N", help="units of the last dense layer")
    add_json_option(summary)
    summary.set_defaults(handler=run_summary)
    models = commands.add_parser("models", help="list the built-in networks and the layer kinds")
    add_json_option(models)
    models.set_defaults(handler=run_models)


def run_summary(args: argparse.Namespace) -> int:
    """``cnnlab summary``: the network's table (or JSON), warnings on stderr."""
    info = summarize(args.spec, args.input, args.classes)
    for warning in info.warnings:
        print(f"cnnlab: warning: {warning}", file=sys.stderr)
    print(format_summary_json(info) if args.json else format_summary(info), end="")
    return 0


@dataclass
class PresetEntry:
    """A built-in network: its name, the input it is summarised with, what it is."""

    name: str
    input: list[int]
    description: str


@dataclass
class KindEntry:
    """A layer kind: its spec name, Keras class, fields with defaults (None: required), inputs it takes."""

    kind: str
    keras_class: str
    fields: dict[str, object]
    min_inputs: int
    max_inputs: int | None
    doc: str


def catalogue() -> dict[str, list]:
    """What ``cnnlab models --json`` prints: the presets and the layer kinds."""
    from cnnlab.net.registry import all_kinds

    presets = [PresetEntry(name, list(default_input(name)), entry["description"]) for name, entry in PRESETS.items()]
    kinds = [KindEntry(kind.name, kind.keras_class,
                       {name: None if field.required else _plain(field.default) for name, field in kind.fields.items()},
                       kind.min_inputs, kind.max_inputs, kind.doc) for kind in all_kinds().values()]
    return {"presets": presets, "kinds": kinds}


def _plain(value):
    """A field's default as JSON types (tuples become lists)."""
    return list(value) if isinstance(value, tuple) else value


def run_models(args: argparse.Namespace) -> int:
    """``cnnlab models``: the presets and the layer kinds, as text or JSON."""
    if args.json:
        print_json(catalogue())
        return 0
    width = max(map(len, PRESETS))
    for name, entry in PRESETS.items():
        shape = default_input(name)
        print(f"{name.ljust(width)}  input {'x'.join(map(str, shape))}  {entry['description']}")
    print("\nlayer kinds (kind, Keras class, fields with defaults):")
    print(format_kinds(), end="")
    return 0
