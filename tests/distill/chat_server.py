"""A local OpenAI-compatible chat server on 127.0.0.1 that answers with canned replies (for tests)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@contextmanager
def canned_chat_server(reply: Any = "Enjoys drama; 60% Drama.", exact: bool = False
                       ) -> Iterator[tuple[str, list[dict]]]:
    """Yields (base URL, received requests); every POST to /v1/chat/completions gets `reply` + a counter as its
    content (`exact`: `reply` itself, any JSON value); a POST under /redirect/ is redirected there (HTTP 302)."""
    received: list[dict] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                received.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
                n = len(received)
            if self.path.startswith("/redirect/"):
                self.send_response(302)
                self.send_header("Location", self.path.removeprefix("/redirect"))
                self.end_headers()
                return
            if self.path != "/v1/chat/completions":
                self.send_response(404)
                self.end_headers()
                self.wfile.write(b'{"error": "not found"}')
                return
            content = reply if exact else f" {reply} #{n} "
            payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content},
                                               "finish_reason": "stop"}]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload.encode())

        def do_GET(self) -> None:  # noqa: N802  (a followed redirect arrives as GET: recorded, refused)
            with lock:
                received.append({"path": self.path, "auth": self.headers.get("Authorization"), "method": "GET"})
            self.send_response(405)
            self.end_headers()

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
