"""Safe archive extraction: only accepted members, as regular files, inside the target.

Extraction writes into a temporary folder beside the target and renames it into
place only when every member is written, so a half-finished extraction is never
taken for a finished one.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from cnnlab.data.dataset import DatasetError


class UnsafeArchiveError(DatasetError):
    """An archive member that would escape the target, or is not a plain file."""


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


def _tar_members(archive: Path) -> Iterator[tuple[str, str, Callable[[], bytes]]]:
    """(name, kind, read) per member, kind being 'file', 'dir' or what else it is."""
    with tarfile.open(archive, "r:*") as tar:
        for info in tar:
            kind = "file" if info.isreg() else "dir" if info.isdir() else _tar_kind(info)
            yield info.name, kind, (lambda info=info: tar.extractfile(info).read())


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


def _zip_members(archive: Path) -> Iterator[tuple[str, str, Callable[[], bytes]]]:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            mode = (info.external_attr >> 16) & 0o170000
            kind = "dir" if info.is_dir() else "symbolic link" if mode == 0o120000 else "file"
            yield info.filename, kind, (lambda info=info: zf.read(info))


def iter_members(archive: Path) -> Iterator[tuple[str, str, Callable[[], bytes]]]:
    """Members of a .tar(.gz/.bz2/.xz) or .zip archive."""
    try:
        if zipfile.is_zipfile(archive):
            yield from _zip_members(archive)
        else:
            yield from _tar_members(archive)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DatasetError(f"{archive}: not a readable archive ({exc})") from None


def regular_members(archive: Path) -> Iterator[tuple[PurePosixPath, Callable[[], bytes]]]:
    """(relative path, read) per regular file; links, devices, absolute paths and '..' are refused."""
    for name, kind, read in iter_members(archive):
        path = member_path(name, archive)
        if kind == "dir":
            continue  # folders are made as files need them
        if kind != "file":
            raise UnsafeArchiveError(f"{archive}: member '{name}' is a {kind}, not a regular file; refused")
        yield path, read


def safe_extract(archive: Path, target: Path, accept: Callable[[PurePosixPath], bool]) -> Path:
    """Extract the members ``accept`` admits into ``target``; refuse everything unsafe.

    A member that is a link, device or other special file, has an absolute path or
    '..', or is not accepted, stops extraction with an error naming it; nothing
    is then left behind and ``target`` is not created.
    """
    archive, target = Path(archive), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.partial-"))
    try:
        for path, read in regular_members(archive):
            _extract_one(archive, staging, path, read, accept)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _extract_one(archive, staging, path: PurePosixPath, read, accept) -> None:
    name = str(path)
    if not accept(path):
        raise UnsafeArchiveError(f"{archive}: unexpected member '{name}'; refused")
    out = staging.joinpath(*path.parts)
    if staging.resolve() not in out.resolve().parents:
        raise UnsafeArchiveError(f"{archive}: member '{name}' resolves outside the target; refused")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(read())
