"""`sopc compile --batch` against the local test server's files and batches endpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from llm_batch_server import BatchServer
from llm_server import completion, default_draft

from sop_compiler.config import load_settings
from sop_compiler.models import RunResult
from sop_compiler.pipeline import compile_folder

pytestmark = pytest.mark.timeout(60)

SOPS = {
    "billing/refunds.md": "# Refunds\n\n1. Ask for the order number.\n2. Refund the order.\n",
    "shipping/lost.md": "# Lost parcel\n\n1. Ask for the tracking number.\n2. Open a claim.\n",
    "account/reset.md": "# Password reset\n\n1. Ask for the email.\n2. Send a reset link.\n",
}


@pytest.fixture
def sops(tmp_path: Path) -> Path:
    root = tmp_path / "sops"
    for rel, text in SOPS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def compile_batch(sops: Path, server: BatchServer) -> RunResult:
    settings = load_settings(
        sops,
        overrides={
            "output": sops.parent / "out",
            "backend": "openai",
            "base_url": server.base_url,
            "model": "test-model",
            "cache": False,
        },
    )
    return compile_folder(sops, settings=settings, batch=True)


def lock(sops: Path) -> dict[str, Any]:
    return json.loads((sops.parent / "out/sopc.lock").read_text())  # type: ignore[no-any-return]


def routines(sops: Path) -> list[str]:
    out = sops.parent / "out/routines"
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json"))


def test_submit_exit_then_collect_and_never_submit_twice(sops: Path) -> None:
    with BatchServer() as server:
        server.polls_before_done = 1
        first = compile_batch(sops, server)
        assert first.exit_code == 3
        assert any("submitted batch batch_2 with 3 request(s)" in n for n in first.notes)
        assert server.chat_requests == [] and routines(sops) == []
        assert list(lock(sops)["batches"]) == ["batch_2"]
        assert sorted(lock(sops)["batches"]["batch_2"]["requests"]) == [
            "account/reset",
            "billing/refunds",
            "shipping/lost",
        ]
        # Still running: nothing is submitted again.
        second = compile_batch(sops, server)
        assert second.exit_code == 3 and len(server.batches) == 1
        reasons = {p.reason for s in second.sops for p in s.procedures}
        assert reasons == {"waiting in batch batch_2 (in_progress)"}
        # Done: every answer is validated and written, the batch leaves the lock.
        third = compile_batch(sops, server)
        assert third.exit_code == 0, third.model_dump_json(indent=1)
        assert len(server.chat_requests) == 3 and len(server.batches) == 1
        assert routines(sops) == [
            "account/reset.json",
            "billing/refunds.json",
            "shipping/lost.json",
        ]
        assert lock(sops)["batches"] == {}
        assert third.usage.calls == 3
        # And the next run is a no-op: no batch, no call.
        fourth = compile_batch(sops, server)
        assert fourth.exit_code == 0 and fourth.written == [] and len(server.batches) == 1


def test_failed_lines_are_asked_again_in_a_new_batch(sops: Path) -> None:
    with BatchServer() as server:
        server.fail_lines = {"billing/refunds"}
        compile_batch(sops, server)
        again = compile_batch(sops, server)  # collects two, resubmits the failed one
        assert again.exit_code == 3 and len(server.batches) == 2
        assert routines(sops) == ["account/reset.json", "shipping/lost.json"]
        [pending] = lock(sops)["batches"].values()
        assert list(pending["requests"]) == ["billing/refunds"]
        server.fail_lines = set()
        done = compile_batch(sops, server)
        assert done.exit_code == 0 and len(routines(sops)) == 3
        assert len(server.chat_requests) == 3  # each procedure answered once


def test_an_expired_batch_keeps_what_finished_and_asks_for_the_rest(sops: Path) -> None:
    with BatchServer() as server:
        server.expire_next = True
        compile_batch(sops, server)
        again = compile_batch(sops, server)
        assert any("ended expired" in note for note in again.notes)
        assert len(routines(sops)) == 1  # half of three lines finished before it expired
        [pending] = lock(sops)["batches"].values()
        assert len(pending["requests"]) == 2
        done = compile_batch(sops, server)
        assert done.exit_code == 0 and len(routines(sops)) == 3


def test_an_answer_with_errors_gets_a_repair_request_in_the_next_batch(sops: Path) -> None:
    def responder(body: dict[str, Any]) -> dict[str, Any]:
        draft = default_draft(body)
        repairing = any(m["role"] == "assistant" for m in body["messages"])
        if not repairing:  # first answers call a tool that is not in the catalog
            draft["steps"][0] = {
                **draft["steps"][0],
                "kind": "tool_call",
                "tool_call": {"tool": "invented_tool", "arguments": []},
            }
        return completion(draft)

    with BatchServer(responder=responder) as server:
        compile_batch(sops, server)
        repair = compile_batch(sops, server)
        assert repair.exit_code == 3 and routines(sops) == []
        [pending] = lock(sops)["batches"].values()
        assert {r["attempt"] for r in pending["requests"].values()} == {2}
        done = compile_batch(sops, server)
        assert done.exit_code == 0 and len(routines(sops)) == 3
        repairs = server.chat_requests[3:]
        assert len(repairs) == 3
        assert all("invented_tool" in r.messages_text() for r in repairs)


def test_batch_needs_the_openai_backend(sops: Path) -> None:
    from typer.testing import CliRunner

    from sop_compiler.cli import app

    args = ["compile", str(sops), "-o", str(sops.parent / "out"), "--backend", "fake", "--batch"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "--batch needs the openai backend" in result.output


def test_a_procedure_whose_sop_changed_while_pending_is_asked_again(sops: Path) -> None:
    def responder(body: dict[str, Any]) -> dict[str, Any]:
        draft = default_draft(body)
        text = "\n".join(str(m["content"]) for m in body["messages"])
        draft["title"] = "answer to the new text" if "Say sorry." in text else "an old answer"
        return completion(draft)

    with BatchServer(responder=responder) as server:
        server.polls_before_done = 1
        compile_batch(sops, server)
        (sops / "shipping/lost.md").write_text(SOPS["shipping/lost.md"] + "3. Say sorry.\n")
        again = compile_batch(sops, server)  # the old batch still runs: only lost is resubmitted
        assert again.exit_code == 3 and len(server.batches) == 2
        newest = lock(sops)["batches"][max(server.batches, key=lambda b: int(b.split("_")[1]))]
        assert list(newest["requests"]) == ["shipping/lost"]
        server.polls_before_done = 0
        done = compile_batch(sops, server)  # both finish; the stale answer is not used
        assert done.exit_code == 0 and lock(sops)["batches"] == {}
        routine = json.loads((sops.parent / "out/routines/shipping/lost.json").read_text())
        assert routine["title"] == "answer to the new text"
        lines = [r for r in server.chat_requests if "Lost parcel" in r.messages_text()]
        assert len(lines) == 2 and "Say sorry." in lines[-1].messages_text()


def test_an_interrupted_collection_loses_no_answer_and_submits_nothing_twice(
    sops: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sop_compiler.pipeline._build import _Build

    real = _Build._finish
    calls: list[str] = []

    def finish_then_stop(self: _Build, proc: Any, result: Any) -> None:
        calls.append(proc.id)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second answer is being written
        real(self, proc, result)

    with BatchServer() as server:
        compile_batch(sops, server)
        monkeypatch.setattr(_Build, "_finish", finish_then_stop)
        with pytest.raises(KeyboardInterrupt):
            compile_batch(sops, server)
        assert len(routines(sops)) == 1
        assert len(lock(sops)["batches"]) == 1  # still recorded: not yet fully collected
        monkeypatch.setattr(_Build, "_finish", real)
        done = compile_batch(sops, server)
        assert done.exit_code == 0 and len(routines(sops)) == 3
        assert len(server.batches) == 1 and len(server.chat_requests) == 3
        assert lock(sops)["batches"] == {}
