"""cnnlab's torch weights in Keras' layouts, per layer in the order ``set_weights`` takes them.

torch and Keras store the same numbers differently:

* a convolution kernel is torch's (out, in, kh, kw) and Keras' (kh, kw, in, out);
* a depthwise kernel is torch's (in * multiplier, 1, kh, kw), output channel
  ``i * multiplier + m`` reading input channel ``i``, and Keras' (kh, kw, in, multiplier),
  with the same channel order, so a reshape to (in, multiplier, kh, kw) and a transpose;
* a separable convolution is a depthwise kernel, a 1x1 pointwise kernel and one bias;
* a dense kernel is torch's (out, in) and Keras' (in, out). cnnlab's flatten already
  reads channels-last order, as Keras' does, so a dense layer after it needs no
  reordering of its rows;
* batchnorm is [gamma, beta, moving mean, moving variance] (torch's weight, bias,
  running_mean, running_var).

The keys are Keras' variable paths, ``<layer>/<weight>`` ('/' never occurs in a name).
"""

from __future__ import annotations

import numpy as np

from cnnlab.export.network import ExportError, Network
from cnnlab.net.spec import ModelSpec


def _conv(weight: np.ndarray) -> np.ndarray:
    return weight.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)


def _depthwise(weight: np.ndarray, channels: int) -> np.ndarray:
    out, _, kh, kw = weight.shape
    # (in * multiplier, 1, kh, kw) -> (in, multiplier, kh, kw) -> (kh, kw, in, multiplier)
    return weight.reshape(channels, out // channels, kh, kw).transpose(2, 3, 0, 1)


def _same(array: np.ndarray) -> np.ndarray:
    return array


# kind -> [(Keras weight name, cnnlab state-dict key below blocks.<i>., conversion)], in set_weights order.
LAYOUTS = {
    "conv2d": [("kernel", "conv.weight", _conv), ("bias", "conv.bias", _same)],
    "depthwise_conv2d": [("kernel", "conv.weight", "depthwise"), ("bias", "conv.bias", _same)],
    "separable_conv2d": [("depthwise_kernel", "0.conv.weight", "depthwise"),
                         ("pointwise_kernel", "1.conv.weight", _conv), ("bias", "1.conv.bias", _same)],
    "dense": [("kernel", "linear.weight", np.transpose), ("bias", "linear.bias", _same)],
    "batchnorm": [("gamma", "weight", _same), ("beta", "bias", _same), ("moving_mean", "running_mean", _same),
                  ("moving_variance", "running_var", _same)],
}
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
        layout = LAYOUTS.get(layer.kind, [])
        present = [(name, key, convert) for name, key, convert in layout if key in own]
        if {key for _, key, _ in present} != own:
            raise ExportError(f"{layer.label}: the Keras export does not know where its weights "
                              f"{', '.join(sorted(own))} go")
        out[layer.name] = [(f"{layer.name}/{name}", _converted(state[prefix + key], convert, info))
                           for name, key, convert in present]
    return out


def _converted(array: np.ndarray, convert, info) -> np.ndarray:
    result = _depthwise(array, info.input_shape[2]) if convert == "depthwise" else convert(array)
    return np.ascontiguousarray(result, dtype=np.float32)
