"""Condition forms the offline compiler reads, each in both directions, and requests written
as rules: written as a facilities desk, a claims team and a dispatch office write them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sop_compiler.config import Settings
from sop_compiler.generate.offline import build_draft
from sop_compiler.models import Procedure, RoutineDraft, Step, Tool, ToolCatalog, walk_steps
from sop_compiler.pipeline import read_procedures
from sop_compiler.validate import check_draft

CATALOG = ToolCatalog(
    tools=[
        Tool.model_validate(tool)
        for tool in yaml.safe_load(
            """
- name: get_booking_details
  description: Return a room booking's date, room, size and status.
  parameters: {type: object, properties: {booking_id: {type: string}}, required: [booking_id]}
- name: cancel_room_booking
  description: Cancel a room booking and release the room.
  access: write
  parameters: {type: object, properties: {booking_id: {type: string}}, required: [booking_id]}
- name: book_catering
  description: Order catering for a meeting.
  access: write
  parameters: {type: object, properties: {booking_id: {type: string}}, required: [booking_id]}
- name: notify_security
  description: Tell the security desk about a visitor.
  access: write
  parameters: {type: object, properties: {visitor: {type: string}}, required: [visitor]}
"""
        )
    ]
)


def _draft(tmp_path: Path, text: str, title: str | None = None) -> tuple[RoutineDraft, object]:
    (tmp_path / "sop.md").write_text(text, encoding="utf-8")
    result = read_procedures(tmp_path / "sop.md", root=tmp_path, settings=Settings())
    procedure = next(p for p in result.procedures if title is None or p.title == title)
    return build_draft(procedure, catalog=CATALOG), procedure


def _steps(draft: RoutineDraft) -> dict[str, Step]:
    return {step.id: step for step in walk_steps(draft.steps)}


def _path(draft: RoutineDraft, start: str | None) -> list[Step]:
    """The steps from `start` on, following each step's single way on (no branching here)."""
    steps = list(walk_steps(draft.steps))
    where = {step.id: n for n, step in enumerate(steps)}
    out: list[Step] = []
    n = where.get(start or "", len(steps))
    while n < len(steps) and len(out) < 50:
        step = steps[n]
        out.append(step)
        if step.kind in ("resolve", "escalate", "handoff"):
            break
        if step.kind == "condition" and step.condition is not None:
            n = where[step.condition.then_step]
            continue
        n = where[step.next_step] if step.next_step else n + 1
    return out


def _calls(path: list[Step]) -> list[str]:
    return [step.tool_call.tool for step in path if step.tool_call is not None]


def _condition(draft: RoutineDraft, words: str) -> Step:
    return next(
        s for s in walk_steps(draft.steps) if s.condition is not None and words in s.condition.test
    )


QUESTION = """# Facilities desk

## Book a meeting room

1. Ask for the booking reference.
2. Is the meeting for more than 20 people? Yes: escalate to the Events team.
   No: order catering with `book_catering`.
3. Tell the requester the room is ready.
"""


def test_a_question_answered_yes_and_no_is_a_condition_with_both_sides(tmp_path: Path) -> None:
    draft, procedure = _draft(tmp_path, QUESTION)
    check = _condition(draft, "more than 20 people")
    assert check.condition is not None
    assert check.condition.test == "Is the meeting for more than 20 people?"
    yes = _path(draft, check.condition.then_step)
    no = _path(draft, check.condition.else_step)
    assert yes[0].kind == "escalate" and yes[0].target == "Events team"
    assert "book_catering" not in _calls(yes)
    assert _calls(no) == ["book_catering"] and no[-1].kind == "resolve"
    # the steps quote the SOP's own words, never the rewritten reading
    assert not [
        i
        for i in check_draft(draft, procedure=procedure, catalog=CATALOG, settings=Settings())
        if i.code == "quote_not_in_source"
    ]


UNLESS = """# Reception

## Sign in a visitor

1. Ask for the visitor's name.
2. Unless the visitor is on today's list, do not issue a badge; escalate to Security and stop.
3. Issue a visitor badge and tell the host.
"""


def test_unless_runs_its_action_only_when_the_test_fails(tmp_path: Path) -> None:
    draft, _ = _draft(tmp_path, UNLESS)
    check = _condition(draft, "the visitor is on today's list")
    assert check.condition is not None
    assert check.condition.test == "it is not true that the visitor is on today's list"
    not_listed = _path(draft, check.condition.then_step)
    listed = _path(draft, check.condition.else_step)
    assert not_listed[-1].kind == "escalate" and not_listed[-1].target == "Security"
    assert listed[-1].kind == "resolve"
    assert not any(step.kind == "escalate" for step in listed)


