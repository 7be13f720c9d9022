"""The emitted network on an OpenAI-compatible server (issue #18, item 5): a tiny SOP folder is
compiled, its `agent_network` imported, and `build_network(OpenAIChatCompletionsModel(...))` run
by the Agents SDK Runner against tests/llm_server.py over real HTTP: a handoff from triage to a
specialist, a tool call the implementation module answers, and the final answer."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer, Reply

from sop_compiler.config import load_settings
from sop_compiler.pipeline import compile_folder

agents = pytest.importorskip("agents")
from agents import ModelSettings, OpenAIChatCompletionsModel, Runner  # noqa: E402

pytestmark = pytest.mark.timeout(60)

TOOLS = """
tools:
  - name: lookup_order
    description: Look up an order by its order number.
    access: read
    parameters:
      type: object
      properties:
        order_id: {type: string, description: The order number.}
      required: [order_id]
"""
REFUNDS = """# Refunds

## Issuing a refund

1. Ask the customer for the order number.
2. Look up the order with `lookup_order`.
3. Tell the customer the status of the order.
"""
LOST = """# Lost parcels

## A parcel reported lost

1. Ask the customer when the parcel was due.
2. Tell the customer that a claim is opened with the carrier.
"""
IMPL = """
CALLS = []


def lookup_order(order_id):
    CALLS.append(order_id)
    return {"order_id": order_id, "status": "delivered"}
"""


def _purge() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in {"agent_network", "tool_impl"}:
            del sys.modules[name]


@pytest.fixture
def network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A two-agent folder compiled offline into tmp_path/out; its agent_network, imported."""
    sops, out = tmp_path / "sops", tmp_path / "out"
    for rel, text in {"billing/refunds.md": REFUNDS, "shipping/lost.md": LOST}.items():
        (sops / rel).parent.mkdir(parents=True, exist_ok=True)
        (sops / rel).write_text(text, encoding="utf-8")
    (sops / "tools.yaml").write_text(TOOLS, encoding="utf-8")
    settings = load_settings(sops, overrides={"backend": "offline", "output": out})
    result = compile_folder(sops, settings=settings)
    assert result.exit_code in (0, 1), result.notes
    (out / "tool_impl.py").write_text(IMPL, encoding="utf-8")
    monkeypatch.syspath_prepend(str(out))
    agents.set_tracing_disabled(True)
    _purge()
    yield importlib.import_module("agent_network")
    _purge()
    agents.set_tracing_disabled(False)


def _tool_call(name: str, arguments: dict[str, Any], call_id: str) -> dict[str, Any]:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
        ],
    }
    return _completion(message, "tool_calls")


def _completion(message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-net",
        "object": "chat.completion",
        "created": 0,
        "model": "test-model",
        "choices": [{"index": 0, "finish_reason": finish, "message": message}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
    }


def _agent_server() -> LLMServer:
    """Plays the model: triage hands off to billing, billing looks the order up, then answers."""

    def respond(body: dict[str, Any]) -> Reply | dict[str, Any]:
        tools = [tool["function"]["name"] for tool in body.get("tools") or []]
        last = body["messages"][-1]
        if last.get("role") == "tool" and last.get("tool_call_id") == "call_lookup":
            return _completion({"role": "assistant", "content": "Order A1 was delivered."}, "stop")
        if "lookup_order" in tools:
            return _tool_call("lookup_order", {"order_id": "A1"}, "call_lookup")
        [to_billing] = [name for name in tools if name.startswith("transfer_to_billing")]
        return _tool_call(to_billing, {}, "call_handoff")

    return LLMServer(responder=respond)


def _model(server: LLMServer) -> OpenAIChatCompletionsModel:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=server.base_url, api_key="sk-no-key", max_retries=0)
    return OpenAIChatCompletionsModel(model="test-model", openai_client=client)


def test_network_runs_a_handoff_and_a_tool_call_over_http(network: Any) -> None:
    with _agent_server() as server:
        triage = network.build_network(_model(server))
        result = asyncio.run(Runner.run(triage, "Where is my refund for order A1?"))
        requests = server.chat_requests

    assert result.final_output == "Order A1 was delivered."
    assert result.last_agent.name == "Billing"
    assert sys.modules["tool_impl"].CALLS == ["A1"]  # the implementation module answered
    assert len(requests) == 3  # triage hands off; billing calls the tool, then answers
    first, second, third = (r.body for r in requests)
    assert first["model"] == "test-model"
    first_tools = {tool["function"]["name"] for tool in first["tools"]}
    assert any(name.startswith("transfer_to_billing") for name in first_tools)
    assert any(name.startswith("transfer_to_shipping") for name in first_tools)
    assert second["messages"][-1]["tool_call_id"] == "call_handoff"  # the handoff's result
    assert "lookup_order" in {tool["function"]["name"] for tool in second["tools"]}
    tool_result = third["messages"][-1]
    assert tool_result["role"] == "tool" and tool_result["tool_call_id"] == "call_lookup"
    assert "delivered" in tool_result["content"]


def test_model_settings_given_by_the_caller_reach_the_server(network: Any) -> None:
    with _agent_server() as server:
        triage = network.build_network(_model(server))
        for agent in [triage, *triage.handoffs]:
            if isinstance(agent, agents.Agent):
                agent.model_settings = ModelSettings(max_tokens=300)
        asyncio.run(Runner.run(triage, "Where is my refund for order A1?"))
        first = server.chat_requests[0].body

    assert first["max_tokens"] == 300


def test_the_emitted_network_sets_a_default_max_tokens(network: Any) -> None:
    """Every agent answers within `[network] max_tokens` (1024 by default), over real HTTP."""
    with _agent_server() as server:
        triage = network.build_network(_model(server))
        asyncio.run(Runner.run(triage, "Where is my refund for order A1?"))
        bodies = [r.body for r in server.chat_requests]

    assert bodies and all(body.get("max_tokens") == 1024 for body in bodies)
