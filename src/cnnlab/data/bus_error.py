"""One error line, not a bare SIGBUS, when a memory-mapped image cache is truncated under cnnlab.

Reading a page of a map that lies past the end of its file (another program truncated
the cache, or rewrote it in place) raises SIGBUS in the thread that reads it, inside
numpy's copy. Python's own signal handlers cannot help: they only set a flag and
return, the faulting read runs again, and the process spins. Nor can a check of the
file's size before each epoch: the file can shrink between the check and the read.
Reading the cache instead of mapping it would cost a dataset larger than RAM its
training. So the C-level handler is a ``ctypes`` callback that writes one prepared
``cnnlab: error:`` line to stderr and ends the process at once with status 2
(``os._exit``: nothing more is read from the map, and no Python state that the
faulting read interrupted is used again).

It is installed only where SIGBUS still has its default action (which kills with no
message): a handler someone else installed — Python's ``faulthandler``, a debugger's —
is left alone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

EXIT_STATUS = 2  # as every other ``cnnlab: error:`` line
SHOWN_FILES = 3  # the message names at most this many caches (the line stays one line)

_mapped: list[str] = []
_message = b""
_handler = None  # the ctypes callback, kept alive for as long as the process can receive SIGBUS
_HANDLER_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_int)


def _on_bus_error(signum: int) -> None:
    os.write(2, _message)
    os._exit(EXIT_STATUS)


def message(paths: list[str]) -> str:
    """The line written when a mapped read fails (``paths``: the caches this process mapped)."""
    shown = ", ".join(paths[-SHOWN_FILES:]) + (f" (and {len(paths) - SHOWN_FILES} more)"
                                               if len(paths) > SHOWN_FILES else "")
    return (f"cnnlab: error: {shown}: the image cache shrank while it was being read (bus error: another "
            "program truncated it or rewrote it in place); load the dataset again and cnnlab rebuilds it\n")


def report_on_bus_error(path: Path) -> bool:
    """Make a SIGBUS in this process one error line naming ``path`` (and earlier mapped caches).

    Returns whether cnnlab's handler is in place (False: the platform has no SIGBUS, or
    someone else handles it)."""
    global _message
    name = " ".join(str(Path(path).resolve()).split())  # one line, whatever the path holds
    if name not in _mapped:
        _mapped.append(name)
        _message = message(_mapped).encode(errors="backslashreplace")
    return _install()


def _install() -> bool:
    global _handler
    if _handler is not None:
        return True
    if not hasattr(signal, "SIGBUS") or not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if _current_handler(libc) != 0:  # not SIG_DFL: faulthandler, a debugger or the user handles it
        return False
    handler = _HANDLER_TYPE(_on_bus_error)
    libc.signal.argtypes, libc.signal.restype = (ctypes.c_int, _HANDLER_TYPE), ctypes.c_void_p
    libc.signal(signal.SIGBUS, handler)
    _handler = handler
    return True


def _current_handler(libc) -> int | None:
    """SIGBUS's handler address (0: the default action), read with ``sigaction`` without changing it.

    On Linux ``struct sigaction`` begins with the handler; the buffer is larger than the whole struct."""
    action = ctypes.create_string_buffer(1024)
    libc.sigaction.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
    if libc.sigaction(signal.SIGBUS, None, action) != 0:
        return None
    return ctypes.c_void_p.from_buffer(action).value or 0
