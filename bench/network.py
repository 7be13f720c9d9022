"""Benchmarks of the emitted agent network: instruction size at company scale, and sync tool
implementations running side by side. Imported by run.py (section `network`)."""

from __future__ import annotations

import asyncio
import importlib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Bounds the emitted network keeps, whatever the number of SOPs (see NetworkSettings).
SPECIALIST_BOUND = 28_000  # index_chars (24k) of routines, plus the SDK prefix and the role
TRIAGE_BOUND = 8_000  # one short line per member


def _routine(folder: int, n: int) -> Any:
    from sop_compiler.models import Routine

    steps: list[dict[str, Any]] = [
        {
            "id": str(i),
            "kind": "say" if i % 3 else "ask",
            "text": f"Explain to the customer how step {i} of case type {n} works, and what "
            "happens next, in plain words; note the answer in the case record.",
        }
        for i in range(1, 9)
    ]
    steps.append({"id": "9", "kind": "resolve", "text": "Close the case"})
    return Routine.model_validate(
        {
            "id": f"case-{n:04d}",
            "agent": f"team-{folder:02d}",
            "title": f"Case type {n}",
            "trigger": f"Use when a customer raises a case of type {n} with team {folder}.",
            "source": {"file": f"team-{folder:02d}/case-{n:04d}.md", "sha256": "0" * 64},
            "steps": steps,
        }
    )


def _import_network(out: Path) -> Any:
    for name in list(sys.modules):
        if name.split(".")[0] in {"agent_network", "tool_impl"}:
            del sys.modules[name]
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("agent_network")
    finally:
        sys.path.remove(str(out))


def _emit(out: Path, routines: list[Any], catalog: Any = None) -> None:
    from sop_compiler.config import Settings
    from sop_compiler.emit import render_network, render_routine, write_outputs
    from sop_compiler.models import ToolCatalog, ValidationReport

    files: dict[str, bytes] = {}
    for routine in routines:
        files.update(render_routine(routine, ValidationReport(routine_id=routine.id)))
    files.update(render_network(routines, catalog=catalog or ToolCatalog(), settings=Settings()))
    write_outputs(out, files)


def bench_scale(report: Callable[..., None], count: int, folders: int) -> None:
    from agents import RunContextWrapper

    print(f"8a. Network size: {count} SOPs in {folders} folders")
    routines = [_routine(n % folders, n) for n in range(count)]
    with tempfile.TemporaryDirectory(prefix="sopc-bench-net-") as tmp:
        out = Path(tmp)
        start = time.perf_counter()
        _emit(out, routines)
        emitted = time.perf_counter() - start
        network = _import_network(out)
        wrapper = RunContextWrapper(network.ConversationContext())
        triage = network.build_network()
        seen: dict[str, Any] = {}
        stack = [triage]
        while stack:
            agent = stack.pop()
            if agent.name in seen:
                continue
            seen[agent.name] = agent
            stack += [getattr(h, "agent", None) or h for h in agent.handoffs if hasattr(h, "name")]
        sizes = {
            name: len(asyncio.run(agent.get_system_prompt(wrapper)) or "")
            for name, agent in seen.items()
        }
    from sop_compiler.emit.routines import routine_markdown

    # What the largest agent would read with every routine inlined.
    per_agent: dict[str, int] = {}
    for routine in routines:
        per_agent[routine.agent] = per_agent.get(routine.agent, 0) + len(routine_markdown(routine))
    inline = max(per_agent.values())
    largest = max(size for name, size in sizes.items() if name != "Triage")
    report(
        f"largest specialist's instructions ({count // folders} routines)",
        f"{largest:,} chars (inlined: ~{inline:,})",
        f"<= {SPECIALIST_BOUND:,}",
        largest <= SPECIALIST_BOUND,
    )
    report(
        f"triage instructions ({folders} agents)",
        f"{sizes['Triage']:,} chars",
        f"<= {TRIAGE_BOUND:,}",
        sizes["Triage"] <= TRIAGE_BOUND,
    )
    report("emit the network (routines + package)", f"{emitted:.2f} s", "", None)


_SLOW_IMPL = """
import time

DELAY = {delay}


def lookup_order(order_id):
    time.sleep(DELAY)
    return {{"order_id": order_id}}
"""


def bench_sync_tools(report: Callable[..., None], delay: float) -> None:
    from agents import RunContextWrapper

    from sop_compiler.models import Routine, Tool, ToolCatalog

    print(f"8b. Four conversations, each one sync tool call of {delay:g} s")
    catalog = ToolCatalog(
        tools=[
            Tool(
                name="lookup_order",
                description="Look up an order.",
                parameters={
                    "type": "object",
                    "properties": {"order_id": {"type": "string"}},
                    "required": ["order_id"],
                },
            )
        ]
    )
    routine = Routine.model_validate(
        {
            "id": "order-status",
            "agent": "orders",
            "title": "Order status",
            "trigger": "Use when a customer asks where an order is.",
            "source": {"file": "orders/status.md", "sha256": "0" * 64},
            "steps": [
                {
                    "id": "1",
                    "kind": "tool_call",
                    "text": "Look up the order",
                    "tool_call": {"tool": "lookup_order", "arguments": [{"name": "order_id"}]},
                },
                {"id": "2", "kind": "resolve", "text": "Close the case"},
            ],
            "tools_used": ["lookup_order"],
        }
    )
    with tempfile.TemporaryDirectory(prefix="sopc-bench-tools-") as tmp:
        out = Path(tmp)
        _emit(out, [routine], catalog)
        (out / "tool_impl.py").write_text(_SLOW_IMPL.format(delay=delay), encoding="utf-8")
        sys.path.insert(0, str(out))
        try:
            network = _import_network(out)
            tools = importlib.import_module("agent_network.tools")

            async def four() -> None:
                contexts = [RunContextWrapper(network.ConversationContext()) for _ in range(4)]
                await asyncio.gather(
                    *(
                        tools._call(c, "lookup_order", {"order_id": str(n)})
                        for n, c in enumerate(contexts)
                    )
                )

            start = time.perf_counter()
            asyncio.run(four())
            took = time.perf_counter() - start
        finally:
            sys.path.remove(str(out))
    report(
        "4 concurrent sync calls / one call",
        f"{took / delay:.2f}x ({took:.2f} s vs {delay:g} s)",
        "<= 1.5x",
        took / delay <= 1.5,
    )
