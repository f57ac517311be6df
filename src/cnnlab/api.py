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
from cnnlab.engine.inputs import InputError, check_classes, check_images, check_labels
from cnnlab.net.presets import preset_name
from cnnlab.net.resolve import fit_spec, resolve_spec
from cnnlab.net.spec import ModelSpec, SpecError


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
    """A network with fit/evaluate/predict: a preset name, spec file, YAML text or list, or a graph
    made with :mod:`cnnlab.layers` as in Keras (``Model(inputs=inp, outputs=out)``).

    Images are ``(N, H, W, C)``: uint8 (scaled to [0, 1]) or float; labels are class
    indices or one-hot rows. The torch module is built on the first ``fit`` (or
    ``build``), when the input shape and class count are known.
    """

    def __init__(self, spec="cnn", outputs=None, *, inputs=None, name: str | None = None, init: str = "keras",
                 device: str = "auto", seed: int = 0):
        functional = inputs is not None or outputs is not None
        if functional:  # Keras' Model(inputs, outputs), by position or by name
            from cnnlab.net.functional import functional_spec

            model_spec = functional_spec(spec if inputs is None else inputs, outputs, name)
        else:
            model_spec = resolve_spec(spec).renamed(name)
        self._setup(model_spec, functional, init, device, seed)

    def _setup(self, spec, functional: bool, init: str = "keras", device: str = "auto", seed: int = 0) -> None:
        self._spec, self._functional = spec, functional
        self.init, self.device, self.seed = init, device, seed
        self.module = None
        self.history: History | None = None
        self._state = None

    @property
    def spec(self) -> ModelSpec:
        """The network as a validated spec (what YAML would give)."""
        if self._spec is None:
            raise SpecError("the model has no layers yet: add() some first")
        return self._spec

    @spec.setter
    def spec(self, value: ModelSpec) -> None:
        self._spec = value

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def layers(self) -> list:
        """Keras-style layer objects (an ``InputLayer`` first for a graph), with ``output.shape``."""
        from cnnlab.net.functional import spec_layers

        shape = self.spec.input_shape or self._default_input()
        return spec_layers(self.spec, shape, with_input=self._functional or not self.spec.is_chain)

    def get_layer(self, name: str):
        """The layer called ``name`` (as in Keras)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise SpecError(f"model '{self.name}' has no layer '{name}'; layers: "
                        + ", ".join(layer.name for layer in self.layers))

    def count_params(self) -> int:
        """All parameters, batchnorm statistics included, as Keras counts them."""
        from cnnlab.net.resolve import summarize

        return summarize(self.spec).total_params

    def to_yaml(self) -> str:
        """The network as a spec file's text (``cnnlab summary``/``train`` read it)."""
        import yaml

        return yaml.safe_dump(self.spec.to_dict(), sort_keys=False)

    def save_spec(self, path: str | Path) -> Path:
        """Write :meth:`to_yaml` to ``path`` (refusing to replace an existing file)."""
        path = Path(path)
        try:
            with open(path, "x", encoding="utf-8") as handle:
                handle.write(self.to_yaml())
        except FileExistsError:
            raise SpecError(f"{path}: exists already; choose another file name") from None
        except OSError as exc:
            raise SpecError(f"{path}: cannot write the spec: {exc.strerror}") from None
        return path

    def _default_input(self):
        from cnnlab.net.presets import default_input

        name = preset_name(self.spec)
        return default_input(name) if name else None

    def build(self, input_shape: tuple[int, ...], num_classes: int | None = None):
        """Build the torch module (seeded, Keras initialisation by default).

        A preset's head takes ``num_classes``; a user's network keeps its own output units.
        """
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
        from cnnlab.engine.session import train_model
        from cnnlab.presenters.progress import ProgressPrinter

        config = _train_config(options, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                               val_split=0 if validation_data is not None else validation_split,
                               seed=self.seed, device=self.device, init=self.init)
        x = check_images(x, "x", self._input_shape())
        labels = check_labels(y, len(x), "y")

        def module():  # built on the first fit, when the data says the input shape and class count
            if self.module is None:
                self.build(x.shape[1:], labels.class_count() if preset_name(self.spec) else None)
            check_classes(labels, self._outputs(), "y")
            return self.module

        validation = self._validation(validation_data, x.shape[1:])
        session = train_model(module, x, labels.indices, config, validation=validation,
                              before_run=self._keep_optimizer, callback=ProgressPrinter() if verbose else None)
        self._state = session.state
        self.history = History(session.state.history)
        return self.history

    def _validation(self, data, sample_shape) -> tuple[np.ndarray, np.ndarray] | None:
        """``validation_data=(x_val, y_val)``, checked as the training data is."""
        if data is None:
            return None
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise InputError("validation_data: expected a pair (x_val, y_val)")
        x = check_images(data[0], "validation_data[0]", sample_shape)
        labels = check_labels(data[1], len(x), "validation_data[1]")
        if self.module is not None:
            check_classes(labels, self._outputs(), "validation_data[1]")
        return x, labels.indices

    def _input_shape(self) -> tuple[int, ...] | None:
        return None if self.module is None else self.module.info.input_shape

    def _outputs(self) -> int:
        return self._require_module().info.output_shape[-1]

    def _keep_optimizer(self, session) -> None:
        if self._state is not None:  # keep the optimizer's moments across fit calls, as Keras does
            session.state.optimizer.load_state_dict(self._state.optimizer.state_dict())

    def evaluate(self, x, y, batch_size: int = 1024) -> dict:
        """``{"loss", "accuracy"}`` on these images and labels (dropout off)."""
        from cnnlab.engine.loop import evaluate_tensors
        from cnnlab.engine.session import images_to_tensor, labels_to_tensor

        device = self._device()
        x = check_images(x, "x", self._input_shape())
        labels = check_labels(y, len(x), "y")
        check_classes(labels, self._outputs(), "y")
        return evaluate_tensors(self._require_module(), images_to_tensor(x, device),
                                labels_to_tensor(labels.indices, device), batch_size)

    def predict(self, x, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities ``(N, classes)`` (the final softmax applied)."""
        import torch

        from cnnlab.engine.session import images_to_tensor

        module = self._require_module().eval()
        tensor = images_to_tensor(check_images(x, "x", self._input_shape()), self._device())
        with torch.no_grad():
            parts = [module.probabilities(tensor[i:i + batch_size]) for i in range(0, len(tensor), batch_size)]
        return torch.cat(parts).cpu().numpy()

    def save_weights(self, path: str | Path) -> Path:
        """The weights as a safetensors file."""
        from cnnlab.engine.checkpoint import export_weights

        return export_weights(self._require_module(), Path(path))

    def load_weights(self, path: str | Path) -> None:
        """Weights from a safetensors file (saved by ``save_weights`` or a run directory)."""
        from cnnlab.engine.checkpoint import load_weights

        load_weights(self._require_module(), Path(path))

    def _require_module(self):
        if self.module is None:
            raise SpecError("the model is not built yet: call fit() or build(input_shape, num_classes)")
        return self.module

    def _device(self):
        return next(self._require_module().parameters()).device


class Sequential(Model):
    """Keras' ``Sequential([...])``: a chain of :mod:`cnnlab.layers` layers, an ``Input()`` first
    (or ``input_shape=`` on the first layer, as in Keras 2), or none (the data decides at ``fit``)."""

    def __init__(self, layers=None, name: str | None = None, **options):
        from cnnlab.net.functional import sequential_spec

        self._items, self._name = list(layers or []), name
        self._setup(sequential_spec(self._items, name) if self._items else None, False, **options)

    def add(self, layer) -> None:
        """Append a layer (before the model is built)."""
        from cnnlab.net.functional import sequential_spec

        if self.module is not None:
            raise SpecError("Sequential.add: the model is built already (after fit); make a new one")
        self.spec = sequential_spec([*self._items, layer], self._name)
        self._items.append(layer)


def _train_config(options: dict, **given) -> TrainConfig:
    """A validated TrainConfig; an unknown keyword names itself and the valid ones."""
    from dataclasses import fields

    valid = sorted({f.name for f in fields(TrainConfig)} - {"seed", "device", "init", "val_split"})
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise InputError(f"fit: unknown argument '{unknown[0]}'; fit takes x, y, batch_size, epochs, "
                         f"validation_split, validation_data, verbose and {', '.join(valid)}")
    return TrainConfig(**given, **options).validate()


def load_data(dataset: str = "cifar10", **options):
    """A :class:`cnnlab.data.Dataset` by name or path (see :func:`cnnlab.data.load_dataset`)."""
    from cnnlab.data import load_dataset

    return load_dataset(dataset, **options)


def show_samples(dataset, split: str = "train", n: int = 10, seed: int = 0):
    """A matplotlib Figure of ``n`` random labelled images (displays itself in a notebook)."""
    from cnnlab.presenters.plots import sample_grid

    images, labels = dataset.split(split)
    return sample_grid(images, labels, dataset.class_names, n, seed, title=f"{dataset.name} ({split})")
