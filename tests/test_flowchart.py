"""Flowcharts: Mermaid and DOT text, vector PDFs, and the routines compiled from them.

Ground truth is the DOT source that made each PDF (tests/data/flowcharts/*.dot, read by the DOT
reader); the PDFs are Graphviz's export (`<name>.pdf`) and the same layout drawn with pymupdf as
a diagram tool exports it (`<name>.drawn.pdf`), both made by make_fixtures.py and committed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pymupdf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sop_compiler.catalog import load_catalog
from sop_compiler.cli import app
from sop_compiler.config import Settings
from sop_compiler.generate.offline import build_draft
from sop_compiler.generate.prompts import render_procedure
from sop_compiler.ingest import ingest
from sop_compiler.ingest.flowchart import FlowchartSyntaxError, parse_flowchart
from sop_compiler.models import (
    Code,
    Flowchart,
    FlowEdge,
    FlowNode,
    Procedure,
    RoutineDraft,
    Step,
    ToolCatalog,
)
from sop_compiler.pipeline import read_procedures
from sop_compiler.validate import check_draft

DATA = Path(__file__).resolve().parent / "data" / "flowcharts"
NAMES = ["billing_overdue", "device_troubleshooting", "lost_card", "refund_approval"]
# a styled chart: filled nodes, dashed and dotted edges, a hexagon switch, merged connectors
ALL = [*NAMES, "plan_upgrade"]
AGENTS = ("billing", "disputes", "hardship")


@pytest.fixture(scope="module")
def catalog() -> ToolCatalog:
    return load_catalog(DATA / "tools.yaml", sop_root=DATA)


def _truth(name: str) -> Flowchart:
    document = ingest(DATA / f"{name}.dot", root=DATA)
    (chart,) = [b for b in document.blocks if isinstance(b, Flowchart)]
    return chart


def _chart(path: Path) -> Flowchart:
    document = ingest(path, root=path.parent)
    charts = [b for b in document.blocks if isinstance(b, Flowchart)]
    assert len(charts) == 1, [b.kind for b in document.blocks]
    return charts[0]


def _edges(chart: Flowchart) -> set[tuple[str, str, str | None]]:
    text = {node.id: node.text for node in chart.nodes}
    return {(text[e.source], text[e.target], e.label) for e in chart.edges}


# --- Mermaid -----------------------------------------------------------------------------------

MERMAID = """\
flowchart TD
  A([Customer asks about an overdue bill]) --> B[Look up the account]
  B --> C{Is the bill overdue?}
  C -->|No| D[Tell the customer the account is up to date] --> E((End))
  C -- Yes --> F{"Can the customer pay now?"}
  F -.->|Yes| G[[Take the payment]] ==> H{Payment accepted?}
  H -->|Yes| I[/Resume the line/] & J>Send the receipt]
  I --> E; J --> E
  H -->|No| F
  subgraph late [Late payers]
    F -- No --> K[Escalate to Collections]
  end
  classDef warn fill:#f96
  class K warn