DENY = """# Claims desk

## Review a damage claim

1. Look up the booking with `get_booking_details`.
2. If the damage was reported after checkout, decline the claim and explain why.
3. If the claim is above 500 EUR, escalate to the claims supervisor.
4. Otherwise, tell the guest the claim is accepted.
"""


def test_a_branch_that_refuses_the_request_ends_the_case(tmp_path: Path) -> None:
    draft, _ = _draft(tmp_path, DENY)
    late = _condition(draft, "after checkout")
    assert late.condition is not None
    declined = _path(draft, late.condition.then_step)
    assert [s.kind for s in declined][-1] == "resolve"
    assert not any(s.kind == "escalate" or s.condition is not None for s in declined)
    # on time: the amount check still runs
    on_time = _path(draft, late.condition.else_step)
    assert on_time[0].condition is not None and "500 EUR" in on_time[0].condition.test


ROUTE = """# Dispatch

## Handle a late van

1. If the delay is over two hours, assign the case to the duty manager.
2. Otherwise, tell the customer the new arrival time.
"""


def test_routing_a_case_to_a_person_is_an_escalation_not_a_handoff(tmp_path: Path) -> None:
    draft, _ = _draft(tmp_path, ROUTE)
    late = _condition(draft, "over two hours")
    assert late.condition is not None
    [step] = _path(draft, late.condition.then_step)
    assert step.kind == "escalate" and step.target == "duty manager"


RULES_ONLY = """# Facilities policy

## General rules
- Confirm every change with the requester and wait for a clear yes.

## Cancel a room booking
- Only bookings that have not started can be cancelled.
- Bookings for more than 50 people cannot be cancelled on the day.
"""


def test_a_request_written_as_rules_looks_the_record_up_then_acts(tmp_path: Path) -> None:
    draft, procedure = _draft(tmp_path, RULES_ONLY, title="Cancel a room booking")
    steps = list(walk_steps(draft.steps))
    calls = [s.tool_call.tool for s in steps if s.tool_call is not None]
    assert calls == ["get_booking_details", "cancel_room_booking"]
    _lookup, cancel = (s for s in steps if s.tool_call is not None)
    confirm = steps[steps.index(cancel) - 1]
    assert confirm.kind == "ask" and confirm.confirm  # the general rule gates the write
    # the booking id the lookup took is the one the cancellation uses
    (argument,) = cancel.tool_call.arguments if cancel.tool_call else []
    assert argument.name == "booking_id" and "same booking ID" in (argument.from_context or "")
    assert "only if every rule above allows it" in cancel.text
    kinds = {rule.kind for rule in draft.rules}
    assert {"only_if", "never", "confirm_before"} <= kinds  # the rules stay rules
    issues = check_draft(draft, procedure=procedure, catalog=CATALOG, settings=Settings())
    assert not [i for i in issues if i.severity == "error"]


def test_a_section_with_its_own_steps_gets_no_invented_call(tmp_path: Path) -> None:
    text = RULES_ONLY + "\n## Cancel catering\n1. If the meeting moved, tell the caterer.\n"
    draft, _ = _draft(tmp_path, text, title="Cancel catering")
    assert not [s for s in walk_steps(draft.steps) if s.tool_call is not None]


def test_a_figure_the_offline_compiler_cannot_read_is_flagged_on_its_routine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refunds PDF draws its decision flow as an image: the routine says it is missing."""
    from sop_compiler.config import load_settings
    from sop_compiler.pipeline import compile_folder

    samples = Path(__file__).parent.parent / "sample_sops"
    sops = tmp_path / "sops"
    (sops / "billing").mkdir(parents=True)
    (sops / "tools.yaml").write_bytes((samples / "tools.yaml").read_bytes())
    for name in ("refunds-and-credits.pdf", "invoice-corrections.md"):
        (sops / "billing" / name).write_bytes((samples / "billing" / name).read_bytes())
    settings = load_settings(sops, overrides={"output": tmp_path / "out", "backend": "offline"})
    result = compile_folder(sops, settings=settings)
    unread = {
        procedure.procedure_id: [i.message for i in procedure.issues if i.code == "figure_unread"]
        for sop in result.sops
        for procedure in sop.procedures
    }
    refund = unread["refunds-and-credits--issuing-a-refund"]
    assert refund and "Figure 1: Refund decision flow" in refund[0]
    assert unread["invoice-corrections"] == []  # text only: nothing to flag
    # A new sopc renders the routines again from their JSON (no generation): still unread.
    monkeypatch.setattr("sop_compiler.lock.staleness.RENDER_VERSION", "re-render")
    again = compile_folder(sops, settings=settings)
    [refunds] = [s for s in again.sops if s.source.endswith("refunds-and-credits.pdf")]
    [issuing] = [p for p in refunds.procedures if p.procedure_id.endswith("issuing-a-refund")]
    assert issuing.status == "unchanged"
    assert [i.message for i in issuing.issues if i.code == "figure_unread"] == refund


PHARMACY = """# CityCare Pharmacy - Prescription Refill Desk

