"""Errors cnnlab reports to users as one-line messages rather than tracebacks."""

import re


class CnnlabError(Exception):
    """Base class of errors caused by input: a spec, a dataset, an argument, a file."""


class SpecError(CnnlabError, ValueError):
    """An invalid spec; the message names the source, the layer and the field."""


_OBJECT_REPR = re.compile(r"<[^<>]{0,200}? at 0x[0-9a-fA-F]+>")


def describe(exc: BaseException, limit: int = 200) -> str:
    """A library's exception as ``Type: first line``, for a message: object reprs such as
    ``<_io.BytesIO object at 0x...>`` are dropped and the text is bounded."""
    lines = str(exc).strip().splitlines()
    text = _OBJECT_REPR.sub("the data", lines[0]) if lines else ""
    text = text if len(text) <= limit else text[:limit] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def without_reprs(message: str) -> str:
    """``message`` with object reprs replaced: the last guard before a message is printed."""
    return _OBJECT_REPR.sub("the data", message)
