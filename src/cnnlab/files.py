"""Writing and reading the files cnnlab keeps: atomically, never through a link, as the umask says.

Every write into a run or comparison folder (records, checkpoints, weights, figures,
reports, the cache's arrays) goes through :func:`write_file`. Its contract:

* ``path`` lies inside ``root``, the run or comparison folder. ``root`` is where the
  user pointed cnnlab and may itself be a link; every folder below it is opened with
  ``O_NOFOLLOW``, so a link planted there is refused, even one swapped in after a check;
* an existing ``path`` must be a regular file: a link, folder, FIFO or device there is
  refused and left as it is;
* the bytes go to a new temporary file in the same folder (``O_EXCL``, mode 0666 less
  the umask, as any program's files get), are flushed and fsynced, and replace ``path``
  with one ``os.replace``: a reader, or a crash, sees the old file or the new, never half;
* an OSError (read-only, disk full, quota) is a :class:`WriteError` naming the file and
  saying what was kept; the temporary file is removed and the previous file is unchanged.

Every read goes through :func:`open_regular` (or :func:`read_regular`, built on it), the
counterpart for reading what a user may have planted: only regular files, opened
non-blocking (a FIFO would block, ``/dev/zero`` never ends), and with :func:`read_regular`
never more than a size limit, in memory the size of the file, never of the limit.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from cnnlab.errors import CnnlabError

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | _CLOEXEC
_READ_CHUNK = 1 << 20
SYSTEM_FILE_BYTES = 4 * 1024**2  # a kernel file cnnlab reads (/proc/cpuinfo on 256 cores is about 1 MB)
_TEMP = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.tmp$")

Content = bytes | Callable[[BinaryIO], None]
ErrorFactory = Callable[[str], Exception]  # an error class, or a function making one, from one message


class WriteError(CnnlabError):
    """A file cnnlab cannot or may not write; names it and says what was kept."""


def reason(exc: OSError) -> str:
    """An OSError's own words ('No space left on device'), without reprs or paths."""
    return exc.strerror or errno.errorcode.get(exc.errno or 0, type(exc).__name__)


def temp_name(name: str) -> str:
    """The temporary file :func:`write_file` writes ``name`` through: ``.name.<8 hex>.tmp``."""
    return f".{name}.{secrets.token_hex(4)}.tmp"


def temp_of(filename: str) -> str | None:
    """The file a leftover temporary file was for, or None when ``filename`` is not one."""
    match = _TEMP.match(filename)
    return match["name"] if match else None


def _parts_inside(path: Path, root: Path) -> tuple[str, ...]:
    try:
        parts = Path(path).relative_to(root).parts
    except ValueError:
        raise ValueError(f"{path} is not inside {root}") from None
    if ".." in parts:
        raise ValueError(f"{path} leaves {root}")
    return parts


def _open_root(root: Path) -> int:
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
    except OSError as exc:
        raise WriteError(f"{root}: cannot open the folder ({reason(exc)})") from None


