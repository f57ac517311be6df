"""Keras' ``model_from_json``: a model from the text ``model.to_json()`` gives (cnnlab's spec as JSON)."""

from __future__ import annotations

from cnnlab.api.model import Model
from cnnlab.engine.config import ConfigError


def model_from_json(json_string: str, custom_objects=None) -> Model:
    """A new, untrained :class:`cnnlab.Model` of the network ``model.to_json()`` described."""
    from cnnlab.formats import parse_json

    if not isinstance(json_string, str):
        raise ConfigError(f"model_from_json: expected the JSON text model.to_json() gives, "
                          f"got {type(json_string).__name__}")
    return Model.from_config(parse_json(json_string, "model_from_json", ConfigError), custom_objects)
