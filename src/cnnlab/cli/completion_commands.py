"""``cnnlab completion bash|zsh``: the shell's completion script, made by shtab from the parser."""

from __future__ import annotations

import argparse
import functools

from cnnlab.cli.common import UsageError

SHELLS = ("bash", "zsh")
INSTALL = "pip install 'cnnlab[completion]'"


def register(commands: argparse._SubParsersAction, whole: argparse.ArgumentParser) -> None:
    """Add ``cnnlab completion`` to the command line ``whole``, whose script it prints.

    The caller hands the whole parser down, so this module needs no import of the one that builds it.
    """
    completion = commands.add_parser(
        "completion", help="print the shell completion script (needs cnnlab[completion])",
        description="Print a completion script for the shell, e.g. eval \"$(cnnlab completion bash)\" in "
                    "~/.bashrc, or cnnlab completion zsh > ~/.zfunc/_cnnlab. Needs shtab: " + INSTALL)
    completion.add_argument("shell", choices=SHELLS, help="the shell: bash or zsh")
    completion.set_defaults(handler=functools.partial(run_completion, whole=whole))


def completion_script(shell: str, whole: argparse.ArgumentParser) -> str:
    """The completion script of the command line ``whole`` (cnnlab's) for ``shell``."""
    try:
        import shtab
    except ImportError:
        raise UsageError(f"shell completion needs shtab: {INSTALL}") from None
    return shtab.complete(whole, shell=shell)


def run_completion(args: argparse.Namespace, whole: argparse.ArgumentParser) -> int:
    """``cnnlab completion SHELL``: the script of ``whole`` on stdout."""
    print(completion_script(args.shell, whole), end="")
    return 0
