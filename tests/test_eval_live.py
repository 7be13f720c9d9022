"""Live eval (issue #13, item 5): reviewed scenarios run as conversations with the emitted network.

A two-agent folder is compiled offline; its `agent_network` is driven by the Agents SDK, first with
`agents.testing.ScriptedModel` as the agent model and the scripted customer, then through the
real openai client against tests/llm_server.py playing both the agent model and the simulated
customer (tool calls, a handoff, a tool that needs approval, a turn limit, a 429 retried, a rerun
served from the response cache).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer, Reply
from typer.testing import CliRunner

from sop_compiler.cli import app
from sop_compiler.config import load_settings
from sop_compiler.pipeline import compile_folder

agents = pytest.importorskip("agents")
from agents.testing import ScriptedModel, assistant_message, function_call  # noqa: E402

from sop_compiler.eval.live import LiveReport, evaluate_live  # noqa: E402

pytestmark = pytest.mark.timeout(120)

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
  - name: create_ticket
    description: Open a ticket for a human team.
    access: write
    parameters:
      type: object
      properties:
        summary: {type: string}
        team: {type: string}
        priority: {type: string, enum: [low, normal, high, urgent]}
        category: {type: string}
      required: [summary, team, priority]
  - name: issue_refund
    description: Refund an order.
    access: write
    parameters:
      type: object
      properties:
        order_id: {type: string}
      required: [order_id]
"""
REFUNDS = """# Refunds

## Issuing a refund

1. Ask the customer for the order number.
2. Look up the order with `lookup_order`.
3. If the order is not delivered, escalate to the Billing Supervisor queue with `create_ticket` \
(priority high).
4. Otherwise, refund the order with `issue_refund`.
"""
LOST = """# Lost parcels

## A parcel reported lost

1. Ask the customer when the parcel was due.
2. If the parcel is more than 30 days late, escalate to the Claims team.
3. Tell the customer that a claim is opened with the carrier.
"""
REFUND_SCENARIO = """
- name: a delivered order is refunded
  message: I want a refund for my order.
  facts: {order_id: A1}
  tool_results:
    - {tool: lookup_order, arguments: {order_id: A1}, result: {status: delivered}}
  expect:
    agent: billing
    tool_calls:
      - {tool: lookup_order, arguments: {order_id: A1}}
      - {tool: issue_refund, arguments: {order_id: A1}}
    not_called: [create_ticket]
    ending: {kind: resolve}
"""
LOST_SCENARIO = """
- name: a lost parcel gets a claim
  message: My parcel never arrived.
  expect:
    agent: shipping
    ending: {kind: resolve}
- name: a parcel long overdue goes to the claims team
  message: My parcel is two months late.
  expect:
    agent: shipping
    ending: {kind: escalate, to: Claims team}
"""


LOST_ONLY = LOST_SCENARIO.split("- name: a parcel long overdue")[0]


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    """The folder compiled offline into tmp_path/out, with one reviewed scenario per routine."""
    sops, out = tmp_path / "sops", tmp_path / "out"
    files = {
        "billing/refunds.md": REFUNDS,
        "shipping/lost.md": LOST,
        "tools.yaml": TOOLS,
        "scenarios/billing/refunds.yaml": REFUND_SCENARIO,
        "scenarios/shipping/lost.yaml": LOST_SCENARIO,
    }
    for rel, text in files.items():
        (sops / rel).parent.mkdir(parents=True, exist_ok=True)
        (sops / rel).write_text(text, encoding="utf-8")
    settings = load_settings(sops, overrides={"backend": "offline", "output": out})
    result = compile_folder(sops, settings=settings)
    assert result.exit_code in (0, 1), result.notes
    return sops, out