Document owner: Pharmacy Operations. Version 3.2, reviewed March 2026.

## Scope
This procedure covers refill requests that come in by phone or chat.

## General rules
- Confirm the patient's date of birth before discussing any prescription.
- Read back the refill details and get a clear yes from the patient before you place it.

## Request a refill
1. Ask for the prescription number.
2. Is the medication a controlled substance? Yes: transfer the patient to the pharmacist on duty.
   No: continue.
3. Place the refill with `book_catering`.

## Cancel a refill
- Only refills that have not been picked up can be cancelled.
"""


def test_transferring_the_patient_to_a_person_ends_the_routine(tmp_path: Path) -> None:
    """The controlled-substance branch hands the patient over: it never goes on to the write."""
    draft, _ = _draft(tmp_path, PHARMACY, title="Request a refill")
    check = _condition(draft, "controlled substance")
    assert check.condition is not None
    handed_over = _path(draft, check.condition.then_step)
    assert handed_over[-1].kind == "escalate" and "pharmacist on duty" in (
        handed_over[-1].target or ""
    )
    assert "book_catering" not in _calls(handed_over)
    assert "book_catering" in _calls(_path(draft, check.condition.else_step))


def test_each_task_heading_gets_its_own_trigger_not_the_documents_scope(tmp_path: Path) -> None:
    request, _ = _draft(tmp_path, PHARMACY, title="Request a refill")
    cancel, _ = _draft(tmp_path, PHARMACY, title="Cancel a refill")
    assert request.trigger == "Use when a customer asks to request a refill."
    assert cancel.trigger == "Use when a customer asks to cancel a refill."


def test_confirming_who_the_caller_is_is_a_check_not_a_confirmation(tmp_path: Path) -> None:
    draft, _ = _draft(tmp_path, PHARMACY, title="Request a refill")
    kinds = {rule.text.split()[0]: rule.kind for rule in draft.rules}
    assert kinds["Confirm"] == "always"  # the date of birth: who is asking
    assert kinds["Read"] == "confirm_before"  # the read-back: an explicit yes


def test_words_before_a_condition_in_one_item_stay_a_step(tmp_path: Path) -> None:
    # a hotel: "Allocate a room of the type booked. If the guest arrives before 15:00, check
    # ..."; an escape room: "Late arrivals: up to 15 minutes late, the game is shortened. If
    # more than 30 minutes late, ...": the first words are no part of the test, never lost
    draft, _ = _draft(
        tmp_path,
        """# Facilities desk

## Visitors

1. Ask for the booking reference.
2. Visitors sign in at reception. If the visitor has no pass, tell the security desk with
   `notify_security`.
3. Tell the requester the visitor has arrived.
""",
    )
    texts = [step.text for step in walk_steps(draft.steps)]
    assert any(text.startswith("Visitors sign in at reception") for text in texts), texts
    walk = next(s for s in walk_steps(draft.steps) if s.text.startswith("Visitors sign in"))
    assert walk.condition is None
    assert _condition(draft, "no pass") is not None


STEP_TABLE = """# Facilities desk

## Room faults

A fault is anything in a meeting room that stops a meeting going ahead.

| Step | What to do |
|------|------------|
| 1 | Look up the booking and read its status. |
| 2 | Never cancel the booking while the meeting is on. |
| 3 | If the fault is a security risk, notify the security desk. |
| 4 | Order catering for the new room. |
"""


def test_a_table_of_numbered_steps_is_the_steps(tmp_path: Path) -> None:
    # a kitchen aftersales handbook writes each procedure as "Step | What to do" rows
    draft, procedure = _draft(tmp_path, STEP_TABLE)
    path = _path(draft, draft.steps[0].id)
    assert _calls(path)[:1] == ["get_booking_details"]
    assert "book_catering" in _calls(path)
    security = _condition(draft, "security risk")
    assert _calls(_path(draft, security.condition.then_step))[:1] == ["notify_security"]  # type: ignore[union-attr]
    never = [r for r in draft.rules if r.kind == "never"]
    assert any("cancel_room_booking" in r.governs for r in never), draft.rules
    assert not [k for k in draft.knowledge if "What to do" in k.fact]  # no row is a fact
    issues = check_draft(draft, procedure=procedure, catalog=CATALOG, settings=Settings())  # type: ignore[arg-type]
    assert not [i for i in issues if i.severity == "error"], issues


def test_an_amount_said_first_is_the_case_and_a_role_that_decides_takes_it(
    tmp_path: Path,
) -> None:
    # "Between £100 and £500, the Aftersales Manager decides. Over £500, the Showroom Director
    # decides": cases of the amount, each handed to whoever decides, with the tool that reaches
    # them; at or under £100 the step goes on
    catalog = ToolCatalog(
        tools=[
            *CATALOG.tools,
            Tool(
                name="refer_to_facilities_manager",
                description="Pass a case to the Facilities Manager for a decision.",
                access="write",
            ),
        ]
    )
    (tmp_path / "sop.md").write_text(
        """# Facilities desk

