"""The Python API: the experiment in a few lines, in a script or a notebook.

>>> import cnnlab
>>> data = cnnlab.load_data("digits")
>>> model = cnnlab.Model("cnn")
>>> history = model.fit(data.x_train, data.y_train, epochs=3, verbose=0)
>>> loss, accuracy = model.evaluate(data.x_test, data.y_test, verbose=0)  # 0: without Keras' printed line
>>> accuracy > 0.8
True
"""

from cnnlab.api.datasets import load_data, show_samples
from cnnlab.api.history import History
from cnnlab.api.loading import load_model
from cnnlab.api.model import Model
from cnnlab.api.sequential import Sequential

__all__ = ["History", "Model", "Sequential", "load_data", "load_model", "show_samples"]
