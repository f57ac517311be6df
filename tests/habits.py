"""The Keras habit table: each test that checks a Keras user's habit declares it with :func:`habit`,
and ``tests/test_habit_table.py`` renders every declared habit into ``docs/keras-habits.md``
(habit, what Keras does, what cnnlab does, the test that checks it), failing when the page is stale.

    @habit("freeze a layer", keras="layer.trainable = False", cnnlab="the same; the weights keep their values",
           status=WORKS)
    def test_frozen_layer_keeps_its_weights(): ...

``status`` is WORKS (the same code gives the same result as in Keras), DIFFERS (it runs, with a
documented difference) or REFUSED (a clear error names the reason and the way out).
"""

from __future__ import annotations

from dataclasses import dataclass

WORKS, DIFFERS, REFUSED = "works", "differs", "refused"
DECLARED: list[Habit] = []


@dataclass(frozen=True)
class Habit:
    topic: str
    name: str
    keras: str
    cnnlab: str
    status: str
    test: str  # "module::function"


def habit(name: str, *, keras: str, cnnlab: str, status: str = WORKS, topic: str = "Model"):
    """Declare that the decorated test checks this habit (one test may declare several)."""
    if status not in (WORKS, DIFFERS, REFUSED):
        raise ValueError(f"habit {name!r}: status must be works, differs or refused, got {status!r}")

    def declare(test):
        DECLARED.append(Habit(topic, name, keras, cnnlab, status, f"{test.__module__}::{test.__name__}"))
        return test

    return declare
