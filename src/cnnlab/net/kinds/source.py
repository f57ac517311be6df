"""Python source for a kind's module in an exported PyTorch file: literals, calls, activations.

The kinds write their own export code (``LayerKind.torch_code``) with these; the
generated file imports only torch, so each call names ``nn.…`` or one of the small
helper classes a kind ships with it (``LayerKind.torch_helpers``). Pure Python.
"""

from __future__ import annotations

from typing import Any

from cnnlab.net.geometry import same_padding

# An activation's torch module, as source; None where the layer needs none.
ACTIVATION_CODE = {
    "linear": None, "relu": "nn.ReLU()", "sigmoid": "nn.Sigmoid()", "tanh": "nn.Tanh()",
    "softmax": "nn.Softmax(dim=1)", "gelu": "nn.GELU()", "leaky_relu": "nn.LeakyReLU(0.2)",
    "elu": "nn.ELU()", "silu": "nn.SiLU()", "softplus": "nn.Softplus()",
}


def literal(value: Any) -> str:
    """Python source for a value from a spec: str, bool, int, float, None, or tuples and lists of them."""
    if isinstance(value, str):
        text = repr(value)
        # Double quotes where they need no escaping, as the course's code writes strings.
        return f'"{value}"' if text[0] == "'" and '"' not in value and "\\" not in text else text
    if isinstance(value, (list, tuple)):
        items = ", ".join(literal(v) for v in value)
        return f"({items},)" if isinstance(value, tuple) and len(value) == 1 else \
            f"({items})" if isinstance(value, tuple) else f"[{items}]"
    if isinstance(value, (bool, int, float)) or value is None:
        return repr(value)
    raise TypeError(f"no literal for {type(value).__name__}")


def call(function: str, *args: str, **kwargs: str | None) -> str:
    """``function(arg, key=value)``, leaving out keywords given as None."""
    parts = [*args, *(f"{key}={value}" for key, value in kwargs.items() if value is not None)]
    return f"{function}({', '.join(parts)})"


def unless(value: Any, default: Any) -> str | None:
    """The literal of ``value``, or None (left out of a call) where it is the torch default."""
    return None if value == default else literal(value)


def window_pads(size, window, strides, padding: str, dilation=(1, 1)) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)): the zeros a windowed layer adds on (H, W) for Keras' ``padding``."""
    if padding == "valid":
        return (0, 0), (0, 0)
    return tuple(same_padding(size[i], window[i], strides[i], dilation[i]) for i in (0, 1))
