"""Verified downloads: temporary name, resume, timeout, retries, hash check, atomic rename.

What a server can make cnnlab do is bounded: it never writes more than the expected
size (a longer body is an error), never waits more than ``timeout`` seconds for one
read, and gives up on the whole download, every try included, after ``deadline``
seconds, so a server that never stops sending, or sends a byte a second, ends.
"""

from __future__ import annotations

import http.client
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from cnnlab.data.cache import sha256_file
from cnnlab.data.dataset import DatasetError
from cnnlab.data.limits import MAX_UNKNOWN_DOWNLOAD_BYTES

CHUNK = 1 << 16
# The whole download, every try and wait included: CIFAR-10's 170 MB at 100 KB/s.
DEADLINE = 1800.0


class DownloadError(DatasetError):
    """A download that failed or did not verify; names the URL and what went wrong."""


def download(url: str, dest: Path, sha256: str, size: int | None = None, *, timeout: float = 30.0,
             retries: int = 3, progress: bool = True, backoff: float = 1.0,
             deadline: float = DEADLINE) -> Path:
    """Fetch ``url`` to ``dest``; the file takes its final name only once its sha256 matches.

    A partial ``dest.part`` left by an interrupted try is resumed with an HTTP Range
    request where the server allows it. Each failed try waits ``backoff`` seconds
    times the attempt number before the next. At most ``size`` bytes are written
    (``MAX_UNKNOWN_DOWNLOAD_BYTES`` when the size is not known), each read waits at
    most ``timeout`` seconds, and after ``deadline`` seconds in all it gives up.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures: list[str] = []
    give_up_at = time.monotonic() + deadline
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(max(0.0, min(backoff * attempt, give_up_at - time.monotonic())))
        if time.monotonic() >= give_up_at:
            break
        failure = _try(url, part, sha256, size, timeout, progress, give_up_at)
        if failure is None:
            os.replace(part, dest)
            return dest
        failures.append(failure)
    tries = "; ".join(f"try {i + 1}: {why}" for i, why in enumerate(failures))
    ended = f"; gave up at the overall deadline of {deadline:g} s" if time.monotonic() >= give_up_at else ""
    raise DownloadError(f"download of {url} failed after {len(failures)} tries ({tries}){ended}")


def _try(url: str, part: Path, sha256: str, size: int | None, timeout: float, progress: bool,
         give_up_at: float) -> str | None:
    """One try: None when ``part`` is complete and verified, else what went wrong."""
    try:
        _fetch(url, part, size, timeout, progress, give_up_at)
    except (OSError, http.client.HTTPException, DownloadError) as exc:
        return _describe(exc)
    digest = sha256_file(part)
    if digest == sha256:
        return None
    part.unlink(missing_ok=True)  # a corrupt file cannot be resumed: start over
    return f"sha256 mismatch (got {digest[:16]}..., expected {sha256[:16]}...)"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect: {exc.reason}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _fetch(url: str, part: Path, size: int | None, timeout: float, progress: bool, give_up_at: float) -> None:
    """Append the missing bytes of ``url`` to ``part`` (all of them if it is absent)."""
    limit = size if size is not None else MAX_UNKNOWN_DOWNLOAD_BYTES
    have = part.stat().st_size if part.exists() else 0
    if have > limit:
        part.unlink()  # longer than the file can be: damaged, start over
        have = 0
    if size is not None and have == size:
        return  # complete already; the hash check decides
    request = urllib.request.Request(url, headers={"User-Agent": "cnnlab"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    wait = max(0.001, min(timeout, give_up_at - time.monotonic()))
    with urllib.request.urlopen(request, timeout=wait) as response:
        if response.headers.get_content_type() == "text/html":
            raise DownloadError("the server sent an HTML page, not the archive")
        if response.status != 206:
            have = 0  # the server ignored the Range header: start over
        announced = getattr(response, "length", None)  # http.client's parsed Content-Length, if any
        expected = have + announced if announced is not None else size
        if expected is not None and (expected > limit or (size is not None and expected != size)):
            wanted = f"expected {size:,}" if size is not None else f"more than the {limit:,} cnnlab fetches"
            raise DownloadError(f"the server announces {expected:,} bytes, {wanted}")
        got = _copy(response, part, have, limit, expected, progress, give_up_at)
    if expected is not None and got < expected:
        raise DownloadError(f"connection closed after {got:,} of {expected:,} bytes")


def _copy(response, part: Path, have: int, limit: int, expected: int | None, progress: bool,
          give_up_at: float) -> int:
    """Append the body to ``part``: never past ``limit`` bytes, and not past the deadline."""
    from tqdm.auto import tqdm

    read = getattr(response, "read1", response.read)  # read1: one socket read, so the deadline is checked often
    with open(part, "ab" if have else "wb") as out, tqdm(
        total=expected, initial=have, unit="B", unit_scale=True, desc=part.name.removesuffix(".part"),
        disable=not progress, leave=False,
    ) as bar:
        while block := read(min(CHUNK, limit - have + 1)):
            if have + len(block) > limit:
                out.close()
                part.unlink(missing_ok=True)  # what came is not the file: do not resume from it
                raise DownloadError(f"the server sent more than the expected {limit:,} bytes")
            out.write(block)
            bar.update(len(block))
            have += len(block)
            if time.monotonic() > give_up_at:
                raise DownloadError(f"the overall deadline passed after {have:,} of "
                                    f"{expected if expected is not None else limit:,} bytes")
    return have
