"""Keras' layer names for cnnlab networks: write the course's functional-API code as in Keras.

>>> from cnnlab.layers import Input, Conv2D, MaxPooling2D, Flatten, Dense
>>> import cnnlab
>>> inp = Input(shape=(32, 32, 3))
>>> x = Conv2D(32, (3, 3), padding="same", activation="relu")(inp)
>>> x = MaxPooling2D(pool_size=(2, 2))(x)
>>> out = Dense(10, activation="softmax")(Flatten()(x))
>>> cnnlab.Model(inputs=inp, outputs=out).count_params()
81930

Each class is made from the registry of layer kinds (:mod:`cnnlab.net.registry`), with
Keras' argument names and defaults; a kind registered later is reachable here by its
Keras class name too.
"""

from __future__ import annotations

from cnnlab.net.functional import Input, KerasTensor, Layer, layer_class

Conv2D = layer_class("conv2d")
DepthwiseConv2D = layer_class("depthwise_conv2d")
SeparableConv2D = layer_class("separable_conv2d")
MaxPooling2D = layer_class("maxpool2d")
AveragePooling2D = layer_class("avgpool2d")
GlobalAveragePooling2D = layer_class("globalavgpool2d")
GlobalMaxPooling2D = layer_class("globalmaxpool2d")
ZeroPadding2D = layer_class("zeropadding2d")
Dense = layer_class("dense")
Flatten = layer_class("flatten")
Dropout = layer_class("dropout")
BatchNormalization = layer_class("batchnorm")
Activation = layer_class("activation")
Rescaling = layer_class("rescaling")
Add = layer_class("add")
Concatenate = layer_class("concatenate")

# Keras' short aliases.
MaxPool2D, AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D = (MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
                                                          GlobalMaxPooling2D)


def add(inputs, **kwargs) -> KerasTensor:
    """Keras' functional shortcut: ``add([x, y])`` is ``Add()([x, y])``."""
    return Add(**kwargs)(inputs)


def concatenate(inputs, axis: int = -1, **kwargs) -> KerasTensor:
    """Keras' functional shortcut: ``concatenate([x, y])`` is ``Concatenate()([x, y])``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def __getattr__(name: str):
    """A kind registered after import (a plugin, a test) by its Keras class name."""
    from cnnlab.net.registry import by_keras_class

    kind = by_keras_class(name)
    if kind is None:
        raise AttributeError(f"module 'cnnlab.layers' has no attribute '{name}'")
    return layer_class(kind.name)


__all__ = ["Activation", "Add", "AveragePooling2D", "AvgPool2D", "BatchNormalization", "Concatenate", "Conv2D",
           "Dense", "DepthwiseConv2D", "Dropout", "Flatten", "GlobalAveragePooling2D", "GlobalAvgPool2D",
           "GlobalMaxPool2D", "GlobalMaxPooling2D", "Input", "KerasTensor", "Layer", "MaxPool2D", "MaxPooling2D",
           "Rescaling", "SeparableConv2D", "ZeroPadding2D", "add", "concatenate"]
