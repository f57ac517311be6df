"""A loopback HTTP server with misbehaviours, for download tests (127.0.0.1 only)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Behaviour:
    def __init__(self, payload: bytes, mode: str = "ok"):
        self.payload, self.mode = payload, mode
        self.requests: list[dict] = []


def _handler(behaviour: Behaviour):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):
            behaviour.requests.append(dict(self.headers))
            mode, payload = behaviour.mode, behaviour.payload
            if mode == "hang":
                time.sleep(1.5)
                return
            if mode == "html":
                return self._send(200, b"<html><body>Service unavailable</body></html>", "text/html")
            if mode in ("endless", "trickle"):
                return self._stream(payload, mode)
            if mode == "huge-length":
                return self._send(200, payload, length=5 * 1024**3)
            start = self._range_start()
            if mode == "drop-then-resume" and len(behaviour.requests) == 1:
                return self._send(200, payload[: len(payload) // 2], length=len(payload))
            if mode == "truncate":
                return self._send(200, payload[: len(payload) // 3], length=len(payload))
            if mode == "flip":
                payload = payload[:100] + bytes([payload[100] ^ 0xFF]) + payload[101:]
            if start:
                return self._send(206, payload[start:], extra={
                    "Content-Range": f"bytes {start}-{len(payload) - 1}/{len(payload)}"})
            return self._send(200, payload)

        def _stream(self, payload, mode):
            """endless: no Content-Length, the payload then zeros until the client hangs up.
            trickle: the right Content-Length, then a byte every 50 ms."""
            self.send_response(200)
            self.send_header("Content-Type", "application/gzip")
            if mode == "trickle":
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            try:
                if mode == "endless":
                    self.wfile.write(payload)
                    while True:
                        self.wfile.write(bytes(1 << 16))
                for byte in payload:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:  # the client gave up, as it should
                pass
            self.close_connection = True

        def _range_start(self) -> int:
            header = self.headers.get("Range", "")
            return int(header.split("=")[1].split("-")[0]) if header.startswith("bytes=") else 0

        def _send(self, status, body, ctype="application/gzip", length=None, extra=None):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(length if length is not None else len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

    return Handler


class LoopbackServer:
    """``with LoopbackServer(payload, mode) as server: server.url``"""

    def __init__(self, payload: bytes, mode: str = "ok"):
        self.behaviour = Behaviour(payload, mode)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.behaviour))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/cifar-10-python.tar.gz"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
