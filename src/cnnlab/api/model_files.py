"""How a model is written and read back: its own file, Keras' files, exports and weights (a mixin of
:class:`cnnlab.api.model.Model`, which provides ``_require_module``, ``spec`` and ``class_names``)."""

from __future__ import annotations

from pathlib import Path


class ModelFiles:
    """``save``, ``export``, ``save_weights`` and ``load_weights``, with Keras' names and file suffixes."""

    def save(self, path: str | Path) -> Path:
        """The whole model in one file (spec, weights, class names, preprocessing): ``cnnlab.load_model``
        reads it back. A safetensors file: nothing in it is pickled. A ``.keras`` or ``.h5`` name saves
        Keras 3's own file, which ``keras.saving.load_model`` loads (see :mod:`cnnlab.api.keras_saving`)."""
        from cnnlab.api.keras_saving import save_keras
        from cnnlab.runs.model_file import write_model_file

        if (written := save_keras(self, path)) is not None:
            return written
        # A link, FIFO or device at ``path`` is refused before anything opens it (a FIFO would wait).
        return write_model_file(path, self._require_module(), self.spec, self.class_names)

    def export(self, filepath: str | Path, format: str = "onnx") -> list[Path]:
        """Write the network as ``"onnx"``, ``"keras"`` (functional-API code and its weights) or
        ``"pytorch"`` (a standalone nn.Module and its weights), checked against this model's own
        predictions before anything is written (see ``cnnlab export``); returns the files written."""
        from cnnlab.export import export_network
        from cnnlab.export.network import from_model

        result = export_network(from_model(self, f"model '{self.spec.name}'"), format, Path(filepath), True)
        return result.files

    def save_weights(self, path: str | Path) -> Path:
        """The weights as a safetensors file; Keras 3's weights file for a ``.weights.h5`` name."""
        from cnnlab.api.keras_saving import save_keras_weights
        from cnnlab.runs.model_file import write_weights_file

        if (written := save_keras_weights(self, path)) is not None:
            return written
        return write_weights_file(path, self._require_module())

    def load_weights(self, path: str | Path) -> None:
        """Weights from a safetensors file (saved by ``save_weights`` or a run directory), or from Keras'
        ``.weights.h5``/``.keras``/``.h5`` file (layers matched by name)."""
        from cnnlab.api.keras_saving import load_keras_weights
        from cnnlab.engine.checkpoint import load_weights

        if load_keras_weights(self._require_module(), path):
            return
        load_weights(self._require_module(), Path(path))
