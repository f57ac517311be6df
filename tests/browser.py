"""Open a page in Debian's headless Chromium (network features off) and report what it saw."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--virtual-time-budget=5000"]

# Injected into a copy of the page: records image sizes, resource fetches and CSP violations.
PROBE = """<script>
var violations = [];
document.addEventListener('securitypolicyviolation', function (e) { violations.push(e.blockedURI); });
window.addEventListener('load', function () {
  var images = Array.prototype.map.call(document.images, function (i) {
    return {alt: i.alt, width: i.naturalWidth, complete: i.complete}; });
  var fetched = performance.getEntriesByType('resource').map(function (r) { return r.name; });
  var out = document.createElement('pre'); out.id = 'probe-result';
  out.textContent = JSON.stringify({images: images, fetched: fetched, violations: violations});
  document.body.appendChild(out);
});
</script>"""
CSP = ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
       "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(args: list[str]) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120)


def inspect_page(page: Path, work: Path) -> dict:
    """Load a probed copy of ``page``; returns its images, fetched resources and CSP violations."""
    text = page.read_text()
    probed = text.replace("<head>", "<head>" + CSP, 1).replace("</body>", PROBE + "</body>", 1)
    copy = work / f"probed-{page.name}"
    copy.write_text(probed)
    result = _run(["--dump-dom", copy.as_uri()])
    match = re.search(r'<pre id="probe-result">(.*?)</pre>', result.stdout, re.S)
    if not match:
        raise AssertionError(f"the probe did not report; chromium said: {result.stderr[-2000:]}")
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def screenshot(page: Path, out: Path, width: int, height: int) -> Path:
    _run([f"--screenshot={out}", f"--window-size={width},{height}", "--hide-scrollbars", page.as_uri()])
    return out
