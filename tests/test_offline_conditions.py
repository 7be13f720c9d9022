"""Every condition form the offline compiler reads, through the compiler itself, on both sides.

Each case is one step of a returns desk's SOP, compiled offline with the desk's catalog; the
assertions walk every path of the routine (`sop_compiler.paths`) and look at what each side of the
condition calls and how it ends, which is what an agent following the routine would do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from sop_compiler.config import Settings
from sop_compiler.generate.offline import build_draft
from sop_compiler.generate.offline.steps import unpassed_refs
from sop_compiler.models import (
    Condition,
    Procedure,
    RoutineDraft,
    Step,
    Tool,
    ToolArgument,
    ToolCall,
    ToolCatalog,
    walk_steps,
)
from sop_compiler.paths import enumerate_paths
from sop_compiler.pipeline import read_procedures
from sop_compiler.text import is_instruction
from sop_compiler.validate import check_draft


def _write(name: str, description: str) -> dict[str, object]:
    return {
        "name": name,
        "description": description,
        "access": "write",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    }


CATALOG = ToolCatalog(
    tools=[
        Tool.model_validate(tool)
        for tool in [
            {
                "name": "get_order",
                "description": "Look up an order by its number: status, amount and shipping.",
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string"}},
                    "required": ["order_id"],
                },
            },
            _write("open_ticket", "Open a ticket for another team."),
            _write("issue_refund", "Refund an order to the original payment method."),
            _write("accept_return", "Accept a return and print the label."),
            _write("cancel_order", "Cancel an order that has not shipped."),
            _write("issue_voucher", "Send the customer a discount voucher."),
            _write("replace_unit", "Ship a replacement device."),
            _write("book_paid_repair", "Book a paid repair for a device."),
        ]
    ]
)


@dataclass
class Way:
    """One path: the way each condition went (by its test), the tools called, the ending."""

    went: dict[str, str]
    calls: list[str]
    end: str


def _compile(tmp_path: Path, step: str, *, lead: str = "") -> RoutineDraft:
    procedure = _procedure(
        tmp_path,
        "returns.md",
        (
            "# Returns desk\n\n## Handle a return request\n\n"
            f"{lead}"
            "1. Look up the order with the order number.\n"
            f"2. {step}\n"
            "3. Tell the customer what happens next.\n"
        ),
    )
    return build_draft(procedure, catalog=CATALOG)


def _procedures(tmp_path: Path, name: str, text: str) -> list[Procedure]:
    """The procedures of an SOP file `name` holding `text`, read as `sopc compile` does."""
    sop = tmp_path / name
    sop.write_text(text, encoding="utf-8")
    return read_procedures(sop, root=tmp_path, settings=Settings()).procedures


def _procedure(tmp_path: Path, name: str, text: str) -> Procedure:
    """The first procedure of an SOP file `name` holding `text`."""
    return _procedures(tmp_path, name, text)[0]


def _calls(draft: RoutineDraft) -> list[str]:
    """The tools the draft's steps call, in step order."""
    return [s.tool_call.tool for s in walk_steps(draft.steps) if s.tool_call]


def _ways(draft: RoutineDraft) -> list[Way]:
    steps = {step.id: step for step in walk_steps(draft.steps)}
    out = []
    for path in enumerate_paths(draft).paths:
        went: dict[str, str] = {}
        calls: list[str] = []
        for on in path.steps:
            step = steps[on.step_id]
            if step.condition is not None and on.outcome is not None:
                went[step.condition.test] = on.outcome
            if step.tool_call is not None:
                calls.append(step.tool_call.tool)
        out.append(Way(went, calls, path.end))
    return out


def _side(ways: list[Way], test: str, outcome: str) -> list[Way]:
    found = [way for way in ways if way.went.get(test) == outcome]
    assert found, f"no path where {test!r} is {outcome}: {[w.went for w in ways]}"
    return found


def _tests(draft: RoutineDraft) -> list[str]:
    return [s.condition.test for s in walk_steps(draft.steps) if s.condition is not None]


@pytest.mark.parametrize(
    "step",
    [
        "If the amount is above 500, open a ticket for finance. Otherwise, refund the order "
        "yourself.",
        "When the amount is above 500, open a ticket for finance; otherwise, issue the refund.",
    ],
)
def test_a_threshold_with_otherwise_is_never_inverted(tmp_path: Path, step: str) -> None:
    ways = _ways(_compile(tmp_path, step))
    for way in _side(ways, "the amount is above 500", "yes"):
        assert "open_ticket" in way.calls and "issue_refund" not in way.calls
    for way in _side(ways, "the amount is above 500", "no"):
        assert "issue_refund" in way.calls and "open_ticket" not in way.calls


def test_if_not_is_the_other_side(tmp_path: Path) -> None:
    step = "If the customer has the receipt, accept the return. If not, tell them why."
    ways = _ways(_compile(tmp_path, step))
    assert all(
        "accept_return" in w.calls for w in _side(ways, "the customer has the receipt", "yes")
    )
    assert all(
        "accept_return" not in w.calls for w in _side(ways, "the customer has the receipt", "no")
    )


def test_a_compound_test_with_or_is_one_test_and_its_escalation_ends(tmp_path: Path) -> None:
    step = (
        "If the card was used abroad, or the customer cannot confirm the purchase, stop and "
        "escalate to fraud."
    )
    draft = _compile(tmp_path, step)
    test = "the card was used abroad, or the customer cannot confirm the purchase"
    assert _tests(draft) == [test]
    assert not any(s.text.startswith("Or ") for s in walk_steps(draft.steps))
    ways = _ways(draft)
    assert {w.end for w in _side(ways, test, "yes")} == {"escalate"}
    assert {w.end for w in _side(ways, test, "no")} == {"resolve"}


def test_a_compound_test_with_and_is_one_test(tmp_path: Path) -> None:
    draft = _compile(tmp_path, "If the order is paid, and it has not shipped, cancel the order.")
    test = "the order is paid, and it has not shipped"
    assert _tests(draft) == [test]
    ways = _ways(draft)
    assert all("cancel_order" in w.calls for w in _side(ways, test, "yes"))
    assert all("cancel_order" not in w.calls for w in _side(ways, test, "no"))


@pytest.mark.parametrize(
    "step",
    ["Unless the order has shipped, cancel the order.", "Cancel the order unless it has shipped."],
)
def test_unless_acts_only_when_its_test_fails(tmp_path: Path, step: str) -> None:
    draft = _compile(tmp_path, step)
    (test,) = _tests(draft)
    assert test.startswith("it is not true that") and "shipped" in test
    ways = _ways(draft)
    assert all("cancel_order" in w.calls for w in _side(ways, test, "yes"))
    assert all("cancel_order" not in w.calls for w in _side(ways, test, "no"))


@pytest.mark.parametrize(
    "step",
    [
        "Refund the order, except when it was bought on sale.",
        "Except where the order was bought on sale, refund the order.",
    ],
)
def test_except_when_is_unless_never_the_opposite(tmp_path: Path, step: str) -> None:
    draft = _compile(tmp_path, step)
    (test,) = _tests(draft)
    assert test.startswith("it is not true that") and "bought on sale" in test
    ways = _ways(draft)
    assert all("issue_refund" in w.calls for w in _side(ways, test, "yes"))
    assert all("issue_refund" not in w.calls for w in _side(ways, test, "no"))


@pytest.mark.parametrize(
    ("step", "test"),
    [
        ("Provided that the receipt is shown, accept the return.", "the receipt is shown"),
        ("Accept the return provided that the receipt is shown.", "the receipt is shown"),
        ("As long as the parcel has not shipped, cancel the order.", "the parcel has not shipped"),
    ],
)
def test_provided_that_and_as_long_as_are_conditions(tmp_path: Path, step: str, test: str) -> None:
    ways = _ways(_compile(tmp_path, step))
    assert all(len(w.calls) == 2 for w in _side(ways, test, "yes"))
    assert all(w.calls == ["get_order"] for w in _side(ways, test, "no"))


def test_otherwise_after_a_comma_is_the_other_side(tmp_path: Path) -> None:
    step = "In case the device is under warranty, replace the unit, otherwise book a paid repair."
    ways = _ways(_compile(tmp_path, step))
    assert all(
        w.calls[1:] == ["replace_unit"] for w in _side(ways, "the device is under warranty", "yes")
    )
    assert all(
        w.calls[1:] == ["book_paid_repair"]
        for w in _side(ways, "the device is under warranty", "no")
    )


@pytest.mark.parametrize(
    "step",
    [
        "Only if the customer is a Gold member, issue a voucher.",
        "Issue a voucher only if the customer is a Gold member.",
    ],
)
def test_only_if_both_word_orders(tmp_path: Path, step: str) -> None:
    ways = _ways(_compile(tmp_path, step))
    test = "the customer is a Gold member"
    assert all("issue_voucher" in w.calls for w in _side(ways, test, "yes"))
    assert all("issue_voucher" not in w.calls for w in _side(ways, test, "no"))


@pytest.mark.parametrize(
    "step",
    [
        "Is the device under warranty? Yes: replace the unit. No: book a paid repair.",
        "Is the device under warranty? If yes, replace the unit. If no, book a paid repair.",
    ],
)
def test_a_question_answered_yes_and_no(tmp_path: Path, step: str) -> None:
    draft = _compile(tmp_path, step)
    (test,) = _tests(draft)
    ways = _ways(draft)
    assert all(w.calls[-1:] == ["replace_unit"] for w in _side(ways, test, "yes"))
    assert all(w.calls[-1:] == ["book_paid_repair"] for w in _side(ways, test, "no"))


@pytest.mark.parametrize(
    "step",
    [
        "Is the device under warranty? Yes → replace the unit. No → book a paid repair.",
        "Check the warranty. If yes → replace the unit; if no → book a paid repair.",
        "Check the warranty. If yes: replace the unit; if no: book a paid repair.",
    ],
)
def test_answers_with_arrows_or_after_a_semicolon_are_two_sides(tmp_path: Path, step: str) -> None:
    draft = _compile(tmp_path, step)
    (test,) = _tests(draft)
    ways = _ways(draft)
    assert all(w.calls[-1:] == ["replace_unit"] for w in _side(ways, test, "yes"))
    assert all(w.calls[-1:] == ["book_paid_repair"] for w in _side(ways, test, "no"))
    assert not any(s.text.startswith(("If no", "→")) for s in walk_steps(draft.steps))


@pytest.mark.parametrize(
    "step",
    [
        "If the parcel is lost: refund the order. Otherwise: replace the unit.",
        "If the parcel is lost - refund the order. Otherwise - replace the unit.",
    ],
)
def test_a_colon_or_dash_after_the_test_opens_the_action(tmp_path: Path, step: str) -> None:
    draft = _compile(tmp_path, step)
    assert _tests(draft) == ["the parcel is lost"]
    ways = _ways(draft)
    assert all(w.calls[1:] == ["issue_refund"] for w in _side(ways, "the parcel is lost", "yes"))
    assert all(w.calls[1:] == ["replace_unit"] for w in _side(ways, "the parcel is lost", "no"))


def test_two_actions_each_with_its_own_test_are_two_conditions(tmp_path: Path) -> None:
    step = "Refund the order if the parcel is lost, or replace the unit if it arrived damaged."
    draft = _compile(tmp_path, step)
    assert _tests(draft) == ["the parcel is lost", "it arrived damaged"]
    ways = _ways(draft)
    # whether or not the parcel is lost, the damage is checked; each action only on its test
    for way in ways:
        assert "it arrived damaged" in way.went
        assert ("issue_refund" in way.calls) == (way.went["the parcel is lost"] == "yes")
        assert ("replace_unit" in way.calls) == (way.went["it arrived damaged"] == "yes")


def test_a_second_if_inside_a_branch_is_tested_inside_it(tmp_path: Path) -> None:
    step = (
        "If the parcel is late, refund the order if the customer asks. Otherwise, accept the "
        "return."
    )
    draft = _compile(tmp_path, step)
    assert _tests(draft) == ["the parcel is late", "the customer asks"]
    ways = _ways(draft)
    late = _side(ways, "the parcel is late", "yes")
    asks = [w for w in late if w.went.get("the customer asks") == "yes"]
    silent = [w for w in late if w.went.get("the customer asks") == "no"]
    assert asks and all("issue_refund" in w.calls for w in asks)
    # late, but the customer does not ask: no refund, and not the otherwise of "late" either
    assert silent and all(w.calls == ["get_order"] for w in silent)
    for way in _side(ways, "the parcel is late", "no"):
        assert "accept_return" in way.calls and "issue_refund" not in way.calls


def test_a_condition_whose_sides_meet_is_no_condition_and_is_flagged(tmp_path: Path) -> None:
    draft = _compile(
        tmp_path, "If the form is complete, go to step 3. Otherwise, continue with step 3."
    )
    assert _tests(draft) == []
    checked = [s for s in walk_steps(draft.steps) if "form is complete" in s.text]
    assert [s.kind for s in checked] == ["action"]
    assert any("both sides" in q and "form is complete" in q for q in draft.open_questions)
    assert not any("step None" in q for q in draft.open_questions)


def test_a_lead_line_naming_the_request_is_the_trigger_not_a_step(tmp_path: Path) -> None:
    draft = _compile(
        tmp_path, "Accept the return.", lead="When a customer asks about a return:\n\n"
    )
    assert draft.trigger == "Use when a customer asks about a return."
    assert _tests(draft) == []
    assert draft.steps[0].tool_call is not None and draft.steps[0].tool_call.tool == "get_order"
    # a lead line that tests the case is kept as a step, and flagged: nothing says what to
    # do when it does not hold
    draft = _compile(
        tmp_path, "Accept the return.", lead="If the customer is a business customer:\n\n"
    )
    assert [s.kind for s in draft.steps if "business customer" in s.text] == ["action"]
    assert any("both sides" in q for q in draft.open_questions)


def _options(tmp_path: Path, first: str, second: str) -> RoutineDraft:
    return _compile(tmp_path, f"Offer the customer two options:\n   - {first}\n   - {second}")


def test_options_with_their_own_conditions_run_one_at_a_time(tmp_path: Path) -> None:
    draft = _options(
        tmp_path,
        "Option A: if the customer wants their money back, refund the order.",
        "Option B: if the customer prefers credit, issue a voucher.",
    )
    assert _tests(draft) == ["the customer wants their money back", "the customer prefers credit"]
    ways = _ways(draft)
    for way in ways:  # never both
        assert not {"issue_refund", "issue_voucher"} <= set(way.calls)
    assert all(
        "issue_refund" in w.calls for w in _side(ways, "the customer wants their money back", "yes")
    )
    assert all(
        "issue_voucher" in w.calls for w in _side(ways, "the customer prefers credit", "yes")
    )


def test_options_without_conditions_are_the_customers_choice(tmp_path: Path) -> None:
    draft = _options(
        tmp_path,
        "**Option A - refund:** refund the order to the original payment method.",
        "**Option B - voucher:** issue a voucher.",
    )
    a, b = "the customer chooses option A (refund)", "the customer chooses option B (voucher)"
    assert _tests(draft) == [a, b]
    ways = _ways(draft)
    assert all(w.calls[1:] == ["issue_refund"] for w in _side(ways, a, "yes"))
    assert all(w.calls[1:] == ["issue_voucher"] for w in _side(ways, b, "yes"))
    # each step cites the option as the SOP writes it, not the reading of it
    quotes = {s.source.quote for s in walk_steps(draft.steps) if s.source is not None}
    assert "Option A - refund: refund the order to the original payment method." in quotes


CORPUS = [
    "If the amount is above 500, open a ticket for finance. Otherwise, refund the order.",
    "If the form is complete, go to step 3. Otherwise, continue with step 3.",
    "If the form is complete, continue. Otherwise, continue.",
    "Unless the order has shipped, cancel the order.",
    "Refund the order only if the receipt is shown.",
    "Is it broken? Yes: replace the unit. No: continue.",
    "Is it broken? Yes: continue. No: continue.",
    "If it is broken, continue; otherwise continue as normal.",
    "If the parcel is late, refund the order if the customer asks.",
]


@pytest.mark.parametrize("step", CORPUS)
def test_every_condition_has_two_different_targets(tmp_path: Path, step: str) -> None:
    draft = _compile(tmp_path, step)
    steps = list(walk_steps(draft.steps))
    following = {
        s.id: (steps[n + 1].id if n + 1 < len(steps) else None) for n, s in enumerate(steps)
    }
    for s in steps:
        if s.condition is not None:
            other = s.condition.else_step or following[s.id]
            assert s.condition.then_step != other, (step, s)


DECISION_TABLE = """Decide what to do from the table:

| Reason | Days since delivery | Action |
|---|---|---|
| Damaged | up to 30 | Replace the unit |
| Damaged | over 30 | Book a paid repair |
| Changed mind | any | Accept the return |
"""

STATUS_TABLE = """Check the order status:

| Status | What to do |
|---|---|
| Not shipped | Cancel the order |
| Lost | Refund the order |
| Any other status | Issue a voucher |
"""


def test_a_decision_table_is_one_case_per_row_and_only_one_runs(tmp_path: Path) -> None:
    draft = _compile(tmp_path, DECISION_TABLE)
    assert _tests(draft) == [
        "the reason is damaged and the days since delivery is up to 30",
        "the reason is damaged and the days since delivery is over 30",
        "the reason is changed mind",  # an "any" cell tests nothing
    ]
    writes = {"replace_unit", "book_paid_repair", "accept_return"}
    for way in _ways(draft):
        assert len(writes & set(way.calls)) <= 1, way
    first = _side(_ways(draft), _tests(draft)[0], "yes")
    assert all(w.calls[1:] == ["replace_unit"] for w in first)
    cited = {s.source.quote for s in walk_steps(draft.steps) if s.source is not None}
    assert "Damaged up to 30 Replace the unit" in cited  # the row's own words


def test_a_decision_tables_inputs_may_be_questions_either_or_one_value_or_another(
    tmp_path: Path,
) -> None:
    # "Password given | Police already requested? | Outcome" with "Either" and "Wrong
    # password, or no password": a decision table still, never dropped
    draft = _compile(
        tmp_path,
        "Decide from the table:\n\n"
        "| Box state | Refund asked? | Outcome |\n|---|---|---|\n"
        "| Sealed | Yes | Refund the order |\n"
        "| Sealed | No | Accept the return |\n"
        "| Opened, or damaged | Either | Issue a voucher |\n",
    )
    assert _tests(draft) == [
        "the box state is sealed and the refund asked is yes",
        "the box state is sealed and the refund asked is no",
        "the box state is opened or damaged",  # "Either" tests nothing
    ]
    writes = {"issue_refund", "accept_return", "issue_voucher"}
    for way in _ways(draft):
        assert len(writes & set(way.calls)) <= 1, way
    damaged = _side(_ways(draft), "the box state is opened or damaged", "yes")
    assert damaged and all(w.calls[1:] == ["issue_voucher"] for w in damaged)
    cited = {s.source.quote for s in walk_steps(draft.steps) if s.source is not None}
    assert "Opened, or damaged Either Issue a voucher" in cited  # the row's own words


def test_a_catch_all_row_is_the_last_otherwise_and_no_case_falls_into_it(
    tmp_path: Path,
) -> None:
    draft = _compile(tmp_path, STATUS_TABLE)
    assert _tests(draft) == ["the status is not shipped", "the status is lost"]
    ways = _ways(draft)
    for way in ways:
        writes = [c for c in way.calls if c != "get_order"]
        assert len(writes) == 1, way  # exactly one row's action on every path
    not_shipped = _side(ways, "the status is not shipped", "yes")
    assert all(w.calls[1:] == ["cancel_order"] for w in not_shipped)
    other = [w for w in ways if set(w.went.values()) == {"no"}]
    assert other and all(w.calls[1:] == ["issue_voucher"] for w in other)


def test_lettered_lines_in_a_markdown_item_are_its_cases(tmp_path: Path) -> None:
    step = (
        "Check the order status:\n"
        "   a. If it has not shipped, cancel the order.\n"
        "   b. If it was lost, refund the order.\n"
        "   c. Otherwise, issue a voucher."
    )
    draft = _compile(tmp_path, step)
    assert _tests(draft) == ["it has not shipped", "it was lost"]
    assert not any(s.text.endswith((" a", " b")) for s in walk_steps(draft.steps))
    for way in _ways(draft):
        writes = [c for c in way.calls if c != "get_order"]
        assert len(writes) == 1, way


def test_a_heading_that_orders_a_task_is_the_trigger_said_plainly(tmp_path: Path) -> None:
    draft = _compile(tmp_path, "Accept the return.")
    assert draft.trigger == "Use when a customer asks to handle a return request."


def test_a_rule_on_the_action_a_tool_is_named_for_governs_it(tmp_path: Path) -> None:
    lead = (
        "Refunds above 200 USD require approval from a team lead. Never cancel an order that "
        "has shipped.\n\n"
    )
    draft = _compile(tmp_path, "Refund the order.", lead=lead)
    governs = {rule.text: rule.governs for rule in draft.rules}
    assert governs["Refunds above 200 USD require approval from a team lead."] == ["issue_refund"]
    assert governs["Never cancel an order that has shipped."] == ["cancel_order"]
    # a prohibition of a tool no step calls is kept as a rule, and asks nothing
    assert not any("cancel_order" in q for q in draft.open_questions)


