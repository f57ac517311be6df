"""Every path that builds a network checks its memory first, and a model file's declared network must fit
the tensors it holds: a few hundred bytes can never make cnnlab allocate gigabytes (issue 32)."""

import json
import os

import pytest
import torch
from safetensors.torch import save

import cnnlab
from cnnlab.cli.main import main
from cnnlab.engine import memory
from cnnlab.engine.memory import Available, MemoryCheckError
from cnnlab.runs.model_file import FORMAT, ModelFileError

from fixtures import assert_error_line

HUGE_DENSE = {"name": "huge", "input": [32, 32, 3],
              "layers": [{"kind": "flatten"}, {"kind": "dense", "units": 2_000_000}]}


@pytest.fixture
def four_gigabytes(monkeypatch):
    """This machine has 4 GB free, whatever it really has: the checks' outcome does not depend on the machine."""
    monkeypatch.setattr(memory, "available", lambda device: Available(4 * 1024**3, "stood in by the test"))


def crafted_model_file(path, spec: dict) -> None:
    """A small safetensors file whose metadata declares ``spec``: the header of ``model.save``, tiny tensors."""
    metadata = {"format": FORMAT, "spec": json.dumps(spec), "class_names": "null", "preprocessing": "{}"}
    path.write_bytes(save({"layer.weight": torch.zeros(2, 2)}, metadata=metadata))


def test_a_model_file_declaring_a_huge_network_is_refused_before_anything_is_built(tmp_path, four_gigabytes,
                                                                                    monkeypatch):
    path = tmp_path / "small.cnnlab"
    crafted_model_file(path, HUGE_DENSE)
    assert os.path.getsize(path) < 1000
    monkeypatch.setattr("cnnlab.net.builder.build_model", lambda *a, **k: pytest.fail("built"))
    with pytest.raises(ModelFileError, match=r"6,146,000,000 parameters .* holds \d+ bytes"):
        cnnlab.load_model(path)


def test_export_of_such_a_file_is_one_error_line(tmp_path, four_gigabytes, capsys):
    path = tmp_path / "small.cnnlab"
    crafted_model_file(path, HUGE_DENSE)
    assert main(["export", str(path), "--to", "pytorch", "-o", str(tmp_path / "out.py")]) != 0
    assert_error_line(capsys.readouterr().err, "small.cnnlab", "parameters")
    assert not (tmp_path / "out.py").exists()


def test_export_of_a_spec_with_a_huge_input_is_refused_before_it_is_built(tmp_path, four_gigabytes, capsys):
    assert main(["export", "cnn", "--input", "100000x100000x3", "--to", "pytorch",
                 "-o", str(tmp_path / "out.py")]) != 0
    assert_error_line(capsys.readouterr().err, "building 'cnn'", "stood in by the test")
    assert not (tmp_path / "out.py").exists()


def test_building_a_model_checks_its_memory_first(four_gigabytes, monkeypatch):
    model = cnnlab.Model(json.dumps(HUGE_DENSE) + "\n")
    monkeypatch.setattr("cnnlab.net.builder.build_model", lambda *a, **k: pytest.fail("built"))
    with pytest.raises(MemoryCheckError, match="building 'huge'"):
        model.build((32, 32, 3))


def test_a_network_that_fits_is_built_as_before(four_gigabytes):
    model = cnnlab.Model("mlp")
    model.build((8, 8, 1), 10)
    assert model.module is not None and model.count_params() > 0
