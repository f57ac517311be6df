"""``model.optimizer``: Keras' handle on the optimizer, with a readable and assignable ``learning_rate``.

cnnlab's torch optimizer is made by each ``fit`` (and goes on from the last one's state), so
``model.optimizer`` is a view: before the first fit it says what ``compile`` (or the recipe) set; after
it, the live optimizer's rate. Setting the rate (``model.optimizer.learning_rate = 1e-4``, or Keras'
``model.optimizer.learning_rate.assign(1e-4)``) changes the live optimizer and the next fit's.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from cnnlab.engine.config import ConfigError


class LearningRate(float):
    """The rate as a number (``float(...)``, arithmetic and printing as a float), with the methods of Keras'
    variable: ``assign`` (sets the model's rate) and ``numpy``. A snapshot: read it again after a change."""

    def __new__(cls, value: float, optimizer: ModelOptimizer):
        rate = super().__new__(cls, value)
        rate._optimizer = optimizer
        return rate

    def assign(self, value) -> LearningRate:
        """Keras' ``variable.assign(value)``: the model's learning rate becomes ``value``."""
        self._optimizer.learning_rate = value
        return self._optimizer.learning_rate

    def numpy(self) -> np.float32:
        return np.float32(self)


class ModelOptimizer:
    """What ``model.optimizer`` returns: the optimizer's name, its ``learning_rate`` (get and set) and
    ``get_config()``."""

    def __init__(self, model):
        self._model = model

    @property
    def name(self) -> str:
        """The optimizer's engine name: ``adam``, ``sgd``, ``adamw``, ``rmsprop``..."""
        return self._options().get("optimizer", "adam")

    @property
    def learning_rate(self) -> LearningRate:
        """The current rate: the live optimizer's after a fit (callbacks and schedules move it), else the
        one the next fit starts from."""
        state = self._model._state
        if state is None:
            return LearningRate(self._options()["lr"], self)
        group = state.optimizer.param_groups[0]  # each group runs at lr times its scale (muon's, the biases')
        return LearningRate(group["lr"] / group.get("lr_scale", 1.0), self)

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        rate = _rate(value)
        model = self._model
        if model._state is not None:
            model.learning_rate = rate  # the live optimizer: each group keeps its scale
        compiled = model._compiled  # and the next fit's, should it make a fresh optimizer
        model._compiled = dataclasses.replace(compiled, options={**compiled.options, "lr": rate})

    lr = learning_rate  # tf.keras' name

    def get_config(self) -> dict:
        """Keras' ``optimizer.get_config()``: the name, the learning rate and the other options compile set."""
        options = self._options()
        return {"name": self.name, "learning_rate": float(self.learning_rate),
                **{key: value for key, value in options.items() if key not in ("optimizer", "lr")}}

    def _options(self) -> dict:
        """The recipe's optimizer options, overridden by compile's (what the next fit's config holds)."""
        from cnnlab.engine.config import TrainConfig
        from cnnlab.engine.recipes import recipe_options
        from cnnlab.net.presets import preset_name

        model = self._model
        named = recipe_options(preset_name(model.spec), None) if model._spec is not None else {}
        return {"optimizer": named.get("optimizer", TrainConfig.optimizer), "lr": named.get("lr", TrainConfig.lr),
                **model._compiled.options}

    def __repr__(self) -> str:
        return f"<cnnlab optimizer {self.name!r} learning_rate={float(self.learning_rate):g}>"


def _rate(value) -> float:
    """A learning rate given as a number (a numpy scalar, a 0-d tensor or a LearningRate too)."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"optimizer.learning_rate: expected a positive number, got {value!r}")
    return float(value)
