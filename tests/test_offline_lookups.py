"""Binding what an SOP says in its own words to the catalog: lookups ("get the account details",
"check the membership status"), the record a condition tests, outcomes recorded as a value
("deny the claim"), transfers to people through the catalog's transfer tool, and "raise" as a
change. Written as a gym's front desk and a pet-insurance claims team write them."""

from __future__ import annotations

from pathlib import Path

import yaml

from sop_compiler.config import Settings
from sop_compiler.generate.offline import build_draft
from sop_compiler.models import RoutineDraft, Step, Tool, ToolCatalog, walk_steps
from sop_compiler.pipeline import read_procedures
from sop_compiler.validate import check_draft

CATALOG = ToolCatalog(
    tools=[
        Tool.model_validate(tool)
        for tool in yaml.safe_load(
            """
- name: get_membership_record
  description: Return a membership's tier, freeze status, unpaid fees and renewal date.
  parameters: {type: object, properties: {member_id: {type: string}}, required: [member_id]}
- name: find_member_by_email
  description: Return the member id for an email address.
  parameters: {type: object, properties: {email: {type: string}}, required: [email]}
- name: freeze_membership
  description: Pause a membership for up to three months.
  access: write
  parameters: {type: object, properties: {member_id: {type: string}}, required: [member_id]}
- name: adjust_guest_pass_limit
  description: Change the guest pass limit of a membership.
  access: write
  parameters: {type: object, properties: {member_id: {type: string}, limit: {type: integer}},
               required: [member_id, limit]}
- name: open_support_ticket
  description: Open a ticket for the back office.
  access: write
  parameters: {type: object, properties: {summary: {type: string}}, required: [summary]}
- name: transfer_to_human_staff
  description: Transfer the conversation to a member of staff.
  access: write
  parameters: {type: object, properties: {summary: {type: string}}, required: [summary]}
- name: assign_locker
  description: Give a member a locker for the year.
  access: write
  parameters: {type: object, properties: {member_id: {type: string},
               locker: {type: string, enum: [standard, premium]}}, required: [member_id, locker]}
- name: get_claim_file
  description: Return a claim's pet, policy, invoice total and vet notes.
  parameters: {type: object, properties: {claim_number: {type: string}}, required: [claim_number]}
- name: record_claim_outcome
  description: Record a decision on a claim.
  access: write
  parameters: {type: object, properties: {claim_number: {type: string},
               outcome: {type: string, enum: [approved, declined, referred]}},
               required: [claim_number, outcome]}
"""
        )
    ]
)


def _draft(
    tmp_path: Path, text: str, catalog: ToolCatalog = CATALOG
) -> tuple[RoutineDraft, object]:
    (tmp_path / "sop.md").write_text(text, encoding="utf-8")
    result = read_procedures(tmp_path / "sop.md", root=tmp_path, settings=Settings())
    procedure = result.procedures[0]
    return build_draft(procedure, catalog=catalog), procedure


def _steps(draft: RoutineDraft) -> list[Step]:
    return list(walk_steps(draft.steps))


def _calls(draft: RoutineDraft) -> list[str]:
    return [s.tool_call.tool for s in _steps(draft) if s.tool_call is not None]


def _errors(draft: RoutineDraft, procedure: object) -> list[str]:
    issues = check_draft(draft, procedure=procedure, catalog=CATALOG, settings=Settings())  # type: ignore[arg-type]
    return [i.code for i in issues if i.severity == "error"]


def test_getting_a_record_is_a_lookup_but_getting_a_number_from_the_member_is_an_ask(
    tmp_path: Path,
) -> None:
    draft, _ = _draft(
        tmp_path,
        """# Front desk

## Freeze a membership

1. Get the customer's member number.
2. Get the membership record first.
3. Freeze the membership with `freeze_membership`.
""",
    )
    steps = _steps(draft)
    assert steps[0].kind == "ask" and steps[0].tool_call is None  # from the member
    assert steps[1].tool_call is not None and steps[1].tool_call.tool == "get_membership_record"
    assert "Ask the customer" not in steps[1].text
    assert _calls(draft) == ["get_membership_record", "freeze_membership"]


def test_checking_a_record_calls_its_lookup_once_and_checking_for_things_is_no_call(
    tmp_path: Path,
) -> None:
    draft, _ = _draft(
        tmp_path,
        """# Front desk

## Renewal questions

1. Check the membership status.
2. Check for unpaid fees and open bookings.
3. If the member asks again, check the membership record and tell them the renewal date.
""",
    )
    steps = _steps(draft)
    assert steps[0].tool_call is not None and steps[0].tool_call.tool == "get_membership_record"
    assert steps[1].tool_call is None  # "check for ...": no one record to read
    again = next(s for s in steps if s.text.startswith("Check the membership record"))
    # the record was read in step 1: the step looks at what it returned, no second call
    assert again.tool_call is None and "`get_membership_record` returned in step 1" in again.text
    assert _calls(draft) == ["get_membership_record"]


