"""Keras' ``keras.models``: ``from cnnlab.models import Model, Sequential, load_model, model_from_json``."""

from cnnlab.api import Model, Sequential, load_model
from cnnlab.api.model_json import model_from_json

__all__ = ["Model", "Sequential", "load_model", "model_from_json"]