def test_a_branch_that_forbids_the_write_ends_after_what_it_says_instead(tmp_path: Path) -> None:
    step = (
        "If the parcel is marked as a gift, tell the customer why; do not refund the order. "
        "Offer a voucher for the next order."
    )
    draft = _compile(tmp_path, f"{step}\n3. Refund the order.")
    ways = _ways(draft)
    for way in _side(ways, "the parcel is marked as a gift", "yes"):
        assert "issue_refund" not in way.calls  # never on into the refund of step 3
    assert all(
        "issue_refund" in w.calls for w in _side(ways, "the parcel is marked as a gift", "no")
    )
    said = [s.text for s in walk_steps(draft.steps)]
    assert any(t.startswith("Offer a voucher") for t in said)  # the item's last sentence kept


@pytest.mark.parametrize(
    ("step", "team"),
    [
        ("If the box was opened, send the case to Returns Review.", "Returns Review"),
        ("If the box was opened, refer the order to the Fraud Office.", "Fraud Office"),
    ],
)
def test_sending_the_case_to_a_named_team_escalates_and_ends(
    tmp_path: Path, step: str, team: str
) -> None:
    draft = _compile(tmp_path, step)
    ends = [s for s in walk_steps(draft.steps) if s.kind == "escalate"]
    assert [s.target for s in ends] == [team]
    assert {w.end for w in _side(_ways(draft), "the box was opened", "yes")} == {"escalate"}
    # "send ... to the customer" names no team
    draft = _compile(tmp_path, "Send the label to the customer.")
    assert not any(s.kind == "escalate" for s in walk_steps(draft.steps))


def test_labelled_cases_with_a_dash_are_cases_of_their_step(tmp_path: Path) -> None:
    step = (
        "Check the order flags:\n"
        "   a. **Fraud flag set** — do not refund; send the case to Fraud Review.\n"
        "   b. **VIP flag set** — issue a voucher.\n"
    )
    draft = _compile(tmp_path, f"{step}\n3. Refund the order.")
    assert _tests(draft)[:2] == ["fraud flag set", "VIP flag set"]
    ways = _ways(draft)
    assert {w.end for w in _side(ways, "fraud flag set", "yes")} == {"escalate"}
    assert all("issue_refund" not in w.calls for w in _side(ways, "fraud flag set", "yes"))


@pytest.mark.parametrize("arrow", ["->", "=>", "\u2192"])
def test_labelled_cases_with_an_arrow_are_cases_of_their_step(tmp_path: Path, arrow: str) -> None:
    step = (
        "For each flagged order:\n"
        f"   a. First complaint this year {arrow} issue a voucher.\n"
        f"   b. Second complaint {arrow} refund the order.\n"
        f"   c. Three complaints or more {arrow} send the case to Fraud Review.\n"
    )
    draft = _compile(tmp_path, step)
    assert _tests(draft) == [
        "first complaint this year",
        "second complaint",
        "three complaints or more",
    ]
    ways = _ways(draft)
    for way in _side(ways, "first complaint this year", "yes"):
        assert "issue_voucher" in way.calls and "issue_refund" not in way.calls
    for way in _side(ways, "second complaint", "yes"):
        assert "issue_refund" in way.calls and "issue_voucher" not in way.calls
    assert {w.end for w in _side(ways, "three complaints or more", "yes")} == {"escalate"}
    assert all(
        "issue_refund" not in w.calls and "issue_voucher" not in w.calls
        for w in _side(ways, "three complaints or more", "no")
    )


def test_a_prohibition_then_what_to_do_is_only_for_its_case(tmp_path: Path) -> None:
    lead = (
        "- Gift orders are never refunded to the buyer; the credit goes to the recipient, so "
        "explain that to the customer and close the contact.\n\n"
    )
    draft = _compile(tmp_path, "Refund the order.", lead=lead)
    ways = _ways(draft)
    assert any("issue_refund" in w.calls for w in ways)  # the closing is not for every case


def test_an_escalation_then_what_not_to_do_still_ends(tmp_path: Path) -> None:
    step = (
        "If the order was paid with a gift card, send the case to Payments Review; do not "
        "refund it yourself.\n3. Refund the order."
    )
    ways = _ways(_compile(tmp_path, step))
    gift = _side(ways, "the order was paid with a gift card", "yes")
    assert {w.end for w in gift} == {"escalate"}
    assert all("issue_refund" not in w.calls for w in gift)


def test_what_someone_may_not_do_is_never_a_call(tmp_path: Path) -> None:
    draft = _compile(tmp_path, "Accept the return.\n\nTrainee agents do not issue vouchers.")
    assert all(
        s.tool_call is None or s.tool_call.tool != "issue_voucher" for s in walk_steps(draft.steps)
    )


def test_do_not_with_the_procedures_own_verb_ends_the_branch(tmp_path: Path) -> None:
    procedure = _procedure(
        tmp_path,
        "returns.md",
        (
            "# Returns desk\n\n## Cancelling an order\n\n"
            "1. Look up the order with the order number.\n"
            "2. If the parcel has left the warehouse, do not cancel. Tell the customer to refuse "
            "the delivery.\n"
            "3. Cancel the order.\n"
        ),
    )
    ways = _ways(build_draft(procedure, catalog=CATALOG))
    left = _side(ways, "the parcel has left the warehouse", "yes")
    assert all("cancel_order" not in w.calls for w in left)
    assert all(
        "cancel_order" in w.calls for w in _side(ways, "the parcel has left the warehouse", "no")
    )


def test_do_not_where_is_a_condition_and_its_instead_ends_it(tmp_path: Path) -> None:
    step = (
        "Do not cancel an order where the parcel has left the warehouse. Send the case to "
        "Returns Review instead.\n3. Cancel the order."
    )
    ways = _ways(_compile(tmp_path, step))
    left = _side(ways, "the parcel has left the warehouse", "yes")
    assert {w.end for w in left} == {"escalate"}
    assert all("cancel_order" not in w.calls for w in left)
    assert all(
        "cancel_order" in w.calls for w in _side(ways, "the parcel has left the warehouse", "no")
    )


def test_if_not_after_asking_whether_answers_the_question(tmp_path: Path) -> None:
    step = (
        "If the order was a gift, ask whether the customer still wants a refund; if not, "
        "issue a voucher."
    )
    draft = _compile(tmp_path, step)
    ways = _ways(draft)
    gift = _side(ways, "the order was a gift", "yes")
    said_no = [w for w in gift if any(v == "yes" and "answered no" in t for t, v in w.went.items())]
    assert said_no and all("issue_voucher" in w.calls for w in said_no)
    # not a gift: no question, no voucher
    assert all("issue_voucher" not in w.calls for w in _side(ways, "the order was a gift", "no"))


def test_a_use_this_when_line_is_the_trigger(tmp_path: Path) -> None:
    draft = _compile(
        tmp_path, "Accept the return.", lead="Use this when a customer phones about a return.\n\n"
    )
    assert draft.trigger == "Use when a customer phones about a return."
    assert _tests(draft) == []


def test_orders_after_a_refusal_in_its_item_are_what_to_do_instead(tmp_path: Path) -> None:
    step = (
        "Check the stock. If the item is discontinued, do not accept the return. Issue a "
        "voucher for the order.\n3. Accept the return."
    )
    ways = _ways(_compile(tmp_path, step))
    gone = _side(ways, "the item is discontinued", "yes")
    assert all("issue_voucher" in w.calls and "accept_return" not in w.calls for w in gone)
    kept = _side(ways, "the item is discontinued", "no")
    assert all("issue_voucher" not in w.calls and "accept_return" in w.calls for w in kept)


def test_labelled_cases_with_a_colon_are_cases_of_their_step(tmp_path: Path) -> None:
    step = (
        "For each failed refund:\n"
        "   - first failure: issue a voucher.\n"
        "   - second failure: open a ticket for finance.\n"
    )
    draft = _compile(tmp_path, step)
    assert _tests(draft) == ["first failure", "second failure"]
    for way in _ways(draft):
        assert not {"issue_voucher", "open_ticket"} <= set(way.calls)
    # a note is no case
    draft = _compile(tmp_path, "Accept the return:\n   - Note: keep the box.\n   - Tip: smile.\n")
    assert _tests(draft) == []


@pytest.mark.parametrize(
    ("label", "test"),
    [
        ("Return arrives opened", "return arrives opened"),
        ("Order is over £50", "order is over £50"),
        ("Record expired before the return date", "record expired before the return date"),
    ],
)
def test_a_case_label_whose_first_word_is_also_a_verb_is_still_a_case(
    tmp_path: Path, label: str, test: str
) -> None:
    # "Record expires before the appointment date: text the owner": "record" is the subject,
    # the verb of state after it says so; never an order "record" with a proposed tool
    draft = _sop(
        tmp_path,
        f"1. Look up the order with the order number.\n2. {label}: issue a voucher.\n"
        "3. Tell the customer what happens next.\n",
    )
    assert _tests(draft) == [test]
    ways = _ways(draft)
    assert all("issue_voucher" in w.calls for w in _side(ways, test, "yes"))
    assert all("issue_voucher" not in w.calls for w in _side(ways, test, "no"))
    assert draft.tools_proposed == []
    # an order that starts with the same verb stays an order
    plain = _sop(tmp_path, "1. Return the item: issue a voucher.\n")
    assert _tests(plain) == []


def test_referring_to_a_team_as_well_goes_on(tmp_path: Path) -> None:
    draft = _compile(tmp_path, "Refer the order to the Fraud Office as well.\n3. Refund the order.")
    assert any("issue_refund" in w.calls for w in _ways(draft))


def test_a_step_done_another_way_instead_ends_there(tmp_path: Path) -> None:
    procedure = _procedure(
        tmp_path,
        "returns.md",
        (
            "# Returns desk\n\n## Refunding an order\n\n"
            "1. Look up the order with the order number.\n"
            "2. If the customer prefers credit, issue a voucher instead.\n"
            "3. Refund the order.\n"
        ),
    )
    ways = _ways(build_draft(procedure, catalog=CATALOG))
    credit = _side(ways, "the customer prefers credit", "yes")
    assert all("issue_voucher" in w.calls and "issue_refund" not in w.calls for w in credit)
    assert all("issue_refund" in w.calls for w in _side(ways, "the customer prefers credit", "no"))


def test_open_a_case_and_wait_ends_the_branch(tmp_path: Path) -> None:
    step = (
        "If the amount is above 500, a refund needs a finance review first — open a ticket for "
        "finance and wait.\n3. Refund the order."
    )
    ways = _ways(_compile(tmp_path, step))
    above = _side(ways, "the amount is above 500", "yes")
    assert all("open_ticket" in w.calls and "issue_refund" not in w.calls for w in above)


def test_a_test_after_the_last_of_several_orders_covers_that_order_only(tmp_path: Path) -> None:
    step = "Accept the return, issue a voucher if the box is damaged, and refund the order."
    ways = _ways(_compile(tmp_path, step))
    assert all({"accept_return", "issue_refund"} <= set(w.calls) for w in ways)
    damaged = _side(ways, "the box is damaged", "yes")
    assert all("issue_voucher" in w.calls for w in damaged)
    assert all("issue_voucher" not in w.calls for w in _side(ways, "the box is damaged", "no"))


def _sop(tmp_path: Path, body: str, *, catalog: ToolCatalog = CATALOG) -> RoutineDraft:
    text = f"# Returns desk\n\n## Handle a return request\n\n{body}"
    return build_draft(_procedure(tmp_path, "returns.md", text), catalog=catalog)


def _catalog(*tools: Tool, aliases: dict[str, list[str]] | None = None) -> ToolCatalog:
    """The desk's catalog with `tools` added (or put in place of the tool of that name) and
    `aliases` given to the tools they name."""
    aliases = aliases or {}
    named = {tool.name for tool in tools}
    kept = [
        t.model_copy(update={"aliases": aliases[t.name]}) if t.name in aliases else t
        for t in CATALOG.tools
        if t.name not in named
    ]
    return ToolCatalog(tools=[*kept, *tools])


def test_numbered_cases_closed_by_otherwise_run_one_at_a_time(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "**When to use it:** the customer says a parcel arrived damaged.\n\n"
        "1. Look up the order with the order number.\n"
        "2. If the box is crushed, refund the order.\n"
        "3. If the seal is broken, replace the unit.\n"
        "4. Otherwise, do not refund the order. Issue a voucher and tell the customer why.\n"
        "5. Tell the customer what happens next.\n",
    )
    assert draft.trigger == "Use when the customer says a parcel arrived damaged."
    ways = _ways(draft)
    writes = {"issue_refund", "replace_unit", "issue_voucher"}
    for way in ways:
        assert len(writes & set(way.calls)) == 1, way  # one case, never a case then the otherwise
    crushed = _side(ways, "the box is crushed", "yes")
    assert all(w.calls[1:] == ["issue_refund"] for w in crushed)
    neither = [w for w in ways if set(w.went.values()) == {"no"}]
    assert neither and all(w.calls[1:] == ["issue_voucher"] for w in neither)


def test_never_for_a_case_then_an_escalation_is_only_for_that_case(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Never refund an order for a customer who has two refunds open — send it to the "
        "Fraud Office.\n"
        "3. Refund the order.\n",
    )
    ways = _ways(draft)
    assert {w.end for w in ways} == {"escalate", "resolve"}  # not every path escalates
    assert any("issue_refund" in w.calls and w.end == "resolve" for w in ways)


def test_telling_the_customer_after_an_escalation_in_a_branch_still_ends_it(
    tmp_path: Path,
) -> None:
    step = (
        "If the box was opened, do not refund the order. Refer the order to the Fraud Office "
        "and tell the customer we will call them.\n3. Refund the order."
    )
    ways = _ways(_compile(tmp_path, step))
    opened = _side(ways, "the box was opened", "yes")
    assert {w.end for w in opened} == {"escalate"}
    assert all("issue_refund" not in w.calls for w in opened)
    assert all("issue_refund" in w.calls for w in _side(ways, "the box was opened", "no"))


def test_a_refusal_written_after_the_call_it_refuses_is_tested_first(tmp_path: Path) -> None:
    step = (
        "Check the return and accept the return:\n"
        "   - For orders bought on sale, do not accept the return: issue a voucher instead.\n"
    )
    draft = _compile(tmp_path, step)
    ways = _ways(draft)
    sale = _side(ways, "it is for orders bought on sale", "yes")
    assert all("accept_return" not in w.calls and "issue_voucher" in w.calls for w in sale)
    other = _side(ways, "it is for orders bought on sale", "no")
    assert all("accept_return" in w.calls and "issue_voucher" not in w.calls for w in other)
    # the voucher, now tested before the accept, takes the order number where the accept did
    (voucher,) = [
        s
        for s in walk_steps(draft.steps)
        if s.tool_call and s.kind == "tool_call" and s.tool_call.tool == "issue_voucher"
    ]
    assert "in step 1" in (voucher.tool_call.arguments[0].from_context or "")


_TEAMS = ToolCatalog(
    tools=[
        *CATALOG.tools,
        Tool.model_validate(
            {
                "name": "assign_to_team",
                "description": "Assign a file or request to a specialist team.",
                "access": "write",
                "parameters": {
                    "type": "object",
                    "properties": {"team": {"type": "string"}, "order_id": {"type": "string"}},
                    "required": ["team", "order_id"],
                },
            }
        ),
    ]
)
# a transfer tool told which desk: "Warm-transfer the caller to another desk."
_DESKS = _catalog(
    Tool.model_validate(
        {
            "name": "transfer_call",
            "description": "Warm-transfer the caller to another desk.",
            "access": "write",
            "parameters": {
                "type": "object",
                "properties": {
                    "desk": {"type": "string", "enum": ["billing", "quality_control"]},
                    "note": {"type": "string"},
                },
                "required": ["desk"],
            },
        }
    )
)


@pytest.mark.parametrize(
    ("catalog", "tool", "team"),
    [
        (_TEAMS, "assign_to_team", ("team", "Quality Control")),
        (_DESKS, "transfer_call", ("desk", "quality_control")),
    ],
)
@pytest.mark.parametrize(
    "said", ["refer the order to Quality Control", "raise a job with Quality Control"]
)
def test_the_catalogs_one_team_tool_is_how_a_case_goes_to_a_named_team(
    tmp_path: Path, catalog: ToolCatalog, tool: str, team: tuple[str, str], said: str
) -> None:
    text = (
        "# Returns desk\n\n## Handle a return request\n\n"
        "1. Look up the order with the order number.\n"
        f"2. If the box was opened, {said}.\n"
        "3. Refund the order.\n"
    )
    procedure = _procedure(tmp_path, "returns.md", text)
    draft = build_draft(procedure, catalog=catalog)
    (call,) = [s for s in walk_steps(draft.steps) if s.tool_call and s.tool_call.tool == tool]
    assert call.tool_call is not None
    assert team in {(a.name, a.value) for a in call.tool_call.arguments}
    opened = _side(_ways(draft), "the box was opened", "yes")
    assert {w.end for w in opened} == {"escalate"}
    assert all("issue_refund" not in w.calls for w in opened)
    issues = check_draft(draft, procedure=procedure, catalog=catalog, settings=Settings())
    assert not [i for i in issues if i.code == "unsupported_write"]
    # without a hand-over in the SOP the team tool is not asked for: a draft that calls it is
    # an answer adding an action
    plain = _procedure(tmp_path, "returns.md", text.replace(said, "refund it"))
    issues = check_draft(draft, procedure=plain, catalog=catalog, settings=Settings())
    assert [i.code for i in issues if i.code == "unsupported_write"] == ["unsupported_write"]


def test_a_value_named_from_a_skippable_step_is_traced_to_a_step_every_path_passes() -> None:
    def call(step_id: str, tool: str, said: str) -> Step:
        arg = ToolArgument(name="order_id", from_context=said)
        return Step(
            id=step_id,
            kind="tool_call",
            text="Do it.",
            tool_call=ToolCall(tool=tool, arguments=[arg]),
        )

    draft = RoutineDraft(
        title="T",
        trigger="When.",
        steps=[
            call("1", "get_order", "the order ID from the conversation"),
            Step(
                id="2",
                kind="condition",
                text="Check.",
                condition=Condition(test="the box was opened", then_step="2a", else_step="3"),
            ),
            call("2a", "cancel_order", "the order ID returned by `get_order` in step 1"),
            Step(id="2b", kind="escalate", text="Escalate.", target="Fraud Review"),
            call("3", "issue_refund", "the same order ID as in step 2a"),
            call("4", "issue_voucher", "the same order ID as in step 3"),
            Step(id="5", kind="resolve", text="Resolve."),
        ],
    )
    said = {
        s.id: s.tool_call.arguments[0].from_context
        for s in walk_steps(unpassed_refs(draft).steps)
        if s.tool_call
    }
    assert said["3"] == "the order ID returned by `get_order` in step 1"  # not 2a: it may not run
    assert said["4"] == "the same order ID as in step 3"  # step 3 runs on every path to 4
    assert said["2a"] == "the order ID returned by `get_order` in step 1"


_ALIASED = ToolCatalog(
    tools=[
        *CATALOG.tools,
        Tool.model_validate(
            {
                "name": "apply_credit",
                "description": "Apply a goodwill credit to an order.",
                "access": "write",
                "aliases": ["goodwill credit"],
                "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
            }
        ),
        Tool.model_validate(
            {
                "name": "send_letter",
                "description": "Send the customer a template letter.",
                "access": "write",
                "aliases": ["letter"],
                "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
            }
        ),
    ]
)


def test_a_statement_about_an_aliased_thing_calls_nothing_and_an_order_calls_it(
    tmp_path: Path,
) -> None:
    procedure = _procedure(
        tmp_path,
        "returns.md",
        (
            "# Returns desk\n\n## Goodwill credits\n\n"
            "A goodwill credit is a one-off amount for a late parcel.\n\n"
            "1. Look up the order with the order number.\n"
            "2. Only one goodwill credit per order in any year.\n"
            "3. Apply the goodwill credit.\n"
            "4. Send the customer the goodwill credit letter.\n"
        ),
    )
    draft = build_draft(procedure, catalog=_ALIASED)
    calls = [(s.text.split()[0], s.tool_call.tool) for s in walk_steps(draft.steps) if s.tool_call]
    # the statements call nothing; "send ... letter" is the letter, by its verb
    assert calls == [("Look", "get_order"), ("Apply", "apply_credit"), ("Send", "send_letter")]


def test_a_refusal_in_a_later_step_does_not_move_an_earlier_steps_call(tmp_path: Path) -> None:
    step = (
        "Check the return and accept the return.\n"
        "3. Work out the amount:\n"
        "   - If the amount is above 500, open a ticket for finance. Do not accept anything "
        "yourself.\n"
        "   - Otherwise issue a voucher.\n"
    )
    ways = _ways(_compile(tmp_path, step))
    assert all(w.calls[:2] == ["get_order", "accept_return"] for w in ways)  # as the SOP orders
    above = _side(ways, "the amount is above 500", "yes")
    assert all("open_ticket" in w.calls and "issue_voucher" not in w.calls for w in above)


_SITUATIONS = (
    "\n\n| Situation | What to do |\n|---|---|\n"
    "| The box is crushed | Refund the order |\n"
    "| The seal is broken | Replace the unit |\n"
    "| Anything else | No action; issue a voucher |\n\n"
)


def test_a_table_of_situations_a_step_leads_is_that_steps_cases(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        f"2. Decide what to do:{_SITUATIONS}"
        "3. Tell the customer what happens next.\n",
    )
    assert not draft.edge_cases
    ways = _ways(draft)
    writes = {"issue_refund", "replace_unit", "issue_voucher"}
    assert all(len(writes & set(w.calls)) == 1 for w in ways)  # one situation at a time
    assert all("issue_refund" in w.calls for w in _side(ways, "the box is crushed", "yes"))
    neither = [w for w in ways if set(w.went.values()) == {"no"}]
    assert neither and all("issue_voucher" in w.calls for w in neither)


