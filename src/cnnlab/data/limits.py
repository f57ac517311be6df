"""How much input may make cnnlab read or allocate, and the readers that hold to it.

Every byte cnnlab takes from a dataset passes one of these limits, so a file, an
archive member or a download cannot make it read, keep or decode more than a
bounded amount, whatever it claims or contains.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

from cnnlab.data.dataset import DatasetError
from cnnlab.files import open_regular

MiB = 1 << 20
GiB = 1 << 30

# One image file: a 12-megapixel camera JPEG or PNG is 3-15 MB; anything over this is
# not a training image cnnlab should hold in memory (and is refused before reading).
MAX_IMAGE_FILE_BYTES = 32 * MiB
# One image's pixels, checked from its header before decoding (50 MP: above common
# camera frames; at most 200 MB while decoding one 16-bit or RGBA image).
MAX_IMAGE_PIXELS = 50_000_000
# The decoded uint8 images of one image-folder dataset (CIFAR-10 is 184 MB); more
# needs a smaller --size.
MAX_DATASET_BYTES = 4 * GiB
# Files in an image folder or members in an archive (CIFAR-10 as images is 60,000).
MAX_FILES = 1_000_000
# What an archive may inflate to, all members counted: 20 times its own size (image
# archives inflate 1-5x, being already compressed), but never less than 256 MiB, so
# small archives of flat synthetic images still load.
ARCHIVE_MAX_INFLATION = 20
ARCHIVE_MIN_BUDGET = 256 * MiB
# One member written by safe extraction (twice CIFAR-10's 31 MB batch files).
MAX_EXTRACTED_MEMBER_BYTES = 64 * MiB
# One CIFAR-10 batch file read from a folder (the official ones are 31 MB).
MAX_BATCH_FILE_BYTES = 64 * MiB
# A single read inside a tar stream: headers are 512 bytes and pax/GNU long-name
# headers a few hundred; tarfile reads those whole, so a bigger one is refused.
MAX_TAR_HEADER_BYTES = 1 * MiB
# A download whose size is not known in advance.
MAX_UNKNOWN_DOWNLOAD_BYTES = 1 * GiB

READ_CHUNK = 1 << 16


class FileLimitError(DatasetError):
    """A file that is not a regular file, or is larger than cnnlab reads; ``reason`` says which."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.reason = reason


def size_text(count: int) -> str:
    """``count`` bytes in the unit that reads best (bytes, KiB, MiB or GiB)."""
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def too_large(size: int | None, limit: int, what: str) -> str:
    shown = f"{size_text(size)}, " if size is not None else ""
    return f"{what} is too large ({shown}more than the {size_text(limit)} cnnlab reads)"


def archive_budget(archive: Path) -> int:
    """The most bytes cnnlab inflates from ``archive``: see ARCHIVE_MAX_INFLATION."""
    return max(ARCHIVE_MIN_BUDGET, ARCHIVE_MAX_INFLATION * archive.stat().st_size)


def copy_bounded(stream: BinaryIO, out: BinaryIO, limit: int, name: str, what: str = "file") -> int:
    """Copy ``stream`` to ``out`` in chunks; past ``limit`` bytes: FileLimitError, nothing more read."""
    total = 0
    while block := stream.read(min(READ_CHUNK, limit + 1 - total)):
        total += len(block)
        if total > limit:
            raise FileLimitError(name, too_large(None, limit, what))
        out.write(block)
    return total


def read_bounded(stream: BinaryIO, limit: int, name: str, what: str = "file") -> bytes:
    """All of ``stream``, in chunks; more than ``limit`` bytes is a FileLimitError, read no further."""
    buffer = io.BytesIO()
    copy_bounded(stream, buffer, limit, name, what)
    return buffer.getvalue()


def _check_size(size: int, name: str, limit: int, what: str) -> None:
    if size > limit:
        raise FileLimitError(name, too_large(size, limit, what))


def read_regular_file(path: str | os.PathLike, limit: int, what: str = "file") -> bytes:
    """The bytes of ``path`` if it is (or links to) a regular file of at most ``limit`` bytes.

    Opened by :func:`cnnlab.files.open_regular` (a FIFO or device is refused, never waited
    on) and checked on the open file: a 40 GB file is never read, and one that grew is
    read no further than ``limit``.
    """
    name = str(path)

    def refuse(message: str) -> FileLimitError:  # open_regular's "<path>: <why>", as a FileLimitError
        return FileLimitError(name, message.removeprefix(f"{name}: "))

    try:
        with open_regular(path, what, refuse) as handle:
            _check_size(os.fstat(handle.fileno()).st_size, name, limit, what)
            return read_bounded(handle, limit, name, what)
    except OSError as exc:
        raise FileLimitError(name, f"cannot read ({exc.strerror or exc})") from None
