"""The OpenAI Batch API: upload a JSONL file of chat requests, create a batch, collect answers.

    batch_id = await submit(backend, {"billing/refunds": request, ...})
    state = await collect(backend, batch_id)     # state.status, state.answers, state.failed

Only the transport lives here; which procedures go into a batch, and what becomes of the answers,
is the pipeline's (pipeline/_batch.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from sop_compiler.errors import GenerationError
from sop_compiler.generate.llm import ChatRequest
from sop_compiler.generate.openai import OpenAIBackend
from sop_compiler.models import Usage

ENDPOINT: Literal["/v1/chat/completions"] = "/v1/chat/completions"
# Still running: collect again later. Anything else is final (completed, expired, failed,
# cancelled): what finished is collected, the rest is submitted again.
RUNNING = frozenset({"validating", "in_progress", "finalizing", "cancelling"})


@dataclass
class Answer:
    """One finished line: the model's text and what it cost."""

    content: str
    usage: Usage


@dataclass
class BatchState:
    """A batch as the server reports it, with the answers of its finished lines."""

    status: str
    answers: dict[str, Answer] = field(default_factory=dict)  # custom_id -> answer
    failed: dict[str, str] = field(default_factory=dict)  # custom_id -> why

    @property
    def running(self) -> bool:
        """True while the server is still working on it."""
        return self.status in RUNNING


def batch_lines(requests: dict[str, ChatRequest]) -> bytes:
    """The JSONL input file: one line per request, in custom_id order (byte-stable)."""
    lines = [
        json.dumps(
            {"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": request.payload()},
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        for cid, request in sorted(requests.items())
    ]
    return ("\n".join(lines) + "\n").encode()


async def submit(backend: OpenAIBackend, requests: dict[str, ChatRequest]) -> str:
    """Upload the requests and create a batch; its id."""
    import openai

    client = backend.client()
    try:
        uploaded = await client.files.create(
            file=("sopc-batch.jsonl", batch_lines(requests)), purpose="batch"
        )
        batch = await client.batches.create(
            input_file_id=uploaded.id, endpoint=ENDPOINT, completion_window="24h"
        )
    except openai.APIError as exc:
        raise GenerationError(backend.scrub(f"could not submit the batch: {exc}")) from None
    return batch.id


async def collect(backend: OpenAIBackend, batch_id: str) -> BatchState:
    """The batch's status and, once it is final, its answers and failed lines."""
    import openai

    client = backend.client()
    try:
        batch = await client.batches.retrieve(batch_id)
        state = BatchState(status=batch.status)
        if state.running:
            return state
        if batch.output_file_id:
            for line in await _lines(client, batch.output_file_id):
                _read_output(line, state)
        if batch.error_file_id:
            for line in await _lines(client, batch.error_file_id):
                error = line.get("error") or {}
                why = error.get("message") or error.get("code") or "failed"
                state.failed.setdefault(str(line.get("custom_id")), backend.scrub(str(why)))
    except openai.NotFoundError:
        return BatchState(status="missing")  # gone from the server: submit its requests again
    except openai.APIError as exc:
        raise GenerationError(backend.scrub(f"could not read batch {batch_id}: {exc}")) from None
    return state


async def _lines(client: Any, file_id: str) -> list[dict[str, Any]]:
    content = await client.files.content(file_id)
    out = []
    for raw in content.content.decode("utf-8", errors="replace").splitlines():
        if raw.strip():
            try:
                value = json.loads(raw)
            except ValueError:
                continue
            if isinstance(value, dict):
                out.append(value)
    return out


def _read_output(line: dict[str, Any], state: BatchState) -> None:
    """One output line: an answer, or (a non-200 response, no content) a failed line."""
    cid = str(line.get("custom_id"))
    response = line.get("response") or {}
    body = response.get("body") or {}
    if line.get("error") or response.get("status_code") != 200:
        error = line.get("error") or body.get("error") or {}
        state.failed[cid] = str(error.get("message") or f"HTTP {response.get('status_code')}")
        return
    choices = body.get("choices") or []
    message = (choices[0].get("message") or {}) if choices else {}
    content = message.get("content")
    finish = choices[0].get("finish_reason") if choices else None
    if not isinstance(content, str) or finish not in (None, "stop"):
        state.failed[cid] = f"no usable answer (finish_reason {finish})"
        return
    usage = body.get("usage") or {}
    state.answers[cid] = Answer(
        content,
        Usage(
            calls=1,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        ),
    )
