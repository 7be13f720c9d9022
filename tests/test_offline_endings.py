"""Branches that end, thresholds with thousands separators, and value tables read as cases:
written as a marketplace's trust-and-safety desk and a water company's billing desk write them.
Each form is checked on both sides of its condition."""

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
- name: get_listing_risk
  description: Return a listing's risk score, seller country and price.
  parameters: {type: object, properties: {listing_id: {type: string}}, required: [listing_id]}
- name: put_listing_on_hold
  description: Hide a listing from search until it is reviewed.
  access: write
  parameters: {type: object, properties: {listing_id: {type: string}}, required: [listing_id]}
- name: escalate_to_trust_lead
  description: Send the case to the trust and safety lead.
  access: write
  parameters: {type: object, properties: {listing_id: {type: string}}, required: [listing_id]}
- name: approve_listing
  description: Publish a listing.
  access: write
  parameters: {type: object, properties: {listing_id: {type: string}}, required: [listing_id]}
- name: page_duty_manager
  description: Escalate a case to the duty manager on shift.
  access: write
  parameters: {type: object, properties: {account_id: {type: string}}, required: [account_id]}
- name: send_leak_check_visit
  description: Book a plumber visit to check a property for leaks.
  access: write
  parameters: {type: object, properties: {account_id: {type: string}}, required: [account_id]}
"""
        )
    ]
)


def _draft(tmp_path: Path, text: str) -> tuple[RoutineDraft, object]:
    (tmp_path / "sop.md").write_text(text, encoding="utf-8")
    result = read_procedures(tmp_path / "sop.md", root=tmp_path, settings=Settings())
    procedure = result.procedures[0]
    return build_draft(procedure, catalog=CATALOG), procedure


def _reach(draft: RoutineDraft, start: str | None) -> list[Step]:
    """Every step reachable from `start`, following every branch."""
    steps = list(walk_steps(draft.steps))
    where = {step.id: n for n, step in enumerate(steps)}
    todo, seen, out = [where.get(start or "", len(steps))], set(), []
    while todo:
        n = todo.pop()
        if n in seen or n >= len(steps):
            continue
        seen.add(n)
        step = steps[n]
        out.append(step)
        if step.kind in ("resolve", "escalate", "handoff"):
            continue
        if step.condition is not None:
            todo.append(where[step.condition.then_step])
            todo.append(where.get(step.condition.else_step or "", n + 1))
        else:
            todo.append(where[step.next_step] if step.next_step else n + 1)
    return out


def _calls(steps: list[Step]) -> set[str]:
    return {s.tool_call.tool for s in steps if s.tool_call is not None}


def _condition(draft: RoutineDraft, words: str) -> Step:
    return next(
        s for s in walk_steps(draft.steps) if s.condition is not None and words in s.condition.test
    )


def _errors(draft: RoutineDraft, procedure: object) -> list[str]:
    issues = check_draft(draft, procedure=procedure, catalog=CATALOG, settings=Settings())  # type: ignore[arg-type]
    return [f"{i.code}: {i.message}" for i in issues if i.severity == "error"]


REVIEW = """# Trust and safety

## Review a reported listing

1. Check the listing risk with `get_listing_risk`.
2. If the seller country is on the watch list and the price is above 1,000 USD, hold the
   listing and escalate to the trust lead, then stop.
3. Approve the listing.
"""


def test_a_threshold_keeps_its_thousands_and_the_escalation_then_stop_ends_the_branch(
    tmp_path: Path,
) -> None:
    draft, procedure = _draft(tmp_path, REVIEW)
    check = _condition(draft, "watch list")
    assert check.condition is not None
    assert "above 1,000 USD" in check.condition.test  # not "above 1" with "000 USD, hold ..."
    held = _reach(draft, check.condition.then_step)
    assert {"put_listing_on_hold", "escalate_to_trust_lead"} <= _calls(held)
    assert "approve_listing" not in _calls(held)  # the case stopped with the trust lead
    assert held[-1].kind == "escalate"
    otherwise = _reach(draft, check.condition.else_step)
    assert "approve_listing" in _calls(otherwise)
    assert not _calls(otherwise) & {"put_listing_on_hold", "escalate_to_trust_lead"}
    assert _errors(draft, procedure) == []


WATER = """# Billing desk

## High water bill

| Usage against last year | Action |
|---|---|
| Up to double | Explain the seasonal tariff |
| More than double | Send a leak check visit |

If the customer has complained twice this quarter, escalate to the duty manager.
"""


def test_a_table_keyed_on_one_value_is_one_case_per_row(tmp_path: Path) -> None:
    draft, procedure = _draft(tmp_path, WATER)
    low = _condition(draft, "up to double")
    high = _condition(draft, "more than double")
    assert low.condition is not None and high.condition is not None
    assert low.condition.test == "the usage against last year is up to double"
    assert "send_leak_check_visit" not in _calls(
        _reach(draft, low.condition.then_step)[:1]
    )  # the first row explains, it books nothing
    booked = _reach(draft, high.condition.then_step)
    assert booked[0].tool_call is not None and booked[0].tool_call.tool == "send_leak_check_visit"
    # the rows are steps now, not reference facts; each cites its row
    assert not [k for k in draft.knowledge if "double" in k.fact]
    assert high.source is not None and "More than double" in high.source.quote
    assert _errors(draft, procedure) == []


def test_a_table_of_situations_stays_edge_cases(tmp_path: Path) -> None:
    draft, _ = _draft(
        tmp_path,
        """# Billing desk

## High water bill

| Situation | What to do |
|---|---|
| The customer reports a burst pipe | Send a leak check visit |
| The meter is broken | Explain the estimated reading |
""",
    )
    assert not [s for s in walk_steps(draft.steps) if s.condition is not None]
    assert any("burst pipe" in case.when for case in draft.edge_cases)


def test_an_escalation_described_by_a_catalog_tool_calls_it_and_ends(tmp_path: Path) -> None:
    draft, _ = _draft(tmp_path, WATER)
    check = _condition(draft, "complained twice")
    assert check.condition is not None
    then = _reach(draft, check.condition.then_step)
    # `page_duty_manager` is described "Escalate a case to the duty manager on shift"
    assert "page_duty_manager" in _calls(then) and then[-1].kind == "escalate"
    assert "page_duty_manager" not in _calls(_reach(draft, check.condition.else_step))
