"""The layer kinds as a table, from the registry: ``cnnlab models`` and the README's table."""

from __future__ import annotations

from cnnlab.net.registry import COMMON_FIELDS, LayerKind, all_kinds


def _fields(kind: LayerKind) -> str:
    """A kind's own fields (those every kind has, ``trainable``, are said once, under the table)."""
    parts = [spec_field.describe(name) for name, spec_field in kind.fields.items() if name not in COMMON_FIELDS]
    inputs = "" if kind.max_inputs == 1 else f"{kind.min_inputs}+ `inputs`"
    return ", ".join([*parts, inputs] if inputs else parts) or "—"


def kinds_markdown() -> str:
    """The README's table of layer kinds (a test checks the README holds exactly this)."""
    rows = ["| kind | Keras class | fields (default) | what it does |", "| --- | --- | --- | --- |"]
    rows += [f"| `{kind.name}` | `{kind.keras_class}` | {_fields(kind)} | {kind.doc} |"
             for kind in all_kinds().values()]
    return "\n".join(rows) + "\n"


def format_kinds() -> str:
    """Plain-text list of the kinds for the terminal."""
    kinds = list(all_kinds().values())
    width = max(len(kind.name) for kind in kinds)
    klass = max(len(kind.keras_class) for kind in kinds)
    lines = [f"{kind.name.ljust(width)}  {kind.keras_class.ljust(klass)}  {_fields(kind).replace('`', '')}"
             for kind in kinds]
    return "\n".join(lines) + "\n"
