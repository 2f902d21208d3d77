"""A local HTTP server for the download tests (a helper module, not a test module).

:class:`LocalServer` serves in-memory files on 127.0.0.1 from a background thread and counts the requests per
path, the witness that a cached file is not downloaded again. A file can be served cut short (the full
``Content-Length`` announced, fewer bytes sent, then the connection closed) to stand for a dropped connection.
"""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["LocalServer"]


class LocalServer:
    """``with LocalServer({"a.bin": data}, truncate={"a.bin": 10}) as server: server.url("a.bin")``."""

    def __init__(self, files: dict[str, bytes], truncate: dict[str, int] | None = None) -> None:
        self.files, self.truncate = dict(files), dict(truncate or {})
        self.requests: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the name http.server calls
                name = self.path.lstrip("/")
                server.requests[name] += 1
                if name not in server.files:
                    self.send_error(404, "no such file")
                    return
                data = server.files[name]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: server.truncate.get(name, len(data))])
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/{name}"

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