## Damage charges

1. Look up the booking.
2. You can waive a damage charge of up to £100. Between £100 and £500, the Facilities Manager
   decides. Over £500, the Regional Director decides.
3. Cancel the room booking.
""",
        encoding="utf-8",
    )
    result = read_procedures(tmp_path / "sop.md", root=tmp_path, settings=Settings())
    draft = build_draft(result.procedures[0], catalog=catalog)
    between = _condition(draft, "between £100 and £500")
    path = _path(draft, between.condition.then_step)  # type: ignore[union-attr]
    assert _calls(path) == ["refer_to_facilities_manager"]
    assert path[-1].kind == "escalate"
    over = _condition(draft, "over £500")
    assert _path(draft, over.condition.then_step)[-1].kind == "escalate"  # type: ignore[union-attr]
    assert "cancel_room_booking" in _calls(_path(draft, over.condition.else_step))  # type: ignore[union-attr]


def test_a_question_put_to_the_customer_is_the_test_of_its_answers(tmp_path: Path) -> None:
    # 'Listen, then ask: "Has this been put right already?" If yes, ... If no, ...': the
    # question is what is tested, never "Listen"
    draft, _ = _draft(
        tmp_path,
        """# Facilities desk

## Room complaints

1. Look up the booking.
2. Listen, then ask: "Is the meeting still going ahead?" If yes, order catering for it with
   `book_catering`. If no, cancel the room booking.
3. Tell the requester what happens next.
""",
    )
    asked = _condition(draft, "Is the meeting still going ahead?")
    assert "Listen" not in asked.condition.test  # type: ignore[union-attr]
    assert _calls(_path(draft, asked.condition.then_step))[:1] == ["book_catering"]  # type: ignore[union-attr]
    assert _calls(_path(draft, asked.condition.else_step))[:1] == ["cancel_room_booking"]  # type: ignore[union-attr]


def test_items_that_finish_the_sentence_of_their_lead_are_said_as_written(
    tmp_path: Path,
) -> None:
    # "When you log a complaint, record:" over "what went wrong;", "when it started;": what to
    # record, never steps of their own, never "Check whether it started"
    draft, _ = _draft(
        tmp_path,
        """# Facilities desk

## Room complaints

1. Look up the booking.
2. Tell the requester we reply within 5 working days.

When you log a complaint, record:

1. what went wrong, in the requester's words;
2. when it started and what has been done so far;
3. what the requester wants us to do.
""",
    )
    steps = list(walk_steps(draft.steps))
    texts = [step.text for step in steps]
    assert "when it started and what has been done so far;" in texts, texts
    assert not any(text.startswith("Check whether it started") for text in texts)
    # the three parts sit under the lead, not as top-level steps after the reply
    assert all(step.text[:1].isupper() for step in draft.steps), [s.text for s in draft.steps]


CALL_SCRIPT = """FACILITIES DESK CALL SCRIPTS

1. SCRIPT A: ROOM FAULTS
------------------------
  Step 1. Look up the booking.

  Step 2. Q: "Is the meeting still going ahead?"
          A: YES => order catering for it with `book_catering`.
                    If the visitor has no pass, notify the security desk.
             NO  => go to Step 3.

  Step 3. Q: "Can the group move rooms?"
          A: NO  => cancel the room booking.
             YES => go to Step 4.

  Step 4. Tell the requester what happens next.

2. USEFUL FACTS
---------------
  - Rooms open at 07:00.
  - Catering needs 24 hours' notice.