def test_a_table_of_situations_no_step_leads_stays_edge_cases(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Tell the customer what happens next.\n"
        f"{_SITUATIONS}",
    )
    assert [case.when for case in draft.edge_cases][:1] == ["the box is crushed"]
    assert not _tests(draft)


def test_a_back_office_procedure_never_asks_anyone_for_anything_else(tmp_path: Path) -> None:
    def closing(title: str) -> list[str]:
        sop = tmp_path / "returns.md"
        sop.write_text(
            f"# Returns desk\n\n## {title}\n\n"
            "1. Look up the order with the order number.\n"
            "2. If the customer has two refunds open, open a ticket for finance.\n",
            encoding="utf-8",
        )
        procedure = read_procedures(sop, root=tmp_path, settings=Settings()).procedures[0]
        steps = build_draft(procedure, catalog=CATALOG).steps
        return [s.text for s in walk_steps(steps) if s.kind == "ask"]

    assert closing("Weekly refund review (back office)") == []
    # "Done by the early-shift lead every morning. No passenger is involved."
    assert closing("Weekly refund review\n\nDone every Monday. No customer is involved.") == []
    assert closing("Handling a refund request") == [
        "Ask whether there is anything else you can help with."
    ]


def test_a_systems_name_after_another_verb_is_where_not_what(tmp_path: Path) -> None:
    catalog = ToolCatalog(
        tools=[
            *CATALOG.tools,
            Tool(name="find_account", description="Find an account.", aliases=["Aquabase"]),
        ]
    )
    procedure = _procedure(
        tmp_path,
        "returns.md",
        (
            "# Returns desk\n\n## Handle a return request\n\n"
            "1. Look the customer up in Aquabase.\n2. Refund the order in Aquabase.\n"
        ),
    )
    draft = build_draft(procedure, catalog=catalog)
    calls = _calls(draft)
    assert calls == ["find_account", "issue_refund"]


def test_a_no_answer_that_refuses_the_write_ends_there(tmp_path: Path) -> None:
    step = (
        "Is the box unopened? Yes: carry on with step 3. No: do not accept the return; tell "
        "the customer to contact the seller.\n3. Accept the return."
    )
    ways = _ways(_compile(tmp_path, step))
    (test,) = {t for w in ways for t in w.went}
    assert all("accept_return" not in w.calls for w in _side(ways, test, "no"))
    assert all("accept_return" in w.calls for w in _side(ways, test, "yes"))


@pytest.mark.parametrize(
    "statement",
    [
        "Refunds are made to the original card within 5 days.",
        "Returnsdesk holds a refund budget for every store.",
        "A refund is a credit to the card the customer paid with.",
        "Customers can book a paid repair for a device in the app.",
        "Shoppers often cancel the order after the voucher email.",
        "Tip: buyers usually accept the return once the label is printed.",
    ],
)
def test_a_statement_that_names_a_tool_calls_nothing(tmp_path: Path, statement: str) -> None:
    draft = _compile(tmp_path, statement)
    called = {s.tool_call.tool for s in walk_steps(draft.steps) if s.tool_call}
    assert called == {"get_order"}, called
    # a case and its order is no statement
    draft = _compile(tmp_path, "The label shows a customs hold - open a ticket for finance.")
    assert "open_ticket" in {s.tool_call.tool for s in walk_steps(draft.steps) if s.tool_call}


def test_items_labelled_with_when_are_cases_one_of_which_holds(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n\n"
        "- Before dispatch: cancel the order.\n"
        "- After dispatch and before delivery: escalate to the Courier Desk.\n"
        "- More than 30 days after delivery: issue a voucher.\n",
    )
    ways = _ways(draft)
    courier = "it is after dispatch and before delivery"
    assert {w.end for w in _side(ways, courier, "yes")} == {"escalate"}
    assert all("cancel_order" in w.calls for w in _side(ways, "it is before dispatch", "yes"))
    # the escalation of one case never ends the others
    later = _side(ways, "it is more than 30 days after delivery", "yes")
    assert all("issue_voucher" in w.calls and w.end != "escalate" for w in later)


def test_a_failed_check_with_a_prohibition_ends_its_branch(tmp_path: Path) -> None:
    step = (
        "Confirm the order number with the customer. If the details do not match, do not "
        "discuss the order.\n3. Refund the order."
    )
    ways = _ways(_compile(tmp_path, step))
    assert all(
        "issue_refund" not in w.calls for w in _side(ways, "the details do not match", "yes")
    )
    assert all("issue_refund" in w.calls for w in _side(ways, "the details do not match", "no"))


def test_sending_a_request_to_a_named_party_with_its_tool_is_that_call(tmp_path: Path) -> None:
    def ways(step: str) -> list[Way]:
        sop = tmp_path / "returns.md"
        sop.write_text(
            "# Returns desk\n\n## Handle a return request\n\n"
            f"1. Look up the order with the order number.\n2. {step}\n",
            encoding="utf-8",
        )
        procedure = read_procedures(sop, root=tmp_path, settings=Settings()).procedures[0]
        return _ways(build_draft(procedure, catalog=_ALIASED))

    # the goodwill credit's tool sends it to the Card Office; nobody takes the case over
    sent = ways("Send the goodwill credit to the Card Office.")
    assert {w.end for w in sent} == {"resolve"} and all("apply_credit" in w.calls for w in sent)
    # without a tool named, the named team takes the case over
    assert {w.end for w in ways("Send the refund request to the Card Office.")} == {"escalate"}


def test_lettered_items_under_a_heading_are_steps_side_by_side(tmp_path: Path) -> None:
    procedure = _procedure(
        tmp_path,
        "desk.txt",
        (
            "RETURNS DESK\n\nDocument control\n  Version:   3.1\n  Owner:     Returns Manager\n"
            "  Classification: Internal - do not share with customers\n\n"
            "1. HANDLING A RETURN\n\n(a) Look up the order with the order number.\n"
            "(b) Accept the return.\n(c) Refund the order.\n"
        ),
    )
    draft = build_draft(procedure, catalog=CATALOG)
    assert [s.id for s in draft.steps if s.tool_call] == ["1", "2", "3"]
    assert not any("Document control" in s.text for s in walk_steps(draft.steps))


def test_where_opens_a_condition_and_escalating_at_the_same_time_goes_on(
    tmp_path: Path,
) -> None:
    step = (
        "Where the amount exceeds 500, escalate the claim to the Finance Desk at the same "
        "time.\n3. Refund the order."
    )
    ways = _ways(_compile(tmp_path, step))
    above = _side(ways, "the amount exceeds 500", "yes")
    assert all("issue_refund" in w.calls and w.end == "resolve" for w in above)  # it goes on
    below = _side(ways, "the amount exceeds 500", "no")
    assert all("issue_refund" in w.calls for w in below)


def test_the_tool_named_for_the_verb_and_describing_the_thing_wins_over_an_alias(
    tmp_path: Path,
) -> None:
    catalog = ToolCatalog(
        tools=[
            *CATALOG.tools,
            Tool(
                name="open_claim",
                description="Open a damage claim.",
                access="write",
                aliases=["claim"],
            ),
            Tool(
                name="send_notice",
                description="Email a notice (claim acknowledgement, delay notice).",
                access="write",
            ),
        ]
    )
    procedure = _procedure(
        tmp_path,
        "returns.md",
        (
            "# Returns desk\n\n## Handle a damage claim\n\n"
            "1. Open the claim.\n2. Send the customer the claim acknowledgement.\n"
        ),
    )
    calls = _calls(build_draft(procedure, catalog=catalog))
    assert calls == ["open_claim", "send_notice"]


def test_explaining_what_must_happen_first_ends_the_branch(tmp_path: Path) -> None:
    step = (
        "If the order was paid by voucher, explain that it must be refunded by the voucher "
        "desk first.\n3. Refund the order."
    )
    ways = _ways(_compile(tmp_path, step))
    test = "the order was paid by voucher"
    assert all("issue_refund" not in w.calls for w in _side(ways, test, "yes"))
    assert all("issue_refund" in w.calls for w in _side(ways, test, "no"))


def test_a_prohibition_inside_a_sentence_or_a_table_cell_is_a_rule_of_its_case(
    tmp_path: Path,
) -> None:
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Where it is more than 300, open a ticket for finance and do not refund the order "
        "yourself.\n"
        "3. Decide what to do:\n\n| Situation | What to do |\n|---|---|\n"
        "| The box is crushed | Replace the unit. Do not issue a voucher for it. |\n"
        "| Anything else | Refund the order |\n",
    )
    rules = {rule.text: rule for rule in draft.rules if rule.kind == "never"}
    refund = rules["Do not refund the order yourself"]
    assert refund.governs == ["issue_refund"] and refund.condition == "it is more than 300"
    voucher = rules["Do not issue a voucher for it"]
    assert voucher.governs == ["issue_voucher"] and voucher.condition == "the box is crushed"


def test_checking_what_a_read_tool_returns_calls_it_and_a_system_is_no_call(
    tmp_path: Path,
) -> None:
    catalog = ToolCatalog(
        tools=[
            *CATALOG.tools,
            Tool(name="get_crew_availability", description="Free crews and vans for a date."),
            Tool(name="find_job", description="Find a job.", aliases=["MoveBase"]),
            Tool(name="create_quote", description="Produce a quote for a move.", access="write"),
        ]
    )
    procedure = _procedure(
        tmp_path,
        "moves.md",
        (
            "# Moves\n\n## Quoting a move\n\n1. Check crew availability for the date.\n"
            "2. Produce the quote in MoveBase.\n3. Check the order status.\n"
        ),
    )
    calls = _calls(build_draft(procedure, catalog=catalog))
    assert calls[:2] == ["get_crew_availability", "create_quote"]


def test_a_decision_tables_action_may_hold_its_own_condition(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "Look up the order, then act on the return reason:\n\n"
        "| Return reason | Action |\n|---|---|\n"
        "| DAMAGED | Replace the unit. If the replacement is out of stock, refund the order; do "
        "not issue a voucher. |\n"
        "| LATE | Issue a voucher. |\n",
    )
    ways = _ways(draft)
    damaged = _side(ways, "the return reason is DAMAGED", "yes")
    assert all("replace_unit" in w.calls and "issue_voucher" not in w.calls for w in damaged)
    out = _side(ways, "the replacement is out of stock", "yes")
    assert all("issue_refund" in w.calls for w in out)
    assert all(
        "issue_refund" not in w.calls for w in _side(ways, "the return reason is LATE", "yes")
    )


def test_a_table_of_decisions_binds_each_bare_verb_to_its_one_tool(tmp_path: Path) -> None:
    catalog = ToolCatalog(
        tools=[
            *CATALOG.tools,
            Tool(name="decline_claim", description="Decline a claim.", access="write"),
            Tool(name="settle_claim", description="Pay a claim out.", access="write"),
            Tool(name="request_history", description="Ask the vet for the clinical history."),
        ]
    )
    procedure = _procedure(
        tmp_path,
        "claims.md",
        (
            "# Claims\n\n## Assessing a claim\n\n"
            "1. For every illness claim, request the clinical history from the vet.\n"
            "2. Decide:\n\n| Finding | Decision |\n|---|---|\n"
            "| Signs before the start date | Decline (pre-existing) |\n"
            "| None of the above | Settle |\n"
        ),
    )
    ways = _ways(build_draft(procedure, catalog=catalog))
    assert all(w.calls[0] == "request_history" for w in ways)
    before = _side(ways, "the finding is signs before the start date", "yes")
    assert all("decline_claim" in w.calls and "settle_claim" not in w.calls for w in before)
    assert any("settle_claim" in w.calls for w in ways)


def test_a_hyphenated_adjective_is_no_order() -> None:
    assert not is_instruction("Pay-at-counter rentals are never refunded for early returns.")
    assert is_instruction("Pay the invoice by card.")


def test_a_hand_over_tool_called_in_a_branch_ends_it(tmp_path: Path) -> None:
    catalog = ToolCatalog(
        tools=[
            *CATALOG.tools,
            Tool(
                name="refer_to_senior_assessor",
                description="Refer a claim to a senior assessor.",
                access="write",
            ),
        ]
    )
    procedure = _procedure(
        tmp_path,
        "claims.md",
        (
            "# Claims\n\n## Handling a return\n\n1. Look up the order with the order number.\n"
            "2. If the history is unclear, refer to a senior assessor.\n3. Refund the order.\n"
        ),
    )
    ways = _ways(build_draft(procedure, catalog=catalog))
    unclear = _side(ways, "the history is unclear", "yes")
    assert all(
        "refer_to_senior_assessor" in w.calls and "issue_refund" not in w.calls for w in unclear
    )
    assert {w.end for w in unclear} == {"escalate"}
    assert all("issue_refund" in w.calls for w in _side(ways, "the history is unclear", "no"))


def test_a_condition_that_leads_a_list_keeps_its_commas(tmp_path: Path) -> None:
    draft = _compile(
        tmp_path,
        "If the box is crushed, wet, torn or open:\n   - Refund the order.\n",
    )
    assert "the box is crushed, wet, torn or open" in _tests(draft)


def test_what_the_customer_is_asked_to_do_stays_their_step(tmp_path: Path) -> None:
    draft = _compile(
        tmp_path, "Ask the customer to restart the router: switch it off, wait 30 seconds."
    )
    asks = [s for s in walk_steps(draft.steps) if "switch it off" in s.text.casefold()]
    assert len(asks) == 1 and asks[0].kind == "ask"


def test_a_case_that_refuses_what_the_first_case_does_is_its_sibling(tmp_path: Path) -> None:
    step = (
        "If the unit is in stock, replace the unit and tell the customer. If the unit is out of "
        "stock, issue a voucher; do not replace the unit, even for a loyal customer."
    )
    ways = _ways(_compile(tmp_path, step))
    out = [
        w
        for w in _side(ways, "the unit is in stock", "no")
        if w.went.get("the unit is out of stock") == "yes"
    ]
    assert out and all("replace_unit" not in w.calls and "issue_voucher" in w.calls for w in out)
    stocked = _side(ways, "the unit is in stock", "yes")
    assert all("replace_unit" in w.calls for w in stocked)


def test_a_follow_up_answered_no_never_falls_into_the_otherwise(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. If the unit is out of stock, offer a voucher. If the customer accepts, issue the "
        "voucher.\n"
        "3. Otherwise replace the unit.\n"
        "4. Tell the customer what happens next.\n",
    )
    ways = _ways(draft)
    out = _side(ways, "the unit is out of stock", "yes")
    assert all("replace_unit" not in w.calls for w in out)
    assert all("replace_unit" in w.calls for w in _side(ways, "the unit is out of stock", "no"))


def test_asking_before_a_write_is_the_ask_not_the_write(tmp_path: Path) -> None:
    text = (
        "# Returns desk\n\n## Goodwill credits\n\n1. Look up the order with the order number.\n"
        "2. Ask the customer to confirm the amount before you apply the goodwill credit.\n"
    )
    draft = build_draft(_procedure(tmp_path, "returns.md", text), catalog=_ALIASED)
    (step,) = [s for s in walk_steps(draft.steps) if "confirm the amount" in s.text]
    assert step.kind == "ask" and step.tool_call is None


def test_nothing_to_do_ends_and_an_aside_is_no_test(tmp_path: Path) -> None:
    step = (
        "Replace the unit (the new code follows automatically when it is deposited). If the "
        "customer does not want a replacement, it will be returned to the store; nothing to do "
        "now.\n3. Refund the order."
    )
    draft = _compile(tmp_path, step)
    assert "it is deposited" not in " ".join(_tests(draft))
    ways = _ways(draft)
    declined = _side(ways, "the customer does not want a replacement", "yes")
    assert all("issue_refund" not in w.calls for w in declined)


def test_an_otherwise_after_an_inner_test_in_one_sentence_answers_that_test(
    tmp_path: Path,
) -> None:
    step = (
        "If the box is crushed, replace the unit if one is in stock, otherwise issue a voucher."
        "\n3. Refund the order."
    )
    ways = _ways(_compile(tmp_path, step))
    crushed = _side(ways, "the box is crushed", "yes")
    no_stock = [w for w in crushed if w.went.get("one is in stock") == "no"]
    assert no_stock and all("issue_voucher" in w.calls for w in no_stock)
    assert all("issue_voucher" not in w.calls for w in _side(ways, "the box is crushed", "no"))


def test_if_it_is_after_a_negative_test_is_its_other_side(tmp_path: Path) -> None:
    step = (
        "Replace the unit, provided that the box is not damaged. If it is, open a ticket for "
        "finance first.\n3. Tell the customer the claim number."
    )
    ways = _ways(_compile(tmp_path, step))
    damaged = _side(ways, "the box is not damaged", "no")
    assert all("open_ticket" in w.calls and "replace_unit" not in w.calls for w in damaged)
    intact = _side(ways, "the box is not damaged", "yes")
    assert all("replace_unit" in w.calls and "open_ticket" not in w.calls for w in intact)


def test_a_rule_governs_the_tool_its_later_prohibition_names(tmp_path: Path) -> None:
    draft = _compile(
        tmp_path,
        "Returns are accepted only within 30 days; after that, the agent shall not issue a "
        "voucher.",
    )
    (rule,) = [r for r in draft.rules if r.text.startswith("Returns are accepted only")]
    assert "issue_voucher" in rule.governs


def test_a_decision_table_on_its_own_is_one_step_whose_rows_are_cases(tmp_path: Path) -> None:
    # no step leads the table: its rows are still exclusive cases, and a row that needs
    # nothing ("Nothing; ...") is a case that calls nothing
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n\n"
        "| Days late | Action |\n|---|---|\n"
        "| Up to 3 days | Nothing; most parcels turn up |\n"
        "| 4-10 days | Issue a voucher |\n"
        "| Over 10 days | Refund the order |\n\n"
        "2. Tell the customer what happens next.\n",
    )
    ways = _ways(draft)
    writes = {"issue_voucher", "issue_refund"}
    for way in _side(ways, "the days late is up to 3 days", "yes"):
        assert not writes & set(way.calls), way
    for way in _side(ways, "the days late is 4-10 days", "yes"):
        assert "issue_voucher" in way.calls and "issue_refund" not in way.calls
    assert all(
        "issue_refund" in w.calls for w in _side(ways, "the days late is over 10 days", "yes")
    )
    assert all(len(writes & set(way.calls)) <= 1 for way in ways)


def test_a_prohibition_after_a_trailing_test_is_no_part_of_the_test(tmp_path: Path) -> None:
    draft = _compile(
        tmp_path, "Issue a voucher only if the customer has the receipt; never for more than £20."
    )
    assert _tests(draft) == ["the customer has the receipt"]
    ways = _ways(draft)
    assert all(
        "issue_voucher" in w.calls for w in _side(ways, "the customer has the receipt", "yes")
    )
    assert all(
        "issue_voucher" not in w.calls for w in _side(ways, "the customer has the receipt", "no")
    )
    # after a leading test, the prohibition is the then-side's own
    draft = _compile(tmp_path, "If the seal is broken, tell the customer why; do not refund it.")
    assert _tests(draft) == ["the seal is broken"]


@pytest.mark.parametrize(
    ("step", "test"),
    [
        (
            "If the seal is broken, issue a voucher. Tell the customer why. Otherwise, refund "
            "the order.",
            "the seal is broken",
        ),
        (
            "Is the seal broken? Yes: issue a voucher. Tell the customer why. No: refund the "
            "order.",
            "Is the seal broken?",
        ),
    ],
)
def test_the_otherwise_after_a_then_side_of_several_sentences_answers_its_test(
    tmp_path: Path, step: str, test: str
) -> None:
    ways = _ways(_compile(tmp_path, step))
    for way in _side(ways, test, "yes"):
        assert "issue_voucher" in way.calls and "issue_refund" not in way.calls
    for way in _side(ways, test, "no"):
        assert "issue_refund" in way.calls and "issue_voucher" not in way.calls


def test_a_refusal_said_of_the_request_ends_its_case(tmp_path: Path) -> None:
    step = (
        "Check the order. If the order is a gift, the return must be refused. Tell the "
        "customer why.\n3. Accept the return."
    )
    ways = _ways(_compile(tmp_path, step))
    assert all("accept_return" not in w.calls for w in _side(ways, "the order is a gift", "yes"))
    assert all("accept_return" in w.calls for w in _side(ways, "the order is a gift", "no"))


@pytest.mark.parametrize(
    ("step", "test"),
    [
        (
            "Check the receipt. If the receipt is not dated in the last 30 days, ask for "
            "another proof of purchase. Do not accept a return without proof of purchase.",
            "the receipt is not dated in the last 30 days",
        ),
        (
            "Check the stock. If the warehouse is closed, tell the customer we will call back. "
            "Do not accept the return in this case.",
            "the warehouse is closed",
        ),
    ],
)
def test_a_prohibition_that_follows_its_case_ends_that_case(
    tmp_path: Path, step: str, test: str
) -> None:
    ways = _ways(_compile(tmp_path, f"{step}\n3. Accept the return."))
    assert all("accept_return" not in w.calls for w in _side(ways, test, "yes"))
    assert all("accept_return" in w.calls for w in _side(ways, test, "no"))


