"""Downloads from a loopback server: verified, resumed, timed out, never half-trusted."""

import hashlib
import os

import pytest

from cnnlab.data.download import DownloadError, download

from httpserver import LoopbackServer

PAYLOAD = os.urandom(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def fetch(url, dest, **kw):
    kw.setdefault("backoff", 0)
    kw.setdefault("progress", False)
    return download(url, dest, SHA, len(PAYLOAD), **kw)


def test_happy_path(tmp_path):
    dest = tmp_path / "a.tar.gz"
    with LoopbackServer(PAYLOAD) as server:
        assert fetch(server.url, dest) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "a.tar.gz.part").exists()


@pytest.mark.parametrize("mode,reason", [
    ("truncate", "connection closed after"),
    ("flip", "sha256 mismatch"),
    ("html", "HTML page"),
])
def test_bad_downloads_never_take_the_final_name(tmp_path, mode, reason):
    dest = tmp_path / "a.tar.gz"
    with LoopbackServer(PAYLOAD, mode) as server, pytest.raises(DownloadError) as caught:
        fetch(server.url, dest, retries=1)
    assert reason in str(caught.value) and server.url in str(caught.value)
    assert not dest.exists()


def test_dropped_connection_is_resumed_with_range(tmp_path):
    dest = tmp_path / "a.tar.gz"
    with LoopbackServer(PAYLOAD, "drop-then-resume") as server:
        fetch(server.url, dest, retries=2)
        requests = server.behaviour.requests
    assert dest.read_bytes() == PAYLOAD
    assert len(requests) == 2
    assert requests[1]["Range"] == f"bytes={len(PAYLOAD) // 2}-"


def test_server_that_never_answers_times_out(tmp_path):
    dest = tmp_path / "a.tar.gz"
    with LoopbackServer(PAYLOAD, "hang") as server, pytest.raises(DownloadError, match="timed out"):
        fetch(server.url, dest, timeout=0.3, retries=1)
    assert not dest.exists()


def test_unreachable_host_is_reported(tmp_path):
    with pytest.raises(DownloadError, match="cannot connect"):
        fetch("http://127.0.0.1:9/x.tar.gz", tmp_path / "x", retries=0)


def test_server_that_never_stops_sending_is_cut_at_the_expected_size(tmp_path):
    dest = tmp_path / "a.tar.gz"
    with LoopbackServer(PAYLOAD, "endless") as server, pytest.raises(DownloadError) as caught:
        fetch(server.url, dest, retries=1)
    message = str(caught.value)
    assert server.url in message and f"more than the expected {len(PAYLOAD):,} bytes" in message
    assert not dest.exists() and not (tmp_path / "a.tar.gz.part").exists()  # nothing kept, disk not filled


def test_announced_size_beyond_the_expected_one_is_refused_before_reading(tmp_path):
    dest = tmp_path / "a.tar.gz"
    with LoopbackServer(PAYLOAD, "huge-length") as server, pytest.raises(DownloadError) as caught:
        fetch(server.url, dest, retries=0)
    assert f"announces {5 * 1024**3:,} bytes, expected {len(PAYLOAD):,}" in str(caught.value)
    assert not (tmp_path / "a.tar.gz.part").exists() or (tmp_path / "a.tar.gz.part").stat().st_size == 0


def test_overall_deadline_ends_a_server_sending_a_byte_at_a_time(tmp_path):
    dest = tmp_path / "a.tar.gz"
    with LoopbackServer(PAYLOAD, "trickle") as server, pytest.raises(DownloadError) as caught:
        fetch(server.url, dest, retries=3, deadline=0.5, timeout=600)
    # Each read is well within `timeout` (a byte every 50 ms): the deadline, checked between reads, ends it,
    # with the rest of the 300,000 bytes (4 hours at that pace) unread, whatever the machine's load.
    message = str(caught.value)
    assert "try 1: the overall deadline passed after" in message and "try 2" not in message, message
    assert "timed out" not in message.lower() and not dest.exists()
