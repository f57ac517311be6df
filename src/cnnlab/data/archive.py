"""Safe archive reading: only regular members, inside the target, within bounded sizes.

Every archive gets a budget (``limits.archive_budget``): the sizes its members
declare may add up to no more than that, and a tar stream is never inflated past
it, so a small archive cannot make cnnlab inflate gigabytes. Extraction writes
into a temporary folder beside the target and renames it into place only when
every member is written, so a half-finished extraction is never taken for a
finished one.

A tar member that passes every check here is then written by tarfile itself under the
standard library's ``data`` extraction filter (Python 3.11.4 and later; before that, by the
same bounded copy as zip members): a second, maintained check that the file lands inside
the target and is a plain file. The filter does not bound sizes; the checks here do.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from cnnlab.data import limits
from cnnlab.data.dataset import DatasetError
from cnnlab.errors import describe
from cnnlab.files import open_regular

# What the stdlib decoders raise on damaged data.
READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error, lzma.LZMAError,
               RuntimeError, NotImplementedError, ValueError)
# tarfile's extraction filters (3.11.4+); without them tar members are copied as zip members are.
HAS_DATA_FILTER = hasattr(tarfile, "data_filter")
FILTER_ERRORS = (tarfile.FilterError,) if HAS_DATA_FILTER else ()


class UnsafeArchiveError(DatasetError):
    """An archive member that would escape the target, is not a plain file, or inflates too far."""


@dataclass(frozen=True)
class Member:
    """One archive member: its name, kind ('file', 'dir' or what else), declared size and opener.

    ``extract(folder, name)``, where given, writes the member as ``folder/name`` itself (a tar
    member, through tarfile's data filter); otherwise extraction copies from ``open()``.
    """

    name: str
    kind: str
    size: int
    open: Callable[[], BinaryIO]
    extract: Callable[[Path, str], None] | None = None


def member_path(name: str, archive: Path) -> PurePosixPath:
    """The member's relative path, refusing absolute paths and '..'."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")):
        raise UnsafeArchiveError(f"{archive}: member '{name}' has an absolute path; refused")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{archive}: member '{name}' points outside the target ('..'); refused")
    if path.parts and path.parts[0].endswith(":"):
        raise UnsafeArchiveError(f"{archive}: member '{name}' names a drive; refused")
    return path


class _BoundedStream:
    """A forward-only view of a decompressed tar stream that refuses to go past ``budget``.

    tarfile reads extended headers (pax, GNU long names) whole and skips members by
    inflating through them; both are bounded here, where every byte passes.
    """

    def __init__(self, inner: BinaryIO, budget: int, archive: Path):
        self.inner, self.budget, self.archive, self.name = inner, budget, archive, str(archive)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > limits.MAX_TAR_HEADER_BYTES:
            shown = "all of it" if size is None or size < 0 else limits.size_text(size)
            raise UnsafeArchiveError(f"{self.archive}: a tar header asks to read {shown} at once (more than "
                                     f"{limits.size_text(limits.MAX_TAR_HEADER_BYTES)}); refused")
        self._check(self.inner.tell() + size)
        return self.inner.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        target = offset if whence == 0 else self.inner.tell() + offset if whence == 1 else None
        if target is None:
            raise OSError("cannot seek from the end of a compressed stream")
        self._check(target)
        return self.inner.seek(target)

    def tell(self) -> int:
        return self.inner.tell()

    def _check(self, position: int) -> None:
        if position > self.budget:
            raise UnsafeArchiveError(_over_budget(self.archive, self.budget))


def _over_budget(archive: Path, budget: int) -> str:
    return (f"{archive}: inflates to more than {limits.size_text(budget)} (the most cnnlab inflates from "
            f"an archive of this size: {limits.ARCHIVE_MAX_INFLATION}x, at least "
            f"{limits.size_text(limits.ARCHIVE_MIN_BUDGET)}); refused as a possible decompression bomb. "
            "If it is genuine, extract it and pass the folder")


def _decompressed(raw: BinaryIO) -> BinaryIO:
    """The tar stream inside gzip, bzip2 or xz compression (or ``raw`` itself for a plain tar)."""
    magic = raw.read(6)
    raw.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw)
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(raw)
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw)
    return raw


def _tar_members(raw: BinaryIO, archive: Path, budget: int) -> Iterator[Member]:
    with _decompressed(raw) as stream, tarfile.open(
            fileobj=_BoundedStream(stream, budget, archive), mode="r:") as tar:
        for info in tar:
            kind = "file" if info.isreg() else "dir" if info.isdir() else _tar_kind(info)
            extract = partial(_filtered_extract, tar, info) if HAS_DATA_FILTER and kind == "file" else None
            yield Member(info.name, kind, info.size, lambda info=info: tar.extractfile(info), extract)


def _filtered_extract(tar: tarfile.TarFile, info: tarfile.TarInfo, folder: Path, name: str) -> None:
    """Write the regular member ``info`` as ``folder/name`` through tarfile's ``data`` filter.

    ``name`` is the member's checked path (backslashes read as '/'). tarfile writes exactly the
    declared size, which the caller has checked. Modes and times are not taken from the archive
    (``set_attrs=False``): the file gets the umask's permissions, as every file cnnlab writes.
    """
    tar.extract(info.replace(name=name, deep=False), folder, set_attrs=False, filter=tarfile.data_filter)


