"""validate on the routine format: rules, knowledge, slots, switch, call and confirm.

Each check has a routine that trips it and the nearest routine that does not.
"""

from __future__ import annotations

from typing import Any

import pytest

from sop_compiler.config import Settings
from sop_compiler.generate import to_routine
from sop_compiler.models import (
    Case,
    Condition,
    Heading,
    Knowledge,
    ListItem,
    Paragraph,
    Procedure,
    Provenance,
    Routine,
    RoutineDraft,
    Rule,
    Slot,
    SourceRef,
    Step,
    Switch,
    Table,
    Tool,
    ToolArgument,
    ToolCall,
    ToolCatalog,
)
from sop_compiler.text import quote_form
from sop_compiler.validate import check_calls, check_draft, dropped_rules, validate

CATALOG = ToolCatalog(
    tools=[
        Tool(
            name="get_rental",
            description="Return a rental's bike, start and end dates.",
            parameters={
                "type": "object",
                "properties": {"rental_id": {"type": "string"}},
                "required": ["rental_id"],
            },
        ),
        Tool(
            name="extend_rental",
            description="Extend a rental by a number of days.",
            access="write",
            parameters={
                "type": "object",
                "properties": {
                    "rental_id": {"type": "string"},
                    "days": {"type": "integer"},
                    "riders": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["rental_id", "days"],
            },
        ),
        Tool(
            name="refund_deposit",
            description="Refund a deposit.",
            access="write",
            needs_approval=True,
            parameters={"type": "object", "properties": {"rental_id": {"type": "string"}}},
        ),
    ]
)


def _prov(n: int) -> Provenance:
    return Provenance(file="rentals/policy.md", paragraph=n)


PROCEDURE = Procedure(
    id="policy--extend-a-rental",
    title="Extend a rental",
    source="rentals/policy.md",
    source_sha256="0" * 64,
    context=[
        Heading(id="b1", prov=_prov(0), text="General rules", level=2),
        ListItem(
            id="b2",
            prov=_prov(1),
            text="Get the customer's explicit yes before any change to a rental.",
            marker="-",
            ordered=False,
        ),
        Table(
            id="b3",
            prov=_prov(2),
            header=["Bike", "Price per day"],
            rows=[["City", "15 EUR"], ["E-bike", "35 EUR"]],
        ),
    ],
    blocks=[
        Heading(id="b4", prov=_prov(3), text="Extend a rental", level=2),
        ListItem(
            id="b5", prov=_prov(4), text="Ask for the rental number.", marker="-", ordered=False
        ),
        ListItem(
            id="b6",
            prov=_prov(5),
            text="A rental can be extended by at most 7 days.",
            marker="-",
            ordered=False,
        ),
        ListItem(
            id="b7",
            prov=_prov(6),
            text="For a city bike, extend it; for an e-bike, check the battery first.",
            marker="-",
            ordered=False,
        ),
        Paragraph(id="b8", prov=_prov(7), text="Extend the rental with `extend_rental`."),
    ],
)


def _ref(block: str, quote: str) -> SourceRef:
    return SourceRef(block_ids=[block], quote=quote)


def _steps() -> list[dict[str, Any]]:
    return [
        {
            "id": "1",
            "kind": "ask",
            "text": "Ask for the rental number.",
            "collects": ["rental_id"],
            "source": _ref("b5", "Ask for the rental number."),
        },
        {
            "id": "2",
            "kind": "switch",
            "text": "Check the bike type.",
            "switch": Switch(
                subject="the bike type",
                cases=[Case(when="a city bike", goto="3"), Case(when="an e-bike", goto="4")],
                default="3",
            ),
            "source": _ref("b7", "For a city bike, extend it; for an e-bike"),
        },
        {
            "id": "3",
            "kind": "ask",
            "text": "Tell the customer the new end date and ask for their explicit yes.",
            "confirm": True,
            "next_step": "5",
            "source": _ref("b2", "Get the customer's explicit yes before any change"),
        },
        {
            "id": "4",
            "kind": "action",
            "text": "Check the battery.",
            "next_step": "3",
            "source": _ref("b7", "check the battery first"),
        },
        {
            "id": "5",
            "kind": "tool_call",
            "text": "Extend the rental.",
            "tool_call": ToolCall(
                tool="extend_rental",
                arguments=[
                    ToolArgument(name="rental_id", slot="rental_id"),
                    ToolArgument(name="days", value=3),
                    ToolArgument(name="riders", value=["Ana", "Ben"]),
                ],
            ),
            "source": _ref("b8", "Extend the rental with `extend_rental`."),
        },
        {"id": "6", "kind": "resolve", "text": "Resolve the case.", "source": None},
    ]


RULES = [
    Rule(
        kind="confirm_before",
        text="Get the customer's explicit yes before any change to a rental.",
        governs=["extend_rental"],
        source=_ref("b2", "Get the customer's explicit yes before any change to a rental."),
    ),
    Rule(
        kind="limit",
        text="Extend a rental by at most 7 days.",
        governs=["extend_rental"],
        source=_ref("b6", "A rental can be extended by at most 7 days."),
    ),
]
KNOWLEDGE = [Knowledge(fact="Bike: City; Price per day: 15 EUR", source=_ref("b3", "City 15 EUR"))]
COLLECT = [Slot(name="rental_id", description="the rental number", origin="customer")]


def _draft(steps: list[dict[str, Any]] | None = None, **extra: Any) -> RoutineDraft:
    fields: dict[str, Any] = {"rules": RULES, "knowledge": KNOWLEDGE, "collect": COLLECT}
    fields.update(extra)
    return RoutineDraft(
        title="Extend a rental",
        trigger="Use when a customer wants to keep a bike longer.",
        steps=[Step(**s) for s in (steps if steps is not None else _steps())],
        **fields,
    )


def _issues(draft: RoutineDraft, catalog: ToolCatalog = CATALOG) -> dict[str, str]:
    found = check_draft(draft, procedure=PROCEDURE, catalog=catalog, settings=Settings())
    # write_without_approval is about the catalog (extend_rental needs no approval), not the routine
    return {i.code: i.message for i in found if i.code != "write_without_approval"}


def _with(step_id: str, **changes: Any) -> list[dict[str, Any]]:
    return [{**s, **changes} if s["id"] == step_id else s for s in _steps()]


def test_a_routine_using_every_field_is_clean_and_fully_covered() -> None:
    draft = _draft()
    assert _issues(draft) == {}
    report = validate(
        to_routine(draft, PROCEDURE, CATALOG),
        procedure=PROCEDURE,
        catalog=CATALOG,
        settings=Settings(),
    )
    # the write has a confirm ask before it on every path: no write_without_approval
    assert [i.code for i in report.issues] == []
    assert report.coverage == 1.0


def test_a_write_gated_by_a_confirm_rule_needs_a_confirm_ask_on_every_path() -> None:
    # step 4 (the e-bike path) reaches the write with no confirm ask
    steps = _with("4", next_step="5", text="Check the battery.")
    issues = _issues(_draft(steps))
    assert "unconfirmed_write" in issues
    assert (
        "step 5" in issues["unconfirmed_write"] and "`extend_rental`" in issues["unconfirmed_write"]
    )
    # an ask marked confirm on that path satisfies it
    fixed = _with("4", kind="ask", confirm=True, next_step="5", text="Ask for an explicit yes.")
    assert "unconfirmed_write" not in _issues(_draft(fixed))


def test_a_confirmation_is_used_up_by_the_write_it_confirms() -> None:
    steps = _steps()
    steps.insert(
        5,
        {
            "id": "5b",
            "kind": "tool_call",
            "text": "Extend it once more.",
            "tool_call": ToolCall(
                tool="extend_rental",
                arguments=[
                    ToolArgument(name="rental_id", slot="rental_id"),
                    ToolArgument(name="days", value=1),
                ],
            ),
            "source": _ref("b8", "Extend the rental"),
        },
    )
    issues = _issues(_draft(steps))
    # the first write used the yes; the second one has none of its own
    assert issues.get("unconfirmed_write", "").startswith("step 5b calls write tool")


def test_a_slot_must_be_declared_and_collected_before_the_tool_that_takes_it() -> None:
    unknown = _with(
        "5",
        tool_call=ToolCall(
            tool="extend_rental",
            arguments=[
                ToolArgument(name="rental_id", slot="booking_ref"),
                ToolArgument(name="days", value=3),
            ],
        ),
    )
    assert "`booking_ref`" in _issues(_draft(unknown)).get("unknown_slot", "")
    not_collected = _with("1", collects=[])
    message = _issues(_draft(not_collected)).get("missing_data", "")
    assert "`rental_id`" in message and "the rental number" in message
    # known before the routine starts: nothing to collect
    context = [Slot(name="rental_id", description="the rental number", origin="context")]
    assert "missing_data" not in _issues(_draft(not_collected, collect=context))


def test_collecting_an_undeclared_slot_and_declaring_one_twice_are_errors() -> None:
    assert "`phone`" in _issues(_draft(_with("1", collects=["rental_id", "phone"])))["unknown_slot"]
    twice = [*COLLECT, Slot(name="rental_id", description="again", origin="customer")]
    assert "declared twice" in _issues(_draft(collect=twice))["unknown_slot"]


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"kind": "switch", "switch": None}, "missing_switch"),
        (
            {"kind": "switch", "switch": Switch(subject="x", cases=[], default="3")},
            "missing_switch",
        ),
        ({"kind": "call", "routine": None}, "missing_routine"),
        ({"kind": "say", "confirm": True}, "bad_confirm"),
    ],
)
def test_a_step_missing_what_its_kind_needs_is_an_error(changes: dict[str, Any], code: str) -> None:
    target = "2" if code == "missing_switch" else "4"
    assert code in _issues(_draft(_with(target, **changes)))


