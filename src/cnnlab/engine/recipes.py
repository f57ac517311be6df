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


RECIPES: dict[str, Recipe] = {
    "homework": Recipe("homework", "the experiment's: Adam 0.001, batch 32, 5 epochs, 20% validation"),
    # Measured on CIFAR-10 in docs/benchmarks.md (benchmarks/time_to_accuracy.py). Muon for the
    # convolution kernels and Nesterov SGD for the rest (after airbench94_muon), a short warm-up
    # and a linear decay to 0, label smoothing and decoupled weight decay; every training image
    # is trained on (no validation split).
    "fast": Recipe("fast", "Muon 0.1 (momentum 0.6) for convolution kernels, Nesterov SGD 0.4 (momentum 0.9, "
                           "decoupled weight decay 0.0125) for the rest, batch 512, 17 epochs, warm-up 2 epochs "
                           "then linear decay, label smoothing 0.2, no validation split, precision auto",
                   {"optimizer": "muon", "muon_lr": 0.1, "muon_momentum": 0.6, "lr": 0.4, "momentum": 0.9,
                    "nesterov": True, "weight_decay": 0.0125, "batch_size": 512, "epochs": 17,
                    "schedule": "linear", "warmup_epochs": 2.0, "label_smoothing": 0.2, "val_split": 0.0,
                    "precision": "auto"}),
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
    words += [f"batch {config.batch_size}", f"{config.epochs} epoch" + ("s" if config.epochs != 1 else "")]
    words += [f"warm-up {config.warmup_epochs:g} epochs"] if config.warmup_epochs else []
    words += [f"{config.schedule} schedule"] if config.schedule != "constant" else []
    words += [f"label smoothing {config.label_smoothing:g}"] if config.label_smoothing else []
    words += [f"bias lr x{config.bias_lr_scale:g}"] if config.bias_lr_scale != 1 else []
    words += [f"EMA {config.ema_momentum:g}"] if config.ema_momentum is not None else []
    words += [f"{config.val_split:.0%} validation" if config.val_split else "no validation split"]
    words += [f"precision {config.precision}"] if config.precision != "fp32" else []
    return f"{config.recipe or DEFAULT_RECIPE}: " + ", ".join(words)


def recipe_options(preset: str | None, asked: str | None = None) -> dict:
    """``Model.fit``'s starting options: the recipe asked for, else the preset's own, with its name."""
    from cnnlab.net.presets import recipe_of

    recipe = get_recipe(asked or recipe_of(preset))
    return {**recipe.options, "recipe": recipe.name}
