"""The emitted agent network imports, builds real Agents SDK objects, and runs under the Runner."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sop_compiler.config import AgentSettings, Settings
from sop_compiler.emit import (
    render_network,
    render_review,
    render_routine,
    write_outputs,
)
from sop_compiler.models import Routine, ToolCatalog, ValidationReport

agents = pytest.importorskip("agents")
from agents import Agent, FunctionTool, RunContextWrapper, Runner  # noqa: E402
from agents.extensions.handoff_prompt import RECOMMENDED_PROMPT_PREFIX  # noqa: E402
from agents.testing import ScriptedModel, assistant_message, function_call  # noqa: E402

SAMPLE = Path(__file__).parent / "data" / "emit" / "sample"
GOLDEN = SAMPLE / "expected"
# Read at import: the shared autouse fixture removes SOPC_* variables before each test runs.
UPDATE_GOLDEN = os.environ.get("SOPC_UPDATE_GOLDEN") == "1"


def load_sample() -> tuple[list[Routine], ToolCatalog, dict[str, ValidationReport], dict[str, str]]:
    """The sample routines (3 agent groups, one nested), catalog, reports and failures."""
    routines = [
        Routine.model_validate(r) for r in json.loads((SAMPLE / "routines.json").read_text())
    ]
    catalog = ToolCatalog.model_validate_json((SAMPLE / "catalog.json").read_text())
    reports = {
        key: ValidationReport.model_validate(value)
        for key, value in json.loads((SAMPLE / "reports.json").read_text()).items()
    }
    failures = json.loads((SAMPLE / "failures.json").read_text())
    return routines, catalog, reports, failures


def render_all(settings: Settings | None = None) -> dict[str, bytes]:
    """Everything emit produces for the sample."""
    routines, catalog, reports, failures = load_sample()
    settings = settings or Settings()
    files: dict[str, bytes] = {}
    for routine in routines:
        files.update(render_routine(routine, reports[routine.id]))
    files.update(render_network(routines, catalog=catalog, settings=settings))
    files.update(render_review(routines, reports, failures=failures, settings=settings))
    return files


def _purge(*names: str) -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in {"agent_network", *names}:
            del sys.modules[name]


IMPL = """
CALLS = []


def lookup_order(order_id):
    CALLS.append(("lookup_order", order_id))
    return {"order_id": order_id, "status": "delivered", "total": 42.5}


async def issue_refund(order_id, amount, reason):
    CALLS.append(("issue_refund", order_id, amount, reason))
    return "refunded"
"""


@pytest.fixture
def emitted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The sample compiled into tmp_path/out, with a test-double implementation module."""
    out = tmp_path / "out"
    write_outputs(out, render_all())
    (out / "tool_impl.py").write_text(IMPL, encoding="utf-8")
    monkeypatch.syspath_prepend(str(out))
    agents.set_tracing_disabled(True)
    _purge("tool_impl")
    yield out
    _purge("tool_impl")
    agents.set_tracing_disabled(False)


def _import_network() -> ModuleType:
    return importlib.import_module("agent_network")


def _by_name(triage: Agent[Any]) -> dict[str, Agent[Any]]:
    """Every agent reachable through handoffs, by name."""
    seen: dict[str, Agent[Any]] = {}
    stack = [triage]
    while stack:
        agent = stack.pop()
        if agent.name in seen:
            continue
        seen[agent.name] = agent
        for h in agent.handoffs:
            target = h if isinstance(h, Agent) else h._agent_ref() if h._agent_ref else None
            if target is not None:
                stack.append(target)
    return seen


def _ctx(**fields: Any) -> RunContextWrapper[Any]:
    """A run context holding a fresh ConversationContext of the emitted network."""
    context = importlib.import_module("agent_network.context").ConversationContext(**fields)
    return RunContextWrapper(context)


def _instructions(agent: Agent[Any], **fields: Any) -> str:
    """The system prompt `agent` reads in a conversation with this context."""
    text = asyncio.run(agent.get_system_prompt(_ctx(**fields)))
    assert text is not None
    return text


def _target(h: Any) -> Agent[Any]:
    """The agent a handoff (an Agent or an SDK Handoff) leads to."""
    target = h if isinstance(h, Agent) else h._agent_ref()
    assert isinstance(target, Agent)
    return target


