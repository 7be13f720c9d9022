"""`compile_folder`: incremental, deterministic, resumable builds of an output folder."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sop_compiler.config import Settings, load_settings
from sop_compiler.errors import OutputError
from sop_compiler.generate.base import Backend, GenerationContext, GenerationResult
from sop_compiler.models import Heading, Issue, Procedure, RoutineDraft, SourceRef, Step, block_text
from sop_compiler.pipeline import compile_folder

REFUNDS = """# Refunds

## Issue a refund

1. Ask the customer for the order number.
2. Look up the order with `lookup_order`.
3. If the order is older than 30 days, escalate to the billing team.
4. Otherwise, issue the refund with `issue_refund`.

## Correct an invoice

1. Ask for the invoice number.
2. Fetch the invoice with `get_invoice`.
"""

LOST = """# Lost parcel

## Report a lost parcel

1. Ask for the tracking number.
2. Track the shipment with `track_shipment`.
3. If the parcel is marked delivered, open a carrier claim.
"""

RESET = """# Password reset

## Reset a password

1. Verify the customer's identity.
2. Send a reset link with `send_password_reset`.
"""


class StubBackend(Backend):
    """A deterministic backend that records calls and can fail or interrupt after N calls."""

    name = "stub"
    uses_model = True

    def __init__(self, *, fail_after: int | None = None, exc: BaseException | None = None) -> None:
        self.calls: list[str] = []
        self.fail_after = fail_after
        self.exc = exc
        self.version = "1"

    def fingerprint(self) -> dict[str, object]:
        return {"backend": self.name, "version": self.version}

    async def generate(
        self,
        procedure: Procedure,
        *,
        context: GenerationContext,
        validate: Callable[[RoutineDraft], list[Issue]],
    ) -> GenerationResult:
        self.calls.append(procedure.id)
        if self.fail_after is not None and len(self.calls) > self.fail_after:
            assert self.exc is not None
            raise self.exc
        steps: list[Step] = []
        for block in procedure.blocks:
            if isinstance(block, Heading):
                continue
            text = " ".join(block_text(block).split())
            quote = " ".join(text.split()[:8])
            steps.append(
                Step(
                    id=str(len(steps) + 1),
                    kind="say",
                    text=text,
                    source=SourceRef(block_ids=[block.id], quote=quote),
                )
            )
        steps.append(
            Step(id=str(len(steps) + 1), kind="ask", text="Ask whether there is anything else.")
        )
        steps.append(Step(id=str(len(steps) + 1), kind="resolve", text="Resolve the case."))
        draft = RoutineDraft(
            title=procedure.title, trigger=f"The customer needs: {procedure.title}.", steps=steps
        )
        return GenerationResult(procedure_id=procedure.id, draft=draft)


def make_sops(root: Path) -> Path:
    sops = root / "sops"
    for rel, text in {
        "billing/refunds.md": REFUNDS,
        "shipping/lost.md": LOST,
        "account/reset.md": RESET,
    }.items():
        (sops / rel).parent.mkdir(parents=True, exist_ok=True)
        (sops / rel).write_text(text, encoding="utf-8")
    return sops


def settings_for(sops: Path, out: Path, **overrides: object) -> Settings:
    return load_settings(sops, overrides={"output": out, **overrides})


def tree(out: Path) -> dict[str, str]:
    """Every file under `out` (but the run lock) -> sha256."""
    return {
        path.relative_to(out).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("*"))
        if path.is_file() and path.name != ".sopc-run.lock"
    }


def outputs_of(out: Path, source: str) -> dict[str, list[str]]:
    """procedure id -> its output files, from the lock."""
    lock = json.loads((out / "sopc.lock").read_text())
    return {pid: sorted(p["outputs"]) for pid, p in lock["sops"][source]["procedures"].items()}


def mtimes(out: Path) -> dict[str, int]:
    return {
        path.relative_to(out).as_posix(): path.stat().st_mtime_ns
        for path in out.rglob("*")
        if path.is_file()
    }


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    return make_sops(tmp_path), tmp_path / "out"


def run(sops: Path, out: Path, backend: Backend, **kwargs: object) -> object:
    return compile_folder(sops, settings=settings_for(sops, out), backend=backend, **kwargs)  # type: ignore[arg-type]


def test_second_compile_is_a_no_op(project: tuple[Path, Path]) -> None:
    sops, out = project
    first = StubBackend()
    result = compile_folder(sops, settings=settings_for(sops, out), backend=first)
    assert result.exit_code == 0
    assert len(first.calls) == 4
    assert (out / "sopc.lock").is_file() and (out / "REVIEW.md").is_file()
    before, times = tree(out), mtimes(out)

    second = StubBackend()
    again = compile_folder(sops, settings=settings_for(sops, out), backend=second)
    assert second.calls == []
    assert again.written == []
    assert tree(out) == before
    assert mtimes(out) == times  # nothing rewritten, not even with the same bytes
    assert {p.status for s in again.sops for p in s.procedures} == {"unchanged"}


def test_lock_file_is_sorted_json_without_timestamps(project: tuple[Path, Path]) -> None:
    sops, out = project
    compile_folder(sops, settings=settings_for(sops, out), backend=StubBackend())
    text = (out / "sopc.lock").read_text()
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert data["version"] == 1
    assert sorted(data["sops"]) == ["account/reset.md", "billing/refunds.md", "shipping/lost.md"]
    for source, entry in data["sops"].items():
        assert entry["sha256"] == hashlib.sha256((sops / source).read_bytes()).hexdigest()
        for proc in entry["procedures"].values():
            for rel, sha in proc["outputs"].items():
                assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == sha
    assert str(sops) not in text and str(out) not in text  # no absolute paths


def test_file_order_on_disk_does_not_change_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_sops, a_out = make_sops(tmp_path / "a"), tmp_path / "a" / "out"
    compile_folder(a_sops, settings=settings_for(a_sops, a_out), backend=StubBackend())

    real_walk = os.walk

    def shuffled_walk(top: object, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        for folder, dirs, files in real_walk(top, *args, **kwargs):  # type: ignore[call-overload]
            random.Random(7).shuffle(dirs)
            random.Random(11).shuffle(files)
            yield folder, dirs, files

    monkeypatch.setattr(os, "walk", shuffled_walk)
    b_root = tmp_path / "b"
    sops = b_root / "sops"
    for rel in reversed(sorted(p.relative_to(a_sops).as_posix() for p in a_sops.rglob("*.md"))):
        (sops / rel).parent.mkdir(parents=True, exist_ok=True)
        (sops / rel).write_bytes((a_sops / rel).read_bytes())
    compile_folder(sops, settings=settings_for(sops, b_root / "out"), backend=StubBackend())
    assert tree(b_root / "out") == tree(a_out)


def test_editing_one_sop_changes_only_its_outputs(project: tuple[Path, Path]) -> None:
    sops, out = project
    compile_folder(sops, settings=settings_for(sops, out), backend=StubBackend())
    before = tree(out)
    (sops / "shipping/lost.md").write_text(LOST.replace("tracking number", "tracking code"))
    backend = StubBackend()
    result = compile_folder(sops, settings=settings_for(sops, out), backend=backend)
    ((lost_id, own_files),) = outputs_of(out, "shipping/lost.md").items()
    assert backend.calls == [lost_id]
    after = tree(out)
    changed = {rel for rel in before.keys() | after.keys() if before.get(rel) != after.get(rel)}
    own = set(own_files)
    assert len(own) == 2
    assert own <= changed
    assert "sopc.lock" in changed
    assert not {rel for rel in changed if rel.startswith("routines/")} - own
    # shared files may change (they list the routine), other routines never do
    assert changed <= own | {"sopc.lock", "REVIEW.md"} | {
        r for r in changed if r.startswith("agent_network/")
    }
    assert set(result.written) == changed


def test_deleted_sop_outputs_are_removed(project: tuple[Path, Path]) -> None:
    sops, out = project
    # A second SOP keeps the `account` agent: the run's agent set (in every key) stays the same.
    (sops / "account/unlock.md").write_text(
        "# Unlock\n\n## Unlock an account\n\n1. Verify the customer.\n2. Use `unlock_account`.\n"
    )
    compile_folder(sops, settings=settings_for(sops, out), backend=StubBackend())
    ((reset_id, files),) = outputs_of(out, "account/reset.md").items()
    assert all((out / rel).is_file() for rel in files)
    (sops / "account/reset.md").unlink()
    backend = StubBackend()
    compile_folder(sops, settings=settings_for(sops, out), backend=backend)
    assert backend.calls == []
    lock = json.loads((out / "sopc.lock").read_text())
    assert "account/reset.md" not in lock["sops"]
    assert reset_id not in (out / "REVIEW.md").read_text()
    assert not any((out / rel).exists() for rel in files)
    # The folder's last SOP gone, its emptied routine folder goes too.
    (sops / "account/unlock.md").unlink()
    compile_folder(sops, settings=settings_for(sops, out), backend=StubBackend())
    assert not (out / "routines/account").exists()


def test_removed_section_outputs_are_removed(project: tuple[Path, Path]) -> None:
    sops, out = project
    extra = (
        "\n## Apply a credit\n\n1. Ask for the customer ID.\n"
        "2. Apply the credit with `apply_account_credit`.\n"
    )
    (sops / "billing/refunds.md").write_text(REFUNDS + extra)
    compile_folder(sops, settings=settings_for(sops, out), backend=StubBackend())
    before = outputs_of(out, "billing/refunds.md")
    assert len(before) == 3
    credit = next(pid for pid in before if "credit" in pid)
    # Removing the last section leaves the others' text and provenance as they were.
    (sops / "billing/refunds.md").write_text(REFUNDS)
    backend = StubBackend()
    compile_folder(sops, settings=settings_for(sops, out), backend=backend)
    assert backend.calls == []
    assert not any((out / rel).exists() for rel in before[credit])
    after = outputs_of(out, "billing/refunds.md")
    assert sorted(after) == sorted(set(before) - {credit})
    assert all((out / rel).exists() for files in after.values() for rel in files)


def test_interrupted_run_keeps_completed_routines_and_resumes(project: tuple[Path, Path]) -> None:
    sops, out = project
    with pytest.raises(KeyboardInterrupt):
        compile_folder(
            sops,
            settings=settings_for(sops, out, jobs=1),
            backend=StubBackend(fail_after=2, exc=KeyboardInterrupt()),
        )
    lock = json.loads((out / "sopc.lock").read_text())
    done = {
        pid
        for entry in lock["sops"].values()
        for pid, proc in entry["procedures"].items()
        if proc["outputs"]
    }
    assert len(done) == 2
    for entry in lock["sops"].values():  # the lock only vouches for files that exist
        for proc in entry["procedures"].values():
            for rel, sha in proc["outputs"].items():
                assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == sha
    assert not [p for p in out.rglob("*.tmp")]

    resumed = StubBackend()
    result = compile_folder(sops, settings=settings_for(sops, out), backend=resumed)
    assert result.exit_code == 0
    assert len(resumed.calls) == 2 and not set(resumed.calls) & done


def test_generation_failure_is_partial_and_retried(project: tuple[Path, Path]) -> None:
    sops, out = project
    result = compile_folder(
        sops,
        settings=settings_for(sops, out, jobs=1),
        backend=StubBackend(fail_after=3, exc=RuntimeError("server said no")),
    )
    assert result.exit_code == 3
    failed = [p for s in result.sops for p in s.procedures if p.status == "failed"]
    assert len(failed) == 1 and "server said no" in (failed[0].error or "")
    assert failed[0].procedure_id in (out / "REVIEW.md").read_text()
    retry = StubBackend()
    assert compile_folder(sops, settings=settings_for(sops, out), backend=retry).exit_code == 0
    assert retry.calls == [failed[0].procedure_id]


def test_backend_change_regenerates_everything(project: tuple[Path, Path]) -> None:
    sops, out = project
    compile_folder(sops, settings=settings_for(sops, out), backend=StubBackend())
    other = StubBackend()
    other.version = "2"
    compile_folder(sops, settings=settings_for(sops, out), backend=other)
    assert len(other.calls) == 4


def test_refresh_regenerates_everything(project: tuple[Path, Path]) -> None:
    sops, out = project
    compile_folder(sops, settings=settings_for(sops, out), backend=StubBackend())
    again = StubBackend()
    compile_folder(sops, settings=settings_for(sops, out), backend=again, refresh=True)
    assert len(again.calls) == 4


def test_a_refresh_that_changes_a_routine_rewrites_the_review_page(
    project: tuple[Path, Path],
) -> None:
    """A model answers differently on --refresh (same input): REVIEW.md shows the new routine."""
    sops, out = project
    compile_folder(sops, settings=settings_for(sops, out), backend=StubBackend())
    assert "Resolve the case." in (out / "REVIEW.md").read_text(encoding="utf-8")

    class Reworded(StubBackend):
        async def generate(self, procedure, *, context, validate):  # type: ignore[no-untyped-def]
            result = await super().generate(procedure, context=context, validate=validate)
            assert result.draft is not None
            result.draft.steps[-1].text = "Close the case as resolved."
            return result

    compile_folder(sops, settings=settings_for(sops, out), backend=Reworded(), refresh=True)
    review = (out / "REVIEW.md").read_text(encoding="utf-8")
    assert "Close the case as resolved." in review and "Resolve the case." not in review


def test_hand_edited_markdown_is_restored_without_a_model_call(project: tuple[Path, Path]) -> None:
    sops, out = project
    compile_folder(sops, settings=settings_for(sops, out), backend=StubBackend())
    md = out / next(
        rel for rel in outputs_of(out, "shipping/lost.md").popitem()[1] if rel.endswith(".md")
    )
    original = md.read_bytes()
    md.write_text("hacked\n")
    backend = StubBackend()
    compile_folder(sops, settings=settings_for(sops, out), backend=backend)
    assert backend.calls == []
    assert md.read_bytes() == original


def test_names_differing_only_in_case_never_overwrite(tmp_path: Path) -> None:
    sops = tmp_path / "sops"
    (sops / "billing").mkdir(parents=True)
    (sops / "billing/Refunds.md").write_text(REFUNDS)
    (sops / "billing/refunds.md").write_text(REFUNDS.replace("30 days", "60 days"))
    if len(list((sops / "billing").iterdir())) < 2:
        pytest.skip("case-insensitive file system")
    out = tmp_path / "out"
    result = compile_folder(sops, settings=settings_for(sops, out), backend=StubBackend())
    ids = [p.procedure_id for s in result.sops for p in s.procedures]
    assert len(ids) == len(set(ids)) == 4
    routines = sorted(p.name for p in (out / "routines/billing").glob("*.json"))
    assert len(routines) == 4
    texts = {
        json.loads(p.read_text())["source"]["file"]
        for p in (out / "routines/billing").glob("*.json")
    }
    assert texts == {"billing/Refunds.md", "billing/refunds.md"}


def test_bad_file_is_reported_and_the_rest_compiles(project: tuple[Path, Path]) -> None:
    sops, out = project
    (sops / "billing/empty.md").write_text("   \n")
    result = compile_folder(sops, settings=settings_for(sops, out), backend=StubBackend())
    bad = [s for s in result.sops if s.status == "input_error"]
    assert [s.source for s in bad] == ["billing/empty.md"]
    assert bad[0].error and "\n" not in bad[0].error and "empty.md" in bad[0].error
    assert result.exit_code == 4
    assert len([p for s in result.sops for p in s.procedures if p.status == "generated"]) == 4
    # the error is remembered: an unchanged bad file is not read again, and check is clean
    check = compile_folder(
        sops, settings=settings_for(sops, out), check=True, backend=StubBackend()
    )
    assert check.stale == [] and check.exit_code == 4


def test_dry_run_writes_nothing_and_estimates_tokens(project: tuple[Path, Path]) -> None:
    sops, out = project
    backend = StubBackend()
    result = compile_folder(sops, settings=settings_for(sops, out, backend="fake"), dry_run=True)
    assert not out.exists()
    assert backend.calls == []
    procs = [p for s in result.sops for p in s.procedures]
    assert {p.status for p in procs} == {"would_generate"}
    assert all((p.estimated_prompt_tokens or 0) > 100 for p in procs)


def test_second_concurrent_compile_fails_clearly(project: tuple[Path, Path]) -> None:
    from filelock import FileLock

    sops, out = project
    out.mkdir()
    held = FileLock(out / ".sopc-run.lock")
    acquired = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with held:
            acquired.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        acquired.wait(5)
        with pytest.raises(OutputError, match="another sopc compile is running"):
            compile_folder(
                sops, settings=settings_for(sops, out), backend=StubBackend(), lock_timeout=0.2
            )
    finally:
        release.set()
        thread.join()
    assert not (out / "sopc.lock").exists()


def test_output_path_that_is_a_file_is_a_clear_error(project: tuple[Path, Path]) -> None:
    sops, out = project
    out.write_text("not a folder")
    with pytest.raises(OutputError, match="not a folder"):
        compile_folder(sops, settings=settings_for(sops, out), backend=StubBackend())


def test_unwritable_output_is_a_clear_error(project: tuple[Path, Path]) -> None:
    sops, out = project
    (out / "routines").mkdir(parents=True)
    (out / "routines/billing").write_text("a file where a folder must go")
    with pytest.raises(OutputError) as info:
        compile_folder(sops, settings=settings_for(sops, out, jobs=1), backend=StubBackend())
    assert "\n" not in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_output_folder_is_a_clear_error(project: tuple[Path, Path]) -> None:
    sops, out = project
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(OutputError):
            compile_folder(sops, settings=settings_for(sops, out), backend=StubBackend())
    finally:
        out.chmod(0o755)


def test_sigterm_is_handled_like_ctrl_c(project: tuple[Path, Path]) -> None:
    import signal

    sops, out = project

    class Terminating(StubBackend):
        async def generate(self, procedure, *, context, validate):  # type: ignore[no-untyped-def]
            if len(self.calls) == 2:
                os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.05)  # a model takes a while: the signal arrives meanwhile
            return await super().generate(procedure, context=context, validate=validate)

    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        compile_folder(sops, settings=settings_for(sops, out, jobs=1), backend=Terminating())
    assert signal.getsignal(signal.SIGTERM) is previous
    lock = json.loads((out / "sopc.lock").read_text())
    done = [
        pid for e in lock["sops"].values() for pid, p in e["procedures"].items() if p["outputs"]
    ]
    assert 1 <= len(done) <= 3
    resumed = StubBackend()
    compile_folder(sops, settings=settings_for(sops, out), backend=resumed)
    assert len(resumed.calls) == 4 - len(done)


def test_an_sop_over_the_size_limit_is_refused_without_reading_it(
    project: tuple[Path, Path],
) -> None:
    sops, out = project
    huge = sops / "billing/huge.md"
    with huge.open("wb") as handle:
        handle.truncate(3 * 1024**3)  # 3 GiB, sparse: reading it would take seconds and 3 GiB
    started = time.monotonic()
    result = compile_folder(sops, settings=settings_for(sops, out), backend=StubBackend())
    assert time.monotonic() - started < 10
    [bad] = [s for s in result.sops if s.status == "input_error"]
    assert bad.error == (
        "billing/huge.md: file is 3072.0 MiB, over the 100 MiB limit (limits.max_file_mb)"
    )
    assert result.exit_code == 4
    recorded = json.loads((out / "sopc.lock").read_text())["sops"]["billing/huge.md"]
    assert recorded["error"] == bad.error and recorded["sha256"] == ""  # never hashed
    again = compile_folder(sops, settings=settings_for(sops, out), backend=StubBackend())
    assert again.written == [] and again.exit_code == 4


def test_a_fatal_backend_error_stops_the_run_once_with_exit_2(
    project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from llm_server import LLMServer, error
    from typer.testing import CliRunner

    from sop_compiler.cli import app

    sops, out = project
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    with LLMServer() as server:
        for _ in range(8):
            server.queue(error(401, "Incorrect API key provided.", code="invalid_api_key"))
        args = ["compile", str(sops), "-o", str(out), "--backend", "openai", "--jobs", "2"]
        args += ["--base-url", server.base_url, "--model", "m", "--no-cache", "--format", "json"]
        result = CliRunner().invoke(app, args)
        calls = len(server.chat_requests)

    assert result.exit_code == 2, result.output
    assert calls <= 2  # the requests in flight when the key was refused; nothing after
    data = json.loads(result.stdout)
    statuses = {p["status"] for s in data["sops"] for p in s["procedures"]}
    assert statuses == {"would_generate"}  # not four failures repeating the same error
    assert all(p["error"] is None for s in data["sops"] for p in s["procedures"])
    stopped = [note for note in data["notes"] if "401 Unauthorized" in note]
    assert len(stopped) == 1 and "check OPENAI_API_KEY" in stopped[0]
    assert result.output.count("401 Unauthorized") == 1
    # Once the key is fixed, the next run generates everything.
    backend = StubBackend()
    again = compile_folder(sops, settings=settings_for(sops, out), backend=backend)
    assert again.exit_code == 0 and len(backend.calls) == 4


SAMPLES = Path(__file__).resolve().parents[1] / "sample_sops"


def test_output_folder_inside_the_sop_folder_is_never_read_as_sops(tmp_path: Path) -> None:
    sops = make_sops(tmp_path)
    out = sops / "generated"
    first = run(sops, out, StubBackend())
    # A second run must not read REVIEW.md or the routines' Markdown as new SOPs.
    second = run(sops, out, StubBackend())
    assert [s.source for s in second.sops] == [s.source for s in first.sops]  # type: ignore[attr-defined]
    assert len(second.sops) == 3  # type: ignore[attr-defined]
    check = compile_folder(
        sops, settings=settings_for(sops, out), check=True, backend=StubBackend()
    )
    assert check.exit_code == 0, check.stale
    # Any other folder holding a sopc.lock is an output folder too (e.g. an older -o target).
    (sops / "old_out").mkdir()
    (sops / "old_out/sopc.lock").write_text("{}")
    (sops / "old_out/REVIEW.md").write_text("# Review\n\n1. Not an SOP.\n")
    third = run(sops, out, StubBackend())
    assert len(third.sops) == 3  # type: ignore[attr-defined]


def test_agent_set_does_not_depend_on_build_history(tmp_path: Path) -> None:
    """Held-back folder restored: the tree equals a fresh build, and --check agrees."""
    sops = tmp_path / "sops"
    shutil.copytree(SAMPLES, sops)
    held = tmp_path / "tech_support"
    shutil.move(sops / "tech_support", held)
    settings = load_settings(sops, overrides={"output": tmp_path / "a", "backend": "offline"})
    compile_folder(sops, settings=settings)
    shutil.move(held, sops / "tech_support")
    incremental = compile_folder(sops, settings=settings)
    assert incremental.exit_code in (0, 1)
    fresh = load_settings(sops, overrides={"output": tmp_path / "b", "backend": "offline"})
    compile_folder(sops, settings=fresh)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert compile_folder(sops, settings=settings, check=True).stale == []


def test_same_stem_in_another_folder_leaves_the_existing_routine_alone(
    project: tuple[Path, Path],
) -> None:
    sops, out = project
    run(sops, out, StubBackend())
    before = tree(out)
    entry = json.loads((out / "sopc.lock").read_text())["sops"]["billing/refunds.md"]
    (sops / "account/refunds.md").write_text(REFUNDS.replace("30 days", "14 days"))
    backend = StubBackend()
    result = run(sops, out, backend)
    assert result.exit_code == 0  # type: ignore[attr-defined]
    assert sorted(backend.calls) == ["refunds--correct-an-invoice", "refunds--issue-a-refund"]
    after = tree(out)
    for rel, sha in before.items():
        if rel.startswith("routines/billing/"):
            assert after[rel] == sha, rel
    assert json.loads((out / "sopc.lock").read_text())["sops"]["billing/refunds.md"] == entry
    assert "routines/account/refunds--issue-a-refund.json" in after
    # Both routines keep their own report on the review page.
    review = (out / "REVIEW.md").read_text()
    assert review.count("refunds--issue-a-refund") >= 2


def test_pruning_an_empty_folder_while_another_writes_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder removed (pruned by another thread) between mkdir and mkstemp is made again."""
    import tempfile

    from sop_compiler.emit import write_outputs

    real = tempfile.mkstemp
    pruned: list[str] = []

    def racing(*args: object, **kwargs: object) -> tuple[int, str]:
        folder = Path(str(kwargs["dir"]))
        if not pruned:
            pruned.append(str(folder))
            folder.rmdir()  # what `_prune` in another worker does to an empty folder
        return real(*args, **kwargs)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(tempfile, "mkstemp", racing)
    assert write_outputs(tmp_path, {"routines/billing/a.md": b"x"}) == ["routines/billing/a.md"]
    assert (tmp_path / "routines/billing/a.md").read_bytes() == b"x" and pruned
