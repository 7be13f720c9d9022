"""Benchmark: deterministic `sopc eval` of many scenarios (no model, the CI path).

The committed scenarios of sample_sops/ (one per path of the 17 sample routines) are repeated,
renamed, until there are `count` of them, written to a temporary scenario folder, and replayed
against generated_routines/ in process: loading and checking every file, interpreting each
scenario, comparing, and exploring every routine's paths for the coverage count.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TARGET_PER_SECOND = 500  # a CI job with thousands of scenarios should not wait for eval


def _scenario_folder(folder: Path, count: int) -> int:
    """Write `count` scenarios (the committed ones, repeated) under `folder`; return how many."""
    files = sorted((REPO / "sample_sops" / "scenarios").glob("*/*.yaml"))
    pool = [
        (path, entry)
        for path in files
        for entry in yaml.safe_load(path.read_text(encoding="utf-8"))
    ]
    by_file: dict[Path, list[dict[str, object]]] = {}
    for n in range(count):
        path, entry = pool[n % len(pool)]
        by_file.setdefault(path, []).append(
            {**entry, "name": f"{entry['name']} #{n // len(pool) + 1}"}
        )
    for path, entries in by_file.items():
        target = folder / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(entries, sort_keys=False), encoding="utf-8")
    return count


def bench_eval(count: int, report: Callable[..., None]) -> None:
    """Time `evaluate` over `count` scenarios and report time and scenarios per second."""
    from sop_compiler.catalog import load_catalog
    from sop_compiler.eval.evaluate import evaluate

    catalog = load_catalog(None, sop_root=REPO / "sample_sops")
    with tempfile.TemporaryDirectory(prefix="sopc-eval-bench-") as temp:
        folder = Path(temp) / "scenarios"
        written = _scenario_folder(folder, count)
        best = float("inf")
        result = None
        for _ in range(3):
            gc.collect()
            start = time.perf_counter()
            result = evaluate(folder, output=REPO / "generated_routines", catalog=catalog)
            best = min(best, time.perf_counter() - start)
    assert result is not None
    if result.failed or result.errors or len(result.results) != written:
        raise SystemExit(f"eval benchmark: {result.failed} failed, {len(result.errors)} errors")
    rate = written / best
    report(
        f"deterministic eval, {written} scenarios",
        f"{best:.2f} s, {rate:,.0f} scenarios/s",
        f">= {TARGET_PER_SECOND}/s",
        # Small runs are dominated by exploring the 17 routines once: no target for them.
        rate >= TARGET_PER_SECOND if written >= 1000 else None,
    )
