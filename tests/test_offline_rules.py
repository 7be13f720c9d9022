"""Offline rules and knowledge: what a policy forbids, limits or asks to confirm is in the routine.

The documents are written as companies write policies (bullets and prose, a table of values, a
document-wide rule, descriptive text that forbids nothing), in domains the gold corpora do not use.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from gold import iter_cases

from sop_compiler.catalog import load_catalog
from sop_compiler.config import Settings
from sop_compiler.generate.offline import build_draft
from sop_compiler.generate.offline.standing import rule_kind
from sop_compiler.models import Procedure, RoutineDraft, Step, ToolCatalog, walk_steps
from sop_compiler.pipeline import read_procedures
from sop_compiler.validate import check_draft

DATA = Path(__file__).parent / "data"
BENCH = Path(__file__).parent.parent / "bench"

TOOLS = """\
tools:
  - name: get_membership
    description: Return a member's plan, home club, billing date and arrears.
    access: read
    parameters: {type: object, properties: {member_id: {type: string}}, required: [member_id]}
  - name: freeze_membership
    description: Freeze a membership from a start date for a number of months.
    access: write
    parameters:
      type: object
      properties: {member_id: {type: string}, months: {type: integer}}
      required: [member_id, months]
  - name: cancel_membership
    description: Cancel a membership with an end date.
    access: write
    parameters: {type: object, properties: {member_id: {type: string}}, required: [member_id]}
"""

GYM = """\
# Northside Fitness: Member Services Policy

Revision 7, approved by Operations on 2026-03-01.

## About memberships
A membership has a member number, a home club, a plan and a billing date.
Premium includes four guest passes a month.

| Plan | Monthly fee | Guest passes |
|---|---|---|
| Off-Peak | 19 EUR | 0 |
| Premium | 45 EUR | 4 |

## General rules
- Get the member's explicit yes before any change to a membership.
- Never share another member's details.
- Members who cannot visit for medical reasons are handled by the club manager.

## Freeze a membership
- Look up the membership with `get_membership`.
- A membership in arrears cannot be frozen; transfer the member to a human agent.
- A freeze lasts at most 3 months.
- Freeze the membership with `freeze_membership`.

