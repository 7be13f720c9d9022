"""sopc eval: the routine interpreter on every step kind, scenario files, drafting, reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from sop_compiler.cli import app
from sop_compiler.eval import explore, interpret
from sop_compiler.interpret import MAX_VISITS
from sop_compiler.models.routine import Routine

REPO = Path(__file__).resolve().parents[1]

TOOLS = """\
tools:
  - name: lookup_order
    description: Look up an order.
    parameters: {type: object, properties: {order_id: {type: string}}, required: [order_id]}
  - name: issue_refund
    description: Refund an order.
    access: write
    parameters:
      type: object
      properties: {order_id: {type: string}, amount: {type: number}}
      required: [order_id, amount]
  - name: create_ticket
    description: Open a ticket.
    access: write
    parameters:
      type: object
      properties: {team: {type: string}, priority: {type: string}}
      required: [team]
"""


def step(id: str, kind: str = "say", **fields: Any) -> dict[str, Any]:
    return {"id": id, "kind": kind, "text": f"step {id}", **fields}


def routine(
    id: str, steps: list[dict[str, Any]], *, agent: str = "billing", **fields: Any
) -> Routine:
    return Routine.model_validate(
        {
            "id": id,
            "agent": agent,
            "title": id,
            "trigger": f"Use for {id}.",
            "source": {"file": f"{agent}/{id}.md", "sha256": "0" * 64},
            "steps": steps,
            **fields,
        }
    )


def cond(
    id: str, test: str, then: str, otherwise: str | None = None, **fields: Any
) -> dict[str, Any]:
    return step(
        id,
        "condition",
        condition={"test": test, "then_step": then, "else_step": otherwise},
        **fields,
    )


def call(id: str, tool: str, **arguments: Any) -> dict[str, Any]:
    args = [
        {"name": name, "slot": value[1:]} if isinstance(value, str) and value.startswith("$")
        else {"name": name, "value": value}
        for name, value in arguments.items()
    ]  # fmt: skip
    return step(id, "tool_call", tool_call={"tool": tool, "arguments": args})


REFUND = routine(
    "refund",
    [
        step("1", "ask", collects=["order_id"]),
        call("2", "lookup_order", order_id="$order_id"),
        cond("3", "the amount is over $200", "3a", "4"),
        call("3a", "create_ticket", team="Billing Supervisor queue", priority="high"),
        step("3b", "resolve"),
        call("4", "issue_refund", order_id="$order_id", amount="$amount"),
        step("5", "resolve"),
    ],
    collect=[
        {"name": "order_id", "description": "the order", "origin": "customer"},
        {"name": "amount", "description": "the amount", "origin": "tool"},
    ],
)
REFUND.steps[1].collects = ["amount"]


def always(take: str) -> Any:
    return lambda routine, step, visit, options: take


# --- the interpreter ------------------------------------------------------------------------


def test_condition_then_and_else_record_calls_with_slots_from_facts_and_tool_results() -> None:
    result = {"amount": 30.0}
    trace = interpret(
        REFUND, decide=always("else"), facts={"order_id": "A-1"}, tool_result=lambda t, a: result
    )
    assert trace.error is None
    assert [(c.tool, c.arguments) for c in trace.calls] == [
        ("lookup_order", {"order_id": "A-1"}),
        ("issue_refund", {"order_id": "A-1", "amount": 30.0}),
    ]
    assert trace.ending is not None and (trace.ending.kind, trace.ending.step) == ("resolve", "5")
    then = interpret(REFUND, decide=always("then"), facts={"order_id": "A-1"})
    assert [c.tool for c in then.calls] == ["lookup_order", "create_ticket"]
    assert then.calls[1].arguments == {"team": "Billing Supervisor queue", "priority": "high"}
    assert [(c.step, c.take, c.question) for c in then.choices] == [
        ("3", "then", "the amount is over $200")
    ]


def test_a_condition_without_else_goes_on_with_the_next_step() -> None:
    r = routine(
        "r", [cond("1", "x", "3"), step("2", "escalate", target="Team"), step("3", "resolve")]
    )
    trace = interpret(r, decide=always("else"))
    assert trace.ending is not None and (trace.ending.kind, trace.ending.target) == (
        "escalate",
        "Team",
    )


def test_switch_takes_the_named_case_or_the_default() -> None:
    r = routine(
        "tier",
        [
            step("1", "switch", switch={
                "subject": "the membership tier",
                "cases": [{"when": "Gold", "goto": "2"}, {"when": "Silver", "goto": "3"}],
                "default": "4",
            }),
            step("2", "handoff", target="shipping"),
            step("3", "escalate", target="Loyalty team"),
            step("4", "resolve"),
        ],
    )  # fmt: skip
    ends = {
        take: interpret(r, decide=always(take)).ending for take in ("Gold", "Silver", "default")
    }
    assert {take: (e.kind, e.target) for take, e in ends.items() if e} == {
        "Gold": ("handoff", "shipping"),
        "Silver": ("escalate", "Loyalty team"),
        "default": ("resolve", None),
    }
    paths = explore(r)
    assert [t.choices[0].take for t in paths.done] == ["Gold", "Silver", "default"]
    assert paths.stuck == [] and paths.complete


def test_call_comes_back_after_resolve_and_an_escalation_inside_ends_both() -> None:
    check = routine(
        "verify",
        [cond("1", "the customer is verified", "2", "3"), step("2", "resolve"),
         step("3", "escalate", target="Security")],
    )  # fmt: skip
    main = routine(
        "main",
        [step("1", "call", routine="verify"), call("2", "lookup_order", order_id="A"),
         step("3", "resolve")],
    )  # fmt: skip
    known = {("billing", "verify"): check, ("billing", "main"): main}
    back = interpret(main, decide=always("then"), routines=known)
    assert [s for s in back.steps] == [
        ("main", "1"),
        ("verify", "1"),
        ("verify", "2"),
        ("main", "2"),
        ("main", "3"),
    ]
    assert back.ending is not None and back.ending.routine == "main"
    inside = interpret(main, decide=always("else"), routines=known)
    assert inside.ending is not None and (inside.ending.kind, inside.ending.routine) == (
        "escalate",
        "verify",
    )
    assert inside.calls == []
    unknown = interpret(main, decide=always("then"), routines={})
    assert (
        unknown.error
        == "main step 1 calls routine `verify`, which is no routine of agent `billing`"
    )


def test_a_loop_ends_when_the_decisions_leave_it_and_explore_enters_it_once() -> None:
    r = routine(
        "retry",
        [call("1", "lookup_order", order_id="A"), cond("2", "the lookup failed", "1", "3"),
         step("3", "resolve")],
    )  # fmt: skip
    answers = iter(["then", "then", "else"])
    trace = interpret(r, decide=lambda *_: next(answers))
    assert trace.error is None and [c.tool for c in trace.calls] == ["lookup_order"] * 3
    assert [c.visit for c in trace.choices] == [1, 2, 3]
    paths = explore(r)
    assert [[c.take for c in t.choices] for t in paths.done] == [["then", "else"], ["else"]]
    assert paths.stuck == []


def test_a_loop_that_does_not_end_fails_clearly() -> None:
    r = routine("spin", [step("1", "say"), step("2", "say", next_step="1"), step("3", "resolve")])
    trace = interpret(r, decide=always("then"))
    assert trace.ending is None
    assert trace.error == f"loop that does not end: spin step 1 reached {MAX_VISITS + 1} times"
    paths = explore(r)
    assert paths.done == [] and [t.error for t in paths.stuck] == [trace.error]


def test_running_past_the_last_step_and_a_dangling_jump_are_errors() -> None:
    past = interpret(routine("r", [step("1", "say")]), decide=always("then"))
    assert past.error == "r runs past its last step (1) without resolve, escalate or handoff"
    dangling = interpret(
        routine("r", [cond("1", "x", "9"), step("2", "resolve")]), decide=always("then")
    )
    assert dangling.error == "r step 1 goes to step 9, which does not exist"


def test_explore_finds_every_path_of_a_sample_routine() -> None:
    path = REPO / "generated_routines/routines/billing/refunds-and-credits--issuing-a-refund.json"
    r = Routine.model_validate_json(path.read_bytes())
    done, stuck, complete = explore(r)
    assert stuck == [] and complete
    assert len(done) == 100  # one per reviewed scenario of the routine
    endings = {(t.ending.kind, t.ending.target) for t in done if t.ending}
    assert endings == {("handoff", "shipping"), ("resolve", None)}
    # every branch of every condition is taken on some path
    taken = {(c.step, c.take) for t in done for c in t.choices}
    conditions = [s.id for s in r.walk() if s.kind == "condition"]
    assert taken == {(s, way) for s in conditions for way in ("then", "else")}


# --- eval through the command line ---------------------------------------------------------


def project(tmp_path: Path, *routines: Routine) -> tuple[Path, Path]:
    sops, out = tmp_path / "sops", tmp_path / "out"
    sops.mkdir()
    (sops / "tools.yaml").write_text(TOOLS)
    for r in routines:
        target = out / "routines" / r.agent / f"{r.id}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(r.model_dump_json(indent=2))
    (out / "routines" / "shipping").mkdir(parents=True, exist_ok=True)
    return sops, out


def scenarios(sops: Path, agent: str, routine_id: str, text: str, *, suffix: str = ".yaml") -> Path:
    path = sops / "scenarios" / agent / f"{routine_id}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


GOOD = """\
- name: small refund
  message: My order A-1 arrived broken.
  facts: {order_id: A-1}
  tool_results:
    - {tool: lookup_order, arguments: {order_id: A-1}, result: {amount: 30}}
  decisions:
    - {step: "3", test: the amount is over $200, take: else}
  expect:
    agent: billing
    tool_calls:
      - {tool: lookup_order, arguments: {order_id: A-1}}
      - {tool: issue_refund, arguments: {order_id: A-1, amount: 30}}
    not_called: [create_ticket]
    ending: {kind: resolve}
