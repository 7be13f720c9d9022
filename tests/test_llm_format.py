"""The routine format end to end: `sopc compile` with the openai backend, the real openai client
over real HTTP against tests/llm_server.py, and a model answer that uses rules, knowledge,
collect slots, `collects`, a confirm ask, a slot argument, a list value and a switch."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer, completion
from typer.testing import CliRunner, Result

from sop_compiler.cli import app

pytestmark = pytest.mark.timeout(30)

POLICY = """\
# Bike rentals

Get the customer's explicit yes before any change to a rental.

## Prices

| Bike | Price per day |
| --- | --- |
| City bike | 15 EUR |
| E-bike | 35 EUR |

## Extend a rental

- Ask the customer for the rental number and the new return date.
- Look up the rental to check the bike type.
- For an e-bike, tell the customer the extension costs 35 EUR per day.
- For a city bike, tell the customer the extension costs 15 EUR per day.
- Never extend a rental by more than 14 days.
- Extend the rental with the rental tool once the customer agrees.
"""

TOOLS = """\
tools:
  - name: lookup_rental
    description: Look up a rental by its number and return the bike type and return date.
    access: read
    parameters: {type: object, properties: {rental_id: {type: string}}, required: [rental_id]}
  - name: extend_rental
    description: Move the return date of a rental.
    access: write
    needs_approval: true
    parameters:
      type: object
      properties:
        rental_id: {type: string}
        return_date: {type: string}
        notify: {type: array, items: {type: string}}
      required: [rental_id, return_date]