## Cancel a membership
Cancellation needs 30 days' notice.
- Look up the membership with `get_membership`.
- If the member is in the first month, cancel it at once; otherwise tell the member the end date.
- Cancel the membership with `cancel_membership`.
"""


@pytest.fixture()
def gym(tmp_path: Path) -> tuple[list[Procedure], ToolCatalog]:
    (tmp_path / "policy.md").write_text(GYM, encoding="utf-8")
    (tmp_path / "tools.yaml").write_text(TOOLS, encoding="utf-8")
    catalog = load_catalog(tmp_path / "tools.yaml", sop_root=tmp_path)
    result = read_procedures(tmp_path / "policy.md", root=tmp_path, settings=Settings())
    return result.procedures, catalog


def _compiled(gym: tuple[list[Procedure], ToolCatalog], title: str) -> tuple[RoutineDraft, list]:  # type: ignore[type-arg]
    procedures, catalog = gym
    procedure = next(p for p in procedures if p.title == title)
    draft = build_draft(procedure, catalog=catalog)
    return draft, check_draft(draft, procedure=procedure, catalog=catalog, settings=Settings())


def _flat(draft: RoutineDraft) -> list[Step]:
    return list(walk_steps(draft.steps))


@pytest.mark.parametrize(
    ("sentence", "kind"),
    [
        ("Never share another member's details.", "never"),
        ("Do not refund before the carrier has scanned the return.", "never"),
        ("Gift card purchases cannot be charged back.", "never"),
        ("Refunds go only to the original payment method.", "only_if"),
        ("Only the policyholder may file or discuss a claim.", "only_if"),
        ("Do not offer compensation unless the user complains about a delay.", "never"),
        ("The certificate is at most 100 USD per passenger.", "limit"),
        ("Returns above 500 USD need supervisor approval.", "limit"),
        ("Never offer it twice in 12 months.", "limit"),
        ("Claims must be filed within 60 days of the loss.", "limit"),
        ("The origin and destination must stay the same.", "always"),
        ("Confirm every change with the cardholder and wait for a clear yes.", "confirm_before"),
        ("You must get explicit confirmation (yes) before any update.", "confirm_before"),
        ("No account information may be disclosed to a caller who has not been verified.", "never"),
        ("Promotional fares are non-refundable.", "never"),
        ("A statement is not released while the account has a hold.", "never"),
        ("Every call ends with a note on the account, whatever the outcome.", "always"),
        # descriptive text, branches and what to say forbid nothing
        ("Members call when they cannot attend a class.", None),
        ("The parcel is not damaged.", None),
        ("Credits do not expire.", None),
        ("The order is not yet shipped.", None),
        ("This procedure covers customers who cannot get online at home.", None),
        ("If the booking was made within 24 hours, cancel it.", None),
        ("Tell the customer they do not need to call again.", None),
        ("Goodwill voucher: a voucher offered when no refund is owed.", None),
        ("The Refund Tool times out after 60 seconds.", None),
        ('The reason must be "no longer needed" or "ordered by mistake".', "always"),
        ("Tell the pupil about the charge before you cancel.", "confirm_before"),
        (
            "Tell the client the fee and get their agreement before you raise the job.",
            "confirm_before",
        ),
        ("Tell the customer the refund takes 5 days before you end the call.", None),
        ("We do not offer exchanges for a different model over the phone.", "never"),
        ("We do not control when the carrier collects.", None),
        ("The agent shall not disclose any shipment details.", "never"),
        ("Amendments are accepted from the shipper only.", "only_if"),
        ("Only one remote reset per fault.", "limit"),
        ("Help only one user per conversation.", "always"),
        ("Complete the security questions before discussing the account.", "always"),
        ("Take payment before booking.", "always"),
        ("Log an incident in every case, even if resolved.", "always"),
        ("Cancelling needs the Transport Manager's approval.", "only_if"),
        ("No transfers in the first 14 days of the tenancy.", "never"),
        ("Walk-ins get no meeting-room credits.", "never"),
        ("The technician arrives before noon.", None),  # a fact, no order
        # what describes a thing forbids nothing: a defined term, a kind of content, a
        # document's control line
        ("Proof — a PDF preview of the print file that the customer must approve.", None),
        ("Prohibited content (hate symbols) — reject the artwork and cancel the order.", None),
        ("Owner: Support Operations · Version 1.9 · Internal only", None),
        ("Smoking is prohibited on site.", "never"),
        ("Orders for more than 100 portions go to the Head Baker for approval.", "limit"),
        ("Refunds go to the team lead for approval.", "only_if"),
        ("The parcel goes to the depot for collection.", None),
        ("Staff are forbidden from sharing passwords.", "never"),
        # until when, or how often, a thing may be changed; how many someone gets
        ("Slots can be changed up to 11pm the night before delivery.", "limit"),
        ("A booking can be moved for free once.", "limit"),
        ("Platinum members get one late cancellation per stay with no charge.", "limit"),
        # how far the reader may go alone (a locksmith desk's price complaints)
        ("Refunds up to £50 you can do yourself.", "limit"),
        ("Refunds up to 5 days old are processed overnight.", None),
        # nothing of a kind before the condition holds (a bike workshop)
        ("NO BIKE LEAVES THE WORKSHOP UNTIL IT IS PAID FOR IN FULL.", "only_if"),
        ("Read these before the procedures.", None),
        ("Orders can be tracked in the app.", None),
        ("Customers have two options per call.", None),
        # a telling before a time is no confirmation before a change
        ("Never tell a passenger their bag is lost before day 21.", "never"),
        ("Tell the customer about the fee before cancelling the booking.", "confirm_before"),
    ],
)
def test_rule_kind_reads_what_a_sentence_restricts(sentence: str, kind: str | None) -> None:
    assert rule_kind(sentence) == kind


def test_document_and_section_rules_become_rules_with_sources(gym) -> None:  # type: ignore[no-untyped-def]
    draft, issues = _compiled(gym, "Freeze a membership")
    rules = {r.text: r for r in draft.rules}
    assert rules["Never share another member's details."].kind == "never"
    arrears = rules[
        "A membership in arrears cannot be frozen; transfer the member to a human agent."
    ]
    assert arrears.kind == "never" and arrears.governs == ["freeze_membership"]
    assert rules["A freeze lasts at most 3 months."].kind == "limit"
    # descriptive text that forbids nothing is no rule
    assert not any("medical reasons" in text for text in rules)
    assert all(r.source is not None and r.source.block_ids for r in draft.rules)
    assert not [i for i in issues if i.code in ("quote_not_in_source", "dropped_rule")]


def test_a_rule_with_no_action_is_a_rule_not_a_step(gym) -> None:  # type: ignore[no-untyped-def]
    draft, _ = _compiled(gym, "Freeze a membership")
    assert not any("at most 3 months" in s.text for s in _flat(draft))


def test_a_prohibition_with_an_action_is_a_condition_not_an_action_for_everyone(gym) -> None:  # type: ignore[no-untyped-def]
    draft, _ = _compiled(gym, "Freeze a membership")
    steps = _flat(draft)
    check = next(s for s in steps if s.kind == "condition" and "arrears" in s.text)
    assert check.condition is not None
    transfer = next(s for s in steps if s.id == check.condition.then_step)
    assert transfer.text.startswith("Transfer the member")
    # the other answer goes on to the freeze, not into the transfer
    assert check.condition.else_step != transfer.id


def test_reference_text_and_tables_become_knowledge(gym) -> None:  # type: ignore[no-untyped-def]
    draft, _ = _compiled(gym, "Cancel a membership")
    facts = [k.fact for k in draft.knowledge]
    assert "A membership has a member number, a home club, a plan and a billing date." in facts
    assert "Plan: Premium; Monthly fee: 45 EUR; Guest passes: 4" in facts
    assert not draft.edge_cases  # a table of values is no "when ..., then ..."
    assert not any("45 EUR" in s.text for s in _flat(draft))


def test_a_document_wide_confirmation_gates_every_write(gym) -> None:  # type: ignore[no-untyped-def]
    for title, tool in (
        ("Freeze a membership", "freeze_membership"),
        ("Cancel a membership", "cancel_membership"),
    ):
        draft, issues = _compiled(gym, title)
        steps = _flat(draft)
        gate = next(r for r in draft.rules if r.kind == "confirm_before")
        assert gate.governs == [tool]
        write = next(s for s in steps if s.tool_call is not None and s.tool_call.tool == tool)
        before = steps[steps.index(write) - 1]
        assert before.kind == "ask" and before.confirm, f"{title}: no confirmation before {tool}"
        assert not [i for i in issues if i.code == "unconfirmed_write"]


def test_without_the_confirmation_validation_fails(gym) -> None:  # type: ignore[no-untyped-def]
    procedures, catalog = gym
    procedure = next(p for p in procedures if p.title == "Freeze a membership")
    draft = build_draft(procedure, catalog=catalog)
    for step in walk_steps(draft.steps):
        if step.confirm:  # the gate becomes an ordinary message
            step.kind, step.text, step.confirm = "say", "Thank the member.", False
    issues = check_draft(draft, procedure=procedure, catalog=catalog, settings=Settings())
    assert [i.code for i in issues if i.severity == "error"] == ["unconfirmed_write"]


def test_an_otherwise_after_a_semicolon_is_the_other_branch(gym) -> None:  # type: ignore[no-untyped-def]
    draft, _ = _compiled(gym, "Cancel a membership")
    steps = {s.id: s for s in _flat(draft)}
    check = next(s for s in steps.values() if s.kind == "condition" and "first month" in s.text)
    assert check.condition is not None and check.condition.else_step
    otherwise = steps[check.condition.else_step]
    assert "end date" in otherwise.text
    then = steps[check.condition.then_step]
    assert "end date" not in then.text


def test_the_gold_rules_are_kept_on_every_corpus() -> None:
    """At least 90% of the gold rules (policies and fidelity corpora) are rules that cite them."""
    sys.path.insert(0, str(BENCH))
    try:
        from fidelity import Tally, score_case
    finally:
        sys.path.remove(str(BENCH))
    tally = Tally()
    for root in ("policies", "fidelity"):
        for _, document, tools, gold in iter_cases(DATA / root):
            score_case(document, tools, gold, tally)
    kept, total = tally.counts["rules kept"]
    agrees, _ = tally.counts["rule kind agrees"]
    assert total >= 70 and kept / total >= 0.9 and agrees / total >= 0.85, tally.counts
    errors_free, routines = tally.counts["routines without validation errors"]
    assert errors_free == routines


def test_an_action_binds_the_tool_its_words_mean_and_it_names_the_sections_subject(gym) -> None:  # type: ignore[no-untyped-def]
    draft, issues = _compiled(gym, "Cancel a membership")
    steps = {s.id: s for s in _flat(draft)}
    check = next(s for s in steps.values() if s.kind == "condition" and "first month" in s.text)
    assert check.condition is not None
    then = [s for s in steps.values() if s.id.startswith(check.id) and s.id != check.id]
    # "cancel it at once" in "Cancel a membership": the membership, with the catalog's tool
    call = next(s for s in then if s.tool_call is not None)
    assert call.tool_call is not None and call.tool_call.tool == "cancel_membership"
    assert call.text.startswith("Cancel the membership at once")
    assert not draft.tools_proposed
    assert not [i for i in issues if i.severity == "error"]


def test_a_prohibition_with_an_alternative_never_runs_on_into_the_forbidden_action() -> None:
    folder = DATA / "policies" / "hotel"
    catalog = load_catalog(folder / "tools.yaml", sop_root=folder)
    result = read_procedures(folder / "policy.md", root=folder, settings=Settings())
    procedure = next(p for p in result.procedures if p.title == "Cancelling a booking")
    draft = build_draft(procedure, catalog=catalog)
    steps = {s.id: s for s in _flat(draft)}
    check = next(s for s in steps.values() if s.kind == "condition" and "saver rates" in s.text)
    assert check.condition is not None
    offer = steps[check.condition.then_step]
    assert offer.text.startswith("Offer to change the dates instead")
    # after the alternative the case closes: the saver path reaches no cancel_booking
    assert offer.next_step is not None
    after = steps[offer.next_step]
    assert after.kind in ("ask", "resolve") and after.tool_call is None
    # "the confirmation number" and "the email address" ask for no confirmation and send nothing
    verify = next(r for r in draft.rules if r.text.startswith("Always verify the guest"))
    assert verify.kind == "always" and verify.governs == []
    gate = next(r for r in draft.rules if r.kind == "confirm_before")
    assert gate.governs == ["cancel_booking"]  # the confirmation email is no change


@pytest.mark.parametrize("opener", ["If", "In the event that"])
def test_a_rule_inside_a_condition_holds_only_under_it(tmp_path: Path, opener: str) -> None:
    """ "If X, do A. Do not B." forbids B when X holds, not at every step. An instrument hire
    SOP's "In the event that the damage looks deliberate ..., stop and escalate to the Shop
    Manager. Don't book a repair or a swap." forbade every repair and swap, whatever the damage.
    """
    policy = f"""# Invoices

