"""``cnnlab train``, ``cnnlab evaluate`` and ``cnnlab predict``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnlab.cli.common import DIRECTORY, FILE, add_json_option, completes, print_json
from cnnlab.cli.data_commands import add_dataset_options
from cnnlab.engine.config import OPTIMIZERS, PRECISIONS, SCHEDULES, TrainConfig
from cnnlab.engine.recipes import RECIPES, get_recipe

TRAIN_DATASET = "cifar10"  # train's default --dataset


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """The recipe's options (shared with ``cnnlab compare``): each one given overrides the recipe's.

    Their defaults are None ("not given"): the recipe (``--recipe``, else the preset's own,
    else the experiment's ``homework``) fills in the rest (see :func:`recipe_overrides`).
    """
    add = parser.add_argument
    add("--recipe", choices=tuple(RECIPES), help="a named set of training options (default: the preset's own, "
        "else homework: " + RECIPES["homework"].description.replace("%", "%%") + ")")
    add("--epochs", type=int, help="passes over the training data (homework: 5)")
    add("--batch-size", type=int, help="images per step (homework: 32)")
    add("--lr", type=float, help="learning rate (homework: 0.001)")
    add("--optimizer", choices=OPTIMIZERS, help="the optimizer (homework: adam)")
    add("--momentum", type=float, help="sgd momentum (homework: 0)")
    add("--nesterov", action="store_true", default=None, help="sgd: Nesterov momentum")
    add("--muon-lr", type=float, metavar="LR",
        help="muon (cnnlab's, after airbench: Muon for convolution kernels, sgd with --lr, --momentum "
             "and --nesterov for the rest): the kernels' rate (default 0.1)")
    add("--muon-momentum", type=float, metavar="M", help="muon: the kernels' Nesterov momentum (default 0.6)")
    add("--weight-decay", type=float, metavar="WD",
        help="decoupled weight decay, as Keras 3 applies it (lr x WD per step; default: none, adamw: 0.004)")
    add("--schedule", choices=SCHEDULES, help="learning-rate schedule over the steps (homework: constant)")
    add("--warmup-epochs", type=float, metavar="EPOCHS",
        help="linear learning-rate warm-up over EPOCHS (fractions allowed) before the schedule (homework: 0)")
    add("--label-smoothing", type=float, metavar="S",
        help="Keras' label smoothing of the cross-entropy's targets (homework: 0)")
    add("--bias-lr-scale", type=float, metavar="F",
        help="the biases' learning rate (batchnorm's beta included) is the rate times F, their decay per "
             "step the other weights' (cnnlab's, after airbench; homework: 1)")
    add("--ema-momentum", type=float, metavar="M",
        help="keep a moving average of the weights (Keras' use_ema, e.g. 0.99); validation, test and the "
             "saved weights use it (homework: off)")
    add("--val-split", type=float, help="held-out fraction (homework: 0.2)")
    add("--split-method", choices=("stratified", "keras"),
        help="validation split: a seeded shuffle per class (default), or Keras' last fraction")
    add("--seed", type=int, help="seeds the weights, the split, the shuffles and dropout (default 0)")
    add("--device", choices=("auto", "cpu", "cuda"),
        help="where to train: auto is cuda when torch sees a GPU, else cpu (default auto)")
    add("--init", choices=("keras", "torch"),
        help="weight initialisation: Keras' glorot-uniform (default) or torch's")
    add("--deterministic", action="store_true", default=None, help="ask torch for deterministic algorithms")
    add("--threads", type=int, metavar="N",
        help="CPU threads torch uses (default: the cores it sees; with --executor, the cores // --jobs)")
    add("--precision", choices=PRECISIONS,
        help="fp32 (homework), bf16 autocast (fast on CPUs and GPUs with bf16 units), or auto: bf16 only "
             "where this machine has bf16 units and it is faster")
    add("--early-stopping", metavar="METRIC",
        help="stop when METRIC (loss, accuracy, val_loss or val_accuracy) stalls")
    add("--patience", type=int, help="--early-stopping: epochs without improvement before stopping (default 2)")
    completes(add("--out", default="runs", metavar="DIR", help="where run directories go (default runs/)"),
              DIRECTORY)
    add("--quiet", action="store_true", help="print only the final result")
    add("--tensorboard", action="store_true",
        help="also write TensorBoard event files to RUN_DIR/tensorboard/ (needs cnnlab[tensorboard])")


def start_threads(args: argparse.Namespace) -> None:
    """At the command's start, before torch loads: on the CPU, idle OpenMP threads spin briefly, then
    sleep (``GOMP_SPINCOUNT=3000``), unless the user chose how they wait; ``--threads`` checked."""
    from cnnlab.engine.threads import check_threads, prefer_short_spin, torch_loaded

    if not torch_loaded():  # else too late for this process (main() called from Python): leave its environment
        prefer_short_spin(args.device or "auto")
    if args.threads is not None:
        check_threads(args.threads, "--threads")


def make_callback(args: argparse.Namespace):
    """The engine callback the options ask for: progress (unless --quiet), TensorBoard events (--tensorboard)."""
    from cnnlab.presenters.progress import ProgressPrinter

    printer = None if args.quiet else ProgressPrinter()
    if not args.tensorboard:
        return printer
    from cnnlab.presenters.tensorboard import RunEventLog, check_available

    check_available()  # before any run is made
    return RunEventLog(printer)


def close_callback(callback) -> None:
    """Close what the callback holds open (TensorBoard's event files)."""
    if hasattr(callback, "close"):
        callback.close()


RECIPE_OPTIONS = ("epochs", "batch_size", "lr", "optimizer", "momentum", "nesterov", "muon_lr", "muon_momentum",
                  "weight_decay", "schedule",
                  "warmup_epochs", "label_smoothing", "bias_lr_scale", "ema_momentum", "val_split", "split_method",
                  "seed", "device", "init", "deterministic", "early_stopping", "patience", "precision")


def recipe_overrides(args: argparse.Namespace) -> dict:
    """The training options given on the command line (those left out are None)."""
    return {name: getattr(args, name) for name in RECIPE_OPTIONS if getattr(args, name, None) is not None}


def config_from_args(args: argparse.Namespace, spec: str | None = None) -> TrainConfig:
    """The TrainConfig the options describe for ``spec``: its recipe, with the options given on top."""
    from cnnlab.net.presets import recipe_of

    name = args.recipe or recipe_of(spec if spec is not None else getattr(args, "spec", None))
    return get_recipe(name).config(recipe_overrides(args))


def dataset_options(args: argparse.Namespace) -> dict:
    """The dataset's loading options as the run records them (only those given)."""
    options = {"cache": args.cache_dir, "channels": args.channels,
               "size": list(args.size) if args.size else None, "skip_bad": args.skip_bad,
               "allow_download": not args.no_download}
    return {key: value for key, value in options.items() if value not in (None, False)}


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``cnnlab train``, ``cnnlab evaluate`` and ``cnnlab predict`` to the command line."""
    train = commands.add_parser("train", help="train a network; writes a resumable run directory")
    completes(train.add_argument("spec", metavar="SPEC", nargs="?", help="a preset name or a spec file"), FILE)
    add_dataset_options(train, default=TRAIN_DATASET)
    add_train_options(train)
    train.add_argument("--name", help="run directory name (default: SPEC-DATASET, never overwritten)")
    completes(train.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run"), DIRECTORY)
    add_json_option(train)
    train.set_defaults(handler=run_train)
    evaluate = commands.add_parser("evaluate", help="loss, accuracy, per-class accuracy, confusion matrix")
    completes(evaluate.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (cnnlab train)"),
              DIRECTORY)
    evaluate.add_argument("--split", choices=("test", "val", "train"), default="test",
                          help="the test part (default), the validation part or the part trained on")
    add_tta_option(evaluate)
    add_json_option(evaluate)
    evaluate.set_defaults(handler=run_evaluate)
    predict = commands.add_parser("predict", help="the most likely classes of image files")
    completes(predict.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (cnnlab train)"),
              DIRECTORY)
    completes(predict.add_argument("images", metavar="IMAGE", nargs="+", help="image files (PNG, JPEG, BMP, WebP)"),
              FILE)
    predict.add_argument("--top", type=int, default=3, metavar="K",
                         help="classes shown per image, 1 to the number of classes (default 3)")
    add_tta_option(predict)
    add_json_option(predict)
    predict.set_defaults(handler=run_predict)


def add_tta_option(parser: argparse.ArgumentParser, use: str = "") -> None:
    """``--tta flip``: test-time augmentation for ``evaluate``, ``predict`` and ``compare`` (``use`` says how)."""
    modes = ("flip scores the mean of the class probabilities on each image and its left-right mirror; "
             "flip_translate adds both shifted a pixel each way along the diagonal (six views)")
    parser.add_argument("--tta", choices=("flip", "flip_translate"),  # engine.tta.TTA_MODES, without torch
                        help=f"test-time augmentation{use}: {modes} (default: none)")


def refuse_options_with_resume(args: argparse.Namespace) -> None:
    """--resume continues a run with the options it started with; others given with it would be ignored."""
    from cnnlab.runs import RunError

    changed = [f"--{name.replace('_', '-')}" for name in recipe_overrides(args)]
    changed += ["--recipe"] if args.recipe else []
    changed += [flag for flag, value in (("SPEC", args.spec), ("--name", args.name)) if value]
    changed += ["--dataset"] if args.dataset != TRAIN_DATASET else []
    changed += [f"--{name.replace('_', '-')}" for name in ("channels", "size", "skip_bad") if getattr(args, name)]
    if changed:
        raise RunError(f"--resume {args.resume} continues the run with the options it started with; "
                       f"{', '.join(changed)} would be ignored: leave them out, or start a new run")


def run_train(args: argparse.Namespace) -> int:
    """``cnnlab train``: a new run, or ``--resume`` of one."""
    start_threads(args)  # first: before `cnnlab.runs` loads torch
    from cnnlab import runs
    from cnnlab.engine.threads import using_threads

    if not (args.resume or args.spec):
        raise runs.RunError("train needs SPEC (a preset name or spec file), or --resume RUN_DIR")
    if args.resume:
        refuse_options_with_resume(args)
    callback = make_callback(args)
    try:
        with using_threads(args.threads):
            if args.resume:
                result = runs.resume(args.resume, callback, sys.argv)
            else:
                result = runs.train(args.spec, args.dataset, config_from_args(args), out=args.out,
                                    name=args.name, dataset_options=dataset_options(args), callback=callback,
                                    argv=sys.argv)
    finally:
        close_callback(callback)
    if args.json:
        print_json(result)
        return 0
    last = result.history[-1] if result.history else None
    print(f"run: {result.run_dir}")
    if last is not None and last.val_accuracy is not None:
        print(f"final val_accuracy {last.val_accuracy:.4f}  val_loss {last.val_loss:.4f}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """``cnnlab evaluate``: prints the evaluation, saves the confusion matrix as CSV and PNG in the run."""
    from cnnlab import runs
    from cnnlab.presenters.tables import format_evaluation
    from cnnlab.runs.directory import require_run

    run_dir = require_run(Path(args.run_dir))  # it writes into the run: only into one cnnlab made
    result = runs.evaluate(run_dir, args.split, tta=args.tta)
    if args.json:
        print_json(result)
    else:
        print(format_evaluation(result))
    saved = "saved {} and {}".format(*_save_confusion(run_dir, result))
    if args.json:
        print(saved, file=sys.stderr)  # stdout holds the JSON alone
    else:
        print(f"\n{saved}")
    return 0


def _save_confusion(run_dir: Path, result) -> tuple[Path, Path]:
    """The confusion matrix as ``confusion_<split>.csv`` and ``.png`` in the run; their paths."""
    from cnnlab.presenters.plots import confusion_figure, figure_png
    from cnnlab.presenters.tables import confusion_csv
    from cnnlab.runs.directory import write_run_file

    # With --tta the results differ from the plain ones: kept beside them, not over them.
    stem = f"confusion_{result.split}" + (f"_tta-{result.tta}" if result.tta else "")
    csv_path = write_run_file(run_dir, f"{stem}.csv", confusion_csv(result).encode())
    tta = f", tta {result.tta}" if result.tta else ""
    figure = confusion_figure(result.confusion_matrix, result.class_names,
                              f"{run_dir.name}: {result.split} (accuracy {result.accuracy:.3f}{tta})")
    return csv_path, write_run_file(run_dir, f"{stem}.png", figure_png(figure))


def run_predict(args: argparse.Namespace) -> int:
    """``cnnlab predict``: the top classes of each image file."""
    from cnnlab import runs
    from cnnlab.presenters.tables import format_predictions

    predictions = runs.predict(args.run_dir, args.images, top=args.top, tta=args.tta)
    if args.json:
        print_json({"predictions": predictions, "tta": args.tta})
    else:
        print(format_predictions(predictions, args.tta))
    return 0
