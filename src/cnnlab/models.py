"""Keras' ``keras.models``: ``from cnnlab.models import Model, Sequential, load_model``."""

from cnnlab.api import Model, Sequential, load_model

__all__ = ["Model", "Sequential", "load_model"]