def test_when_inside_what_the_customer_is_told_is_no_test(tmp_path: Path) -> None:
    draft = _compile(
        tmp_path,
        "Cancel the order and tell the customer they will be refunded when the parcel is back.",
    )
    assert _tests(draft) == []
    assert "cancel_order" in _calls(draft)


def test_an_order_to_the_adviser_in_the_third_person_is_an_order(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "4.1 The Adviser shall look up the order with the order number.\n\n"
        "4.2 If the parcel was opened, the Adviser shall decline the return and shall not "
        "issue a refund. Otherwise, the Adviser shall accept the return.\n\n"
        "4.3 The Returns Manager shall approve every refund over £500.\n\n"
        "4.4 Each morning the Adviser shall cancel the orders on the fraud list.\n",
    )
    ways = _ways(draft)
    assert all(w.calls[:1] == ["get_order"] for w in ways)
    opened = _side(ways, "the parcel was opened", "yes")
    assert all("accept_return" not in w.calls and "issue_refund" not in w.calls for w in opened)
    assert all("accept_return" in w.calls for w in _side(ways, "the parcel was opened", "no"))
    # what someone else does is not the adviser's order
    assert not any(s.text.startswith("Approve") for s in walk_steps(draft.steps))
    # "Each morning, cancel ...": an order too, after the case that goes on
    accepted = _side(ways, "the parcel was opened", "no")
    assert all(w.calls[-1:] == ["cancel_order"] for w in accepted)


def test_a_note_after_an_item_leaves_the_item_its_call(tmp_path: Path) -> None:
    draft = _compile(tmp_path, "Refund the order.\n\nRefunds take 5 days to reach the card.\n")
    assert "issue_refund" in _calls(draft)


@pytest.mark.parametrize(
    ("step", "test"),
    [
        (
            "If the box is crushed, do not offer a voucher. Tell the customer why.",
            "the box is crushed",
        ),
        (
            "If the caller is not the account holder, do not discuss the order. Offer to call "
            "back.",
            "the caller is not the account holder",
        ),
    ],
)
def test_a_refused_case_ends_before_the_write_it_refuses(
    tmp_path: Path, step: str, test: str
) -> None:
    ways = _ways(_compile(tmp_path, f"{step}\n3. Issue a voucher."))
    assert all("issue_voucher" not in w.calls for w in _side(ways, test, "yes"))
    assert all("issue_voucher" in w.calls for w in _side(ways, test, "no"))


def test_what_a_named_team_does_is_no_call_even_when_it_names_an_enum_value(
    tmp_path: Path,
) -> None:
    ticket = Tool.model_validate(
        {
            "name": "open_ticket",
            "description": "Open a ticket for another team.",
            "access": "write",
            "parameters": {
                "type": "object",
                "properties": {"team": {"type": "string", "enum": ["finance", "fraud_review"]}},
                "required": ["team"],
            },
        }
    )
    draft = _sop(
        tmp_path,
        "1. Accept the return.\n2. The Fraud Review Team decides on any goodwill afterwards.\n",
        catalog=_catalog(ticket),
    )
    assert _calls(draft) == ["accept_return"]


@pytest.mark.parametrize(
    "step",
    [
        "Work out the amount. If the refund is £300 or less, refund the order. Otherwise, if it "
        "is more than £300, open a ticket for finance. Either way, issue a voucher.",
        "Work out the amount. Where the refund is £300 or less, refund the order. Where it is "
        "more than £300, open a ticket for finance and do not refund the order yourself. Either "
        "way, issue a voucher.",
    ],
)
def test_two_cases_of_one_thing_are_one_switch_and_either_way_runs_on_both(
    tmp_path: Path, step: str
) -> None:
    ways = _ways(_compile(tmp_path, step))
    small = _side(ways, "the refund is £300 or less", "yes")
    assert all("issue_refund" in w.calls and "open_ticket" not in w.calls for w in small)
    large = _side(ways, "it is more than £300", "yes")
    assert all("open_ticket" in w.calls and "issue_refund" not in w.calls for w in large)
    assert all("issue_voucher" in w.calls for w in ways)


def test_two_cases_of_different_things_stay_two_tests(tmp_path: Path) -> None:
    step = (
        "Check the parcel. If the box is crushed, issue a voucher. If the seal is broken, "
        "refund the order."
    )
    ways = _ways(_compile(tmp_path, step))
    # both can hold: the second is no other side of the first
    assert any(
        w.went.get("the box is crushed") == "yes" and w.went.get("the seal is broken") == "yes"
        for w in ways
    )


def test_an_order_but_a_referral_is_two_orders_and_the_referral_ends_the_case(
    tmp_path: Path,
) -> None:
    step = (
        "Check the order. If the box is crushed, accept the return but refer the case to Fraud "
        "Review.\n3. Refund the order."
    )
    ways = _ways(_compile(tmp_path, step))
    crushed = _side(ways, "the box is crushed", "yes")
    assert all("accept_return" in w.calls and "issue_refund" not in w.calls for w in crushed)
    assert {w.end for w in crushed} == {"escalate"}


def test_a_case_label_may_join_two_tests_with_a_comma(tmp_path: Path) -> None:
    step = (
        "For each open return:\n"
        "   a. Label printed — accept the return.\n"
        "   b. Expired, and no label printed — cancel the order.\n"
    )
    draft = _compile(tmp_path, step)
    assert _tests(draft)[:2] == ["label printed", "expired, and no label printed"]
    ways = _ways(draft)
    assert all(
        "accept_return" not in w.calls for w in _side(ways, "expired, and no label printed", "yes")
    )


def test_what_there_is_or_is_not_calls_nothing(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "1. Look up the order.\n2. If the order was a gift, there's no refund — swap it.\n",
        catalog=_catalog(aliases={"issue_refund": ["refund"]}),
    )
    assert _calls(draft) == ["get_order"]


def test_a_tool_named_in_backticks_outranks_the_sentences_verb(tmp_path: Path) -> None:
    # an alias earlier in the sentence ("return request"), and a tool that does its verb
    mail = Tool(
        name="send_email",
        description="Send a return request email to the customer.",
        access="write",
    )
    draft = _sop(
        tmp_path,
        "1. Send a return request to the warehouse (`accept_return`).\n",
        catalog=_catalog(mail, aliases={"accept_return": ["return request"]}),
    )
    assert _calls(draft) == ["accept_return"]


def test_a_step_that_denies_the_test_of_the_step_before_is_its_other_side(
    tmp_path: Path,
) -> None:
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. If the order has shipped, refund the order.\n"
        "3. If it has not shipped:\n"
        "   - cancel the order.\n"
        "4. Tell the customer what happens next.\n",
    )
    ways = _ways(draft)
    shipped = _side(ways, "the order has shipped", "yes")
    assert all("issue_refund" in w.calls and "cancel_order" not in w.calls for w in shipped)
    assert any("cancel_order" in w.calls for w in _side(ways, "the order has shipped", "no"))


def test_a_quantity_is_no_enum_value_of_a_tool(tmp_path: Path) -> None:
    plan = Tool.model_validate(
        {
            "name": "create_payment_plan",
            "description": "Record a payment plan.",
            "access": "write",
            "parameters": {
                "type": "object",
                "properties": {"months": {"type": "integer", "enum": [6, 12]}},
            },
        }
    )
    draft = _sop(
        tmp_path,
        "1. Accept the return.\n"
        "2. Customers who return 3 orders in 12 months are sent to the Returns Lead.\n",
        catalog=_catalog(plan),
    )
    assert "create_payment_plan" not in _calls(draft)


def test_a_list_of_orders_without_a_comma_before_its_and_is_each_order(tmp_path: Path) -> None:
    # "log it, send the parent the second warning letter and tell the school": three orders
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Accept the return, issue a voucher and tell the customer the label is on its way.\n",
    )
    assert _calls(draft) == ["get_order", "accept_return", "issue_voucher"]
    # what the customer is asked to do is one ask, however many verbs it lists
    asked = _sop(
        tmp_path,
        "1. Ask the customer to check, clean and restart the device.\n2. Accept the return.\n",
    )
    assert asked.steps[0].kind == "ask"
    assert "clean and restart the device" in asked.steps[0].text


def test_an_enum_value_said_inside_a_longer_one_is_not_said(tmp_path: Path) -> None:
    letter = Tool.model_validate(
        {
            "name": "send_letter",
            "description": "Send the customer a letter from a template.",
            "access": "write",
            "parameters": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string"},
                    "template": {
                        "type": "string",
                        "enum": ["warning_letter", "second_warning_letter", "general"],
                    },
                },
                "required": ["order_id", "template"],
            },
        }
    )
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Send the customer the second warning letter.\n"
        "3. Send the customer the warning letter again.\n",
        catalog=_catalog(letter),
    )
    sent = [
        {a.name: a.value for a in s.tool_call.arguments}["template"]
        for s in walk_steps(draft.steps)
        if s.tool_call and s.tool_call.tool == "send_letter"
    ]
    assert sent == ["second_warning_letter", "warning_letter"]


@pytest.mark.parametrize("ruled", [True, False])
def test_a_side_that_goes_on_to_a_clause_number_is_the_only_side_that_goes_on(
    tmp_path: Path, ruled: bool
) -> None:
    # "YES: no compensation. Rebook it. NO: rebook it, then go to 7.3.": the yes-side ends;
    # "go to 4.3" names a clause even when 4.3 is only a rule (then the step after it)
    clause = (
        "4.3 Refunds are paid only if the customer asks within 28 days.\n"
        if ruled
        else "4.3 Tell the customer the refund takes 5 days.\n"
    )
    draft = build_draft(
        _procedure(
            tmp_path,
            "returns.txt",
            "RETURNS DESK MANUAL\n\n4. DAMAGED PARCELS\n==================\n"
            "4.1 Look up the order with the order number.\n"
            "4.2 Was the box opened?\n"
            "      YES: no refund. Issue a voucher.\n"
            "      NO: accept the return, then go to 4.3.\n"
            f"{clause}"
            "4.4 Refund the order.\n",
        ),
        catalog=CATALOG,
    )
    ways = _ways(draft)
    (test,) = _tests(draft)
    opened = _side(ways, test, "yes")
    assert opened and all(w.calls[1:] == ["issue_voucher"] for w in opened)
    sealed = _side(ways, test, "no")
    assert sealed and all(w.calls[1:] == ["accept_return", "issue_refund"] for w in sealed)
    assert not [q for q in draft.open_questions if "4.3" in q]


@pytest.mark.parametrize(
    "fetch",
    [
        "stop and get Priya.",
        "ask the customer to wait, and get Priya.",
        "ask Priya to OK it at the till.",
    ],
)
def test_a_person_named_whom_the_agent_fetches_takes_the_case_over(
    tmp_path: Path, fetch: str
) -> None:
    # "If the mobile doesn't match, don't hand anything over: stop and get Priya": the manager
    # takes it over; never "Ask the customer for Priya"
    draft = _compile(tmp_path, f"If the box was opened, {fetch}\n3. Refund the order.")
    ways = _ways(draft)
    opened = _side(ways, "the box was opened", "yes")
    assert opened and {w.end for w in opened} == {"escalate"}
    assert all("issue_refund" not in w.calls for w in opened)
    assert all("issue_refund" in w.calls for w in _side(ways, "the box was opened", "no"))
    assert not [s for s in walk_steps(draft.steps) if s.kind == "ask" and "Priya" in s.text]
    # what the customer is asked for is still asked
    asked = _compile(tmp_path, "Get the postcode.")
    assert [s.kind for s in asked.steps[:2]] == ["tool_call", "ask"]


def test_marking_a_record_with_a_status_calls_the_tool_that_sets_it(tmp_path: Path) -> None:
    # "Mark the ticket collected" with `update_ticket` (status collected) beside
    # `release_to_charity` "Mark an uncollected ticket's items as given to charity"
    status = Tool.model_validate(
        {
            "name": "update_order",
            "description": "Change an order's status or add a note to it.",
            "access": "write",
            "parameters": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string"},
                    "status": {"type": "string", "enum": ["ready", "collected", "on_hold"]},
                },
                "required": ["order_id"],
            },
        }
    )
    charity = Tool.model_validate(_write("give_to_charity", "Mark an uncollected order as given."))
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n2. Mark the order collected.\n",
        catalog=_catalog(status, charity),
    )
    (call,) = [s.tool_call for s in walk_steps(draft.steps) if s.kind == "tool_call"][1:]
    assert call is not None and call.tool == "update_order"
    assert ("status", "collected") in {(a.name, a.value) for a in call.arguments}


def test_a_question_over_yes_and_no_items_is_the_question_with_its_two_sides(
    tmp_path: Path,
) -> None:
    # "5.2.3 Is every animal's vaccination record current?" over "- Yes: record the admission"
    # and "- No: ... stop and escalate": each item is its side, every sentence of it
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Is the box sealed?\n"
        "   - Yes: accept the return.\n"
        "   - No: the return is not accepted. Refer the order to the Fraud Office.\n"
        "3. Tell the customer what happens next.\n",
    )
    ways = _ways(draft)
    (test,) = [t for t in _tests(draft) if "sealed" in t][:1]
    sealed = [w for w in ways if "accept_return" in w.calls]
    assert sealed and all(w.end == "resolve" for w in sealed)
    opened = [w for w in ways if "accept_return" not in w.calls]
    assert opened and all(w.end == "escalate" for w in opened)
    assert "Box sealed" not in test


def test_a_case_opened_with_a_colon_holds_the_rest_of_its_item(tmp_path: Path) -> None:
    # "4.2 Check the repair history. IF AN OPEN JOB EXISTS: do not raise a new one. Add the
    # caller's notes to it and end the call.": the notes and the end are that case's
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number. IF THE BOX WAS OPENED: do not refund "
        "it. Issue a voucher and end the call.\n"
        "2. Refund the order.\n",
    )
    ways = _ways(draft)
    (test,) = _tests(draft)
    opened = _side(ways, test, "yes")
    assert opened and all(w.calls[1:] == ["issue_voucher"] for w in opened)
    closed = _side(ways, test, "no")
    assert closed and all(w.calls[1:] == ["issue_refund"] for w in closed)


def test_a_formal_policys_numbered_clauses_are_its_procedures_steps(tmp_path: Path) -> None:
    # "## 4. General Provisions" (every procedure's rules) beside "### 5.1 Refunding an
    # Order" with clauses "5.1.1 The Agent shall ..." and no list marks
    procedures = _procedures(
        tmp_path,
        "policy.md",
        "# Returns Policy\n\n## 4. General Provisions\n\n"
        "4.1 The Agent shall not refund an order older than 90 days.\n\n"
        "## 5. Procedures\n\n### 5.1 Refunding an Order\n\n"
        "5.1.1 The Agent shall look up the order with the order number.\n\n"
        "5.1.2 The Agent shall refund the order.\n\n"
        "### 5.2 Cancelling an Order\n\n"
        "5.2.1 The Agent shall look up the order with the order number.\n\n"
        "5.2.2 The Agent shall cancel the order.\n",
    )
    assert [p.title for p in procedures] == ["Refunding an Order", "Cancelling an Order"]
    drafts = [build_draft(p, catalog=CATALOG) for p in procedures]
    assert [_calls(d) for d in drafts] == [
        ["get_order", "issue_refund"],
        ["get_order", "cancel_order"],
    ]
    for draft in drafts:
        assert any("90 days" in rule.text for rule in draft.rules)


def _escalates_instead_of_refunding(ways: list[Way], test: str) -> None:
    """When `test` holds the case is handed on and nothing is refunded; otherwise, refunded."""
    held = _side(ways, test, "yes")
    assert held and all(w.end == "escalate" and "issue_refund" not in w.calls for w in held)
    others = _side(ways, test, "no")
    assert others and all("issue_refund" in w.calls for w in others)


def test_a_case_label_with_an_aside_in_brackets_is_still_a_case(tmp_path: Path) -> None:
    # "Claims over £60, or for anything other than a missed appointment (for example damaged
    # belongings or time off work): refer to the Repairs Supervisor": never an escalation of
    # every claim
    draft = _compile(
        tmp_path,
        "Claims over £60, or for anything other than a damaged parcel (for example a late "
        "delivery or a wrong colour): refer the order to the Fraud Office.\n3. Refund the order.",
    )
    (test,) = _tests(draft)
    assert "£60" in test
    _escalates_instead_of_refunding(_ways(draft), test)


def test_stop_and_escalate_then_a_prohibition_ends_at_the_escalation(tmp_path: Path) -> None:
    # "Where it is over £250, stop and escalate to the Baggage Claims team with the receipts
    # attached; do not pay any part of it yourself.": the hand-over is reached, never skipped
    procedure = _procedure(
        tmp_path,
        "returns.md",
        "# Returns desk\n\n## Handle a return request\n\n"
        "1. Look up the order with the order number.\n"
        "2. Where the order is £250 or less, refund the order. Where it is over £250, stop "
        "and refer the order to the Fraud Office; do not refund any part of it yourself.\n"
        "3. Tell the customer what happens next.\n",
    )
    draft = build_draft(procedure, catalog=CATALOG)
    issues = check_draft(draft, procedure=procedure, catalog=CATALOG, settings=Settings())
    assert not [i for i in issues if i.code == "unreachable_step"]
    over = _side(_ways(draft), "it is over £250", "yes")
    assert over and {w.end for w in over} == {"escalate"}
    assert all("issue_refund" not in w.calls for w in over)


def test_an_if_inside_a_which_clause_is_no_test_of_the_order(tmp_path: Path) -> None:
    # "The Reservations Officer shall place a Provisional Booking, which lapses after 48 hours
    # if no Deposit is received": the booking is placed every time; the lapse has the test
    draft = _sop(
        tmp_path,
        "1. The Agent shall locate the order with the order number.\n"
        "2. The Agent shall issue a voucher, which expires after 30 days if it is not used.\n",
    )
    assert _tests(draft) == []
    assert _calls(draft) == ["get_order", "issue_voucher"]


def test_then_stop_ends_the_case(tmp_path: Path) -> None:
    # "if the account already has two instruments out, then stop.": no rental after it
    ways = _ways(_compile(tmp_path, "If the box was opened, then stop.\n3. Refund the order."))
    opened = _side(ways, "the box was opened", "yes")
    assert opened and all("issue_refund" not in w.calls for w in opened)
    assert all("issue_refund" in w.calls for w in _side(ways, "the box was opened", "no"))
    # "If the caller isn't the patient, stop here. Be polite, explain ...": its own sentences
    # are still its side, then it ends
    procedure = _procedure(
        tmp_path,
        "returns.md",
        "# Returns desk\n\n## Handle a return request\n\n"
        "1. Look up the order with the order number.\n"
        "2. If the box was opened, stop here. Issue a voucher.\n3. Refund the order.\n",
    )
    draft = build_draft(procedure, catalog=CATALOG)
    issues = check_draft(draft, procedure=procedure, catalog=CATALOG, settings=Settings())
    assert not [i for i in issues if i.code == "unreachable_step"]
    opened = _side(_ways(draft), "the box was opened", "yes")
    assert opened and all(w.calls[1:] == ["issue_voucher"] for w in opened)


def test_a_label_over_a_sentence_that_opens_with_its_test_is_no_part_of_it(
    tmp_path: Path,
) -> None:
    # "7.2 Stop and escalate: in the event that anyone has been injured, ..., the Adviser must
    # stop this procedure and refer the matter at once to the Health and Safety Lead": never
    # an escalation of every call
    draft = _sop(
        tmp_path,
        "1. The Agent must bring up the order with the order number.\n"
        "2. Stop and escalate: in the event that anyone has been injured, the Agent must refer "
        "the order at once to the Health and Safety Lead.\n"
        "3. Refund the order.\n",
    )
    ways = _ways(draft)
    assert _calls(draft)[:1] == ["get_order"]  # "bring up" the order looks it up
    (test,) = _tests(draft)
    assert test == "anyone has been injured"
    _escalates_instead_of_refunding(ways, test)
    targets = {s.target for s in walk_steps(draft.steps) if s.kind == "escalate"}
    assert targets == {"Health and Safety Lead"}


def test_cases_of_a_kind_that_go_to_a_named_team_are_handed_over(tmp_path: Path) -> None:
    # "Unless the account is fully paid up, you can't freeze it. Accounts in arrears go to
    # the Club Secretary.": the case ends with the Club Secretary
    draft = _compile(
        tmp_path,
        "Unless the order is fully paid, you can't refund it. Accounts in arrears go to the "
        "Credit Control Team.\n3. Refund the order.",
    )
    (test,) = _tests(draft)
    _escalates_instead_of_refunding(_ways(draft), test)


def test_a_facts_section_joined_ahead_of_a_procedure_is_no_steps(tmp_path: Path) -> None:
    # "## Office hours and key facts" with a "Remember (applies to every procedure)" box in
    # it joins every procedure: its facts are reference, its box a rule
    procedure = _procedure(
        tmp_path,
        "returns.md",
        "# Returns desk\n\n## Key facts\n\n- The desk is open 8am to 6pm.\n"
        "- A refund takes 5 days.\n\n"
        "> **Remember (applies to every procedure on this page):** never refund an order "
        "twice.\n\n"
        "## Refunding an order\n\n1. Look up the order with the order number.\n"
        "2. Refund the order.\n\n"
        "## Cancelling an order\n\n1. Look up the order with the order number.\n"
        "2. Cancel the order.\n",
    )
    draft = build_draft(procedure, catalog=CATALOG)
    texts = [s.text for s in walk_steps(draft.steps)]
    assert not [t for t in texts if "8am" in t or "5 days" in t]
    assert _calls(draft) == ["get_order", "issue_refund"]
    assert any("twice" in rule.text for rule in draft.rules)


