"""A small scriptable OpenAI-compatible HTTP server for tests and benchmarks (127.0.0.1 only).

    with LLMServer() as server:
        server.queue(Reply(status=429, headers={"Retry-After": "1"}), completion(text))
        ... OPENAI_BASE_URL=server.base_url ...
        server.requests            # every request received, in order
        server.max_concurrency     # most requests in flight at once

POST /v1/chat/completions answers from the queue, then with `responder(body)` (by default a small
valid routine citing the first block of the procedure). GET /v1/models lists one model.
Run it by hand: `python tests/llm_server.py --port 8000 --delay 0.3`.

Streaming (issue #18): a request with `"stream": true` gets its 200 answer as server-sent events,
one content piece per chunk, `Reply(token_interval=0.3)` apart, with a pause of `silence` seconds
after `silence_after` pieces, and a final usage chunk when `stream_options.include_usage` asks for
one. `LLMServer(slots=2)` answers GET /props with `total_slots` (llama.cpp), and
`LLMServer(text_only=True)` answers 500 "image input is not supported" to requests with images.
`Reply(raw=..., headers={"Content-Encoding": "gzip"})` sends bytes as they are (a gzip bomb).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from sop_compiler.models import Issue, Procedure, RoutineDraft


@dataclass
class Reply:
    """One scripted answer: status, headers, JSON (or text) body, delay, or a dropped connection."""

    status: int = 200
    body: dict[str, Any] | str | None = None  # None: use the responder
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    close: bool = False  # send half the response, then close the connection
    # streaming (issue #18): used when the request asks for a stream
    stream: bool | None = None  # False: answer with one JSON body even when asked to stream
    pieces: int | None = None  # chunks the content is split into (default: ~16 characters each)
    token_interval: float = 0.0  # seconds between chunks
    silence_after: int = 0  # pieces sent before the pause
    silence: float = 0.0  # seconds of silence (the client gives up first, or it ends)
    stream_error: str | None = None  # after the pieces, an error event instead of the finish
    raw: bytes | None = None  # sent as the body as is (with `headers`, e.g. Content-Encoding)


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names, without Authorization
    authorization: str | None  # kept apart so that tests can check the key was sent, and only here
    body: Any

    def messages_text(self) -> str:
        """All text of the request's messages, for assertions."""
        out = []
        for message in (self.body or {}).get("messages", []):
            content = message.get("content")
            if isinstance(content, str):
                out.append(content)
            else:
                out += [
                    part.get("text", "") for part in content or [] if part.get("type") == "text"
                ]
        return "\n".join(out)


def completion(
    content: str | dict[str, Any] | None,
    *,
    finish_reason: str = "stop",
    refusal: str | None = None,
    prompt_tokens: int = 1000,
    cached_tokens: int = 0,
    completion_tokens: int = 100,
    model: str = "test-model",
) -> dict[str, Any]:
    """A chat.completion body."""
    if isinstance(content, dict):
        content = json.dumps(content)
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": finish_reason,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens},
        },
    }


def error(
    status: int,
    message: str,
    *,
    code: str | None = None,
    type_: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
) -> Reply:
    """An OpenAI-style error reply."""
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return Reply(status=status, body=body, headers=headers or {})


_BLOCK = re.compile(r"^\[(b\d+)\] (.+)$", re.MULTILINE)


def default_draft(body: dict[str, Any]) -> dict[str, Any]:
    """A small valid routine that cites the first block of the procedure in the request."""
    text = ""
    for message in body.get("messages", []):
        content = message.get("content")
        parts = (
            [content] if isinstance(content, str) else [p.get("text", "") for p in content or []]
        )
        text = "\n".join(part for part in parts if "<procedure>" in part) or text
    procedure = text.rpartition("<procedure>")[2]
    blocks = [(m.group(1), m.group(2)) for m in _BLOCK.finditer(procedure)]
    blocks = [(bid, line) for bid, line in blocks if not line.startswith(("#", "(", "|", ">"))]
    source = None
    if blocks:
        block_id, line = blocks[0]
        line = re.sub(r"^\s*(\d+[.)]|[a-z][.)]|[-*•])\s+", "", line)
        source = {
            "block_ids": [block_id],
            "quote": " ".join(line.split()[:8]),
            "file": None,
            "page": None,
            "paragraph": None,
        }

    def step(id_: str, kind: str, text: str, src: Any = None) -> dict[str, Any]:
        return {
            "id": id_,
            "kind": kind,
            "text": text,
            "tool_call": None,
            "condition": None,
            "target": None,
            "next_step": None,
            "substeps": [],
            "source": src,
        }

    return {
        "title": "Test routine",
        "trigger": "The customer needs help.",
        "steps": [
            step("1", "say", "Follow the first instruction of the procedure.", source),
            step("2", "ask", "Ask whether there is anything else you can help with."),
            step("3", "resolve", "Resolve the case."),
        ],
        "edge_cases": [],
        "tools_proposed": [],
        "open_questions": [],
    }


