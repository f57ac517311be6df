"""Verified downloads: temporary name, resume, timeout, retries, hash check, atomic rename."""

from __future__ import annotations

import http.client
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from cnnlab.data.cache import sha256_file
from cnnlab.data.dataset import DatasetError

CHUNK = 1 << 16


class DownloadError(DatasetError):
    """A download that failed or did not verify; names the URL and what went wrong."""


def download(url: str, dest: Path, sha256: str, size: int | None = None, *, timeout: float = 30.0,
             retries: int = 3, progress: bool = True, backoff: float = 1.0) -> Path:
    """Fetch ``url`` to ``dest``; the file takes its final name only once its sha256 matches.

    A partial ``dest.part`` left by an interrupted try is resumed with an HTTP Range
    request where the server allows it. Each failed try waits ``backoff`` seconds
    times the attempt number before the next.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures: list[str] = []
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * attempt)
        try:
            _fetch(url, part, size, timeout, progress)
        except (OSError, http.client.HTTPException, DownloadError) as exc:
            failures.append(_describe(exc))
            continue
        digest = sha256_file(part)
        if digest == sha256:
            os.replace(part, dest)
            return dest
        failures.append(f"sha256 mismatch (got {digest[:16]}..., expected {sha256[:16]}...)")
        part.unlink(missing_ok=True)  # a corrupt file cannot be resumed: start over
    tries = "; ".join(f"try {i + 1}: {why}" for i, why in enumerate(failures))
    raise DownloadError(f"download of {url} failed after {retries + 1} tries ({tries})")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect: {exc.reason}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _fetch(url: str, part: Path, size: int | None, timeout: float, progress: bool) -> None:
    """Append the missing bytes of ``url`` to ``part`` (all of them if it is absent)."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have >= size:
        return  # complete already; the hash check decides
    request = urllib.request.Request(url, headers={"User-Agent": "cnnlab"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if response.headers.get_content_type() == "text/html":
            raise DownloadError("the server sent an HTML page, not the archive")
        if response.status != 206:
            have = 0  # the server ignored the Range header: start over
        remaining = response.headers.get("Content-Length")
        expected = have + int(remaining) if remaining is not None else size
        got = _copy(response, part, have, expected, progress)
    if expected is not None and got < expected:
        raise DownloadError(f"connection closed after {got:,} of {expected:,} bytes")


def _copy(response, part: Path, have: int, expected: int | None, progress: bool) -> int:
    from tqdm.auto import tqdm

    with open(part, "ab" if have else "wb") as out, tqdm(
        total=expected, initial=have, unit="B", unit_scale=True, desc=part.name.removesuffix(".part"),
        disable=not progress, leave=False,
    ) as bar:
        while block := response.read(CHUNK):
            out.write(block)
            bar.update(len(block))
            have += len(block)
    return have
