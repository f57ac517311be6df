"""``cnnlab explain``: where a trained network looks on image files, with the sanity checks beside the maps."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cnnlab.cli.common import FILE, UsageError, add_json_option, add_out_file_option, completes, print_json

METHODS = ("gradcam", "saliency", "integrated_gradients", "smoothgrad", "features")  # explain.EXPLAIN_METHODS


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``cnnlab explain`` to the command line."""
    explain = commands.add_parser(
        "explain", help="where a trained network looks on image files (Grad-CAM, saliency, feature maps), "
                        "with the sanity checks that say whether to trust the picture")
    completes(explain.add_argument("run", metavar="RUN", help="a run directory (cnnlab train) or a .cnnlab file"),
              FILE)
    completes(explain.add_argument("images", metavar="IMAGE", nargs="+", help="image files (PNG, JPEG, BMP, WebP)"),
              FILE)
    explain.add_argument("--method", choices=METHODS, default="gradcam",
                         help="gradcam (the last convolution's Grad-CAM; default), saliency (the input gradient), "
                              "integrated_gradients, smoothgrad, or features (the layer's feature maps)")
    explain.add_argument("--class", dest="class_name", metavar="NAME",
                         help="the class to explain, by name (or index); default: each image's predicted class")
    explain.add_argument("--layer", metavar="NAME", help="gradcam and features: the layer (default the last "
                                                         "convolution)")
    add_out_file_option(explain, "the picture to write (.png, .pdf, .svg...; never an existing file)")
    add_json_option(explain)
    explain.set_defaults(handler=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    """``cnnlab explain``: the maps' sanity checks in words, and the picture with ``--out``."""
    from cnnlab.api import load_model
    from cnnlab.explain import explain_images
    from cnnlab.presenters.plots import figure_format
    from cnnlab.runs.evaluation import read_image_files

    if args.out is not None:
        figure_format(args.out)  # a format matplotlib cannot write, refused before anything runs
        if os.path.lexists(args.out):
            raise UsageError(f"--out {args.out}: exists; cnnlab explain writes a new file, never over one")
    model = load_model(args.run)
    images = read_image_files(args.images, tuple(model.module.info.input_shape), _run_size(Path(args.run)))
    result = explain_images(model, images, args.method, _class(args.class_name, model), args.layer)
    saved = _save_picture(args.out, images, result, args.images) if args.out else None
    if args.json:
        print_json({"images": list(args.images), "explanation": result, "picture": saved})
    else:
        print(_text(args.images, result, saved))
    return 0


def _run_size(path: Path):
    """The size a run's images were resized to (``--size``), as ``predict`` reads it; None for a model file."""
    from cnnlab.runs.records import read_config

    return read_config(path)["dataset_options"].get("size") if path.is_dir() else None


def _class(name: str | None, model):
    """``--class``: a class name, else (a model without the name) a class index."""
    if name is None or (model.class_names and name in model.class_names):
        return name
    return int(name) if name.isdecimal() else name  # an unknown name: explain's error lists the classes


def _text(paths: list[str], result, saved) -> str:
    method = {"gradcam": "Grad-CAM", "features": "feature maps"}.get(result.method, f"{result.method} saliency")
    where = f" of layer {result.layer}" if result.layer else ""
    lines = [f"{path}: predicted {name} ({chance:.1%}); {method}{where}"
             + ("" if result.method == "features" else f" for class {explained}")
             for path, name, chance, explained in zip(paths, result.predicted, result.probabilities,
                                                      result.explained)]
    lines += [f"sanity: {line}" for line in result.sanity]
    lines.append(f"saved {saved}" if saved else "(--out FILE.png writes the picture)")
    return "\n".join(lines)


def _save_picture(out: str, images, result, paths: list[str]) -> Path:
    from cnnlab.explain import feature_grid, overlay
    from cnnlab.presenters.plots import save_figure

    if result.method == "features":
        figure = feature_grid(result.maps[0], title=f"{Path(paths[0]).name}: layer {result.layer}")
    else:
        titles = [f"{name} {chance:.0%}" for name, chance in zip(result.predicted, result.probabilities)]
        figure = overlay(images, result.maps, titles=titles, side_by_side=True, caption="\n".join(result.sanity))
    return save_figure(figure, out)