def sample_procedure(
    procedure_id: str = "refunds--issue-a-refund", *, steps: int = 3, extra: list[Any] | None = None
) -> Procedure:
    """A small Procedure with a heading and numbered steps (`extra` blocks are appended)."""
    from sop_compiler.models import Heading, ListItem, Procedure, Provenance

    prov = Provenance(file="billing/refunds.md", heading_path=["Issue a refund"])
    blocks: list[Any] = [Heading(id="b1", prov=prov, text="Issue a refund", level=2)]
    for number in range(1, steps + 1):
        blocks.append(
            ListItem(
                id=f"b{number + 1}",
                prov=prov,
                marker=f"{number}.",
                ordered=True,
                text=f"Do step number {number} of {procedure_id} carefully.",
            )
        )
    return Procedure(
        id=procedure_id,
        title="Issue a refund",
        source="billing/refunds.md",
        source_sha256="0" * 64,
        agent="billing",
        heading_path=["Issue a refund"],
        blocks=blocks + list(extra or []),
    )


def citation_check(procedure: Procedure) -> Callable[[RoutineDraft], list[Issue]]:
    """A stand-in for validate.check_draft: cited block ids must exist, quotes must be in them."""
    from sop_compiler.models import Issue, block_text

    texts = {block.id: " ".join(block_text(block).split()) for block in procedure.blocks}

    def check(draft: RoutineDraft) -> list[Issue]:
        issues = []
        stack = list(draft.steps)
        while stack:
            step = stack.pop(0)
            stack[:0] = step.substeps
            ref = step.source
            for block_id in ref.block_ids if ref else []:
                if block_id not in texts:
                    issues.append(
                        Issue(
                            code="unknown_block",
                            severity="error",
                            routine_id=procedure.id,
                            step_id=step.id,
                            message=f"cites block {block_id}, which does not exist",
                        )
                    )
                elif ref and ref.quote not in texts[block_id]:
                    issues.append(
                        Issue(
                            code="quote_not_found",
                            severity="error",
                            routine_id=procedure.id,
                            step_id=step.id,
                            message=f"quote not found in block {block_id}",
                        )
                    )
        return issues

    return check


