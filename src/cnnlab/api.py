"""The Python API: the experiment in a few lines, in a script or a notebook.

>>> import cnnlab
>>> data = cnnlab.load_data("digits")
>>> model = cnnlab.Model("cnn")
>>> history = model.fit(data.x_train, data.y_train, epochs=3, verbose=0)
>>> model.evaluate(data.x_test, data.y_test)["accuracy"] > 0.8
True
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab.engine.config import TrainConfig
from cnnlab.net.resolve import fit_spec, resolve_spec
from cnnlab.net.spec import SpecError


class History:
    """Per-epoch metrics: ``history.history["val_accuracy"]`` as in Keras, ``records`` as dicts."""

    def __init__(self, records: list[dict]):
        self.records = [dict(r) for r in records]

    @property
    def history(self) -> dict[str, list]:
        keys = [k for k in self.records[0] if k != "epoch"] if self.records else []
        return {key: [r[key] for r in self.records] for key in keys}

    @property
    def epoch(self) -> list[int]:
        return [r["epoch"] - 1 for r in self.records]

    def __repr__(self) -> str:
        return f"History({len(self.records)} epochs)"


class Model:
    """A network from a preset name, spec file, YAML text or list, with fit/evaluate/predict.

    Images are ``(N, H, W, C)``: uint8 (scaled to [0, 1]) or float; labels are class
    indices or one-hot rows. The torch module is built on the first ``fit`` (or
    ``build``), when the input shape and class count are known.
    """

    def __init__(self, spec="cnn", *, init: str = "keras", device: str = "auto", seed: int = 0):
        self.spec = resolve_spec(spec)
        self.init, self.device, self.seed = init, device, seed
        self.module = None
        self.history: History | None = None
        self._state = None

    def build(self, input_shape: tuple[int, ...], num_classes: int):
        """Build the torch module (seeded, Keras initialisation by default)."""
        from cnnlab.engine.session import seed_everything
        from cnnlab.net.builder import build_model

        self.spec = fit_spec(self.spec, input_shape, num_classes)
        seed_everything(self.seed)
        self.module = build_model(self.spec, init=self.init)
        return self.module

    def summary(self) -> None:
        """Print the Keras-style summary (needs an input shape: from the spec or a fit)."""
        from cnnlab.net.resolve import summarize
        from cnnlab.presenters.summary_table import format_summary

        print(format_summary(summarize(self.spec)), end="")

    def fit(self, x, y, *, batch_size: int = 32, epochs: int = 5, validation_split: float = 0.2,
            validation_data=None, optimizer: str = "adam", lr: float = 1e-3, verbose: int = 1,
            **options) -> History:
        """Train; defaults are the experiment's recipe. Returns (and keeps) the History.

        ``options`` are further :class:`TrainConfig` fields (``schedule``, ``split_method``,
        ``early_stopping``, ``momentum``...). Calling ``fit`` again trains on from here.
        """
        from cnnlab.engine.loop import run_epochs
        from cnnlab.engine.session import class_indices, prepare, seed_everything, set_deterministic
        from cnnlab.presenters.progress import ProgressPrinter

        config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                             val_split=0 if validation_data is not None else validation_split,
                             seed=self.seed, device=self.device, init=self.init, **options).validate()
        x = np.asarray(x)
        labels = class_indices(y)
        if self.module is None:
            self.build(x.shape[1:], int(labels.max()) + 1)
        seed_everything(self.seed)
        set_deterministic(config.deterministic)
        state, data, _ = prepare(self.module, x, labels, config, validation_data)
        if self._state is not None:  # keep the optimizer's moments across fit calls, as Keras does
            state.optimizer.load_state_dict(self._state.optimizer.state_dict())
        self._state = state
        run_epochs(state, data, config, ProgressPrinter() if verbose else None)
        self.history = History(state.history)
        return self.history

    def evaluate(self, x, y, batch_size: int = 1024) -> dict:
        """``{"loss", "accuracy"}`` on these images and labels (dropout off)."""
        from cnnlab.engine.loop import evaluate_tensors
        from cnnlab.engine.session import images_to_tensor, labels_to_tensor

        device = self._device()
        return evaluate_tensors(self._require_module(), images_to_tensor(x, device),
                                labels_to_tensor(y, device), batch_size)

    def predict(self, x, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities ``(N, classes)`` (the final softmax applied)."""
        import torch

        from cnnlab.engine.session import images_to_tensor

        module = self._require_module().eval()
        tensor = images_to_tensor(x, self._device())
        with torch.no_grad():
            parts = [module.probabilities(tensor[i:i + batch_size]) for i in range(0, len(tensor), batch_size)]
        return torch.cat(parts).cpu().numpy()

    def save_weights(self, path: str | Path) -> Path:
        from cnnlab.engine.checkpoint import export_weights

        return export_weights(self._require_module(), Path(path))

    def load_weights(self, path: str | Path) -> None:
        from cnnlab.engine.checkpoint import load_weights

        load_weights(self._require_module(), Path(path))

    def _require_module(self):
        if self.module is None:
            raise SpecError("the model is not built yet: call fit() or build(input_shape, num_classes)")
        return self.module

    def _device(self):
        return next(self._require_module().parameters()).device


def load_data(dataset: str = "cifar10", **options):
    """A :class:`cnnlab.data.Dataset` by name or path (see :func:`cnnlab.data.load_dataset`)."""
    from cnnlab.data import load_dataset

    return load_dataset(dataset, **options)


def show_samples(dataset, split: str = "train", n: int = 10, seed: int = 0):
    """A matplotlib Figure of ``n`` random labelled images (displays itself in a notebook)."""
    from cnnlab.presenters.plots import sample_grid

    images, labels = dataset.split(split)
    return sample_grid(images, labels, dataset.class_names, n, seed, title=f"{dataset.name} ({split})")
