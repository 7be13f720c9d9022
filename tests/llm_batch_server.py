"""The local test server with the OpenAI files and batches endpoints (for `sopc compile --batch`).

    with BatchServer(responder=...) as server:
        server.polls_before_done = 1      # the first retrieve says in_progress
        server.fail_lines = {"billing/refunds"}   # these custom_ids fail (error file)
        server.expire_next = True         # the next batch expires with half its lines done
        ... server.batches, server.files, server.chat_requests ...

POST /v1/files (multipart: purpose, file), GET /v1/files/{id}/content, POST /v1/batches,
GET /v1/batches/{id}. A batch's lines are answered, when it completes, by the same responder and
queue as /v1/chat/completions (each line is recorded as a chat request, so tests count lines as
calls). Kept apart from llm_server.py, which it extends without changing.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
from typing import Any
from urllib.parse import urlsplit

from llm_server import LLMServer, Recorded, _Handler, _Server


class BatchServer(LLMServer):
    """LLMServer plus the files and batches endpoints."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        port = self._server.server_address[1]
        self._server.server_close()
        self._server = _Server(("127.0.0.1", port), _BatchHandler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.polls_before_done = 0
        self.fail_lines: set[str] = set()
        self.expire_next = False
        self._ids = itertools.count(1)
        self._polls: dict[str, int] = {}

    def new_id(self, prefix: str) -> str:
        """A fresh id such as `batch_3`."""
        return f"{prefix}_{next(self._ids)}"

    def retrieve(self, batch_id: str) -> dict[str, Any] | None:
        """The batch, run to its end once it has been polled `polls_before_done` times."""
        with self._lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return None
            seen = self._polls.get(batch_id, 0)
            self._polls[batch_id] = seen + 1
            if batch["status"] != "in_progress" or seen < self.polls_before_done:
                return dict(batch)
            batch["status"] = "finalizing"
        self._finish(batch, expire=bool(batch.pop("_expire", False)))
        return dict(batch)

    def _finish(self, batch: dict[str, Any], *, expire: bool) -> None:
        lines = [json.loads(raw) for raw in self.files[batch["input_file_id"]].splitlines() if raw]
        done, failed = [], []
        for index, line in enumerate(lines):
            cid = line["custom_id"]
            if expire and index >= len(lines) // 2:
                failed.append(_error_line(cid, "batch_expired", "This request could not be run"))
                continue
            if cid in self.fail_lines:
                failed.append(_error_line(cid, "server_error", "The model had an error"))
                continue
            with self._lock:
                self.requests.append(
                    Recorded("POST", "/v1/chat/completions", {}, None, line["body"])
                )
            reply = self._next(line["body"])
            done.append(
                {
                    "id": f"resp_{cid}",
                    "custom_id": cid,
                    "response": {"status_code": reply.status, "request_id": "", "body": reply.body},
                    "error": None,
                }
            )
        with self._lock:
            batch["output_file_id"] = self._store(done)
            batch["error_file_id"] = self._store(failed) if failed else None
            batch["status"] = "expired" if expire else "completed"
            batch["request_counts"] = {
                "total": len(lines),
                "completed": len(done),
                "failed": len(failed),
            }

    def _store(self, lines: list[dict[str, Any]]) -> str:
        file_id = self.new_id("file")
        self.files[file_id] = "".join(json.dumps(line) + "\n" for line in lines).encode()
        return file_id


def _error_line(cid: str, code: str, message: str) -> dict[str, Any]:
    return {
        "id": f"resp_{cid}",
        "custom_id": cid,
        "response": None,
        "error": {"code": code, "message": message},
    }


def _file_object(file_id: str, size: int) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": 0,
        "filename": "input.jsonl",
        "purpose": "batch",
        "status": "processed",
    }


class _BatchHandler(_Handler):
    server: _Server

    def do_GET(self) -> None:
        """GET /v1/files/{id}/content and /v1/batches/{id}; the rest as LLMServer."""
        owner = self.server.owner
        assert isinstance(owner, BatchServer)
        parts = urlsplit(self.path).path.strip("/").split("/")
        if len(parts) == 4 and parts[1] == "files" and parts[3] == "content":
            self._record(None)
            data = owner.files.get(parts[2])
            if data is None:
                self._send(404, b'{"error": {"message": "no such file"}}', {})
            else:
                self._send(200, data, {"Content-Type": "application/octet-stream"})
            return
        if len(parts) == 3 and parts[1] == "batches":
            self._record(None)
            batch = owner.retrieve(parts[2])
            if batch is None:
                self._send(404, b'{"error": {"message": "no such batch"}}', {})
            else:
                shown = {k: v for k, v in batch.items() if not k.startswith("_")}
                self._send(200, json.dumps(shown).encode(), {})
            return
        super().do_GET()

    def do_POST(self) -> None:
        """POST /v1/files and /v1/batches; the rest as LLMServer."""
        owner = self.server.owner
        assert isinstance(owner, BatchServer)
        path = urlsplit(self.path).path.rstrip("/")
        if path.endswith("/files"):
            data = self._upload()
            self._record({"file": len(data)})
            file_id = owner.new_id("file")
            owner.files[file_id] = data
            self._send(200, json.dumps(_file_object(file_id, len(data))).encode(), {})
            return
        if path.endswith("/batches"):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length))
            self._record(body)
            batch_id = owner.new_id("batch")
            batch = {
                "id": batch_id,
                "object": "batch",
                "endpoint": body["endpoint"],
                "errors": None,
                "input_file_id": body["input_file_id"],
                "completion_window": body["completion_window"],
                "status": "in_progress",
                "output_file_id": None,
                "error_file_id": None,
                "created_at": 0,
                "request_counts": {"total": 0, "completed": 0, "failed": 0},
                "_expire": owner.expire_next,
            }
            owner.batches[batch_id] = batch
            owner.expire_next = False
            shown = {k: v for k, v in batch.items() if not k.startswith("_")}
            self._send(200, json.dumps(shown).encode(), {})
            return
        super().do_POST()

    def _upload(self) -> bytes:
        """The `file` part of a multipart/form-data upload."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        head = f"Content-Type: {self.headers.get('Content-Type')}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        for part in message.iter_parts():  # type: ignore[attr-defined]
            if part.get_param("name", header="content-disposition") == "file":
                payload = part.get_payload(decode=True)
                return payload if isinstance(payload, bytes) else b""
        return b""
