"""The training core stays one thing: one epoch loop, one list of callbacks, one evaluation path, one model
loader, one pre-flight (issue 30). A second loop or hook path creeping back fails here, naming where."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "cnnlab"

# call name -> the modules (relative to the package) that alone may make it
ONLY_IN = {
    "cross_entropy": {"engine/steps.py", "engine/evaluation.py"},   # a loss computed elsewhere is a second loop
    "backward": {"engine/steps.py"},                                # one training step
    "randperm": {"engine/loop.py", "engine/estimate.py"},           # one epoch's shuffle (and the estimate's batch)
    "build_model": {"api/model.py", "runs/model_file.py", "runs/training.py", "export/network.py",
                    "export/keras_export.py"},  # there: the generated Keras file's own build_model()
    "read_checkpoint": {"engine/checkpoint.py", "runs/model_file.py"},
    "check_memory": {"engine/memory.py", "engine/preflight.py"},    # the pre-flight's memory check
    "check_validation_needs": {"engine/preflight.py", "api/model.py"},
}
# function name -> the one module that may define it
DEFINED_ONLY_IN = {
    "train_epoch": "engine/loop.py", "run_epochs": "engine/loop.py", "train_step": "engine/steps.py",
    "batch_logits": "engine/evaluation.py", "evaluation_sums": "engine/evaluation.py",
    "predict_logits": "engine/evaluation.py", "score_logits": "engine/evaluation.py",
    "read_model": "runs/model_file.py", "write_model_file": "runs/model_file.py", "load_run": "runs/model_file.py",
    "preflight_run": "engine/preflight.py", "check_network": "engine/preflight.py",
}
# parameters that were hook paths beside the callback list
RETIRED_PARAMETERS = {"before_run", "on_epoch_saved"}


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(), str(path))


def call_name(node: ast.Call) -> str | None:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def test_the_walk_sees_the_package():
    names = {name for name, _ in modules()}
    assert {"engine/loop.py", "engine/evaluation.py", "runs/model_file.py", "engine/callbacks.py"} <= names


@pytest.mark.parametrize("call", sorted(ONLY_IN))
def test_each_core_call_is_made_in_its_one_place(call):
    found = {f"{name}:{node.lineno}" for name, tree in modules() for node in ast.walk(tree)
             if isinstance(node, ast.Call) and call_name(node) == call and name not in ONLY_IN[call]}
    assert not found, f"{call}() called outside {sorted(ONLY_IN[call])}: {sorted(found)}"


@pytest.mark.parametrize("function", sorted(DEFINED_ONLY_IN))
def test_each_core_function_is_defined_once(function):
    places = [f"{name}:{node.lineno}" for name, tree in modules() for node in ast.walk(tree)
              if isinstance(node, ast.FunctionDef) and node.name == function]
    assert places and all(p.startswith(DEFINED_ONLY_IN[function] + ":") for p in places) and len(places) == 1, \
        f"{function} defined at {places}, expected once in {DEFINED_ONLY_IN[function]}"


def test_no_hook_beside_the_callback_list():
    found = [f"{name}:{node.lineno} {arg.arg}" for name, tree in modules() for node in ast.walk(tree)
             if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
             for arg in [*node.args.args, *node.args.kwonlyargs] if arg.arg in RETIRED_PARAMETERS]
    assert not found, f"a hook path beside the engine's callback list: {found}"


def test_every_engine_hook_is_a_training_callback():
    """A class with the engine's hooks derives from TrainingCallback (Keras' faces, in cnnlab/callbacks.py and
    cnnlab/training_callbacks.py, have Keras' hook names and reach the engine through the API's bridge)."""
    strays = []
    for name, tree in modules():
        if name in ("callbacks.py", "training_callbacks.py", "engine/callbacks.py"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                hooks = {f.name for f in node.body if isinstance(f, ast.FunctionDef)} & {
                    "on_epoch_end", "on_progress", "on_train_begin", "on_session"}
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                if hooks and "TrainingCallback" not in bases:
                    strays.append(f"{name}:{node.lineno} {node.name}")
    assert not strays, f"engine hooks outside a TrainingCallback: {strays}"


def test_a_second_loop_would_be_caught(tmp_path, monkeypatch):
    """The guard itself: a module computing its own loss is found."""
    import test_one_core

    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "rogue.py").write_text("import torch.nn.functional as F\nF.cross_entropy(a, b)\n")
    monkeypatch.setattr(test_one_core, "PACKAGE", tmp_path)
    with pytest.raises(AssertionError, match="rogue.py:2"):
        test_each_core_call_is_made_in_its_one_place("cross_entropy")
