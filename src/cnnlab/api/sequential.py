"""``cnnlab.Sequential``: Keras' chain of layers, a :class:`Model` whose spec grows with ``add``."""

from __future__ import annotations

from cnnlab.api.model import Model
from cnnlab.net.spec import SpecError


class Sequential(Model):
    """Keras' ``Sequential([...])``: a chain of :mod:`cnnlab.layers` layers, an ``Input()`` first
    (or ``input_shape=`` on the first layer, as in Keras 2), or none (the data decides at ``fit``)."""

    def __init__(self, layers=None, name: str | None = None, **options):
        from cnnlab.net.functional import sequential_spec

        self._items, self._name = list(layers or []), name
        self._setup(sequential_spec(self._items, name) if self._has_layers() else None, False, **options)
        if self._has_layers():
            self._adopt(self._items)  # the layers given are the model's own, as in Keras

    def _has_layers(self) -> bool:
        """Whether there is a layer beyond a leading ``Input()`` (Keras' Sequential may start with one alone)."""
        from cnnlab.net.functional import KerasTensor

        return len(self._items) > (1 if self._items and isinstance(self._items[0], KerasTensor) else 0)

    def add(self, layer) -> None:
        """Append a layer (before the model is built)."""
        from cnnlab.net.functional import sequential_spec

        if self.module is not None:
            raise SpecError("Sequential.add: the model is built already (after fit); make a new one")
        before, self._items = self._items, [*self._items, layer]
        try:
            if self._has_layers():
                self.spec = sequential_spec(self._items, self._name)
                self._adopt(self._items)
        except SpecError:
            self._items = before  # a refused layer is not added
            raise
