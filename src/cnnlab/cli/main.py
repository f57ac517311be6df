"""Entry point: parse arguments, dispatch to a command, turn known errors into messages."""

from __future__ import annotations

import argparse
import sys

from cnnlab.cli import (
    compare_commands,
    completion_commands,
    data_commands,
    explain_commands,
    export_commands,
    model_commands,
    train_commands,
)
from cnnlab.errors import CnnlabError, without_reprs
from cnnlab.version import __version__

# ``completion`` comes last and apart: it is handed the finished parser, whose script it prints
COMMAND_MODULES = [model_commands, data_commands, train_commands, compare_commands, export_commands,
                   explain_commands]


class Parser(argparse.ArgumentParser):
    """argparse, with a mistyped option reported as cnnlab reports every error: one line, no usage block."""

    def error(self, message: str):
        self.exit(2, f"cnnlab: error: {self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every command's parser, each option with its help."""
    parser = Parser(
        prog="cnnlab", description="Train and compare MLPs and CNNs on CIFAR-10, honestly.")
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    completion_commands.register(commands, parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` (default: the process's arguments) names; returns the exit status.

    A known error is one ``cnnlab: error:`` line on stderr (status 2), never a traceback.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # a mistyped option (one error line, above), --help or --version
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        note = data_commands.resolve_dataset(args)
        status = args.handler(args) or 0
        if note:  # after the output (an error stays one line); the old form still works
            print(f"cnnlab: warning: {note}", file=sys.stderr)
        return status
    except CnnlabError as exc:
        print(f"cnnlab: error: {without_reprs(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
        return 0
    except OSError as exc:  # a safety net: the file layers turn these into CnnlabErrors themselves
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"cnnlab: error: {where}{exc.strerror or type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130
