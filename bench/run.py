"""sopc benchmarks: sopc and its reference side by side in one run, reported as ratios.

    python bench/run.py            full run (competitors need the venv made by --setup)
    python bench/run.py --setup    make bench/_work/cvenv with pymupdf4llm, markitdown and docling
    python bench/run.py --quick    small inputs; checks every benchmark still runs (CI)
    python bench/run.py --write    also write the results into BENCHMARKS.md

Absolute times on a shared machine are noise; a ratio measured within one run holds. No pass/fail
on timings is enforced in CI: the table says whether each target is met.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / "_work"
CVENV = WORK / "cvenv"
sys.path.insert(0, str(HERE))

from gen import Truth, make_docx, make_pdf, make_sop_folder  # noqa: E402

if TYPE_CHECKING:
    from sop_compiler.models import RunResult


@dataclass
class Row:
    section: str
    benchmark: str
    measured: str
    target: str
    met: bool | None  # None: informational or skipped


ROWS: list[Row] = []
SECTIONS = (
    "pdf",
    "docx",
    "memory",
    "noop",
    "model",
    "local",
    "startup",
    "rebuild",
    "prompt",
    "batch",
    "network",
    "eval",
    "hostile",
    "fidelity",
)
_section = ""


def report(benchmark: str, measured: str, target: str = "", met: bool | None = None) -> None:
    ROWS.append(Row(_section, benchmark, measured, target, met))
    flag = {True: "yes", False: "NO", None: "-"}[met]
    print(f"  {benchmark:<58} {measured:<34} {target:<14} {flag}", flush=True)


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time of `repeat` runs (the least disturbed by other load)."""
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


# --- 1. PDF ingest -------------------------------------------------------------------------------


def _floor_pdf(path: Path) -> None:
    import pymupdf

    with pymupdf.open(path) as doc:
        for page in doc:
            page.get_text("dict")


def _sopc_read(path: Path) -> object:
    from sop_compiler.clean import clean
    from sop_compiler.config import Settings
    from sop_compiler.ingest import ingest
    from sop_compiler.segment import segment

    document = clean(ingest(path, root=path.parent, settings=Settings()))
    return document, segment(document, agent="bench")


# Structure is compared by counting what each converter marks as structure against what the
# generator really wrote (gen.Truth): headings, numbered steps (top-level and lettered sub-steps),
# tables and figures. sopc's counts come from its Document blocks after clean(); a competitor's from
# its Markdown (ATX headings, `1.`/`a.` list items, table separator rows, image links). Per kind the
# score is min(found, true) / max(found, true), so both missing structure and inventing it (body
# lines promoted to headings, one table split in two) cost; the total is the mean over the kinds
# the document holds.


def _structure_of_document(result: object) -> dict[str, int]:
    from sop_compiler.models import Figure, Heading, ListItem, Table

    document, _ = result  # type: ignore[misc]
    return {
        "headings": sum(isinstance(b, Heading) for b in document.blocks),
        "steps": sum(isinstance(b, ListItem) and b.ordered for b in document.blocks),
        "tables": sum(isinstance(b, Table) for b in document.blocks),
        "figures": sum(isinstance(b, Figure) for b in document.blocks),
    }


def _structure_of_markdown(markdown: str) -> dict[str, int]:
    lines = markdown.splitlines()
    return {
        "headings": sum(1 for line in lines if re.match(r"^#{1,6}\s", line)),
        "steps": sum(1 for line in lines if re.match(r"^\s*(\d+|[a-z])[.)]\s+\S", line)),
        "tables": sum(1 for line in lines if re.match(r"^\s*\|(\s*:?-{3,}:?\s*\|)+\s*$", line)),
        "figures": sum(
            len(re.findall(r"!\[[^\]]*\]\(", line)) + line.count("<!-- image -->") for line in lines
        ),
    }


