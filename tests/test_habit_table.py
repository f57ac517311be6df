"""docs/keras-habits.md is generated from the habits the tests declare (tests/habits.py): a habit
added, changed or removed in a test changes the page, and this test fails until the page is
rewritten (``pytest --update-golden tests/test_habit_table.py``)."""

import importlib
from collections import Counter
from pathlib import Path

from conftest import Golden
from habits import DECLARED, DIFFERS, REFUSED, WORKS

TESTS = Path(__file__).parent
DOCS = TESTS.parent / "docs"
PAGE = "keras-habits.md"
HEAD = """# Coming from Keras: habit by habit

Generated from the tests that check each habit (`tests/habits.py`; rewrite with
`pytest --update-golden tests/test_habit_table.py`). Where Keras is installed, the tests
compare with Keras 3 itself on the same data. *works*: the Keras code gives Keras' result;
*differs*: it runs, with the difference named here; *refused*: a clear error says why and what to do.

"""


def declaring_modules() -> list[str]:
    """The test modules that import tests/habits.py, imported here so their habits are declared."""
    names = sorted(path.stem for path in TESTS.glob("test_*.py")
                   if path.stem != Path(__file__).stem and "from habits import" in path.read_text())
    for name in names:
        importlib.import_module(name)
    return names


def render() -> str:
    declaring_modules()
    habits = sorted(set(DECLARED), key=lambda h: (h.topic, h.test, h.name))
    counts = Counter(h.status for h in habits)
    lines = [HEAD, f"{len(habits)} habits: {counts[WORKS]} work, {counts[DIFFERS]} differ (documented), "
                   f"{counts[REFUSED]} are refused with a reason.\n"]
    for topic in sorted({h.topic for h in habits}):
        lines += [f"\n## {topic}\n\n| habit | Keras | cnnlab | status | test |\n|---|---|---|---|---|\n"]
        lines += [f"| {h.name} | {_cell(h.keras)} | {_cell(h.cnnlab)} | {h.status} | `{h.test}` |\n"
                  for h in habits if h.topic == topic]
    return "".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def test_every_habit_names_an_existing_test():
    declaring_modules()
    for h in DECLARED:
        module, function = h.test.split("::")
        assert callable(getattr(importlib.import_module(module), function, None)), h


def test_the_docs_page_is_generated_from_the_tests(golden):
    Golden(golden.update, DOCS).check(PAGE, render())
