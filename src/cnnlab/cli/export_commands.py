"""``cnnlab export``: a run's (or a spec's) network as ONNX, Keras code or PyTorch code."""

from __future__ import annotations

import argparse

from cnnlab.cli.common import FILE, add_json_option, add_out_file_option, completes, print_json
from cnnlab.cli.model_commands import parse_shape

WHAT = {
    "onnx": "the network with its softmax: input 'images' float32 {input} in [0, 1] (uint8 pixels / 255, "
            "channels first), output 'probabilities'",
    "keras": "Keras functional-API code (Input, layers, Model)",
    "pytorch": "a standalone nn.Module (no cnnlab import) with load() and its safetensors weights",
}


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``cnnlab export`` to the command line."""
    export = commands.add_parser(
        "export", help="write a run's network as ONNX, Keras code or PyTorch code, verified",
        description="Export a trained run (or a spec, untrained) to ONNX, Keras or PyTorch. Every export is "
                    "checked before it is written: its predictions on random images against cnnlab's own.")
    completes(export.add_argument("source", metavar="RUN_OR_SPEC",
                                  help="a run directory (cnnlab train), preset or spec file"), FILE)
    export.add_argument("--to", required=True, metavar="onnx|keras|pytorch", help="the format")
    add_out_file_option(export, "the file to write (default: NAME.onnx, NAME_keras.py or NAME_torch.py here); "
                                "never an existing one; -o and --output also work")
    export.add_argument("--input", type=parse_shape, metavar="HxWxC", help="input shape of a spec without one")
    add_json_option(export)
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    """``cnnlab export``: writes the files, says what each is and how it was checked."""
    from cnnlab.export import check_format, export

    check_format(args.to)
    result = export(args.source, args.to, args.out, args.input)
    if args.json:
        print_json(result)
        return 0
    for path in result.files:
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    print(f"  {WHAT[args.to].format(**result.checks)}")
    print(_checked(result.checks))
    return 0


def _checked(checks: dict) -> str:
    """What made the file and what checked it: the runtime, how many images, the largest difference."""
    made = f"  exported with {checks['exporter']}, opset {checks['opset']}\n" if "exporter" in checks else ""
    if "skipped" in checks:
        return f"{made}  not verified: {checks['skipped']}"
    if "max_diff" not in checks:
        return f"{made}  verified with {checks['runtime']}: every layer's output shape and parameter count match"
    return (f"{made}  verified with {checks['runtime']} on {checks['samples']} random images: max |difference| of "
            f"probabilities from cnnlab's {checks['max_diff']:.2g} (tolerance {checks['tolerance']:g})")