"""

# Block ids as `sopc inspect --format json` shows them for POLICY: the procedure "rentals" has
# context b2 (the document rule), b3-b4 (the price table) and blocks b5-b11 (its section).
BLOCKS = {
    "rule": "b2",
    "prices": "b4",
    "ask": "b6",
    "lookup": "b7",
    "ebike": "b8",
    "city": "b9",
    "limit": "b10",
    "extend": "b11",
}


def _ref(block: str, quote: str) -> dict[str, Any]:
    return {
        "block_ids": [BLOCKS[block]],
        "quote": quote,
        "file": None,
        "page": None,
        "paragraph": None,
    }


def _step(id_: str, kind: str, text: str, **fields: Any) -> dict[str, Any]:
    step: dict[str, Any] = {
        "id": id_,
        "kind": kind,
        "text": text,
        "tool_call": None,
        "condition": None,
        "switch": None,
        "routine": None,
        "collects": [],
        "confirm": False,
        "target": None,
        "next_step": None,
        "substeps": [],
        "source": None,
    }
    step.update(fields)
    return step


def good_draft() -> dict[str, Any]:
    """A model answer that uses every part of the routine format a single routine can use."""
    return {
        "title": "Extend a bike rental",
        "trigger": "The customer wants to keep a rented bike longer.",
        "rules": [
            {
                "kind": "confirm_before",
                "text": "Get the customer's explicit yes before you extend a rental.",
                "condition": None,
                "governs": ["extend_rental"],
                "source": _ref(
                    "rule", "Get the customer's explicit yes before any change to a rental."
                ),
            },
            {
                "kind": "limit",
                "text": "Never extend a rental by more than 14 days.",
                "condition": None,
                "governs": ["extend_rental"],
                "source": _ref("limit", "Never extend a rental by more than 14 days."),
            },
            {
                "kind": "only_if",
                "text": "Extend the rental only once the customer agrees.",
                "condition": "the customer agreed to the new price",
                "governs": ["7"],
                "source": _ref("extend", "once the customer agrees"),
            },
        ],
        "knowledge": [
            {
                "fact": "A city bike costs 15 EUR per day and an e-bike costs 35 EUR per day.",
                "source": _ref("prices", "City bike | 15 EUR"),
            }
        ],
        "collect": [
            {"name": "rental_id", "description": "the rental number", "origin": "customer"},
            {"name": "return_date", "description": "the new return date", "origin": "customer"},
        ],
        "steps": [
            _step(
                "1",
                "ask",
                "Ask the customer for the rental number and the new return date.",
                collects=["rental_id", "return_date"],
                source=_ref(
                    "ask", "Ask the customer for the rental number and the new return date."
                ),
            ),
            _step(
                "2",
                "tool_call",
                "Look up the rental to check the bike type.",
                tool_call={
                    "tool": "lookup_rental",
                    "arguments": [
                        {
                            "name": "rental_id",
                            "value": None,
                            "slot": "rental_id",
                            "from_context": None,
                        }
                    ],
                },
                source=_ref("lookup", "Look up the rental to check the bike type."),
            ),
            _step(
                "3",
                "switch",
                "Check the bike type of the rental.",
                switch={
                    "subject": "the bike type",
                    "cases": [
                        {"when": "the bike is an e-bike", "goto": "4"},
                        {"when": "the bike is a city bike", "goto": "5"},
                    ],
                    "default": "8",
                },
            ),
            _step(
                "4",
                "say",
                "Tell the customer the extension costs 35 EUR per day.",
                next_step="6",
                source=_ref("ebike", "tell the customer the extension costs 35 EUR per day"),
            ),
            _step(
                "5",
                "say",
                "Tell the customer the extension costs 15 EUR per day.",
                source=_ref("city", "tell the customer the extension costs 15 EUR per day"),
            ),
            _step(
                "6",
                "ask",
                "Ask the customer for an explicit yes to extend the rental to the new date.",
                confirm=True,
                source=_ref("rule", "Get the customer's explicit yes"),
            ),
            _step(
                "7",
                "tool_call",
                "Extend the rental with the rental tool.",
                tool_call={
                    "tool": "extend_rental",
                    "arguments": [
                        {
                            "name": "rental_id",
                            "value": None,
                            "slot": "rental_id",
                            "from_context": None,
                        },
                        {
                            "name": "return_date",
                            "value": None,
                            "slot": "return_date",
                            "from_context": None,
                        },
                        {
                            "name": "notify",
                            "value": ["email", "sms"],
                            "slot": None,
                            "from_context": None,
                        },
                    ],
                },
                next_step="9",
                source=_ref("extend", "Extend the rental with the rental tool"),
            ),
            _step("8", "escalate", "The bike type is unknown.", target="the rentals team"),
            _step("9", "resolve", "Resolve the case."),
        ],
        "edge_cases": [],
        "tools_proposed": [],
        "open_questions": [],
    }


def without_confirm_ask() -> dict[str, Any]:
    """The good answer without step 6: the write tool runs with no explicit yes before it."""
    draft = copy.deepcopy(good_draft())
    draft["steps"] = [step for step in draft["steps"] if step["id"] != "6"]
    draft["steps"][3]["next_step"] = "7"  # step 4 went to the confirm ask
    return draft


def with_unknown_slot() -> dict[str, Any]:
    """The good answer, but the lookup takes its rental id from a slot nobody declared."""
    draft = copy.deepcopy(good_draft())
    draft["steps"][1]["tool_call"]["arguments"][0]["slot"] = "booking_ref"
    return draft


@pytest.fixture
def sops(tmp_path: Path) -> Path:
    folder = tmp_path / "sops"
    (folder / "rentals").mkdir(parents=True)
    (folder / "rentals" / "rentals.md").write_text(POLICY, encoding="utf-8")
    (folder / "tools.yaml").write_text(TOOLS, encoding="utf-8")
    return folder


class Run:
    """One `sopc compile` against a server that gives the same answer to every request."""

    def __init__(self, result: Result, out: Path, server: LLMServer) -> None:
        self.result = result
        self.out = out
        self.requests = server.chat_requests

    def file(self, suffix: str) -> str:
        [path] = [p for p in self.out.rglob(f"*{suffix}") if "rentals" in p.parts]
        return path.read_text(encoding="utf-8")

    @property
    def review(self) -> str:
        return (self.out / "REVIEW.md").read_text(encoding="utf-8")


@pytest.fixture
def compile_with(sops: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-format0123456789")

    def run(draft: dict[str, Any]) -> Run:
        out = tmp_path / "out"
        with LLMServer(responder=lambda body: completion(draft)) as server:
            args = ["compile", str(sops), "-o", str(out), "--backend", "openai", "--jobs", "1"]
            args += ["--base-url", server.base_url, "--model", "test-model", "--no-cache"]
            result = CliRunner().invoke(app, args)
            return Run(result, out, server)

    yield run


def test_a_full_format_answer_compiles_with_no_issues(compile_with: Any) -> None:
    run = compile_with(good_draft())

    assert run.result.exit_code == 0, run.result.output
    assert "1 SOP, 1 routine, 1 generated" in run.result.stdout
    assert "error:" not in run.result.output and "warning:" not in run.result.output
    [request] = run.requests  # no repair was needed
    schema = request.body["response_format"]["json_schema"]["schema"]
    assert {"rules", "knowledge", "collect"} <= set(schema["required"])
    step_fields = set(schema["$defs"]["Step"]["properties"])
    assert {"switch", "routine", "collects", "confirm"} <= step_fields
    prompt = request.messages_text()
    for block_id, text in [
        ("b2", "Get the customer's explicit yes before any change to a rental."),
        ("b10", "Never extend a rental by more than 14 days."),
    ]:
        assert f"[{block_id}] " in prompt and text in prompt

    md = run.file("rentals.md")
    rules = md.split("## Rules", 1)[1].split("## Reference", 1)[0]
    assert (
        "- **Confirm first:** Get the customer's explicit yes before you extend a rental. "
        "Applies to: `extend_rental`." in rules
    )
    assert "- **Limit:** Never extend a rental by more than 14 days." in rules
    assert "(when the customer agreed to the new price)" in rules
    reference = md.split("## Reference", 1)[1].split("## Information to collect", 1)[0]
    assert "- A city bike costs 15 EUR per day and an e-bike costs 35 EUR per day." in reference
    slots = md.split("## Information to collect", 1)[1].split("## Steps", 1)[0]
    assert "- `rental_id`: the rental number (ask the customer)" in slots
    assert "- `return_date`: the new return date (ask the customer)" in slots
    steps = md.split("## Steps", 1)[1]
    assert (
        "1. Ask the customer for the rental number and the new return date. "
        "(collects `rental_id`, `return_date`)" in steps
    )
    assert "Call `lookup_rental` with `rental_id` = `rental_id`." in steps
    assert (
        "3. Check the bike type: if the bike is an e-bike, go to step 4; if the bike is a city "
        "bike, go to step 5; otherwise, go to step 8." in steps
    )
    assert "4. Tell the customer the extension costs 35 EUR per day. Then go to step 6." in steps
    assert "Go on only with the customer's explicit yes." in steps.split("\n6. ", 1)[1]
    assert '`notify` = `["email", "sms"]`' in steps
    assert "8. The bike type is unknown. Escalate to the rentals team." in steps
    assert steps.rstrip().endswith("9. Resolve the case.")

    routine = json.loads(run.file("rentals.json"))
    assert [(r["kind"], r["governs"]) for r in routine["rules"]] == [
        ("confirm_before", ["extend_rental"]),
        ("limit", ["extend_rental"]),
        ("only_if", ["7"]),
    ]
    assert routine["rules"][0]["source"]["block_ids"] == ["b2"]
    assert routine["knowledge"][0]["source"]["block_ids"] == ["b4"]
    assert [(s["name"], s["origin"]) for s in routine["collect"]] == [
        ("rental_id", "customer"),
        ("return_date", "customer"),
    ]
    by_id = {step["id"]: step for step in routine["steps"]}
    assert by_id["1"]["source"]["file"] == "rentals/rentals.md"
    assert by_id["1"]["source"]["paragraph"] == 13  # as `sopc inspect` shows b6
    assert by_id["6"]["kind"] == "ask" and by_id["6"]["confirm"] is True
    assert by_id["3"]["switch"]["default"] == "8"
    assert [c["goto"] for c in by_id["3"]["switch"]["cases"]] == ["4", "5"]
    assert by_id["7"]["tool_call"]["arguments"][1]["slot"] == "return_date"
    assert routine["tools_used"] == ["extend_rental", "lookup_rental"]

    review = run.review
    section = review.split("## Rentals: Extend a bike rental", 1)[1]
    assert "### Issues\n\nNo issues." in section
    assert "Coverage of the source: 100%" in section
    assert "s3 -->|otherwise| s8" in section  # the switch default in the flowchart


def test_rule_and_fact_citations_get_their_provenance(compile_with: Any) -> None:
    run = compile_with(good_draft())

    assert run.result.exit_code == 0, run.result.output
    routine = json.loads(run.file("rentals.json"))
    rule, fact = routine["rules"][0]["source"], routine["knowledge"][0]["source"]
    assert (rule["file"], rule["paragraph"]) == ("rentals/rentals.md", 2)  # b2
    assert (fact["file"], fact["paragraph"]) == ("rentals/rentals.md", 6)  # b4


def test_a_write_without_a_confirm_ask_is_an_unconfirmed_write(compile_with: Any) -> None:
    run = compile_with(without_confirm_ask())

    assert run.result.exit_code == 1, run.result.output  # 1: validation errors
    message = (
        "step 7 calls write tool `extend_rental` on a path with no confirmation ask before it, "
        'which the rule "Get the customer\'s explicit yes before you extend a rental." requires'
    )
    [line] = [line for line in run.result.stdout.splitlines() if "unconfirmed_write:" in line]
    # listed under its routine, the step named once, not "step 7: step 7 calls ..."
    assert "rentals/rentals (rentals/rentals.md)" in run.result.stdout
    assert line.startswith(f"  error unconfirmed_write: {message}")
    assert "step 7: step 7" not in run.requests[-1].body["messages"][-1]["content"]
    # The model was told, and given both repair attempts, before sopc reported it.
    assert len(run.requests) == 3
    assert message in run.requests[-1].body["messages"][-1]["content"]
    assert "unconfirmed\\_write (step 7)" in run.review
    routine = json.loads(run.file("rentals.json"))  # still written, for the reviewer
    assert not any(step["confirm"] for step in routine["steps"])


def test_an_argument_from_an_undeclared_slot_is_an_unknown_slot(compile_with: Any) -> None:
    run = compile_with(with_unknown_slot())

    assert run.result.exit_code == 1, run.result.output
    [line] = [line for line in run.result.stdout.splitlines() if "unknown_slot:" in line]
    assert line.startswith("  error unknown_slot: step 2:")
    assert (
        "argument `rental_id` takes slot `booking_ref`, which is not in the routine's collect list"
        in line
    )
    assert "unconfirmed_write" not in run.result.stdout  # the confirm ask is still there
    assert len(run.requests) == 3
    assert "`booking_ref`" in run.requests[1].body["messages"][-1]["content"]
    assert "unknown\\_slot (step 2)" in run.review