"""


def test_mermaid_shapes_labels_chains_and_groups() -> None:
    chart = parse_flowchart(MERMAID, "mermaid")
    kinds = {node.id: (node.kind, node.shape, node.text) for node in chart.nodes}
    assert kinds["A"] == ("start", "stadium", "Customer asks about an overdue bill")
    assert kinds["C"] == ("decision", "diamond", "Is the bill overdue?")
    assert kinds["F"][2] == "Can the customer pay now?"  # a quoted label loses its quotes
    assert kinds["G"][:2] == ("subroutine", "subroutine")
    assert kinds["I"][:2] == ("io", "parallelogram")
    assert kinds["E"][:2] == ("end", "circle")
    edges = {(e.source, e.target, e.label) for e in chart.edges}
    assert {
        ("C", "D", "No"),
        ("D", "E", None),  # a chain: C -> D -> E
        ("C", "F", "Yes"),  # `-- Yes -->`
        ("F", "G", "Yes"),  # dotted link with a pipe label
        ("G", "H", None),  # thick link
        ("H", "I", "Yes"),
        ("H", "J", "Yes"),  # `&`: both targets
        ("H", "F", "No"),  # a loop back
        ("F", "K", "No"),  # inside a subgraph: kept
    } <= edges
    assert len(chart.edges) == 13
    assert chart.entry == "A"
    assert chart.unread == ["subgraph grouping ignored (its nodes and edges are kept)"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sequenceDiagram\n A->>B: hi", "line 1: a Mermaid flowchart starts with"),
        ("flowchart TD\n  A --> ", "line 2: expected a node id"),
        ("flowchart TD\n  A[open --> B", "line 2: the shape of node 'A' is not closed"),
        ("flowchart TD\n  A -> B", "line 2: expected a link"),
        ("graph LR\n subgraph x\n A --> B", "a `subgraph` is never closed"),
    ],
)
def test_mermaid_syntax_errors_are_one_line(text: str, message: str) -> None:
    with pytest.raises(FlowchartSyntaxError) as info:
        parse_flowchart(text, "mermaid")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_markdown_fences_become_flowcharts_and_bad_ones_stay_code(tmp_path: Path) -> None:
    sop = tmp_path / "overdue.md"
    sop.write_text(
        "# Overdue bill\n\n```mermaid\n" + MERMAID + "```\n\n"
        "## Broken\n\n```mermaid\nflowchart TD\n  A -> B\n```\n\n"
        "## Sequence\n\n```mermaid\nsequenceDiagram\n  A->>B: hi\n```\n\n"
        "## Graphviz\n\n```dot\n"
        'digraph { a [shape=diamond label="Paid?"]; a -> b [label=Yes] }\n```\n'
    )
    document = ingest(sop, root=tmp_path)
    charts = [b for b in document.blocks if isinstance(b, Flowchart)]
    codes = [b for b in document.blocks if isinstance(b, Code)]
    assert [c.notation for c in charts] == ["mermaid", "dot"]
    assert charts[1].nodes[0] == FlowNode(id="a", kind="decision", text="Paid?", shape="diamond")
    assert charts[1].edges == [FlowEdge(source="a", target="b", label="Yes")]
    assert [c.language for c in codes] == ["mermaid", "mermaid"]  # broken and not a flowchart
    (notice,) = [n for n in document.notices if n.code == "flowchart_unread"]
    assert notice.message.startswith("overdue.md ¶")
    assert "line 2: expected a link" in notice.message


def test_dot_file_is_an_sop_and_a_bad_one_is_one_clear_line(tmp_path: Path) -> None:
    good = tmp_path / "billing" / "overdue.gv"
    good.parent.mkdir()
    good.write_text((DATA / "billing_overdue.dot").read_text())
    bad = tmp_path / "billing" / "broken.dot"
    bad.write_text("digraph {\n  a -> ;\n}\n")
    result = CliRunner().invoke(app, ["compile", str(tmp_path), "-o", str(tmp_path / "out")])
    assert "Traceback" not in result.output
    assert "billing/broken.dot: is not a readable DOT graph: line 2, column " in result.output
    assert "Expected rbrace" in result.output
    routine = tmp_path / "out" / "routines" / "billing" / "overdue.md"
    assert routine.is_file()
    assert "Is the bill overdue?" in routine.read_text()


# --- vector PDFs -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("variant", ["pdf", "drawn.pdf"])
def test_pdf_flowchart_recovers_the_dot_graph(name: str, variant: str) -> None:
    truth = _truth(name)
    chart = _chart(DATA / f"{name}.{variant}")
    assert chart.notation == "pdf"
    assert sorted(n.text for n in chart.nodes) == sorted(n.text for n in truth.nodes)
    assert _edges(chart) == _edges(truth)  # every edge, its direction and its label
    by_text = {n.text: n for n in truth.nodes}
    for node in chart.nodes:
        assert node.kind == by_text[node.text].kind, node
        assert node.bbox is not None  # page coordinates as provenance
    assert chart.node(chart.entry or "") is not None
    assert chart.node(chart.entry or "").text == truth.node(truth.entry or "").text  # type: ignore[union-attr]
    assert chart.unread == []  # every word is a node's text or a label: none glued, none lost


def test_pdf_flowchart_page_keeps_the_text_around_it() -> None:
    document = ingest(DATA / "refund_approval.drawn.pdf", root=DATA)
    kinds = [b.kind for b in document.blocks]
    assert kinds[-1] == "flowchart"
    texts = " ".join(getattr(b, "text", "") for b in document.blocks if b.kind != "flowchart")
    assert "Follow the chart from the top" in texts
    assert "Yes" not in texts and "Order found?" not in texts  # chart words are the chart's
    chart = document.blocks[-1]
    assert isinstance(chart, Flowchart) and chart.prov.page == 1 and chart.prov.bbox is not None


def _draw_page(path: Path, *, arrowheads: str) -> None:
    """A small chart drawn with pymupdf as a diagram tool exports it.

    A page frame around it all, a start oval, a diamond with its labels right beside its corners
    (on the same line as its text, on white label backdrops), two boxes, one End; elbow
    connectors with `arrowheads` "filled" (triangles), "chevron" (two strokes) or "none".
    """
    doc = pymupdf.open()
    page = doc.new_page(width=400, height=420)
    black, white = (0, 0, 0), (1, 1, 1)
    page.draw_rect(pymupdf.Rect(5, 5, 395, 415), color=black)  # a frame: a container
    page.draw_oval(pymupdf.Rect(140, 20, 260, 60), color=black)
    page.insert_text((160, 44), "Customer calls", fontsize=9)
    page.draw_polyline(
        [(200, 100), (280, 140), (200, 180), (120, 140), (200, 100)], color=black, closePath=True
    )
    page.insert_text((160, 144), "Account locked?", fontsize=9)
    page.draw_rect(pymupdf.Rect(20, 240, 160, 280), color=black)
    page.insert_text((30, 264), "Unlock the account", fontsize=9)
    page.draw_rect(pymupdf.Rect(240, 240, 380, 280), color=black)
    page.insert_text((250, 264), "Explain the sign-in steps", fontsize=9)
    page.draw_oval(pymupdf.Rect(160, 340, 240, 380), color=black)
    page.insert_text((188, 364), "End", fontsize=9)
    for x, label in ((92, "Yes"), (290, "No")):
        page.draw_rect(pymupdf.Rect(x - 1, 124, x + 16, 134), color=None, fill=white)
        page.insert_text((x, 132), label, fontsize=8)

    def arrow(points: list[tuple[float, float]]) -> None:
        page.draw_polyline(points, color=black)
        (x0, y0), (x1, y1) = points[-2], points[-1]
        length = max(abs(x1 - x0) + abs(y1 - y0), 1)
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        if arrowheads == "filled":
            tip = (x1 + 7 * ux, y1 + 7 * uy)
            wings = [(x1 - 3 * uy, y1 + 3 * ux), (x1 + 3 * uy, y1 - 3 * ux)]
            page.draw_polyline([tip, *wings, tip], color=black, fill=black, closePath=True)
        elif arrowheads == "chevron":
            back = (x1 - 6 * ux, y1 - 6 * uy)
            page.draw_polyline(
                [
                    (back[0] - 4 * uy, back[1] + 4 * ux),
                    (x1, y1),
                    (back[0] + 4 * uy, back[1] - 4 * ux),
                ],
                color=black,
            )

    arrow([(200, 60), (200, 93)])
    arrow([(120, 140), (90, 140), (90, 233)])  # an elbow connector
    arrow([(280, 140), (310, 140), (310, 233)])
    arrow([(90, 280), (90, 360), (153, 360)])
    arrow([(310, 280), (310, 360), (247, 360)])
    doc.save(str(path))


@pytest.mark.parametrize("arrowheads", ["filled", "chevron"])
def test_pdf_drawn_with_pymupdf_elbows_and_corner_labels(tmp_path: Path, arrowheads: str) -> None:
    _draw_page(tmp_path / "unlock.pdf", arrowheads=arrowheads)
    chart = _chart(tmp_path / "unlock.pdf")
    assert _edges(chart) == {
        ("Customer calls", "Account locked?", None),
        ("Account locked?", "Unlock the account", "Yes"),
        ("Account locked?", "Explain the sign-in steps", "No"),
        ("Unlock the account", "End", None),
        ("Explain the sign-in steps", "End", None),
    }
    kinds = {n.text: n.kind for n in chart.nodes}
    assert kinds == {
        "Customer calls": "start",
        "Account locked?": "decision",
        "Unlock the account": "action",
        "Explain the sign-in steps": "action",
        "End": "end",
    }


def test_pdf_connectors_without_arrowheads_are_read_top_down_and_said(tmp_path: Path) -> None:
    _draw_page(tmp_path / "plain.pdf", arrowheads="none")
    chart = _chart(tmp_path / "plain.pdf")
    assert ("Account locked?", "Unlock the account", "Yes") in _edges(chart)
    assert len(chart.unread) == 5
    assert all("has no arrowhead; read top to bottom" in note for note in chart.unread)
    draft = build_draft(_procedure(tmp_path / "plain.pdf"), catalog=ToolCatalog())
    assert sum("has no arrowhead" in q for q in draft.open_questions) == 5


def test_text_pdf_pages_are_not_diagrams() -> None:
    root = DATA.parents[2]
    pdfs = sorted((DATA.parent / "pdf").glob("*/source.pdf")) + sorted(
        (root / "sample_sops").glob("*/*.pdf")
    )
    assert len(pdfs) >= 6
    for pdf in pdfs:
        try:
            document = ingest(pdf, root=pdf.parent)
        except Exception:  # fixtures of broken files belong to the PDF reader's tests
            continue
        assert not any(isinstance(b, Flowchart) for b in document.blocks), pdf.name


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_graphviz_rendering_round_trip(tmp_path: Path) -> None:
    source = tmp_path / "chart.dot"
    source.write_text(
        "digraph { node [shape=box]; s [shape=ellipse label=Start];"
        ' q1 [shape=diamond label="Order shipped?"]; q2 [shape=diamond label="Lost in transit?"];'
        ' s -> q1; q1 -> a [label=No]; a [label="Cancel the order"];'
        ' q1 -> q2 [label=Yes]; q2 -> b [label=Yes]; b [label="Open a carrier claim"];'
        ' q2 -> c [label=No]; c [label="Share the tracking link"]; a -> e; b -> e; c -> e;'
        " e [shape=ellipse label=End] }"
    )
    subprocess.run(["dot", "-Tpdf", str(source), "-o", str(tmp_path / "chart.pdf")], check=True)
    truth = parse_flowchart(source.read_text(), "dot")
    chart = _chart(tmp_path / "chart.pdf")
    text = {n.id: n.text for n in truth.nodes}
    assert _edges(chart) == {(text[e.source], text[e.target], e.label) for e in truth.edges}


# --- compiling ---------------------------------------------------------------------------------


def _procedure(path: Path) -> Procedure:
    found = read_procedures(path, root=path.parent, settings=Settings())
    assert found.error is None, found.error
    (procedure,) = found.procedures
    return procedure


def _step_of(draft: RoutineDraft, text: str) -> Step:
    return next(s for s in draft.steps if s.source is not None and s.source.quote == text)


def _dominators(succ: dict[str, list[str]], entry: str) -> dict[str, set[str]]:
    nodes = set(succ) | {t for ts in succ.values() for t in ts}
    pred: dict[str, set[str]] = {n: set() for n in nodes}
    for n, ts in succ.items():
        for t in ts:
            pred[t].add(n)
    dom = {n: set(nodes) for n in nodes}
    dom[entry] = {entry}
    changed = True
    while changed:
        changed = False
        for n in nodes - {entry}:
            preds = [dom[p] for p in pred[n]]
            new = {n} | (set.intersection(*preds) if preds else set())
            if new != dom[n]:
                dom[n], changed = new, True
    return dom


def _routine_succ(steps: list[Step]) -> dict[str, list[str]]:
    succ: dict[str, list[str]] = {}
    for i, step in enumerate(steps):
        nxt = steps[i + 1].id if i + 1 < len(steps) else None
        succ[step.id] = [t if t is not None else nxt for t in step.targets() if (t or nxt)]  # type: ignore[misc]
    return succ


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("variant", ["pdf", "drawn.pdf", "dot"])
def test_flowchart_compiles_to_a_routine_with_every_branch(
    name: str, variant: str, catalog: ToolCatalog
) -> None:
    procedure = _procedure(DATA / f"{name}.{variant}")
    (chart,) = [b for b in procedure.blocks if isinstance(b, Flowchart)]
    draft = build_draft(procedure, catalog=catalog, agents=AGENTS)
    issues = check_draft(
        draft, procedure=procedure, catalog=catalog, settings=Settings(), agents=AGENTS
    )
    assert [i.message for i in issues if i.severity == "error"] == []
    first = {n.id: _step_of(draft, n.text).id for n in chart.nodes if n.kind != "start"}
    decisions = [n for n in chart.nodes if len(chart.outgoing(n.id)) >= 2]
    assert len(decisions) >= (8 if name in NAMES else 3)
    for node in decisions:
        step = _step_of(draft, node.text)
        if step.confirm:  # a confirmation diamond: the ask, then the condition on its answer
            step = draft.steps[draft.steps.index(step) + 1]
        edges = chart.outgoing(node.id)
        if step.kind == "condition":
            assert step.condition is not None
            yes = next(e for e in edges if e.label == "Yes")
            no = next(e for e in edges if e.label == "No")
            assert (step.condition.then_step, step.condition.else_step) == (
                first[yes.target],
                first[no.target],
            )
        else:
            assert step.kind == "switch" and step.switch is not None
            cases = {(c.when, c.goto) for c in step.switch.cases}
            other = [e for e in edges if e.label == "Other"]  # the switch's default
            assert cases == {(e.label, first[e.target]) for e in edges if e not in other}
            assert step.switch.default == (first[other[0].target] if other else None) or (
                not other and step.switch.default == step.switch.cases[-1].goto
            )
        # edge labels are outcomes, never glued onto the step's text
        assert not any(step.text.endswith(f" {e.label}") for e in edges if e.label)
    # every tool named in a box is called, and only below the decisions that lead to it
    tools = {s.tool_call.tool for s in draft.steps if s.tool_call is not None}
    named = {t.name for t in catalog.tools if any(f"({t.name})" in n.text for n in chart.nodes)}
    assert tools == named
    graph = {n.id: [e.target for e in chart.outgoing(n.id)] for n in chart.nodes}
    graph_dom = _dominators(graph, chart.entry or "")
    routine_dom = _dominators(_routine_succ(draft.steps), draft.steps[0].id)
    for node in chart.nodes:
        if "(" not in node.text:
            continue
        step = _step_of(draft, node.text)
        assert step.kind == "tool_call"
        needed = {first[d] for d in graph_dom[node.id] if d in {x.id for x in decisions}}
        assert needed <= routine_dom[step.id], (node.text, needed)


def test_confirmation_diamond_is_an_explicit_yes(catalog: ToolCatalog) -> None:
    procedure = _procedure(DATA / "refund_approval.dot")
    draft = build_draft(procedure, catalog=catalog, agents=AGENTS)
    ask = _step_of(draft, "Customer confirms the refund amount?")
    assert ask.kind == "ask" and ask.confirm
    assert ask.text == "Ask the customer to confirm the refund amount."


def test_unreadable_nodes_and_missing_branches_are_flagged() -> None:
    chart = Flowchart(
        id="b2",
        prov={"file": "x.md"},  # type: ignore[arg-type]
        notation="mermaid",
        nodes=[
            FlowNode(id="A", kind="decision", text="Warranty valid?", shape="diamond"),
            FlowNode(id="B", kind="action", text="", shape="box"),
            FlowNode(id="C", kind="decision", text="Tier?", shape="diamond"),
            FlowNode(id="D", kind="action", text="Offer a discount", shape="box"),
            FlowNode(id="E", kind="action", text="Offer free shipping", shape="box"),
        ],
        edges=[
            FlowEdge(source="A", target="B", label="Yes"),
            FlowEdge(source="B", target="C"),
            FlowEdge(source="C", target="D", label="Gold"),
            FlowEdge(source="C", target="E"),
        ],
        entry="A",
    )
    procedure = Procedure(
        id="x", title="Warranty", source="x.md", source_sha256="0" * 64, blocks=[chart]
    )
    draft = build_draft(procedure, catalog=ToolCatalog())
    questions = " ".join(draft.open_questions)
    assert "has one branch (Yes)" in questions and "what to do for 'no'" in questions
    assert "node B (box) has no readable text" in questions
    assert "(to E) has no label" in questions
    first = draft.steps[0]
    assert first.kind == "condition" and first.condition is not None
    gap = next(s for s in draft.steps if s.id == first.condition.else_step)
    assert gap.kind == "action" and "draws no 'no' branch" in gap.text
    switch = next(s for s in draft.steps if s.kind == "switch")
    assert switch.switch is not None
    assert [c.when for c in switch.switch.cases] == ["Gold", "(unlabelled branch to E)"]


def test_prompt_gives_the_model_nodes_and_labelled_edges() -> None:
    procedure = _procedure(DATA / "refund_approval.dot")
    rendered = render_procedure(procedure, images={}, vision=False)
    assert "node window (decision): Within 30 days?" in rendered.text
    assert "edge window -> used [Yes]" in rendered.text
    assert "edge method -> credit [Gift card]" in rendered.text


def test_inspect_shows_the_graph() -> None:
    result = CliRunner().invoke(app, ["inspect", str(DATA / "lost_card.drawn.pdf")])
    assert result.exit_code == 0, result.output
    assert "[flowchart pdf] 18 nodes (8 decisions), 24 edges" in result.output
    assert "--> |Yes|" in result.output


def test_llm_answer_is_checked_against_the_graph_and_repaired(catalog: ToolCatalog) -> None:
    """A model answer that flattens the decisions is sent back with each one named."""
    import asyncio

    from sop_compiler.generate.base import GenerationContext
    from sop_compiler.generate.fake import FakeBackend

    procedure = _procedure(DATA / "refund_approval.dot")
    (chart,) = [b for b in procedure.blocks if isinstance(b, Flowchart)]
    good = build_draft(procedure, catalog=catalog, agents=AGENTS)
    flat = good.model_copy(
        update={
            "steps": [
                Step(
                    id=str(i + 1),
                    kind="action",
                    text=node.text,
                    source={"block_ids": [chart.id], "quote": node.text},  # type: ignore[arg-type]
                )
                for i, node in enumerate(chart.nodes)
            ]
            + [Step(id=str(len(chart.nodes) + 1), kind="resolve", text="Resolve the case.")]
        }
    )
    settings = Settings(model="test-model", cache_dir=Path("unused"), repair_attempts=1)
    fake = FakeBackend(settings)
    fake.queue(flat.model_dump(mode="json"), good.model_dump(mode="json"))

    def check(draft: RoutineDraft) -> list:  # type: ignore[type-arg]
        return check_draft(
            draft, procedure=procedure, catalog=catalog, settings=settings, agents=AGENTS
        )

    errors = [i.message for i in check(flat) if i.code == "flowchart_decision"]
    decisions = [n for n in chart.nodes if len(chart.outgoing(n.id)) >= 2]
    assert len(errors) == len(decisions) == 8
    context = GenerationContext(catalog=catalog, settings=settings, agents=AGENTS)
    result = asyncio.run(fake.generate(procedure, context=context, validate=check))
    assert result.draft is not None and len(fake.calls) == 2
    first_prompt = fake.calls[0].messages[1].content
    assert isinstance(first_prompt, str) and "edge window -> used [Yes]" in first_prompt
    repair = fake.calls[1].messages[-1].content
    assert isinstance(repair, str)
    assert "the flowchart's decision 'Within 30 days?' (Yes, No)" in repair
    assert not [i for i in check(result.draft) if i.code == "flowchart_decision"]


_DOT_SEED = (DATA / "refund_approval.dot").read_text()


@st.composite
def _edited(draw: st.DrawFn, seed: str) -> str:
    """The seed with a few characters replaced, inserted or deleted (flowchart syntax)."""
    text = list(seed)
    alphabet = st.sampled_from(list('[](){}<>|-=.&;:"\n ->ABxyz%@#\\'))
    for _ in range(draw(st.integers(1, 8))):
        if not text:
            break
        at = draw(st.integers(0, len(text) - 1))
        op = draw(st.sampled_from(["replace", "insert", "delete"]))
        if op == "delete":
            del text[at]
        elif op == "insert":
            text.insert(at, draw(alphabet))
        else:
            text[at] = draw(alphabet)
    return "".join(text)


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(_edited(MERMAID), _edited(_DOT_SEED)))
def test_fuzzed_charts_parse_or_fail_with_one_line_and_always_compile(text: str) -> None:
    notation = "dot" if text.lstrip().startswith(("//", "digraph", "graph {")) else "mermaid"
    try:
        chart = parse_flowchart(text, notation)
    except FlowchartSyntaxError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    block = Flowchart(
        id="b1",
        prov={"file": "x.md"},  # type: ignore[arg-type]
        notation=notation,
        nodes=chart.nodes,
        edges=chart.edges,
        entry=chart.entry,
        unread=chart.unread,
    )
    procedure = Procedure(
        id="x", title="Fuzz", source="x.md", source_sha256="0" * 64, blocks=[block]
    )
    draft = build_draft(procedure, catalog=ToolCatalog())
    assert draft.steps or draft.open_questions


def test_chart_among_prose_is_a_flowchart_and_the_prose_stays_text(tmp_path: Path) -> None:
    """A chart pasted into an SOP page between paragraphs, with a callout box beside the text."""
    _draw_page(tmp_path / "chart.pdf", arrowheads="filled")
    doc = pymupdf.open()
    page = doc.new_page(width=600, height=900)
    page.insert_text((50, 50), "Account unlock", fontsize=16)
    intro = (
        "Use this procedure when a customer cannot sign in. Verify the customer first. "
        "Never read a password back to the customer. The chart below shows each decision."
    )
    page.insert_textbox(pymupdf.Rect(50, 70, 550, 150), intro, fontsize=10)
    with pymupdf.open(tmp_path / "chart.pdf") as chart_pdf:
        page.show_pdf_page(pymupdf.Rect(100, 170, 500, 590), chart_pdf, 0)
    page.draw_rect(pymupdf.Rect(50, 640, 550, 700), color=(0, 0, 0))  # a callout, no arrows
    page.insert_textbox(
        pymupdf.Rect(56, 646, 544, 696),
        "Note: a locked account unlocks itself after 24 hours.",
        fontsize=10,
    )
    page.insert_textbox(
        pymupdf.Rect(50, 720, 550, 800),
        "After the call, record the outcome in the case notes.",
        fontsize=10,
    )
    doc.save(str(tmp_path / "unlock.pdf"))
    document = ingest(tmp_path / "unlock.pdf", root=tmp_path)
    (chart,) = [b for b in document.blocks if isinstance(b, Flowchart)]
    assert ("Account locked?", "Unlock the account", "Yes") in _edges(chart)
    assert len(chart.nodes) == 5 and chart.unread == []
    text = " ".join(getattr(b, "text", "") or "" for b in document.blocks if b is not chart)
    text = " ".join(text.split())  # the intro wraps over lines
    assert "Never read a password back to the customer." in text
    assert "a locked account unlocks itself after 24 hours" in text  # the callout stays text
    assert "record the outcome in the case notes" in text
    assert "Account locked?" not in text and "Yes" not in text.split()
    kinds = [b.kind for b in document.blocks]
    assert kinds.index("flowchart") < len(kinds) - 1  # in reading order, before the notes


@pytest.mark.parametrize(
    ("labels", "kind"),
    [
        (("Yes", "No"), "condition"),
        (("Y", "N"), "condition"),
        (("Yes", None), "condition"),  # the unlabelled arrow is "no", and flagged
        (("Paid", "Unpaid"), "switch"),  # answers that are not yes/no stay cases
        (("Yes", "Later"), "switch"),
    ],
)
def test_yes_no_is_a_condition_other_answers_a_switch(
    labels: tuple[str, str | None], kind: str
) -> None:
    text = (
        "flowchart TD\n  A{Balance cleared?}"
        + "".join(
            f"\n  A -->{f'|{lab}|' if lab else ''} {t}[Step {t}]"
            for lab, t in zip(labels, "BC", strict=True)
        )
        + "\n  B --> E((End))\n  C --> E"
    )
    chart = parse_flowchart(text, "mermaid")
    block = Flowchart(
        id="b1",
        prov={"file": "x.md"},  # type: ignore[arg-type]
        notation="mermaid",
        nodes=chart.nodes,
        edges=chart.edges,
        entry=chart.entry,
    )
    procedure = Procedure(
        id="x", title="Fees", source="x.md", source_sha256="0" * 64, blocks=[block]
    )
    draft = build_draft(procedure, catalog=ToolCatalog())
    decision = draft.steps[0]
    assert decision.kind == kind
    if kind == "switch":
        assert decision.switch is not None
        assert [c.when for c in decision.switch.cases] == list(labels)
