"""A Keras user's notebook: pyplot's figures draw at ``plt.show()``, ``evaluate`` prints Keras' line at its
default verbosity, and an executed notebook keeps its results but no dead progress-widget state."""

import base64
import io
import re
from contextlib import redirect_stdout

import numpy as np
import pytest

import cnnlab
from habits import habit

NOTEBOOKS = "Notebooks"
# Keras 3's evaluate line, colours removed: `12/12 ━━━━ 0s 2ms/step - accuracy: 0.9556 - loss: 0.1722` (20 ━)
KERAS_LINE = re.compile(r"^(\d+)/\1 ━{20} \d+s \d+(s|ms|us)/step - accuracy: \d\.\d{4} - loss: \d+\.\d{4}$")


def keras_evaluate_line(x, y) -> str | None:
    """The last line Keras 3's evaluate prints at its default verbosity, colours and carriage returns
    removed; None where Keras is not installed."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return None
    model = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    out = io.StringIO()
    with redirect_stdout(out):
        model.evaluate(x, y)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
    return [part for part in re.split(r"[\r\n\x08]+", text) if part.strip()][-1].strip()


@habit("evaluate prints its line", keras="model.evaluate(x, y) prints `12/12 ━━━━ 0s 2ms/step - accuracy: ... - "
       "loss: ...` (verbose='auto')", cnnlab="the same line (verbose='auto' by default; 2: its plain form, 0: none)",
       topic=NOTEBOOKS)
def test_evaluate_prints_keras_line_at_its_default_verbosity(digits, capsys):
    x, y = digits.x_test.astype("float32") / 255, digits.y_test
    theirs = keras_evaluate_line(x, y)
    assert theirs is None or KERAS_LINE.match(theirs), theirs  # the oracle: Keras' own line has this form
    model = cnnlab.Model("mlp", device="cpu")
    model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    capsys.readouterr()
    loss, accuracy = model.evaluate(x, y)
    ours = capsys.readouterr().out.splitlines()
    assert len(ours) == 1 and KERAS_LINE.match(ours[0]), ours
    assert ours[0].startswith("1/1 ") and ours[0].endswith(f"accuracy: {accuracy:.4f} - loss: {loss:.4f}")
    model.evaluate(x, y, batch_size=100, verbose=2)
    assert re.match(r"^4/4 - \d+s - \d+(s|ms|us)/step - accuracy: ", capsys.readouterr().out)
    model.evaluate(x, y, verbose=0)
    assert capsys.readouterr().out == ""


def test_show_samples_is_one_of_pyplots_figures_where_pyplot_is_imported(digits):
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    fig = cnnlab.show_samples(digits, n=4)
    try:
        assert set(plt.get_fignums()) - before == {fig.number} and matplotlib.get_backend().lower() == "agg"
    finally:
        plt.close(fig)


@pytest.mark.slow
@habit("a figure then plt.show() in a notebook", keras="plt.imshow(...); plt.show(): the cell draws the picture",
       cnnlab="cnnlab.show_samples(data); plt.show(): drawn once; also once as a cell's last value", topic=NOTEBOOKS)
@habit("an executed notebook keeps results, not progress bars", keras="fit's progress bar is text on stdout",
       cnnlab="a text line replaced in place, then the epoch's line; no widget state saved", topic=NOTEBOOKS)
def test_a_notebook_draws_at_plt_show_and_keeps_no_widget_state(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    cells = ["import cnnlab\nimport matplotlib.pyplot as plt\ndata = cnnlab.load_data('digits')",
             "cnnlab.show_samples(data, n=4)\nplt.show()",
             "cnnlab.show_samples(data, n=4)",
             "model = cnnlab.Model('mlp')\nhistory = model.fit(data.x_train, data.y_train, epochs=2)"]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    for cell in notebook.cells[1:3]:
        images = [output["data"]["image/png"] for output in cell.outputs if "image/png" in output.get("data", {})]
        assert len(images) == 1, cell.outputs  # drawn, and only once
        assert base64.b64decode(images[0]).startswith(b"\x89PNG")
    outputs = notebook.cells[3].outputs
    lines = [str(output.get("data", {}).get("text/plain", "")) for output in outputs]
    assert sum(line.startswith("36/36 - ") for line in lines) == 2, outputs  # each epoch's line stays
    assert "widgets" not in notebook.metadata and "widget" not in nbformat.writes(notebook)
    assert not any("application/vnd.jupyter.widget-view+json" in output.get("data", {}) for output in outputs)


def test_keras_line_parts():
    from cnnlab.presenters.keras_progress import evaluation_line, keras_bar, per_step

    assert keras_bar(5, 20) == "━" * 5 + "─" * 15 and keras_bar(0, 0) == "━" * 20
    assert [per_step(s) for s in (2.4, 0.0113, 0.000804, 0)] == ["2s/step", "11ms/step", "804us/step", "0s/step"]
    line = evaluation_line({"loss": 0.25, "accuracy": 0.5, "top_k": np.float32(0.75)}, 12, 0.036)
    assert line == "12/12 " + "━" * 20 + " 0s 3ms/step - accuracy: 0.5000 - top_k: 0.7500 - loss: 0.2500"
