"""An OpenAI-compatible server answering every chat request after a fixed delay (benchmarks only).

It answers with a minimal valid routine draft, records every request body, and tracks how many
requests it was serving at once, so a benchmark can compare sopc's wall time with the ideal.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DRAFT = {
    "title": "Benchmark routine",
    "trigger": "Use for benchmark cases.",
    "steps": [
        {
            "id": "1",
            "kind": "resolve",
            "text": "Resolve the case.",
            "tool_call": None,
            "condition": None,
            "target": None,
            "next_step": None,
            "substeps": [],
            "source": None,
        }
    ],
    "edge_cases": [],
    "tools_proposed": [],
    "open_questions": [],
}


class FixedDelayServer:
    """Context manager: `with FixedDelayServer(0.3) as server: server.base_url`."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> FixedDelayServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # http.server sends headers and body separately: without TCP_NODELAY the body waits
            # for the client's delayed ACK (~40 ms), which no real model server adds.
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(
                    self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}"
                )
                with server._lock:
                    server.requests.append(body)
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    time.sleep(server.delay)
                    payload = json.dumps(
                        {
                            "id": "chatcmpl-bench",
                            "object": "chat.completion",
                            "created": 0,
                            "model": body.get("model", "bench"),
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": json.dumps(DRAFT)},
                                }
                            ],
                            "usage": {
                                "prompt_tokens": 1000,
                                "completion_tokens": 60,
                                "total_tokens": 1060,
                            },
                        }
                    ).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    with server._lock:
                        server.active -= 1

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default of 5 drops connections at --jobs 64

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()
