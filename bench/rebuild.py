"""Benchmarks of what a change costs in model calls, and of the prompt's size (bench/run.py 8, 9).

Rebuild: a folder of `count` SOPs is compiled against the local OpenAI-compatible test server
(tests/llm_server.py; real openai client, real HTTP, response cache off), then changed one way at
a time; each row compares the requests the server saw with the ideal (the procedures whose
answer can really change). Every tenth routine calls `lookup_order`, so that a schema change has
routines to break.

Prompt: tokens per procedure (JSON characters of the request / 4, image data left out) on
sample_sops. Both are measured twice, by the sopc of this checkout and by sop_compiler as of
ea6af11 (before issue #14, extracted with `git archive` and run in a child interpreter).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))

BEFORE_TOKENS = ("json_schema", "json_object")  # the response formats measured
# What prompt_tokens() measured at ea6af11, for a clone without that commit (shallow CI).
RECORDED_BEFORE = {"json_schema": (17, 12134.0), "json_object": (17, 9518.0)}

BEFORE_COMMIT = "ea6af11"
Report = Callable[..., None]

_TITLE = re.compile(r"^Title: (.+)$", re.MULTILINE)
# The parameter lookup_order takes, in the catalog as shown now, or as shown before issue #14.
_LOOKUP = re.compile(
    r'`lookup_order\((\w+)\??:|`lookup_order`.*\n\s*parameters: \{"properties": \{"(\w+)"'
)


def _responder(body: dict[str, Any]) -> dict[str, Any]:
    """A routine per procedure; every tenth calls lookup_order with the parameter the catalog
    shows now (so a routine regenerated after a schema change is valid again)."""
    from llm_server import completion, default_draft

    draft = default_draft(body)
    text = "\n".join(
        m["content"] if isinstance(m["content"], str) else "" for m in body.get("messages", [])
    )
    titles = _TITLE.findall(text)
    number = int(re.sub(r"\D", "", titles[-1]) or 0) if titles else 0
    param = _LOOKUP.search(text)
    if number % 10 == 0 and param is not None:
        draft["steps"].insert(
            1,
            {
                "id": "2",
                "kind": "tool_call",
                "text": "Call `lookup_order`.",
                "tool_call": {
                    "tool": "lookup_order",
                    "arguments": [
                        {"name": param.group(1) or param.group(2), "from_context": "the order"}
                    ],
                },
            },
        )
        for index, step in enumerate(draft["steps"], start=1):
            step["id"] = str(index)
    return completion(draft)


def _catalog(sops: Path, *, param: str = "order_id", extra: bool = False) -> None:
    tools = [
        {
            "name": "lookup_order",
            "description": "Look up an order.",
            "access": "read",
            "parameters": {
                "type": "object",
                "properties": {param: {"type": "string"}},
                "required": [param],
            },
        }
    ]
    if extra:
        tools.append({"name": "send_survey", "description": "Send a satisfaction survey."})
    (sops / "tools.yaml").write_text(json.dumps({"tools": tools}), encoding="utf-8")


def measure(count: int, root: Path) -> list[dict[str, Any]]:
    """Each change's calls against the ideal, with the sop_compiler this interpreter imports."""
    from gen import make_sop_folder
    from llm_server import LLMServer

    import sop_compiler
    from sop_compiler.config import load_settings
    from sop_compiler.pipeline import compile_folder

    shutil.rmtree(root, ignore_errors=True)
    sops, out = root / "sops", root / "out"
    make_sop_folder(sops, count)
    _catalog(sops)
    rows: list[dict[str, Any]] = []
    with LLMServer(responder=_responder) as server:
        settings = load_settings(
            sops,
            overrides={
                "backend": "openai",
                "base_url": server.base_url,
                "model": "bench",
                "output": out,
                "cache": False,
                "jobs": 16,
            },
        )

        def row(name: str, change: Callable[[], None], ideal: int) -> None:
            change()
            server.requests.clear()  # keeps memory flat: 1,000 request bodies add up
            with contextlib.redirect_stderr(io.StringIO()):
                result = compile_folder(sops, settings=settings, fmt="json")
            made = len(server.chat_requests)
            rows.append({"name": name, "calls": made, "ideal": ideal, "exit": result.exit_code})

        def sop(path: Path, number: int) -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            text = (sops / "shipping/sop-0001.md").read_text(encoding="utf-8")
            path.write_text(text.replace("Procedure 1\n", f"Procedure {number}\n"), "utf-8")

        uses_tool = sum(1 for n in range(count) if n % 10 == 0)
        new = sops / "billing" / f"sop-{count:04d}.md"
        folder = sops / "legal"
        row(f"First build of {count} SOPs", lambda: None, count)
        row("+1 SOP", lambda: sop(new, count + 1), 1)
        row("-1 SOP", new.unlink, 0)
        row("+1 unused tool", lambda: _catalog(sops, extra=True), 0)
        row("1 tool's schema changed", lambda: _catalog(sops, param="order_number"), uses_tool)
        row("1 agent folder added (1 SOP)", lambda: sop(folder / "sop-9001.md", 9001), 1)
        row("that agent folder removed", lambda: shutil.rmtree(folder), 0)
    rows.append({"code": str(Path(sop_compiler.__file__).parent)})
    return rows


