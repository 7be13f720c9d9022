"""REVIEW.md per routine: the index by agent, steps with their source, what the compiler added,
edge cases, paths, issues with their SOP quote; and every Mermaid block parses with Mermaid."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from test_emit_review import load, review

from sop_compiler.emit import render_review
from sop_compiler.models import (
    Case,
    Condition,
    EdgeCase,
    Issue,
    Routine,
    RoutineSource,
    SourceRef,
    Step,
    Switch,
    ToolCall,
    ValidationReport,
)

REPO = Path(__file__).resolve().parents[1]
CHECKER = REPO / "tools" / "mermaid-check"


def test_index_counts_per_agent() -> None:
    routines, reports, _ = load()
    text = review(routines, reports)
    assert "## Agents" in text.split("## Routines")[0]
    assert "| Billing | 1 | 9 | 0 | 1 | 0 | 4 |" in text  # 9 steps, 1 warning, 4 added
    assert "| Shipping | 1 | 6 | 0 | 0 | 0 | 6 |" in text


def _section(text: str, routine_title: str, heading: str) -> str:
    part = text.split(f": {routine_title}\n", 1)[1].split("\n## ", 1)[0]
    return part.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]


def test_steps_show_their_source_and_what_the_compiler_added() -> None:
    routines, reports, _ = load()
    text = review(routines, reports)
    steps = _section(text, "Request a refund", "Steps")
    assert (
        "| 3 | condition | Check when the order was delivered | billing/refunds.md | If the order "
        "was delivered more than 30 days ago, escalate to Billing Tier 2. |" in steps
    )
    assert (
        "| 5a | say | Tell the customer the refund takes 5 to 10 business days | "
        "**added by the compiler** |" in steps
    )
    added = _section(text, "Request a refund", "Added by the compiler")
    assert "- step 5a (say): Tell the customer the refund takes 5 to 10 business days" in added
    assert "step 3 " not in added


def test_paths_edge_cases_and_issue_quotes() -> None:
    routines, _, _ = load()
    refund = next(r for r in routines if r.id == "refunds--request-a-refund")
    refund = refund.model_copy(
        update={
            "edge_cases": [
                EdgeCase(
                    when="the order was a gift",
                    then="refund the payer",
                    source=SourceRef(
                        block_ids=["b9"], quote="Gift orders are refunded to the payer."
                    ),
                )
            ]
        }
    )
    key = "billing/refunds--request-a-refund"
    report = ValidationReport(
        routine_id=refund.id,
        issues=[
            Issue(
                code="write_without_approval",
                severity="warning",
                routine_id=refund.id,
                step_id="5",
                message="catalog: `issue_refund` is a write tool without needs_approval",
                quote="Otherwise issue the refund.",
            ),
            Issue(code="open_question", severity="info", routine_id=refund.id, message="What?"),
        ],
    )
    text = review([refund], {key: report})
    paths = _section(text, "Request a refund", "Paths")
    assert "2 paths from the first step to an end, as `sopc paths` numbers them" in paths
    assert "1. 3 then → lookup\\_order → escalate to Billing Tier 2" in paths
    assert "2. 3 else → lookup\\_order, issue\\_refund → resolve" in paths
    cases = _section(text, "Request a refund", "Edge cases")
    assert (
        '- When the order was a gift: refund the payer (SOP: "Gift orders are refunded to the '
        'payer.")' in cases
    )
    issues = _section(text, "Request a refund", "Issues")
    assert issues.index("**warning**") < issues.index("**info**")
    assert '(SOP: "Otherwise issue the refund.")' in issues
    assert "| Billing | 1 | 9 | 0 | 1 | 1 | 4 |" in text


def test_paths_follow_calls_into_routines_of_the_same_agent() -> None:
    source = RoutineSource(file="x.md", sha256="0" * 64)
    check = Routine(
        id="check-id",
        agent="account",
        title="Check ID",
        trigger="",
        source=source,
        steps=[
            Step(id="1", kind="tool_call", text="Check.", tool_call=ToolCall(tool="verify_id")),
            Step(id="2", kind="resolve", text="Ok."),
        ],
    )
    main = Routine(
        id="close",
        agent="account",
        title="Close",
        trigger="",
        source=source,
        steps=[
            Step(id="1", kind="call", text="Check the ID.", routine="check-id"),
            Step(id="2", kind="resolve", text="Done."),
        ],
    )
    text = review([check, main], {})
    # the call is followed into check-id: its tool call is on the path
    assert "1. no branch → verify\\_id → resolve" in _section(text, "Close", "Paths")


HOSTILE = [
    "quotes \" and ' and `ticks`",
    "brackets [x] (y) {z} [[w]] ((v)) >u] |pipes|",
    "%%{init: {'theme': 'dark'}}%% directive",
    "click s1 callback; style s1 fill:#f00",
    "<script>alert(1)</script> <b>bold</b> &amp; &#35;",
    "end",
    "a --> b -.-> c ==> d",
    "unicode: é ü 中文 🚀 \u200b zero-width",
    "# hash ; semicolon : colon",
    "\\backslash\\ and trailing \\",
]


def _hostile_routine() -> Routine:
    steps = [
        Step(
            id="1",
            kind="switch",
            text=HOSTILE[0],
            switch=Switch(
                subject=HOSTILE[1],
                cases=[Case(when=text, goto=str(n + 2)) for n, text in enumerate(HOSTILE[2:6])],
            ),
        ),
        *[
            Step(id=str(n + 2), kind="say", text=text, next_step="8")
            for n, text in enumerate(HOSTILE[2:6])
        ],
        Step(id="6", kind="escalate", text="x", target=HOSTILE[6]),
        Step(id="7", kind="handoff", text="y", target=HOSTILE[7]),
        Step(
            id="8",
            kind="condition",
            text=HOSTILE[8],
            condition=Condition(test=HOSTILE[9], then_step="6", else_step="7"),
        ),
    ]
    return Routine(
        id="hostile",
        agent="end",
        title=HOSTILE[4],
        trigger=HOSTILE[3],
        source=RoutineSource(file="h.md", sha256="0" * 64),
        steps=steps,
    )


def _mermaid_check(*files: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node is not None
    return subprocess.run(
        [node, str(CHECKER / "check.mjs"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


needs_mermaid = pytest.mark.skipif(
    shutil.which("node") is None or not (CHECKER / "node_modules" / "mermaid").is_dir(),
    reason="node or the mermaid npm package is missing (npm ci --prefix tools/mermaid-check)",
)


@needs_mermaid
def test_every_mermaid_block_parses_with_mermaid(tmp_path: Path) -> None:
    routines, reports, _ = load()
    files = {
        "sample.md": render_review(routines, reports, failures={})["REVIEW.md"],
        "hostile.md": render_review([_hostile_routine(), *routines], {}, failures={})["REVIEW.md"],
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    compiled = REPO / "generated_routines" / "REVIEW.md"
    paths = [tmp_path / name for name in files] + ([compiled] if compiled.is_file() else [])
    result = _mermaid_check(*paths)
    assert result.returncode == 0, result.stdout + result.stderr
    blocks = sum(path.read_text(encoding="utf-8").count("```mermaid") for path in paths)
    assert f"{blocks} mermaid blocks checked, 0 failed" in result.stdout


@needs_mermaid
def test_the_mermaid_check_catches_a_broken_block(tmp_path: Path) -> None:
    bad = tmp_path / "bad.md"
    bad.write_text("# x\n\n```mermaid\nflowchart TD\n    a[ok] --> b[[unclosed\n```\n")
    result = _mermaid_check(bad)
    assert result.returncode == 1
    assert f"{bad}:3: Parse error" in result.stdout


def test_review_shows_the_sops_flowchart_beside_the_routine(tmp_path: Path) -> None:
    """A PDF flowchart (drawn by a diagram tool): REVIEW.md shows the graph sopc read from it,
    every labelled arrow included, and the routine JSON keeps it; text SOPs keep no such key."""
    from sop_compiler.config import load_settings
    from sop_compiler.pipeline import compile_folder

    charts = Path(__file__).parent / "data" / "flowcharts"
    sops, out = tmp_path / "sops", tmp_path / "out"
    (sops / "billing").mkdir(parents=True)
    (sops / "tools.yaml").write_bytes((charts / "tools.yaml").read_bytes())
    (sops / "billing" / "refund_approval.pdf").write_bytes(
        (charts / "refund_approval.drawn.pdf").read_bytes()
    )
    (sops / "billing" / "notes.md").write_text("# Notes\n\n## Greet\n\n1. Say hello.\n")
    compile_folder(sops, settings=load_settings(sops, overrides={"output": out}))

    review = (out / "REVIEW.md").read_text(encoding="utf-8")
    assert review.count("### The SOP's flowchart, as read") == 1
    section = review.split("### The SOP's flowchart, as read", 1)[1].split("```", 2)[1]
    [chart_json] = [p for p in (out / "routines").rglob("*.json") if "refund" in p.name]
    chart = json.loads(chart_json.read_text())["source_flowchart"]
    labelled = [edge for edge in chart["edges"] if edge["label"]]
    assert labelled and section.count("-->|") == len(labelled)
    assert section.count(" --> ") + section.count("-->|") == len(chart["edges"])
    text_routine = next(p for p in (out / "routines").rglob("*.json") if "notes" in p.name)
    assert "source_flowchart" not in json.loads(text_routine.read_text())
