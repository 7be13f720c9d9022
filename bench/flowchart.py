"""Flowchart benchmark: vector PDFs and DOT sources against the DOT graph that made them.

    python bench/flowchart.py            every fixture, timings over 20 reads
    python bench/flowchart.py --quick    timings over 3 reads (CI: checks it runs)
    python bench/flowchart.py --json     the numbers as JSON

For each fixture in tests/data/flowcharts (Graphviz's PDF, the pymupdf-drawn PDF, and the DOT
file itself) it measures, end to end through ingest, segment and the offline compiler:
- recovery: nodes, edges (with direction) and edge labels found / true;
- decisions kept: nodes with two or more branches in the truth that are a condition or switch;
- branching edges kept: truth edges out of such nodes that are a branch of that step to the
  step of the edge's target, with its label as the outcome (Yes = then, No = else, a case);
- glued labels: node texts in the PDF that differ from the truth (an edge label stuck on);
- unguarded tool calls: tool calls reachable without passing a decision that guards them in
  the truth graph (must be 0);
- time per page of the PDF read with flowchart recovery, against the same read with it off
  (the page read as lines of text, as before).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO / "tests" / "data" / "flowcharts"
AGENTS = ("billing", "disputes", "hardship")

from sop_compiler.catalog import load_catalog  # noqa: E402
from sop_compiler.config import Settings  # noqa: E402
from sop_compiler.generate.offline import build_draft  # noqa: E402
from sop_compiler.ingest import ingest  # noqa: E402
from sop_compiler.ingest.pdf import _diagram  # noqa: E402
from sop_compiler.models import Flowchart, RoutineDraft, Step  # noqa: E402
from sop_compiler.pipeline import read_procedures  # noqa: E402

_YES, _NO = "Yes", "No"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    repeats = 3 if args.quick else 20
    catalog = load_catalog(DATA / "tools.yaml", sop_root=DATA)
    rows = []
    for dot in sorted(DATA.glob("*.dot")):
        truth = _chart(dot)
        for path in (dot.with_suffix(".pdf"), dot.with_suffix(".drawn.pdf"), dot):
            rows.append(_measure(path, truth, catalog, repeats))
    totals = {
        key: sum(row[key] for row in rows)
        for key in rows[0]
        if isinstance(rows[0][key], int) and not isinstance(rows[0][key], bool)
    }
    if args.json:
        print(json.dumps({"rows": rows, "totals": totals}, indent=2))
        return
    head = (
        f"{'fixture':34} {'nodes':>7} {'edges':>7} {'labels':>7} {'decis.':>7} "
        f"{'branch':>7} {'glued':>5} {'unguard':>7} {'ms/page':>8} {'text ms':>8}"
    )
    print(head)
    for row in rows:
        print(
            f"{row['fixture']:34} {_ratio(row, 'nodes')} {_ratio(row, 'edges')} "
            f"{_ratio(row, 'labels')} {_ratio(row, 'decisions')} {_ratio(row, 'branches')} "
            f"{row['glued']:>5} {row['unguarded']:>7} {row['ms_page']:>8.1f} "
            f"{row['text_ms_page']:>8.1f}"
        )
    print(
        f"{'all':34} {_ratio(totals, 'nodes')} {_ratio(totals, 'edges')} "
        f"{_ratio(totals, 'labels')} {_ratio(totals, 'decisions')} "
        f"{_ratio(totals, 'branches')} {totals['glued']:>5} {totals['unguarded']:>7}"
    )
    share = totals["branches_found"] / max(totals["branches_true"], 1)
    print(f"branching edges kept as branches: {share:.1%} (target 100%)")


def _ratio(row: dict[str, object], key: str) -> str:
    return f"{row[key + '_found']}/{row[key + '_true']}".rjust(7)


def _chart(path: Path) -> Flowchart:
    document = ingest(path, root=path.parent)
    (chart,) = [b for b in document.blocks if isinstance(b, Flowchart)]
    return chart


def _measure(path: Path, truth: Flowchart, catalog: object, repeats: int) -> dict[str, object]:
    import pymupdf

    chart = _chart(path)
    truth_text = {n.id: n.text for n in truth.nodes}
    got_text = {n.id: n.text for n in chart.nodes}
    truth_edges = {(truth_text[e.source], truth_text[e.target]) for e in truth.edges}
    got_edges = {(got_text[e.source], got_text[e.target]) for e in chart.edges}
    truth_labels = {(truth_text[e.source], truth_text[e.target], e.label) for e in truth.edges}
    got_labels = {(got_text[e.source], got_text[e.target], e.label) for e in chart.edges}
    labelled = {item for item in truth_labels if item[2]}
    found_nodes = sorted(truth_text.values())
    glued = [text for text in got_text.values() if text not in set(found_nodes)]
    procedure = read_procedures(path, root=path.parent, settings=Settings()).procedures[0]
    draft = build_draft(procedure, catalog=catalog, agents=AGENTS)  # type: ignore[arg-type]
    decisions = [n for n in truth.nodes if len(truth.outgoing(n.id)) >= 2]
    first = _first_steps(draft)
    decisions_kept = branches_true = branches_kept = 0
    for node in decisions:
        step = _branch_step(draft, node.text)
        edges = truth.outgoing(node.id)
        branches_true += len(edges)
        if step is None:
            continue
        decisions_kept += 1
        for edge in edges:
            target = first.get(truth_text[edge.target])
            if target is not None and _has_branch(step, edge.label, target):
                branches_kept += 1
    ms_page = text_ms = 0.0
    if path.suffix == ".pdf":
        start = time.perf_counter()
        for _ in range(repeats):
            ingest(path, root=path.parent)
        ms_page = (time.perf_counter() - start) * 1000 / repeats
        # the same read with diagram recovery off: the page read as lines of text
        gate = _diagram.looks_drawn
        _diagram.looks_drawn = lambda vectors: False  # type: ignore[assignment]
        try:
            start = time.perf_counter()
            for _ in range(repeats):
                ingest(path, root=path.parent)
            text_ms = (time.perf_counter() - start) * 1000 / repeats
        finally:
            _diagram.looks_drawn = gate  # type: ignore[assignment]
        with pymupdf.open(path) as pdf:
            pages = pdf.page_count
        ms_page, text_ms = ms_page / pages, text_ms / pages
    return {
        "fixture": path.name,
        "nodes_found": len(set(got_text.values()) & set(found_nodes)),
        "nodes_true": len(found_nodes),
        "edges_found": len(got_edges & truth_edges),
        "edges_true": len(truth_edges),
        "labels_found": len(got_labels & labelled),
        "labels_true": len(labelled),
        "decisions_found": decisions_kept,
        "decisions_true": len(decisions),
        "branches_found": branches_kept,
        "branches_true": branches_true,
        "glued": len(glued),
        "unguarded": _unguarded(truth, draft, first, {n.id for n in decisions}),
        "ms_page": round(ms_page, 2),
        "text_ms_page": round(text_ms, 2),
    }


def _first_steps(draft: RoutineDraft) -> dict[str, str]:
    """Node text -> id of the first step that cites it."""
    out: dict[str, str] = {}
    for step in draft.steps:
        if step.source is not None:
            out.setdefault(step.source.quote, step.id)
    return out


def _branch_step(draft: RoutineDraft, text: str) -> Step | None:
    for step in draft.steps:
        quoted = step.source is not None and step.source.quote == text
        if quoted and step.kind in ("condition", "switch"):
            return step
    return None


def _has_branch(step: Step, label: str | None, target: str) -> bool:
    if step.condition is not None:
        if label == _YES:
            return step.condition.then_step == target
        if label == _NO:
            return step.condition.else_step == target
        return target in (step.condition.then_step, step.condition.else_step)
    if step.switch is not None:
        if any(case.when == label and case.goto == target for case in step.switch.cases):
            return True
        return label not in {c.when for c in step.switch.cases} and step.switch.default == target
    return False


def _unguarded(
    truth: Flowchart, draft: RoutineDraft, first: dict[str, str], decisions: set[str]
) -> int:
    """Tool calls that a path reaches without a decision the truth graph puts before them."""
    graph = {n.id: [e.target for e in truth.outgoing(n.id)] for n in truth.nodes}
    truth_dom = _dominators(graph, truth.entry or truth.nodes[0].id)
    succ: dict[str, list[str]] = {}
    for index, step in enumerate(draft.steps):
        following = draft.steps[index + 1].id if index + 1 < len(draft.steps) else None
        succ[step.id] = [
            t for t in (x if x is not None else following for x in step.targets()) if t
        ]
    routine_dom = _dominators(succ, draft.steps[0].id)
    text = {n.id: n.text for n in truth.nodes}
    bad = 0
    for step in draft.steps:
        if step.tool_call is None or step.source is None:
            continue
        node = next((n for n in truth.nodes if n.text == step.source.quote), None)
        if node is None:
            continue
        needed = {first[text[d]] for d in truth_dom[node.id] & decisions if text[d] in first}
        bad += not needed <= routine_dom.get(step.id, set())
    return bad


def _dominators(succ: dict[str, list[str]], entry: str) -> dict[str, set[str]]:
    nodes = set(succ) | {t for targets in succ.values() for t in targets}
    pred: dict[str, set[str]] = {n: set() for n in nodes}
    for n, targets in succ.items():
        for t in targets:
            pred[t].add(n)
    dom = {n: set(nodes) for n in nodes}
    dom[entry] = {entry}
    changed = True
    while changed:
        changed = False
        for n in sorted(nodes - {entry}):
            preds = [dom[p] for p in pred[n]]
            new = {n} | (set.intersection(*preds) if preds else set())
            if new != dom[n]:
                dom[n], changed = new, True
    return dom


if __name__ == "__main__":
    main()