class LLMServer:
    """An OpenAI-compatible server in a background thread; a context manager."""

    def __init__(
        self,
        *,
        responder: Callable[[dict[str, Any]], Reply | dict[str, Any]] | None = None,
        delay: float = 0.0,
        port: int = 0,
        slots: int | None = None,
        text_only: bool = False,
    ) -> None:
        self.responder = responder or (lambda body: completion(default_draft(body)))
        self.slots = slots  # GET /props total_slots (llama.cpp); None: no /props
        self.text_only = text_only  # 500 "image input is not supported" for requests with images
        self.delay = delay  # fixed delay before every answer (throughput benchmark)
        self.requests: list[Recorded] = []
        self.max_concurrency = 0
        self._in_flight = 0
        self._replies: deque[Reply | dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        """The URL to give the client, ending in /v1."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def chat_requests(self) -> list[Recorded]:
        """Requests to /v1/chat/completions only."""
        return [r for r in self.requests if urlsplit(r.path).path.endswith("/chat/completions")]

    def queue(self, *replies: Reply | dict[str, Any]) -> None:
        """Answers for the next chat requests, in order (a dict is a 200 JSON body)."""
        with self._lock:
            self._replies.extend(replies)

    def __enter__(self) -> LLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving; sleeping handlers wake up and drop their connections."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next(self, body: Any) -> Reply:
        with self._lock:
            item = self._replies.popleft() if self._replies else None
        if item is None:
            item = self.responder(body if isinstance(body, dict) else {})
        if isinstance(item, dict):
            item = Reply(body=item)
        if item.raw is not None:
            return item
        if item.body is None and item.status != 200:
            message = f"scripted HTTP {item.status}"
            item = Reply(
                item.status,
                {
                    "error": {
                        "message": message,
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                },
                item.headers,
                item.delay,
                item.close,
            )
        if item.body is None and item.status == 200 and not item.close:
            made = self.responder(body if isinstance(body, dict) else {})
            made_reply = made if isinstance(made, Reply) else Reply(body=made)
            item = dataclasses.replace(
                item, body=made_reply.body, headers={**made_reply.headers, **item.headers}
            )
        return item

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_concurrency = max(self.max_concurrency, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # the benchmark opens 64+ connections at once
    owner: LLMServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (sopc stopped reading an answer) is not a server fault."""
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    disable_nagle_algorithm = True  # else headers and body wait on the client's delayed ACK (40 ms)
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default access log."""

    def _record(self, body: Any) -> None:
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"}
        owner = self.server.owner
        with owner._lock:
            owner.requests.append(
                Recorded(self.command, self.path, headers, self.headers.get("Authorization"), body)
            )

    def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        """GET /v1/models."""
        self._record(None)
        owner = self.server.owner
        if owner.slots is not None and urlsplit(self.path).path == "/props":
            self._send(200, json.dumps({"total_slots": owner.slots}).encode(), {})
        elif self.path.rstrip("/").endswith("/models"):
            data = {
                "object": "list",
                "data": [
                    {"id": "test-model", "object": "model", "created": 0, "owned_by": "sopc-tests"}
                ],
            }
            self._send(200, json.dumps(data).encode(), {})
        else:
            self._send(404, b'{"error": {"message": "not found"}}', {})

    def do_POST(self) -> None:
        """POST /v1/chat/completions."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self._record(body)
        owner = self.server.owner
        if not urlsplit(self.path).path.rstrip("/").endswith("/chat/completions"):
            self._send(404, b'{"error": {"message": "unknown path"}}', {})
            return
        owner._enter()
        try:
            reply = owner._next(body)
            if owner.text_only and _has_image(body):
                reply = error(500, "image input is not supported", type_="server_error")
            wait = owner.delay + reply.delay
            if wait and owner._stopping.wait(wait):
                self.close_connection = True
                return
            if reply.raw is not None:
                self._send(reply.status, reply.raw, dict(reply.headers))
                return
            payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
            data = payload.encode()
            if reply.close:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data) + 100))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if _wants_stream(body, reply):
                self._send_stream(reply, body)
                return
            self._send(reply.status, data, dict(reply.headers))
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True  # the client gave up (timeout): nothing to answer
        finally:
            owner._leave()

    # --- streaming (issue #18) ----------------------------------------------------------------

    def _chunk(self, data: bytes) -> None:
        """One HTTP/1.1 chunk (an empty one ends the body)."""
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _send_stream(self, reply: Reply, request: dict[str, Any]) -> None:
        """The reply's chat.completion as server-sent events, paced as the reply says."""
        assert isinstance(reply.body, dict)
        owner = self.server.owner
        whole = reply.body
        choice = whole["choices"][0]
        message = choice.get("message") or {}
        head = {
            "id": whole.get("id", "chatcmpl-test"),
            "object": "chat.completion.chunk",
            "created": 0,
            "model": whole.get("model", "test-model"),
        }

        def event(choices: list[dict[str, Any]], **extra: Any) -> None:
            data = json.dumps({**head, "choices": choices, **extra})
            self._chunk(f"data: {data}\n\n".encode())

        def delta(value: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": value, "finish_reason": finish}

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        event([delta({"role": "assistant", "content": ""})])
        for number, piece in enumerate(_pieces(message.get("content") or "", reply.pieces)):
            pause = reply.token_interval if number else 0.0
            if number == reply.silence_after and reply.silence:
                pause += reply.silence
            if pause and owner._stopping.wait(pause):
                self.close_connection = True
                return
            event([delta({"content": piece})])
        if reply.stream_error is not None:  # as llama.cpp reports a fault mid-answer
            error_event = {"error": {"message": reply.stream_error, "type": "server_error"}}
            self._chunk(f"data: {json.dumps(error_event)}\n\n".encode())
            self._chunk(b"")
            return
        if message.get("refusal"):
            event([delta({"refusal": message["refusal"]})])
        event([delta({}, choice.get("finish_reason") or "stop")])
        options = request.get("stream_options") or {}
        if options.get("include_usage") and whole.get("usage"):
            event([], usage=whole["usage"])
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")


def _wants_stream(request: Any, reply: Reply) -> bool:
    """A 200 chat.completion asked for as a stream, unless the reply refuses to stream."""
    return (
        isinstance(request, dict)
        and bool(request.get("stream"))
        and reply.stream is not False
        and reply.status == 200
        and not reply.close
        and isinstance(reply.body, dict)
        and reply.body.get("object") == "chat.completion"
    )


def _pieces(content: str, count: int | None) -> list[str]:
    """`content` split into `count` pieces (default: about 16 characters each)."""
    if not content:
        return []
    size = max(1, -(-len(content) // count)) if count else 16
    return [content[i : i + size] for i in range(0, len(content), size)]


def _has_image(request: Any) -> bool:
    for message in (request or {}).get("messages", []) if isinstance(request, dict) else []:
        content = message.get("content")
        if isinstance(content, list) and any(p.get("type") == "image_url" for p in content):
            return True
    return False


def main() -> None:
    """Serve until interrupted (for trying sopc by hand and for benchmarks)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before every answer")
    args = parser.parse_args()
    with LLMServer(delay=args.delay, port=args.port) as server:
        print(f"serving on {server.base_url} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