def test_switch_targets_must_exist() -> None:
    switch = Switch(subject="the bike", cases=[Case(when="a tandem", goto="9")], default="3")
    assert "'9'" in _issues(_draft(_with("2", switch=switch)))["dangling_target"]


def test_a_rule_that_governs_a_tool_the_routine_never_calls_is_flagged() -> None:
    rules = [
        *RULES,
        Rule(
            kind="never",
            text="Never refund a deposit twice.",
            governs=["refund_deposit"],
            source=RULES[1].source,
        ),
    ]
    message = _issues(_draft(rules=rules)).get("rule_governs_nothing", "")
    assert "`refund_deposit`" in message and "never calls" in message


def test_dropping_a_rule_lowers_coverage_and_names_the_sentence() -> None:
    draft = _draft(rules=RULES[:1])  # the 7-day limit is no longer cited
    report = validate(
        to_routine(draft, PROCEDURE, CATALOG),
        procedure=PROCEDURE,
        catalog=CATALOG,
        settings=Settings(),
    )
    assert report.coverage is not None and report.coverage < 1.0
    dropped = dropped_rules(
        PROCEDURE,
        [r.source for r in draft.rules if r.source] + [s.source for s in draft.steps if s.source],
    )
    assert [sentence for _, sentence in dropped] == ["A rental can be extended by at most 7 days."]


