"""Hostile SOP and catalog text: emitted Python always compiles and runs none of it; REVIEW.md
keeps its fences, tables and Mermaid intact; names stay valid identifiers."""

from __future__ import annotations

import ast
import importlib
import itertools
import keyword
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from sop_compiler.config import AgentSettings, Settings
from sop_compiler.emit import render_network, render_review, render_routine, write_outputs
from sop_compiler.escape import md_text, mermaid_label, py_docstring, py_literal, py_string
from sop_compiler.models import (
    Condition,
    EdgeCase,
    Routine,
    RoutineSource,
    Step,
    Tool,
    ToolArgument,
    ToolCall,
    ToolCatalog,
    ValidationReport,
)

SENTINEL = Path(tempfile.gettempdir()) / f"sopc-hostile-sentinel-{__import__('os').getpid()}"
PAYLOADS = [
    f'"); __import__("pathlib").Path({str(SENTINEL)!r}).touch(); ("',
    f"'); __import__('pathlib').Path({str(SENTINEL)!r}).touch(); ('",
    f'"""\n__import__("pathlib").Path({str(SENTINEL)!r}).touch()\n"""',
    f"'''\n__import__('pathlib').Path({str(SENTINEL)!r}).touch()\n'''",
    f"__import__('os').system('touch {SENTINEL}')",
    '"); import os; os._exit(1); ("',
    "ends with a backslash\\",
    "\\\"\\'\\n\\x00 escaped-looking text \\N{BULLET}",
    "{{ 7 * 7 }} {% raw %} ${x}",
    "```\n```mermaid\n%%{init: {'theme': 'dark'}}%%\n",
    "<script>alert(1)</script><img src=x onerror=alert(1)>",
    "]] --> evil[pwned] ;; click s1 call alert()",
    "| a | b |\n|---|---|",
    "line\r\nbreaks\u2028and\u2029separators\x0b\x0c\x85",
    "# heading\n## Steps\n1. injected step",
    "-->",
    "naïve café 日本語の説明 😀 \u200b\u202e",
]
_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=60
)
HOSTILE = st.one_of(
    st.sampled_from(PAYLOADS),
    _TEXT,
    st.builds(lambda a, b, c: a + b + c, _TEXT, st.sampled_from(PAYLOADS), _TEXT),
)
TOOL_NAMES = st.sampled_from(
    [
        "import",
        "class",
        "list",
        "str",
        "_call",
        "function_tool",
        "_tool_error",
        "match",
        "any",
        "lookup_order",
        "inspect",
        "importlib",
    ]
)
PARAM_NAMES = st.one_of(
    st.sampled_from(
        ["from", "order-id", "1st", "", "_call", "self", "naïve", "a b", "Literal", "model_number"]
    ),
    _TEXT,
)
MARKDOWN = MarkdownIt("commonmark")
FORBIDDEN_NAMES = {"__import__", "system", "_exit", "exec", "eval", "touch", "subprocess"}


def build(texts: list[str], tool_name: str, param_names: list[str]) -> dict[str, bytes]:
    """Every emitted file for routines, a catalog and settings made of hostile text."""
    t = itertools.cycle(texts)
    params = {name: {"type": "string", "description": next(t)} for name in param_names}
    params["choice"] = {"type": "string", "enum": [next(t), next(t)]}
    tool = Tool(
        name=tool_name,
        description=next(t),
        parameters={"type": "object", "properties": params, "required": param_names[:1]},
        access="write",
        needs_approval=True,
    )
    step_call = ToolCall(
        tool=tool_name, arguments=[ToolArgument(name=next(t), from_context=next(t), value=None)]
    )
    routines = []
    for agent in (next(t), f"{next(t)}/{next(t)}", "billing"):
        routines.append(
            Routine(
                id=next(t) or "x",
                agent=agent,
                title=next(t),
                trigger=next(t),
                source=RoutineSource(file=next(t), sha256="0" * 64, section=[next(t)]),
                steps=[
                    Step(
                        id="1",
                        kind="say",
                        text=next(t),
                        substeps=[Step(id=next(t), kind="ask", text=next(t))],
                    ),
                    Step(id="2", kind="tool_call", text=next(t), tool_call=step_call),
                    Step(
                        id="3",
                        kind="condition",
                        text=next(t),
                        condition=Condition(test=next(t), then_step=next(t), else_step=next(t)),
                    ),
                    Step(id="4", kind="handoff", text=next(t), target=next(t)),
                    Step(id="5", kind="escalate", text=next(t), target=next(t)),
                    Step(id=next(t), kind="resolve", text=next(t)),
                ],
                edge_cases=[EdgeCase(when=next(t), then=next(t))],
                open_questions=[next(t)],
                tools_used=[tool_name],
            )
        )
    # Two routines may share a hostile id; give them distinct ones like the pipeline would.
    for index, routine in enumerate(routines):
        routine.id = f"{routine.id}-{index}"
    agent_settings = {r.agent: AgentSettings(name=next(t), description=next(t)) for r in routines}
    run_settings = Settings(
        model=next(t) or "m",
        agents=agent_settings,
        implementation_module="hostile_impl_" + str(len(texts)),
    )
    files: dict[str, bytes] = {}
    reports = {}
    for routine in routines:
        report = ValidationReport(routine_id=routine.id, coverage=0.5)
        files.update(render_routine(routine, report))
        reports[routine.id] = report
    files.update(render_network(routines, catalog=ToolCatalog(tools=[tool]), settings=run_settings))
    files.update(
        render_review(routines, reports, failures={next(t): next(t)}, settings=run_settings)
    )
    return files


