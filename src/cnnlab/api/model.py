"""``cnnlab.Model``: a network with fit/evaluate/predict, as in Keras (see cnnlab.api; ``Sequential`` and
``load_model`` build on it in sequential.py and loading.py)."""

from __future__ import annotations

import numpy as np

from cnnlab.api.callback_bridge import CallbackBridge
from cnnlab.api.features import share_blocks, shared_sources
from cnnlab.api.fit_options import _batch_size, _check_verbose, _epochs, _progress, _say_evaluation, _train_config
from cnnlab.api.history import History
from cnnlab.api.keras_notes import first_time_notes
from cnnlab.api.layer_objects import LayerObjects
from cnnlab.api.model_files import ModelFiles
from cnnlab.api.model_object import ModelObject, channels_last
from cnnlab.api.views import NetworkViews
from cnnlab.api.weights import WeightsMixin
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.inputs import InputError, check_images, check_labels
from cnnlab.net.presets import preset_name
from cnnlab.net.resolve import fit_spec, resolve_spec
from cnnlab.net.spec import ModelSpec, SpecError


class Model(ModelObject, WeightsMixin, LayerObjects, ModelFiles, NetworkViews):
    """A network with fit/evaluate/predict: a preset name, spec file, YAML text or list, or a graph
    made with :mod:`cnnlab.layers` as in Keras (``Model(inputs=inp, outputs=out)``).

    Images are ``(N, H, W, C)``: uint8 (scaled to [0, 1]) or float; labels are class
    indices or one-hot rows. The torch module is built on the first ``fit`` (or
    ``build``), when the input shape and class count are known.

    ``seed``: the initial weights, dropout, shuffling and validation split follow from it
    (``seed=0`` gives ``cnnlab train``'s numbers); without one, a new seed is drawn, so
    runs differ as in Keras (:func:`cnnlab.utils.set_random_seed` makes them repeat), and
    kept in ``model.seed``. Python's, numpy's and torch's global generators are left as they were.
    """

    def __init__(self, spec="cnn", outputs=None, *, inputs=None, name: str | None = None, init: str = "keras",
                 device: str = "auto", seed: int | None = None):
        functional = inputs is not None or outputs is not None
        if functional:  # Keras' Model(inputs, outputs), by position or by name
            from cnnlab.net.functional import functional_spec, graph_layers

            model_spec = functional_spec(spec if inputs is None else inputs, outputs, name)
        else:
            model_spec = resolve_spec(spec).renamed(name)
        self._setup(model_spec, functional, init, device, seed)
        if functional:
            graph = graph_layers(spec if inputs is None else inputs, outputs)
            self._adopt(graph)  # the graph's layers are its own
            self._shared = shared_sources(self, graph)  # another model's layers: built with its weights (features.py)

    def _setup(self, spec, functional: bool, init: str = "keras", device: str = "auto",
               seed: int | None = None) -> None:
        from cnnlab.api.compiling import Compiled
        from cnnlab.engine.seeds import model_seed

        self._spec, self._functional, self._compiled = spec, functional, Compiled()
        # Without a seed, a new one (runs differ, as in Keras); kept here, so Model(seed=model.seed) repeats the run.
        self.init, self.device, self.seed = init, device, model_seed(seed)
        self.module = None
        self.class_names: list[str] | None = None  # known for models loaded from runs or files
        self.history: History | None = None
        self._state = None
        self._precision = "fp32"  # what fit trained in ("auto" resolved): evaluate and predict use it too

    @property
    def spec(self) -> ModelSpec:
        """The network as a validated spec (what YAML would give)."""
        if self._spec is None:
            raise SpecError("the model has no layers yet: add() some first")
        return self._spec

    @spec.setter
    def spec(self, value: ModelSpec) -> None:
        self._spec = value

    def build(self, input_shape: tuple[int, ...], num_classes: int | None = None):
        """Build the torch module (initialised from ``self.seed``, Keras initialisation by default).

        A preset's head takes ``num_classes``; a user's network keeps its own output units.
        """
        from cnnlab.engine.memory import check_build_memory
        from cnnlab.engine.seeds import run_generators
        from cnnlab.net.builder import build_model
        from cnnlab.net.resolve import summarize

        self.spec = fit_spec(self.spec, input_shape, num_classes)
        check_build_memory(summarize(self.spec), "cpu")  # a network too big is refused before it is allocated
        with run_generators(self.seed):  # the user's generators are given back as they were
            self.module = build_model(self.spec, init=self.init)
        share_blocks(self)  # a feature model runs the trained blocks of the model its layers came from
        return self.module

    def compile(self, optimizer="adam", loss=None, metrics=None, **unsupported) -> None:
        """Keras' compile: ``optimizer`` by name (``"adam"``, ``"Adam"``, ``"sgd"``, ``"adamw"``) or object
        (``cnnlab.optimizers.Adam(learning_rate=1e-3)``); ``loss`` ``categorical_crossentropy`` (one-hot labels)
        or ``sparse_categorical_crossentropy`` (class indices); ``metrics=["accuracy"]``. Optional: without
        compile, ``fit`` uses the experiment's recipe (Adam 0.001) and takes either label format."""
        from cnnlab.api.compiling import compile_options

        self._compiled = compile_options(optimizer, loss, metrics, **unsupported)

    def fit(self, x=None, y=None, batch_size: int | None = None, epochs: int | None = None, verbose=1,
            callbacks=None, validation_split: float | None = None, validation_data=None, shuffle: bool = True,
            class_weight=None, sample_weight=None, initial_epoch: int = 0, steps_per_epoch: int | None = None,
            validation_steps: int | None = None, **options) -> History:
        """Train, with Keras' arguments in Keras' order; returns (and keeps) the History.

        Defaults are the experiment's recipe (batch 32, 5 epochs, 20% validation; Keras' own
        defaults are 1 epoch and no validation). ``verbose`` is 0 (silent), 1 (progress bar)
        or 2 (one line per epoch). ``options`` are further :class:`TrainConfig` fields
        (``schedule``, ``split_method``, ``early_stopping``, ``label_smoothing``...); ``recipe="fast"``
        starts from a named recipe (the preset ``fast`` starts from its own). Calling ``fit`` again trains on.

        ``x`` may be a source of batches instead of arrays (a generator, a PyDataset-like object, a torch
        DataLoader or Dataset, ``image_dataset_from_directory``'s dataset; ``validation_data`` too): see
        :mod:`cnnlab.api.data_sources`. ``class_weight``/``sample_weight`` weigh each image's loss as Keras does.
        """
        from cnnlab.api.data_sources import FitData, fit_data
        from cnnlab.engine.memory import check_fit_memory
        from cnnlab.engine.preflight import check_validation_needs
        from cnnlab.engine.recipes import recipe_options
        from cnnlab.engine.session import train_model
        from cnnlab.engine.steps import NonFiniteLossError

        data: FitData = fit_data(self, x, y, batch_size, class_weight, sample_weight, steps_per_epoch, self.seed,
                                 shuffle)
        if not shuffle and not data.streamed:  # a stream's own order is kept with shuffle=False, as in Keras
            raise InputError("fit: shuffle=False is not supported (cnnlab always shuffles, seeded)")
        if validation_split and not data.arrays:
            raise InputError("fit: validation_split needs arrays (as in Keras); give validation_data for a dataset")
        named = recipe_options(preset_name(self.spec), options.get("recipe"))  # fast's own; homework's are the defaults
        recipe = {"batch_size": data.batch_size or
                  (named.get("batch_size", TrainConfig.batch_size) if batch_size is None else batch_size),
                  "epochs": _epochs(named.get("epochs") if epochs is None else epochs, initial_epoch),
                  "val_split": 0 if validation_data is not None or not data.arrays else
                  named.get("val_split", TrainConfig.val_split) if validation_split is None else validation_split}
        config = _train_config(options, {**named, **self._compiled.options, **recipe, **options, "seed": self.seed,
                                         "device": self.device, "init": self.init})
        labels = data.labels
        validation = self._validation(validation_data, data.sample_shape, validation_steps)
        check_validation_needs(config, validation)  # the pre-flight: once, before anything is built
        check_fit_memory(self.spec, self.module, data.images, labels, config, validation)  # before anything is built

        def module():  # built on the first fit, when the data says the input shape and class count
            if self.module is None:
                self.build(data.sample_shape, labels.class_count() if preset_name(self.spec) else None)
            self._compiled.check_outputs(self._outputs(), self.spec)
            self._compiled.check_classes(labels, self._outputs(), "y")
            if validation is not None:
                self._compiled.check_classes(validation[2], self._outputs(), "validation_data[1]")
            self.module.freeze(self.module.spec)  # this model's trainable flags (a block it shares follows it)
            return self.module

        bridge = CallbackBridge(self, callbacks, _progress(verbose), initial_epoch)
        for note in first_time_notes(epochs, validation_split, validation_data, options, data.arrays):
            bridge.note(note)  # once per process, where a Keras habit meets a deliberate difference
        try:
            train_model(module, data.x, None if data.streamed else labels.indices, config,
                        validation=validation and validation[:2], callbacks=[bridge], metrics=self._compiled.metrics,
                        weights=data.weights)
        except NonFiniteLossError as error:
            if not bridge.terminates_on_nan:
                raise
            bridge.on_invalid_loss(error)
            bridge.on_train_end()  # TerminateOnNaN: training ends there, as Keras ends it
        self.history = History([record.to_dict() for record in bridge.records()], bridge.logs, seed=self.seed)
        return self.history

    def _attach(self, session) -> None:
        """Before the first epoch of a fit: the optimizer's moments kept from the last fit, the live state
        (callbacks read and set the learning rate through it) and the precision it trains in."""
        self._keep_optimizer(session)
        self._state = session.state
        self._precision = session.config.precision
        self._smoothing = session.config.label_smoothing  # evaluate's loss is the one fit trained with

    @property
    def learning_rate(self) -> float:
        """The optimizer's current learning rate (settable, as callbacks do)."""
        return self._state_now().optimizer.param_groups[0]["lr"]

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        for group in self._state_now().optimizer.param_groups:
            group["lr"] = value * group.get("lr_scale", 1.0)  # the biases' group keeps its bias_lr_scale

    def _state_now(self):
        if self._state is None:
            raise InputError("the model has no optimizer yet: fit() creates it")
        return self._state

    def _validation(self, data, sample_shape, steps=None) -> tuple | None:
        """``validation_data=(x_val, y_val)`` or a source of batches (read once, ``steps`` batches), checked as the
        training data is: ``(x, class indices, Labels)`` (the labels are checked against the outputs once the
        network is built)."""
        from cnnlab.api.data_sources import evaluation_arrays

        if data is None:
            return None
        if isinstance(data, (tuple, list)):
            if len(data) != 2:
                raise InputError("validation_data: expected a pair (x_val, y_val) or a source of batches "
                                 "(validation sample weights are not supported)")
            x = self._images(data[0], "validation_data[0]", sample_shape)
            labels = check_labels(data[1], len(x), "validation_data[1]")
            self._compiled.check_labels(labels, "validation_data[1]")
            return x, labels.indices, labels
        x, labels = evaluation_arrays(self, data, None, steps, self.seed, None, "validation_data")
        return self._images(x, "validation_data", sample_shape), labels.indices, labels

    def _images(self, x, name: str, sample_shape=None):
        """``x`` checked as images for this network (``check_images``); 0..255 floats pass where the network
        begins with ``Rescaling(1./255)``, as in Keras."""
        from cnnlab.net.kinds.core import expects_raw_pixels

        shape = self._input_shape() if sample_shape is None else sample_shape
        return check_images(x, name, shape, raw_pixels=self._spec is not None and expects_raw_pixels(self.spec))

    def _input_shape(self) -> tuple[int, ...] | None:
        if self.module is None:
            return None if self._spec is None else self._spec.input_shape
        return self.module.info.input_shape

    def _outputs(self) -> int:
        return self._require_module().info.output_shape[-1]

    def _keep_optimizer(self, session) -> None:
        from cnnlab.engine.optim import carry_state

        if self._state is not None:  # keep the optimizer's moments across fit calls, as Keras does
            carry_state(self._state.optimizer, session.state.optimizer)  # also when layers were (un)frozen

    def evaluate(self, x=None, y=None, batch_size: int | None = None, verbose="auto", return_dict: bool = False,
                 tta: str | None = None, steps: int | None = None):
        """``[loss, accuracy, *compile's other metrics]`` on these images and labels (dropout off), as Keras
        returns them; ``return_dict=True`` gives ``{"loss": ..., "accuracy": ...}`` (compile's names);
        ``tta="flip"``: see :mod:`cnnlab.engine.tta`.
        Runs in the precision ``fit`` trained in (bf16 only where this machine has bf16 units), as Keras'
        mixed-precision policy does and ``cnnlab evaluate`` does for a run. ``verbose`` "auto" (Keras'
        default) or 1 prints Keras' line (``12/12 ━━━━ 0s 2ms/step - accuracy: ... - loss: ...``), 2 its
        plain form, 0 nothing."""
        import time

        from cnnlab.api.data_sources import evaluation_arrays
        from cnnlab.engine.batches import image_batches, labels_to_tensor
        from cnnlab.engine.loop import evaluate_tensors
        from cnnlab.engine.tta import with_tta

        _check_verbose(verbose)
        device = self._device()
        x, labels = evaluation_arrays(self, x, y, steps, self.seed, batch_size)  # a source of batches: read once
        self._compiled.check_classes(labels, self._outputs(), "y")
        started = time.perf_counter()
        objective = self._compiled.objective(self.module, getattr(self, "_smoothing", 0.0))  # fit's loss
        result = evaluate_tensors(with_tta(self._require_module(), tta), image_batches(x, device),
                                  labels_to_tensor(labels.indices, device), _batch_size(batch_size),
                                  self._inference_precision(device), objective=objective,
                                  metrics=self._compiled.metrics)
        scores = {name: np.asarray(value, np.float32) if isinstance(value, list) else value  # per class: an array
                  for name, value in result["scores"].items()}
        logs = {"loss": result["loss"], self._compiled.metric: result["accuracy"], **scores}
        _say_evaluation(logs, verbose, -(-len(x) // _batch_size(batch_size)), time.perf_counter() - started)
        return logs if return_dict else list(logs.values())  # Keras' order: loss, then compile's metrics

    def predict(self, x, batch_size: int | None = None, verbose=0, tta: str | None = None,
                steps: int | None = None) -> np.ndarray:
        """Class probabilities ``(N, classes)`` (the final softmax applied, float32); one image may come
        without its batch axis. ``tta="flip"``: the mean over each image and its mirror (:mod:`cnnlab.engine.tta`).
        Runs in the precision ``fit`` trained in, as :meth:`evaluate` does. ``x`` may be a source of
        batches (``steps`` of them: see :mod:`cnnlab.api.data_sources`)."""
        import torch

        from cnnlab.api.data_sources import prediction_images
        from cnnlab.engine.batches import images_to_tensor
        from cnnlab.engine.steps import autocast
        from cnnlab.engine.tta import with_tta

        module = with_tta(self._require_module().eval(), tta)
        _check_verbose(verbose)
        batch_size = _batch_size(batch_size)
        device = self._device()
        tensor = images_to_tensor(self._images(prediction_images(self, x, steps, self.seed, batch_size), "x"), device)
        with torch.no_grad(), autocast(device, self._inference_precision(device)):
            parts = [module.probabilities(tensor[i:i + batch_size]) for i in range(0, len(tensor), batch_size)]
        return channels_last(torch.cat(parts)).cpu().numpy()  # a feature model's maps: (N, H, W, C), as Keras

    def _inference_precision(self, device) -> str:
        """The precision fit trained in, as ``cnnlab evaluate`` uses a run's: fp32 where bf16 would be slow here."""
        from cnnlab.engine.precision import inference_precision

        return inference_precision(self._precision, device)

    def _require_module(self):
        """The torch module; a network whose input shape and outputs are known is built on first use
        (as Keras builds a functional model at once), so an untrained model predicts and loads weights."""
        if self.module is None and self._spec is not None and self._spec.input_shape is not None \
                and not preset_name(self._spec):
            self.build(self._spec.input_shape)
        if self.module is None:
            raise SpecError("the model is not built yet: call fit() or build(input_shape, num_classes)")
        return self.module

    def _device(self):
        import torch

        module = self._require_module()  # a network without weights (a feature model of a flatten) runs on the CPU
        return next((param.device for param in module.parameters()), torch.device("cpu"))
