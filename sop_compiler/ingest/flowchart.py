"""Flowcharts written as text: Mermaid `flowchart`/`graph` and Graphviz DOT, read into a graph.

`parse_flowchart(text, notation)` returns the nodes, labelled edges and entry node of one chart,
or raises `FlowchartSyntaxError` with a one-line message (the line and what is wrong). Readers
turn the result into a `Flowchart` block (Markdown fences, `.dot`/`.gv` files); a fence that does
not parse stays a code block and the reader adds a `flowchart_unread` notice.

Mermaid: the flowchart subset, one statement per line or `;`: node shapes `[box]`, `(round)`,
`([stadium])`, `[[subroutine]]`, `[(database)]`, `((circle))`, `(((double circle)))`,
`{diamond}`, `{{hexagon}}`, `>flag]`, `[/parallelogram/]` and its variants; links `-->`, `---`,
`-.->`, `==>`, `--o`, `--x` with labels as `-->|Yes|` or `-- Yes -->`; chains (`A --> B --> C`)
and `&` groups (`A --> B & C`). Subgraphs keep their nodes and edges; the grouping itself is
dropped (and said in `unread`). Styling statements (`classDef`, `class`, `style`, `linkStyle`,
`click`) are passed over.

DOT: pydot's parser; node `label` (else the name) and `shape`, the `node [...]` defaults of the
graph and its subgraphs, edge `label` (else `xlabel`, `taillabel`, `headlabel`).
"""

from __future__ import annotations

import contextlib
import html
import io
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

from sop_compiler.models import FlowEdge, FlowNode
from sop_compiler.models.document import FlowNodeKind

__all__ = [
    "FLOWCHART_LANGUAGES",
    "FlowchartSyntaxError",
    "ParsedChart",
    "is_mermaid_flowchart",
    "kind_of",
    "parse_flowchart",
]

Notation = Literal["mermaid", "dot"]
# code fence languages that hold a flowchart, and the notation each is written in
FLOWCHART_LANGUAGES: dict[str, Notation] = {
    "mermaid": "mermaid",
    "dot": "dot",
    "graphviz": "dot",
    "gv": "dot",
}


class FlowchartSyntaxError(ValueError):
    """The chart's text does not parse; the message is one line and names where."""


@dataclass
class ParsedChart:
    """A chart read from text: its nodes, edges (source order), entry and what was not read."""

    nodes: list[FlowNode] = field(default_factory=list)
    edges: list[FlowEdge] = field(default_factory=list)
    entry: str | None = None
    unread: list[str] = field(default_factory=list)
    title: str | None = None


def is_mermaid_flowchart(text: str) -> bool:
    """True when Mermaid text is a flowchart (`flowchart TD`, `graph LR`), not another diagram."""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("%%") or stripped == "---":
            continue
        return re.match(r"(?:flowchart|graph)\b", stripped) is not None
    return False


def parse_flowchart(text: str, notation: Notation) -> ParsedChart:
    """Parse one chart; raise FlowchartSyntaxError (one line, with the line number) when bad."""
    chart = _parse_mermaid(text) if notation == "mermaid" else _parse_dot(text)
    _finish(chart)
    return chart


# --- shapes -> kinds ---------------------------------------------------------------------------

_TERMINAL_SHAPES = frozenset(
    ["stadium", "circle", "doublecircle", "ellipse", "oval", "Mcircle", "point", "terminal"]
)
_KINDS: dict[str, FlowNodeKind] = {
    "diamond": "decision",
    "Mdiamond": "decision",
    "rhombus": "decision",
    "parallelogram": "io",
    "lean_right": "io",
    "lean_left": "io",
    "subroutine": "subroutine",
    "component": "subroutine",
    "box3d": "subroutine",
}


def kind_of(shape: str, *, incoming: int, outgoing: int) -> FlowNodeKind:
    """A node's kind from its shape and place in the graph.

    Terminal shapes (stadium, circle, ellipse) are a start when nothing leads in and an end when
    nothing leads out; in between they are actions (DOT draws every node as an ellipse by default).
    """
    if shape in _KINDS:
        return _KINDS[shape]
    if shape in _TERMINAL_SHAPES:
        if incoming == 0:
            return "start"
        if outgoing == 0:
            return "end"
    return "action"