def test_a_section_of_the_words_we_use_is_reference_never_steps(tmp_path: Path) -> None:
    # "<h2>Words we use</h2><dl><dt>Test mode</dt>...": its terms had become the first steps
    # of the procedure after it, "Test mode" a call of `set_test_mode`
    procedures = _procedures(
        tmp_path,
        "returns.html",
        "<h1>Returns desk</h1><h2>Words we use</h2><dl><dt>Voucher</dt>"
        "<dd>A code worth money off an order.</dd><dt>Test mode</dt>"
        "<dd>A state in which signals are logged but nobody is called out.</dd></dl>"
        "<h2>Refunding an order</h2><p>Look up the order with the order number and refund "
        "the order.</p><h2>Cancelling an order</h2><ol><li>Look up the order with the order "
        "number.</li><li>Cancel the order.</li></ol>",
    )
    assert [p.title for p in procedures] == ["Refunding an order", "Cancelling an order"]
    texts = [s.text for s in walk_steps(build_draft(procedures[0], catalog=CATALOG).steps)]
    assert not [t for t in texts if "Test mode" in t or "Voucher" in t]


def test_an_action_done_again_is_asked_for_as_validate_reads_it(tmp_path: Path) -> None:
    # "Rebook the order into the next slot" calls `book_redelivery`; validate reads the same
    # words as asking for a booking, never as an action an answer added
    redelivery = Tool.model_validate(
        _write("book_redelivery", "Book a follow-up delivery on the next van.")
    )
    catalog = _catalog(redelivery)
    procedure = _procedure(
        tmp_path,
        "returns.md",
        "# Returns desk\n\n## Handle a missed delivery\n\n"
        "1. Look up the order with the order number.\n"
        "2. Rebook the order on the next van.\n",
    )
    draft = build_draft(procedure, catalog=catalog)
    assert "book_redelivery" in _calls(draft)
    issues = check_draft(draft, procedure=procedure, catalog=catalog, settings=Settings())
    assert not [i for i in issues if i.code == "unsupported_write"]


def test_what_a_procedure_puts_outside_itself_is_a_case_of_its_own(tmp_path: Path) -> None:
    # "5.1.7 Enquiries for exclusive or after-hours use of a gallery are outside this
    # procedure. The Booking Officer shall not book such use, and shall pass the enquiry to
    # the Events Team.": never a hand-over of every enquiry
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Returns of opened software are outside this procedure. Refer the order to the "
        "Licensing Team.\n"
        "3. Refund the order.\n",
    )
    (test,) = _tests(draft)
    assert test == "it is about returns of opened software"
    _escalates_instead_of_refunding(_ways(draft), test)


def test_a_trailing_if_after_a_refusal_and_an_order_is_no_test_of_the_refusal(
    tmp_path: Path,
) -> None:
    # "If it is reserved, the Adviser must not extend the hire and must offer an alternative
    # item of the same type, if one is available": the refusal holds whether or not one is
    draft = _compile(
        tmp_path,
        "If the box was opened, the Agent must not refund the order and must issue a voucher, "
        "if one is available.\n3. Refund the order.",
    )
    assert _tests(draft) == ["the box was opened"]
    opened = _side(_ways(draft), "the box was opened", "yes")
    assert opened and all(w.calls[1:] == ["issue_voucher"] for w in opened)
    texts = [s.text for s in walk_steps(draft.steps)]
    assert any("if one is available" in t for t in texts)  # the SOP's words, kept


def test_it_is_said_as_its_is_no_thing_the_section_names(tmp_path: Path) -> None:
    # "Pull up their membership first, then check it's really them" under "Booking a tee time"
    # read "Check the time's really them"; "refund it" still names the order
    procedure = _procedure(
        tmp_path,
        "returns.md",
        "# Returns desk\n\n## Refunding an order\n\n"
        "1. Look up the order with the order number, then check it's really them.\n"
        "2. Refund it.\n",
    )
    draft = build_draft(procedure, catalog=CATALOG)
    texts = [s.text for s in walk_steps(draft.steps)]
    assert any(t.startswith("Check it's really them") for t in texts), texts
    assert "issue_refund" in _calls(draft)


def test_a_case_after_a_dash_is_a_sentence_of_its_own(tmp_path: Path) -> None:
    draft = _compile(
        tmp_path,
        "Do not issue a voucher over the phone - if the customer insists, open a ticket for "
        "finance, who will write to the customer.",
    )
    assert _tests(draft) == ["the customer insists"]
    ways = _ways(draft)
    assert all("open_ticket" in w.calls for w in _side(ways, "the customer insists", "yes"))
    assert all("open_ticket" not in w.calls for w in _side(ways, "the customer insists", "no"))


def test_an_order_after_the_last_comma_of_a_test_heads_its_list(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. If the unit still does not work, arrange a repair:\n"
        "   - book a paid repair for the device.\n"
        "3. Tell the customer what happens next.\n",
    )
    assert _tests(draft) == ["the unit still does not work"]
    ways = _ways(draft)
    assert all(
        "book_paid_repair" in w.calls for w in _side(ways, "the unit still does not work", "yes")
    )
    assert not any("arrange_repair" in (s.text or "") for s in walk_steps(draft.steps))


def test_a_trailing_test_never_reaches_back_over_a_semicolon(tmp_path: Path) -> None:
    draft = _compile(
        tmp_path,
        "If the parcel is lost, do not replace the unit; the customer claims on the courier's "
        "cover if they have it.",
    )
    assert _tests(draft) == ["the parcel is lost"]


def test_an_approval_threshold_written_after_the_action_is_tested_before_it(
    tmp_path: Path,
) -> None:
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Settle the return:\n"
        "   - refund the order.\n"
        "3. Refunds of more than £500 are approved by Finance before payment: open a ticket for "
        "finance rather than refunding them yourself.\n",
    )
    test = "the refund is more than £500"
    assert test in _tests(draft)
    ways = _ways(draft)
    assert all(
        "open_ticket" in w.calls and "issue_refund" not in w.calls for w in _side(ways, test, "yes")
    )
    assert all(
        "issue_refund" in w.calls and "open_ticket" not in w.calls for w in _side(ways, test, "no")
    )


@pytest.mark.parametrize(
    ("sentence", "tests"),
    [
        (
            "A voucher over £150 needs the Shop Manager's approval before you issue it.",
            ["the voucher is over £150"],
        ),
        (
            "Refunds over GBP 3,000 are approved by a senior assessor before payment; open a "
            "ticket for finance instead.",
            ["the refund is over GBP 3,000"],
        ),
        ("Refunds over £50 are approved by Finance.", []),  # the rule says it; no case
    ],
)
def test_a_threshold_and_what_it_needs_is_its_case(
    tmp_path: Path, sentence: str, tests: list[str]
) -> None:
    assert _tests(_compile(tmp_path, sentence)) == tests


def test_calling_a_manager_hands_the_case_over_and_their_decision_goes_on(
    tmp_path: Path,
) -> None:
    draft = _compile(
        tmp_path,
        "If the customer threatens staff, call the Duty Manager. If the Duty Manager decides "
        "to close the account, cancel the order.",
    )
    ways = _ways(draft)
    threat = _side(ways, "the customer threatens staff", "yes")
    assert any("cancel_order" in w.calls for w in threat)  # the manager's decision is read on
    alone = _ways(_compile(tmp_path, "If the customer threatens staff, call the Duty Manager."))
    assert {w.end for w in _side(alone, "the customer threatens staff", "yes")} == {"escalate"}
    # calling the customer back, or a manager for approval, hands nothing over
    for step in ("Call the customer back tomorrow.", "Call your team leader for approval."):
        assert not any(s.kind == "escalate" for s in walk_steps(_compile(tmp_path, step).steps))


def test_a_pronoun_names_no_proposed_tool(tmp_path: Path) -> None:
    draft = _compile(tmp_path, "Cancel the old order first, then issue the new one.")
    assert not any("_one" in (s.text or "") for s in walk_steps(draft.steps))


def test_what_comes_first_then_the_order_is_the_order(tmp_path: Path) -> None:
    draft = _compile(
        tmp_path,
        "Once the parcel is back, accept the return. Where the parcel is damaged, the "
        "replacement is shipped first. Having checked the parcel, the Adviser refunds the order.",
    )
    ways = _ways(draft)
    assert all("accept_return" in w.calls for w in ways)
    assert all("issue_refund" in w.calls for w in ways)  # "Having ...": on every side
    once = next(
        s for s in walk_steps(draft.steps) if s.tool_call and s.tool_call.tool == "accept_return"
    )
    assert once.text.startswith("Once the parcel is back, accept the return")


def test_steps_labelled_with_cases_of_one_thing_are_those_cases(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. First complaint about an order: issue a voucher.\n"
        "3. Second complaint about the same order: refund the order.\n"
        "4. Third complaint, or any threat to staff: send the case to Fraud Review.\n",
    )
    ways = _ways(draft)
    first = _side(ways, "first complaint about an order", "yes")
    assert all("issue_voucher" in w.calls for w in first)
    third = "third complaint, or any threat to staff"
    assert {w.end for w in _side(ways, third, "yes")} == {"escalate"}
    assert any(w.end != "escalate" for w in _side(ways, third, "no"))
    # labels of different things are cases each, never one of them; the steps a decision
    # jumps to stay steps
    draft = _sop(tmp_path, "1. Refunds: refund the order.\n2. Vouchers: issue a voucher.\n")
    assert _tests(draft) == ["it is about refunds", "it is about vouchers"]
    ways = _ways(draft)
    assert any(
        w.went == {"it is about refunds": "yes", "it is about vouchers": "yes"} for w in ways
    )
    draft = _sop(
        tmp_path,
        "1. If the box is crushed, go to step 2. Otherwise, go to step 3.\n"
        "2. Crushed box fault: replace the unit.\n"
        "3. Seal fault: refund the order.\n",
    )
    assert _tests(draft) == ["the box is crushed"]


def test_an_order_for_one_case_only_is_that_case(tmp_path: Path) -> None:
    draft = _compile(tmp_path, "Issue a voucher for loyalty members only.")
    assert _tests(draft) == ["it is for loyalty members"]
    ways = _ways(draft)
    assert all(
        "issue_voucher" not in w.calls for w in _side(ways, "it is for loyalty members", "no")
    )


def test_a_case_said_to_go_to_a_team_is_handed_over(tmp_path: Path) -> None:
    step = (
        "If the customer has already moved the order once, a second request goes to the Returns "
        "Lead."
    )
    ways = _ways(_compile(tmp_path, f"{step}\n3. Refund the order."))
    moved = _side(ways, "the customer has already moved the order once", "yes")
    assert {w.end for w in moved} == {"escalate"}
    assert all("issue_refund" not in w.calls for w in moved)
    # what goes to a person for review, or to the customer, hands nothing over
    for said in (
        "The complaint goes to the Head of Quality for review.",
        "The parcel goes to the customer.",
    ):
        assert not any(s.kind == "escalate" for s in walk_steps(_compile(tmp_path, said).steps))


def test_what_an_order_is_done_through_names_its_tool(tmp_path: Path) -> None:
    task = Tool(name="task_for_team", description="Create a task for a team.", access="write")
    draft = _sop(
        tmp_path,
        "1. Book a callback with the Returns Lead through a task.\n",
        catalog=_catalog(task),
    )
    assert _calls(draft) == ["task_for_team"]


def test_a_limit_said_alone_calls_nothing(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "1. Accept the return.\n"
        "2. If the box is crushed, issue a voucher. Maximum 2 vouchers per order.\n",
        catalog=_catalog(aliases={"get_order": ["order"]}),
    )
    steps = walk_steps(draft.steps)
    said = [s for s in steps if "Maximum 2 vouchers" in s.text]
    assert all(s.tool_call is None or s.tool_call.tool != "get_order" for s in said)


def test_what_is_not_a_handover_or_a_case_of_one_thing_stays_as_written(tmp_path: Path) -> None:
    # a phone call that asks something, a thing shipped somewhere: no escalation ends the case
    for step in (
        "Phone the warehouse manager to check the stock level.",
        "Accept the return. The parcel is sent to the Returns Centre by courier.",
    ):
        draft = _compile(tmp_path, f"{step}\n3. Refund the order.")
        assert not any(s.kind == "escalate" for s in walk_steps(draft.steps)), step
        assert "issue_refund" in _calls(draft)
    # two tests of one subject that can both hold are no either/or
    draft = _compile(
        tmp_path,
        "Check the account. If the customer is a member, issue a voucher. If the customer is "
        "angry, send the case to Fraud Review.",
    )
    ways = _ways(draft)
    assert any(
        w.went.get("the customer is angry") == "yes"
        for w in _side(ways, "the customer is a member", "yes")
    )


def test_a_threshold_sentence_with_a_run_of_spaces_reads_in_linear_time(tmp_path: Path) -> None:
    # a plain-text SOP keeps its runs of spaces; the threshold form must not backtrack on them
    procedure = _procedure(
        tmp_path,
        "big.txt",
        "REFUNDS\n\n1. Look up the order.\n2. Refunds over £50 need approval"
        + " " * 20_000
        + "from the manager.\n",
    )
    assert build_draft(procedure, catalog=CATALOG).steps  # seconds before the fix: minutes


def test_an_otherwise_that_answers_no_condition_keeps_its_words(tmp_path: Path) -> None:
    draft = _compile(
        tmp_path,
        "Check the return. In any other case, including a dispute about the refund, open a "
        "ticket for finance.",
    )
    step = next(s for s in walk_steps(draft.steps) if "dispute" in s.text)
    assert step.text.startswith("In any other case, including a dispute")
    assert any("answers no condition" in q for q in draft.open_questions)


def test_a_step_that_is_the_other_side_of_the_test_before_it_is_never_run_after_it(
    tmp_path: Path,
) -> None:
    # "2. ... If we cannot replace the unit, explain. 3. If we can replace it, replace it": the
    # cannot-side never goes on into step 3's replacement
    draft = _compile(
        tmp_path,
        "Check the stock first. If we cannot replace the unit, explain the options to the "
        "customer.\n3. If we can replace it, replace the unit.",
    )
    ways = _ways(draft)
    assert all(
        "replace_unit" not in w.calls for w in _side(ways, "we cannot replace the unit", "yes")
    )
    assert any("replace_unit" in w.calls for w in _side(ways, "we cannot replace the unit", "no"))


def test_work_done_through_a_team_the_catalog_reaches_is_an_escalation(tmp_path: Path) -> None:
    raise_case = Tool.model_validate(
        _write("raise_case", "Raise a case to the Control Room or a Team Leader.")
    )
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. If the passenger is stranded overnight, arrange a hotel for them through the "
        "Control Room.\n"
        "3. Refund the order.\n",
        catalog=_catalog(raise_case),
    )
    stranded = _side(_ways(draft), "the passenger is stranded overnight", "yes")
    assert all("raise_case" in w.calls and w.end == "escalate" for w in stranded)
    assert all("issue_refund" not in w.calls for w in stranded)
    # words to the customer about a team hand nothing over
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Explain that hotels are paid through the Control Room.\n3. Refund the order.\n",
        catalog=_catalog(raise_case),
    )
    assert _calls(draft) == ["get_order", "issue_refund"]
    # a system is no team: "through the Portal" hands nothing over
    draft = _compile(tmp_path, "If the passenger is stranded, book it through the Portal.")
    assert not any(s.kind == "escalate" for s in walk_steps(draft.steps))


def test_a_task_for_a_team_and_a_promised_call_back_ends_the_branch(tmp_path: Path) -> None:
    draft = _compile(
        tmp_path,
        "If it has been more than 14 days, open a ticket for the Lab Liaison team to chase "
        "it, and tell the customer we'll call within 2 working days.\n"
        "3. If the parcel has arrived damaged, refund the order.",
    )
    late = _side(_ways(draft), "it has been more than 14 days", "yes")
    assert all(w.end == "escalate" and w.calls[-1] == "open_ticket" for w in late)
    # no team has the case: the promise is words to the customer, and the case goes on
    draft = _compile(
        tmp_path,
        "If it has been more than 14 days, issue a voucher and tell the customer we'll call "
        "them.\n3. If the parcel has arrived damaged, refund the order.",
    )
    late = _side(_ways(draft), "it has been more than 14 days", "yes")
    assert any("issue_refund" in w.calls for w in late)


def test_dashed_cases_closed_by_anything_else_run_one_at_a_time(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "The review queue gets every order the file check flags.\n\n"
        "- Prohibited content (weapons, counterfeit money) — cancel the order. Never print it.\n"
        "- Possible copyright issue — issue a voucher. If proof arrives, accept the return; "
        "if not, refund the order.\n"
        "- Anything else — accept the return.\n",
    )
    ways = _ways(draft)
    assert all(w.calls.count("accept_return") <= 1 for w in ways)
    assert all(not ({"cancel_order", "issue_voucher"} <= set(w.calls)) for w in ways)
    prohibited = _side(ways, "prohibited content (weapons, counterfeit money)", "yes")
    assert all("accept_return" not in w.calls for w in prohibited)
    # the otherwise-side of the copyright case is its refund, never the release of the rest
    refused = _side(ways, "proof arrives", "no")
    assert all("accept_return" not in w.calls and "issue_refund" in w.calls for w in refused)
    assert not any(r.text.startswith("Prohibited content") for r in draft.rules)


def test_a_document_s_control_line_definitions_and_contacts_are_no_rules(tmp_path: Path) -> None:
    procedure = _procedure(
        tmp_path,
        "print.md",
        "# Print desk\n\nOwner: Support Operations · Version 1.9 · Internal only\n\n"
        "## Definitions\n\n"
        "- **Proof** — a PDF preview of the print file that the customer must approve.\n\n"
        "## Cancel an order\n\n1. Look up the order.\n2. Cancel the order.\n\n"
        "## Escalation contacts\n\n"
        "- Finance Director: via Credit Control only\n- Support Team Lead: on-call rota\n",
    )
    draft = build_draft(procedure, catalog=CATALOG)
    said = [r.text for r in draft.rules] + [f"{e.when} {e.then}" for e in draft.edge_cases]
    assert not [t for t in said if re.search(r"Owner|Proof|Finance Director|Team Lead", t)]
    assert _calls(draft) == ["get_order", "cancel_order"]


def test_a_refused_stand_in_for_what_is_unavailable_ends_the_case(tmp_path: Path) -> None:
    draft = _compile(
        tmp_path,
        "If the model is out of stock, offer the next model up at the same price. If the "
        "customer declines, issue a voucher.\n3. Replace the unit.",
    )
    ways = _ways(draft)
    declined = _side(ways, "the customer declines", "yes")
    assert all("issue_voucher" in w.calls and "replace_unit" not in w.calls for w in declined)
    accepted = _side(ways, "the customer declines", "no")
    assert all("replace_unit" in w.calls for w in accepted)
    # an add-on turned down is no stand-in: the case goes on
    draft = _compile(
        tmp_path,
        "Offer the extended warranty. If the customer declines, issue a voucher.\n"
        "3. Replace the unit.",
    )
    declined = _side(_ways(draft), "the customer declines", "yes")
    assert all("replace_unit" in w.calls for w in declined)


def test_a_step_done_either_way_follows_a_branch_that_ends_the_case(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. If the order is more than 30 days late, decline the request.\n"
        "3. Otherwise, issue a voucher.\n"
        "4. Record the decision on the order either way with `accept_return`.\n",
    )
    ways = _ways(draft)
    assert all(w.calls[-1] == "accept_return" for w in ways)
    late = _side(ways, "the order is more than 30 days late", "yes")
    assert all("issue_voucher" not in w.calls for w in late)


def test_a_tool_alias_said_as_what_is_not_done_is_no_call(tmp_path: Path) -> None:
    charge = Tool.model_validate(
        {**_write("charge_fee", "Charge a fee to the card on the order."), "aliases": ["late fee"]}
    )
    catalog = _catalog(charge)
    for waived in ("waive the late fee", "no fee applies", "accept the return without a fee"):
        draft = _sop(
            tmp_path,
            "1. Look up the order with the order number.\n"
            f"2. If the order is a gift, {waived}. Otherwise, charge the late fee.\n",
            catalog=catalog,
        )
        ways = _ways(draft)
        assert all("charge_fee" not in w.calls for w in _side(ways, "the order is a gift", "yes"))
        assert all("charge_fee" in w.calls for w in _side(ways, "the order is a gift", "no"))


def test_a_kind_of_case_named_with_its_examples_is_that_case(tmp_path: Path) -> None:
    charge = Tool.model_validate(_write("charge_fee", "Charge a damage fee to the card."))
    draft = _sop(
        tmp_path,
        "Something has broken: a bed frame, a sofa.\n\n"
        "- Look up the order with the order number.\n"
        "- Wear from normal use — replace the unit at our cost.\n"
        "- Accidental damage by the customer (stains, pet damage, burns): charge the damage fee. "
        "Where the customer took our Care Cover add-on, there's no fee.\n"
        "- Never refund the order.\n",
        catalog=_catalog(charge),
    )
    ways = _ways(draft)
    damage = "accidental damage by the customer (stains, pet damage, burns)"
    assert all("charge_fee" not in w.calls for w in _side(ways, damage, "no"))
    covered = _side(ways, "the customer took our Care Cover add-on", "yes")
    assert all("charge_fee" not in w.calls for w in covered)
    uncovered = _side(ways, "the customer took our Care Cover add-on", "no")
    assert all("charge_fee" in w.calls for w in uncovered)