"""


def test_a_call_script_of_questions_and_arrowed_answers(tmp_path: Path) -> None:
    # a claims line: 'Q: "Is water still coming in?" A: YES => ... If they can't, send a
    # plumber. NO => go to Step 3.' The question is the test, its NO is the question's other
    # side (never the otherwise of the case inside its YES), and a NO or YES that only goes on
    # to the next step ends nothing; the facts after the script are no steps
    (tmp_path / "sop.txt").write_text(CALL_SCRIPT, encoding="utf-8")
    result = read_procedures(tmp_path / "sop.txt", root=tmp_path, settings=Settings())
    draft = build_draft(result.procedures[0], catalog=CATALOG)
    going = _condition(draft, "Is the meeting still going ahead?")
    assert "Q:" not in going.condition.test  # type: ignore[union-attr]
    yes = _path(draft, going.condition.then_step)  # type: ignore[union-attr]
    no = _path(draft, going.condition.else_step)  # type: ignore[union-attr]
    assert _calls(yes)[:1] == ["book_catering"]
    assert "book_catering" not in _calls(no)
    # both answers go on to Step 3 and Step 4: the YES side does not end the call
    assert any(s.condition and "move rooms" in s.condition.test for s in yes)
    move = _condition(draft, "move rooms")
    stays = _path(draft, move.condition.then_step)  # type: ignore[union-attr]
    assert "cancel_room_booking" in _calls(stays)
    assert any(s.text.startswith("Tell the requester") for s in stays)
    moves = _path(draft, move.condition.else_step)  # type: ignore[union-attr]
    assert "cancel_room_booking" not in _calls(moves)
    assert any(s.text.startswith("Tell the requester") for s in moves)
    texts = [s.text for s in walk_steps(draft.steps)]
    assert not any("07:00" in text or "24 hours" in text for text in texts), texts


def test_ending_the_call_before_a_hand_over_ends_in_the_hand_over(tmp_path: Path) -> None:
    # a claims script: "tell them to call 999 and get out of the building. The claim can wait;
    # end the call and pass it to the duty claims handler to call back": what they are told
    # stays one step, and the hand-over is reached (never unreachable after "end the call")
    draft, procedure = _draft(
        tmp_path,
        """# Facilities desk

## Flooded rooms

1. Look up the booking.
2. If the room is flooded, tell them to leave the room and stay out of the building. End the
   call and pass it to the Facilities Manager to call back.
3. Order catering with `book_catering`.
""",
    )
    flooded = _condition(draft, "flooded")
    path = _path(draft, flooded.condition.then_step)  # type: ignore[union-attr]
    assert any("and stay out of the building" in s.text for s in path), [s.text for s in path]
    assert path[-1].kind == "escalate"
    assert "book_catering" not in _calls(path)
    issues = check_draft(draft, procedure=procedure, catalog=CATALOG, settings=Settings())  # type: ignore[arg-type]
    assert not [i for i in issues if i.code == "unreachable_step"], issues


def test_a_table_of_cases_a_step_leads_with_amounts_and_statements(tmp_path: Path) -> None:
    # "Work out which row of this table you are in:" over "If ... | then ...", a row "The
    # disputed amount is over £1,000" (a thousands comma, no list) and a cell that states
    # before it orders ("We don't refund unused time. Offer a credit instead."); and a weekly
    # sweep "Every Monday by 10:00, pull the list ...": an order after its time
    draft, _ = _draft(
        tmp_path,
        """# Facilities desk

## Room disputes

1. Look up the booking.
2. Work out which row of this table you are in:

| If ... | then ... |
|---|---|
| The room was double booked | Cancel the room booking. |
| The charge is over £1,000 | We don't decide those here. Notify the security desk. |

3. Every Monday by 10:00, order catering for the next week.
""",
    )
    double = _condition(draft, "double booked")
    assert _calls(_path(draft, double.condition.then_step))[:1] == ["cancel_room_booking"]  # type: ignore[union-attr]
    over = _condition(draft, "over £1,000")
    assert "notify_security" in _calls(_path(draft, over.condition.then_step))  # type: ignore[union-attr]
    assert not draft.edge_cases
    assert "book_catering" in [s.tool_call.tool for s in walk_steps(draft.steps) if s.tool_call]


def test_two_cases_of_what_it_is_and_an_exception_that_a_then_goes_on_with(
    tmp_path: Path,
) -> None:
    # a kitchen handbook: "If it is the appliance itself, raise a claim. If it is the fitting,
    # book our fitter." are the two answers (the fitting case is never inside the appliance
    # case); the bullet after the table of steps is no part of its last row, and "..., except
    # where the appliance was delivered damaged. Then order the replacement" orders only then
    draft, _ = _draft(
        tmp_path,
        """# Facilities desk

## Projector faults

| Step | What to do |
|------|------------|
| 1 | Look up the booking. |
| 2 | If it is the projector itself, notify the security desk. If it is the cable, cancel it. |
| 3 | If the room is on fire, tell them to leave the room. Don't book anything. |

- Exception: catering is only ordered by the events team, never by us, except where the meeting
  is for the board. Then order catering for it.
""",
    )
    projector = _condition(draft, "the projector itself")
    cable = _condition(draft, "the cable")
    assert "notify_security" in _calls(_path(draft, projector.condition.then_step))  # type: ignore[union-attr]
    assert "cancel_room_booking" not in _calls(_path(draft, projector.condition.then_step))  # type: ignore[union-attr]
    assert projector.condition.else_step == cable.id  # type: ignore[union-attr]
    board = _condition(draft, "for the board")
    assert "book_catering" in _calls(_path(draft, board.condition.then_step))  # type: ignore[union-attr]
    assert "book_catering" not in _calls(_path(draft, board.condition.else_step))  # type: ignore[union-attr]
    fire = _condition(draft, "on fire")
    assert "book_catering" not in _calls(_path(draft, fire.condition.then_step))  # type: ignore[union-attr]


def test_a_limit_said_as_an_order_and_a_case_where_nothing_is_done(tmp_path: Path) -> None:
    # "Put no more than 25 accounts on hold in one day" limits the order, it is no call; "If
    # the caller is not the account holder, thank them, make no change and ask the account
    # holder to contact us" and "... text the link and record nothing yet" end the case there
    draft, _ = _draft(
        tmp_path,
        """# Facilities desk

