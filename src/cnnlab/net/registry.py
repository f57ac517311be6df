"""The registry of layer kinds: each kind is one class, defined once, in one place.

A kind declares its fields (types, defaults, Keras argument names), its Keras class,
how many inputs it takes, and implements its output-shape rule, its parameter count
with the formula, its MACs, ``build`` (its torch module), and its exports: ``torch_code``
(its module in a standalone PyTorch file) and ``keras_layout`` (where its weights go in
Keras). Parsing, validation,
inference, the summary, the torch builder, ``cnnlab.layers``, ``cnnlab models`` and
the randomized tests all read this registry, so a new kind is one class::

    @register
    class Scale(LayerKind):
        name, keras_class, doc = "scale", "Scale", "multiply each channel by a learned factor"

        def output_shape(self, layer, shapes, where):
            return shapes[0]

        def params(self, layer, shapes):
            return Params(shapes[0][-1], formula=f"{shapes[0][-1]}")

        def build(self, info):
            ...  # a torch.nn.Module taking (N, C, H, W) or (N, D)

Pure Python: only ``build`` imports torch, when a network is built. The registry imports no
kind: it is the floor the kinds stand on, and ``cnnlab/net/__init__.py`` fills it with the built-in
ones (importing any module of ``cnnlab.net`` runs that first).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from cnnlab.errors import SpecError
from cnnlab.net.fields import Bool, Field, NonNegativeInt

if TYPE_CHECKING:
    from cnnlab.net.inference import LayerInfo
    from cnnlab.net.spec import LayerSpec

Shape = tuple[int, ...]

# Fields every kind has, as every Keras layer has them: ``register`` adds them after a kind's own.
# ``trainable: false`` freezes the layer (Keras' rule): its weights count as non-trainable, the
# optimizer leaves them alone, and a frozen batchnorm normalises with its moving statistics.
# ``trainable_epochs: N`` (cnnlab's; 0: every epoch) trains the layer in the first N epochs only, as a
# Keras callback setting ``trainable = False`` after epoch N would (airbench's whitening bias: 3).
COMMON_FIELDS: dict[str, Field] = {"trainable": Field(Bool(), True),
                                   "trainable_epochs": Field(NonNegativeInt(), 0, cnnlab_field=True)}


def shape_text(shape: Shape) -> str:
    """Keras' way of showing a shape: ``(None, 8, 8, 3)``."""
    return "(" + ", ".join(["None", *map(str, shape)]) + ")"


@dataclass(frozen=True)
class Params:
    """A layer's parameters: trainable and not (Keras counts both), and the formula shown."""

    trainable: int = 0
    non_trainable: int = 0
    formula: str = "0"

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable


class LayerKind:
    """Base class of a layer kind; subclasses override what differs from a parameter-free layer."""

    name: ClassVar[str]                    # the spec's ``kind``, e.g. "conv2d"
    keras_class: ClassVar[str]             # e.g. "Conv2D": summaries and cnnlab.layers use it
    keras_prefix: ClassVar[str] = ""       # auto names (conv2d, conv2d_1...); default from keras_class
    doc: ClassVar[str] = ""                # one line for `cnnlab models` and the README
    fields: ClassVar[dict[str, Field]] = {}
    keras_args: ClassVar[tuple[str, ...]] = ()  # the Keras constructor's positional order (Keras names)
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int | None] = 1   # None: any number (merge layers)
    image_only: ClassVar[bool] = False     # needs (H, W, C) input
    in_keras: ClassVar[bool] = True        # False: keras.layers has no layer of this meaning (cnnlab's own)
    augmentation: ClassVar[bool] = False   # moves, crops or erases pixels in training; never rescales them
    inference_when_frozen: ClassVar[bool] = False  # trainable false: runs as in inference, also in training
    # Exports. Helper classes the PyTorch file needs for this kind: name -> source, copied in where called.
    torch_helpers: ClassVar[dict[str, str]] = {}
    # (Keras weight name, state-dict key below the layer's module), in the order Keras' set_weights takes them.
    keras_layout: ClassVar[tuple[tuple[str, str], ...]] = ()

    @property
    def prefix(self) -> str:
        """Keras' auto-name prefix: its class name in snake case (MaxPooling2D -> max_pooling2d)."""
        if self.keras_prefix:
            return self.keras_prefix
        words = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", self.keras_class)
        return re.sub(r"([a-z])([A-Z])", r"\1_\2", words).lower()

    def normalize(self, fields: dict[str, Any], where: str) -> dict[str, Any]:
        """Cross-field rules and derived defaults, after every field is checked."""
        return fields

    def output_shape(self, layer: LayerSpec, shapes: tuple[Shape, ...], where: str) -> Shape:
        raise NotImplementedError

    def params(self, layer: LayerSpec, shapes: tuple[Shape, ...]) -> Params:
        return Params()

    def macs(self, layer: LayerSpec, shapes: tuple[Shape, ...], output: Shape) -> int:
        """Multiply-accumulates of the layer's weights per sample (0 for weight-free layers)."""
        return 0

    def build(self, info: LayerInfo) -> Any:
        """The torch module (channels-first tensors); merge kinds' modules take one tensor per input."""
        raise NotImplementedError(f"layer kind '{self.name}' has no torch module")

    def torch_code(self, info: LayerInfo, activation: str) -> str:
        """Source of the layer's module in a standalone PyTorch file (``cnnlab export --to pytorch``).

        Its submodules are named as ``build``'s, so cnnlab's state dict loads into it strictly;
        ``activation`` is the one to apply (the output layer's softmax is left to the loss)."""
        raise NotImplementedError(f"layer kind '{self.name}' has no PyTorch export")

    def keras_array(self, weight: str, array: Any, info: LayerInfo) -> Any:
        """cnnlab's numpy array of the Keras weight named ``weight`` (see ``keras_layout``), in Keras'
        layout; the same array where both store it alike."""
        return array


KINDS: dict[str, LayerKind] = {}


def register(cls: type[LayerKind]) -> type[LayerKind]:
    """Class decorator: add a kind to the registry (its name and Keras class must be new); the kind's
    fields gain :data:`COMMON_FIELDS` after its own."""
    cls.fields = {**cls.fields, **{name: spec_field for name, spec_field in COMMON_FIELDS.items()
                                   if name not in cls.fields}}
    kind = cls()
    for other in KINDS.values():
        if kind.name == other.name or kind.keras_class == other.keras_class:
            raise ValueError(f"layer kind '{kind.name}' ({kind.keras_class}) is registered already")
    KINDS[kind.name] = kind
    return cls


def unregister(name: str) -> None:
    KINDS.pop(name, None)


@contextlib.contextmanager
def registered(cls: type[LayerKind]):
    """Register a kind for the duration of a ``with`` block (tests, experiments)."""
    register(cls)
    try:
        yield KINDS[cls.name]
    finally:
        unregister(cls.name)


def all_kinds() -> dict[str, LayerKind]:
    """Every registered kind: the built-in ones are there, ``cnnlab.net`` registers them as it is imported."""
    return KINDS


def get_kind(name: str) -> LayerKind:
    kinds = all_kinds()
    if name not in kinds:
        raise SpecError(f"unknown layer kind {name!r}")
    return kinds[name]


def by_keras_class(keras_class: str) -> LayerKind | None:
    return next((kind for kind in all_kinds().values() if kind.keras_class == keras_class), None)
