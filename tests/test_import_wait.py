"""`import cnnlab` gives fit from Python and notebooks the command line's OpenMP wait (a short spin),
when torch is not loaded yet; when it is, it says once what to do; a user's own setting is kept.

Each case runs in a fresh process that has libgomp print the settings it starts with (the runtime
reads them once, when torch loads it); no timing is asserted.
"""

import os
import subprocess
import sys

import pytest

from cnnlab.engine import threads
from cnnlab.engine.threads import WAIT_VARIABLES, prefer_short_spin, wait_variables

# Loads torch's OpenMP runtime (a parallel op), then says what the environment holds and what warned.
PROBE = """
import os, sys, warnings
warnings.simplefilter("always")
{first}
import torch
torch.ones(64, 64).sum()
print("GOMP_SPINCOUNT=" + str(os.environ.get("GOMP_SPINCOUNT")))
"""


def run(first: str, **variables: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in WAIT_VARIABLES}
    env.update(variables, OMP_DISPLAY_ENV="VERBOSE")  # libgomp prints its settings, the spin count among them
    done = subprocess.run([sys.executable, "-c", PROBE.format(first=first)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_import_cnnlab_before_torch_starts_openmp_with_the_short_spin():
    done = run("import cnnlab")
    assert "GOMP_SPINCOUNT=3000" in done.stdout
    assert "GOMP_SPINCOUNT = '3000'" in done.stderr and "GOMP_SPINCOUNT = '300000'" not in done.stderr
    assert "RuntimeWarning" not in done.stderr


def test_import_cnnlab_after_torch_says_what_to_do_once():
    done = run("import torch; import cnnlab; from cnnlab import utils; import cnnlab.api")
    assert "GOMP_SPINCOUNT=None" in done.stdout  # too late to set: the runtime has read its environment
    assert done.stderr.count("RuntimeWarning: torch was imported before cnnlab") == 1, done.stderr
    assert "Import cnnlab before torch, or set GOMP_SPINCOUNT=3000" in done.stderr


@pytest.mark.parametrize("first", ["import cnnlab", "import torch; import cnnlab"])
@pytest.mark.parametrize(("name", "value", "spin"), [("OMP_WAIT_POLICY", "PASSIVE", "0"),
                                                     ("GOMP_SPINCOUNT", "300000", "300000")])
def test_a_users_own_wait_is_kept_without_a_note(first, name, value, spin):
    done = run(first, **{name: value})
    assert f"GOMP_SPINCOUNT = '{spin}'" in done.stderr and "RuntimeWarning" not in done.stderr, done.stderr


def test_the_spin_import_set_is_not_taken_for_the_users(monkeypatch):
    """A GPU run (`--device cuda`) and its workers start without it, as before `import cnnlab` set it."""
    monkeypatch.setattr(threads, "_spin_set_on_import", True)
    monkeypatch.setenv("GOMP_SPINCOUNT", "3000")
    assert wait_variables("cuda") == {} and wait_variables("cpu") == {"GOMP_SPINCOUNT": "3000"}
    assert not prefer_short_spin("cuda") and "GOMP_SPINCOUNT" not in os.environ
    monkeypatch.setattr(threads, "_spin_set_on_import", False)
    monkeypatch.setenv("GOMP_SPINCOUNT", "3000")  # the user's own: kept on a GPU too
    assert wait_variables("cuda") == {"GOMP_SPINCOUNT": "3000"}
    assert not prefer_short_spin("cuda") and os.environ["GOMP_SPINCOUNT"] == "3000"