## Room changes

1. Look up the booking.
2. If the caller did not make the booking, thank them, make no change and ask the organiser
   to contact us.
3. If the room is too small, notify the security desk and book nothing yet.
4. Cancel no more than 3 room bookings in one day without telling the Facilities Manager.
5. Cancel the room booking.
""",
    )
    caller = _condition(draft, "did not make the booking")
    assert "cancel_room_booking" not in _calls(_path(draft, caller.condition.then_step))  # type: ignore[union-attr]
    small = _condition(draft, "too small")
    path = _path(draft, small.condition.then_step)  # type: ignore[union-attr]
    assert "notify_security" in _calls(path) and "cancel_room_booking" not in _calls(path)
    limit = next(s for s in walk_steps(draft.steps) if s.text.startswith("Cancel no more than"))
    assert limit.tool_call is None
    assert not draft.tools_proposed


def test_a_band_after_a_semicolon_said_of_anything_over_an_amount(tmp_path: Path) -> None:
    # "Charges up to £300 you can raise yourself; anything over £300 goes to the Damage Team
    # Lead": over £300 is a case, never a hand-over of every charge
    draft, _ = _draft(
        tmp_path,
        """# Facilities desk

## Damage charges

1. Look up the booking.
2. Charges up to £300 you can waive yourself; anything over £300 goes to the Facilities
   Manager.
3. Cancel the room booking.
""",
    )
    over = _condition(draft, "over £300")
    assert _path(draft, over.condition.then_step)[-1].kind == "escalate"  # type: ignore[union-attr]
    assert "cancel_room_booking" in _calls(_path(draft, over.condition.else_step))  # type: ignore[union-attr]


def test_a_case_that_says_you_must_not_do_the_request_ends_there(tmp_path: Path) -> None:
    # a charity policy: "If the gift was a Direct Debit collection taken in error, you must not
    # refund it through our system; tell them to claim from their bank": never on into the
    # step that refunds it
    draft, _ = _draft(
        tmp_path,
        """# Facilities desk

## Room refunds

1. Look up the booking.
2. If the booking was made by another company, you must not cancel the room booking
   yourself; tell them to contact that company.
3. Cancel the room booking.
""",
    )
    other = _condition(draft, "another company")
    assert "cancel_room_booking" not in _calls(_path(draft, other.condition.then_step))  # type: ignore[union-attr]
    assert "cancel_room_booking" in _calls(_path(draft, other.condition.else_step))  # type: ignore[union-attr]


def test_what_we_never_do_is_no_call_of_it(tmp_path: Path) -> None:
    # a car subscription README: "We don't pause subscriptions, not even for a holiday or a
    # hospital stay." called `pause_subscription`
    draft, _ = _draft(
        tmp_path,
        """# Facilities desk

## Room changes

1. Look up the booking.
2. We don't cancel room bookings on the day, not even for a fire drill. If someone asks,
   notify the security desk.
""",
    )
    assert "cancel_room_booking" not in [
        s.tool_call.tool for s in walk_steps(draft.steps) if s.tool_call is not None
    ]


HAND_OVER_TOOLS = ToolCatalog(
    tools=[
        *CATALOG.tools,
        Tool(
            name="refer_to_team",
            description="Refer a case to the Events team, a team leader or the site's "
            "facilities manager.",
            access="write",
            parameters={
                "type": "object",
                "properties": {"team": {"type": "string"}, "summary": {"type": "string"}},
                "required": ["team", "summary"],
            },
        ),
        Tool(
            name="send_requester_message",
            description="Send the requester a text message.",
            access="write",
            parameters={
                "type": "object",
                "properties": {"message": {"type": "string"}},
                "required": ["message"],
            },
        ),
    ]
)


def _handed(tmp_path: Path, text: str) -> tuple[RoutineDraft, Procedure]:
    (tmp_path / "sop.md").write_text(text, encoding="utf-8")
    result = read_procedures(tmp_path / "sop.md", root=tmp_path, settings=Settings())
    procedure = result.procedures[0]
    return build_draft(procedure, catalog=HAND_OVER_TOOLS), procedure


def test_a_case_referred_to_a_role_in_lower_case_is_handed_to_them(tmp_path: Path) -> None:
    # a school meals sweep: "If it is below minus £10, refer the account to the school's
    # business manager; do not text again" was a plain step, and the run went on to text
    draft, _ = _handed(
        tmp_path,
        """# Facilities desk

