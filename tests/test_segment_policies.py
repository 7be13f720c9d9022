"""segment on policies: one procedure per request; rules, facts and boilerplate where they belong.

The gold corpora (tests/data/policies) say which headings are procedures and which are not; the
documents below are other forms real policies take (variants of one request, case sub-sections,
rules sections per request, boilerplate), in other domains.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from gold import iter_cases

from sop_compiler.clean import clean
from sop_compiler.config import Settings
from sop_compiler.ingest import ingest
from sop_compiler.models import Procedure, block_text
from sop_compiler.pipeline import read_procedures
from sop_compiler.segment import classify, segment

DATA = Path(__file__).parent / "data"
POLICIES = list(iter_cases(DATA / "policies"))
_MARKUP = re.compile(r"[*_`#|]+")


def _fold(text: str) -> str:
    return " ".join(_MARKUP.sub(" ", text).split()).casefold()


def _procedures(path: Path) -> list[Procedure]:
    return segment(clean(ingest(path, root=path.parent)), agent="support")


def _write(tmp_path: Path, text: str, name: str = "policy.md") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _text(blocks: list) -> str:  # type: ignore[type-arg]
    return _fold(" ".join(block_text(b) for b in blocks))


@pytest.mark.parametrize("case", POLICIES, ids=[c[0].name for c in POLICIES])
def test_every_request_section_of_a_gold_policy_is_one_procedure(case: tuple) -> None:  # type: ignore[type-arg]
    _, document, _, gold = case
    procedures = _procedures(document)
    titles = [_fold(p.title) for p in procedures]
    assert titles == [_fold(p.heading) for p in gold.procedures]
    for heading in gold.not_procedures:
        assert _fold(heading) not in titles


@pytest.mark.parametrize("case", POLICIES, ids=[c[0].name for c in POLICIES])
def test_document_rules_and_knowledge_reach_every_procedure(case: tuple) -> None:  # type: ignore[type-arg]
    _, document, _, gold = case
    procedures = _procedures(document)
    seen = {p.id: _text([*p.context, *p.blocks]) for p in procedures}
    for procedure in procedures:
        for quote in [r.quote for r in gold.document_rules]:
            assert _fold(quote) in seen[procedure.id], f"{procedure.id} lacks {quote!r}"
    for fact in gold.knowledge:  # a fact may sit in the one section it concerns
        assert any(_fold(fact) in text for text in seen.values()), f"no procedure has {fact!r}"


@pytest.mark.parametrize("case", POLICIES, ids=[c[0].name for c in POLICIES])
def test_a_procedures_own_rules_stay_in_its_own_blocks(case: tuple) -> None:  # type: ignore[type-arg]
    _, document, _, gold = case
    by_title = {_fold(p.title): p for p in _procedures(document)}
    for wanted in gold.procedures:
        own = _text(by_title[_fold(wanted.heading)].blocks)
        for rule in wanted.rules:
            assert _fold(rule.quote) in own, f"{wanted.heading}: {rule.quote!r} not in its blocks"
        others = [p for t, p in by_title.items() if t != _fold(wanted.heading)]
        for rule in wanted.rules:
            assert all(_fold(rule.quote) not in _text(p.blocks) for p in others)


GYM = """\
# Northside Fitness: Member Services Guide

This guide is for the member services desk. Revision 7, approved by Operations on 2026-03-01.

## About memberships
A membership has a member number, a home club, a plan (Off-Peak, Standard or Premium) and a
billing date. Premium includes guest passes.

## General rules
- Always verify the member with their member number and date of birth before any change.
- Never share another member's details.

## Freeze a membership
Members may freeze for 1 to 3 months, at most twice a year.
- Look up the member and check the account is not in arrears.
- If the account is in arrears, do not freeze it; explain that the balance must be paid first.
- Set the freeze with the start date the member asks for.

### Within the first month
A member in their first month cannot freeze; offer a cancellation within the cooling-off period.

## Cancel a membership
Cancellation needs 30 days' notice.
1. Confirm the member wants to cancel.
2. Record the cancellation with the end date.