def test_items_under_a_rules_lead_restrict_the_steps_and_add_none(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "Look up the order with the order number. If the parcel arrived damaged, refund the "
        "order.\n\n"
        "Additional rules:\n\n"
        "- A customer may ask for a partial refund. Refund the order only if the parcel is "
        "returned; never more than once.\n"
        "- After any refund, issue a voucher.\n",
    )
    ways = _ways(draft)
    undamaged = _side(ways, "the parcel arrived damaged", "no")
    assert all("issue_refund" not in w.calls for w in undamaged)
    assert any("After any refund" in s.text for s in walk_steps(draft.steps))  # an order stays
    assert any(r.kind == "only_if" and "parcel is returned" in r.text for r in draft.rules)


def test_a_case_that_stops_the_request_is_tested_before_anything_is_written(
    tmp_path: Path,
) -> None:
    # "3.6 ... Where the Tenant declares any such goods, the letting shall not proceed", written
    # after the steps that let the unit
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Accept the return.\n"
        "3. Refund the order.\n"
        "4. The Adviser must not accept hazardous goods, including fuel, gas cylinders or "
        "firearms. Where the customer declares any such goods, the return shall not proceed.\n",
    )
    ways = _ways(draft)
    declared = _side(ways, "the customer declares any such goods", "yes")
    assert all(w.calls == ["get_order"] for w in declared)
    assert all(
        w.calls == ["get_order", "accept_return", "issue_refund"]
        for w in _side(ways, "the customer declares any such goods", "no")
    )
    # a test of how a step went stays after it
    draft = _compile(
        tmp_path,
        "Refund the order.\n3. If the refund is declined, the return shall not proceed.",
    )
    declined = _side(_ways(draft), "the refund is declined", "yes")
    assert all(w.calls == ["get_order", "issue_refund"] for w in declined)


def test_a_case_named_before_a_colon_guards_its_orders_on_both_sides(tmp_path: Path) -> None:
    # "[ ] Honeybees: DO NOT BOOK. Give the beekeeper swarm line. End call." in a checklist
    draft = _sop(
        tmp_path,
        "- Look up the order with the order number.\n"
        "- Hazardous goods: DO NOT ACCEPT THE RETURN. Give the customer the recycling line. "
        "End the call.\n"
        "- Accept the return.\n"
        "- Tip: print the label for the customer.\n",
    )
    ways = _ways(draft)
    test = "it is about hazardous goods"
    assert test in _tests(draft)
    for way in _side(ways, test, "yes"):
        assert way.calls == ["get_order"] and way.end == "resolve"
    assert all("accept_return" in w.calls for w in _side(ways, test, "no"))
    # a remark, a rule and a step number before a colon are no cases
    assert len(_tests(draft)) == 1
    for said in (
        "Note: accept the return.",
        "A refund needs a team lead's approval: open a ticket for finance.",
        "Step 2: accept the return.",
    ):
        assert _tests(_compile(tmp_path, said)) == [], said


def test_a_warm_transfer_hands_the_case_over_and_ends_the_branch(tmp_path: Path) -> None:
    transfer = Tool.model_validate(
        _write("refer_to_supervisor", "Transfer a caller to the shift supervisor.")
    )
    draft = _sop(
        tmp_path,
        "- Look up the order with the order number.\n"
        "- Commercial orders: do not refund it yourself. Warm transfer to the supervisor.\n"
        "- Refund the order.\n",
        catalog=_catalog(transfer),
    )
    ways = _ways(draft)
    for way in _side(ways, "it is about commercial orders", "yes"):
        assert "issue_refund" not in way.calls and way.end == "escalate"
        assert "refer_to_supervisor" in way.calls


def test_labelled_cases_of_one_thing_are_one_of_them_even_over_sub_items(
    tmp_path: Path,
) -> None:
    # "Step 2. Private land: close the report ... Step 3. Public land: (its own cases)"
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Marketplace order: cancel the order and tell the customer the seller's address.\n"
        "3. Own-stock order:\n"
        "    - Small items: accept the return.\n"
        "    - Large items: book a paid repair.\n",
    )
    ways = _ways(draft)
    for way in _side(ways, "marketplace order", "yes"):
        assert way.calls == ["get_order", "cancel_order"]
    own = _side(ways, "own-stock order", "yes")
    assert {tuple(w.calls) for w in own} >= {("get_order", "accept_return")}


def test_what_a_thing_does_not_do_is_no_call(tmp_path: Path) -> None:
    # "Remote opening does not work on an offline locker": a tool's own word first
    remote = Tool.model_validate(_write("remote_open_locker", "Open a locker door remotely."))
    draft = _sop(
        tmp_path,
        "- Look up the order with the order number.\n"
        "- Remote opening does not work on an offline locker. Accept the return.\n",
        catalog=_catalog(remote),
    )
    assert _calls(draft) == ["get_order", "accept_return"]


def test_it_is_the_thing_a_heading_of_two_tasks_acts_on(tmp_path: Path) -> None:
    text = (
        "# Returns desk\n\n## Moving or cancelling an order\n\n"
        "1. Look up the order with the order number.\n"
        '2. If the customer is unwell, cancel it with the reason "medical".\n'
    )
    draft = build_draft(_procedure(tmp_path, "returns.md", text), catalog=CATALOG)
    ways = _ways(draft)
    assert all("cancel_order" in w.calls for w in _side(ways, "the customer is unwell", "yes"))


def test_a_case_where_no_write_shall_be_done_ends_before_that_write(tmp_path: Path) -> None:
    # "Where the vehicle shows more than 100,000 miles, the warranty has lapsed and no claim
    # shall be opened." above "Where the fault is covered, open a warranty claim."
    claim = Tool.model_validate(_write("open_warranty_claim", "Open a warranty claim."))
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Where the unit is more than 3 years old, the warranty has lapsed and no claim shall "
        "be opened.\n"
        "3. Where the fault is covered, open a warranty claim.\n",
        catalog=_catalog(claim),
    )
    ways = _ways(draft)
    old = "the unit is more than 3 years old"
    assert all("open_warranty_claim" not in w.calls for w in _side(ways, old, "yes"))
    assert any("open_warranty_claim" in w.calls for w in _side(ways, old, "no"))


def test_a_colon_ends_the_test_and_a_list_of_orders_is_each_order(tmp_path: Path) -> None:
    step = (
        "If the parcel holds a hazardous item: tell the customer not to open it, refund the "
        "order, and open a ticket for the safety team."
    )
    draft = _compile(tmp_path, step)
    test = "the parcel holds a hazardous item"
    assert _tests(draft) == [test]
    for way in _side(_ways(draft), test, "yes"):
        assert way.calls[-2:] == ["issue_refund", "open_ticket"]


def test_a_macros_when_to_use_line_is_no_test(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "**When to use:** the customer received a damaged parcel.\n\n"
        "**Steps**\n"
        "1. Look up the order with the order number.\n"
        "2. Refund the order.\n",
    )
    assert not any("to use" in s.text for s in walk_steps(draft.steps))
    assert _calls(draft) == ["get_order", "issue_refund"]
    assert not draft.open_questions


def test_a_case_for_a_kind_of_thing_named_before_a_colon(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "- Look up the order with the order number.\n"
        "- For anything over 30 kg: book a paid repair.\n"
        "- Accept the return.\n",
    )
    test = "it is for anything over 30 kg"
    assert test in _tests(draft)
    assert all("book_paid_repair" not in w.calls for w in _side(_ways(draft), test, "no"))


def test_a_band_over_a_limit_is_tested_before_the_call_it_replaces(tmp_path: Path) -> None:
    # "Otherwise refund the substituted item. You can refund up to £25 of substitutions per
    # order yourself; over £25, raise a ticket to the Team Lead instead of refunding."
    draft = _compile(
        tmp_path,
        "Refund the order. You can refund up to £25 per order yourself; over £25, open a "
        "ticket for finance instead of refunding.",
    )
    ways = _ways(draft)
    test = "the refund is over £25"
    for way in _side(ways, test, "yes"):
        assert "open_ticket" in way.calls and "issue_refund" not in way.calls
    for way in _side(ways, test, "no"):
        assert "issue_refund" in way.calls and "open_ticket" not in way.calls


def test_putting_the_call_through_to_someone_hands_it_to_the_tool_named_for_them(
    tmp_path: Path,
) -> None:
    duty = Tool.model_validate(
        _write("transfer_to_duty_manager", "Warm-transfer the call to the duty manager.")
    )
    draft = _compile(
        tmp_path,
        "If the customer reports an injury, put the call through to the duty manager straight "
        "away.",
    )
    ways = _ways(draft)
    assert {w.end for w in _side(ways, "the customer reports an injury", "yes")} == {"escalate"}
    draft = build_draft(
        _procedure(
            tmp_path,
            "returns.md",
            "# Returns desk\n\n## Handle a return request\n\n"
            "1. Look up the order with the order number.\n"
            "2. If the customer reports an injury, put the call through to the duty manager.\n"
            "3. Refund the order.\n",
        ),
        catalog=_catalog(duty),
    )
    for way in _side(_ways(draft), "the customer reports an injury", "yes"):
        assert way.calls == ["get_order", "transfer_to_duty_manager"] and way.end == "escalate"


def test_two_records_looked_up_together_are_two_lookups(tmp_path: Path) -> None:
    customer = Tool.model_validate(
        {"name": "get_customer", "description": "Look up a customer by email: profile, tier."}
    )
    text = (
        "# Returns desk\n\n## Handle a return request\n\n"
        "1. The first thing to do is to look up the customer and the order.\n"
        "2. Refund the order.\n"
    )
    draft = build_draft(_procedure(tmp_path, "returns.md", text), catalog=_catalog(customer))
    assert _calls(draft) == ["get_customer", "get_order", "issue_refund"]
    # one tool that returns both: one lookup
    orders = Tool.model_validate(
        {"name": "get_customer", "description": "Look up a customer and their order history."}
    )
    draft = build_draft(_procedure(tmp_path, "returns.md", text), catalog=_catalog(orders))
    assert _calls(draft)[0] == "get_customer" and _calls(draft).count("get_order") == 0


def test_a_case_said_to_need_nothing_more_ends_there(tmp_path: Path) -> None:
    # "2. Less than 30 minutes late: give the customer the new arrival time. Nothing else is
    # needed." over "4. Missed entirely because of us (van breakdown): refund the order."
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Less than 30 minutes late: tell the customer the new time. Nothing else is needed.\n"
        "3. Missed entirely because of us (van breakdown, no driver): refund the order.\n",
    )
    ways = _ways(draft)
    late = "it is about less than 30 minutes late"
    assert all(w.calls == ["get_order"] for w in _side(ways, late, "yes"))
    missed = "it is about missed entirely because of us (van breakdown, no driver)"
    assert all("issue_refund" not in w.calls for w in _side(ways, missed, "no"))


def test_a_branch_that_says_stop_there_ends_there(tmp_path: Path) -> None:
    step = (
        "If the customer has no receipt, point them to the returns page on our website and stop "
        "there."
    )
    draft = _compile(tmp_path, f"{step}\n3. Accept the return.")
    ways = _ways(draft)
    assert all(w.calls == ["get_order"] for w in _side(ways, "the customer has no receipt", "yes"))
    assert all("accept_return" in w.calls for w in _side(ways, "the customer has no receipt", "no"))


@pytest.mark.parametrize("then", ["stop and open", "open"])
def test_a_call_that_stops_its_side_ends_it(tmp_path: Path, then: str) -> None:
    # "If any author refuses to sign, stop and refer the case to the Research Integrity team":
    # the referral is made, and nothing after it runs on that side; "... and stop there" too
    step = f"If the parcel arrived open, {then} a ticket for the Quality team"
    step += "." if then.startswith("stop") else " and stop there."
    draft = _compile(tmp_path, f"{step}\n3. Accept the return.")
    ways = _ways(draft)
    for way in _side(ways, "the parcel arrived open", "yes"):
        assert way.calls == ["get_order", "open_ticket"], way
    assert all("accept_return" in w.calls for w in _side(ways, "the parcel arrived open", "no"))
    assert not [s for s in walk_steps(draft.steps) if s.text.casefold().startswith("stop")]


@pytest.mark.parametrize("carry", ["carry on.", "continue as normal.", "proceed with the return."])
def test_beside_a_case_that_carries_on_the_other_case_ends(tmp_path: Path, carry: str) -> None:
    # "1.2 Check the IMEI against the stolen device register. - Flagged as stolen: do not book
    # it in. Call Loss Prevention. - Not flagged: carry on.": the stolen phone was booked in
    step = (
        "Check the serial number against the recall list.\n"
        "   - On the recall list: do not accept the return. Tell the customer to contact the "
        "maker.\n"
        f"   - Not on the list: {carry}\n"
        "3. Accept the return."
    )
    ways = _ways(_compile(tmp_path, step))
    recalled = _side(ways, "on the recall list", "yes")
    assert all("accept_return" not in way.calls for way in recalled), recalled
    assert all("accept_return" in way.calls for way in _side(ways, "on the recall list", "no"))


@pytest.mark.parametrize(
    "handed",
    [
        "If the box is crushed, open a ticket for the Warehouse team, who will call the customer "
        "back.",
        # "put a same-day message on the duty vet's list so they can call the owner and
        # decide": the next consult was booked on that side too
        "If the box is crushed, open a ticket for the Warehouse team so they can call the "
        "customer and decide.",
    ],
)
def test_a_side_that_hands_the_case_to_a_team_who_will_act_ends_there(
    tmp_path: Path, handed: str
) -> None:
    # "if the member insists on leaving anyway, create a case for Membership Ops, who will write
    # to the member": the membership was then cancelled on that side too
    ways = _ways(_compile(tmp_path, f"{handed}\n3. Accept the return."))
    for way in _side(ways, "the box is crushed", "yes"):
        assert way.calls == ["get_order", "open_ticket"], way
    assert all("accept_return" in w.calls for w in _side(ways, "the box is crushed", "no"))
    # a ticket the SOP does not hand the case over with: the return goes on as written
    noted = "If the box is crushed, open a ticket for the Warehouse team."
    ways = _ways(_compile(tmp_path, f"{noted}\n3. Accept the return."))
    assert all("accept_return" in w.calls for w in _side(ways, "the box is crushed", "yes"))


def test_a_case_named_with_examples_before_a_hyphen_is_that_case(tmp_path: Path) -> None:
    # "- Safety issues (sharp edges, a collapsed frame) - tell the customer to stop using it and
    # book a swap": in a plain-text SOP the swap was booked for every fault
    text = (
        "Damaged returns\n\n"
        "- Look up the order with the order number.\n"
        "- Unsafe items (exposed wires, cracked glass, a swollen battery) - ship a replacement "
        "device on the next available day.\n"
        "- Tell the customer what happens next.\n"
    )
    draft = build_draft(_procedure(tmp_path, "returns.txt", text), catalog=CATALOG)
    test = "unsafe items (exposed wires, cracked glass, a swollen battery)"
    assert test in _tests(draft)
    ways = _ways(draft)
    assert all("replace_unit" in w.calls for w in _side(ways, test, "yes"))
    assert all("replace_unit" not in w.calls for w in _side(ways, test, "no"))


def test_dotted_steps_under_a_numbered_heading_are_siblings(tmp_path: Path) -> None:
    # "3.1 Ask for the job number. Look up the job." then "3.2 ...": the steps of section 3,
    # never 3.2 to 3.5 as sub-items of 3.1 (which then bound no tool)
    text = (
        "RETURNS DESK\n\n3. HANDLE A RETURN\n----------------\n"
        "3.1 Ask for the order number. Look up the order.\n"
        "3.2 Accept the return.\n"
        "3.3 Tell the customer what happens next.\n"
    )
    draft = build_draft(_procedure(tmp_path, "returns.txt", text), catalog=CATALOG)
    assert [s.id for s in draft.steps][:3] == ["1", "2", "3"], draft.steps
    assert _calls(draft)[:2] == ["get_order", "accept_return"]


def test_a_check_whose_sub_items_are_its_cases_still_calls_its_tool(tmp_path: Path) -> None:
    recall = Tool.model_validate(
        {
            **_write("check_recall_list", "Check a serial number against the recall list."),
            "access": "read",
        }
    )
    draft = _sop(
        tmp_path,
        "1. Check the serial number against the recall list.\n"
        "   - If it is on the list, do not accept the return.\n"
        "   - If it is not on the list, accept the return.\n",
        catalog=_catalog(recall),
    )
    assert _calls(draft)[:1] == ["check_recall_list"], _calls(draft)
    ways = _ways(draft)
    assert all("accept_return" not in w.calls for w in _side(ways, "it is on the list", "yes"))


def test_and_text_the_customer_is_a_second_action(tmp_path: Path) -> None:
    # "Book the clean and text the customer the date": the text was never sent
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Book the paid repair and text the customer the date.\n",
        catalog=_catalog(Tool.model_validate(_write("send_sms", "Text the customer."))),
    )
    assert _calls(draft) == ["get_order", "book_paid_repair", "send_sms"]


def test_the_case_a_requirement_rules_out_does_its_alternative_instead(tmp_path: Path) -> None:
    # "Exchanges are only possible if the performance is at least 48 hours away. If it's closer
    # than that, apologise and offer the returns list instead."
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Returns are only possible if the order arrived in the last 30 days. If it is older "
        "than that, apologise and offer a voucher instead.\n"
        "3. Accept the return.\n",
    )
    ways = _ways(draft)
    for way in _side(ways, "it is older than that", "yes"):
        assert "accept_return" not in way.calls
    assert all("accept_return" in w.calls for w in _side(ways, "it is older than that", "no"))


def test_a_prohibition_under_a_step_leaves_the_steps_own_call(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Refund the order.\n"
        "    - Never refund an order that was paid with a gift card.\n",
    )
    assert "issue_refund" in _calls(draft)
    # sub-items that say how the step is done still head it
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Sort out the refund:\n"
        "    - Refund the order.\n"
        "    - Issue a voucher.\n",
    )
    assert _calls(draft) == ["get_order", "issue_refund", "issue_voucher"]


def test_confirming_who_is_calling_is_no_question_when_a_tool_verifies_it(
    tmp_path: Path,
) -> None:
    verify = Tool.model_validate(
        {"name": "verify_caller", "description": "Check the caller is the account holder."}
    )
    draft = _sop(
        tmp_path,
        "1. Confirm the identity of the customer by security PIN.\n"
        "2. Look up the order with the order number.\n",
        catalog=_catalog(verify),
    )
    assert _calls(draft)[0] == "verify_caller"
    assert not any(s.kind == "ask" and "identity" in s.text for s in walk_steps(draft.steps))


def test_a_procedure_for_the_analyst_is_a_procedure_and_its_words_about_others_call_nothing(
    tmp_path: Path,
) -> None:
    text = (
        "# Desk policy\n\n## 1. Refunds\n\n1.1 The Officer shall look up the order.\n\n"
        "1.2 The Officer shall refund the order.\n\n"
        "## 2. Daily alert review\n\n2.1 The Analyst shall look up the order.\n\n"
        "2.2 Where the order is over £500, the Analyst shall open a ticket for the fraud team.\n\n"
        "2.3 The Analyst shall not contact the customer; contact is made by the fraud team.\n"
    )
    sop = tmp_path / "desk.md"
    sop.write_text(text, encoding="utf-8")
    procedures = read_procedures(sop, root=tmp_path, settings=Settings()).procedures
    assert [p.title for p in procedures] == ["Refunds", "Daily alert review"]
    review = build_draft(procedures[1], catalog=CATALOG)
    ways = _ways(review)
    assert all("open_ticket" not in w.calls for w in _side(ways, "the order is over £500", "no"))
    refunds = build_draft(procedures[0], catalog=CATALOG)
    assert not any("Analyst" in r.text for r in refunds.rules)


def test_in_any_other_case_after_a_semicolon_is_the_other_side(tmp_path: Path) -> None:
    step = (
        "If the parcel can be found within two hours, the Officer refunds the order; in any "
        "other case the Officer opens a ticket for the claims team."
    )
    ways = _ways(_compile(tmp_path, step))
    test = "the parcel can be found within two hours"
    for way in _side(ways, test, "yes"):
        assert "issue_refund" in way.calls and "open_ticket" not in way.calls
    for way in _side(ways, test, "no"):
        assert "open_ticket" in way.calls and "issue_refund" not in way.calls


def test_a_case_named_before_a_dash_guards_its_hand_over(tmp_path: Path) -> None:
    # "Sudden loss of vision, or a painful red eye — don't book a routine test. Put the caller
    # straight through to the duty optometrist." (an always-on transfer before)
    draft = _sop(
        tmp_path,
        "- Look up the order with the order number.\n"
        "- Smoke or a burning smell \u2014 don't accept the return. Put the caller straight "
        "through to the duty manager.\n"
        "- Accept the return.\n",
    )
    ways = _ways(draft)
    test = "it is about smoke or a burning smell"
    assert {w.end for w in _side(ways, test, "yes")} == {"escalate"}
    assert all("accept_return" in w.calls for w in _side(ways, test, "no"))


