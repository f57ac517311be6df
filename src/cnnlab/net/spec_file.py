"""Reading specs from YAML text and files, with bounds on what a hostile file can make cnnlab do.

Before ``yaml.safe_load`` builds anything, the text is checked: its size, and (from
the parser's event stream, which is iterative) how deep it nests, how many nodes it
has and how long its numbers are. A spec never needs more than a small fraction of
these limits; a crafted file meets them at once instead of exhausting memory, time or
Python's recursion limit.
"""

from __future__ import annotations

import yaml

from cnnlab.errors import SpecError
from cnnlab.net.spec import ModelSpec, parse_spec

MAX_SPEC_BYTES = 256 * 1024   # a ResNet-20 spec is 8 KB
MAX_DEPTH = 32                # nesting of mappings and lists (a spec needs 4)
MAX_NODES = 200_000
MAX_NUMBER_CHARS = 32         # longer numbers than this are no layer size


def _check_shape(text: str, source: str) -> None:
    depth = 0
    for nodes, event in enumerate(yaml.parse(text, Loader=yaml.SafeLoader), 1):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise SpecError(f"{source}: nested more than {MAX_DEPTH} levels deep; a spec needs 4")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(event, yaml.ScalarEvent) and len(event.value) > MAX_NUMBER_CHARS and event.style is None \
                and event.value.lstrip("+-")[:1].isdigit():
            raise SpecError(f"{source}: a number of {len(event.value):,} characters (line "
                            f"{event.start_mark.line + 1}); layer sizes are small integers")
        if nodes > MAX_NODES:
            raise SpecError(f"{source}: more than {MAX_NODES:,} YAML nodes; not a spec")


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """The parser's problem and where, in one line (its own text spans several, with a caret drawing)."""
    problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{problem[:200]}{where}"


def parse_spec_text(text: str, source: str = "inline") -> ModelSpec:
    """Parse JSON text, or YAML with ``yaml.safe_load`` (object-building tags are refused)."""
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"{source}: {len(text):,} characters; a spec is at most {MAX_SPEC_BYTES:,}")
    try:
        _check_shape(text, source)
        data = _json_or_yaml(text)
    except SpecError:
        raise
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: not a valid spec: {_yaml_problem(exc)}") from None
    except (RecursionError, ValueError) as exc:  # belt and braces: the checks above should catch these
        raise SpecError(f"{source}: not a valid spec ({type(exc).__name__})") from None
    return parse_spec(data, source)


def _json_or_yaml(text: str):
    """JSON text by JSON's rules (PyYAML's YAML 1.1 would read JSON's ``1e-12`` as a string), else YAML."""
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return yaml.safe_load(text)


def load_spec_file(path: str) -> ModelSpec:
    """Read and validate a spec file (a regular file of UTF-8 text); errors name the file."""
    from cnnlab.files import read_regular

    content = read_regular(path, MAX_SPEC_BYTES, SpecError, "spec file")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start}); save the spec as UTF-8") from None
    return parse_spec_text(text, source=path)
