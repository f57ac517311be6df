"""Helpers for writing Python source: literals, variable names, safe comment text, running the result.

Layer and spec names are the user's text, so they reach generated code only as
``repr``-made literals, and comments and docstrings only through :func:`comment_text`;
a name can never end a string or a comment early.
"""

from __future__ import annotations

import builtins
import keyword
import re
import types
from pathlib import Path

from cnnlab.net.kinds.source import literal  # noqa: F401  (re-exported: the layer kinds write literals too)
from cnnlab.net.spec import INPUT, ModelSpec
from cnnlab.version import __version__

# The final comment of every generated file's docstring: where it came from.
WRITTEN_BY = f"Written by cnnlab {__version__} (cnnlab export); it does not need cnnlab."


def comment_text(text: str) -> str:
    """``text`` fit for a comment or docstring: one line of printable ASCII, no quotes that end a string."""
    # ascii() writes newlines, control and non-ASCII characters as valid escapes; a double quote could
    # close a docstring, so it becomes a single one.
    return ascii(str(text))[1:-1].replace('"', "'")


def variable_names(spec: ModelSpec, reserved: set[str]) -> dict[str, str]:
    """A distinct Python identifier per layer name (and ``input``), readable where the name allows."""
    taken = set(reserved) | set(dir(builtins))  # a variable named 'sum' would hide the builtin
    names = {}
    for name in [INPUT, *(layer.name for layer in spec.layers)]:
        base = re.sub(r"[^0-9A-Za-z_]", "_", name)
        base = f"_{base}" if not base or base[0].isdigit() or keyword.iskeyword(base) else base
        candidate, count = base, 1
        while candidate in taken:
            candidate, count = f"{base}_{count}", count + 1
        taken.add(candidate)
        names[name] = candidate
    return names


def class_name(spec_name: str) -> str:
    """A CamelCase class name from a spec's name ('resnet20' -> 'Resnet20'); 'Network' if none fits."""
    words = re.findall(r"[A-Za-z0-9]+", spec_name)
    name = "".join(word[:1].upper() + word[1:] for word in words)
    return name if name and not name[0].isdigit() else "Network"


def module_from_source(source: str, path: Path) -> types.ModuleType:
    """Run generated source as the module it will be once written at ``path`` (not yet on disk).

    Verifying the code before writing it means a file that fails its check is never written.
    """
    module = types.ModuleType(path.stem)  # not put in sys.modules: its name may be any file's
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module
