"""The network language: specs, the registry of layer kinds, shape inference, presets.

Everything here is pure Python except :mod:`cnnlab.net.builder` (and each kind's
``build``), which import torch only when a network is built.
"""