def test_quotes_may_leave_out_markers_pipes_and_smart_quotes_but_not_words() -> None:
    assert quote_form("- Ask for the rental number.") == quote_form("Ask for the rental number.")
    assert quote_form("| City | 15 EUR |") == quote_form("City 15 EUR")
    assert quote_form("the customer’s “yes”") == quote_form('the customer\'s "yes"')
    steps = _with("1", source=_ref("b5", "Ask politely for the rental number."))
    assert "quote_not_in_source" in _issues(_draft(steps))


def test_a_quote_longer_than_the_limit_is_a_warning() -> None:
    long = " ".join(["word"] * 40)
    procedure = PROCEDURE.model_copy(
        update={"blocks": [*PROCEDURE.blocks, Paragraph(id="b9", prov=_prov(9), text=long)]}
    )
    draft = _draft(knowledge=[*KNOWLEDGE, Knowledge(fact="Words.", source=_ref("b9", long))])
    found = check_draft(draft, procedure=procedure, catalog=CATALOG, settings=Settings())
    assert "long_quote" in {i.code for i in found}


def test_a_needs_approval_tool_with_no_word_of_approval_before_it_is_a_warning() -> None:
    steps = _with(
        "5",
        tool_call=ToolCall(
            tool="refund_deposit", arguments=[ToolArgument(name="rental_id", slot="rental_id")]
        ),
    )
    steps = [
        {**s, "confirm": False, "text": "Tell the customer the new end date."}
        if s["id"] == "3"
        else s
        for s in steps
    ]
    steps = [s for s in steps if s["id"] != "4"]
    steps = [
        {**s, "switch": Switch(subject="the bike", cases=[Case(when="any", goto="3")], default="3")}
        if s["id"] == "2"
        else s
        for s in steps
    ]
    issues = _issues(_draft(steps, rules=[]))
    assert "approval_unannounced" in issues
    noted = [
        {**s, "text": "Tell the customer a supervisor must approve the refund."}
        if s["id"] == "3"
        else s
        for s in steps
    ]
    assert "approval_unannounced" not in _issues(_draft(noted, rules=[]))