def _score(found: dict[str, int], truth: Truth) -> float:
    """Mean over the kinds present of min(found, true) / max(found, true)."""
    parts = [
        (found["headings"], truth.headings),
        (found["steps"], truth.steps),
        (found["tables"], truth.tables),
        (found["figures"], truth.images),
    ]
    return sum(min(f, t) / max(f, t) for f, t in parts if t) / sum(1 for _, t in parts if t)


def _shown_structure(found: dict[str, int], truth: Truth) -> str:
    true = {
        "headings": truth.headings,
        "steps": truth.steps,
        "tables": truth.tables,
        "figures": truth.images,
    }
    return " ".join(f"{k[0]}{found[k]}/{true[k]}" for k in found)


def _competitor(name: str, path: Path) -> tuple[float, str] | None:
    python = CVENV / "bin" / "python"
    if not python.exists():
        return None
    out = subprocess.run(
        [str(python), str(HERE / "competitors.py"), name, str(path)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if out.returncode != 0:
        print(f"    {name} failed: {out.stderr.strip().splitlines()[-1:]}")
        return None
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return float(data["seconds"]), str(data["markdown"])


def bench_pdf(sizes: list[int], competitors: bool) -> None:
    print("1. PDF ingest (read + clean + segment) vs pymupdf get_text('dict')")
    per_page = {}
    for pages in sizes:
        path = WORK / f"sop-{pages}.pdf"
        truth = make_pdf(path, pages)
        repeat = 3 if pages <= 100 else 1
        floor = best_of(lambda path=path: _floor_pdf(path), repeat)
        result: list[object] = []
        ours = best_of(lambda r=result, path=path: r.append(_sopc_read(path)), repeat)
        per_page[pages] = ours / pages
        ratio = ours / floor
        report(
            f"PDF {pages} pages: sopc / floor",
            f"{ratio:.2f}x ({pages / ours:.0f} pages/s)",
            "<= 3x",
            ratio <= 3,
        )
        if pages == sizes[-1] or pages == 100:
            text_only = WORK / f"text-{pages}.pdf"
            tables_only = WORK / f"tables-{pages}.pdf"
            make_pdf(text_only, pages, table_every=10**9, image_every=10**9)
            make_pdf(tables_only, pages, table_every=1, image_every=10**9)
            for label, p in (("without tables", text_only), ("with tables", tables_only)):
                f = best_of(lambda p=p: _floor_pdf(p), repeat)
                o = best_of(lambda p=p: _sopc_read(p), repeat)
                report(
                    f"PDF {pages} pages {label}: sopc / floor",
                    f"{o / f:.2f}x ({o / pages * 1000:.1f} ms/page)",
                    "<= 3x" if label == "without tables" else "info",
                    (o / f <= 3) if label == "without tables" else None,
                )
        ours_structure = _structure_of_document(result[-1])
        score = _score(ours_structure, truth)
        report(
            f"PDF {pages} pages: structure kept by sopc (found/true)",
            f"{score:.0%} {_shown_structure(ours_structure, truth)}",
            "info",
            None,
        )
        if competitors and pages == 100:
            for name in ("pymupdf4llm", "markitdown"):
                got = _competitor(name, path)
                if got is None:
                    report(
                        f"PDF {pages}: sopc vs {name}",
                        "skipped (run --setup)",
                        ">= 5x faster",
                        None,
                    )
                    continue
                seconds, markdown = got
                theirs = _structure_of_markdown(markdown)
                report(
                    f"PDF {pages}: {name} time / sopc time",
                    f"{seconds / ours:.1f}x ({pages / seconds:.1f} pages/s)",
                    ">= 5x",
                    seconds / ours >= 5,
                )
                their_score = _score(theirs, truth)
                report(
                    f"PDF {pages}: structure kept by {name} (found/true)",
                    f"{their_score:.0%} {_shown_structure(theirs, truth)}",
                    f"<= sopc {score:.0%}",
                    their_score <= score,
                )
    if len(per_page) > 1:
        sizes_sorted = sorted(per_page)
        growth = per_page[sizes_sorted[-1]] / per_page[sizes_sorted[0]]
        detail = ", ".join(f"{p}: {per_page[p] * 1000:.2f} ms/page" for p in sizes_sorted)
        report(
            "PDF time per page, largest / smallest size",
            f"{growth:.2f} ({detail})",
            "~1 (linear)",
            growth <= 1.5,
        )


# --- 2. DOCX ingest ------------------------------------------------------------------------------


def _floor_docx(path: Path) -> None:
    """python-docx's own walk: body paragraphs and tables in reading order, with style names."""
    import docx
    from docx.table import Table as DocxTable

    document = docx.Document(str(path))
    for block in document.iter_inner_content():
        if isinstance(block, DocxTable):
            for row in block.rows:
                for cell in row.cells:
                    _ = cell.text
        else:
            _ = block.text, block.style.name if block.style is not None else None


def bench_docx(sizes: list[int], competitors: bool) -> None:
    print("2. DOCX ingest vs a plain python-docx paragraph and table walk")
    for pages in sizes:
        path = WORK / f"sop-{pages}.docx"
        truth = make_docx(path, pages)
        repeat = 3 if pages <= 100 else 1
        floor = best_of(lambda path=path: _floor_docx(path), repeat)
        result: list[object] = []
        ours = best_of(lambda r=result, path=path: r.append(_sopc_read(path)), repeat)
        report(
            f"DOCX {pages} pages: sopc / python-docx walk",
            f"{ours / floor:.2f}x",
            "<= 3x",
            ours / floor <= 3,
        )
        structure = _structure_of_document(result[-1])
        score = _score(structure, truth)
        report(
            f"DOCX {pages} pages: structure kept by sopc (found/true)",
            f"{score:.0%} {_shown_structure(structure, truth)}",
            "info",
            None,
        )
        if competitors and pages == 100:
            got = _competitor("docling", path)
            if got is None:
                report(f"DOCX {pages}: sopc vs docling", "skipped (run --setup)", "no slower", None)
            else:
                report(
                    f"DOCX {pages}: docling time / sopc time",
                    f"{got[0] / ours:.1f}x",
                    ">= 1x",
                    got[0] / ours >= 1,
                )
                theirs = _structure_of_markdown(got[1])
                report(
                    f"DOCX {pages}: structure kept by docling (found/true)",
                    f"{_score(theirs, truth):.0%} {_shown_structure(theirs, truth)}",
                    "info",
                    None,
                )


# --- 3. Peak memory ------------------------------------------------------------------------------

# Every mode imports the same modules first, so the interpreter and library baseline is the same
# in each child and the ratio compares the work: pymupdf walking the pages (the floor), and sopc
# reading the same PDF into its document model and procedures.
_MEM_CHILD = """
import gc, resource, sys
def peak():
    # VmHWM belongs to this process image; ru_maxrss can carry over the parent's peak from fork.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
sys.path.insert(0, {here!r})
from pathlib import Path
import pymupdf
import sop_compiler.ingest.pdf, sop_compiler.clean, sop_compiler.segment
from run import _sopc_read
mode, path = sys.argv[1], Path(sys.argv[2])
baseline = peak()
extra = 0
if mode == "floor":
    with pymupdf.open(path) as doc:
        for page in doc:
            page.get_text("dict")
elif mode == "model":
    import tracemalloc
    tracemalloc.start()
    result = _sopc_read(path)
    gc.collect()
    extra = tracemalloc.get_traced_memory()[0]  # what the document model and procedures hold
else:
    result = _sopc_read(path)
print(peak(), extra, baseline)
"""


def _child_memory(mode: str, path: Path) -> tuple[int, int, int]:
    out = subprocess.run(
        [sys.executable, "-c", _MEM_CHILD.format(here=str(HERE)), mode, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    peak, extra, baseline = out.stdout.split()[-3:]
    return int(peak), int(extra), int(baseline)


def bench_memory(pages_list: list[int]) -> None:
    print("3. Peak memory vs pymupdf's own page iteration plus the document model")
    peaks: dict[int, int] = {}
    for pages in pages_list:
        path = WORK / f"sop-{pages}.pdf"
        if not path.exists():
            make_pdf(path, pages)
        floor, _, baseline = _child_memory("floor", path)
        _, model, _ = _child_memory("model", path)
        ours, _, _ = _child_memory("sopc", path)
        peaks[pages] = ours
        ratio = ours / (floor + model)
        mib = 2**20
        report(
            f"PDF {pages} pages: peak RSS / (pymupdf iteration + model)",
            f"{ratio:.2f}x ({ours / mib:.0f} MiB vs {floor / mib:.0f}+{model / mib:.0f} MiB; "
            f"imports {baseline / mib:.0f} MiB)",
            "<= 1.5x",
            ratio <= 1.5,
        )
    if len(peaks) > 1:
        small, large = min(peaks), max(peaks)
        slope = (peaks[large] - peaks[small]) / (large - small) / 1024
        report(
            "Peak RSS growth with pages",
            f"{peaks[small] / 2**20:.0f} MiB at {small} p, "
            f"{peaks[large] / 2**20:.0f} MiB at {large} p: "
            f"{slope:.0f} KiB/page",
            "info (linear)",
            None,
        )


# --- 4. No-op rebuild ----------------------------------------------------------------------------


def _compile(sops: Path, **options: object) -> RunResult:
    """compile_folder without its per-routine progress lines (stderr is not a terminal here)."""
    from sop_compiler.pipeline import compile_folder

    with contextlib.redirect_stderr(io.StringIO()):
        return compile_folder(sops, fmt="json", **options)  # type: ignore[arg-type]


# The no-op is measured in a fresh interpreter, as a CI job or an engineer runs it: in the
# benchmark's own process the heap left by the first build makes every garbage collection slower.
_NOOP_CHILD = """
import gc, hashlib, json, sys, time
sys.path.insert(0, {here!r})
from pathlib import Path
from run import _compile, best_of
from sop_compiler.config import load_settings
sops, out, repeat = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
settings = load_settings(sops, overrides={{"backend": "offline", "output": out}})
files = sorted(p for p in sops.rglob("*") if p.is_file())
def floor():
    for path in files:
        hashlib.sha256(path.read_bytes()).hexdigest()
def best(fn):
    return best_of(fn, repeat)
results = []
first = time.perf_counter()
results.append(_compile(sops, settings=settings))
first = time.perf_counter() - first
ours = best(lambda: results.append(_compile(sops, settings=settings)))
check = best(lambda: _compile(sops, settings=settings, check=True))
rerun = results[-1]
print(json.dumps({{
    "floor": best(floor), "ours": ours, "check": check, "first_noop": first,
    "calls": sum(s.usage.calls for s in rerun.sops),
    "generated": sum(p.status == "generated" for s in rerun.sops for p in s.procedures),
    "written": len(rerun.written), "exit": rerun.exit_code,
}}))
"""


def bench_noop(count: int) -> None:
    print(f"4. No-op rebuild of {count} SOPs vs reading and hashing the same files")
    from sop_compiler.config import load_settings

    root = WORK / f"noop-{count}"
    shutil.rmtree(root, ignore_errors=True)
    sops, out = root / "sops", root / "out"
    make_sop_folder(sops, count)
    settings = load_settings(sops, overrides={"backend": "offline", "output": out})
    start = time.perf_counter()
    first = _compile(sops, settings=settings)
    first_time = time.perf_counter() - start
    child = subprocess.run(
        [sys.executable, "-c", _NOOP_CHILD.format(here=str(HERE)), str(sops), str(out), "7"],
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(child.stdout.strip().splitlines()[-1])
    floor_time, ours, check = got["floor"], got["ours"], got["check"]
    report(
        f"No-op rebuild of {count} SOPs / read+hash floor",
        f"{ours / floor_time:.2f}x ({ours * 1000:.0f} ms vs {floor_time * 1000:.1f} ms)",
        "<= 2x",
        ours / floor_time <= 2,
    )
    report(
        "No-op rebuild: procedures regenerated, model calls, files written",
        f"{got['generated']}, {got['calls']}, {got['written']} (exit {got['exit']})",
        "0, 0, 0",
        got["generated"] == 0 and got["calls"] == 0 and got["written"] == 0,
    )
    report(
        "No-op --check (hashes every output) / read+hash floor",
        f"{check / floor_time:.2f}x ({check * 1000:.0f} ms)",
        "info",
        None,
    )
    report(
        "First no-op in a new process (imports, schema) / floor",
        f"{got['first_noop'] / floor_time:.1f}x ({got['first_noop'] * 1000:.0f} ms)",
        "info",
        None,
    )
    report(
        f"First build of {count} SOPs, offline backend",
        f"{first_time:.1f}s ({count / first_time:.0f} SOPs/s; exit {first.exit_code})",
        "info",
        None,
    )


# --- 5 and 6. Model throughput and prompt prefix -------------------------------------------------


def bench_model(count: int, delay: float, jobs_list: list[int]) -> None:
    print(f"5. Model throughput: {count} procedures, server answers after {delay * 1000:.0f} ms")
    from fixed_server import FixedDelayServer

    from sop_compiler.config import load_settings

    root = WORK / f"model-{count}"
    shutil.rmtree(root, ignore_errors=True)
    sops = root / "sops"
    make_sop_folder(sops, count)
    requests: list[dict[str, object]] = []
    for jobs in jobs_list:
        out = root / f"out-{jobs}"
        with FixedDelayServer(delay) as server:
            settings = load_settings(
                sops,
                overrides={
                    "backend": "openai",
                    "base_url": server.base_url,
                    "output": out,
                    "jobs": jobs,
                    "cache": False,
                    "structured_output": "json_schema",
                    "model": "bench",
                },
            )
            start = time.perf_counter()
            result = _compile(sops, settings=settings)
            wall = time.perf_counter() - start
            calls = len(server.requests)
            requests = server.requests
        ideal = calls * delay / jobs
        failed = sum(p.status == "failed" for s in result.sops for p in s.procedures)
        target = "<= 1.2x" if jobs == 16 else "info"
        met = (wall / ideal <= 1.2) if jobs == 16 else None
        report(
            f"jobs={jobs}: wall / ideal ({calls} calls x {delay}s / {jobs})",
            f"{wall / ideal:.2f}x ({wall:.1f}s; server saw {server.max_active} at once; "
            f"{failed} failed)",
            target,
            met,
        )
    print("6. Prompt cost")
    if requests:
        texts = [json.dumps(r.get("messages"), sort_keys=True) for r in requests]
        prefix = os.path.commonprefix(texts)  # noqa: RUF071 - a string prefix is meant
        prefix_tokens = len(prefix) / 4
        mean_tokens = sum(len(t) for t in texts) / len(texts) / 4
        report(
            "Static prefix shared by every request (chars/4)",
            f"{prefix_tokens:.0f} tokens",
            ">= 1024",
            prefix_tokens >= 1024,
        )
        report(
            "Share of prompt tokens in that prefix; tokens per procedure",
            f"{prefix_tokens / mean_tokens:.0%}; {mean_tokens:.0f}",
            "info",
            None,
        )


# --- 6b. A slow local model server -------------------------------------------------------------


def bench_local(count: int, answer: float, slots: int) -> None:
    """A llama.cpp-like server: `slots` answers at once, `answer` seconds each, more queue."""
    print(f"6b. Local server: {count} procedures, {answer:g}s per answer, {slots} slots")
    import threading

    sys.path.insert(0, str(REPO / "tests"))
    from llm_server import LLMServer, completion, default_draft

    from sop_compiler.config import load_settings

    root = WORK / f"local-{count}"
    shutil.rmtree(root, ignore_errors=True)
    sops = root / "sops"
    make_sop_folder(sops, count)
    busy = threading.Semaphore(slots)

    def respond(body: dict[str, object]) -> dict[str, object]:
        with busy:  # a request beyond the slots waits for one, as llama.cpp queues it
            time.sleep(answer)
        return completion(default_draft(body))

    with LLMServer(responder=respond, slots=slots) as server:
        settings = load_settings(
            sops,
            overrides={
                "backend": "openai",
                "base_url": server.base_url,
                "output": root / "out",
                "cache": False,
                "model": "test-model",
            },  # no `jobs`: sopc asks the server for its slots
        )
        start = time.perf_counter()
        result = _compile(sops, settings=settings)
        wall = time.perf_counter() - start
        sent = len(server.chat_requests)
        at_once = server.max_concurrency
    procedures = sum(len(sop.procedures) for sop in result.sops)
    failed = sum(p.status == "failed" for s in result.sops for p in s.procedures)
    ideal = procedures * answer / slots
    # with short answers (--quick) the fixed costs (imports, reading, writing) dominate: info only
    timed = answer >= 5
    report(
        f"{procedures} procedures, {slots} slots: wall / ideal "
        f"({procedures} x {answer:g}s / {slots})",
        f"{wall / ideal:.2f}x ({wall:.1f}s; {at_once} at once; {failed} failed)",
        "<= 1.2x" if timed else "info",
        (wall / ideal <= 1.2 and failed == 0) if timed else None,
    )
    report(
        "Requests sent (procedures + repairs; a timeout is never retried)",
        f"{sent} for {procedures} procedures",
        f"{procedures} + repairs",
        sent == procedures,
    )


# --- 7. Start-up ---------------------------------------------------------------------------------


def bench_startup(repeat: int) -> None:
    print("7. Start-up: sopc --help vs python -c 'import typer'")
    base = best_of(
        lambda: subprocess.run([sys.executable, "-c", "import typer"], check=True), repeat
    )
    ours = best_of(
        lambda: subprocess.run(
            [sys.executable, "-m", "sop_compiler", "--help"], check=True, capture_output=True
        ),
        repeat,
    )
    report(
        "sopc --help / import typer",
        f"{ours / base:.2f}x ({ours * 1000:.0f} ms vs {base * 1000:.0f} ms)",
        "<= 2x",
        ours / base <= 2,
    )


# --- main ----------------------------------------------------------------------------------------


def machine() -> str:
    import pymupdf

    cpu = memory = ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in info.splitlines()
            if line.startswith("model name")
        )
        kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        memory = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return (
        f"{platform.platform()}, {os.cpu_count()} cores {cpu}{memory}, "
        f"Python {platform.python_version()}, pymupdf {pymupdf.VersionBind}"
    )


def write_markdown(path: Path, quick: bool) -> None:
    """Write BENCHMARKS.md; sections not run this time (--only) keep their last results."""
    store = WORK / ("results-quick.json" if quick else "results.json")
    saved: dict[str, object] = {}
    if store.exists():
        saved = json.loads(store.read_text(encoding="utf-8"))
    sections: dict[str, list[dict[str, object]]] = dict(saved.get("sections", {}))  # type: ignore[call-overload]
    ran = {row.section for row in ROWS}
    for name in ran:
        sections[name] = [vars(row) for row in ROWS if row.section == name]
    store.write_text(json.dumps({"sections": sections}, indent=1), encoding="utf-8")
    lines = [
        "# Benchmarks",
        "",
        "Made by `python bench/run.py --write` (after `python bench/run.py --setup` for the",
        "competitors). Ratios are measured within one run on a shared, noisy machine; absolute",
        "times are indicative only.",
        "",
        f"Machine: {machine()}" + (" (quick mode)" if quick else ""),
        "",
        "| benchmark | measured | target | met |",
        "|---|---|---|---|",
    ]
    for name in SECTIONS:
        for row in sections.get(name, []):
            met = {True: "yes", False: "**no**", None: ""}[row["met"]]  # type: ignore[index]
            measured = str(row["measured"]).replace("|", "/")
            lines.append(f"| {row['benchmark']} | {measured} | {row['target']} | {met} |")
    notes = path.read_text(encoding="utf-8").split("<!-- notes -->", 1) if path.exists() else []
    body = "\n".join(lines) + "\n\n<!-- notes -->" + (notes[1] if len(notes) == 2 else "\n")
    path.write_text(body, encoding="utf-8")


def setup() -> None:
    """The competitors' virtualenv (pymupdf4llm pulls pymupdf 2.0, so it cannot share sopc's)."""
    subprocess.run([sys.executable, "-m", "venv", str(CVENV)], check=True)
    pip = [str(CVENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "torch==2.13.0"], check=False)  # CPU build; docling would pull a CUDA one
    # pymupdf4llm 2.0 is an empty shim: its code now ships inside pymupdf 2.x, which it does not
    # pull in itself.
    subprocess.run(
        [*pip, "pymupdf>=2", "pymupdf4llm", "markitdown[pdf,docx]", "docling"], check=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="small inputs; just check the benchmarks run"
    )
    parser.add_argument("--write", action="store_true", help="write the results into BENCHMARKS.md")
    parser.add_argument(
        "--setup", action="store_true", help="create the competitors' virtualenv and exit"
    )
    parser.add_argument("--only", default="", help=f"comma-separated subset: {','.join(SECTIONS)}")
    args = parser.parse_args()
    if args.setup:
        setup()
        return
    WORK.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SOPC_CACHE_DIR", tempfile.mkdtemp(prefix="sopc-bench-cache-"))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        os.environ.pop(name, None)
    only = set(filter(None, args.only.split(",")))
    quick = args.quick

    def wanted(name: str) -> bool:
        global _section
        _section = name
        return not only or name in only

    print(f"Machine: {machine()}{' (quick mode)' if quick else ''}")
    print(f"  {'benchmark':<58} {'measured':<34} {'target':<14} met")
    if wanted("pdf"):
        bench_pdf([10] if quick else [10, 100, 1000], competitors=not quick)
    if wanted("docx"):
        bench_docx([10] if quick else [10, 100, 1000], competitors=not quick)
    if wanted("memory"):
        bench_memory([10] if quick else [100, 1000])
    if wanted("noop"):
        bench_noop(40 if quick else 1000)
    if wanted("model"):
        if quick:
            bench_model(16, 0.05, [4])
        else:
            bench_model(200, 0.3, [1, 4, 16, 64])
    if wanted("local"):
        bench_local(17, 0.2 if quick else 30.0, 2)
    if wanted("startup"):
        bench_startup(3 if quick else 10)
    if wanted("rebuild"):
        from rebuild import bench_rebuild

        bench_rebuild(40 if quick else 1000, report)
    if wanted("prompt"):
        from rebuild import bench_prompt

        bench_prompt(report)
    if wanted("batch"):
        from rebuild import bench_batch

        bench_batch(40 if quick else 200, report)
    if wanted("network"):
        import network

        network.bench_scale(report, 100 if quick else 1000, 5 if quick else 20)
        network.bench_sync_tools(report, 0.2 if quick else 1.0)
    if wanted("eval"):
        from eval_bench import bench_eval

        bench_eval(50 if quick else 1000, report)
    if wanted("fidelity"):
        from fidelity import bench_fidelity

        bench_fidelity(report)
    if wanted("hostile"):
        from hostile_bench import bench_hostile

        bench_hostile(report, quick=quick)
    if args.write:
        write_markdown(REPO / "BENCHMARKS.md", quick)
    missed = [row.benchmark for row in ROWS if row.met is False]
    print(
        f"\n{len(ROWS)} figures, {len(missed)} targets missed" + (f": {missed}" if missed else "")
    )


if __name__ == "__main__":
    main()
