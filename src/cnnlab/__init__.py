"""cnnlab: train and compare an MLP and a small CNN on CIFAR-10, correctly and quickly.

The pure parts (specs, shape and parameter inference) import without torch:

>>> import cnnlab
>>> info = cnnlab.summarize("cnn")
>>> info.total_params
1341226
"""

from __future__ import annotations

from cnnlab.engine.threads import spin_on_import

# First, before anything below could load torch: the command line's OpenMP wait (a short spin), so that
# fit from Python or a notebook is as fast as `cnnlab train` on a busy machine; a note if torch came first.
spin_on_import()

# As after `import keras`: keras.callbacks, keras.datasets.cifar10, keras.models.Model... (none imports torch).
from cnnlab import callbacks, datasets, layers, losses, metrics, models, optimizers, utils  # noqa: E402
from cnnlab.api import History, Model, Sequential, load_data, load_model, show_samples  # noqa: E402
from cnnlab.errors import CnnlabError  # noqa: E402
from cnnlab.net.inference import ModelInfo, infer  # noqa: E402
from cnnlab.net.presets import preset  # noqa: E402
from cnnlab.net.resolve import resolve_spec, summarize  # noqa: E402
from cnnlab.net.spec import ModelSpec, SpecError, parse_spec  # noqa: E402
from cnnlab.version import __version__  # noqa: E402


def print_summary(spec, input_shape=None, classes=None) -> None:
    """Print the Keras-style summary table (the same as ``cnnlab summary``)."""
    from cnnlab.presenters.summary_table import format_summary

    print(format_summary(summarize(spec, input_shape, classes)), end="")


__all__ = [
    "CnnlabError", "History", "Model", "ModelInfo", "ModelSpec", "SpecError", "datasets", "infer", "load_data",
    "load_model", "losses", "metrics", "models",
    "Sequential", "callbacks", "layers", "optimizers", "parse_spec", "preset", "print_summary", "resolve_spec",
    "show_samples", "summarize", "utils", "__version__",
]