- name: big refund goes to a supervisor
  facts: {order_id: A-2}
  decisions:
    - {step: "3", take: then}
  expect:
    tool_calls:
      - {tool: lookup_order}
      - {tool: create_ticket, arguments: {team: Billing Supervisor queue}}
    not_called: [issue_refund]
    ending: {kind: resolve}
    priority: high
"""


def test_eval_passes_reviewed_scenarios_and_skips_drafts(tmp_path: Path) -> None:
    sops, out = project(tmp_path, REFUND)
    scenarios(
        sops,
        "billing",
        "refund",
        GOOD + "- name: d\n  draft: true\n  expect: {ending: {kind: resolve}}\n",
    )
    result = run("eval", str(sops), "-o", str(out), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["status"] for r in data["results"]] == ["passed", "passed"]
    assert data["summary"]["drafts_skipped"] == 1
    assert data["coverage"] == [
        {
            "routine": "billing/refund",
            "paths": 2,
            "covered": 2,
            "uncovered": [],
            "uncovered_numbers": [],
            "drafts": 1,
        }
    ]
    assert data["results"][0]["tool_calls"] == [
        'lookup_order(order_id="A-1")',
        'issue_refund(order_id="A-1", amount=30)',
    ]


def test_eval_fails_with_a_readable_diff_and_writes_junit(tmp_path: Path) -> None:
    sops, out = project(tmp_path, REFUND)
    wrong = GOOD.replace("amount: 30}}\n    not_called", "amount: 40}}\n    not_called")
    wrong = wrong.replace("priority: high", "priority: urgent")
    scenarios(sops, "billing", "refund", wrong)
    junit = tmp_path / "eval.xml"
    result = run("eval", str(sops), "-o", str(out), "--junit", str(junit))
    assert result.exit_code == 1
    assert "FAIL " in result.stdout and "refund.yaml:1 small refund" in result.stdout
    assert '\n      - issue_refund(order_id="A-1", amount=40)\n' in result.stdout
    assert '\n      + issue_refund(order_id="A-1", amount=30)\n' in result.stdout
    assert '\n        lookup_order(order_id="A-1")\n' in result.stdout
    assert "priority: expected urgent, actual high" in result.stdout
    assert "paths covered 0/2" in result.stdout
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "2"
    failure = suite.find("testsuite/testcase/failure")
    assert failure is not None and failure.get("message") == "tool calls (exact) differ:"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ('{step: "3", take: then}', None),  # the reference: passes
        ('{step: "4", take: then}', "decision names step 4, which is a tool_call, not a condition"),
        ('{step: "7", take: then}', "decision names step 7, which no longer exists"),
        ('{step: "3", take: maybe}',
         "step 3 (condition) cannot go 'maybe'; its ways: \"then\", \"else\""),
        ('{step: "3", test: the amount is over $500, take: then}',
         "step 3 now asks 'the amount is over $200', "
         "the scenario decided 'the amount is over $500'"),
    ],
)  # fmt: skip
def test_decisions_that_no_longer_fit_the_routine_fail_with_the_reason(
    tmp_path: Path, change: str, reason: str | None
) -> None:
    sops, out = project(tmp_path, REFUND)
    text = GOOD.split("- name: big")[0].replace(
        '{step: "3", test: the amount is over $200, take: else}', change
    )
    text = text.replace("issue_refund, arguments: {order_id: A-1, amount: 30}", "create_ticket")
    text = text.replace("not_called: [create_ticket]", "not_called: []")
    scenarios(sops, "billing", "refund", text)
    result = run("eval", str(sops), "-o", str(out), "--format", "json")
    differences = json.loads(result.stdout)["results"][0]["differences"]
    if reason is None:
        assert result.exit_code == 0 and differences == []
    else:
        assert result.exit_code == 1 and reason in differences, differences


def test_missing_unused_decisions_and_unknown_names_fail(tmp_path: Path) -> None:
    sops, out = project(tmp_path, REFUND)
    text = """\