def _finish(chart: ParsedChart) -> None:
    """Kinds from shapes and degrees; the entry is the first node nothing leads into."""
    incoming: dict[str, int] = {}
    outgoing: dict[str, int] = {}
    for edge in chart.edges:
        outgoing[edge.source] = outgoing.get(edge.source, 0) + 1
        incoming[edge.target] = incoming.get(edge.target, 0) + 1
    for node in chart.nodes:
        node.kind = kind_of(
            node.shape, incoming=incoming.get(node.id, 0), outgoing=outgoing.get(node.id, 0)
        )
    # a start terminal that leads somewhere, else a node nothing leads into that leads somewhere
    starts = [n for n in chart.nodes if n.kind == "start" and outgoing.get(n.id)]
    roots = [n for n in chart.nodes if not incoming.get(n.id) and outgoing.get(n.id)]
    first = starts or roots or chart.nodes
    chart.entry = first[0].id if first else None


def _clean_text(text: str) -> str:
    """Node or edge text as one line: HTML breaks and tags, entities and DOT escapes removed."""
    text = re.sub(r"<br\s*/?>", " ", text, flags=re.I)
    text = re.sub(r"\\[nlr]", " ", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"#(\w+);", lambda m: html.unescape(f"&{m.group(1)};"), text)
    return " ".join(html.unescape(text).split())


# --- Mermaid -----------------------------------------------------------------------------------

# opener -> (closer, shape), longest openers first
_SHAPES: list[tuple[str, str, str]] = [
    ("(((", ")))", "doublecircle"),
    ("((", "))", "circle"),
    ("([", "])", "stadium"),
    ("[[", "]]", "subroutine"),
    ("[(", ")]", "database"),
    ("{{", "}}", "hexagon"),
    ("[/", "/]", "parallelogram"),
    ("[\\", "\\]", "parallelogram"),
    ("[/", "\\]", "trapezoid"),
    ("[\\", "/]", "trapezoid"),
    ("(", ")", "round"),
    ("[", "]", "box"),
    ("{", "}", "diamond"),
    (">", "]", "flag"),
]
_ID = re.compile(r"[^\W]\w*", re.UNICODE)
_ARROW = re.compile(
    r"\s*(?P<arrow><?(?:-{2,}>|={2,}>|-\.+->|-{3,}|={3,}|-\.+-|--[ox](?![\w])|==[ox](?![\w])))"
)
_LABELLED = re.compile(
    r"\s*<?(?:--|==|-\.)\s*(?P<text>[^-=.\s].*?)\s*(?P<end>-{2,}>|={2,}>|\.-+>|-{3,}|={3,}|\.-+-)"
)
_PIPE = re.compile(r"\s*\|(?P<text>[^|]*)\|")
_SKIP = re.compile(r"(?:classDef|class|style|linkStyle|click|direction|accTitle|accDescr)\b")
_HEADER = re.compile(r"(?:flowchart|graph)(?:\s+(?:TB|TD|BT|RL|LR))?\s*(?:;|$)")


def _parse_mermaid(text: str) -> ParsedChart:
    chart = ParsedChart()
    nodes: dict[str, FlowNode] = {}
    lines = text.splitlines()
    header_seen = False
    in_front_matter = False
    depth = 0
    for number, raw in enumerate(lines, start=1):
        line = raw.split("%%", 1)[0].strip()
        if raw.strip() == "---" and not header_seen:
            in_front_matter = not in_front_matter
            continue
        if in_front_matter:
            match = re.match(r"title:\s*(.+)", line)
            if match:
                chart.title = match.group(1).strip().strip("\"'")
            continue
        if not line:
            continue
        if not header_seen:
            header = _HEADER.match(line)
            if header is None:
                raise FlowchartSyntaxError(
                    f"line {number}: a Mermaid flowchart starts with `flowchart TD` or `graph LR`"
                )
            header_seen = True
            line = line[header.end() :].strip()  # "graph TD; A-->B; B-->C" on one line
            if not line:
                continue
        for statement in _statements(line):
            if statement.startswith("subgraph") and re.match(r"subgraph\b", statement):
                depth += 1
                if not any("subgraph" in note for note in chart.unread):
                    chart.unread.append("subgraph grouping ignored (its nodes and edges are kept)")
                continue
            if statement == "end" and depth:
                depth -= 1
                continue
            if _SKIP.match(statement):
                continue
            _mermaid_statement(statement, number, nodes, chart)
    if not header_seen:
        raise FlowchartSyntaxError("line 1: empty Mermaid flowchart")
    if depth:
        raise FlowchartSyntaxError(f"line {len(lines)}: a `subgraph` is never closed by `end`")
    chart.nodes = list(nodes.values())
    return chart