## Weekly unpaid bookings run

1. Look up the booking.
2. If more than £500 is unpaid, refer the account to the site's facilities manager; do not
   text the requester again.
3. Send the requester a text message about the balance.
""",
    )
    unpaid = _condition(draft, "more than £500")
    handed = _path(draft, unpaid.condition.then_step)  # type: ignore[union-attr]
    assert _calls(handed) == ["refer_to_team"] and handed[-1].kind == "escalate"
    assert "send_requester_message" in _calls(_path(draft, unpaid.condition.else_step))  # type: ignore[union-attr]


def test_limits_said_in_words_are_rules_not_calls(tmp_path: Path) -> None:
    # "Send no more than one reminder per parent per week", "Retry at most twice per pledge":
    # each was one more call of the tool it limits
    draft, _ = _handed(
        tmp_path,
        """# Facilities desk

## Unpaid bookings

1. Look up the booking.
2. Send the requester a text message about the balance.
3. Send no more than one reminder per requester per week.
4. Cancel at most twice per meeting; after that the room booking stands.
""",
    )
    calls = [s.tool_call.tool for s in walk_steps(draft.steps) if s.tool_call is not None]
    assert calls == ["get_booking_details", "send_requester_message"]
    limits = [r for r in draft.rules if r.kind == "limit"]
    assert any("no more than one reminder" in r.text for r in limits), draft.rules
    assert any("at most twice" in r.text for r in limits), draft.rules


def test_a_refusal_of_two_verbs_of_one_thing_orders_neither(tmp_path: Path) -> None:
    # a hotel manual: "Don't cancel and rebook a group to change it; amend the existing block"
    # read "Don't cancel." and the order "Rebook a group to change it"
    draft, _ = _handed(
        tmp_path,
        """# Facilities desk

## Moving a meeting

1. Look up the booking.
2. Don't cancel and book catering again to move it; order catering for the new room.
""",
    )
    texts = [s.text for s in walk_steps(draft.steps)]
    assert not any(t.casefold().startswith("book catering again") for t in texts), texts
    assert any(t.startswith("Don't cancel and book catering again") for t in texts), texts
    calls = [s.tool_call.tool for s in walk_steps(draft.steps) if s.tool_call is not None]
    assert "cancel_room_booking" not in calls and "book_catering" in calls


def test_after_a_hand_over_the_list_goes_on(tmp_path: Path) -> None:
    # a meal-kit playbook: "c. Pass it to the Food Safety team. d. Add the allergen flag as
    # well": the routine ended at c and no path reached d, an error that kept the routine out
    # of the network
    draft, procedure = _handed(
        tmp_path,
        """# Facilities desk

## A visitor is hurt

1. Look up the booking.
2. If the visitor needs an ambulance, tell the requester to call 999 and end the chat.
   Otherwise:
   a. Refer it to the Events team. They call back within the hour.
   b. Send the requester a text message with the incident number.
3. Tell the requester we are sorry.
""",
    )
    issues = check_draft(draft, procedure=procedure, catalog=HAND_OVER_TOOLS, settings=Settings())
    assert not [i for i in issues if i.code == "unreachable_step"], issues
    texts = [s.text for s in walk_steps(draft.steps)]
    assert "They call back within the hour." in texts, texts  # the SOP's words stay
    hurt = _condition(draft, "ambulance")
    assert _calls(_path(draft, hurt.condition.else_step)) == [  # type: ignore[union-attr]
        "refer_to_team",
        "send_requester_message",
    ]


def test_a_hand_over_that_ends_a_case_still_ends_it(tmp_path: Path) -> None:
    # "Where the refund exceeds £250, do not issue it and refer the case to the Team Leader":
    # the issue after it is the other case's, never a step after the hand-over
    draft, _ = _handed(
        tmp_path,
        """# Facilities desk

## Refund a cancelled meeting

1. Look up the booking.
2. If the refund exceeds £250, do not cancel it; refer the case to a team leader.
3. Cancel the room booking.
""",
    )
    big = _condition(draft, "exceeds £250")
    assert "cancel_room_booking" not in _calls(_path(draft, big.condition.then_step))  # type: ignore[union-attr]


def test_a_yes_that_acts_goes_on_when_the_no_refuses(tmp_path: Path) -> None:
    # "Is the campaign still live? Yes: make the change. No: do not change it." then "Email
    # the backer": the no ends the case, and the yes went to the end with it
    draft, _ = _draft(
        tmp_path,
        """# Facilities desk

## Change a room booking

