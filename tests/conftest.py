"""Every test's cache lives in one temporary folder, never in the user's ~/.cache."""

import os

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