## Correct an invoice
- Open the invoice.
- {opener} an item never arrived, transfer the customer to Shipping. Do not correct the invoice
  yet.
- Otherwise, correct the invoice.
"""
    (tmp_path / "policy.md").write_text(policy, encoding="utf-8")
    result = read_procedures(tmp_path / "policy.md", root=tmp_path, settings=Settings())
    draft = build_draft(result.procedures[0], catalog=ToolCatalog(tools=[]))
    (rule,) = [r for r in draft.rules if "Do not correct" in r.text]
    assert rule.kind == "never" and rule.condition == "an item never arrived"


def test_a_prohibition_in_the_scope_and_the_most_an_order_may_do_are_rules(
    tmp_path: Path,
) -> None:
    policy = """# Memberships

## Scope
- This policy applies to every adult membership.
- Corporate memberships carry no freeze, and the Adviser shall not freeze them.

## Freeze a membership
1. Find the member.
2. Freeze the membership for up to 3 months.
3. Tell the member the new billing date.
"""
    (tmp_path / "policy.md").write_text(policy, encoding="utf-8")
    (tmp_path / "tools.yaml").write_text(TOOLS, encoding="utf-8")
    catalog = load_catalog(tmp_path / "tools.yaml", sop_root=tmp_path)
    result = read_procedures(tmp_path / "policy.md", root=tmp_path, settings=Settings())
    draft = build_draft(result.procedures[0], catalog=catalog)
    kinds = {r.text: r.kind for r in draft.rules}
    scope = "Corporate memberships carry no freeze, and the Adviser shall not freeze them."
    assert kinds.get(scope) == "never"
    assert kinds.get("Freeze the membership for up to 3 months.") == "limit"
    assert rule_kind("Deliveries take up to 5 days.") is None  # a fact, no order


def test_a_rule_on_changing_a_plan_governs_no_tool_that_sets_something_else() -> None:
    """ "A line with an unpaid balance cannot change plan" is about `switch_line_plan`, never
    `set_roaming` ("Turn roaming on or off for a line"): "set" is no synonym of "change"."""
    case = DATA / "policies" / "telecom"
    catalog = load_catalog(case / "tools.yaml", sop_root=case)
    result = read_procedures(case / "policy.html", root=case, settings=Settings())
    procedure = next(p for p in result.procedures if p.title == "Change a plan")
    draft = build_draft(procedure, catalog=catalog)
    (rule,) = [r for r in draft.rules if "cannot change plan" in r.text]
    assert rule.governs == ["switch_line_plan"]


_CALLOUT = """\
# Front desk wiki

