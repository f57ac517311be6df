"""Per layer, the torch module of a standalone PyTorch file, as source code: each kind writes its own.

A kind's ``torch_code`` (in ``cnnlab.net.kinds``) gives its module the submodule names
cnnlab's own builder gives (``conv``, ``linear``, ``0``/``1`` of a separable convolution,
batchnorm's own), so cnnlab's state dict, ``blocks.<i>.…``, loads into the generated
network with ``strict=True``. Keras' semantics that torch's defaults lack are small
helper classes each kind ships (``torch_helpers``), copied into the file only when a
layer calls them.
"""

from __future__ import annotations

import re

from cnnlab.export.codegen import literal
from cnnlab.export.network import ExportError
from cnnlab.net.inference import LayerInfo


def module_code(info: LayerInfo, strip_softmax: bool) -> str:
    """Source of the torch module for one layer; ``strip_softmax`` leaves the output layer's softmax out."""
    layer = info.layer
    activation = "linear" if strip_softmax else layer.fields.get("activation", "linear")
    try:
        code = layer.definition.torch_code(info, activation)
    except NotImplementedError:  # the kind's class has no torch_code of its own
        raise ExportError(f"{layer.label}: the PyTorch export has no code for layer kind '{layer.kind}'") from None
    if not layer.trainable:
        return f"{code}.requires_grad_(False)"  # Keras' trainable=False
    kernel = layer.frozen_kernel
    return f"frozen_kernel({code}, {literal(kernel[1])})" if kernel else code


# cnnlab's kernel_trainable: false, which no torch module's argument says: the kernel takes no gradient
_FROZEN_KERNEL = '''def frozen_kernel(module, name):
    """``module`` with its weight ``name`` frozen (cnnlab's kernel_trainable: false); the bias still trains."""
    module.get_parameter(name).requires_grad_(False)
    return module'''


def helpers_of(layers: list[LayerInfo]) -> dict[str, str]:
    """Every helper the layers' kinds ship: name -> source, in the order the layers first need them
    (the file's own ``frozen_kernel`` first)."""
    helpers: dict[str, str] = {"frozen_kernel": _FROZEN_KERNEL}
    for info in layers:
        for name, source in info.layer.definition.torch_helpers.items():
            if helpers.setdefault(name, source) != source:
                raise ExportError(f"{info.layer.label}: layer kind '{info.layer.kind}' ships a helper "
                                  f"'{name}' that another kind ships differently")
    return helpers


def helpers_used(code: str, helpers: dict[str, str]) -> list[str]:
    """The sources of the helpers the modules' code calls, in ``helpers``' order."""
    return [source for name, source in helpers.items() if re.search(rf"(?<![\w.]){name}\(", code)]