def _descend(fd: int, name: str, where: Path, create: bool) -> int:
    """The folder ``name`` below ``fd``, made first when ``create``; a link is refused."""
    if create:
        try:
            os.mkdir(name, dir_fd=fd)  # 0777 less the umask
        except FileExistsError:
            pass
        except OSError as exc:
            raise WriteError(f"{where}: cannot create the folder ({reason(exc)})") from None
    try:
        return os.open(name, _FOLDER_FLAGS, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise WriteError(f"{where}: is a symbolic link or not a folder; cnnlab never writes "
                             "through links, and leaves it as it is") from None
        raise WriteError(f"{where}: cannot open the folder ({reason(exc)})") from None


@contextmanager
def _folder(root: Path, parts: tuple[str, ...], create: bool):
    """A descriptor of ``root/parts``, reached one O_NOFOLLOW step at a time."""
    fd = _open_root(root)
    try:
        for depth, name in enumerate(parts):
            below = _descend(fd, name, Path(root, *parts[:depth + 1]), create)
            os.close(fd)
            fd = below
        yield fd
    finally:
        os.close(fd)


def make_folder(path: str | os.PathLike, root: str | os.PathLike) -> Path:
    """Create ``path`` and the folders above it up to ``root`` (none of them may be a link)."""
    with _folder(Path(root), _parts_inside(Path(path), Path(root)), create=True):
        return Path(path)


def _existing(fd: int, name: str, path: Path) -> bool:
    """Whether ``name`` exists (as a regular file); anything else there is refused."""
    try:
        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    _refuse_unwritable(info.st_mode, path)
    return True


def _refuse_unwritable(mode: int, path: str | os.PathLike) -> None:
    if stat.S_ISLNK(mode):
        raise WriteError(f"{path}: is a symbolic link; cnnlab never writes through links, and leaves it "
                         "as it is")
    if not stat.S_ISREG(mode):
        raise WriteError(f"{path}: exists and is not a regular file ({file_kind(mode)}); left as it is")


def check_replaceable(path: str | os.PathLike) -> bool:
    """Whether a regular file is at ``path`` (one :func:`write_file` would replace); a link, folder, FIFO
    or device there is a :class:`WriteError` naming it, found without opening it (opening a FIFO waits)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:  # a name too long, a file where a folder should be
        raise WriteError(f"{path}: cannot write there ({reason(exc)})") from None
    _refuse_unwritable(info.st_mode, path)
    return True


def _fill(handle: BinaryIO, data: bytes) -> None:
    handle.write(data)


def _write_temp(fd: int, name: str, content: Content) -> None:
    with os.fdopen(os.open(name, _NEW_FILE_FLAGS, 0o666, dir_fd=fd), "wb") as handle:
        if callable(content):
            content(handle)
        else:
            _fill(handle, content)
        handle.flush()
        os.fsync(handle.fileno())


def write_file(path: str | os.PathLike, content: Content, *, root: str | os.PathLike) -> Path:
    """Write ``content`` (bytes, or a function writing to a binary handle) to ``path`` atomically.

    See the module's docstring for the contract; folders between ``root`` and ``path``
    are created as needed.
    """
    path, root = Path(path), Path(root)
    parts = _parts_inside(path, root)
    if not parts:
        raise ValueError(f"{path} names the folder {root} itself, not a file in it")
    with _folder(root, parts[:-1], create=True) as fd:
        existed = _existing(fd, parts[-1], path)
        tmp = temp_name(parts[-1])
        try:
            _write_temp(fd, tmp, content)
            os.replace(tmp, parts[-1], src_dir_fd=fd, dst_dir_fd=fd)
        except OSError as exc:
            _unlink(fd, tmp)
            kept = f"the previous {path.name} is unchanged" if existed else "nothing was written"
            raise WriteError(f"{path}: cannot write ({reason(exc)}); {kept}") from None
        except BaseException:
            _unlink(fd, tmp)
            raise
        with suppress(OSError):  # durability of the rename; some file systems cannot fsync a folder
            os.fsync(fd)
    return path


def _unlink(fd: int, name: str) -> None:
    with suppress(OSError):
        os.unlink(name, dir_fd=fd)


def remove_files(folder: str | os.PathLike, names: Iterable[str]) -> list[str]:
    """Remove the regular files ``names`` from ``folder``, and leftover temporary files of them.

    Links, folders and anything else are left where they are, as is every file not
    named. Returns the names removed.
    """
    wanted, removed = set(names), []
    with _folder(Path(folder), (), create=False) as fd:
        for name in os.listdir(fd):
            if name not in wanted and temp_of(name) not in wanted:
                continue
            with suppress(FileNotFoundError):
                if stat.S_ISREG(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                    os.unlink(name, dir_fd=fd)
                    removed.append(name)
    return removed


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words: 'a folder', 'a FIFO', 'a device', 'a socket'."""
    for test, words in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
                        (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return words
    return "a special file"


def open_regular(path: str | os.PathLike, what: str = "file", error: ErrorFactory = CnnlabError, *,
                 links: bool = True) -> BinaryIO:
    """``path`` open for reading in binary, once it is a regular file; anything else is ``error`` naming it.

    Every read cnnlab makes of a file goes through here (or :func:`read_regular`, built on
    it). The file is opened non-blocking and checked on its descriptor, so a FIFO is
    refused rather than waited on (a reader of a FIFO blocks until a writer comes), and a
    device, folder or socket is refused too, never read. With ``links=False`` a symbolic
    link at ``path`` is refused (``O_NOFOLLOW``), for files cnnlab wrote itself and never
    writes through a link. ``error`` gets one message, ``"<path>: <why>"``.
    """
    try:
        fd = os.open(path, _READ_FLAGS | (0 if links else os.O_NOFOLLOW))
    except OSError as exc:
        if not links and exc.errno == errno.ELOOP:
            raise error(f"{path}: is a symbolic link; refused: cnnlab reads {_article(what)} {what} it wrote "
                        "only from a regular file") from None
        raise error(f"{path}: cannot read {what} ({reason(exc)})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{path}: not a regular file ({file_kind(mode)}); refused: {_article(what)} {what} is "
                        "read only from a regular file")
        os.set_blocking(fd, True)  # a regular file's reads never wait anyway; cleared for the libraries' sake
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, limit: int, error: ErrorFactory = CnnlabError,
                 what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; anything else is ``error`` naming it.

    Opened by :func:`open_regular`; a file larger than ``limit`` is never read. Memory is
    asked for what the file holds (its size, known before reading), never for ``limit``:
    the limit may be gigabytes, the file a few kilobytes.
    """
    with open_regular(path, what, error) as handle:
        try:
            size = os.fstat(handle.fileno()).st_size
            if size > limit:
                raise error(f"{path}: {size:,} bytes, more than {_article(what)} {what} may have ({limit:,})")
            data = _read_sized(handle, size, limit)
        except OSError as exc:
            raise error(f"{path}: cannot read {what} ({reason(exc)})") from None
    if len(data) > limit:  # it grew while being read
        raise error(f"{path}: more than {_article(what)} {what} may have ({limit:,} bytes)")
    return data


def _read_sized(handle: BinaryIO, size: int, limit: int) -> bytes:
    """``size`` bytes (and one more, to see growth) at once; should the file hold more (it grew, or
    is a /proc file whose size reads 0), the rest in chunks, stopping one byte past ``limit``."""
    parts = [handle.read(size + 1)]
    total = len(parts[0])
    while size < total <= limit and (block := handle.read(min(_READ_CHUNK, limit + 1 - total))):
        parts.append(block)
        total += len(block)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"
