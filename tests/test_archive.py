"""Tar extraction: tarfile's data filter under cnnlab's own checks, and the same results without it."""

import os
import stat
import tarfile

import pytest

from cnnlab.data import archive as archive_module
from cnnlab.data.archive import UnsafeArchiveError, safe_extract
from cnnlab.data.dataset import DatasetError

from fixtures import tar_with

needs_filter = pytest.mark.skipif(not archive_module.HAS_DATA_FILTER, reason="tarfile has no data filter here")
BOTH_WAYS = pytest.mark.parametrize("filtered", [pytest.param(True, marks=needs_filter), False],
                                    ids=["data-filter", "own-copy"])


def _info(name, kind=tarfile.REGTYPE, linkname="", mode=0o644):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, mode
    return info


def _extract(tmp_path, members, filtered, monkeypatch, **kw):
    monkeypatch.setattr(archive_module, "HAS_DATA_FILTER", filtered)
    made = tar_with(tmp_path / "a.tar.gz", members)
    return safe_extract(made, tmp_path / "out" / "target", lambda path: True, **kw)


@BOTH_WAYS
def test_members_extract_to_their_checked_paths_with_the_umasks_permissions(tmp_path, monkeypatch, filtered):
    members = [(_info("d/a.bin", mode=0o600), b"a" * 70_000), (_info("d\\b.bin", mode=0o4777), b"b"),
               (_info("./c.bin"), b"")]
    target = _extract(tmp_path, members, filtered, monkeypatch)
    assert (target / "d" / "a.bin").read_bytes() == b"a" * 70_000
    assert (target / "d" / "b.bin").read_bytes() == b"b"  # a backslash is read as '/', both ways
    assert (target / "c.bin").read_bytes() == b""
    umask = os.umask(0)
    os.umask(umask)
    for name in ("d/a.bin", "d/b.bin", "c.bin"):  # never the archive's 0600 or setuid 4777
        assert stat.S_IMODE((target / name).stat().st_mode) == 0o666 & ~umask


@BOTH_WAYS
@pytest.mark.parametrize("member,why", [
    ((_info("../evil"), b"x"), "outside the target"),
    ((_info("/abs/evil"), b"x"), "absolute path"),
    ((_info("d/link", tarfile.SYMTYPE, "/etc/passwd"), None), "symbolic link"),
    ((_info("d/hard", tarfile.LNKTYPE, "d/ok"), None), "hard link"),
    ((_info("d/fifo", tarfile.FIFOTYPE), None), "FIFO"),
    ((_info("d/big"), b"x" * 2000), "member is too large"),
])
def test_unsafe_members_are_refused_either_way_and_leave_nothing(tmp_path, monkeypatch, filtered, member, why):
    with pytest.raises(DatasetError, match=why):
        _extract(tmp_path, [(_info("d/ok"), b"ok"), member], filtered, monkeypatch, max_member=1000)
    assert list((tmp_path / "out").iterdir()) == []


@needs_filter
def test_every_tar_member_passes_through_tarfiles_data_filter(tmp_path, monkeypatch):
    seen = []
    real = tarfile.data_filter
    monkeypatch.setattr(tarfile, "data_filter", lambda member, path: seen.append(member.name) or real(member, path))
    _extract(tmp_path, [(_info("d/a"), b"a"), (_info("d\\b"), b"b")], True, monkeypatch)
    assert seen == ["d/a", "d/b"]


@needs_filter
def test_a_refusal_by_the_data_filter_is_an_unsafe_archive_and_leaves_nothing(tmp_path, monkeypatch):
    def refuse(member, path):
        raise tarfile.OutsideDestinationError(member, os.path.join(path, "elsewhere"))

    monkeypatch.setattr(tarfile, "data_filter", refuse)
    with pytest.raises(UnsafeArchiveError, match="member 'd/a' refused by tarfile's data filter"):
        _extract(tmp_path, [(_info("d/a"), b"a")], True, monkeypatch)
    assert list((tmp_path / "out").iterdir()) == []
