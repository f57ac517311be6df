"""Recipes: named sets of training options (pure data, no torch).

``homework`` is the experiment's recipe (Adam 0.001, batch 32, 5 epochs, 20% validation):
:class:`TrainConfig`'s defaults, and the recipe of ``mlp``, ``cnn`` and a user's spec.
A preset network may carry its own (``fast`` carries ``fast``). Options given on the
command line, or to the Python API, override the recipe's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from cnnlab.engine.config import ConfigError, TrainConfig
from cnnlab.net.fields import suggest

DEFAULT_RECIPE = "homework"


@dataclass(frozen=True)
class Recipe:
    """A recipe's name, what it is in words, and the options it sets (TrainConfig field names)."""

    name: str
    description: str
    options: dict = field(default_factory=dict)

    def config(self, overrides: dict | None = None) -> TrainConfig:
        """The recipe's TrainConfig with ``overrides`` (options the user gave) on top, validated."""
        overrides = overrides or {}
        known = {item.name for item in fields(TrainConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown training option '{unknown[0]}'{suggest(unknown[0], known)}")
        return TrainConfig(**{**self.options, **overrides, "recipe": self.name}).validate()


def decoupled_sgd(lr: float, weight_decay: float, momentum: float, batch_size: int) -> dict:
    """airbench's decoupled hyperparameters (Jordan 2024) as cnnlab's options: ``lr`` and ``weight_decay``
    given per 1,024 images with momentum's gain taken out, so that changing the batch size or the
    momentum keeps their meaning. The step is taken on the summed loss (``loss_reduction: sum``), at
    ``lr / (1024 * (1 + 1 / (1 - momentum)))``; the decay, ``weight_decay * batch_size`` at that scale a
    step, is an L2 penalty through momentum (``l2``, Keras' coefficient: half the gradient's)."""
    kilostep = 1024 * (1 + 1 / (1 - momentum))
    step_lr, step_decay = lr / kilostep, weight_decay * batch_size / kilostep
    return {"optimizer": "sgd", "momentum": momentum, "nesterov": True, "batch_size": batch_size,
            "loss_reduction": "sum", "lr": step_lr, "l2": step_decay / step_lr / 2}


# airbench93 (Jordan 2024, github.com/KellerJordan/cifar10-airbench, airbench93.py), option for option:
# 11 epochs, batch 1024 (whole batches only), Nesterov SGD at lr 11.5 and weight decay 0.0153 in its
# decoupled units, momentum 0.85, batchnorm biases at 64x the rate; the rate rises from 0.2x over the
# first 23% of the steps and falls linearly to 0.07x; label smoothing 0.2; lookahead every 5 steps,
# its step size falling to 1 - 0.95^5 as (step/total)^3; torch's default initialisation, in float32.
AIRBENCH93 = {**decoupled_sgd(11.5, 0.0153, 0.85, 1024), "epochs": 11, "drop_remainder": True,
              "bias_lr_scale": 64.0, "schedule": "linear", "warmup_epochs": 0.23 * 11, "warmup_start_factor": 0.2,
              "schedule_alpha": 0.07, "label_smoothing": 0.2, "lookahead_sync_period": 5,
              "lookahead_slow_step_size": 1 - 0.95**5, "lookahead_schedule": "cubic", "init": "torch",
              "val_split": 0.0, "precision": "fp32"}

RECIPES: dict[str, Recipe] = {
    "homework": Recipe("homework", "the experiment's: Adam 0.001, batch 32, 5 epochs, 20% validation"),
    # Measured on CIFAR-10 in docs/benchmarks.md (benchmarks/time_to_accuracy.py; 21 epochs with the preset's
    # alternating flips, not the 17 it had until 2026-12-07: they reach the airbench93 peer's accuracy in
    # 0.78x its time, fp32, mean of 2 seeds). Muon for the
    # convolution kernels and Nesterov SGD for the rest (after airbench94_muon), a short warm-up
    # and a linear decay to 0, label smoothing and decoupled weight decay; every training image
    # is trained on (no validation split).
    "fast": Recipe("fast", "Muon 0.1 (momentum 0.6) for convolution kernels, Nesterov SGD 0.4 (momentum 0.9, "
                           "decoupled weight decay 0.0125) for the rest, batch 512, 21 epochs, warm-up 2 epochs "
                           "then linear decay, label smoothing 0.2, no validation split, precision auto",
                   {"optimizer": "muon", "muon_lr": 0.1, "muon_momentum": 0.6, "lr": 0.4, "momentum": 0.9,
                    "nesterov": True, "weight_decay": 0.0125, "batch_size": 512, "epochs": 21,
                    "schedule": "linear", "warmup_epochs": 2.0, "label_smoothing": 0.2, "val_split": 0.0,
                    "precision": "auto"}),
    "airbench93": Recipe("airbench93", "airbench93's (Jordan 2024): Nesterov SGD on the summed loss with its "
                                       "decoupled lr 11.5 and weight decay 0.0153, momentum 0.85, batch 1024, "
                                       "11 epochs, warm-up from 0.2x then linear decay to 0.07x, batchnorm "
                                       "biases at 64x, label smoothing 0.2, lookahead every 5 steps (cubic), "
                                       "no validation split, fp32", AIRBENCH93),
    # airbench94 trains its wider network with the same options for 9.9 epochs; cnnlab's epochs are whole,
    # and 10 take 480 steps of 1,024 images against its 476.
    "airbench94": Recipe("airbench94", "airbench94's: airbench93's options for 10 epochs (the paper's 9.9)",
                         {**AIRBENCH93, "epochs": 10, "warmup_epochs": 0.23 * 10}),
}


def get_recipe(name: str) -> Recipe:
    """A recipe by name; an unknown one is one error naming the known ones."""
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe '{name}'{suggest(name, RECIPES)}; recipes: {', '.join(RECIPES)}")
    return RECIPES[name]


def recipe_config(spec) -> TrainConfig:
    """The options a spec trains with when none are given: a preset's own recipe, else homework."""
    from cnnlab.net.presets import recipe_of

    return get_recipe(recipe_of(spec)).config()


def describe_options(train: dict) -> str:
    """A run's training options in words, as a recipe's description gives them: what actually ran."""
    config = TrainConfig(**{k: v for k, v in train.items() if k in {f.name for f in fields(TrainConfig)}})
    optimizer = ("sgd" if config.optimizer == "muon" else config.optimizer) + (" nesterov" if config.nesterov else "")
    words = [f"{optimizer} {config.lr:g}"]
    if config.optimizer == "muon":
        words = [f"muon {config.muon_lr:g} (momentum {config.muon_momentum:g}) for convolution kernels",
                 f"{optimizer} {config.lr:g} for the rest"]
    words += [f"momentum {config.momentum:g}"] if config.momentum else []
    words += [f"weight decay {config.weight_decay:g}"] if config.weight_decay else []
    words += [f"l2 {config.l2:.4g}"] if config.l2 else []
    words += ["summed loss"] if config.loss_reduction == "sum" else []
    words += [f"batch {config.batch_size}" + (" (whole batches)" if config.drop_remainder else ""),
              f"{config.epochs} epoch" + ("s" if config.epochs != 1 else "")]
    start = f" from {config.warmup_start_factor:g}x" if config.warmup_start_factor else ""
    words += [f"warm-up {config.warmup_epochs:g} epochs{start}"] if config.warmup_epochs else []
    end = f" to {config.schedule_alpha:g}x" if config.schedule_alpha else ""
    words += [f"{config.schedule} schedule{end}"] if config.schedule != "constant" else []
    words += [f"label smoothing {config.label_smoothing:g}"] if config.label_smoothing else []
    words += [f"bias lr x{config.bias_lr_scale:g}"] if config.bias_lr_scale != 1 else []
    words += [f"EMA {config.ema_momentum:g}"] if config.ema_momentum is not None else []
    if config.lookahead_sync_period:
        words += [f"lookahead every {config.lookahead_sync_period} steps (step size "
                  f"{config.lookahead_slow_step_size:.3g}{', cubic' if config.lookahead_schedule == 'cubic' else ''})"]
    words += [f"{config.val_split:.0%} validation" if config.val_split else "no validation split"]
    words += [f"precision {config.precision}"] if config.precision != "fp32" else []
    return f"{config.recipe or DEFAULT_RECIPE}: " + ", ".join(words)


def recipe_options(preset: str | None, asked: str | None = None) -> dict:
    """``Model.fit``'s starting options: the recipe asked for, else the preset's own, with its name."""
    from cnnlab.net.presets import recipe_of

    recipe = get_recipe(asked or recipe_of(preset))
    return {**recipe.options, "recipe": recipe.name}