def test_numbered_lines_one_under_another_keep_their_otherwise(tmp_path: Path) -> None:
    # "3.1 ..." lines with no blank line between are one Markdown paragraph: the refund's
    # "Otherwise" became a step for every caller
    procedure = _procedure(
        tmp_path,
        "returns.md",
        "# Returns desk\n\n## Handle a return request\n\n"
        "3.1 Look up the order with the order number.\n"
        "3.2 If the parcel arrived damaged, refund the order.\n"
        "3.3 Otherwise, accept the return.\n",
    )
    ways = _ways(build_draft(procedure, catalog=CATALOG))
    (test,) = {t for way in ways for t in way.went}
    assert test == "the parcel arrived damaged"
    assert all(
        "issue_refund" in w.calls and "accept_return" not in w.calls
        for w in _side(ways, test, "yes")
    )
    assert all(
        "accept_return" in w.calls and "issue_refund" not in w.calls
        for w in _side(ways, test, "no")
    )


def test_a_paragraph_numbered_three_deep_keeps_its_condition(tmp_path: Path) -> None:
    # "6.3.5 Where ...": a policy's clause numbered three deep was a plain sentence, and its
    # refund ran for every caller
    procedure = _procedure(
        tmp_path,
        "policy.md",
        "# Returns policy\n\n## 6.3 Damaged parcels\n\n"
        "6.3.1 The Adviser shall look up the order with the order number.\n\n"
        "6.3.2 Where the parcel arrived damaged, the Adviser shall refund the order.\n"
        "Otherwise the Adviser shall accept the return.\n",
    )
    ways = _ways(build_draft(procedure, catalog=CATALOG))
    test = "the parcel arrived damaged"
    assert all("issue_refund" in w.calls for w in _side(ways, test, "yes"))
    assert all(
        "issue_refund" not in w.calls and "accept_return" in w.calls
        for w in _side(ways, test, "no")
    )


@pytest.mark.parametrize(
    "step",
    [
        # a question of a few words, then what to do when it holds
        "Arrived damaged? Refund the order. Otherwise, accept the return.",
        # two questions, two cases (the second was inside the first's branch)
        "Arrived damaged? Refund the order. Arrived damaged and late? Accept the return.",
    ],
)
def test_a_bare_question_guards_the_orders_after_it(tmp_path: Path, step: str) -> None:
    draft = _compile(tmp_path, step)
    ways = _ways(draft)
    test = "Arrived damaged?"
    assert test in _tests(draft)
    assert all("issue_refund" in way.calls for way in _side(ways, test, "yes"))
    for way in _side(ways, test, "no"):
        assert "issue_refund" not in way.calls, way
    assert any("accept_return" in w.calls for w in _side(ways, test, "no"))


@pytest.mark.parametrize(
    ("step", "test", "guarded"),
    [
        # a longer question that asks whether, then what to do when it holds
        (
            "Is it a fault from normal use, or a manufacturing fault? Refund the order.",
            "Is it a fault from normal use, or a manufacturing fault?",
            "issue_refund",
        ),
        # its own "If not": what to do when it does not hold (it was the yes-side)
        (
            "Is the order paid for in full? If not, do not refund the order; open a ticket for "
            "the billing team.",
            "the answer to 'Is the order paid for in full?' is no",
            "open_ticket",
        ),
    ],
)
def test_a_longer_question_guards_the_side_its_answer_names(
    tmp_path: Path, step: str, test: str, guarded: str
) -> None:
    ways = _ways(_compile(tmp_path, step))
    assert all(guarded in w.calls for w in _side(ways, test, "yes"))
    assert all(guarded not in w.calls for w in _side(ways, test, "no"))


def test_two_questions_in_a_step_are_two_cases(tmp_path: Path) -> None:
    # "Score below 40? Decline ... Score 40 or more? Open the account": the second question
    # was inside the first one's branch, so a declined applicant got the account too
    draft = _compile(
        tmp_path,
        "Score below 40? Decline the return and open a ticket for the courier team. "
        "Score 40 or more? Accept the return.",
    )
    ways = _ways(draft)
    assert {"Score below 40?", "Score 40 or more?"} <= set(_tests(draft))
    for way in _side(ways, "Score below 40?", "yes"):
        assert "open_ticket" in way.calls and "accept_return" not in way.calls, way
    assert any("accept_return" in w.calls for w in _side(ways, "Score 40 or more?", "yes"))


def test_a_question_inside_a_step_holds_the_rest_of_the_step(tmp_path: Path) -> None:
    # "Check the stock board. Short? DO NOT SUBSTITUTE. Pass the order to the shop manager":
    # the hand-over ran for every order that was not short, and none was ever placed
    draft = _compile(
        tmp_path,
        "Look at the photos. Arrived damaged? Do not argue with the customer. "
        "Open a ticket for the courier team.",
    )
    ways = _ways(draft)
    test = "Arrived damaged?"
    for way in _side(ways, test, "yes"):
        assert "open_ticket" in way.calls and "accept_return" not in way.calls, way
    for way in _side(ways, test, "no"):
        assert "open_ticket" not in way.calls and way.end == "resolve", way


def test_a_step_kept_as_said_cites_the_sops_words(tmp_path: Path) -> None:
    # "Upon the Holder's agreement, the Adviser shall deactivate ...", read as "..., deactivate
    # ...", was cited in the reading's words, and the routine failed validation
    procedure = _procedure(
        tmp_path,
        "policy.md",
        "# Season tickets\n\n## 6.1 Refunds\n\n"
        "6.1.1 The Adviser shall look up the order with the order number.\n\n"
        "6.1.2 Upon the Holder's agreement, the Adviser shall deactivate the Season on the "
        "Smartcard.\n",
    )
    draft = build_draft(procedure, catalog=CATALOG)
    issues = check_draft(draft, procedure=procedure, catalog=CATALOG, settings=Settings())
    assert not [i for i in issues if i.severity == "error"], issues
    (step,) = [s for s in walk_steps(draft.steps) if "Smartcard" in s.text]
    assert step.source is not None
    assert step.source.quote.startswith("Upon the Holder's agreement, the Adviser shall")


def test_done_ends_the_branch_it_closes(tmp_path: Path) -> None:
    # "Open the order. If the delivery date is still in the future, reassure the caller. Done.":
    # the reassured caller's delivery was rebooked all the same
    draft = _compile(
        tmp_path,
        "If the order has not shipped yet, tell the customer it is on its way. Done.\n"
        "3. Cancel the order.",
    )
    ways = _ways(draft)
    test = "the order has not shipped yet"
    assert all("cancel_order" not in w.calls for w in _side(ways, test, "yes"))
    assert all("cancel_order" in w.calls for w in _side(ways, test, "no"))


def test_an_order_of_one_word_before_and_is_an_order_of_its_own(tmp_path: Path) -> None:
    # "apologise and refer it to the handling editor": one "say" step, and the case was never
    # referred (a ticket tool's order inside a sentence the agent only says)
    draft = _compile(
        tmp_path, "If the order is more than 30 days late, apologise and open a ticket for finance."
    )
    ways = _ways(draft)
    test = "the order is more than 30 days late"
    assert all("open_ticket" in w.calls for w in _side(ways, test, "yes"))
    assert all("open_ticket" not in w.calls for w in _side(ways, test, "no"))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        # the orders after the question's answer go on for every case
        (
            "returns.md",
            "# Desk\n\n## Returns\n\n1. Look up the order with the order number. "
            "No receipt? Open a ticket for finance. Refund the order.\n",
        ),
        # the steps under the item that holds the question are every case's
        (
            "returns.txt",
            "1. RETURNS\n\n1.1 Look up the order with the order number. No receipt? "
            "Open a ticket for finance.\n1.2 Refund the order.\n",
        ),
    ],
)
def test_a_question_inside_a_step_leaves_the_orders_that_go_on_to_every_case(
    tmp_path: Path, name: str, text: str
) -> None:
    # "Find the customer. No record? Create one." over "Check the IMEI ...", "Create the repair
    # job": every customer with a record skipped the rest of the booking
    ways = _ways(build_draft(_procedure(tmp_path, name, text), catalog=CATALOG))
    test = "No receipt?"
    assert all("open_ticket" in w.calls for w in _side(ways, test, "yes"))
    for way in _side(ways, test, "no"):
        assert "issue_refund" in way.calls and "open_ticket" not in way.calls, way


def test_a_paragraph_after_a_conditional_last_step_is_tested_on_every_path(tmp_path: Path) -> None:
    # "5. If the client cannot be without an aid, offer a loan aid." then, unnumbered, "Where an
    # aid is lost, do not raise a repair job": the lost aid was tested only for clients who
    # could not be without one
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. If the box is damaged, replace the unit.\n\n"
        "Where the parcel is lost, do not replace the unit; issue a voucher.\n",
    )
    ways = _ways(draft)
    # the paragraph after the list is the section's, not the last step's: tested on every path
    assert all("the parcel is lost" in w.went for w in ways), [w.went for w in ways]
    for way in _side(ways, "the parcel is lost", "yes"):
        assert "issue_voucher" in way.calls and "replace_unit" not in way.calls, way
    not_lost = _side(ways, "the parcel is lost", "no")
    assert {w.went.get("the box is damaged") for w in not_lost} == {"yes", "no"}


@pytest.mark.parametrize(
    ("sentence", "case"),
    [
        # a case named before a colon, and what to do in it
        ("Seal broken: replace the unit.", True),
        # of the things just named, what holds for them: no case of its own
        ("These returns are decided by the Quality team: pass them on.", False),
    ],
)
def test_a_sentence_about_the_things_just_named_is_no_case_label(
    tmp_path: Path, sentence: str, case: bool
) -> None:
    draft = _sop(tmp_path, f"1. Look up the order with the order number.\n2. {sentence}\n")
    assert bool(_tests(draft)) is case, _tests(draft)


def test_a_step_labelled_with_a_dash_keeps_no_dash(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "**Step 1 — Find the order** with the order number.\n\n**Step 2 — Refund the order.**\n",
    )
    assert [s.text.split(" (")[0] for s in draft.steps[:2]] == [
        "Find the order with the order number",
        "Refund the order",
    ]


def test_a_quoted_note_is_no_script_for_the_step_above_it(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Refund the order.\n\n"
        "> **Important:** never refund an order to a card other than the one it was paid with.\n",
    )
    assert not [s.text for s in walk_steps(draft.steps) if "Important" in s.text]
    assert any("never refund an order to a card" in r.text for r in draft.rules), draft.rules


@pytest.mark.parametrize(
    "rule",
    [
        "Cash settlement is permitted only where the customer returns the item unopened.",
        "Settlements can only be made in cash to the card holder.",
        "Level 1 agents do not settle orders in cash.",
    ],
)
def test_a_stated_rule_in_a_list_of_steps_is_a_rule_and_calls_nothing(
    tmp_path: Path, rule: str
) -> None:
    # "Cash settlement is permitted only where the policyholder provides a written quotation",
    # a bullet among the steps, called `settle_cash` before the quotation was checked
    catalog = _catalog(
        Tool.model_validate(
            {**_write("settle_cash", "Settle an order in cash."), "aliases": ["cash settlement"]}
        )
    )
    draft = _sop(
        tmp_path,
        f"- Look up the order with the order number.\n- {rule}\n- Check the item.\n"
        "- Settle the order in cash.\n",
        catalog=catalog,
    )
    assert _calls(draft) == ["get_order", "settle_cash"], _calls(draft)
    assert [r for r in draft.rules if r.text == rule]


_DIARY = _catalog(
    Tool.model_validate(
        {
            "name": "get_engineer_slots",
            "description": "List free engineer visit slots for a postcode area over the next days.",
            "access": "read",
            "parameters": {"type": "object", "properties": {"postcode_area": {"type": "string"}}},
        }
    ),
    Tool.model_validate(_write("book_callout", "Book an engineer visit into a slot.")),
)


def test_a_check_of_a_record_a_read_tool_lists_calls_that_tool(tmp_path: Path) -> None:
    # "Check the engineer diary for the postcode area" with `get_engineer_slots`, "List free
    # engineer visit slots for a postcode area": a word of its name and two of its description
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Check the engineer diary for the postcode area.\n"
        "3. Check the order status on the order.\n",
        catalog=_DIARY,
    )
    assert _calls(draft) == ["get_order", "get_engineer_slots"], _calls(draft)


def test_a_labelled_case_under_a_step_leaves_the_step_its_own_call(tmp_path: Path) -> None:
    # "5. Book the slot." over "- Same-day slots: add GBP 25.": a case of the booking, not how
    # it is done, so the booking still calls `book_callout` (it proposed `book_slot`), and an
    # amount names no tool (`add_gbp_25`)
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Book the slot.\n"
        "   - Same-day slots: add GBP 25.\n",
        catalog=_DIARY,
    )
    assert _calls(draft) == ["get_order", "book_callout"], _calls(draft)
    assert draft.tools_proposed == []


def test_an_exception_in_brackets_is_the_case_it_opens_with(tmp_path: Path) -> None:
    # "B.5 (Exception: if we cancel because we cannot supply a crew, refund the deposit in full,
    # and refer the job to the Operations team.)": every cancellation was referred, and ended
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Cancel the order.\n"
        "3. (Exception: if we cancel because the item is out of stock, send the customer a "
        "discount voucher.)\n"
        "4. Tell the customer what happens next.\n",
    )
    ways = _ways(draft)
    test = "we cancel because the item is out of stock"
    assert all("issue_voucher" in w.calls for w in _side(ways, test, "yes"))
    assert all("issue_voucher" not in w.calls for w in _side(ways, test, "no"))


def test_a_case_that_refuses_a_write_is_tested_before_the_write(tmp_path: Path) -> None:
    # "Where there is a court order ..., do not add anyone — transfer the request to the
    # Safeguarding Lead", written after "Add the collector": it was "If this rule applies to
    # the request: ...", tested after the collector was added
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Replace the unit.\n"
        "3. Tell the customer what happens next.\n\n"
        "Where the order is flagged for fraud, do not replace anything \u2014 escalate to the "
        "Fraud team.\n",
    )
    ways = _ways(draft)
    test = "the order is flagged for fraud"
    assert test in _tests(draft), _tests(draft)
    for way in _side(ways, test, "yes"):
        assert "replace_unit" not in way.calls and way.end == "escalate", way
    assert all("replace_unit" in w.calls for w in _side(ways, test, "no"))


_TEAM_ENUM = _catalog(
    Tool.model_validate(
        {
            "name": "escalate_case",
            "description": "Pass a case to another team with a summary.",
            "access": "write",
            "parameters": {
                "type": "object",
                "properties": {"team": {"type": "string", "enum": ["billing", "hardware"]}},
            },
        }
    )
)


@pytest.mark.parametrize(
    ("line", "calls"),
    [
        # who runs the procedure, said with a team value: no order, no call
        ("Back-office, run every Monday by the Billing team.", []),
        # an order in the passive voice names the value with its parameter
        ("Any such order shall be escalated to the hardware team.", ["escalate_case"]),
    ],
)
def test_a_parameter_value_said_with_its_name_calls_its_tool_only_in_an_order(
    tmp_path: Path, line: str, calls: list[str]
) -> None:
    draft = _sop(
        tmp_path, f"{line}\n\n1. Look up the order with the order number.\n", catalog=_TEAM_ENUM
    )
    assert [c for c in _calls(draft) if c != "get_order"] == calls, _calls(draft)


def test_two_cases_of_one_test_keep_their_order_when_the_second_refuses_the_write(
    tmp_path: Path,
) -> None:
    # "If the manuscript has not yet been accepted: ... Withdraw it." then "If it has been
    # accepted, do not withdraw it. Refer the request to the Editor-in-Chief": the refusal
    # moved in front, and the first case's otherwise jumped back to it
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. If the order has not shipped, cancel the order.\n"
        "3. If the order has shipped, do not cancel the order. Escalate to the Dispatch team.\n",
    )
    order = [s.id for s in walk_steps(draft.steps)]
    for step in walk_steps(draft.steps):
        if step.condition is not None and step.condition.else_step:
            assert order.index(step.condition.else_step) > order.index(step.id), step
    ways = _ways(draft)
    assert all("cancel_order" in w.calls for w in _side(ways, "the order has not shipped", "yes"))
    for way in _side(ways, "the order has shipped", "yes"):
        assert "cancel_order" not in way.calls and way.end == "escalate", way


def test_a_quoted_script_joins_its_step_without_stray_punctuation(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Reply.\n\n"
        "   > Hi, sorry about the wait.\n",
    )
    (reply,) = [s for s in walk_steps(draft.steps) if "sorry" in s.text]
    assert reply.text.startswith('Reply: "Hi, sorry about the wait."'), reply.text


def test_confirm_that_is_a_check_never_the_confirming_write(tmp_path: Path) -> None:
    # "Confirm that the group will meet the minimum supervision ratio" called
    # `confirm_group_booking`, which the SOP forbids in that procedure
    catalog = _catalog(
        Tool.model_validate(_write("confirm_order", "Confirm an order for dispatch."))
    )
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Confirm that the order will meet the weight limit.\n",
        catalog=catalog,
    )
    assert "confirm_order" not in _calls(draft), _calls(draft)


_TEXTS = _catalog(
    Tool.model_validate(
        {
            "name": "send_text",
            "description": "Text the customer a standard message.",
            "access": "write",
            "parameters": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string"},
                    "template": {"type": "string", "enum": ["delivery_confirmed", "delay"]},
                },
            },
        }
    )
)


def test_how_a_steps_call_is_made_is_that_call_not_a_second_one(tmp_path: Path) -> None:
    # "Text the patient to confirm the day. Use the "Delivery confirmed" template": two texts
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        '2. Text the customer to confirm the day. Use the "delivery_confirmed" template.\n',
        catalog=_TEXTS,
    )
    texts = [s for s in walk_steps(draft.steps) if s.tool_call and s.tool_call.tool == "send_text"]
    assert len(texts) == 1, [s.text for s in texts]
    assert texts[0].tool_call is not None
    assert ("template", "delivery_confirmed") in {
        (a.name, a.value) for a in texts[0].tool_call.arguments
    }


def test_a_side_that_cannot_do_it_yet_ends_there(tmp_path: Path) -> None:
    # "If it's still showing as awaiting GP, we can't book a delivery yet. Tell them we'll text
    # when it's in.": the delivery was then booked on that side too
    ways = _ways(
        _compile(
            tmp_path,
            "If the order is still awaiting stock, we can't replace the unit yet. Tell the "
            "customer we'll text when it's in.\n3. Replace the unit.",
        )
    )
    assert all(
        "replace_unit" not in w.calls
        for w in _side(ways, "the order is still awaiting stock", "yes")
    )
    assert all(
        "replace_unit" in w.calls for w in _side(ways, "the order is still awaiting stock", "no")
    )


def test_a_callout_with_its_own_case_before_the_steps_is_tested_first(tmp_path: Path) -> None:
    # "> Before you apply: If the order is flagged as fraud, stop and tell them to ..., ... and
    # ... . Do not refund it. Put it to the fraud team straight after.": the case is the first
    # step; told what to do, the case ends only after its last sentence, at the hand-over
    draft = _sop(
        tmp_path,
        "> **Before you apply:** If the order is flagged as fraud, or the card was reported "
        "stolen, stop and tell them to hang up, call their bank and keep the parcel. Do not "
        "refund it. Open a ticket for the fraud team straight after.\n\n"
        "1. Look up the order with the order number.\n"
        "2. Refund the order to the original payment method.\n",
    )
    test = _tests(draft)[0]
    assert "flagged as fraud" in test and "reported stolen" in test
    (flagged,) = _side(_ways(draft), test, "yes")
    assert flagged.calls == ["open_ticket"]  # no refund, and the ticket is not skipped
    assert all("issue_refund" in way.calls for way in _side(_ways(draft), test, "no"))
    told = [s.text for s in walk_steps(draft.steps) if s.text.startswith("Tell them")]
    assert told == ["Tell them to hang up, call their bank and keep the parcel."]
    # a callout that is a note stays out of the steps
    noted = _sop(
        tmp_path,
        "> **Before you apply:** the customer must be the account holder.\n\n"
        "1. Look up the order with the order number.\n",
    )
    assert not _tests(noted)


def test_a_sub_item_done_instead_of_its_step_replaces_the_steps_call(tmp_path: Path) -> None:
    # "2. Refund the order. - If it was a gift, send a voucher instead of a refund": the refund
    # is made only when it was no gift, never before the voucher
    body = (
        "1. Look up the order with the order number.\n"
        "2. Refund the order to the original payment method.\n"
        "   - If the order was a gift, send the customer a discount voucher instead of a "
        "refund.\n"
        "3. Tell the customer what happens next.\n"
    )
    procedure = _procedure(
        tmp_path, "returns.md", f"# Returns desk\n\n## Handle a return\n\n{body}"
    )
    draft = build_draft(procedure, catalog=CATALOG)
    ways = _ways(draft)
    test = next(t for t in _tests(draft) if "gift" in t)
    for way in _side(ways, test, "yes"):
        assert "issue_voucher" in way.calls and "issue_refund" not in way.calls
    for way in _side(ways, test, "no"):
        assert "issue_refund" in way.calls and "issue_voucher" not in way.calls
    issues = check_draft(draft, procedure=procedure, catalog=CATALOG, settings=Settings())
    assert not [i for i in issues if i.severity == "error"]  # the quotes are each step's own
    # a sub-item that is no stand-in is a case within the step, after its call
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Refund the order to the original payment method.\n"
        "   - If the order was a gift, send the customer a discount voucher as well.\n",
    )
    assert all("issue_refund" in way.calls for way in _ways(draft))
    # nor is a fallback that tests how the call went: the refund is tried first
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Refund the order to the original payment method.\n"
        "   - If the refund is rejected, send the customer a discount voucher instead.\n",
    )
    assert all(way.calls[1] == "issue_refund" for way in _ways(draft))