def check_python(files: dict[str, bytes]) -> None:
    for path, data in files.items():
        if not path.endswith(".py"):
            continue
        stem = Path(path).stem
        assert stem.isidentifier() and not keyword.iskeyword(stem), path
        tree = ast.parse(data.decode("utf-8"), filename=path)
        compile(tree, path, "exec")
        for node in ast.walk(tree):
            name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
            assert name not in FORBIDDEN_NAMES, f"{path}: SOP text became code: {name}"
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                assert node.name.isidentifier()


def check_review(text: str) -> None:
    assert "<script" not in text.lower() and "<img" not in text.lower()
    fences = [line for line in text.splitlines() if line.lstrip().startswith("```")]
    assert len(fences) % 2 == 0 and all(f in {"```mermaid", "```"} for f in fences)
    node = re.compile(r'^[A-Za-z][\w]*(\["[^"]*"\]|\{"[^"]*"\}|\(\["[^"]*"\]\))$')
    edge = re.compile(r"^[A-Za-z]\w* (-->|-\.->|-->\|yes\||-->\|no\|) [A-Za-z]\w*$")
    for block in re.findall(r"```mermaid\n(.*?)```", text, re.S):
        lines = [line.strip() for line in block.strip().splitlines()]
        assert lines[0] in {"flowchart TD", "flowchart LR"}
        for line in lines[1:]:
            assert node.match(line) or edge.match(line), line
            assert "%%" not in line and "`" not in line
    header_pipes = None
    for line in text.splitlines():
        if line.startswith("|"):
            header_pipes = header_pipes or line.count("|")
            assert line.count("|") == header_pipes, line
        else:
            header_pipes = None


def check_routine_markdown(files: dict[str, bytes]) -> None:
    """The instructions keep their headings; no SOP text becomes a tag, a fence or a code block."""
    for path, data in files.items():
        if path.startswith("routines/") and path.endswith(".md"):
            header, body = data.decode().split("\n", 1)
            assert header.startswith("<!-- Generated by sopc") and header.endswith("-->")
            headings = [line for line in body.splitlines() if line.startswith("#")]
            assert headings[0].startswith("# ") and headings[1:] == ["## Steps", "## Edge cases"]
            # sopc's own code spans never hold `<`, so any `<` would be SOP text left raw.
            assert "<" not in body, path
            assert not [line for line in body.splitlines() if "```" in line], path
            tokens = MARKDOWN.parse(body)
            kinds = {t.type for t in tokens} | {c.type for t in tokens for c in t.children or []}
            assert not kinds & {"html_block", "html_inline", "fence", "code_block"}, path


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(HOSTILE, min_size=5, max_size=12),
    tool_name=TOOL_NAMES,
    param_names=st.lists(PARAM_NAMES, min_size=1, max_size=4, unique=True),
)
def test_hostile_text_never_breaks_or_enters_the_code(
    texts: list[str], tool_name: str, param_names: list[str]
) -> None:
    files = build(texts, tool_name, param_names)
    check_python(files)
    check_review(files["REVIEW.md"].decode())
    check_routine_markdown(files)
    for path in files:
        assert ".." not in path.split("/") and not path.startswith("/")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(HOSTILE, min_size=5, max_size=8),
    tool_name=TOOL_NAMES,
    param_names=st.lists(PARAM_NAMES, min_size=1, max_size=3, unique=True),
)
def test_importing_hostile_output_runs_no_sop_code(
    texts: list[str], tool_name: str, param_names: list[str]
) -> None:
    """Import the package in this process: agents build, and no payload ran."""
    agents = pytest.importorskip("agents")
    files = build(texts, tool_name, param_names)
    with tempfile.TemporaryDirectory() as folder:
        write_outputs(Path(folder), files)
        sys.path.insert(0, folder)
        try:
            for name in [m for m in sys.modules if m.split(".")[0] == "agent_network"]:
                del sys.modules[name]
            network = importlib.import_module("agent_network")
            triage = network.build_network()
            assert isinstance(triage, agents.Agent)
            assert all(isinstance(h, agents.Agent) for h in triage.handoffs)
        finally:
            sys.path.remove(folder)
            for name in [m for m in sys.modules if m.split(".")[0] == "agent_network"]:
                del sys.modules[name]
    assert not SENTINEL.exists()


def test_every_payload_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """All payloads at once, imported by a separate Python: it exits 0 and touches nothing."""
    pytest.importorskip("agents")
    files = build(PAYLOADS, "import", ["from", "order-id", "naïve", "model_number", "model_config"])
    write_outputs(tmp_path, files)
    code = "import agent_network; print(agent_network.build_network().name)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert not SENTINEL.exists()
    tools = (tmp_path / "agent_network" / "tools.py").read_text()
    assert "async def import_(" in tools and 'name_override="import"' in tools
    assert "from_: str" in tools and "arg_1st" not in tools and '"from": from_' in tools
    ruff = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--isolated",
            "--select",
            "E,F,W,I",
            "--target-version",
            "py310",
            "agent_network",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert ruff.returncode == 0, ruff.stdout


@given(HOSTILE)
def test_escapes_round_trip(text: str) -> None:
    """Python literals evaluate back to the exact text; Markdown and Mermaid stay on one line."""
    assert ast.literal_eval(py_literal(text)) == text
    assert ast.literal_eval(py_string(text, indent=4)) == text
    doc = py_docstring(text, indent=4, args=[("x", text)])
    compile(f"def f():\n{doc}\n", "<doc>", "exec")
    for escaped in (md_text(text), mermaid_label(text)):
        assert "\n" not in escaped and "<" not in escaped and "`" not in escaped
    assert mermaid_label(text).count('"') == 2