def _routine(routine_id: str, calls: str | None, agent: str = "rentals") -> Routine:
    steps = [Step(id="1", kind="say", text="Greet the customer.")]
    if calls:
        steps.append(Step(id="2", kind="call", text=f"Follow {calls}.", routine=calls))
    steps.append(Step(id=str(len(steps) + 1), kind="resolve", text="Resolve the case."))
    draft = RoutineDraft(title=routine_id, trigger="t", steps=steps)
    procedure = PROCEDURE.model_copy(update={"id": routine_id, "agent": agent})
    return to_routine(draft, procedure, CATALOG)


def test_a_call_must_name_a_routine_of_the_same_agent_and_never_loop() -> None:
    good = check_calls([_routine("extend", "verify"), _routine("verify", None)])
    assert good == {}
    unknown = check_calls([_routine("extend", "verfy"), _routine("verify", None)])
    (message,) = [i.message for i in unknown["rentals/extend"]]
    assert "`verfy`" in message and "did you mean `verify`" in message
    other_agent = check_calls([_routine("extend", "verify"), _routine("verify", None, "billing")])
    assert [i.code for i in other_agent["rentals/extend"]] == ["unknown_routine"]
    cycle = check_calls([_routine("a", "b"), _routine("b", "a")])
    codes = [i.code for issues in cycle.values() for i in issues]
    assert codes == ["call_cycle"]


def test_a_condition_still_works_beside_the_new_kinds() -> None:
    steps = _with(
        "2",
        kind="condition",
        switch=None,
        condition=Condition(test="the bike is a city bike", then_step="3", else_step="4"),
    )
    assert _issues(_draft(steps)) == {}


def test_call_and_action_steps_render_for_the_agent_and_the_reviewer() -> None:
    from sop_compiler.emit.review import render_review
    from sop_compiler.emit.routines import routine_markdown
    from sop_compiler.models import ValidationReport

    steps = [
        Step(id="1", kind="call", text="Verify the customer.", routine="verify-identity"),
        Step(id="2", kind="action", text="Record a case note with the new end date."),
        Step(id="3", kind="resolve", text="Resolve the case."),
    ]
    draft = RoutineDraft(title="Extend a rental", trigger="t", steps=steps)
    routine = to_routine(draft, PROCEDURE, CATALOG)
    text = routine_markdown(routine).decode()
    assert (
        "1. Verify the customer. Follow the routine `verify-identity` from its first step, then "
        "come back and continue with step 2." in text
    )
    assert "2. Record a case note with the new end date." in text
    files = render_review(
        [routine],
        {f"{routine.agent}/{routine.id}": ValidationReport(routine_id=routine.id)},
        failures={},
    )
    review = b"".join(files.values()).decode()
    assert "verify-identity" in review  # the flowchart shows which routine runs there
