"""The scripted fake backend: queued answers and faults for tests, a deterministic answer for demos.

    backend = FakeBackend(settings)
    backend.queue('{"title": ...}')                        # next answer, any procedure
    backend.queue(RetryableError("503"), procedure_id="refunds--issue-a-refund")
    ...
    backend.calls                                          # every ChatRequest it received

With nothing queued it answers with a draft derived from the procedure (the offline compiler's when
available), so `sopc compile --backend fake` runs end to end without a model.
"""

from __future__ import annotations

import importlib
import json
import re
from collections import deque
from typing import Any

from sop_compiler.config import Settings
from sop_compiler.generate.base import GenerationContext
from sop_compiler.generate.llm import ChatRequest, ChatResponse, LLMBackend, current_procedure
from sop_compiler.models import (
    Heading,
    Procedure,
    RoutineDraft,
    SourceRef,
    Step,
    Usage,
    block_text,
)

Scripted = str | dict[str, Any] | RoutineDraft | ChatResponse | BaseException


class FakeBackend(LLMBackend):
    """An LLM backend whose answers are scripted; records every request it gets."""

    name = "fake"
    uses_model = True  # it stands in for a model: the pipeline treats it like one

    def __init__(self, settings: Settings, *, cache: bool = False, refresh: bool = False) -> None:
        self.uses_cache = cache  # off by default: scripted tests must not read stale answers
        super().__init__(settings, refresh=refresh)
        self.backoff_base = 0.0
        self.calls: list[ChatRequest] = []
        self._queues: dict[str | None, deque[Scripted]] = {}

    def queue(self, *items: Scripted, procedure_id: str | None = None) -> None:
        """Queue answers (text, dict, draft, ChatResponse) or exceptions to raise, in order.

        Answers queued for a procedure id are used first for that procedure; the rest share the
        global queue.
        """
        self._queues.setdefault(procedure_id, deque()).extend(items)

    def pending(self) -> int:
        """How many queued items have not been used."""
        return sum(len(queue) for queue in self._queues.values())

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """The next scripted item for the current procedure, or a deterministic draft."""
        self.calls.append(request)
        current = current_procedure()
        own = self._queues.get(current[0].id) if current else None
        queue = own if own else self._queues.get(None)
        if queue:
            return _response(queue.popleft())
        if request.schema is not None:
            return _response({request.schema[0]: []})  # another stage's answer: an empty list
        if current is None:
            return _response(_minimal_draft(None))
        return _response(await _default_draft(*current))


def _response(item: Scripted) -> ChatResponse:
    if isinstance(item, BaseException):
        raise item
    if isinstance(item, ChatResponse):
        return item
    if isinstance(item, RoutineDraft):
        content = item.model_dump_json()
    elif isinstance(item, dict):
        content = json.dumps(item)
    else:
        content = item
    return ChatResponse(content=content, usage=Usage(prompt_tokens=len(content) // 4))


async def _default_draft(procedure: Procedure, context: GenerationContext) -> RoutineDraft:
    try:
        offline = importlib.import_module("sop_compiler.generate.offline")
    except ImportError:
        return _minimal_draft(procedure)
    result = await offline.OfflineBackend(context.settings).generate(
        procedure, context=context, validate=lambda draft: []
    )
    return result.draft if result.draft is not None else _minimal_draft(procedure)


def _minimal_draft(procedure: Procedure | None) -> RoutineDraft:
    """One `say` step per instruction block, citing it, then anything-else and resolve."""
    steps: list[Step] = []
    for block in procedure.blocks if procedure else []:
        text = " ".join(block_text(block).split())
        if not text or isinstance(block, Heading):
            continue
        quote = " ".join(text.split()[:12])
        steps.append(
            Step(
                id=str(len(steps) + 1),
                kind="say",
                text=re.sub(r"^(\d+[.)]|[a-z][.)]|[-*•])\s+", "", text)[:500],
                source=SourceRef(block_ids=[block.id], quote=quote),
            )
        )
        if len(steps) == 40:
            break
    steps.append(
        Step(
            id=str(len(steps) + 1),
            kind="ask",
            text="Ask whether there is anything else you can help with.",
        )
    )
    steps.append(Step(id=str(len(steps) + 1), kind="resolve", text="Resolve the case."))
    title = procedure.title if procedure else "Procedure"
    return RoutineDraft(
        title=title,
        trigger=f"The customer needs help with: {title}.",
        steps=steps,
        open_questions=["Written by the fake backend: review every step."],
    )
