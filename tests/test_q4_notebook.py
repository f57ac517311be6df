"""The course's Q4 notebook, written for Keras 3 (examples/q4_cnn_keras.ipynb), runs with `keras` replaced by
`cnnlab` in its imports and nothing else. CIFAR-10 cannot be downloaded here, so the test swaps the one
dataset line for cnnlab's offline digits; where Keras is installed, the same notebook with `keras` put back
runs in Keras too, and the `.keras` file cnnlab saved loads in Keras with the same predictions."""

import os
import re
from pathlib import Path

import numpy as np
import pytest

from habits import habit

os.environ.setdefault("KERAS_BACKEND", "torch")  # before any import of keras

NOTEBOOK = Path(__file__).parent.parent / "examples" / "q4_cnn_keras.ipynb"
DATASET_LINE = "from cnnlab.datasets import cifar10"
OFFLINE_LINE = "from cnnlab.datasets import digits as cifar10"  # the one line the issue lets the test swap


def _notebook(swap_to_keras: bool = False):
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.source = cell.source.replace(DATASET_LINE, OFFLINE_LINE)
            if swap_to_keras:  # back to the Keras original: every cnnlab import but the dataset's
                cell.source = re.sub(r"^from cnnlab\.(?!datasets)", "from keras.", cell.source, flags=re.M)
    return notebook


def _execute(notebook, folder: Path, env: dict | None = None):
    nbclient = pytest.importorskip("nbclient")
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
    previous = {key: os.environ.get(key) for key in (env or {})}
    os.environ.update(env or {})
    try:
        client.execute()
    finally:
        for key, value in previous.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    return "\n".join(str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
                     for cell in notebook.cells for output in cell.get("outputs", []))


def test_the_notebook_imports_only_cnnlab():
    sources = "\n".join(cell.source for cell in _notebook().cells if cell.cell_type == "code")
    imports = re.findall(r"^(?:from|import) (\S+)", sources, flags=re.M)
    assert {name.split(".")[0] for name in imports} == {"cnnlab", "matplotlib", "numpy"}
    assert "keras" not in sources.replace("cnn.keras", "").replace("cnn_best.keras", "")


@pytest.mark.slow
@habit("the course's Q4 notebook (Keras 3 imports replaced by cnnlab)", keras="examples/q4_cnn_keras.ipynb "
       "with keras imports", cnnlab="runs top to bottom unchanged; cnn.keras loads in Keras with equal predictions",
       topic="The course's notebook")
def test_q4_notebook_runs_with_cnnlab_and_its_file_loads_in_keras(tmp_path):
    notebook = _notebook()
    text = _execute(notebook, tmp_path)
    assert "Epoch 5/5" in text or "Epoch " in text and "restoring" in text.lower()
    assert "reloaded model predicts the same: True" in text
    assert re.search(r"test accuracy 0\.[5-9]\d*", text), text[-2000:]
    assert "image/png" in str([output.get("data", {}).keys() for cell in notebook.cells
                               for output in cell.get("outputs", [])])  # plt.show() drew the figures
    keras = pytest.importorskip("keras")
    from cnnlab.datasets import digits

    (_, _), (x_test, _) = digits.load_data()
    images = x_test[:50].astype("float32") / 255.0
    import cnnlab

    ours = cnnlab.load_model(tmp_path / "cnn.keras").predict(images)
    theirs = keras.saving.load_model(tmp_path / "cnn.keras").predict(images, verbose=0)
    np.testing.assert_allclose(theirs, ours, atol=1e-5)


@pytest.mark.slow
def test_the_same_notebook_runs_in_keras(tmp_path):
    pytest.importorskip("keras")
    text = _execute(_notebook(swap_to_keras=True), tmp_path, {"KERAS_BACKEND": "torch"})
    assert "reloaded model predicts the same: True" in text
    assert "test accuracy" in text
