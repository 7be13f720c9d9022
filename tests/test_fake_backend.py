"""The scripted fake backend: queues, recorded calls, and a deterministic answer for demos."""

from __future__ import annotations

import asyncio
from pathlib import Path

from llm_server import citation_check, default_draft, sample_procedure

from sop_compiler.config import Settings
from sop_compiler.generate import get_backend
from sop_compiler.generate.base import GenerationContext, GenerationResult
from sop_compiler.generate.fake import FakeBackend
from sop_compiler.models import Procedure, RoutineDraft, ToolCatalog


def _generate(backend: FakeBackend, *procedures: Procedure) -> list[GenerationResult]:
    context = GenerationContext(catalog=ToolCatalog(), settings=backend.settings)

    async def go() -> list[GenerationResult]:
        return await asyncio.gather(
            *(backend.generate(p, context=context, validate=citation_check(p)) for p in procedures)
        )

    return asyncio.run(go())


def test_registry_builds_the_fake_backend(tmp_path: Path) -> None:
    backend = get_backend(Settings(backend="fake", cache_dir=tmp_path))

    assert isinstance(backend, FakeBackend) and backend.name == "fake"


def test_per_procedure_queues_win_over_the_global_queue(tmp_path: Path) -> None:
    backend = FakeBackend(Settings(cache_dir=tmp_path))
    mine = default_draft({})
    mine["title"] = "Scripted for p2"
    shared = default_draft({})
    shared["title"] = "Shared"
    backend.queue(shared)
    backend.queue(RoutineDraft.model_validate(mine), procedure_id="p2")
    first, second = _generate(backend, sample_procedure("p1"), sample_procedure("p2"))

    assert first.draft is not None and first.draft.title == "Shared"
    assert second.draft is not None and second.draft.title == "Scripted for p2"
    assert len(backend.calls) == 2 and backend.pending() == 0


def test_unscripted_answer_is_deterministic_and_cites_real_blocks(tmp_path: Path) -> None:
    procedure = sample_procedure(steps=4)
    [one] = _generate(FakeBackend(Settings(cache_dir=tmp_path)), procedure)
    [two] = _generate(FakeBackend(Settings(cache_dir=tmp_path)), procedure)

    assert one.error is None and one.draft is not None
    assert one.draft == two.draft
    assert not citation_check(procedure)(one.draft)
    assert one.draft.steps[-1].kind == "resolve"


def test_every_request_is_recorded(tmp_path: Path) -> None:
    backend = FakeBackend(Settings(cache_dir=tmp_path, model="demo-model"))
    backend.queue("not json")
    _generate(backend, sample_procedure())

    assert [call.model for call in backend.calls] == ["demo-model", "demo-model"]
    assert backend.calls[1].messages[-2].content == "not json"


def test_fake_writes_no_cache_by_default(tmp_path: Path) -> None:
    backend = FakeBackend(Settings(cache_dir=tmp_path / "cache"))
    _generate(backend, sample_procedure())

    assert not (tmp_path / "cache").exists()
