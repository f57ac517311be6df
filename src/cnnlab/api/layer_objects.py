"""``model.layers`` as Keras has them: layer objects that belong to the model, the same ones on each call.

A layer object (:class:`cnnlab.net.functional.Layer`) that belongs to a model reads and sets that
model's spec: ``model.get_layer("dense").trainable = False`` changes the spec's ``trainable`` field,
which the summary counts, the next ``fit`` trains by (the frozen weights left out of the optimizer),
``save``/``load_model`` keep and every export writes. The layers a ``Sequential([...])`` or a
functional graph was made of are its layers (as in Keras, where ``model.layers[1] is dense``); a
preset, a spec file or a loaded model gets objects made from its spec. No torch here.
"""

from __future__ import annotations

import dataclasses
import weakref
from dataclasses import dataclass, field

from cnnlab.net.fields import Bool
from cnnlab.net.functional import Input, InputLayer, KerasTensor, Layer
from cnnlab.net.spec import INPUT, ModelSpec


@dataclass
class _Cache:
    """The objects of one network shape: ``key`` is the spec without its ``trainable`` flags."""

    key: tuple
    layers: list = field(default_factory=list)
    input: KerasTensor | None = None


class LayerObjects:
    """The model's side of its layer objects: ``layers``, ``trainable`` and the objects it adopts.
    Needs ``self.spec``, ``self.module`` (None or a built SpecModel) and ``self._default_input()``."""

    _layer_cache: _Cache | None = None
    _adopted: tuple = ()  # the user's layer objects the model was made of, in spec order

    @property
    def layers(self) -> list:
        """Keras-style layer objects (an ``InputLayer`` first for a graph), with ``output.shape`` where the
        input shape is known; the same objects on each call, so attributes set on them (``trainable``) stay."""
        if self._spec is None:
            return []  # a Sequential with no layers yet, as Keras'
        spec = self.spec
        key = _shape_key(spec, spec.input_shape or self._default_input())
        if self._layer_cache is None or self._layer_cache.key != key:
            self._layer_cache = self._make_layers(spec, key)
        cache = self._layer_cache
        with_input = cache.input is not None and (self._functional or not spec.is_chain)
        return [InputLayer(cache.input), *cache.layers] if with_input else list(cache.layers)

    @property
    def trainable(self) -> bool:
        """Keras' ``model.trainable``: setting it sets every layer's; reading it, whether any layer trains."""
        return any(layer.trainable for layer in self.spec.layers)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        value = Bool().check(value, f"model '{self.spec.name}': trainable")
        self._set_trainable({layer.name: value for layer in self.spec.layers})

    @property
    def trainable_weights(self) -> list:
        """Keras' ``model.trainable_weights``: the weights that train, as numpy arrays in Keras' order and layouts
        (Keras gives variables; ``len`` and ``.shape`` read the same); ``[]`` until the network is built."""
        return self._weight_values(True)

    @property
    def non_trainable_weights(self) -> list:
        """Keras' ``model.non_trainable_weights``: a frozen layer's weights and the batchnorm statistics."""
        return self._weight_values(False)

    def _weight_values(self, trainable: bool, layers: list[str] | None = None) -> list:
        """The values of the weights of ``layers`` (all, in Keras' order, by default) that train, or do not."""
        from cnnlab.api.weights import read_weights, weight_slots
        from cnnlab.export.keras_weights import keras_order
        from cnnlab.net.presets import preset_name

        if self.module is None and (self._spec is None or self._spec.input_shape is None or preset_name(self._spec)):
            return []  # unbuilt, as Keras' model without its input shape
        module = self._require_module()
        state = module.state_dict(keep_vars=True)  # parameters, and buffers (batchnorm's statistics) that never train
        slots = weight_slots(module, keras_order(module.spec) if layers is None else layers)
        return read_weights(module, [slot for slot in slots if state[slot.key].requires_grad == trainable])

    def _set_trainable(self, flags: dict[str, bool]) -> None:
        """Set the ``trainable`` field of the layers named in ``flags``. A layer taken from another model (whose
        weights it shares) has one flag, as Keras' shared layer object: that model sets it, for both."""
        mine = {}
        for name, value in flags.items():
            owner, owner_name = self._sources().get(name, (None, None))
            if owner is not None:
                owner._set_trainable({owner_name: value})  # comes back here through its followers
            else:
                mine[name] = value
        self._apply_trainable(mine)

    def _apply_trainable(self, flags: dict[str, bool]) -> None:
        """The flags in this model's spec; a built network follows at once (its frozen parameters take no
        gradient; the optimizer of the next fit leaves them out); so do the models sharing these layers."""
        spec = self.spec
        layers = tuple(layer.replace(trainable=flags[layer.name]) if layer.name in flags else layer
                       for layer in spec.layers)
        self.spec = dataclasses.replace(spec, layers=layers)
        if self.module is not None:
            self.module.freeze(_same_flags(self.module.spec, layers))
        for follower, source, name in self.__dict__.get("_followers", ()):
            if follower() is not None and source in flags:
                follower()._apply_trainable({name: flags[source]})

    def _sources(self) -> dict[str, tuple]:
        """``{layer name: (model, its layer name)}`` for the layers taken from another model that still exists."""
        sources = ((name, ref(), owner_name) for name, (ref, owner_name) in self.__dict__.get("_from", {}).items())
        return {name: (owner, owner_name) for name, owner, owner_name in sources if owner is not None}

    def _adopt(self, objects: list) -> None:
        """Make the user's layer objects (in spec order) this model's: each that belongs to no other model
        reads and sets this model's spec from now on; they are ``model.layers`` where all are such and all
        are called (a graph) or none is (a Sequential without its input shape yet). Otherwise (a new head on
        another model's layers) the model makes objects of its own, and the user's free ones still set it."""
        objects = [item for item in objects if isinstance(item, Layer)]
        if len(objects) != len(self.spec.layers):
            return
        free = [item.model in (None, self) for item in objects]
        for item, layer, own in zip(objects, self.spec.layers, free):
            if own:
                item.bind(self, layer.name)
            else:  # another model's layer (its weights shared): one trainable flag for both, as in Keras
                self.__dict__.setdefault("_from", {})[layer.name] = (weakref.ref(item.model), item.name)
                item.model.__dict__.setdefault("_followers", []).append((weakref.ref(self), item.name, layer.name))
        if all(free) and len({item.output is not None for item in objects}) == 1:
            self._adopted = tuple(objects)

    def _make_layers(self, spec: ModelSpec, key: tuple) -> _Cache:
        """Objects for the spec's layers: the adopted ones, else the ones made before (by name), else new;
        connected from one ``Input`` when the input shape is known (a graph's own tensors kept)."""
        before = {item.name: item for item in (self._layer_cache.layers if self._layer_cache else ())}
        before.update({item.name: item for item in self._adopted})
        objects = []
        for layer in spec.layers:
            item = before.get(layer.name)
            if item is None or item.kind_name != layer.kind:
                item = Layer.from_spec(layer)
            item.bind(self, layer.name)
            objects.append(item)
        shape = key[1]
        if shape is None:
            return _Cache(key, objects)
        graph = _graph_input(objects) if self._functional and objects == list(self._adopted) else None
        if graph is not None:
            return _Cache(key, objects, graph)  # a functional model's own graph, as the user made it
        outputs = {INPUT: Input(shape=tuple(shape))}
        for item, layer in zip(objects, spec.layers):
            outputs[layer.name] = item.connect(tuple(outputs[name] for name in layer.inputs), layer.label)
        return _Cache(key, objects, outputs[INPUT])


def _shape_key(spec: ModelSpec, shape) -> tuple:
    """What the objects' shapes depend on: every layer but its ``trainable`` flag, and the input shape."""
    layers = tuple((layer.kind, layer.name, layer.inputs,
                    tuple((k, v) for k, v in layer.fields.items() if k != "trainable")) for layer in spec.layers)
    return layers, None if shape is None else tuple(shape)


def _graph_input(objects: list) -> KerasTensor | None:
    """The ``Input()`` every object's output comes from, where all were called in one graph; else None."""
    inputs = set()
    stack = [item.output for item in objects]
    seen = set()
    while stack:
        tensor = stack.pop()
        if tensor is None:
            return None
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        if tensor.layer is None:
            inputs.add(tensor)
        else:
            stack.extend(tensor.inputs)
    return inputs.pop() if len(inputs) == 1 else None


def _same_flags(module_spec: ModelSpec, layers: tuple) -> ModelSpec:
    """The built network's spec with the ``trainable`` flags of ``layers`` (the model's, by name)."""
    flags = {layer.name: layer.trainable for layer in layers}
    return dataclasses.replace(module_spec, layers=tuple(
        layer.replace(trainable=flags.get(layer.name, layer.trainable)) for layer in module_spec.layers))
