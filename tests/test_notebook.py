"""docs/notebook.ipynb runs top to bottom in a real Jupyter kernel, and its outputs say what they should."""

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).parent.parent / "docs" / "notebook.ipynb"


@pytest.mark.slow
def test_notebook_runs_and_shows_the_experiment(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    texts, kinds = [], set()
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            kinds.add(output["output_type"])
            assert output["output_type"] != "error", output
            texts.append(output.get("text", "") + str(output.get("data", {}).get("text/plain", "")))
            texts.append(str(output.get("data", {}).get("text/html", "")))
            assert "0%|" not in texts[-2], "a frozen progress bar was left in the notebook"
    text = "\n".join(texts)
    assert "Epoch 5/5" in text and "val_accuracy: " in text       # Keras-style epoch lines on stdout
    assert "Total params: 178,058" in text                        # the MLP's summary on 8x8x1 digits
    assert "<pre>Model: &quot;cnn&quot;" in text                    # the model's HTML repr is its summary
    assert "image/png" in str([o.get("data", {}).keys() for c in notebook.cells for o in c.get("outputs", [])])
    assert text.count(" ━━━━━━━━━━━━━━━━━━━━ ") >= 2 and " - accuracy: " in text   # evaluate's Keras line, twice
    assert "widgets" not in notebook.metadata, "progress widgets' state was saved in the notebook"
    assert len(nbformat.writes(notebook)) < 60_000  # the results and two pictures (111 KB with widget state)
    for name in ("mlp", "cnn"):
        line = next(line for line in text.splitlines() if line.startswith(f"{name}: test accuracy"))
        assert float(line.split()[3].rstrip(",")) > 0.7