def _live(
    sops: Path,
    out: Path,
    steps: list[Any],
    *,
    only: str,
    max_turns: int = 4,
    scenarios: str | None = None,
    trials: int = 1,
    cache: str = "cache",
) -> LiveReport:
    """The live eval of one scenario file with a ScriptedModel agent and the scripted customer."""
    folder = sops / "scenarios"
    for path in folder.glob("*/*.yaml"):
        if path.parent.name != only:
            path.unlink()
        elif scenarios is not None:
            path.write_text(scenarios, encoding="utf-8")
    settings = load_settings(sops, overrides={"output": out, "cache_dir": sops.parent / cache})
    before = set(sys.modules)
    report = evaluate_live(
        folder,
        output=out,
        settings=settings,
        tools=["lookup_order", "create_ticket", "issue_refund"],
        max_turns=max_turns,
        trials=trials,
        jobs=1,
        customer="scripted",
        agent_model=ScriptedModel(steps),
    )
    assert "agent_network" not in set(sys.modules) - before  # the import is undone
    return report


def test_a_correct_conversation_passes_with_every_metric(project: tuple[Path, Path]) -> None:
    sops, out = project
    steps = [
        [function_call("transfer_to_billing", {}, call_id="h")],
        [assistant_message("Could you please share the order number?")],
        # the scripted customer answers "My order id is A1."
        [function_call("lookup_order", {"order_id": "A1"}, call_id="l")],
        [function_call("issue_refund", {"order_id": "A1"}, call_id="r")],  # needs approval
        [assistant_message("Your refund is on its way.")],
    ]
    report = _live(sops, out, steps, only="billing")
    [result] = report.results
    [trial] = result.trials
    assert result.status == "passed", trial.differences
    assert trial.agents == ["Triage", "Billing"]
    assert trial.tool_calls == ['lookup_order(order_id="A1")', 'issue_refund(order_id="A1")']
    assert trial.ending == "resolve" and trial.customer_turns == 2
    metrics = report.metrics
    assert (metrics.pass_k, metrics.routing_accuracy, metrics.ending_accuracy) == (1.0, 1.0, 1.0)
    assert (metrics.tool_precision, metrics.tool_recall, metrics.forbidden_calls) == (1.0, 1.0, 0)
    assert report.exit_code == 0
    assert report.usage.model_calls == 5


def test_a_rerun_is_served_from_the_cache(project: tuple[Path, Path]) -> None:
    sops, out = project
    steps = [
        [function_call("transfer_to_billing", {}, call_id="h")],
        [function_call("lookup_order", {"order_id": "A1"}, call_id="l")],
        [function_call("issue_refund", {"order_id": "A1"}, call_id="r")],
        [assistant_message("Refunded.")],
    ]
    first = _live(sops, out, steps, only="billing")
    again = _live(sops, out, [], only="billing")  # a model with no answers left: any call fails
    assert again.usage.model_calls == 0 and again.usage.cached_calls == 4
    assert again.results == first.results


def test_a_wrong_route_fails_and_names_it(project: tuple[Path, Path]) -> None:
    sops, out = project
    steps = [
        [function_call("transfer_to_shipping", {}, call_id="h")],
        [assistant_message("A claim is opened with the carrier.")],
    ]
    report = _live(sops, out, steps, only="billing")
    [result] = report.results
    differences = result.trials[0].differences
    assert result.status == "failed" and report.exit_code == 1
    assert "routed to: expected billing, actual Shipping" in differences
    assert any(d.startswith("tool calls (exact) differ") for d in differences)
    assert report.metrics.routing_accuracy == 0.0 and report.metrics.tool_recall == 0.0


def test_a_forbidden_call_fails_and_names_the_tool(project: tuple[Path, Path]) -> None:
    sops, out = project
    ticket = {"summary": "refund", "team": "Billing Supervisor queue", "priority": "high"}
    steps = [
        [function_call("transfer_to_billing", {}, call_id="h")],
        [function_call("lookup_order", {"order_id": "A1"}, call_id="l")],
        [function_call("create_ticket", ticket, call_id="t")],
        [function_call("issue_refund", {"order_id": "A1"}, call_id="r")],
        [assistant_message("Done.")],
    ]
    report = _live(sops, out, steps, only="billing")
    trial = report.results[0].trials[0]
    assert "calls `create_ticket`, which must not be called" in trial.differences
    assert report.metrics.forbidden_calls == 1
    assert report.metrics.tool_precision == round(2 / 3, 4) and report.metrics.tool_recall == 1.0


