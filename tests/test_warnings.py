"""Warnings a reviewer can act on: paths through a routine, write_without_approval on a path,
severities from `[warnings]`, and a summary that lists every issue and says what fails --strict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sop_compiler.cli import app
from sop_compiler.config import Settings, load_settings
from sop_compiler.errors import ConfigError
from sop_compiler.models import (
    Case,
    Condition,
    ListItem,
    Procedure,
    Provenance,
    RoutineDraft,
    SourceRef,
    Step,
    Switch,
    Tool,
    ToolCall,
    ToolCatalog,
)
from sop_compiler.paths import enumerate_paths
from sop_compiler.validate import check_draft

CATALOG = ToolCatalog(
    tools=[
        Tool(name="lookup_order", description="Look up an order."),
        Tool(name="create_ticket", description="Open a ticket.", access="write"),
        Tool(name="issue_refund", description="Refund.", access="write", needs_approval=True),
    ]
)
PROCEDURE = Procedure(
    id="p",
    title="P",
    source="p.md",
    source_sha256="0" * 64,
    blocks=[
        ListItem(
            id="b1",
            prov=Provenance(file="p.md", paragraph=1),
            text="Open a ticket with create_ticket.",
            marker="1.",
            ordered=True,
        )
    ],
)


def _step(step_id: str, kind: str, text: str = "Do it.", **fields: Any) -> Step:
    return Step(id=step_id, kind=kind, text=text, **fields)  # type: ignore[arg-type]


def _draft(*steps: Step, **extra: Any) -> RoutineDraft:
    return RoutineDraft(title="T", trigger="When.", steps=list(steps), **extra)


def _ticket(step_id: str) -> Step:
    return _step(
        step_id,
        "tool_call",
        "Open a ticket.",
        tool_call=ToolCall(tool="create_ticket"),
        source=SourceRef(block_ids=["b1"], quote="Open a ticket with create_ticket"),
    )


def _branching() -> RoutineDraft:
    """1 condition: yes -> 2 (confirm ask) -> 3 (write); no -> 4 (write, unconfirmed)."""
    return _draft(
        _step(
            "1",
            "condition",
            condition=Condition(test="Is it urgent?", then_step="2", else_step="4"),
        ),
        _step("2", "ask", "Ask the customer to confirm the ticket.", confirm=True),
        _ticket("3"),
        _step("3r", "resolve"),
        _ticket("4"),
        _step("5", "resolve"),
    )


def test_paths_cover_every_outcome_and_say_how_they_end() -> None:
    draft = _draft(
        _step(
            "1",
            "switch",
            switch=Switch(
                subject="the tier",
                cases=[Case(when="gold", goto="3"), Case(when="silver", goto="4")],
            ),
        ),
        _step("2", "escalate", target="Tier 2"),
        _step("3", "condition", condition=Condition(test="Paid?", then_step="5")),
        _step("4", "say", next_step="1"),  # back to the start: a loop
        _step("5", "handoff", target="billing"),
    )
    found = enumerate_paths(draft, routine_id="r")
    assert found.complete
    described = [path.describe() for path in found.paths]
    assert described == [
        "1 (gold) → 3 (yes) → 5 → handoff to billing",
        "1 (gold) → 3 (no) → 4 → back to 1",
        "1 (silver) → 4 → back to 1",
        "1 (otherwise) → 2 → escalate to Tier 2",
    ]
    assert [path.end for path in found.paths] == ["handoff", "loop", "loop", "escalate"]
    assert found.paths[0].describe(upto=1) == "1 (gold) → 3 (yes)"


def test_paths_follow_a_call_into_the_called_routine_and_back() -> None:
    check = _draft(_step("1", "say", "Check the ID."), _step("2", "resolve"))
    main = _draft(_step("1", "call", routine="check-id"), _step("2", "resolve"))
    (path,) = enumerate_paths(main, routine_id="main", routines={"check-id": check}).paths
    assert path.describe() == "1 → check-id:1 → check-id:2 → 2 → resolve"
    # without the called routine, the call is one step
    (path,) = enumerate_paths(main, routine_id="main").paths
    assert path.describe() == "1 → 2 → resolve"


def test_paths_report_running_off_the_end_dangling_targets_and_the_limit() -> None:
    draft = _draft(
        _step("1", "condition", condition=Condition(test="A?", then_step="9")),
        _step("2", "say"),
    )
    ends = [(p.end, p.target) for p in enumerate_paths(draft).paths]
    assert ends == [("dangling", "9"), ("falls_off", None)]
    many = _draft(
        *[
            _step(str(n), "condition", condition=Condition(test=f"C{n}?", then_step=str(n + 1)))
            for n in range(1, 12)
        ],
        _step("12", "resolve"),
    )
    found = enumerate_paths(many, limit=50)
    assert not found.complete and len(found.paths) == 50


def test_write_without_approval_only_on_the_path_that_lacks_a_confirmation() -> None:
    issues = check_draft(_branching(), procedure=PROCEDURE, catalog=CATALOG, settings=Settings())
    found = [i for i in issues if i.code == "write_without_approval"]
    assert [(i.step_id, i.severity) for i in found] == [("4", "warning")]
    (issue,) = found
    assert "catalog: `create_ticket` is a write tool without needs_approval" in issue.message
    assert "the path 1 (no) → 4" in issue.message
    assert issue.quote == "Open a ticket with create_ticket"  # the SOP text the step cites


def test_a_long_path_is_described_once_per_warning_not_once_per_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a 1 MB SOP of steps is one path of thousands: spelling it out at every step was O(n²)
    from sop_compiler.paths import RoutinePath

    said: list[int | None] = []
    describe = RoutinePath.describe

    def counted(self: RoutinePath, upto: int | None = None) -> str:
        said.append(upto)
        return describe(self, upto)

    monkeypatch.setattr(RoutinePath, "describe", counted)
    steps = [_step(str(n), "say", f"Tell the customer fact {n}.") for n in range(1, 401)]
    draft = _draft(*steps, _ticket("401"), _step("402", "resolve"))
    issues = check_draft(draft, procedure=PROCEDURE, catalog=CATALOG, settings=Settings())
    (issue,) = [i for i in issues if i.code == "write_without_approval"]
    assert issue.step_id == "401" and "the path 1 → 2 → 3" in issue.message
    assert said == [400]


def test_a_confirmed_or_approved_write_is_no_warning() -> None:
    confirmed = _draft(
        _step("1", "ask", "Ask the customer to confirm.", confirm=True),
        _ticket("2"),
        _step("3", "resolve"),
    )
    noted = _draft(
        _step("1", "say", "Tell the customer a supervisor approves the ticket."),
        _ticket("2"),
        _step("3", "resolve"),
    )
    signed_off = _draft(
        _step("1", "action", "Get the duty manager's sign-off on the ticket."),
        _ticket("2"),
        _step("3", "resolve"),
    )
    needs_approval = _draft(
        _step("1", "say", "Tell the customer."),
        _step("2", "tool_call", "Refund.", tool_call=ToolCall(tool="issue_refund")),
        _step("3", "resolve"),
    )
    for draft in (confirmed, noted, signed_off, needs_approval):
        codes = [
            i.code
            for i in check_draft(draft, procedure=PROCEDURE, catalog=CATALOG, settings=Settings())
        ]
        assert "write_without_approval" not in codes


def test_a_confirm_ask_counts_for_every_write_after_it_on_the_path() -> None:
    # write_without_approval asks whether a person is asked at all; that each write takes its
    # own yes is what a confirm_before rule demands (unconfirmed_write)
    draft = _draft(
        _step("1", "ask", "Ask for an explicit yes.", confirm=True),
        _ticket("2"),
        _ticket("3"),
        _step("4", "resolve"),
    )
    issues = check_draft(draft, procedure=PROCEDURE, catalog=CATALOG, settings=Settings())
    assert [i.step_id for i in issues if i.code == "write_without_approval"] == []
    late = _draft(
        _ticket("1"),
        _step("2", "ask", "Ask for a yes.", confirm=True),
        _ticket("3"),
        _step("4", "resolve"),
    )
    issues = check_draft(late, procedure=PROCEDURE, catalog=CATALOG, settings=Settings())
    assert [i.step_id for i in issues if i.code == "write_without_approval"] == ["1"]


def test_warnings_table_raises_and_lowers_severities_but_never_an_error() -> None:
    draft = _draft(
        _step("1", "condition", condition=Condition(test="A?", then_step="9")),
        _ticket("2"),
        _step("3", "resolve"),
        open_questions=["What is A?"],
    )
    settings = Settings(
        warnings={
            "open_question": "error",
            "write_without_approval": "info",
            "dangling_target": "info",
        }
    )
    issues = check_draft(draft, procedure=PROCEDURE, catalog=CATALOG, settings=settings)
    severity = {i.code: i.severity for i in issues}
    assert severity["open_question"] == "error"
    assert severity["write_without_approval"] == "info"
    assert severity["dangling_target"] == "error"  # a broken routine is never deployed


def test_warnings_table_in_sopc_toml(tmp_path: Path) -> None:
    (tmp_path / "sopc.toml").write_text('[warnings]\nproposed_tool = "info"\n', encoding="utf-8")
    assert load_settings(tmp_path).warnings == {"proposed_tool": "info"}
    (tmp_path / "sopc.toml").write_text('[warnings]\nproposed_tool = "loud"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"warnings\.proposed_tool"):
        load_settings(tmp_path)


SOP = """\
# Close an account

