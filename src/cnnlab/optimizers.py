"""Keras' optimizer names for ``model.compile(optimizer=...)``: ``Adam(learning_rate=1e-3)`` and kin.

Each is a small record of the training options it stands for (cnnlab's engine builds
the torch optimizer, with Keras' defaults such as epsilon 1e-7). Keras 2's ``lr=`` is
accepted as ``learning_rate``.
"""

from __future__ import annotations

from typing import Any

from cnnlab.engine.config import ConfigError

# Keras arguments accepted only at Keras' default value (others are refused by name).
_DEFAULT_ONLY = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False, "name": None,
                 "clipnorm": None, "clipvalue": None, "global_clipnorm": None}


class Optimizer:
    """Base class: ``options()`` gives the TrainConfig fields this optimizer sets."""

    engine_name = ""
    default_learning_rate = 0.001

    def __init__(self, learning_rate: float | None = None, *, lr: float | None = None, **kwargs: Any):
        if learning_rate is not None and lr is not None:
            raise ConfigError(f"{type(self).__name__}: give learning_rate or lr (Keras 2's name), not both")
        rate = learning_rate if learning_rate is not None else lr
        self.learning_rate = self.default_learning_rate if rate is None else rate
        self.extra = self._extra(kwargs)

    def _extra(self, kwargs: dict) -> dict:
        for key, value in kwargs.items():
            if key not in _DEFAULT_ONLY or value != _DEFAULT_ONLY[key]:
                raise ConfigError(f"{type(self).__name__}: argument '{key}'={value!r} is not supported by cnnlab")
        return {}

    def options(self) -> dict:
        return {"optimizer": self.engine_name, "lr": self.learning_rate, **self.extra}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self.learning_rate})"


class Adam(Optimizer):
    engine_name = "adam"


class AdamW(Optimizer):
    engine_name = "adamw"

    def _extra(self, kwargs: dict) -> dict:
        decay = kwargs.pop("weight_decay", None)
        return {**super()._extra(kwargs), **({"weight_decay": decay} if decay is not None else {})}


class SGD(Optimizer):
    engine_name = "sgd"
    default_learning_rate = 0.01  # Keras' SGD default

    def _extra(self, kwargs: dict) -> dict:
        momentum, nesterov = kwargs.pop("momentum", 0.0), kwargs.pop("nesterov", False)
        return {**super()._extra(kwargs), "momentum": momentum, "nesterov": nesterov}


class RMSprop(Optimizer):
    """Keras' RMSprop (rho 0.9); momentum and centered are accepted only at their defaults."""

    engine_name = "rmsprop"

    def _extra(self, kwargs: dict) -> dict:
        for key, default in (("rho", 0.9), ("momentum", 0.0), ("centered", False)):
            if kwargs.pop(key, default) != default:
                raise ConfigError(f"RMSprop: argument '{key}' other than Keras' default {default!r} "
                                  "is not supported by cnnlab")
        return super()._extra(kwargs)


_BY_NAME = {"adam": Adam, "adamw": AdamW, "sgd": SGD, "rmsprop": RMSprop}


def get(identifier) -> Optimizer:
    """An optimizer from Keras' string name (any case) or an optimizer object."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ConfigError(f"unknown optimizer {identifier!r}; expected one of {', '.join(_BY_NAME)} "
                      "or cnnlab.optimizers.Adam(learning_rate=...)")
