"""The network language: specs, the registry of layer kinds, shape inference, presets.

Everything here is pure Python except :mod:`cnnlab.net.builder` (and each kind's
``build``), which import torch only when a network is built.

Importing the package registers the built-in layer kinds, so that whoever reads the registry
(``cnnlab.net.registry``, a leaf that imports no kind) finds them there.
"""

from cnnlab.net import kinds  # noqa: F401  (registers the built-in kinds)