1. Look up the booking.
2. Is the room still free? Yes: book catering for the new time. No: make no change.
3. Notify the security desk about the visitor.
""",
    )
    free = _condition(draft, "still free")
    assert _calls(_path(draft, free.condition.then_step)) == ["book_catering", "notify_security"]  # type: ignore[union-attr]
    assert "notify_security" not in _calls(_path(draft, free.condition.else_step))  # type: ignore[union-attr]


SWIMLANE = """# Facilities desk

## Room changes

Purpose: requesters can move a meeting while the room is free.

| Who | Does what | Then |
|-----|-----------|------|
| Desk | Look up the booking and read its status. | Decision below. |
| Desk | Order catering for the new room. | Tell the requester the new room number. |
| Desk | Notify the security desk about the visitors. | Close the contact. |

Decision: Is the meeting today?

Yes -> Escalate to the Events team.

No -> Carry on with the table.

| Role | How to reach | When |
|------|--------------|------|
| Duty manager | Radio channel 1 | Refunds over £150 |
| Events team | Extension 2040 | Anything today |
"""


def test_a_swimlane_table_is_the_steps_and_its_decisions_come_where_it_says(
    tmp_path: Path,
) -> None:
    # a crowdfunding process document: "Who | Does what | Then" rows, then "Decision: ...?"
    # with "Yes ->" / "No ->" paragraphs; the rows and the decisions were both dropped
    draft, procedure = _draft(tmp_path, SWIMLANE)
    today = _condition(draft, "meeting today")
    yes = _path(draft, today.condition.then_step)  # type: ignore[union-attr]
    no = _path(draft, today.condition.else_step)  # type: ignore[union-attr]
    assert yes[-1].kind == "escalate" and "book_catering" not in _calls(yes)
    assert _calls(no) == ["book_catering", "notify_security"]
    steps = list(walk_steps(draft.steps))
    assert steps[0].tool_call is not None and steps[0].tool_call.tool == "get_booking_details"
    # the decision is asked after the row whose "Then" names it, before catering is ordered
    order = [s.id for s in steps]
    catering = next(s for s in steps if s.tool_call and s.tool_call.tool == "book_catering")
    assert order.index(today.id) < order.index(catering.id)
    texts = [s.text for s in steps]
    assert any("Tell the requester the new room number" in t for t in texts), texts
    assert not any("Decision below" in t for t in texts), texts
    # a table of contacts is no swimlane: no step says "Radio channel 1"
    assert not any("Radio channel 1" in t for t in texts), texts
    issues = check_draft(draft, procedure=procedure, catalog=CATALOG, settings=Settings())  # type: ignore[arg-type]
    assert not [i for i in issues if i.severity == "error"], issues


def test_unless_in_which_case_is_the_case_itself(tmp_path: Path) -> None:
    # a garden centre article: "Refund the item only - not the delivery charge - unless every
    # item in the order was damaged, in which case refund the delivery charge too" read as
    # "If it is not true that every item was damaged, refund the delivery charge"
    draft, _ = _draft(
        tmp_path,
        """# Facilities desk

## Catering complaints

1. Look up the booking.
2. Notify the security desk about the complaint - unless the visitor was hurt, in which case
   cancel the room booking too.
""",
    )
    hurt = _condition(draft, "the visitor was hurt")
    assert hurt.condition is not None and "not true" not in hurt.condition.test
    assert _calls(_path(draft, hurt.condition.then_step)) == ["cancel_room_booking"]


def test_not_dealt_with_here_ends_the_case(tmp_path: Path) -> None:
    # "If it's been more than 48 hours since delivery, don't process it here: plants go
    # through a guarantee claim" went on into the refund steps
    draft, _ = _draft(
        tmp_path,
        """# Facilities desk

## Room refunds

1. If the meeting was more than 30 days ago, don't process it here: old refunds go to
   Finance.
2. Look up the booking.
3. Cancel the room booking.
""",
    )
    old = _condition(draft, "more than 30 days ago")
    assert _calls(_path(draft, old.condition.then_step)) == []  # type: ignore[union-attr]
    assert "cancel_room_booking" in _calls(_path(draft, old.condition.else_step))  # type: ignore[union-attr]


def test_a_role_in_lower_case_who_decides_takes_the_case(tmp_path: Path) -> None:
    # a garden centre's van check: "If a drop can't go, the duty manager decides what happens
    # to it" was a remark, and the run went on as if the drop could go
    draft, _ = _handed(
        tmp_path,
        """# Facilities desk

## Daily room check

1. Look up the booking.
2. If the room is flooded, the site's facilities manager decides what happens to the
   meeting.
3. Send the requester a text message with the room number.
""",
    )
    flooded = _condition(draft, "flooded")
    handed = _path(draft, flooded.condition.then_step)  # type: ignore[union-attr]
    assert _calls(handed) == ["refer_to_team"] and handed[-1].kind == "escalate"
