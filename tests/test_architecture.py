"""The package's layout holds: floors only run down and no two files import each other round a circle.

The contracts live in pyproject.toml (``[tool.importlinter]``); import-linter checks them on the
import graph of the source itself, lazy imports inside functions included.
"""

import pkgutil
import re
import tomllib
from pathlib import Path

import cnnlab

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def contracts() -> dict[str, dict]:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    return {contract["id"]: contract for contract in config["contracts"]}


def test_the_import_contracts_are_kept():
    from importlinter.cli import lint_imports

    # a failure prints each broken contract with the imports that break it (pytest shows the output)
    assert lint_imports(config_filename=str(PYPROJECT), no_cache=True, no_logo=True) == 0


def test_every_top_level_module_stands_on_a_floor():
    """A new package or module outside the floors would escape the layers contract unnoticed."""
    floors = contracts()["floors"]["layers"]
    on_floors = {name for floor in floors for name in re.split(r"[|:]", floor)}
    on_floors = {name.strip().strip("()") for name in on_floors}
    modules = {f"cnnlab.{module.name}" for module in pkgutil.iter_modules(cnnlab.__path__)}
    assert modules - on_floors == set()
    assert on_floors - modules == set()  # and no floor names a module that is gone

