"""Writing an export's files: only new files, never over an existing one, never through a link.

Every path is checked before any work starts (so a taken name fails at once), and
each file is then created with ``O_CREAT | O_EXCL | O_NOFOLLOW``: should something
appear at the path meanwhile (a file, a link, even a dangling one), the create fails
rather than writing there. An export of several files that fails half-way removes
the files it made, and only those.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from pathlib import Path

from cnnlab.export.network import ExportError

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
SUFFIXES = {"onnx": ".onnx", "keras": "_keras.py", "pytorch": "_torch.py"}
WEIGHTS_SUFFIXES = {"keras": ".weights.npz", "pytorch": ".safetensors"}


def default_output(name: str, to: str) -> Path:
    """``<name>.onnx``, ``<name>_keras.py`` or ``<name>_torch.py`` in the current folder; a name that
    Python can import (letters, digits, '_')."""
    stem = re.sub(r"[^0-9A-Za-z_]", "_", name).strip("_") or "model"
    stem = f"model_{stem}" if stem[0].isdigit() else stem
    return Path(stem + SUFFIXES[to])


def weights_path(code_path: Path, to: str) -> Path:
    """The weights file beside generated code: ``cnn_keras.py`` -> ``cnn_keras.weights.npz``."""
    stem = code_path.name[:-3] if code_path.name.endswith(".py") else code_path.name
    return code_path.with_name(stem + WEIGHTS_SUFFIXES[to])


def check_new(paths: list[Path]) -> None:
    """Refuse paths that exist (links included) or whose folder does not; before any work is done."""
    for path in paths:
        if os.path.lexists(path):
            what = "is a symbolic link" if os.path.islink(path) else "exists"
            raise ExportError(f"{path}: {what}; cnnlab export writes only new files and leaves it as it is "
                              "(choose another -o, or remove it first)")
        folder = path.parent
        if not folder.is_dir():
            raise ExportError(f"{path}: the folder {folder} does not exist")


class NewFiles:
    """Creates files that must not exist yet; on an error inside ``with``, removes the ones it made."""

    def __init__(self) -> None:
        self.written: list[Path] = []

    def __enter__(self) -> NewFiles:
        return self

    def __exit__(self, kind, exc, traceback) -> None:
        if kind is not None:
            for path in self.written:
                _remove(path)

    def write(self, path: Path, data: bytes) -> Path:
        """Create ``path`` holding ``data``; an existing path or a link there is refused, untouched."""
        try:
            fd = os.open(path, _FLAGS, 0o666)  # 0666 less the umask, as any program's files
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ELOOP):
                raise ExportError(f"{path}: appeared while exporting; left as it is, nothing written there") \
                    from None
            raise ExportError(f"{path}: cannot create ({exc.strerror})") from None
        self.written.append(path)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise ExportError(f"{path}: cannot write ({exc.strerror}); removed") from None
        return path


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):  # already gone; nothing else is ever removed
        os.unlink(path)