## Contact us
Questions about this guide go to ops@northside.example.
"""


def test_a_policy_in_a_new_domain_splits_by_request(tmp_path: Path) -> None:
    procedures = _procedures(_write(tmp_path, GYM))
    assert [p.title for p in procedures] == ["Freeze a membership", "Cancel a membership"]
    freeze, cancel = procedures
    # the case sub-section is part of its request, not a procedure of its own
    assert "first month cannot freeze" in _text(freeze.blocks)
    assert "first month" not in _text(cancel.blocks)
    for procedure in procedures:
        context = _text(procedure.context)
        assert "never share another member's details" in context
        assert "a membership has a member number" in context
        assert "ops@northside.example" not in _text([*procedure.context, *procedure.blocks])


RENTAL = """\
# Car rental: booking changes

## Modify a booking
Changes are free until 48 hours before pick-up. A prepaid booking cannot be modified online.

### Change the pick-up date
- Look up the booking.
- If the new date is less than 48 hours away, charge the change fee of 25 EUR.
- Update the dates.

### Add a driver
- Ask for the driver's licence number and date of birth.
- Drivers under 21 cannot be added.
- Add the driver to the booking.

### Payment
Only the card used for the booking may be charged.
"""


def test_variants_of_one_request_are_procedures_that_share_its_rules(tmp_path: Path) -> None:
    procedures = _procedures(_write(tmp_path, RENTAL))
    assert [p.title for p in procedures] == ["Change the pick-up date", "Add a driver"]
    for procedure in procedures:
        own = _text(procedure.blocks)
        assert "a prepaid booking cannot be modified online" in own  # the parent's rule text
        assert "only the card used for the booking may be charged" in own  # a shared rules part
    assert "under 21" not in _text(procedures[0].blocks)


NUMBERED = """\
# Refunds

## Issue a refund
1. Look up the order.
2. Check the refund window.
3. Issue the refund.

## Apply a credit
1. Look up the account.
2. Apply the credit.
"""


def test_numbered_procedures_are_read_as_before(tmp_path: Path) -> None:
    procedures = _procedures(_write(tmp_path, NUMBERED))
    assert [p.title for p in procedures] == ["Issue a refund", "Apply a credit"]


def test_inspect_says_how_each_section_was_read(tmp_path: Path) -> None:
    path = _write(tmp_path, GYM)
    result = read_procedures(path, root=tmp_path, settings=Settings())
    kinds = {s.heading_path[-1]: s for s in result.sections}
    assert kinds["About memberships"].kind == "knowledge"
    assert kinds["General rules"].kind == "rules"
    assert kinds["Freeze a membership"].kind == "procedure"
    assert kinds["Contact us"].kind == "noise"
    assert kinds["Contact us"].in_procedures == [] and kinds["Contact us"].in_context == []
    assert len(kinds["General rules"].in_context) == 2
    assert kinds["Freeze a membership"].in_procedures == ["policy--freeze-a-membership"]
    assert all(s.reason for s in result.sections)


def test_classify_covers_every_heading(tmp_path: Path) -> None:
    document = clean(ingest(_write(tmp_path, GYM), root=tmp_path))
    sections = classify(document, segment(document, agent="support"))
    headings = [b for b in document.blocks if b.kind == "heading"]
    assert len(sections) == len(headings)
    assert json.loads(json.dumps([s.model_dump(mode="json") for s in sections]))


def test_text_that_reaches_no_routine_is_reported_unless_it_is_plain_boilerplate(
    tmp_path: Path,
) -> None:
    quiet = read_procedures(_write(tmp_path, GYM), root=tmp_path, settings=Settings())
    assert not [n for n in quiet.document.notices if n.code == "unused_section"]  # type: ignore[union-attr]
    rule = GYM + "Never give out the duty manager's mobile number.\n"  # under "Contact us"
    loud = read_procedures(_write(tmp_path, rule), root=tmp_path, settings=Settings())
    notices = [n.message for n in loud.document.notices if n.code == "unused_section"]  # type: ignore[union-attr]
    assert len(notices) == 1 and "'Contact us'" in notices[0] and "no routine" in notices[0]