1. Ask the customer why they want to close the account.
2. Open a ticket with `create_ticket` for the closure.
3. Tell the customer the account is closed.
"""
TOOLS = """\
tools:
  - name: create_ticket
    description: Open a ticket.
    access: write
"""


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout + result.stderr


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    sops = tmp_path / "sops"
    (sops / "account").mkdir(parents=True)
    (sops / "tools.yaml").write_text(TOOLS, encoding="utf-8")
    (sops / "account" / "close.md").write_text(SOP, encoding="utf-8")
    return sops, tmp_path / "out"


def test_the_summary_lists_each_issue_under_its_routine(project: tuple[Path, Path]) -> None:
    sops, out = project
    code, text = _invoke("compile", str(sops), "-o", str(out))
    assert code == 0, text
    assert "account/close (account/close.md)" in text
    assert "  warning write_without_approval: step 2: catalog: `create_ticket`" in text
    assert 'SOP: "Open a ticket with `create_ticket` for the closure."' in text
    assert "next: read" in text and "REVIEW.md" in text and "sopc check" in text
    code, quiet = _invoke("compile", str(sops), "-o", str(out), "--quiet")
    assert code == 0
    assert "write_without_approval 1" in quiet and "step 2:" not in quiet


def test_strict_fails_and_says_which_warnings(project: tuple[Path, Path]) -> None:
    sops, out = project
    code, text = _invoke("compile", str(sops), "-o", str(out), "--strict")
    assert code == 1
    assert "--strict: 1 warning in 1 routine fail the run: write_without_approval (1)" in text
    assert _invoke("check", str(sops), "-o", str(out))[0] == 0
    code, text = _invoke("check", str(sops), "-o", str(out), "--strict")
    assert code == 1 and "--strict: 1 warning" in text


def test_strict_passes_when_the_warning_is_lowered_to_info(project: tuple[Path, Path]) -> None:
    sops, out = project
    (sops.parent / "sopc.toml").write_text(
        '[warnings]\nwrite_without_approval = "info"\n', encoding="utf-8"
    )
    code, text = _invoke("compile", str(sops), "-o", str(out), "--strict")
    assert code == 0, text
    assert "  info write_without_approval: step 2:" in text  # shown, not failing


def test_one_warning_per_tool_names_its_other_steps() -> None:
    draft = _draft(_ticket("1"), _ticket("2"), _step("3", "resolve"))
    issues = check_draft(draft, procedure=PROCEDURE, catalog=CATALOG, settings=Settings())
    (issue,) = [i for i in issues if i.code == "write_without_approval"]
    assert issue.step_id == "1" and "(also at step 2)" in issue.message