def _statements(line: str) -> list[str]:
    """A line's statements, split on `;` outside quotes and brackets."""
    out: list[str] = []
    start = depth = 0
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "[({":
            depth += 1
        elif not quoted and ch in "])}":
            depth = max(0, depth - 1)
        elif ch == ";" and not quoted and depth == 0:
            out.append(line[start:i].strip())
            start = i + 1
    out.append(line[start:].strip())
    return [part for part in out if part]


def _mermaid_statement(
    statement: str, number: int, nodes: dict[str, FlowNode], chart: ParsedChart
) -> None:
    """One statement: a group of nodes, then any number of (link, group of nodes)."""
    pos, group = _node_group(statement, 0, number, nodes)
    while True:
        rest = statement[pos:]
        if not rest.strip():
            return
        label: str | None = None
        match = _ARROW.match(rest)
        if match is None:
            match = _LABELLED.match(rest)
            if match is None:
                raise FlowchartSyntaxError(
                    f"line {number}: expected a link such as `-->` or `-- label -->`, "
                    f"found {rest.strip()[:30]!r}"
                )
            label = match.group("text")
        pos += match.end()
        pipe = _PIPE.match(statement, pos)
        if pipe is not None:
            label = pipe.group("text")
            pos = pipe.end()
        label = _clean_text(label.strip().strip('"')) if label else None
        pos, targets = _node_group(statement, pos, number, nodes)
        for source in group:
            for target in targets:
                chart.edges.append(FlowEdge(source=source, target=target, label=label or None))
        group = targets


def _node_group(
    statement: str, pos: int, number: int, nodes: dict[str, FlowNode]
) -> tuple[int, list[str]]:
    """Nodes joined by `&` starting at `pos`; returns the position after them and their ids."""
    ids: list[str] = []
    while True:
        pos, node_id = _node_ref(statement, pos, number, nodes)
        ids.append(node_id)
        match = re.compile(r"\s*&\s*").match(statement, pos)
        if match is None:
            return pos, ids
        pos = match.end()


def _node_ref(statement: str, pos: int, number: int, nodes: dict[str, FlowNode]) -> tuple[int, str]:
    """One node id with its optional shape and text; defines or updates the node."""
    while pos < len(statement) and statement[pos].isspace():
        pos += 1
    match = _ID.match(statement, pos)
    if match is None:
        found = statement[pos : pos + 20] or "the end of the line"
        raise FlowchartSyntaxError(f"line {number}: expected a node id, found {found!r}")
    node_id = match.group(0)
    pos = match.end()
    if statement.startswith(":::", pos):  # a class shorthand: A:::warning
        cls = re.compile(r":::\w+").match(statement, pos)
        pos = cls.end() if cls else pos + 3
    shape: str | None = None
    text: str | None = None
    for opener, closer, name in _SHAPES:
        if not statement.startswith(opener, pos):
            continue
        body_start = pos + len(opener)
        if statement.startswith('"', body_start):
            end_quote = statement.find('"', body_start + 1)
            if end_quote < 0 or not statement.startswith(closer, end_quote + 1):
                continue
            text, pos = statement[body_start + 1 : end_quote], end_quote + 1 + len(closer)
        else:
            end = statement.find(closer, body_start)
            if end < 0:
                continue
            text, pos = statement[body_start:end], end + len(closer)
        shape = name
        break
    else:
        if pos < len(statement) and statement[pos] in "[({>":
            raise FlowchartSyntaxError(
                f"line {number}: the shape of node {node_id!r} is not closed"
            )
    if statement.startswith(":::", pos):
        cls = re.compile(r":::\w+").match(statement, pos)
        pos = cls.end() if cls else pos + 3
    node = nodes.get(node_id)
    if node is None:
        node = nodes[node_id] = FlowNode(id=node_id, kind="action", text=node_id, shape="box")
    if shape is not None and text is not None:
        node.shape = shape
        text = text.strip()
        if len(text) > 1 and text[0] == text[-1] == "`":  # a Markdown string: "`text`"
            text = text[1:-1]
        node.text = _clean_text(text)
    return pos, node_id


