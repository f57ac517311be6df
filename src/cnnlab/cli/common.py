"""What every command shares: ``--json``, ``--out``, JSON made from the typed results, usage errors."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from cnnlab.errors import CnnlabError


class UsageError(CnnlabError):
    """Options that contradict each other, or a value outside its range."""


JSON_HELP = "print one JSON object instead of the text"


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """``--json``: the command's results as one JSON object on stdout (messages stay on stderr)."""
    parser.add_argument("--json", action="store_true", help=JSON_HELP)


# What shell completion offers for an argument (shtab reads ``action.complete``; these are shtab.FILE
# and shtab.DIRECTORY, spelled out so that the parser never needs shtab).
FILE = {"bash": "_shtab_compgen_files", "zsh": "_files", "tcsh": "f"}
DIRECTORY = {"bash": "_shtab_compgen_dirs", "zsh": "_files -/", "tcsh": "d"}


def completes(action: argparse.Action, kind: dict) -> argparse.Action:
    """``action`` completing as files (:data:`FILE`) or folders (:data:`DIRECTORY`) in the shell."""
    action.complete = kind
    return action


def add_out_file_option(parser: argparse.ArgumentParser, help_text: str, required: bool = False) -> None:
    """``--out FILE`` (``-o`` and ``--output`` are aliases): where a command writes its file."""
    completes(parser.add_argument("--out", "-o", "--output", dest="out", metavar="FILE", required=required,
                                  help=help_text), FILE)


def jsonable(value):
    """``value`` as JSON types: records through their ``to_dict`` (or ``dataclasses.asdict``), paths as text.

    Nothing else is converted: a numpy value left in a result is a bug, and ``json.dumps``
    refuses it (the tests run every ``--json``).
    """
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(key) if not isinstance(key, str) else key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def print_json(value) -> None:
    """One JSON object on stdout, indented."""
    print(json.dumps(jsonable(value), indent=2))
