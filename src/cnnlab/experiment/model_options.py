"""Each model's training options in a comparison, and the record of them a comparison keeps.

A comparison trains every model with its own recipe (``mlp`` and ``cnn`` the experiment's,
``fast`` its own), with the options the user gave on top; or, given one
:class:`TrainConfig`, every model with exactly that.
"""

from __future__ import annotations

from cnnlab.engine.config import TrainConfig
from cnnlab.engine.recipes import get_recipe
from cnnlab.runs.directory import RunError


def model_configs(specs: list[str], config: TrainConfig | None, options: dict | None) -> dict[str, TrainConfig]:
    """``{spec: TrainConfig}``: ``config`` for all, else each spec's recipe with ``options`` on top."""
    from cnnlab.net.presets import recipe_of

    if config is not None:
        if options:
            raise RunError("compare takes one config for every model, or options on top of each model's "
                           "recipe, not both")
        config.validate()
        return {spec: config for spec in specs}
    configs = {spec: get_recipe(recipe_of(spec)).config(options) for spec in specs}
    seeds = {config.seed for config in configs.values()}
    if len(seeds) > 1:  # a recipe never sets the seed; a caller's options set it for all
        raise RunError(f"the models' recipes give different seeds ({sorted(seeds)})")
    return configs


def options_record(specs, dataset: str, configs: dict[str, TrainConfig], seeds: int,
                   dataset_options: dict) -> dict:
    """What ``options.json`` holds: the training options once when every model shares them, else per model."""
    train = {spec: {k: v for k, v in config.to_dict().items() if k != "seed"} for spec, config in configs.items()}
    shared = next(iter(train.values()))
    same = all(options == shared for options in train.values())
    return {"specs": list(specs), "dataset": dataset, "seeds": seeds,
            "base_seed": next(iter(configs.values())).seed, "train": shared if same else train,
            "dataset_options": dataset_options}
