"""Every test's cache lives in one temporary folder, never in the user's ~/.cache; golden files are
compared (or, with ``pytest --update-golden``, rewritten) through one fixture."""

import difflib
import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cnnlab-cache")
    previous = os.environ.get("CNNLAB_CACHE")
    os.environ["CNNLAB_CACHE"] = str(folder)  # subprocesses inherit it too
    yield folder
    if previous is None:
        os.environ.pop("CNNLAB_CACHE", None)
    else:
        os.environ["CNNLAB_CACHE"] = previous


@pytest.fixture(autouse=True)
def repeatable_seeds(monkeypatch):
    """Models made without ``seed=`` draw their seeds from a stream seeded per test (as after
    ``cnnlab.utils.set_random_seed``, without seeding the global generators), so every test repeats."""
    import random

    from cnnlab.engine import seeds

    monkeypatch.setattr(seeds, "_stream", random.Random(0))


# ---------------------------------------------------------------- golden files

GOLDEN = Path(__file__).parent / "golden"


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite the golden files under tests/golden from the current output instead of "
                          "comparing with them (review the diff before committing it)")


class Golden:
    """Compares output with a file under tests/golden; with ``pytest --update-golden``, rewrites the file."""

    def __init__(self, update: bool, folder: Path = GOLDEN):
        self.update, self.folder = update, folder

    def check(self, name: str, actual: str, *, from_line: int = 0) -> None:
        """``actual`` must be the golden file ``name``, from line ``from_line`` on (lines before it are the
        file's own: a heading that differs on purpose). A mismatch fails with a unified diff."""
        path = self.folder / name
        expected = path.read_text() if path.exists() else ""
        kept = "".join(expected.splitlines(keepends=True)[:from_line])
        wanted = kept + "".join(actual.splitlines(keepends=True)[from_line:])
        if wanted == expected:
            return
        if self.update:
            path.write_text(wanted)
            return
        diff = difflib.unified_diff(expected.splitlines(keepends=True), wanted.splitlines(keepends=True),
                                    f"{path} (expected)", "actual output")
        pytest.fail(f"output differs from {path} (if the change is meant, rerun with "
                    f"--update-golden and review the diff):\n{''.join(diff)}", pytrace=False)


@pytest.fixture
def golden(request) -> Golden:
    """The golden-file comparison (see :class:`Golden`); ``pytest --update-golden`` rewrites instead."""
    return Golden(request.config.getoption("--update-golden"))


@pytest.fixture(scope="module")
def digits():
    """cnnlab's offline digits dataset, loaded once per test module (a module may still define its own)."""
    import cnnlab

    return cnnlab.load_data("digits")