- name: no decision
  expect: {ending: {kind: resolve}}
- name: unknown things
  decisions: [{step: "3", take: else}, {step: "3", take: else}]
  tool_results: [{tool: lookup_ordr}]
  expect:
    agent: finance
    not_called: [delete_order]
    ending: {kind: handoff, to: warehouse}
"""
    scenarios(sops, "billing", "refund", text)
    scenarios(sops, "billing", "gone", "- name: x\n  expect: {ending: {kind: resolve}}\n")
    result = run("eval", str(sops), "-o", str(out), "--format", "json")
    assert result.exit_code == 1
    results = {r["name"]: r["differences"] for r in json.loads(result.stdout)["results"]}
    assert results["x"] == ["routine `billing/gone` no longer exists"]
    assert results["no decision"] == [
        "step 3 needs a decision: condition 'the amount is over $200'; add "
        '{step: "3", take: ...} with take "then" or "else"'
    ]
    unknown = results["unknown things"]
    assert "tool `lookup_ordr` is no catalog tool (did you mean `lookup_order`?)" in unknown
    assert "tool `delete_order` is no catalog tool" in unknown
    assert "agent `finance` is no agent of the network (billing)" in unknown
    assert "handoff agent `warehouse` is no agent of the network (billing)" in unknown
    assert "decision for step 3 was not used: the path reaches it 1 time(s), not 2" in unknown
    assert "ending: expected handoff to warehouse, actual resolve (step 5)" in unknown


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- name: a\n  expect: {ending: {kind: resolve}\n",
         "refund.yaml:3: invalid YAML: "),  # the wording is libyaml's or PyYAML's
        ("- name: a\n  expect:\n    ending: {kind: refund}\n",
         "refund.yaml:3: scenario 1: expect.ending.kind: Input should be 'resolve', 'escalate' or "
         "'handoff'"),
        ("- name: a\n  decisions:\n    - {step: '3', take: yes}\n"
         "  expect: {ending: {kind: resolve}}\n",
         'refund.yaml:3: scenario 1: decisions.0.take: write "then" or "else" (YAML reads '
         "yes/no/true/false as booleans)"),
        ("- name: a\n  expect: {ending: {kind: resolve}}\n" * 2,
         "refund.yaml:3: two scenarios are named 'a'"),
        ("name: a\n", "refund.yaml:1: a scenario file holds a list of scenarios (`- name: ...`)"),
        ("- name: a\n  expect: {ending: {kind: resolve}}\n  surprise: 1\n",
         "refund.yaml:3: scenario 1: surprise: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_a_malformed_scenario_file_is_one_line_with_its_line_and_exit_2(
    tmp_path: Path, text: str, message: str
) -> None:
    sops, out = project(tmp_path, REFUND)
    scenarios(sops, "billing", "refund", text)
    result = run("eval", str(sops), "-o", str(out))
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert lines[0].startswith(f"error: {sops / 'scenarios/billing/refund.yaml'}:")
    assert "Traceback" not in result.output


def test_schema_scenario_describes_every_committed_scenario_file() -> None:
    result = run("schema", "--scenario")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    files = sorted((REPO / "sample_sops/scenarios").glob("*/*.yaml"))
    assert len(files) == 17
    for path in files:
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{"name": "x", "expect": {"ending": {"kind": "refund"}}}], schema)


# --- drafting -------------------------------------------------------------------------------


def test_drafts_one_per_path_byte_identical_on_rerun(tmp_path: Path) -> None:
    sops, out = project(tmp_path, REFUND)
    first = run("scenarios", str(sops), "-o", str(out))
    assert first.exit_code == 0, first.output
    path = sops / "scenarios" / "billing" / "refund.yaml"
    data = path.read_bytes()
    drafts = yaml.safe_load(data)
    assert [d["name"] for d in drafts] == ["3 then -> resolve", "3 else -> resolve"]
    assert all(d["draft"] is True for d in drafts)
    assert drafts[0]["facts"] == {"order_id": None}
    assert drafts[0]["expect"]["tool_calls"][1] == {
        "tool": "create_ticket",
        "arguments": {"team": "Billing Supervisor queue", "priority": "high"},
    }  # fmt: skip
    assert drafts[0]["expect"]["not_called"] == ["issue_refund"]
    again = run("scenarios", str(sops), "-o", str(out))
    assert path.read_bytes() == data and "1 unchanged" in again.stdout
    # drafts pass once reviewed: they say what the routine does
    path.write_text(data.decode().replace("  draft: true\n", ""))
    assert run("eval", str(sops), "-o", str(out)).exit_code == 0


def test_drafting_never_overwrites_reviewed_scenarios_and_drafts_new_paths_beside(
    tmp_path: Path,
) -> None:
    sops, out = project(tmp_path, REFUND)
    reviewed = scenarios(sops, "billing", "refund", GOOD.split("- name: big")[0])
    before = reviewed.read_bytes()
    result = run("scenarios", str(sops), "-o", str(out))
    assert reviewed.read_bytes() == before
    beside = sops / "scenarios" / "billing" / "refund.draft.yaml"
    assert "note: billing/refund: 1 path(s) have no reviewed scenario; drafts in" in result.stdout
    assert [d["name"] for d in yaml.safe_load(beside.read_text())] == ["3 then -> resolve"]
    # a reviewer keeps the draft: once every path is covered the draft file goes
    reviewed.write_text(before.decode() + beside.read_text().replace("  draft: true\n", ""))
    result = run("scenarios", str(sops), "-o", str(out))
    assert not beside.exists() and "removed" in result.stdout
    assert "1 routines with every path reviewed" in result.stdout


def test_drafts_file_holding_reviewed_scenarios_is_never_overwritten(tmp_path: Path) -> None:
    sops, out = project(tmp_path, REFUND)
    scenarios(sops, "billing", "refund", GOOD.split("- name: big")[0])
    beside = scenarios(
        sops, "billing", "refund", "- name: mine\n  expect: {ending: {kind: resolve}}\n",
        suffix=".draft.yaml",
    )  # fmt: skip
    result = run("scenarios", str(sops), "-o", str(out))
    assert beside.read_text() == "- name: mine\n  expect: {ending: {kind: resolve}}\n"
    assert "holds reviewed scenarios: merge them into refund.yaml" in result.stdout


def test_committed_sample_scenarios_cover_every_path_and_pass() -> None:
    result = run(
        "eval",
        str(REPO / "sample_sops"),
        "-o",
        str(REPO / "generated_routines"),
        "--format",
        "json",
    )
    data = json.loads(result.stdout)
    assert result.exit_code == 0, [r for r in data["results"] if r["status"] == "failed"][:3]
    assert data["summary"]["drafts_skipped"] == 0
    assert len(data["coverage"]) == 17
    assert all(entry["covered"] == entry["paths"] > 0 for entry in data["coverage"])


VERIFY = routine(
    "verify",
    [
        cond("1", "the customer is verified", "2", "3"),
        step("2", "resolve"),
        step("3", "escalate", target="Account Security team"),
    ],
)
CALLER = routine(
    "caller",
    [
        step("1", "call", routine="verify"),
        step("2", "switch", switch={
            "subject": "the reason",
            "cases": [{"when": "a refund", "goto": "3"}, {"when": "a return", "goto": "4"}],
        }),
        call("3", "issue_refund", order_id="A", amount=5),
        step("4", "handoff", target="Shipping agent"),
    ],
)  # fmt: skip


def test_eval_decides_steps_of_a_called_routine_and_compares_teams_and_agents(
    tmp_path: Path,
) -> None:
    shipping = routine("returns", [step("1", "resolve")], agent="shipping")
    sops, out = project(tmp_path, VERIFY, CALLER, shipping)
    text = """\