def test_predicates_of_one_subject_listed_with_commas_are_one_test(tmp_path: Path) -> None:
    draft = _compile(
        tmp_path,
        "If the customer is on their own, is over 75, or has a child with them, prioritise "
        "the return.",
    )
    # the order's verb is one the compiler does not know: the commas before "is" and "or has"
    # still list the tests, and the test ends at the last comma
    (test,) = [t for t in _tests(draft) if "over 75" in t]
    assert "on their own" in test and "has a child with them" in test
    assert "prioritise" not in test


def test_a_trailing_when_whose_end_is_not_said_is_no_test(tmp_path: Path) -> None:
    # "... when they look under 16; ask for ID": the test would swallow "ask for ID", and the
    # prohibition would hold only when it is true
    draft = _compile(
        tmp_path,
        "Never refund an order without checking the receipt when it looks altered; ask for "
        "the original.",
    )
    assert not any(";" in test or "ask for" in test for test in _tests(draft))
    texts = [s.text for s in walk_steps(draft.steps)]
    assert any(t.startswith("Never refund an order without checking the receipt") for t in texts)


def test_and_stop_at_the_end_of_a_case_ends_it(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. If the order is older than a year, explain we can't refund it and stop.\n"
        "3. Refund the order to the original payment method.\n",
    )
    test = next(t for t in _tests(draft) if "older than a year" in t)
    assert all("issue_refund" not in w.calls for w in _side(_ways(draft), test, "yes"))
    assert all("issue_refund" in w.calls for w in _side(_ways(draft), test, "no"))


def test_a_table_of_what_the_customer_gets_is_a_decision_table(tmp_path: Path) -> None:
    draft = _sop(
        tmp_path,
        "Look up the order with the order number.\n\n"
        "| Order type | Returned within | What they get |\n|---|---|---|\n"
        "| Standard | 14 days | Refund the order in full |\n"
        "| Clearance | any time | Nothing. Do not refund it |\n",
    )
    tests = _tests(draft)
    standard = next(t for t in tests if "standard" in t)
    assert "14 days" in standard
    clearance = next(t for t in tests if "clearance" in t)
    assert all("issue_refund" in w.calls for w in _side(_ways(draft), standard, "yes"))
    assert all("issue_refund" not in w.calls for w in _side(_ways(draft), clearance, "yes"))


def test_the_options_a_heading_names_are_cases_only_one_of_which_runs(tmp_path: Path) -> None:
    # "3) SKIPPING A CLEAN OR CANCELLING" over "Skip: fine, skip the next visit." and "Cancel:"
    # over numbered steps: every caller skipped the visit and then cancelled the round
    text = (
        "Returns desk notes\n==================\n\n"
        "REFUNDS OR REPLACEMENTS\n-----------------------\n\n"
        "Refund: fine, refund the order to the original payment method.\n\n"
        "Replace:\n"
        "  1. Look up the order with the order number.\n"
        "  2. Ship a replacement device.\n"
    )
    draft = build_draft(_procedure(tmp_path, "notes.txt", text), catalog=CATALOG)
    ways = _ways(draft)
    for way in _side(ways, "the request is to refund", "yes"):
        assert way.calls == ["issue_refund"], way
    replaced = _side(ways, "the request is to replace", "yes")
    assert all(w.calls == ["get_order", "replace_unit"] for w in replaced), replaced
    # "fine," is no part of the test, nor of the order
    assert "fine" not in " ".join(_tests(draft))


def test_a_label_is_no_option_unless_the_heading_names_it(tmp_path: Path) -> None:
    text = (
        "Returns desk notes\n==================\n\n"
        "HANDLING A RETURN\n-----------------\n\n"
        "Refund: refund the order to the original payment method.\n\n"
        "Note: ship a replacement device.\n"
    )
    draft = build_draft(_procedure(tmp_path, "notes.txt", text), catalog=CATALOG)
    assert not any("the request is" in test for test in _tests(draft))


def test_a_case_that_forbids_the_bare_verb_of_a_later_call_never_reaches_it(
    tmp_path: Path,
) -> None:
    # "If they won't pay: don't cancel, pass it to me." went on into "Cancel the regular clean"
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Check if they owe anything.\n"
        "   - If they won't pay: don't cancel, pass it to me.\n"
        "3. Cancel the order and text them to confirm.\n",
    )
    ways = _ways(draft)
    assert all("cancel_order" not in w.calls for w in _side(ways, "they won't pay", "yes"))
    assert all("cancel_order" in w.calls for w in _side(ways, "they won't pay", "no"))


def test_what_is_not_done_and_what_is_done_instead_are_two_orders(tmp_path: Path) -> None:
    # "If the card declines twice, stop. Don't try a third time, send them a payment link
    # instead.": the payment link was never sent, and "Most people pay by bank transfer or cash
    # to the lads. If someone rings to pay:" was the step "Check whether someone rings to pay"
    text = (
        "Returns desk notes\n==================\n\n"
        "TAKING A REFUND CALL\n--------------------\n\n"
        "Most people get refunds online. If someone rings to ask for one:\n\n"
        "  1. Look up the order with the order number.\n"
        "  2. Refund the order to the card.\n"
        "       -> If the refund fails twice, stop. Don't try a third time, send them a "
        "discount voucher instead.\n\n"
        "Never refund an order twice, I'd rather check it myself when I'm back.\n"
    )
    draft = build_draft(_procedure(tmp_path, "notes.txt", text), catalog=CATALOG)
    ways = _ways(draft)
    for way in _side(ways, "the refund fails twice", "yes"):
        assert way.calls == ["get_order", "issue_refund", "issue_voucher"], way
    assert all("issue_voucher" not in w.calls for w in _side(ways, "the refund fails twice", "no"))
    steps = [s.text for s in walk_steps(draft.steps)]
    assert not any("rings" in text for text in steps), steps
    # "when I'm back" is the writer's, no test of the rule
    assert _tests(draft) == ["the refund fails twice"]


def test_the_first_of_two_labelled_cases_ends_after_the_second_even_when_its_steps_move(
    tmp_path: Path,
) -> None:
    # a parcel locker desk: "Locker offline: ... book a technician" went on into "Open it
    # remotely", because the online case's check of the empty compartment was moved before the
    # opening, and the offline case ended where the online one's last step as written had been
    text = (
        "Returns desk notes\n==================\n\n"
        "PART B - RETURN WILL NOT PRINT\n------------------------------\n\n"
        "  1. Look up the order with the order number.\n\n"
        "  2. Parcel offline:\n"
        "       Cancel the order, and tell the customer the refund follows.\n\n"
        "  3. Parcel online:\n"
        "       a. Ask the customer to read the code on the screen.\n"
        "       b. Accept the return. No more than 2 tries per order - if the label still does "
        "not print after the second try, book a paid repair.\n"
        "       c. Label prints but the parcel is empty: do not accept it again. Issue a voucher "
        "and tell the customer.\n\n"
        "  NOTE: damaged parcels are reported through a ticket.\n"
    )
    draft = build_draft(_procedure(tmp_path, "desk.txt", text), catalog=CATALOG)
    for way in _side(_ways(draft), "parcel offline", "yes"):
        assert way.calls == ["get_order", "cancel_order"], way
    online = _side(_ways(draft), "parcel online", "yes")
    assert all("cancel_order" not in w.calls and len(w.calls) > 1 for w in online), online
    # "do not accept it again" refuses doing twice what was done: its case is tested after
    # the return is accepted, never before it
    for way in _side(_ways(draft), "label prints but the parcel is empty", "yes"):
        assert way.calls[:2] == ["get_order", "accept_return"], way
        assert way.calls[-1] == "issue_voucher", way


def test_yes_and_no_under_an_offer_are_its_two_answers(tmp_path: Path) -> None:
    # "If the membership has lapsed: offer the one-off callout." over "- Yes, they'll pay: take
    # the £145 and then send the patrol" and "- No: close the ticket": both ran, one after the
    # other, so a member who said no was charged and sent a patrol
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. If the order is past 30 days: offer a paid repair.\n"
        "   - Yes, they want it: book the paid repair.\n"
        "   - No: issue a voucher. Do nothing else.\n"
        "3. Accept the return.\n",
    )
    ways = _ways(draft)
    accepted = _side(ways, "they accept a paid repair", "yes")
    assert all("book_paid_repair" in w.calls and "issue_voucher" not in w.calls for w in accepted)
    declined = _side(ways, "they accept a paid repair", "no")
    assert all("issue_voucher" in w.calls and "book_paid_repair" not in w.calls for w in declined)
    # the offer is made only in its case
    assert all(
        "they accept a paid repair" not in w.went
        for w in _side(ways, "the order is past 30 days", "no")
    )


def test_a_test_that_orders_nothing_in_a_note_is_no_check(tmp_path: Path) -> None:
    # "Note: a cancelled job cannot be un-cancelled. If they ring back 10 mins later it's a new
    # job." was the step "Check whether they ring back 10 mins later it's a new job."
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Cancel the order.\n\n"
        "If the customer is upset and has waited more than 2 hours: issue a voucher.\n\n"
        "Note: a cancelled order cannot be restored. If they ring back later it's a new order.\n",
    )
    checks = [s.text for s in walk_steps(draft.steps) if s.text.startswith("Check whether")]
    assert not any("ring back" in text for text in checks), checks


def test_a_handover_emails_cases_end_where_it_says_and_its_clauses_are_no_tests(
    tmp_path: Path,
) -> None:
    # a window cleaner's handover email: "Postcode outside LS6/16/17/18? Say sorry, we don't
    # cover it. Don't book anything." went on to add them to the round; "Look at when that round
    # is next" tested "that round is next"; "If it's a business, a block of flats, or a house
    # over 3 storeys: ..." tested only "it's a business"; "... and I'll go and look at it when
    # I'm back" tested "I'm back"
    draft = _sop(
        tmp_path,
        "- Look up the order with the order number.\n"
        "- Outside the returns window? Say sorry, we can't take it. Don't book anything.\n"
        "- Look at when the courier is next in their street and tell them the week.\n"
        "- Accept the return.\n\n"
        "If it's a business, a charity shop, or a school over 3 sites: no refund on the phone. "
        "Pass it to me and I'll check it when I'm back.\n",
    )
    ways = _ways(draft)
    assert all(w.calls == ["get_order"] for w in _side(ways, "Outside the returns window?", "yes"))
    assert _tests(draft) == [
        "Outside the returns window?",
        "it's a business, a charity shop, or a school over 3 sites",
    ]


def test_telling_a_person_a_tool_notifies_calls_it_and_telling_the_customer_does_not(
    tmp_path: Path,
) -> None:
    # an escape room manual: "Tell the Site Manager the same day" beside `notify_site_manager`
    # was a thing to say, so the manager was never told
    catalog = _catalog(
        Tool.model_validate(_write("notify_site_manager", "Flag something to the Site Manager.")),
        Tool.model_validate(_write("notify_customer", "Send the customer a notification.")),
    )
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. If the item was damaged in store, tell the Site Manager the same day.\n"
        "3. Tell the customer the refund takes 5 days.\n",
        catalog=catalog,
    )
    ways = _ways(draft)
    assert all(
        "notify_site_manager" in w.calls
        for w in _side(ways, "the item was damaged in store", "yes")
    )
    assert all(
        "notify_site_manager" not in w.calls
        for w in _side(ways, "the item was damaged in store", "no")
    )
    assert all("notify_customer" not in w.calls for w in ways)


def test_a_kind_of_request_that_goes_to_a_team_is_that_case_handed_over(tmp_path: Path) -> None:
    # "Complaints about a member of staff go to Head Office Franchise Support. Do not try to
    # settle them on site." was a statement: no one was handed the complaint
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Complaints about a courier go to the Delivery Team. Do not try to settle them here.\n"
        "3. Accept the return.\n",
    )
    ways = _ways(draft)
    for way in _side(ways, "it is about complaints about a courier", "yes"):
        assert way.end == "escalate" and "accept_return" not in way.calls, way
    for way in _side(ways, "it is about complaints about a courier", "no"):
        assert way.end == "resolve" and "accept_return" in way.calls, way
    # "Refunds over £300 go to the duty manager: refer them, don't process them yourself.
    # Refunds go back to the original card only. After you refund, email the notice.": the
    # case ends with the sentences about those refunds; the rest is for every refund
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Accept the return.\n\n"
        "Refunds over £300 go to the Team Lead: refer them, don't process them yourself. Refunds "
        "go back to the original card only. After you refund, tell the customer the date.\n",
    )
    ways = _ways(draft)
    assert all(w.end == "escalate" for w in _side(ways, "it is about refunds over £300", "yes"))
    after = next(s for s in walk_steps(draft.steps) if s.text.startswith("After you refund"))
    assert after.id.isdigit(), after.id  # a step of its own, not of the case


def test_a_case_later_than_that_is_the_other_side_of_the_question_before_it(
    tmp_path: Path,
) -> None:
    # a window cleaner: "Reported within 48 hours of the clean? Book a free re-clean ..." over
    # "Reported later than that: say sorry ...": the question (seven words) was read as an order,
    # so every complaint got a re-clean, and the later case was tested again on its own
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Check the box:\n"
        "   - Reported within 48 hours of the clean? Replace the unit.\n"
        "   - Reported later than that: issue a voucher.\n"
        "3. Accept the return.\n",
    )
    ways = _ways(draft)
    asked = "Reported within 48 hours of the clean?"
    assert all(
        w.calls == ["get_order", "replace_unit", "accept_return"] for w in _side(ways, asked, "yes")
    )
    assert all(
        w.calls == ["get_order", "issue_voucher", "accept_return"] for w in _side(ways, asked, "no")
    )
    assert _tests(draft) == [asked]


def test_labels_of_the_kinds_a_heading_lists_over_bullets_are_its_cases(tmp_path: Path) -> None:
    # "2) COMPLAINTS - SMEARS, MISSED WINDOWS, MISSED VISIT" over "Smears or missed windows:"
    # and "Missed visit (round sheet says it wasn't done):", each over its bullets: the labels
    # were dropped, and every complaint got a re-clean and its money back as credit
    text = (
        "Returns desk notes\n==================\n\n"
        "COMPLAINTS - DAMAGED ITEMS, MISSING ITEMS\n-----------------------------------------\n\n"
        "Look up the order with the order number.\n\n"
        "Damaged items:\n  - Ship a replacement device.\n\n"
        "Missing item (the box arrived empty):\n"
        "  - Refund the order to the original payment method.\n"
    )
    draft = build_draft(_procedure(tmp_path, "notes.txt", text), catalog=CATALOG)
    ways = _ways(draft)
    damaged = "the request is about damaged items"
    missing = "the request is about missing item (the box arrived empty)"
    assert all(w.calls == ["get_order", "replace_unit"] for w in _side(ways, damaged, "yes"))
    assert all(w.calls == ["get_order", "issue_refund"] for w in _side(ways, missing, "yes"))


def test_a_workshops_payment_rules_are_rules_and_take_no_payment_calls_nothing(
    tmp_path: Path,
) -> None:
    # a bike workshop: "NO BIKE LEAVES THE WORKSHOP UNTIL IT IS PAID FOR IN FULL. The only
    # exception is trade account customers ... - take no payment at the desk from them" called
    # the till for the trade customers, and "Anything more than £10 needs Gareth to OK it" tested
    # "the anything"
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Accept the return.\n\n"
        "NO REFUND LEAVES THE DESK UNTIL THE ITEM IS BACK IN FULL. The only exception is trade "
        "customers, who are invoiced monthly - issue no refund at the desk for them, just print "
        "the label.\n\n"
        "Goodwill: you can give a voucher if we let the customer down. Anything more than £10 "
        "needs the Team Lead to OK it.\n",
    )
    assert "issue_refund" not in _calls(draft)
    kinds = {r.text: r.kind for r in draft.rules}
    assert kinds["NO REFUND LEAVES THE DESK UNTIL THE ITEM IS BACK IN FULL."] == "only_if"
    assert "it is more than £10" in _tests(draft)


def test_two_things_a_customer_may_want_are_one_or_the_other(tmp_path: Path) -> None:
    # a wine club: "2. If they want a break: pause the membership ... 3. If they want to leave:
    # cancel the membership": whoever paused was then tested for leaving, and cancelled
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. If they want a replacement: ship a replacement device.\n"
        "3. If they want their money back: refund the order to the original payment method.\n"
        "4. Tell the customer what happens next.\n",
    )
    ways = _ways(draft)
    for way in _side(ways, "they want a replacement", "yes"):
        assert (
            way.calls == ["get_order", "replace_unit"]
            and "they want their money back" not in way.went
        )
    refunded = _side(ways, "they want their money back", "yes")
    assert all(w.calls == ["get_order", "issue_refund"] for w in refunded)


def test_a_macros_maintainer_line_is_no_step(tmp_path: Path) -> None:
    # "Group: Bookings Tier 1 · Maintainer: Contact Centre QA · Macros reviewed quarterly." was
    # step 1 of every macro of a ferry helpdesk
    text = (
        "# Returns macros\n\n"
        "Group: Returns Tier 1 · Maintainer: Contact Centre QA · Macros reviewed quarterly.\n\n"
        "## Macro: Return request\n\n"
        "1. Look up the order with the order number.\n2. Accept the return.\n\n"
        "## Macro: Damaged item\n\n"
        "1. Look up the order with the order number.\n2. Ship a replacement device.\n"
    )
    draft = build_draft(_procedure(tmp_path, "macros.md", text), catalog=CATALOG)
    assert not any("Maintainer" in s.text for s in walk_steps(draft.steps))
    assert _calls(draft) == ["get_order", "accept_return"]


def test_an_amount_over_a_threshold_that_goes_to_a_person_is_a_case(tmp_path: Path) -> None:
    # a locksmith desk: "Refunds up to £50 you can do yourself. Anything over £50 goes to the
    # duty manager - stop and escalate" escalated every price complaint, so nothing after it
    # could be reached
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Refunds up to £50 you can do yourself. Anything over £50 goes to the duty manager - "
        "stop and escalate, don't promise anything.\n"
        "3. Refund the order to the original payment method.\n",
    )
    ways = _ways(draft)
    assert all(w.end == "escalate" for w in _side(ways, "it is over £50", "yes"))
    for way in _side(ways, "it is over £50", "no"):
        assert way.calls == ["get_order", "issue_refund"] and way.end == "resolve", way


def test_handing_it_to_a_person_is_a_hand_over_named_without_what_follows(tmp_path: Path) -> None:
    # "If they mention Trading Standards or a solicitor, hand it to the duty manager straight
    # away." went on to close the call; "goes to the duty manager - stop and escalate" named
    # "duty manager - stop"
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Accept the return.\n\n"
        "If they mention a solicitor, hand it to the duty manager straight away.\n\n"
        "Anything over £50 goes to the duty manager - stop and escalate.\n",
    )
    ways = _ways(draft)
    assert all(w.end == "escalate" for w in _side(ways, "they mention a solicitor", "yes"))
    targets = [s.target for s in walk_steps(draft.steps) if s.kind == "escalate"]
    assert targets == ["duty manager", "duty manager"], targets


def test_a_case_before_an_arrow_and_ring_as_an_order(tmp_path: Path) -> None:
    # a locksmith's end-of-shift list: "2. Any van below 2 of any cylinder size -> order stock
    # for it from the wholesaler." ordered stock for every van, and "If a van reports a missing
    # master key set, ring the duty manager, don't just log it" tested "... ring the duty manager"
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Any box below 2 kg -> ship a replacement device.\n"
        "3. If the box is crushed, ring the warehouse, don't just log it.\n",
    )
    ways = _ways(draft)
    assert all(
        "replace_unit" in w.calls for w in _side(ways, "it is about any box below 2 kg", "yes")
    )
    assert all(
        "replace_unit" not in w.calls for w in _side(ways, "it is about any box below 2 kg", "no")
    )
    assert "the box is crushed" in _tests(draft)


def test_a_question_listing_cases_then_stop_and_an_order_is_a_case(tmp_path: Path) -> None:
    # a locksmith desk: "- Child or vulnerable person locked inside, or something on the hob?
    # Stop and call 999 advice first, then book as PRIORITY and ring the duty manager." over
    # "- Otherwise book the job": the question (ten words) and "Stop and ..." were read as
    # orders, so every lock-out was escalated and no job was ever booked
    draft = _sop(
        tmp_path,
        "- Look up the order with the order number.\n"
        "- Box crushed or wet inside, or something leaking? Stop and ship a replacement device "
        "first, then ring the duty manager.\n"
        "- Otherwise accept the return.\n",
    )
    ways = _ways(draft)
    asked = "Box crushed or wet inside, or something leaking?"
    for way in _side(ways, asked, "yes"):
        assert way.calls == ["get_order", "replace_unit"] and way.end == "escalate", way
    assert all(w.calls == ["get_order", "accept_return"] for w in _side(ways, asked, "no"))


def test_only_if_x_does_it_go_to_a_person_is_that_case_handed_over(tmp_path: Path) -> None:
    # a formalwear franchise manual: "Only if the repair will cost more than £50 does it go to
    # the area manager, who may decide to write the garment off." tested "the repair will cost
    # more than £50 does it go to the area manager"
    draft = _sop(
        tmp_path,
        "1. Look up the order with the order number.\n"
        "2. Accept the return.\n\n"
        "Only if the repair will cost more than £50 does it go to the Team Lead, who may decide "
        "to write the item off.\n",
    )
    ways = _ways(draft)
    assert "the repair will cost more than £50" in _tests(draft)
    for way in _side(ways, "the repair will cost more than £50", "yes"):
        assert way.end == "escalate", way