def bench_rebuild(count: int, report: Report) -> None:
    """Calls made for each kind of change, by sopc before issue #14 (ea6af11) and now."""
    print(f"8. What a change costs: {count} SOPs against the local test server (calls / ideal)")
    work = HERE / "_work"
    results: dict[str, list[dict[str, Any]]] = {}
    for label, code in (("before", _before_code()), ("after", REPO)):
        if code is None:
            continue
        results[label] = _in_child(code, [str(count), str(work / f"rebuild-{label}-{count}")])
        assert results[label][-1]["code"].startswith(str(code)), results[label][-1]
    after_rows = results["after"][:-1]
    before_rows = results.get("before", [{"calls": "n/a"}] * (len(after_rows) + 1))[:-1]
    for before, after in zip(before_rows, after_rows, strict=True):
        first = after["name"].startswith("First build")
        report(
            f"{after['name']}: calls / ideal",
            f"{after['calls']} / {after['ideal']} (before #14: {before['calls']})",
            "info" if first else "= ideal",
            None if first else after["calls"] == after["ideal"],
        )


def bench_batch(count: int, report: Report) -> None:
    """`sopc compile --batch` round trip: submit, then collect, against the local test server."""
    print(f"10. Batch round trip: {count} SOPs through the files and batches endpoints")
    from gen import make_sop_folder
    from llm_batch_server import BatchServer

    from sop_compiler.config import load_settings
    from sop_compiler.pipeline import compile_folder

    root = HERE / "_work" / f"batch-{count}"
    shutil.rmtree(root, ignore_errors=True)
    sops = root / "sops"
    make_sop_folder(sops, count)
    with BatchServer() as server:
        settings = load_settings(
            sops,
            overrides={
                "backend": "openai",
                "base_url": server.base_url,
                "model": "bench",
                "output": root / "out",
                "cache": False,
            },
        )
        exits = []
        for _ in range(3):  # submit; collect; a no-op
            with contextlib.redirect_stderr(io.StringIO()):
                exits.append(compile_folder(sops, settings=settings, batch=True).exit_code)
        lines, batches = len(server.chat_requests), len(server.batches)
    report(
        "Batch: lines answered / procedures; batches; exit codes",
        f"{lines} / {count}; {batches}; {', '.join(map(str, exits))}",
        f"{count}; 1; 3, 0, 0",
        lines == count and batches == 1 and exits == [3, 0, 0],
    )


def prompt_tokens(sops: Path, fmt: str) -> tuple[int, float]:
    """(procedures, mean tokens per request) for the first request of every procedure."""
    from sop_compiler.catalog import load_catalog
    from sop_compiler.config import load_settings
    from sop_compiler.generate.base import GenerationContext
    from sop_compiler.generate.fake import FakeBackend
    from sop_compiler.generate.llm import ChatRequest
    from sop_compiler.ingest import discover
    from sop_compiler.pipeline import read_procedures

    settings = load_settings(
        sops, overrides={"backend": "fake", "structured_output": fmt, "ocr": "off"}
    )
    catalog = load_catalog(settings.tools, sop_root=sops)
    files, _ = discover(sops)
    procedures = [
        p for f in files for p in read_procedures(f, root=sops, settings=settings).procedures
    ]
    backend = FakeBackend(settings)
    context = GenerationContext(
        catalog=catalog, settings=settings, agents=tuple(sorted({p.agent for p in procedures}))
    )
    sizes = []
    for procedure in procedures:
        messages, _ = backend.build_messages(procedure, context)
        body = ChatRequest(model="m", messages=tuple(messages), response_format=fmt).payload()  # type: ignore[arg-type]
        text = json.dumps(body, ensure_ascii=False)
        sizes.append(len(re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "", text)) / 4)
    return len(procedures), sum(sizes) / len(sizes)


def bench_prompt(report: Report) -> None:
    """Tokens per procedure on sample_sops, by sopc before issue #14 (ea6af11) and now."""
    print("9. Prompt size per procedure on sample_sops (chars/4, images left out)")
    code = _before_code()
    before = _in_child(code, ["prompt"]) if code is not None else RECORDED_BEFORE
    for fmt in BEFORE_TOKENS:
        count, mean = prompt_tokens((REPO / "sample_sops").resolve(), fmt)
        old = before[fmt][1]
        how = "" if code is not None else ", recorded"
        report(
            f"Tokens per procedure, {fmt} ({count} procedures): now / before #14",
            f"{mean:.0f} / {old:.0f}{how} ({mean / old:.0%})",
            "<= 80%" if fmt == "json_schema" else "info",
            mean / old <= 0.8 if fmt == "json_schema" else None,
        )


def _before_code() -> Path | None:
    """sop_compiler as of BEFORE_COMMIT, extracted once under bench/_work (None: not in git,
    as in a shallow CI checkout: the rows then show the figures of this checkout only)."""
    import subprocess

    before_code = HERE / "_work" / "before-14"
    if not (before_code / "sop_compiler").is_dir():
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", BEFORE_COMMIT, "sop_compiler"],
            capture_output=True,
            check=False,
        )
        if archive.returncode != 0:
            print(f"  ({BEFORE_COMMIT} is not in this clone: no 'before' figures)")
            return None
        before_code.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "-x", "-C", str(before_code)], input=archive.stdout, check=True)
    return before_code


def _in_child(code: Path, args: list[str]) -> Any:
    """Run this module under the sop_compiler in `code`; its last stdout line, parsed."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(code)}
    child = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(child.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    if sys.argv[1] == "prompt":
        samples = (REPO / "sample_sops").resolve()
        print(json.dumps({fmt: prompt_tokens(samples, fmt) for fmt in BEFORE_TOKENS}))
    else:
        print(json.dumps(measure(int(sys.argv[1]), Path(sys.argv[2]))))
