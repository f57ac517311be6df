"""Reading the container formats cnnlab's files come in, bounded: JSON text, and zip archives
(torch.save's checkpoints, numpy's ``.npz`` caches) that cnnlab writes uncompressed.

A leaf beside :mod:`cnnlab.files`: what these parse is already in memory, or open, there.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import BinaryIO

from cnnlab.errors import CnnlabError

ErrorFactory = type[Exception]


def parse_json(text: str | bytes, where: str, error: ErrorFactory = CnnlabError):
    """``text`` as JSON, or ``error`` naming ``where``: malformed text, invalid UTF-8, or nesting so deep
    that Python's parser gives up (a RecursionError, not a ValueError) are all one message."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else "not valid JSON"
        raise error(f"{where}: {why}; damaged") from None


def check_stored_zip(source: bytes | BinaryIO, where: str, error: ErrorFactory = CnnlabError) -> None:
    """A zip archive whose members are all stored uncompressed, as ``torch.save`` and ``np.savez`` write
    them, so what reading it allocates is bounded by its own size: a deflated member (a few MB that
    inflate to gigabytes: a zip bomb) or members declaring more bytes than the archive holds are
    ``error``, before any member is read."""
    if isinstance(source, str | os.PathLike):  # never opened by name here: cnnlab.files opens files
        raise TypeError("check_stored_zip takes the archive's bytes or an open handle, not a path")
    handle = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    start = handle.tell()
    size = handle.seek(0, io.SEEK_END)
    handle.seek(start)
    try:
        with zipfile.ZipFile(handle) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError):
        raise error(f"{where}: not a readable archive (truncated, damaged or another format)") from None
    finally:
        handle.seek(start)
    packed = [m.filename for m in members if m.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise error(f"{where}: its member {packed[0][:100]!r} is compressed; cnnlab writes these files "
                    "uncompressed, so it is not one of cnnlab's; refused")
    declared = sum(m.file_size for m in members)
    if declared > size:
        raise error(f"{where}: its members declare {declared:,} bytes but the file holds {size:,}; refused")
