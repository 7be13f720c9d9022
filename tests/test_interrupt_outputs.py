"""An interrupted compile (issue #18): REVIEW.md and the network are written for what was kept,
and the summary is printed, before the "interrupted" line and exit 130."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from llm_server import LLMServer
from test_hostile_process import PROCEDURES, Compile, _consistent, _sops

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def slow_server() -> Iterator[LLMServer]:
    with LLMServer(delay=0.4) as server:
        yield server


def test_ctrl_c_writes_review_and_network_for_the_routines_kept_and_a_summary(
    tmp_path: Path, slow_server: LLMServer
) -> None:
    sops, out = _sops(tmp_path), tmp_path / "out"
    run = Compile(sops, out, slow_server)
    run.wait_for(2)
    run.proc.send_signal(signal.SIGINT)
    code, result, stderr = run.finish()

    assert code == 130, stderr
    assert "interrupted: completed routines were kept" in stderr and "Traceback" not in stderr
    assert result is not None and result["exit_code"] == 130  # the summary, in --format json
    statuses = [p["status"] for s in result["sops"] for p in s["procedures"]]
    done = _consistent(out)
    assert statuses.count("generated") == len(done) >= 2
    assert statuses.count("would_generate") == PROCEDURES - len(done) > 0
    review = (out / "REVIEW.md").read_text(encoding="utf-8")
    lock = json.loads((out / "sopc.lock").read_text())
    assert "REVIEW.md" in lock["shared"] and (out / "agent_network" / "__init__.py").is_file()
    for routine in done:
        assert f"(routines/billing/{routine}.md)" in review
    for missing in {f"cases--case-{n}" for n in range(1, PROCEDURES + 1)} - done:
        assert f"(routines/billing/{missing}.md)" not in review

    resumed = Compile(sops, out, slow_server)
    code, again, stderr = resumed.finish()
    assert code == 0, stderr
    assert again is not None
    statuses = [p["status"] for s in again["sops"] for p in s["procedures"]]
    assert statuses.count("generated") == PROCEDURES - len(done)
    assert _consistent(out) == {p["procedure_id"] for s in again["sops"] for p in s["procedures"]}
