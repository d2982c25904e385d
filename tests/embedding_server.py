"""A real loopback HTTP server that speaks the OpenAI (`/v1/embeddings`) and Ollama (`/api/embed`)
embedding APIs with deterministic vectors: every text becomes (len, 2·len, 2·len), whose unit
vector is (1/3, 2/3, 2/3). `status` makes it fail; `requests` records what it got."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class Server:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.path, body, dict(self.headers)))
                texts = body["input"]
                vecs = [
                    [float(len(t)), 2.0 * len(t), 2.0 * len(t)] for t in texts
                ]  # norm 3·len: unit = [1/3, 2/3, 2/3]
                if self.path == "/v1/embeddings":
                    items = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vecs)]
                    reply: dict[str, Any] = {
                        "object": "list",
                        "data": list(reversed(items)),
                        "model": body["model"],
                    }
                elif self.path == "/api/embed":
                    reply = {"model": body["model"], "embeddings": vecs}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(reply).encode() if outer.status == 200 else b'{"error": "model not loaded"}'
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    t = threading.Thread(target=s.httpd.serve_forever, daemon=True)
    t.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
    t.join(5)