def _tar_kind(info: tarfile.TarInfo) -> str:
    if info.issym():
        return f"symbolic link to '{info.linkname}'"
    if info.islnk():
        return f"hard link to '{info.linkname}'"
    if info.ischr() or info.isblk():
        return "device node"
    if info.isfifo():
        return "FIFO"
    return "special member"


def _zip_members(raw: BinaryIO) -> Iterator[Member]:
    with zipfile.ZipFile(raw) as zf:
        for info in zf.infolist():
            mode = (info.external_attr >> 16) & 0o170000
            kind = "dir" if info.is_dir() else "symbolic link" if mode == 0o120000 else "file"
            yield Member(info.filename, kind, info.file_size, lambda info=info: zf.open(info))


def iter_members(archive: Path) -> Iterator[Member]:
    """Members of a .tar(.gz/.bz2/.xz) or .zip archive, at most ``limits.MAX_FILES`` of them."""
    archive = Path(archive)
    try:
        budget = limits.archive_budget(archive)
        with open_regular(archive, "archive", DatasetError) as raw:  # a FIFO or device refused, never waited on
            is_zip = zipfile.is_zipfile(raw)
            raw.seek(0)
            members = _zip_members(raw) if is_zip else _tar_members(raw, archive, budget)
            for count, member in enumerate(members, 1):
                if count > limits.MAX_FILES:
                    raise UnsafeArchiveError(f"{archive}: more than {limits.MAX_FILES:,} members; refused")
                yield member
    except READ_ERRORS as exc:
        raise DatasetError(f"{archive}: not a readable archive ({describe(exc)})") from None


def regular_members(archive: Path) -> Iterator[tuple[PurePosixPath, Member]]:
    """(relative path, member) per regular file; links, devices, absolute paths and '..' are refused.

    The sizes the members declare, all of them counted, may add up to the archive's
    budget and no more: the archive is refused before a member beyond it is read.
    """
    archive = Path(archive)
    budget, declared = limits.archive_budget(archive), 0
    for member in iter_members(archive):
        path = member_path(member.name, archive)
        if member.kind == "dir":
            continue  # folders are made as files need them
        if member.kind != "file":
            raise UnsafeArchiveError(f"{archive}: member '{member.name}' is a {member.kind}, not a regular "
                                     "file; refused")
        declared += member.size
        if declared > budget:
            raise UnsafeArchiveError(_over_budget(archive, budget))
        yield path, member


def _check_declared(name: str, member: Member, limit: int, what: str) -> None:
    """Refuse a member that declares more than ``limit`` bytes."""
    if member.size > limit:
        raise limits.FileLimitError(name, limits.too_large(member.size, limit, what))


def _open_member(name: str, member: Member, limit: int, what: str) -> BinaryIO:
    """The member's stream, refused when it declares more than ``limit`` bytes."""
    _check_declared(name, member, limit, what)
    return member.open()


def read_member(archive: Path, member: Member, limit: int, what: str = "member") -> bytes:
    """The member's bytes; larger than ``limit`` (declared or found) or damaged: FileLimitError."""
    name = f"{archive}: {member.name}"
    try:
        with _open_member(name, member, limit, what) as stream:
            return limits.read_bounded(stream, limit, name, what)
    except READ_ERRORS as exc:
        raise limits.FileLimitError(name, f"cannot be read from the archive ({describe(exc)})") \
            from None


def safe_extract(archive: Path, target: Path, accept: Callable[[PurePosixPath], bool],
                 max_member: int = limits.MAX_EXTRACTED_MEMBER_BYTES) -> Path:
    """Extract the members ``accept`` admits into ``target``; refuse everything unsafe.

    A member that is a link, device or other special file, has an absolute path or
    '..', is not accepted or is larger than ``max_member``, or an archive over its
    budget, stops extraction with an error naming it; nothing is then left behind
    and ``target`` is not created.
    """
    archive, target = Path(archive), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.partial-"))
    try:
        for path, member in regular_members(archive):
            _extract_one(archive, staging, path, member, accept, max_member)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _extract_one(archive, staging, path: PurePosixPath, member: Member, accept, max_member: int) -> None:
    name = str(path)
    if not accept(path):
        raise UnsafeArchiveError(f"{archive}: unexpected member '{name}'; refused")
    out = staging.joinpath(*path.parts)
    if staging.resolve() not in out.resolve().parents:
        raise UnsafeArchiveError(f"{archive}: member '{name}' resolves outside the target; refused")
    out.parent.mkdir(parents=True, exist_ok=True)
    source = f"{archive}: {name}"
    _check_declared(source, member, max_member, "member")
    try:
        if member.extract is not None:
            member.extract(staging, name)
        else:
            with member.open() as stream, open(out, "wb") as handle:
                limits.copy_bounded(stream, handle, max_member, source)
    except FILTER_ERRORS as exc:
        raise UnsafeArchiveError(f"{archive}: member '{name}' refused by tarfile's data filter ({exc})") from None
    except READ_ERRORS as exc:  # OSError here is the archive's (a bad CRC) or the disk's: both fatal
        raise DatasetError(f"{source}: cannot be extracted ({describe(exc)})") from None
