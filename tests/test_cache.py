"""The response cache: keyed by the full request, atomic, private, and skippable."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from llm_server import default_draft, sample_procedure

from sop_compiler.config import Settings
from sop_compiler.generate.base import GenerationContext, GenerationResult
from sop_compiler.generate.cache import ResponseCache
from sop_compiler.generate.fake import FakeBackend
from sop_compiler.generate.llm import ChatMessage, ChatRequest, ChatResponse
from sop_compiler.models import ToolCatalog, Usage


def request(**overrides: Any) -> ChatRequest:
    values: dict[str, Any] = {
        "model": "m",
        "messages": (ChatMessage("system", "rules"), ChatMessage("user", "procedure")),
    }
    return ChatRequest(**{**values, **overrides})


def answer(text: str = '{"title": "x"}') -> ChatResponse:
    return ChatResponse(content=text, usage=Usage(prompt_tokens=10, completion_tokens=5))


def test_key_depends_on_every_part_of_the_request(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    base = cache.key(request())

    assert base == ResponseCache(tmp_path / "other").key(request())  # not on the folder
    variants = [
        request(model="m2"),
        request(temperature=0.5),
        request(seed=3),
        request(response_format="json_object"),
        request(messages=(ChatMessage("system", "rules"), ChatMessage("user", "procedure!"))),
    ]
    keys = {cache.key(variant) for variant in variants}
    assert base not in keys and len(keys) == len(variants)


def test_round_trip_layout_and_gitignore(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    cache = ResponseCache(folder)
    assert cache.get(request()) is None
    cache.put(request(), answer())

    key = cache.key(request())
    entry = folder / key[:2] / f"{key}.json"
    assert entry.is_file()
    assert (folder / ".gitignore").read_text().splitlines()[-1] == "*"
    stored = json.loads(entry.read_text())
    assert set(stored) == {"format", "model", "content", "finish_reason", "usage"}
    hit = ResponseCache(folder).get(request())
    assert hit is not None and hit.content == '{"title": "x"}' and hit.cached
    assert hit.usage == Usage(cached_responses=1)
    assert not [p for p in folder.rglob(".tmp-*")]  # no temporary file left behind


def test_refresh_skips_reads_but_writes(tmp_path: Path) -> None:
    ResponseCache(tmp_path).put(request(), answer("old"))
    fresh = ResponseCache(tmp_path, refresh=True)

    assert fresh.get(request()) is None
    fresh.put(request(), answer("new"))
    hit = ResponseCache(tmp_path).get(request())
    assert hit is not None and hit.content == "new"


def test_corrupt_entry_is_a_miss(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    cache.put(request(), answer())
    cache.path(cache.key(request())).write_text('{"content": ')

    assert cache.get(request()) is None


def test_unwritable_cache_only_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = ResponseCache(blocker / "cache")
    cache.put(request(), answer())
    cache.put(request(seed=1), answer())

    assert cache.get(request()) is None
    assert len([r for r in caplog.records if "cannot write the response cache" in r.message]) == 1


def _run(backend: FakeBackend) -> GenerationResult:
    procedure = sample_procedure()
    context = GenerationContext(catalog=ToolCatalog(), settings=backend.settings)
    return asyncio.run(backend.generate(procedure, context=context, validate=lambda d: []))


def test_backend_counts_cache_hits_and_never_caches_stops(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path / "cache")
    first = FakeBackend(settings, cache=True)
    first.queue(json.dumps(default_draft({})))
    assert _run(first).usage.calls == 1

    second = FakeBackend(settings, cache=True)
    result = _run(second)
    assert second.calls == [] and result.usage.cached_responses == 1 and result.draft is not None

    refreshed = FakeBackend(settings, cache=True, refresh=True)
    cut = ChatResponse(content='{"ti', finish_reason="length")
    refreshed.queue(cut, cut)  # cut off, and cut off again when asked for a shorter answer
    assert _run(refreshed).error is not None and len(refreshed.calls) == 2
    again = FakeBackend(settings, cache=True)
    assert _run(again).error is None and again.calls == []  # the truncated answer was not stored


def test_cache_off_neither_reads_nor_writes(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path / "cache", cache=False)
    backend = FakeBackend(settings, cache=True)
    _run(backend)
    _run(backend)

    assert len(backend.calls) == 2 and not (tmp_path / "cache").exists()


def test_entries_are_private_to_the_user(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    cache.put(request(), answer())
    mode = os.stat(cache.path(cache.key(request()))).st_mode & 0o777

    assert mode & 0o077 == 0


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sop_compiler.generate")
