"""The official-format loader, on fixture archives served from loopback."""

import hashlib
import pickle
import tarfile

import numpy as np
import pytest

from cnnlab.data import DatasetError, load_dataset
from cnnlab.data.archive import UnsafeArchiveError, safe_extract
from cnnlab.data.cifar10 import Release, _accepts, load_cifar10

from fixtures import CLASSES, make_cifar_archive, make_cifar_folder, tar_with
from httpserver import LoopbackServer


@pytest.fixture
def fixture_archive(tmp_path):
    return make_cifar_archive(tmp_path / "made")


def test_download_verify_extract_convert(tmp_path, fixture_archive):
    archive, release, images = fixture_archive
    with LoopbackServer(archive.read_bytes()) as server:
        release = Release(server.url, release.filename, release.size, release.sha256, release.md5s)
        data = load_cifar10(cache=tmp_path / "cache", release=release, progress=False)
    assert data.class_names == CLASSES
    assert data.x_train.shape == (30, 32, 32, 3) and data.x_train.dtype == np.uint8
    assert np.array_equal(np.concatenate([data.x_train, data.x_test]), images)
    assert data.identity["sha256"] == release.sha256
    # Served from the converted cache now, with the server gone.
    again = load_cifar10(cache=tmp_path / "cache", release=release, allow_download=False)
    assert np.array_equal(again.x_train, data.x_train)


def test_damaged_cached_archive_is_replaced(tmp_path, fixture_archive):
    archive, release, _ = fixture_archive
    home = tmp_path / "cache" / "cifar10"
    home.mkdir(parents=True)
    (home / release.filename).write_bytes(b"garbage")
    with LoopbackServer(archive.read_bytes()) as server:
        release = Release(server.url, release.filename, release.size, release.sha256, release.md5s)
        load_cifar10(cache=tmp_path / "cache", release=release, progress=False)
    assert (home / release.filename).read_bytes() == archive.read_bytes()


def test_damaged_converted_cache_is_rebuilt(tmp_path, fixture_archive):
    archive, release, images = fixture_archive
    first = load_cifar10(archive, cache=tmp_path / "c", release=release)
    npz = next((tmp_path / "c" / "cifar10").glob("*.npz"))
    npz.write_bytes(npz.read_bytes()[:1000])
    second = load_cifar10(archive, cache=tmp_path / "c", release=release)
    assert np.array_equal(first.x_test, second.x_test)


def test_offline_error_explains_what_to_do(tmp_path, fixture_archive, monkeypatch):
    _, release, _ = fixture_archive
    monkeypatch.setattr("cnnlab.data.download.time.sleep", lambda seconds: None)
    with pytest.raises(DatasetError) as caught:
        load_cifar10(cache=tmp_path / "c", release=release, progress=False)
    message = str(caught.value)
    assert release.url in message and "cannot connect" in message
    assert str(tmp_path / "c" / "cifar10" / "cifar-10-python.tar.gz") in message
    assert "--dataset digits" in message


def test_extracted_folder_is_read_with_md5_checks(tmp_path):
    folder, md5s, images = make_cifar_folder(tmp_path / "x")
    release = Release("http://127.0.0.1:9/", "cifar-10-python.tar.gz", 1, "0" * 64, md5s)
    data = load_cifar10(folder, cache=tmp_path / "c", release=release)
    assert np.array_equal(data.x_test, images[-6:])
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes()[:-1] + b"\x00")
    with pytest.raises(DatasetError, match="test_batch: md5 mismatch"):
        load_cifar10(folder, cache=tmp_path / "c", release=release)


def test_archive_with_wrong_hash_is_refused(tmp_path, fixture_archive):
    archive, release, _ = fixture_archive
    other = Release(release.url, release.filename, release.size, "f" * 64, release.md5s)
    with pytest.raises(DatasetError, match="not the official CIFAR-10 archive"):
        load_cifar10(archive, cache=tmp_path / "c", release=other)


def test_load_dataset_recognises_official_paths(tmp_path):
    with pytest.raises(DatasetError, match="not the official CIFAR-10 archive"):
        fake = tmp_path / "cifar-10-python.tar.gz"
        fake.write_bytes(b"not it")
        load_dataset(fake, cache=tmp_path / "c")


def test_crafted_pickle_cannot_run_code(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    folder, md5s, _ = make_cifar_folder(tmp_path / "x")
    evil = pickle.dumps({b"data": Exploit(), b"labels": []}, protocol=2)
    (folder / "data_batch_1").write_bytes(evil)
    md5s["data_batch_1"] = hashlib.md5(evil).hexdigest()
    release = Release("http://127.0.0.1:9/", "cifar-10-python.tar.gz", 1, "0" * 64, md5s)
    refused = "refused or unreadable pickle: UnpicklingError: global .io.open. is not allowed"
    with pytest.raises(DatasetError, match=refused):
        load_cifar10(folder, cache=tmp_path / "c", release=release)
    assert not marker.exists()


def _info(name, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


GOOD = ("cifar-10-batches-py/batches.meta", b"x")


@pytest.mark.parametrize("member,why", [
    ((_info("../evil"), b"x"), "outside the target"),
    ((_info("cifar-10-batches-py/../../evil"), b"x"), "outside the target"),
    ((_info("/tmp/evil_abs"), b"x"), "absolute path"),
    ((_info("cifar-10-batches-py/data_batch_1", tarfile.SYMTYPE, "/etc/passwd"), None), "symbolic link"),
    ((_info("cifar-10-batches-py/data_batch_2", tarfile.LNKTYPE, "../../evil"), None), "hard link"),
    ((_info("cifar-10-batches-py/data_batch_3", tarfile.CHRTYPE), None), "device node"),
    ((_info("cifar-10-batches-py/payload.sh"), b"x"), "unexpected member"),
])
def test_hostile_archives_write_nothing_outside(tmp_path, member, why):
    work = tmp_path / "work"
    work.mkdir()
    archive = tar_with(tmp_path / "evil.tar.gz", [(_info(GOOD[0]), GOOD[1]), member])
    release = Release("u", "f", 1, "0" * 64, {"batches.meta": "", "data_batch_1": "", "data_batch_2": "",
                                                "data_batch_3": ""})
    with pytest.raises(UnsafeArchiveError, match=why):
        safe_extract(archive, work / "target", _accepts(release))
    assert list(work.iterdir()) == []  # no target, no staging folder left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar.gz", "work"]