CONDITIONED = """# Front desk

## Freeze a membership

- A membership with unpaid fees cannot be frozen.
- If the member is on the Platinum tier, freeze it at no charge; otherwise tell them the fee is
  15 EUR and freeze it once they agree.
- Freeze the membership with `freeze_membership`.
"""


def test_a_test_of_record_data_looks_the_record_up_before_it_is_tested(tmp_path: Path) -> None:
    draft, procedure = _draft(tmp_path, CONDITIONED)
    steps = _steps(draft)
    first_test = next(n for n, s in enumerate(steps) if s.condition is not None)
    lookup = next(n for n, s in enumerate(steps) if s.tool_call is not None)
    assert steps[lookup].tool_call is not None
    assert steps[lookup].tool_call.tool == "get_membership_record"  # tier, unpaid fees
    assert lookup < first_test
    assert steps[lookup].source is not None  # cites the condition or rule it serves
    assert _errors(draft, procedure) == []


def test_no_lookup_is_added_when_the_sop_looks_up_itself_or_shares_one_word(
    tmp_path: Path,
) -> None:
    own, _ = _draft(
        tmp_path,
        """# Front desk

## Freeze a membership

1. Look up the membership with `get_membership_record`.
2. If the member is on the Platinum tier, freeze it with `freeze_membership`.
""",
    )
    assert _calls(own).count("get_membership_record") == 1
    one_word, _ = _draft(
        tmp_path,
        """# Front desk

## Guest passes

1. If the member cannot find the email with their pass, resend it with `open_support_ticket`.
""",
    )
    # "email" is all the test shares with `find_member_by_email`: no lookup is invented
    assert "find_member_by_email" not in _calls(one_word)


CLAIM = """# Claims team

## Decide a claim

1. Look up the claim file with `get_claim_file`.
2. If the treatment is listed as pre-existing in the vet notes, decline the claim.
   Otherwise, approve it.
"""


def test_an_outcome_verb_records_that_outcome_on_each_side(tmp_path: Path) -> None:
    draft, procedure = _draft(tmp_path, CLAIM)
    steps = {s.id: s for s in _steps(draft)}
    check = next(s for s in steps.values() if s.condition is not None)
    assert check.condition is not None
    then = steps[check.condition.then_step]
    otherwise = steps[check.condition.else_step or ""]

    def outcome(step: Step) -> object:
        # the recording call, past any confirmation the routine puts before it
        flat = _steps(draft)
        call = next(s for s in flat[flat.index(step) :] if s.tool_call is not None)
        assert call.tool_call is not None and call.tool_call.tool == "record_claim_outcome"
        return next(a.value for a in call.tool_call.arguments if a.name == "outcome")

    assert outcome(then) == "declined"
    assert outcome(otherwise) == "approved"
    # the SOP asks for the action in its words: no unsupported_write error
    assert _errors(draft, procedure) == []


def test_a_transfer_to_staff_calls_the_catalogs_transfer_tool_and_ends_there(
    tmp_path: Path,
) -> None:
    draft, _ = _draft(
        tmp_path,
        """# Front desk

## Cancel a membership

1. Look up the membership with `get_membership_record`.
2. If the member has unpaid fees, transfer the customer to a member of staff.
   Otherwise, open a ticket for the back office with `open_support_ticket`.
""",
    )
    steps = _steps(draft)
    check = next(s for s in steps if s.condition is not None)
    assert check.condition is not None
    ids = [s.id for s in steps]
    then = steps[ids.index(check.condition.then_step) :]
    transfer = next(s for s in then if s.tool_call is not None)
    assert transfer.tool_call is not None and transfer.tool_call.tool == "transfer_to_human_staff"
    after = then[then.index(transfer) + 1]
    assert after.kind == "escalate"  # the case is the staff's: the branch ends
    otherwise = steps[ids.index(check.condition.else_step or "") :]
    assert next(s for s in otherwise if s.tool_call is not None).tool_call.tool == (  # type: ignore[union-attr]
        "open_support_ticket"
    )


def test_raising_a_limit_changes_it_and_raising_a_ticket_opens_one(tmp_path: Path) -> None:
    draft, _ = _draft(
        tmp_path,
        """# Front desk

## Guest passes

1. Look up the membership with `get_membership_record`.
2. Raise the guest pass limit to 4.
3. Raise a ticket for the back office so the card is reprinted.
""",
    )
    assert _calls(draft)[1:] == ["adjust_guest_pass_limit", "open_support_ticket"]


