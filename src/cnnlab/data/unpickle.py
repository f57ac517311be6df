"""A restricted unpickler for CIFAR-10's batch files.

The genuine batches hold a dict of numpy arrays, lists, ints and byte strings.
Only the few globals those need are admitted, so a crafted batch cannot name
``os.system`` or any other callable and run code while loading.
"""

from __future__ import annotations

import io
import pickle

import numpy as np

from cnnlab.data.dataset import DatasetError
from cnnlab.errors import describe

_NUMPY_CORE = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"

# (module, name) -> where to find it today; numpy 2 moved numpy.core to numpy._core.
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): (f"{_NUMPY_CORE}.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): (f"{_NUMPY_CORE}.multiarray", "_reconstruct"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("_codecs", "encode"): ("_codecs", "encode"),  # how protocol 2 spells bytes objects
}


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")
        import importlib

        where, attr = ALLOWED_GLOBALS[(module, name)]
        return getattr(importlib.import_module(where), attr)


def restricted_loads(data: bytes, source: str):
    """Unpickle ``data`` (Python 2 pickles read as bytes), admitting only array globals."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DatasetError(f"{source}: refused or unreadable pickle: {describe(exc)}") from None
