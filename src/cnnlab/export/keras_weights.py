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
        layer, prefix = info.layer, f"blocks.{index}."
        own = {key[len(prefix):] for key in state if key.startswith(prefix) and not key.endswith(SKIPPED)}
        if not own or layer.name not in reached:
            continue
        kind = layer.definition
        present = [(name, key) for name, key in kind.keras_layout if key in own]  # scale=False: no gamma
        if {key for _, key in present} != own:
            raise ExportError(f"{layer.label}: the Keras export does not know where its weights "
                              f"{', '.join(sorted(own))} go (layer kind '{layer.kind}' has no keras_layout "
                              "for them)")
        out[layer.name] = [(f"{layer.name}/{name}", _keras_array(kind, name, state[prefix + key], info))
                           for name, key in present]
    return out


def _keras_array(kind, name: str, array: np.ndarray, info) -> np.ndarray:
    return np.ascontiguousarray(kind.keras_array(name, array, info), dtype=np.float32)