def test_a_value_said_with_its_parameters_name_calls_the_tool_that_takes_it(
    tmp_path: Path,
) -> None:
    draft, _ = _draft(
        tmp_path,
        """# Front desk

## Lockers

1. Look up the membership with `get_membership_record`.
2. If the member is on the Platinum tier, give them a premium locker; otherwise use the
   standard locker.
""",
    )
    steps = _steps(draft)
    check = next(s for s in steps if s.condition is not None)
    assert check.condition is not None
    ids = [s.id for s in steps]

    def locker(start: str | None) -> object:
        call = next(s for s in steps[ids.index(start or "") :] if s.tool_call is not None)
        assert call.tool_call is not None and call.tool_call.tool == "assign_locker"
        return next(a.value for a in call.tool_call.arguments if a.name == "locker")

    assert locker(check.condition.then_step) == "premium"
    assert locker(check.condition.else_step) == "standard"


def test_an_argument_never_comes_from_a_step_the_path_did_not_pass(tmp_path: Path) -> None:
    draft, _ = _draft(
        tmp_path,
        """# Claims team

## Decide a claim

1. If the policy lapsed before the visit, decline the claim and stop.
2. If the invoice total is above 2,000 EUR, refer the claim to a senior assessor.
   Otherwise, approve it.
""",
        # no claim-file lookup: the first claim reference is the one in step 1's branch
        ToolCatalog(tools=[t for t in CATALOG.tools if t.name != "get_claim_file"]),
    )
    steps = _steps(draft)
    declined = next(
        s for s in steps if s.tool_call is not None and "declined" in str(s.tool_call.arguments)
    )
    later = [s for s in steps if s.tool_call is not None and s is not declined]
    assert later  # the approve (and refer) calls after the first test
    for step in later:
        assert step.tool_call is not None
        for arg in step.tool_call.arguments:
            # step 1's branch ended: its claim reference is not there on this path
            assert f"in step {declined.id}" not in (arg.from_context or ""), step.text


def test_a_tool_that_answers_whether_is_no_lookup_of_what_the_conditions_test(
    tmp_path: Path,
) -> None:
    # a formalwear manual: "If more than 40 outfits are going, email the hire desk" looked up
    # `check_size_availability` ("Check whether outfits in given sizes are free ...") first
    checker = Tool.model_validate(
        {
            "name": "check_membership_status",
            "description": "Check whether a membership's tier and unpaid fees allow it.",
        }
    )
    catalog = ToolCatalog(
        tools=[checker, *(t for t in CATALOG.tools if t.name != "get_membership_record")]
    )
    draft, _ = _draft(tmp_path, CONDITIONED, catalog)
    assert "check_membership_status" not in _calls(draft)


def test_checking_the_state_a_record_shows_reads_the_record(tmp_path: Path) -> None:
    # a wine club: "Look the member up and check the shipment shows returned to sender" with
    # `get_shipment` "... with status": the read of the shipment, never a proposed tool
    catalog = ToolCatalog(
        tools=[
            Tool(name="find_member", description="Find a member by email or member number."),
            Tool(
                name="get_shipment",
                description="Get a member's shipment with status, contents and tracking.",
            ),
            Tool(name="send_member_email", description="Email the member.", access="write"),
        ]
    )
    draft, _ = _draft(
        tmp_path,
        """# Member care

## Case returned

1. Look the member up and check the shipment shows *returned to sender*.
2. Email the new delivery date.
""",
        catalog,
    )
    assert _calls(draft) == ["find_member", "get_shipment", "send_member_email"]
    assert not draft.tools_proposed


def test_getting_what_a_read_tool_returns_from_a_system_is_that_read(tmp_path: Path) -> None:
    # a car subscription: "Get the latest mileage reading from the car's telematics" with
    # `get_mileage_reading` ("Read the latest odometer reading ... from the car's telematics
    # unit"): the read, never "Ask the customer for the latest mileage reading"
    catalog = ToolCatalog(
        tools=[
            Tool(name="find_member", description="Find a member by email or member number."),
            Tool(
                name="get_mileage_reading",
                description="Read the latest odometer reading from the car's telematics unit.",
            ),
        ]
    )
    draft, _ = _draft(
        tmp_path,
        """# Member care

## Mileage

1. Look the member up.
2. Get the latest mileage reading from the car's telematics.
3. Get the customer's member number.
""",
        catalog,
    )
    steps = _steps(draft)
    assert steps[1].tool_call is not None and steps[1].tool_call.tool == "get_mileage_reading"
    assert steps[2].kind == "ask"