def test_a_conversation_that_never_ends_reaches_the_turn_limit(project: tuple[Path, Path]) -> None:
    sops, out = project
    asks = [[assistant_message("When was the parcel due?")] for _ in range(3)]
    steps = [[function_call("transfer_to_shipping", {}, call_id="h")], *asks]
    report = _live(sops, out, steps, only="shipping", max_turns=3, scenarios=LOST_ONLY)
    trial = report.results[0].trials[0]
    assert trial.differences == ["turn limit reached: 3 customer turns without an ending"]
    assert trial.customer_turns == 3 and report.exit_code == 1


# --- the real openai client against the local OpenAI-compatible server -------------------------


def _completion(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-live",
        "object": "chat.completion",
        "created": 0,
        "model": "test-model",
        "choices": [{"index": 0, "finish_reason": finish, "message": message}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 8, "total_tokens": 48},
    }


def _say(text: str) -> dict[str, Any]:
    return _completion({"role": "assistant", "content": text})


def _call(name: str, arguments: dict[str, Any], call_id: str) -> dict[str, Any]:
    call = {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }
    return _completion({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls")


def _respond(body: dict[str, Any]) -> dict[str, Any]:
    """Plays the agents (triage, billing, shipping) and the simulated customer."""
    messages = body["messages"]
    system = str(messages[0].get("content") or "") if messages else ""
    tools = [tool["function"]["name"] for tool in body.get("tools") or []]
    said = " ".join(str(m.get("content") or "") for m in messages if m.get("role") == "user")
    done = {m.get("tool_call_id") for m in messages if m.get("role") == "tool"}
    if system.startswith("You are a customer"):
        # The customer knows only its facts (in its prompt): the order number, or nothing.
        return _say("My order number is A1." if '"A1"' in system else "I do not know.")
    if "lookup_order" in tools:  # billing
        if "A1" not in said:
            return _say("Could you please share the order number?")
        if "call_lookup" not in done:
            return _call("lookup_order", {"order_id": "A1"}, "call_lookup")
        if "call_refund" not in done:
            return _call("issue_refund", {"order_id": "A1"}, "call_refund")
        return _say("Your refund is on its way.")
    if "Shipping agent" in system:
        return _say("When was the parcel due?")  # never ends: the turn limit
    target = "billing" if "refund" in said else "shipping"
    [transfer] = [name for name in tools if name.startswith(f"transfer_to_{target}")]
    return _call(transfer, {}, "call_handoff")


def test_live_eval_over_http_with_a_model_customer(
    project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sops, out = project
    monkeypatch.setenv("SOPC_CACHE_DIR", str(sops.parent / "cache"))
    monkeypatch.setenv("SOPC_MODEL", "test-model")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-eval-secret")
    junit = sops.parent / "live.xml"
    args = [
        "eval",
        str(sops),
        "-o",
        str(out),
        "--live",
        "--max-turns",
        "2",
        "--format",
        "json",
        "--junit",
        str(junit),
    ]
    with LLMServer(responder=_respond) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        server.queue(Reply(status=429, headers={"Retry-After": "0"}, body={"error": {}}))
        result = CliRunner().invoke(app, args)
        calls = len(server.chat_requests)
        customer = [
            r.messages_text()
            for r in server.chat_requests
            if "You are a customer" in r.messages_text()
        ]
        again = CliRunner().invoke(app, args)
        calls_again = len(server.chat_requests) - calls
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    by_name = {r["name"]: r for r in report["results"]}
    refund = by_name["a delivered order is refunded"]
    assert refund["status"] == "passed", refund["trials"][0]["differences"]
    trial = refund["trials"][0]
    assert trial["agents"] == ["Triage", "Billing"] and trial["customer_turns"] == 2
    assert trial["tool_calls"] == ['lookup_order(order_id="A1")', 'issue_refund(order_id="A1")']
    lost = by_name["a lost parcel gets a claim"]["trials"][0]
    assert by_name["a parcel long overdue goes to the claims team"]["status"] == "failed"
    assert lost["routed_to"] == "Shipping"
    assert lost["differences"] == ["turn limit reached: 2 customer turns without an ending"]
    # One request more than the answers counted: the 429, retried (the run went on and passed).
    assert report["usage"]["model_calls"] == calls - 1 and report["usage"]["input_tokens"] > 0
    assert (
        report["metrics"]["pass_k"] == round(1 / 3, 4)
        and report["metrics"]["routing_accuracy"] == 1.0
    )
    assert 'failures="2"' in junit.read_text(encoding="utf-8")
    # The customer is prompted with its facts and the agent's words, never the expectation.
    assert customer and any('order_id: "A1"' in text for text in customer)
    assert not any("issue_refund" in text or "Billing" in text for text in customer)
    assert again.exit_code == 1 and calls_again == 0  # the rerun: every answer from the cache
    assert json.loads(again.stdout)["results"] == report["results"]
    assert "sk-live-eval-secret" not in result.output
    cached = " ".join(
        p.read_text(encoding="utf-8") for p in (sops.parent / "cache").rglob("*.json")
    )
    assert cached and "sk-live-eval-secret" not in cached


def test_dry_run_estimates_without_calling(project: tuple[Path, Path]) -> None:
    sops, out = project
    result = CliRunner().invoke(
        app,
        [
            "eval",
            str(sops),
            "-o",
            str(out),
            "--live",
            "--dry-run",
            "--trials",
            "3",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    estimate = json.loads(result.stdout)["estimate"]
    assert (
        estimate["agent_calls"] > 0 and estimate["customer_calls"] == 9
    )  # 2 scenarios x 1 answer x 3 trials
    assert estimate["input_tokens"] > 0


def test_no_network_is_exit_2(tmp_path: Path) -> None:
    sops = tmp_path / "sops"
    (sops / "scenarios" / "billing").mkdir(parents=True)
    (sops / "scenarios" / "billing" / "refunds.yaml").write_text(REFUND_SCENARIO, "utf-8")
    result = CliRunner().invoke(
        app,
        ["eval", str(sops), "-o", str(tmp_path / "nothing"), "--live", "--customer", "scripted"],
    )
    assert result.exit_code == 2
    assert "run `sopc compile` first" in result.output


ESCALATE_ONLY = (
    LOST_SCENARIO.split("- name: a parcel long overdue")[0]
    .replace("- name: a lost parcel gets a claim", "- name: overdue", 1)
    .replace("ending: {kind: resolve}", "ending: {kind: escalate, to: Claims team}")
)


def test_an_escalation_is_the_team_the_answer_names(project: tuple[Path, Path]) -> None:
    sops, out = project
    steps = [
        [function_call("transfer_to_shipping", {}, call_id="h")],
        [assistant_message("I have passed your case to the Claims team; they will contact you.")],
    ]
    report = _live(sops, out, steps, only="shipping", scenarios=ESCALATE_ONLY)
    trial = report.results[0].trials[0]
    assert trial.ending == "escalate to Claims team" and trial.passed, trial.differences
    resolved = [
        [function_call("transfer_to_shipping", {}, call_id="h")],
        [assistant_message("A claim is opened with the carrier.")],
    ]
    report = _live(sops, out, resolved, only="shipping", scenarios=ESCALATE_ONLY, cache="other")
    trial = report.results[0].trials[0]
    assert trial.differences == ["ending: expected escalate to Claims team, actual resolve"]
    assert report.metrics.ending_accuracy == 0.0


HANDOFF = """
- name: a parcel question goes on to shipping
  message: I want a refund for my order.
  expect:
    agent: billing
    tool_calls: [{tool: create_ticket, arguments: {team: Support}}]
    ending: {kind: handoff, to: shipping}
    category: delivery
    priority: high
"""


def test_a_handoff_ending_and_category_and_priority(project: tuple[Path, Path]) -> None:
    sops, out = project
    ticket = {"summary": "lost", "team": "Support", "priority": "high", "category": "delivery"}
    steps = [
        [function_call("transfer_to_billing", {}, call_id="h1")],
        [function_call("create_ticket", ticket, call_id="t")],
        [function_call("transfer_to_triage", {"reason": "a parcel question"}, call_id="h2")],
        [function_call("transfer_to_shipping", {}, call_id="h3")],
        [assistant_message("Shipping here: when was the parcel due?")],
    ]
    report = _live(sops, out, steps, only="billing", scenarios=HANDOFF)
    trial = report.results[0].trials[0]
    assert trial.agents == ["Triage", "Billing", "Triage", "Shipping"], trial.differences
    assert trial.ending == "handoff to Shipping" and trial.passed, trial.differences
    assert (report.metrics.category_accuracy, report.metrics.priority_accuracy) == (1.0, 1.0)


def test_pass_k_needs_every_trial_to_pass(project: tuple[Path, Path]) -> None:
    sops, out = project
    good = [
        [function_call("transfer_to_billing", {}, call_id="h")],
        [function_call("lookup_order", {"order_id": "A1"}, call_id="l")],
        [function_call("issue_refund", {"order_id": "A1"}, call_id="r")],
        [assistant_message("Refunded.")],
    ]
    bad = [
        [function_call("transfer_to_billing", {}, call_id="h")],
        [function_call("issue_refund", {"order_id": "A1"}, call_id="r")],
        [assistant_message("Refunded.")],
    ]
    report = _live(sops, out, [*good, *bad], only="billing", trials=2)
    [result] = report.results
    assert [trial.passed for trial in result.trials] == [True, False]
    assert result.status == "failed" and report.exit_code == 1
    assert (report.metrics.k, report.metrics.pass_k, report.metrics.trial_pass_rate) == (
        2,
        0.0,
        0.5,
    )
    assert report.metrics.tool_recall == 0.75 and report.metrics.tool_precision == 1.0


def test_a_judge_grades_each_conversation_apart_from_pass_fail(project: tuple[Path, Path]) -> None:
    sops, out = project
    for path in (sops / "scenarios").glob("shipping/*.yaml"):
        path.unlink()
    settings = load_settings(sops, overrides={"output": out, "cache_dir": sops.parent / "cache"})
    steps = [
        [function_call("transfer_to_billing", {}, call_id="h")],
        [function_call("lookup_order", {"order_id": "A1"}, call_id="l")],
        [function_call("issue_refund", {"order_id": "A1"}, call_id="r")],
        [assistant_message("Refunded.")],
    ]
    grade = {"empathy": 2, "correctness": 9, "asks_before_acting": 1, "note": "Curt, but right."}
    judge = ScriptedModel([[assistant_message(json.dumps(grade))]])
    report = evaluate_live(
        sops / "scenarios",
        output=out,
        settings=settings,
        tools=["lookup_order", "create_ticket", "issue_refund"],
        customer="scripted",
        judge=True,
        agent_model=ScriptedModel(steps),
        judge_model=judge,
    )
    [trial] = report.results[0].trials
    assert trial.passed and trial.grade is not None
    assert (trial.grade.empathy, trial.grade.correctness, trial.grade.note) == (
        2,
        5,  # out of range: clamped to the rubric's 1-5
        "Curt, but right.",
    )
    assert report.grades == {"empathy": 2.0, "correctness": 5.0, "asks_before_acting": 1.0}
    assert trial.transcript[0] == "customer: I want a refund for my order."
    assert trial.transcript[-1] == "agent: Refunded."


def test_a_malformed_scenario_is_exit_2_naming_file_and_line(project: tuple[Path, Path]) -> None:
    sops, out = project
    bad = sops / "scenarios" / "shipping" / "lost.yaml"
    bad.write_text("- name: x\n  expect:\n    ending: {kind: sideways}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", str(sops), "-o", str(out), "--live", "--dry-run"])
    assert result.exit_code == 2
    assert "scenarios/shipping/lost.yaml:3" in result.output