def test_handoff_named_by_a_routine_lands_on_that_agent(emitted: Path) -> None:
    """Billing Disputes hands off to Shipping directly, with a reason, as its routine says."""
    network = _import_network()
    model = ScriptedModel(
        [
            [function_call("transfer_to_billing_triage", {}, call_id="c1")],
            [function_call("transfer_to_billing_disputes", {}, call_id="c2")],
            [function_call("transfer_to_shipping", {"reason": "parcel lost"}, call_id="c3")],
            [assistant_message("Shipping here.")],
        ]
    )
    result = asyncio.run(Runner.run(network.build_network(model), "my parcel never came"))
    assert result.last_agent.name == "Shipping"


def test_golden_tree_matches() -> None:
    """The emitted tree for the sample is byte-identical to the reviewed golden files."""
    files = render_all()
    if UPDATE_GOLDEN:
        shutil.rmtree(GOLDEN, ignore_errors=True)
        write_outputs(GOLDEN, files)
    on_disk = {p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*") if p.is_file()}
    assert on_disk == set(files), "emitted file set changed: run with SOPC_UPDATE_GOLDEN=1"
    for relative, data in files.items():
        assert (GOLDEN / relative).read_bytes() == data, f"{relative} differs from golden"


def test_rendering_is_deterministic_and_order_independent() -> None:
    routines, catalog, reports, failures = load_sample()
    first = render_network(routines, catalog=catalog, settings=Settings())
    shuffled = list(reversed(routines))
    catalog_reversed = ToolCatalog(tools=list(reversed(catalog.tools)))
    assert render_network(shuffled, catalog=catalog_reversed, settings=Settings()) == first
    review = render_review(routines, reports, failures=failures)
    assert render_review(shuffled, reports, failures=failures) == review


def test_network_structure(emitted: Path) -> None:
    """Names, tools per specialist, approval flags, handoffs both ways, instructions."""
    network = _import_network()
    triage = network.build_network()
    agents_by_name = _by_name(triage)
    assert set(agents_by_name) == {
        "Triage",
        "Billing Triage",
        "Billing",
        "Billing Disputes",
        "Shipping",
    }
    assert [a.name for a in triage.handoffs] == ["Billing Triage", "Shipping"]
    billing_triage = agents_by_name["Billing Triage"]
    assert [_target(h).name for h in billing_triage.handoffs] == [
        "Billing",
        "Billing Disputes",
        "Triage",
    ]
    # Back to triage, and to every agent the routines hand off to (Disputes -> Shipping).
    assert [_target(h) for h in agents_by_name["Billing"].handoffs] == [billing_triage]
    assert [_target(h) for h in agents_by_name["Billing Disputes"].handoffs] == [
        billing_triage,
        agents_by_name["Shipping"],
    ]
    assert [_target(h) for h in agents_by_name["Shipping"].handoffs] == [triage]

    tools = {name: sorted(t.name for t in a.tools) for name, a in agents_by_name.items()}
    assert tools == {
        "Triage": [],
        "Billing Triage": [],
        "Billing": ["issue_refund", "lookup_order"],
        "Billing Disputes": ["correct_invoice", "get_invoice"],
        "Shipping": ["create_ticket", "track_shipment"],
    }
    approval = {t.name: t.needs_approval for a in agents_by_name.values() for t in a.tools}
    assert approval["issue_refund"] is True
    assert not any(flag for name, flag in approval.items() if name != "issue_refund")
    assert all(isinstance(t, FunctionTool) for a in agents_by_name.values() for t in a.tools)

    billing = agents_by_name["Billing"]
    instructions = _instructions(billing)
    assert instructions.startswith(RECOMMENDED_PROMPT_PREFIX)
    assert "# Request a refund" in instructions
    assert "Call `lookup_order` with `order_id` = the order number from step 1." in instructions
    assert "Generated by sopc" not in instructions  # the file header is not for the agent
    assert billing.handoff_description == "Handles: Request a refund."
    triage_text = _instructions(triage)
    assert triage_text.startswith(RECOMMENDED_PROMPT_PREFIX)
    assert "Never answer a question that belongs to one of these agents yourself" in triage_text
    assert "Billing Triage: Handles" in triage_text
    assert billing.model == "gpt-5-mini"


def test_tool_schemas_are_typed_from_the_catalog(emitted: Path) -> None:
    network = _import_network()
    tools_module = importlib.import_module("agent_network.tools")
    ticket = tools_module.create_ticket
    props = ticket.params_json_schema["properties"]
    assert props["summary"]["type"] == "string"
    assert props["summary"]["description"] == "One line describing the problem."
    assert props["priority"]["enum"] == ["low", "normal", "high", "urgent"]
    assert props["tags"]["anyOf"][0] == {"items": {"type": "string"}, "type": "array"}
    assert props["sla_hours"]["anyOf"][0]["type"] == "integer"
    assert props["notify_customer"]["anyOf"][0]["type"] == "boolean"
    assert ticket.description == "Open a ticket for a human team."
    refund = tools_module.issue_refund
    assert refund.params_json_schema["properties"]["amount"]["type"] == "number"
    assert not hasattr(tools_module, "close_account")  # in the catalog, but no routine uses it
    assert network.triage_agent is network.build_network()


def test_runs_under_the_runner_with_a_scripted_model(emitted: Path) -> None:
    """Triage -> Billing Triage -> Billing, which calls lookup_order (a test double)."""
    network = _import_network()
    model = ScriptedModel(
        [
            [function_call("transfer_to_billing_triage", {}, call_id="c1")],
            [function_call("transfer_to_billing", {}, call_id="c2")],
            [function_call("lookup_order", {"order_id": "A-1042"}, call_id="c3")],
            [assistant_message("Your order A-1042 was delivered; I can refund it.")],
        ]
    )
    result = asyncio.run(
        Runner.run(network.build_network(model), "I want my money back for A-1042")
    )
    model.assert_complete()
    assert result.final_output == "Your order A-1042 was delivered; I can refund it."
    assert result.last_agent.name == "Billing"
    impl = importlib.import_module("tool_impl")
    assert impl.CALLS == [("lookup_order", "A-1042")]
    # The model saw only the Billing agent's own tools when it called lookup_order.
    assert sorted(t.name for t in model.calls[2].tools) == ["issue_refund", "lookup_order"]
    assert "Request a refund" in (model.calls[2].system_instructions or "")


def test_write_tool_needing_approval_interrupts_the_run(emitted: Path) -> None:
    network = _import_network()
    arguments = {"order_id": "A-1042", "amount": 42.5, "reason": "customer request"}
    model = ScriptedModel(
        [
            [function_call("transfer_to_billing_triage", {}, call_id="c1")],
            [function_call("transfer_to_billing", {}, call_id="c2")],
            [function_call("issue_refund", arguments, call_id="c3")],
        ]
    )
    result = asyncio.run(Runner.run(network.build_network(model), "refund A-1042"))
    assert [item.tool_name for item in result.interruptions] == ["issue_refund"]
    assert importlib.import_module("tool_impl").CALLS == []  # nothing refunded without approval


def test_missing_implementation_gives_a_clear_error(emitted: Path) -> None:
    """A tool with no function in tool_impl tells the model (and the developer) what to write."""
    network = _import_network()
    model = ScriptedModel(
        [
            [function_call("transfer_to_shipping", {}, call_id="c1")],
            [function_call("track_shipment", {"tracking_number": "1Z999"}, call_id="c2")],
            [assistant_message("Sorry, I cannot track parcels right now.")],
        ]
    )
    asyncio.run(Runner.run(network.build_network(model), "where is my parcel 1Z999?"))
    outputs = [item for item in model.calls[2].input if item.get("type") == "function_call_output"]
    expected = (
        "tool_impl.track_shipment is not implemented: tool_impl.py has no function "
        "track_shipment (add def track_shipment(...) to it)"
    )
    assert outputs[-1]["output"] == expected

    tools_module = importlib.import_module("agent_network.tools")
    with pytest.raises(NotImplementedError, match=r"tool_impl\.py has no function get_invoice"):
        asyncio.run(tools_module._call(_ctx(), "get_invoice", {"invoice_id": "I-1"}))


def test_missing_implementation_module(emitted: Path, tmp_path: Path) -> None:
    (emitted / "tool_impl.py").unlink()
    tools_module = importlib.import_module("agent_network.tools")
    missing = r"^tool_impl.lookup_order is not implemented: module tool_impl not found"
    with pytest.raises(NotImplementedError, match=missing):
        asyncio.run(tools_module._call(_ctx(), "lookup_order", {"order_id": "A1"}))


SYNC_IMPL = """
import threading

BARRIER = threading.Barrier(4, timeout=10)
THREADS = []


def lookup_order(order_id):
    THREADS.append(threading.get_ident())
    BARRIER.wait()  # only returns once four calls are running at the same time
    return {"order_id": order_id}


def track_shipment(tracking_number):
    raise ValueError(f"tracking number {tracking_number} is unknown to the carrier")
"""


def test_sync_implementations_run_in_threads_concurrently(emitted: Path) -> None:
    """Four sync calls run at once (a barrier of four), none of them on the event loop's thread."""
    (emitted / "tool_impl.py").write_text(SYNC_IMPL, encoding="utf-8")
    _purge("tool_impl")
    tools_module = importlib.import_module("agent_network.tools")

    async def four() -> tuple[int, list[Any]]:
        import threading

        calls = [
            tools_module._call(_ctx(), "lookup_order", {"order_id": f"A{n}"}) for n in range(4)
        ]
        return threading.get_ident(), list(await asyncio.gather(*calls))

    loop_thread, results = asyncio.run(four())
    assert results == [{"order_id": f"A{n}"} for n in range(4)]
    threads = importlib.import_module("tool_impl").THREADS
    assert len(threads) == 4 and loop_thread not in threads


def test_exception_message_reaches_the_model(emitted: Path) -> None:
    (emitted / "tool_impl.py").write_text(SYNC_IMPL, encoding="utf-8")
    _purge("tool_impl")
    network = _import_network()
    model = ScriptedModel(
        [
            [function_call("transfer_to_shipping", {}, call_id="c1")],
            [function_call("track_shipment", {"tracking_number": "1Z999"}, call_id="c2")],
            [assistant_message("Sorry.")],
        ]
    )
    asyncio.run(Runner.run(network.build_network(model), "where is my parcel 1Z999?"))
    outputs = [item for item in model.calls[2].input if item.get("type") == "function_call_output"]
    assert outputs[-1]["output"] == (
        "The tool failed (ValueError): tracking number 1Z999 is unknown to the carrier"
    )


def test_build_network_on_another_model(emitted: Path) -> None:
    """Any model name or SDK Model object: every agent is cloned onto it; the defaults stay."""
    network = _import_network()
    model = ScriptedModel([])
    triage = network.build_network(model)
    cloned = _by_name(triage)
    assert {a.model for a in cloned.values()} == {model}
    [back] = cloned["Billing"].handoffs
    assert not isinstance(back, Agent) and back._agent_ref is not None
    assert back._agent_ref() is cloned["Billing Triage"]
    assert {a.model for a in _by_name(network.build_network()).values()} == {"gpt-5-mini"}
    named = _by_name(network.build_network("my-local-model"))
    assert {a.model for a in named.values()} == {"my-local-model"}


def test_model_comes_from_env_override(emitted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOPC_AGENT_MODEL", "llama-3-70b")
    network = _import_network()
    assert {a.model for a in _by_name(network.build_network()).values()} == {"llama-3-70b"}


def test_settings_override_names_and_implementation_module(tmp_path: Path) -> None:
    routines, catalog, _, _ = load_sample()
    settings = Settings(
        implementation_module="acme.support_tools",
        model="gpt-4.1",
        agents={"shipping": AgentSettings(name="Delivery Desk", description="Parcels and delays.")},
    )
    files = render_network(routines, catalog=catalog, settings=settings)
    shipping = files["agent_network/shipping.py"].decode()
    assert 'name="Delivery Desk"' in shipping
    assert 'handoff_description="Parcels and delays."' in shipping
    assert (
        'IMPLEMENTATION_MODULE = "acme.support_tools"' in files["agent_network/tools.py"].decode()
    )
    assert '"gpt-4.1"' in files["agent_network/_config.py"].decode()
    assert "- Delivery Desk: Parcels and delays." in files["agent_network/triage.py"].decode()


def test_handoff_tool_names_fit_openais_64_character_limit(tmp_path: Path) -> None:
    """The SDK names a handoff `transfer_to_<agent name>` and never shortens it; OpenAI rejects
    tool names over 64 characters. Long nested folders and long name overrides must still fit."""
    routines, catalog, _, _ = load_sample()
    long_folder = "customer_accounts_and_subscriptions_department/" + "x" * 55
    extra = [
        routines[0].model_copy(update={"id": f"long-{n}", "agent": agent})
        for n, agent in enumerate(
            [long_folder, f"{long_folder}/late_payment_fee_disputes_and_goodwill", "shipping/a"]
        )
    ]
    long_name = "The Very Long Named Customer Care Specialist Agent For Deliveries"
    settings = Settings(
        agents={
            "shipping": AgentSettings(name=long_name),
            "shipping/a": AgentSettings(name=long_name + " Two"),
        },
        implementation_module="tool_impl",
    )
    out = tmp_path / "out"
    files = render_network([*routines, *extra], catalog=catalog, settings=settings)
    for routine in [*routines, *extra]:
        files.update(render_routine(routine, ValidationReport(routine_id=routine.id)))
    write_outputs(out, files)
    sys.path.insert(0, str(out))
    _purge()
    try:
        triage = _import_network().build_network()
        network = _by_name(triage)
        assert len(network) == 11  # 6 specialists, 5 triage agents: none lost to a collision
        for agent in network.values():
            names = [
                h.tool_name if isinstance(h, agents.Handoff) else agents.handoff(h).tool_name
                for h in agent.handoffs
            ]
            assert len(names) == len(set(names)), agent.name
            for name in names:
                assert len(name) <= 64 and re.fullmatch(r"[a-z0-9_]+", name), name
        tool_names = {agents.Handoff.default_tool_name(a) for a in network.values()}
        assert len(tool_names) == len(network)
        assert any(a.name.startswith("The Very Long Named Customer") for a in network.values())
    finally:
        sys.path.remove(str(out))
        _purge()


def test_emitted_python_passes_ruff_and_py_compile(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_outputs(out, render_all())
    python_files = sorted((out / "agent_network").glob("*.py"))
    assert len(python_files) == 9
    for path in python_files:
        py_compile.compile(str(path), doraise=True, cfile=str(tmp_path / "c.pyc"))
    ruff = [sys.executable, "-m", "ruff"]
    if (
        shutil.which("ruff")
        and subprocess.run([*ruff, "--version"], capture_output=True).returncode
    ):
        ruff = ["ruff"]
    result = subprocess.run(
        [
            *ruff,
            "check",
            "--isolated",
            "--select",
            "E,F,W,I",
            "--target-version",
            "py310",
            *map(str, python_files),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_local_ref_to_an_enum_becomes_a_literal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pydantic-generated catalogs put enums in `$defs`; the tool must still offer the values."""
    routines, catalog, reports, _ = load_sample()
    ticket = catalog.get("create_ticket")
    assert ticket is not None
    parameters = json.loads(json.dumps(ticket.parameters))
    parameters["properties"]["priority"] = {"$ref": "#/$defs/Priority"}
    parameters["$defs"] = {
        "Priority": {"$ref": "#/$defs/Level"},  # a ref to a ref
        "Level": {"type": "string", "enum": ["low", "urgent"], "description": "How soon."},
    }
    ticket.parameters = parameters
    out = tmp_path / "out"
    files = render_network(routines, catalog=catalog, settings=Settings())
    for routine in routines:
        files.update(render_routine(routine, reports[routine.id]))
    write_outputs(out, files)
    (out / "tool_impl.py").write_text(IMPL, encoding="utf-8")
    monkeypatch.syspath_prepend(str(out))
    _purge("tool_impl")
    try:
        tools_module = importlib.import_module("agent_network.tools")
        schema = tools_module.create_ticket.params_json_schema
    finally:
        _purge("tool_impl")
    priority = schema["properties"]["priority"]
    assert priority["enum"] == ["low", "urgent"]
    assert priority["description"] == "How soon."
    assert tools_module.create_ticket.strict_json_schema  # a Literal needs no strict_mode=False