## Who this is for

- Service desk advisers
- Branch front-of-house staff

> **Remember**
>
> - Always pull up the vehicle by its registration before you book anything.
> - Never quote a price from memory. Prices change; use the price list.

## Booking a fitting

1. Look up the customer by phone number.
2. Check the calendar for a free bay.
3. Book the fitting.

## Puncture repairs

1. Ask where the nail is.
2. Check the calendar for a free bay.
3. Book the repair.
"""


def test_a_callout_of_bullets_is_a_rule_each_for_every_procedure(tmp_path: Path) -> None:
    # the callout's lines were one rule "Remember • Always ... • Never quote ...", whose quote
    # failed validation in every routine; and split up, its orders made "Who this is for" a task
    sop = tmp_path / "wiki.md"
    sop.write_text(_CALLOUT, encoding="utf-8")
    settings = Settings()
    procedures = read_procedures(sop, root=tmp_path, settings=settings).procedures
    assert [p.title for p in procedures] == ["Booking a fitting", "Puncture repairs"]
    catalog = ToolCatalog(tools=[])
    for procedure in procedures:
        draft = build_draft(procedure, catalog=catalog)
        rules = {rule.text: rule.kind for rule in draft.rules}
        assert rules.get(
            "Always pull up the vehicle by its registration before you book anything."
        ) in ("always", "confirm_before"), rules
        assert rules.get("Never quote a price from memory.") == "never", rules
        # who the page is for are its readers, no steps of a routine
        assert not [s.text for s in _flat(draft) if "advisers" in s.text], _flat(draft)
        issues = check_draft(draft, procedure=procedure, catalog=catalog, settings=settings)
        assert not [i for i in issues if i.severity == "error"], issues


def test_rules_for_everything_are_rules_of_each_routine_never_its_steps(tmp_path: Path) -> None:
    # "READ FIRST - APPLIES TO EVERYTHING BELOW": its "NEVER WRITE A CARD NUMBER DOWN" was the
    # first step of every routine
    sop = tmp_path / "desk.txt"
    sop.write_text(
        "READ FIRST - APPLIES TO EVERYTHING BELOW\n----------------------------------------\n"
        "* NEVER WRITE A CARD NUMBER DOWN. Payments go through the till only.\n"
        "* Only the sender can change or cancel an order.\n\n"
        "SAME-DAY ORDERS\n---------------\n"
        "1. Check the postcode.\n2. Take the payment.\n3. Place the order.\n\n"
        "FAILED DELIVERIES\n-----------------\n"
        "1. Open the order.\n2. Check the driver record.\n3. Rebook the delivery.\n",
        encoding="utf-8",
    )
    procedures = read_procedures(sop, root=tmp_path, settings=Settings()).procedures
    assert len(procedures) == 2
    for procedure in procedures:
        draft = build_draft(procedure, catalog=ToolCatalog(tools=[]))
        assert any(r.text == "NEVER WRITE A CARD NUMBER DOWN." for r in draft.rules), draft.rules
        assert not [s.text for s in _flat(draft) if "CARD NUMBER" in s.text.upper()]


def test_a_rule_to_verify_identity_before_any_action_is_the_first_call(tmp_path: Path) -> None:
    # "The Adviser shall verify the identity of the Holder before taking any action on a
    # Season", in the policy's general obligations: no routine checked who was calling
    sop = tmp_path / "policy.md"
    sop.write_text(
        "# Season Ticket Policy\n\n## 4. General Obligations\n\n"
        "4.1 The Adviser shall verify the identity of the Holder before taking any action on a "
        "Season.\n\n## 5. Refunds\n\n1. Find the season.\n2. Work out the refund.\n"
        "3. Issue the refund.\n",
        encoding="utf-8",
    )
    tool = {"type": "object", "properties": {"season_id": {"type": "string"}}}
    catalog = ToolCatalog.model_validate(
        {
            "tools": [
                {
                    "name": "verify_holder",
                    "description": "Verify that the caller is the named holder of a season.",
                    "parameters": tool,
                },
                {"name": "find_season", "description": "Find a season.", "parameters": tool},
            ]
        }
    )
    (procedure,) = read_procedures(sop, root=tmp_path, settings=Settings()).procedures
    draft = build_draft(procedure, catalog=catalog)
    calls = [s.tool_call.tool for s in _flat(draft) if s.tool_call]
    assert calls[:2] == ["verify_holder", "find_season"], calls
    issues = check_draft(draft, procedure=procedure, catalog=catalog, settings=Settings())
    assert not [i for i in issues if i.severity == "error"], issues
    # without the rule, nothing is added
    sop.write_text(sop.read_text().replace("before taking any action on a Season", "daily"))
    (procedure,) = read_procedures(sop, root=tmp_path, settings=Settings()).procedures
    calls = [
        s.tool_call.tool for s in _flat(build_draft(procedure, catalog=catalog)) if s.tool_call
    ]
    assert "verify_holder" not in calls


def _tools(*specs: tuple[str, str, str]) -> ToolCatalog:
    params = {"type": "object", "properties": {"hire_ref": {"type": "string"}}}
    return ToolCatalog.model_validate(
        {
            "tools": [
                {"name": n, "description": d, "access": a, "parameters": params}
                for n, a, d in specs
            ]
        }
    )


_HIRE_TOOLS = (
    ("find_hire", "read", "Return a hire: the bikes, the dates, the deposit and the amount paid."),
    ("extend_hire", "write", "Move a hire's return date later."),
    ("refund_hire", "write", "Pay a hire's amount back to the card it was paid with."),
    ("add_accessory", "write", "Put a helmet, lock or child seat on a hire."),
    ("approve_discount", "write", "Record a manager's discount on a hire."),
    ("page_duty_manager", "write", "Page the duty manager with a question or an approval request."),
)


def _hire(
    tmp_path: Path, section: str, catalog: ToolCatalog | None = None, *, title: str = "Hires"
) -> RoutineDraft:
    """The routine of one procedure `title` of the bike hire desk, holding `section`."""
    sop = tmp_path / "hire.md"
    sop.write_text(f"# Bike hire desk\n\n## {title}\n\n{section}", encoding="utf-8")
    (procedure,) = read_procedures(sop, root=tmp_path, settings=Settings()).procedures
    return build_draft(procedure, catalog=catalog or _tools(*_HIRE_TOOLS))


def _rules_of(tmp_path: Path, section: str, catalog: ToolCatalog) -> dict[str, list[str]]:
    return {r.text: r.governs for r in _hire(tmp_path, section, catalog).rules}


@pytest.mark.parametrize(
    ("sentence", "governs"),
    [
        # the action as the rule's noun: its subject, a count, after "no"
        ("Extensions are limited to 7 days in total.", ["extend_hire"]),
        ("Max 2 extensions per hire.", ["extend_hire"]),
        ("No refunds once the bikes have left the shop.", ["refund_hire"]),
        ("Refunds over £200 need the duty manager's OK before you process them.", ["refund_hire"]),
        # the verb alone, when it is the one write tool of that verb
        ("Do not refund a hire that was cut short by the rider.", ["refund_hire"]),
        # a verb too common to say which action ("add"), and someone else's approval
        ("Never add a late fee without telling the rider.", []),
        ("Discounts over 10% need the shop manager's approval.", []),
    ],
)
def test_a_rule_governs_the_one_write_tool_its_action_names(
    tmp_path: Path, sentence: str, governs: list[str]
) -> None:
    steps = "1. Find the hire.\n2. Extend the hire.\n3. Refund the hire if asked.\n\n"
    rules = _rules_of(tmp_path, steps + sentence + "\n", _tools(*_HIRE_TOOLS))
    assert rules[sentence] == governs, rules


def test_a_verb_two_write_tools_share_governs_neither_without_its_object(tmp_path: Path) -> None:
    catalog = _tools(
        *_HIRE_TOOLS,
        ("refund_deposit", "write", "Pay a hire's deposit back once the bikes are checked in."),
    )
    rules = _rules_of(tmp_path, "1. Find the hire.\n\nDo not refund anything in cash.\n", catalog)
    assert rules["Do not refund anything in cash."] == []
    rules = _rules_of(tmp_path, "1. Find the hire.\n\nNever refund a deposit in cash.\n", catalog)
    assert rules["Never refund a deposit in cash."] == ["refund_deposit"]


def test_a_threshold_that_needs_someones_ok_asks_for_it_before_the_write(tmp_path: Path) -> None:
    """ "Refunds over £200 need the duty manager's OK before you process them", written after
    the refund: over £200 the manager is paged before the refund; otherwise it is refunded."""
    section = (
        "1. Find the hire.\n"
        "2. Refund the amount to the original card.\n"
        "3. Refunds over £200 need the duty manager's OK before you process them.\n"
    )
    draft = _hire(tmp_path, section, title="Refunds")
    steps = {s.id: s for s in walk_steps(draft.steps)}
    (test,) = [s for s in steps.values() if s.condition is not None and "200" in s.condition.test]
    assert test.condition is not None
    then = steps[test.condition.then_step]
    assert then.tool_call is not None and then.tool_call.tool == "page_duty_manager"
    other = steps[test.condition.else_step or ""]
    assert other.tool_call is not None and other.tool_call.tool == "refund_hire"
    # the refund is never called before the test
    order = [s.id for s in walk_steps(draft.steps)]
    refunds = [s.id for s in steps.values() if s.tool_call and s.tool_call.tool == "refund_hire"]
    assert all(order.index(r) > order.index(test.id) for r in refunds)


def test_words_of_being_are_no_evidence_of_what_a_lookup_returns(tmp_path: Path) -> None:
    # "the refund is over £300" and a seat map "whether the performance is sold out" share "is":
    # that tie with the booking lookup left the routine with no lookup at all
    catalog = _tools(
        *_HIRE_TOOLS,
        ("check_fleet", "read", "Return the bikes free on a date and whether the shop is full."),
    )
    section = (
        "1. If the hire was cancelled by the shop, refund the amount paid.\n"
        "2. If the refund is over £300, page the duty manager first.\n"
    )
    draft = _hire(tmp_path, section, catalog, title="Refunds")
    calls = [s.tool_call.tool for s in _flat(draft) if s.tool_call]
    assert calls[:1] == ["find_hire"], calls


# the desk's tools, none of which reaches a manager
_NO_PAGER = _tools(*(t for t in _HIRE_TOOLS if t[0] != "page_duty_manager"))


def test_a_managers_ok_is_never_asked_of_the_customer(tmp_path: Path) -> None:
    # with no tool that reaches the manager, the step stays as the SOP says it, for review
    section = "1. Find the hire.\n2. Get the workshop manager's sign-off on the repair cost.\n"
    draft = _hire(tmp_path, section, _NO_PAGER, title="Damage")
    (step,) = [s for s in _flat(draft) if "sign-off" in s.text]
    assert step.kind == "action" and "customer" not in step.text.casefold(), step
    (question,) = [q for q in draft.open_questions if "workshop manager" in q]
    assert f"Step {step.id} needs the workshop manager's approval" in question


def test_an_approval_no_tool_reaches_is_still_sought_before_the_write_it_is_for(
    tmp_path: Path,
) -> None:
    """ "Refund it. Refunds above £300 need your team lead's sign-off before you submit them",
    in one step, with no tool that reaches the team lead: above £300 the sign-off comes first,
    and the open question names the team lead (not "Request your team lead")."""
    section = (
        "1. Find the hire.\n2. Refund the hire to the original card. Refunds above £300 need "
        "your team lead's sign-off before you submit them.\n"
    )
    draft = _hire(tmp_path, section, _NO_PAGER, title="Refunds")
    order = [s.id for s in _flat(draft)]
    (sign_off,) = [s for s in _flat(draft) if "sign-off" in s.text]
    (refund,) = [s for s in _flat(draft) if s.tool_call and s.tool_call.tool == "refund_hire"]
    assert order.index(sign_off.id) < order.index(refund.id)
    (question,) = [q for q in draft.open_questions if "approval" in q]
    assert question.startswith(f"Step {sign_off.id} needs your team lead's approval,"), question


@pytest.mark.parametrize(
    ("header", "cases"),
    [
        (["Customer wants to...", "What you do"], True),
        (["Type of complaint", "What to do"], True),
        (["What happened", "What we do"], True),
        (["Situation", "Action"], True),
        (["Service", "Price"], False),
        (["Membership level", "Exchange fee"], False),
    ],
)
def test_a_table_of_cases_and_what_to_do_is_read_as_cases(header: list[str], cases: bool) -> None:
    # "Customer wants to... | What you do" held a whole procedure's actions, kept as facts
    from sop_compiler.generate.offline.standing import is_decision_table
    from sop_compiler.models import Provenance, Table

    rows = [["Pause", "Pause the subscription."]]
    table = Table(id="b1", prov=Provenance(file="sop.md"), header=header, rows=rows)
    assert is_decision_table(table) is cases


def test_a_rule_lead_over_the_cases_it_is_for_is_one_rule_per_case(tmp_path: Path) -> None:
    # "Exceptions - no compensation is given:" over "- when the delay was caused by the
    # customer, or" and "- for orders placed ...": two steps "Check whether the delay ..., or."
    # and "for orders placed ...", and no rule
    section = (
        "1. Find the hire.\n"
        "2. Refund the hire if it was late.\n\n"
        "Exceptions - no refund is given:\n\n"
        "- when the rider returned the bikes late, or\n"
        "- for hires booked on a free-ride day.\n\n"
        "An extension is permitted only in the following cases:\n\n"
        "- (a) a puncture;\n"
        "- (b) a broken chain.\n"
    )
    draft = _hire(tmp_path, section, title="Late returns")
    rules = {r.text: r for r in draft.rules}
    late = rules["No refund is given when the rider returned the bikes late."]
    free = rules["No refund is given for hires booked on a free-ride day."]
    assert late.kind == free.kind == "never" and late.governs == ["refund_hire"]
    assert late.source is not None and late.source.quote.startswith("when the rider returned")
    assert not any("Exceptions" in text for text in rules)
    # a lead its items do not finish ("(a) a puncture") is a rule of its own
    assert "An extension is permitted only in the following cases:" in rules
    steps = " ".join(s.text for s in _flat(draft))
    assert "rider returned the bikes late" not in steps and "free-ride" not in steps
    assert "Exceptions" not in steps


def test_a_prohibition_after_so_is_a_rule(tmp_path: Path) -> None:
    # "Groups of more than four guests are handled by the Events team, so don't book them here"
    line = "Groups of more than four riders are handled by the Events team, so don't extend them."
    rules = _rules_of(
        tmp_path, f"1. Find the hire.\n2. Extend the hire.\n\n{line}\n", _tools(*_HIRE_TOOLS)
    )
    assert any(text.casefold().startswith("don't extend them") for text in rules), rules


def test_who_a_rule_is_for_is_no_object_of_the_action_it_governs(tmp_path: Path) -> None:
    # "Always use the patient's full name ... - there are three Margaret Jones on our books"
    # governed `book_vaccination_appointment` ("Book a patient into a slot ...")
    catalog = _tools(
        *_HIRE_TOOLS,
        ("book_service", "write", "Book a customer's bike into a service slot."),
        ("book_lesson", "write", "Book a customer onto a lesson."),
    )
    line = "Always use the customer's full name - there are three John Smiths on our books."
    rules = _rules_of(tmp_path, f"1. Find the hire.\n\n{line}\n", catalog)
    assert rules[line] == [], rules
    booked = "Never book a bike into a service slot on a Sunday."
    rules = _rules_of(tmp_path, f"1. Find the hire.\n\n{booked}\n", catalog)
    assert rules[booked] == ["book_service"], rules


def test_document_control_words_are_no_rule() -> None:
    assert rule_kind("Controlled copy: do not print.") is None
    assert rule_kind("Internal use only.") is None
    assert rule_kind("Do not print the customer's card number.") == "never"


def test_a_rule_under_a_question_holds_only_in_the_case_asked(tmp_path: Path) -> None:
    # "Not in stock? Don't book a bay.": no booking when the tyre is out of stock, never a
    # prohibition of every booking
    steps = (
        "1. Find the hire.\n2. Check the bikes.\n"
        "   - Not in stock? Don't extend the hire. Tell the rider we will call back.\n"
        "3. Extend the hire.\n"
    )
    rules = [r for r in _hire(tmp_path, steps).rules if r.text.startswith("Don't extend")]
    assert [r.condition for r in rules] == ["not in stock"]


def test_the_readers_a_sop_lists_are_no_rule(tmp_path: Path) -> None:
    # a tyre garage's wiki: "## Who this is for" over "- Branch supervisors (the end-of-day
    # section is for you only)" was the rule "Only if: Branch supervisors ..." on every routine
    sop = tmp_path / "hire.md"
    sop.write_text(
        "# Bike hire desk\n\n## Who this is for\n\n- Desk staff (phone and chat)\n"
        "- Shift leads (the cash-up section is for you only)\n\n"
        "> - Never hire out a bike without a helmet.\n\n"
        "## Hires\n\n1. Find the hire.\n2. Refund the hire if it was late.\n",
        encoding="utf-8",
    )
    procedures = read_procedures(sop, root=tmp_path, settings=Settings()).procedures
    procedure = next(p for p in procedures if p.title == "Hires")
    rules = [r.text for r in build_draft(procedure, catalog=_tools(*_HIRE_TOOLS)).rules]
    assert not any("for you only" in text for text in rules), rules
    # a rule written under the readers is still a rule
    assert "Never hire out a bike without a helmet." in rules


def test_rules_for_everything_are_rules_and_end_where_the_procedure_starts(tmp_path: Path) -> None:
    # a journal's helpdesk manual: "Ground rules for every author query" was the first steps of
    # every routine; once read as rules, its kind passed on to "Waiver bands" and "Steps" under
    # the next procedure (whose own heading segment takes out), and that routine lost its steps;
    # and its "Check that the person writing is the corresponding author before you tell them
    # anything" no longer called the catalog's identity check
    sop = tmp_path / "manual.md"
    sop.write_text(
        "# Editorial office manual\n\n"
        "## Ground rules for every author query\n\n"
        "- Check that the person writing is the corresponding author before you tell them "
        "anything about a manuscript.\n"
        "- Never disclose the names of reviewers.\n\n"
        "## Waiver requests\n\nWaivers depend on the author's country.\n\n"
        "### Waiver bands\n\n| Band | Waiver |\n|---|---|\n| A | 100% |\n| B | 50% |\n\n"
        "### Steps\n\n1. Open the manuscript record.\n2. Apply the waiver at the band's rate.\n\n"
        "## Withdrawal requests\n\n1. Open the manuscript record.\n2. Withdraw the manuscript.\n",
        encoding="utf-8",
    )
    catalog = _tools(
        (
            "verify_corresponding_author",
            "read",
            "Check whether an email belongs to the corresponding author.",
        ),
        ("get_manuscript", "read", "Open a manuscript record."),
        ("apply_waiver", "write", "Apply an APC waiver."),
        ("withdraw_manuscript", "write", "Withdraw a manuscript."),
    )
    procedures = read_procedures(sop, root=tmp_path, settings=Settings()).procedures
    assert [p.title for p in procedures] == ["Waiver requests", "Withdrawal requests"]
    waiver = build_draft(procedures[0], catalog=catalog)
    calls = [s.tool_call.tool for s in walk_steps(waiver.steps) if s.tool_call is not None]
    assert calls == ["verify_corresponding_author", "get_manuscript", "apply_waiver"]
    assert "Never disclose the names of reviewers." in [r.text for r in waiver.rules]
    assert not any("reviewers" in s.text for s in walk_steps(waiver.steps))


def test_a_do_and_dont_table_and_a_prohibition_after_a_case_are_rules(tmp_path: Path) -> None:
    # an intranet page: "Do | Don't" with a rule in every cell; a charity policy: "If the
    # supporter asks for a break in their giving, you must not pause the Direct Debit"
    section = """1. Find the hire.
2. If the rider asks for a break in the hire, you must not extend the hire, because we do
   not offer holidays.
3. Add the accessory.

| Do | Don't |
|----|-------|
| Quote the delivery charge on orders under £40. | Don't promise a delivery time after 4pm. |
"""
    said = {rule.text: rule.kind for rule in _hire(tmp_path, section).rules}
    assert said.get("Don't promise a delivery time after 4pm.") == "never", said
    assert said.get("Quote the delivery charge on orders under £40.") == "always", said
    assert any(
        t.startswith("You must not extend the hire") and k == "never" for t, k in said.items()
    )
