"""The lean prompt: the schema once, a compact catalog, deterministic narrowing past 40 tools."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer, citation_check, completion, default_draft, error, sample_procedure

from sop_compiler.config import Settings
from sop_compiler.generate import prompts
from sop_compiler.generate.base import GenerationContext, GenerationResult
from sop_compiler.generate.openai import OpenAIBackend
from sop_compiler.models import ListItem, Procedure, Provenance, Tool, ToolCatalog

pytestmark = pytest.mark.timeout(60)

VERIFY = Tool(
    name="verify_identity",
    description="Verify that the person owns the account.",
    aliases=["identity check"],
    parameters={
        "type": "object",
        "properties": {
            "customer_id": {"type": "string", "description": "The customer ID."},
            "method": {"type": "string", "enum": ["sms_code", "photo_id"]},
            "attempts": {"type": "integer", "minimum": 1},
        },
        "required": ["customer_id", "method"],
    },
)


def _generate(
    backend: OpenAIBackend, procedure: Procedure, catalog: ToolCatalog
) -> GenerationResult:
    context = GenerationContext(catalog=catalog, settings=backend.settings, agents=("billing",))

    async def run() -> GenerationResult:
        try:
            return await backend.generate(
                procedure, context=context, validate=citation_check(procedure)
            )
        finally:
            await backend.aclose()

    return asyncio.run(run())


def _backend(server: LLMServer, tmp_path: Path, **overrides: Any) -> OpenAIBackend:
    values: dict[str, Any] = {
        "model": "test-model",
        "base_url": server.base_url,
        "timeout": 5.0,
        "max_retries": 0,
        "cache": False,
        "cache_dir": tmp_path / "cache",
    }
    return OpenAIBackend(Settings(**{**values, **overrides}))


def test_the_schema_is_sent_once_with_structured_output(tmp_path: Path) -> None:
    with LLMServer() as server:
        result = _generate(_backend(server, tmp_path), sample_procedure(), ToolCatalog())
        [request] = server.chat_requests
    assert result.error is None
    body = request.body
    assert body["response_format"]["json_schema"]["schema"] == prompts.routine_schema()
    system = body["messages"][0]["content"]
    assert '"$defs"' not in system and "routine_draft schema given with this request" in system


@pytest.mark.parametrize("fmt", ["json_object", "text"])
def test_the_schema_is_in_the_prompt_without_structured_output(tmp_path: Path, fmt: str) -> None:
    with LLMServer() as server:
        result = _generate(
            _backend(server, tmp_path, structured_output=fmt), sample_procedure(), ToolCatalog()
        )
        [request] = server.chat_requests
    assert result.error is None
    assert "json_schema" not in str(request.body.get("response_format"))
    system = request.body["messages"][0]["content"]
    assert system.count('"$defs"') == 1  # the schema, exactly once


def test_a_server_that_refuses_structured_output_gets_the_schema_in_the_prompt(
    tmp_path: Path,
) -> None:
    with LLMServer() as server:
        server.queue(error(400, "response_format json_schema is not supported by this model"))
        server.queue(completion(default_draft({})))
        procedure = sample_procedure()
        result = _generate(_backend(server, tmp_path), procedure, ToolCatalog())
        first, second = server.chat_requests
    assert result.draft is not None, result.error
    assert '"$defs"' not in first.body["messages"][0]["content"]
    assert second.body["response_format"] == {"type": "json_object"}
    assert second.body["messages"][0]["content"].count('"$defs"') == 1


def test_a_repair_after_the_fallback_still_carries_the_schema(tmp_path: Path) -> None:
    """The fallback happens on the first request; the repair that follows goes out in the
    simpler format too, so its system message must hold the schema as well."""
    with LLMServer() as server:
        server.queue(error(400, "response_format json_schema is not supported by this model"))
        server.queue(completion({"title": "no steps"}))  # misses required fields: a repair
        server.queue(completion(default_draft({})))
        result = _generate(_backend(server, tmp_path), sample_procedure(), ToolCatalog())
        requests = server.chat_requests
    assert result.draft is not None, result.error
    assert len(requests) == 3
    for request in requests[1:]:
        assert request.body["response_format"] == {"type": "json_object"}
        assert request.body["messages"][0]["content"].count('"$defs"') == 1


def test_the_catalog_is_one_compact_line_per_tool_with_enum_values() -> None:
    text = prompts.catalog_prompt(ToolCatalog(tools=[VERIFY]), ["billing"])
    [line] = [line for line in text.splitlines() if line.startswith("- ")]
    assert line == (
        '- `verify_identity(customer_id: string (The customer ID.), method: "sms_code"|"photo_id",'
        ' attempts?: integer {"minimum":1})` read: Verify that the person owns the account.'
    )


def _many_tools(count: int) -> list[Tool]:
    words = ["invoice", "parcel", "router", "warranty", "coupon", "ticket", "loyalty", "gift"]
    return [
        Tool(
            name=f"tool_{n:02d}_{words[n % len(words)]}", description=f"Handle {words[n % 8]} {n}."
        )
        for n in range(count)
    ]


def _procedure(*lines: str) -> Procedure:
    prov = Provenance(file="account/id.md")
    blocks = [
        ListItem(id=f"b{i + 1}", prov=prov, marker=f"{i + 1}.", ordered=True, text=line)
        for i, line in enumerate(lines)
    ]
    return Procedure(
        id="id",
        title="Check identity",
        source="account/id.md",
        source_sha256="0" * 64,
        agent="account",
        blocks=blocks,
    )


def test_a_large_catalog_is_narrowed_deterministically_and_keeps_named_tools() -> None:
    tools = [*_many_tools(60), VERIFY]
    procedure = _procedure(
        "Run the identity check before anything else.",  # names verify_identity by its alias
        "Look up the parcel and the invoice.",
    )
    prompt = prompts.catalog_prompt(ToolCatalog(tools=tools), ["billing"], procedure=procedure)
    listed = [line for line in prompt.splitlines() if line.startswith("- ")]
    assert len(listed) <= prompts.MAX_PROMPT_TOOLS
    assert any(line.startswith("- `verify_identity(") for line in listed)
    assert all("parcel" in line or "invoice" in line or "verify" in line for line in listed)
    assert f"({61 - len(listed)} other catalog tools" in prompt
    # The order of the catalog file changes nothing.
    shuffled = tools[:]
    random.Random(3).shuffle(shuffled)
    again = prompts.catalog_prompt(ToolCatalog(tools=shuffled), ["billing"], procedure=procedure)
    assert again == prompt


def test_a_tool_named_in_the_sop_is_never_dropped_however_many_match() -> None:
    tools = [Tool(name=f"parcel_tool_{n:02d}", description="Track a parcel.") for n in range(80)]
    tools.append(Tool(name="send_email", description="Send an email."))
    procedure = _procedure("Track the parcel.", "Then call `send_email` to confirm.")
    chosen = prompts.relevant_tools(ToolCatalog(tools=tools), procedure)
    assert "send_email" in {tool.name for tool in chosen}
    assert len(chosen) == prompts.MAX_PROMPT_TOOLS


def test_a_small_catalog_is_shown_whole_and_identical_for_every_procedure() -> None:
    catalog = ToolCatalog(tools=_many_tools(12))
    one = prompts.catalog_prompt(catalog, ["billing"], procedure=_procedure("Check the router."))
    two = prompts.catalog_prompt(catalog, ["billing"], procedure=_procedure("Send a coupon."))
    assert one == two and one.count("\n- `") == 12
