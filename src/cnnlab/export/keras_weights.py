"""cnnlab's torch weights in Keras' layouts, per layer in the order ``set_weights`` takes them.

torch and Keras store the same numbers differently (a convolution kernel is torch's
(out, in, kh, kw) and Keras' (kh, kw, in, out), batchnorm is Keras' [gamma, beta, moving
mean, moving variance]...). Each layer kind says where its weights go: ``keras_layout``
names them in Keras' order with the state-dict key each comes from, and ``keras_array``
converts one (see ``cnnlab.net.kinds``). A layer whose weights its kind's layout does not
cover is an ExportError, never a file that loads wrong numbers.

The keys are Keras' variable paths, ``<layer>/<weight>`` ('/' never occurs in a name).
"""

from __future__ import annotations

import numpy as np

from cnnlab.export.network import ExportError, Network
from cnnlab.net.spec import ModelSpec

SKIPPED = ("num_batches_tracked",)  # torch's step counter; Keras has no such weight


def reaching_output(spec: ModelSpec) -> set[str]:
    """Names of the layers the output depends on: the layers ``keras.Model`` keeps."""
    by_name = {layer.name: layer for layer in spec.layers}
    reached, pending = set(), [spec.layers[-1].name]
    while pending:
        name = pending.pop()
        if name in by_name and name not in reached:
            reached.add(name)
            pending.extend(by_name[name].inputs)
    return reached


def keras_weights(network: Network) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Per layer with weights (that the output depends on), its ``[(key, array)]`` in Keras' layouts."""
    state = {key: value.detach().cpu().numpy() for key, value in network.model.state_dict().items()}
    reached = reaching_output(network.model.spec)
    out = {}
    for index, info in enumerate(network.info.layers):
        if info.layer.name not in reached:
            continue
        present = layer_layout(state, index, info)
        if present:
            out[info.layer.name] = [(f"{info.layer.name}/{name}", _keras_array(info.layer.definition, name,
                                                                                state[key], info))
                                    for name, key in present]
    return out


def layer_layout(state: dict, index: int, info) -> list[tuple[str, str]]:
    """Layer ``index``'s weights as ``[(Keras weight name, state-dict key)]`` in Keras' order (``[]`` for a
    layer without weights); ``state`` is the module's state dict (only its keys are read)."""
    layer, prefix = info.layer, f"blocks.{index}."
    own = {key[len(prefix):] for key in state if key.startswith(prefix) and not key.endswith(SKIPPED)}
    present = [(name, key) for name, key in layer.definition.keras_layout if key in own]  # scale=False: no gamma
    if {key for _, key in present} != own:
        raise ExportError(f"{layer.label}: the Keras export does not know where its weights "
                          f"{', '.join(sorted(own))} go (layer kind '{layer.kind}' has no keras_layout "
                          "for them)")
    return [(name, prefix + key) for name, key in present]


def keras_positions(kind, name: str, shape: tuple[int, ...], info) -> np.ndarray:
    """Where each number of a Keras weight comes from: an array of Keras' shape holding, at each place,
    the flat index into cnnlab's torch tensor of ``shape``. The kind's own conversion (``keras_array``)
    moves the indices, so reading a Keras array back into torch's layout (``set_weights``) inverts
    exactly what the export writes, with no second copy of each layout."""
    positions = np.asarray(kind.keras_array(name, np.arange(int(np.prod(shape))).reshape(shape), info))
    if positions.size != int(np.prod(shape)) or \
            not np.array_equal(np.sort(positions, axis=None), np.arange(positions.size)):
        raise ExportError(f"{info.layer.label}: Keras' '{name}' is not a rearrangement of cnnlab's weights")
    return positions


def keras_order(spec: ModelSpec) -> list[str]:
    """The names of the layers a ``keras.Model`` of this graph lists in ``model.layers`` (its weights'
    order), as Keras orders them: deepest first (the longest path to the output), ties in the order a
    walk back from the output first meets them (``keras.src.ops.function.map_graph``). A chain keeps its order."""
    by_name = {layer.name: layer for layer in spec.layers}
    reached, depth, first_seen = reaching_output(spec), {}, {}
    for layer in reversed(spec.layers):  # the spec's order is topological: consumers come after
        if layer.name in reached:
            depth.setdefault(layer.name, 0)
            for source in layer.inputs:
                if source in by_name:
                    depth[source] = max(depth.get(source, 0), depth[layer.name] + 1)
    pending = [spec.layers[-1].name]
    while pending:  # the walk back, each layer's inputs in order (a stack: push them reversed)
        name = pending.pop()
        if name in by_name and name not in first_seen:
            first_seen[name] = len(first_seen)
            pending.extend(reversed(by_name[name].inputs))
    return sorted(reached, key=lambda name: (-depth[name], first_seen[name]))


def _keras_array(kind, name: str, array: np.ndarray, info) -> np.ndarray:
    return np.ascontiguousarray(kind.keras_array(name, array, info), dtype=np.float32)
