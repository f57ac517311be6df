"""``cnnlab completion bash|zsh``: the shell's completion script, made by shtab from the parser."""

from __future__ import annotations

import argparse

from cnnlab.cli.common import UsageError

SHELLS = ("bash", "zsh")
INSTALL = "pip install 'cnnlab[completion]'"


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``cnnlab completion`` to the command line."""
    completion = commands.add_parser(
        "completion", help="print the shell completion script (needs cnnlab[completion])",
        description="Print a completion script for the shell, e.g. eval \"$(cnnlab completion bash)\" in "
                    "~/.bashrc, or cnnlab completion zsh > ~/.zfunc/_cnnlab. Needs shtab: " + INSTALL)
    completion.add_argument("shell", choices=SHELLS, help="the shell: bash or zsh")
    completion.set_defaults(handler=run_completion)


def completion_script(shell: str) -> str:
    """The completion script of the whole ``cnnlab`` command line for ``shell``."""
    try:
        import shtab
    except ImportError:
        raise UsageError(f"shell completion needs shtab: {INSTALL}") from None
    from cnnlab.cli.main import build_parser

    return shtab.complete(build_parser(), shell=shell)


def run_completion(args: argparse.Namespace) -> int:
    """``cnnlab completion SHELL``: the script on stdout."""
    print(completion_script(args.shell), end="")
    return 0
