"""Hostile-input benchmarks: the offline compiler stays linear, a big Markdown SOP stays small.

    python bench/run.py --only hostile [--quick]

Time per KB of the offline compile (read, clean, segment, compile, validate, write; the import of
the emitted network, a subprocess of fixed cost, is timed apart) for one SOP
of numbered steps, for one endless sentence and for that sentence hard-wrapped into a paragraph of
short lines, from 10 KB to 1 MB: flat means linear time, so
no input of the size limits can keep a run busy for hours. Peak memory of reading a Markdown SOP
(ingest, clean, segment) in a fresh process, over the file's size: the growth of the process's
peak RSS (VmHWM) from just before the read, after the readers' libraries are imported and a
2 KB SOP is read (lazy imports and compiled patterns are a run's fixed cost, not the file's).
"""

from __future__ import annotations

import contextlib
import gc
import io
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent

Report = Callable[..., None]

_STEP = "{n}. Check the order number {n} and tell the customer the refund amount.\n"
_WORDS = "the agent checks the order and the refund amount with care "


def _sop(kind: str, kib: int) -> str:
    size = kib * 1024
    if kind == "steps":
        lines, n, total = ["# Refunds\n\n"], 1, 0
        while total < size:
            line = _STEP.format(n=n)
            lines.append(line)
            total += len(line)
            n += 1
        return "".join(lines)
    words = (_WORDS * (size // len(_WORDS) + 1))[:size].rstrip()
    if kind == "paragraph":  # the sentence hard-wrapped, as a pasted paragraph is
        return "# Refunds\n\n" + words.replace("with care ", "with care\n") + ".\n"
    return "# Refunds\n\n1. " + words + ".\n"


def _compile_seconds(text: str) -> tuple[float, float]:
    """The compile's seconds in this process, and the seconds of the one subprocess that imports
    the emitted network (about 2.4 s of interpreter and Agents SDK start-up, whatever the SOP's
    size: timed apart, or its noise would be larger than a 10 KB SOP's whole compile)."""
    from sop_compiler.config import load_settings
    from sop_compiler.emit import imports
    from sop_compiler.pipeline import compile_folder

    check_import, spent = imports.check_import, [0.0]

    def timed(out: Path, **kwargs: float) -> str | None:
        start = time.perf_counter()
        try:
            return check_import(out, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    with tempfile.TemporaryDirectory(prefix="sopc-hostile-") as folder:
        sops = Path(folder) / "sops"
        sops.mkdir()
        (sops / "refunds.md").write_text(text, encoding="utf-8")
        settings = load_settings(
            sops, overrides={"output": Path(folder) / "out", "backend": "offline", "cache": False}
        )
        gc.collect()
        imports.check_import = timed
        try:
            start = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()):  # no progress lines
                compile_folder(sops, settings=settings, fmt="json")
            total = time.perf_counter() - start
        finally:
            imports.check_import = check_import
        return total - spent[0], spent[0]


def bench_linear(report: Report, sizes: list[int]) -> None:
    """Offline compile time per KB at every size: the spread between sizes is the target."""
    base = min(_compile_seconds(_sop("steps", 1))[0] for _ in range(3))  # fixed cost of a run
    for kind in ("steps", "sentence", "paragraph"):
        per_kib: dict[int, float] = {}
        for kib in sizes:
            text = _sop(kind, kib)
            # best of three below 1 MB: a shared machine's noise is larger than a small run
            seconds, imported = min(_compile_seconds(text) for _ in range(3 if kib < 1000 else 1))
            per_kib[kib] = max(seconds - base, 1e-6) / kib * 1000
            report(
                f"offline compile, {kind}, {kib} KB: time per KB",
                f"{per_kib[kib]:.1f} ms/KB ({seconds:.2f} s, and {imported:.1f} s importing the"
                " emitted network)",
                "info",
                None,
            )
        spread = max(per_kib.values()) / min(per_kib.values())
        report(
            f"offline compile, {kind}: time per KB {min(sizes)} KB..{max(sizes)} KB",
            f"{spread:.2f}x spread (largest / smallest ms/KB)",
            "<= 2x (flat)",
            spread <= 2.0,
        )


_MEM_CHILD = """
import gc, resource, sys
def peak():
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
import sop_compiler.ingest, sop_compiler.clean, sop_compiler.segment
import sop_compiler.ingest.markdown, markdown_it  # a fixed cost, not the file's
from run import _sopc_read
path = Path(sys.argv[1])
_sopc_read(Path(sys.argv[2]))  # so are lazy imports and compiled patterns: a small SOP first
baseline = peak()
result = _sopc_read(path)
print(peak(), baseline, sum(len(p.blocks) for p in result[1]))
"""


def bench_markdown_memory(report: Report, sizes_kib: list[int]) -> None:
    """Peak RSS growth of reading one big Markdown SOP, over the file's size; time per MB."""
    folder = Path(tempfile.mkdtemp(prefix="sopc-hostile-md-"))
    per_mib: dict[int, float] = {}
    small = folder / "small.md"
    small.write_text(_sop("steps", 2), encoding="utf-8")
    try:
        for kib in sizes_kib:
            path = folder / f"big-{kib}.md"
            text = _sop("steps", kib)
            path.write_text(text, encoding="utf-8")
            del text
            size = path.stat().st_size
            start = time.perf_counter()
            out = subprocess.run(  # a process per size: no run reuses another's heap
                [sys.executable, "-c", _MEM_CHILD.format(here=str(HERE)), str(path), str(small)],
                capture_output=True,
                text=True,
                check=True,
            )
            seconds = time.perf_counter() - start
            peak, baseline, blocks = (int(v) for v in out.stdout.split()[-3:])
            ratio = (peak - baseline) / size
            per_mib[kib] = seconds / (size / 2**20)
            report(
                f"Markdown {kib} KB read: peak RSS growth / file size",
                f"{ratio:.1f}x ({(peak - baseline) / 2**20:.0f} MiB; {blocks} blocks; "
                f"{seconds:.1f} s, {per_mib[kib]:.2f} s/MB)",
                "<= 4x",
                ratio <= 4,
            )
            path.unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if len(per_mib) > 1:
        spread = max(per_mib.values()) / min(per_mib.values())
        report(
            f"Markdown read {min(sizes_kib)} KB..{max(sizes_kib)} KB: time per MB",
            f"{spread:.2f}x spread (largest / smallest s/MB)",
            "<= 2x (flat)",
            spread <= 2.0,
        )


_BOMB_CHILD = """
import os, resource, sys, zlib, contextlib, io, tempfile
from pathlib import Path
def peak():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
sys.path.insert(0, {tests!r})
import openai
from llm_server import LLMServer, Reply
from sop_compiler.config import load_settings
from sop_compiler.pipeline import compile_folder
mib = int(sys.argv[1])
packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
block = b"A" * (1 << 20)
bomb = b"".join([packer.compress(b'{{"x": "')] + [packer.compress(block) for _ in range(mib)]
                + [packer.compress(b'"}}') + packer.flush()])
del block
with tempfile.TemporaryDirectory() as folder, LLMServer() as server:
    sops = Path(folder) / "sops"
    (sops / "billing").mkdir(parents=True)
    (sops / "billing" / "a.md").write_text("# Refunds\\n\\n1. Ask for the order number.\\n")
    server.queue(Reply(raw=bomb, headers={{"Content-Encoding": "gzip"}}))
    os.environ["OPENAI_API_KEY"] = "sk-bench"
    settings = load_settings(sops, overrides={{
        "output": Path(folder) / "out", "backend": "openai", "base_url": server.base_url,
        "model": "test-model", "max_retries": 0, "repair_attempts": 0, "stream": False,
        "cache": False}})
    baseline = peak()
    with contextlib.redirect_stderr(io.StringIO()):
        result = compile_folder(sops, settings=settings, fmt="json")
    error = result.sops[0].procedures[0].error or ""
print(peak(), baseline, len(bomb), result.exit_code, "max_answer_mb" in error)
"""


def bench_answer_cap(report: Report, inflated_mib: int) -> None:
    """Peak RSS growth of a compile whose one model answer is a gzip bomb."""
    tests = str(HERE.parent / "tests")
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _BOMB_CHILD.format(tests=tests), str(inflated_mib)],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - start
    peak, baseline, packed, code, named = out.stdout.split()[-5:]
    growth = (int(peak) - int(baseline)) / 2**20
    report(
        f"gzip answer of {int(packed) >> 10} KiB inflating to {inflated_mib} MiB: peak RSS growth",
        f"{growth:.0f} MiB (exit {code}, error names max_answer_mb: {named}; {seconds:.1f} s)",
        "<= 2x max_answer_mb (64 MiB)",
        growth <= 64 and code == "3" and named == "True",
    )


def bench_hostile(report: Report, *, quick: bool) -> None:
    """Run the hostile-input benchmarks (small sizes with `quick`)."""
    print("8. Hostile inputs: linear-time offline compile, memory of a big Markdown SOP")
    bench_linear(report, [10, 40] if quick else [10, 100, 1000])
    bench_markdown_memory(report, [200] if quick else [1000, 10000, 30000])
    bench_answer_cap(report, 64 if quick else 1024)