# --- DOT ---------------------------------------------------------------------------------------


def _parse_dot(text: str) -> ParsedChart:
    import pydot

    captured = io.StringIO()
    try:
        # pydot prints a parse error on stdout and returns None; it must not reach our stdout
        with contextlib.redirect_stdout(captured), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # pyparsing 3.3 renames
            graphs = pydot.graph_from_dot_data(text)
    except Exception as exc:  # pyparsing errors surface as several exception types
        raise FlowchartSyntaxError(_dot_error(str(exc))) from None
    if not graphs:
        raise FlowchartSyntaxError(_dot_error(captured.getvalue()))
    graph = graphs[0]
    chart = ParsedChart()
    # the graph's caption (`label=...` or `graph [label=...]`); its name is only an id
    label = graph.get_attributes().get("label") or next(
        (n.get_attributes().get("label") for n in graph.get_nodes() if n.get_name() == "graph"),
        None,
    )
    chart.title = _clean_text(_unquote(str(label))) or None if label else None
    nodes: dict[str, FlowNode] = {}
    edges: list[tuple[int, FlowEdge]] = []
    _dot_graph(graph, {}, nodes, edges, chart)
    chart.nodes = list(nodes.values())
    chart.edges = [edge for _, edge in sorted(edges, key=lambda item: item[0])]
    return chart


def _dot_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    detail = lines[-1] if lines else "not a DOT graph"
    match = re.search(r"\(line:(\d+), col:(\d+)\)", detail)
    where = f"line {match.group(1)}, column {match.group(2)}: " if match else ""
    detail = re.sub(r"\s*\(at char \d+\),?\s*\(line:\d+, col:\d+\)", "", detail)
    return f"{where}{detail}"


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    if len(value) >= 2 and value[0] == "<" and value[-1] == ">":
        return value[1:-1]  # an HTML-like label: its tags go in _clean_text
    return value


def _dot_graph(
    graph: Any,
    defaults: dict[str, str],
    nodes: dict[str, FlowNode],
    edges: list[tuple[int, FlowEdge]],
    chart: ParsedChart,
) -> None:
    """Nodes and edges of a graph and, recursively, of its subgraphs (clusters are grouping)."""
    defaults = dict(defaults)
    for node in graph.get_nodes():
        if node.get_name() == "node":
            defaults.update({k: _unquote(str(v)) for k, v in node.get_attributes().items()})
    for node in graph.get_nodes():
        name = _unquote(node.get_name())
        if name in ("node", "edge", "graph"):
            continue
        attrs = {**defaults, **{k: _unquote(str(v)) for k, v in node.get_attributes().items()}}
        _dot_node(name, attrs, nodes)
    for edge in graph.get_edges():
        source, target = _unquote(str(edge.get_source())), _unquote(str(edge.get_destination()))
        for end in (source, target):
            if end not in nodes:
                _dot_node(end, defaults, nodes)
        attrs = {k: _unquote(str(v)) for k, v in edge.get_attributes().items()}
        label = next(
            (attrs[k] for k in ("label", "xlabel", "taillabel", "headlabel") if attrs.get(k)), ""
        )
        sequence = int(edge.obj_dict.get("sequence") or 0)
        edges.append(
            (sequence, FlowEdge(source=source, target=target, label=_clean_text(label) or None))
        )
    for sub in graph.get_subgraphs():
        _dot_graph(sub, defaults, nodes, edges, chart)


def _dot_node(name: str, attrs: dict[str, str], nodes: dict[str, FlowNode]) -> None:
    if ":" in name:  # a port (`a:n`) names the node `a`
        name = name.split(":", 1)[0]
    label = attrs.get("label", "\\N")
    text = _clean_text(label.replace("\\N", name)) or name
    shape = attrs.get("shape", "ellipse")
    if shape in ("box", "rect", "rectangle", "square") and "rounded" in attrs.get("style", ""):
        shape = "round"
    existing = nodes.get(name)
    if existing is None:
        nodes[name] = FlowNode(id=name, kind="action", text=text, shape=shape)
    elif "label" in attrs or "shape" in attrs:
        existing.text, existing.shape = text, shape