- name: verified, a return goes to shipping
  decisions: [{step: verify/1, take: then}, {step: "2", take: a return}]
  expect: {ending: {kind: handoff, to: Shipping}, not_called: [issue_refund]}
- name: not verified escalates inside the called routine
  decisions: [{step: verify/1, take: else}]
  expect: {ending: {kind: escalate, to: account security team}}
- name: wrong team
  decisions: [{step: verify/1, take: else}]
  expect: {ending: {kind: escalate, to: Fraud team}}
- name: a case that is not there
  decisions: [{step: verify/1, take: then}, {step: "2", take: an exchange}]
  expect: {ending: {kind: resolve}}
"""
    scenarios(sops, "billing", "caller", text)
    result = run("eval", str(sops), "-o", str(out), "--format", "json")
    results = {r["name"]: r["differences"] for r in json.loads(result.stdout)["results"]}
    assert results["verified, a return goes to shipping"] == []
    assert results["not verified escalates inside the called routine"] == []
    assert results["wrong team"] == [
        "ending: expected escalate to Fraud team, actual escalate to Account Security team (step 3)"
    ]
    assert results["a case that is not there"] == [
        'step 2 (switch) cannot go \'an exchange\'; its ways: "a refund", "a return", "default"'
    ]
    drafted = run("scenarios", str(sops), "-o", str(out))
    assert drafted.exit_code == 0
    drafts = yaml.safe_load((sops / "scenarios/billing/caller.draft.yaml").read_text())
    assert [d["name"] for d in drafts] == [
        "verify/1 then, 2 a refund -> handoff to Shipping agent",
        "verify/1 then, 2 default -> handoff to Shipping agent",
    ]
    assert drafts[0]["decisions"][0] == {
        "step": "verify/1", "test": "the customer is verified", "take": "then"
    }  # fmt: skip


def test_the_scenarios_setting_and_option_move_the_folder(tmp_path: Path) -> None:
    sops, out = project(tmp_path, REFUND)
    elsewhere = tmp_path / "cases"
    (elsewhere / "billing").mkdir(parents=True)
    (elsewhere / "billing" / "refund.yaml").write_text(GOOD)
    result = run("eval", str(sops), "-o", str(out), "--scenarios", str(elsewhere))
    assert result.exit_code == 0 and "2 scenarios: 2 passed" in result.stdout
    (sops / "sopc.toml").write_text('scenarios = "../cases"\n')
    result = run("eval", str(sops), "-o", str(out))
    assert result.exit_code == 0 and "2 scenarios: 2 passed" in result.stdout


def test_scenario_files_beside_sops_are_not_sops(tmp_path: Path) -> None:
    from sop_compiler.ingest import discover

    sops = tmp_path / "sops"
    (sops / "billing").mkdir(parents=True)
    (sops / "billing" / "refunds.md").write_text("# Refunds\n\n1. Look up the order.\n")
    scenarios(sops, "billing", "refunds", GOOD)
    files, skipped = discover(sops)
    assert [f.name for f in files] == ["refunds.md"] and skipped == []


def test_github_format_annotates_the_failing_scenario_and_the_malformed_file(
    tmp_path: Path,
) -> None:
    sops, out = project(tmp_path, REFUND)
    scenarios(sops, "billing", "refund", GOOD.replace("priority: high", "priority: low"))
    scenarios(sops, "billing", "other", "- name: a\n  expect: {ending: {kind: refund}}\n")
    result = run("eval", str(sops), "-o", str(out), "--format", "github")
    assert result.exit_code == 2
    lines = [line for line in result.stdout.splitlines() if line.startswith("::error ")]
    refund = sops / "scenarios/billing/refund.yaml"
    assert lines[0] == (
        f"::error file={refund},line=15,title=sopc eval::big refund goes to a supervisor: "
        "priority: expected low, actual high"
    )
    assert lines[1].startswith(f"::error file={sops / 'scenarios/billing/other.yaml'},line=2,")
    assert "expect.ending.kind: Input should be" in lines[1]


def test_explore_says_when_it_stopped_before_every_path() -> None:
    r = Routine.model_validate_json(
        (
            REPO / "generated_routines/routines/billing/refunds-and-credits--issuing-a-refund.json"
        ).read_bytes()
    )
    paths = explore(r, max_paths=10)
    assert len(paths.done) == 10 and not paths.complete
    assert explore(r).done[:10] == paths.done  # the same first paths, in the same order
