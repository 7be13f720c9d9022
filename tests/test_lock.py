"""sopc.lock: format, robustness against damage, and the run lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sop_compiler.errors import OutputError
from sop_compiler.lock import (
    LOCK_NAME,
    LockFile,
    ProcedureEntry,
    SopEntry,
    dump_lock,
    read_lock,
    run_lock,
    write_atomic,
    write_lock,
)


def _lock() -> LockFile:
    entry = ProcedureEntry(
        agent="billing",
        base_id="refunds",
        title="Refunds",
        text="t",
        input="i",
        render="r",
        outputs={"routines/billing/refunds.md": "aa", "routines/billing/refunds.json": "bb"},
    )
    return LockFile(
        backend={"backend": "offline"},
        sops={
            "z.md": SopEntry(sha256="1", key="k"),
            "a.md": SopEntry(sha256="2", key="k", procedures={"refunds": entry}),
        },
    )


def test_dump_is_sorted_stable_and_round_trips(tmp_path: Path) -> None:
    data = dump_lock(_lock())
    text = data.decode()
    assert text.endswith("}\n") and text.index('"a.md"') < text.index('"z.md"')
    assert dump_lock(LockFile.model_validate(json.loads(text))) == data
    assert write_lock(tmp_path, _lock()) is True
    assert write_lock(tmp_path, _lock()) is False  # same bytes: not rewritten
    lock, problem = read_lock(tmp_path)
    assert problem is None and lock == _lock()
    assert lock.recorded_outputs() == {
        "routines/billing/refunds.md",
        "routines/billing/refunds.json",
    }


@pytest.mark.parametrize(
    "content, why",
    [
        ("<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> main\n", "merge conflict"),
        ('{"version": 99}', "unsupported version"),
        ('{"version": 1, "sops": {"a.md": {"nope": 1}}}', "expected format"),
    ],
)
def test_damaged_lock_means_rebuild_with_a_reason(tmp_path: Path, content: str, why: str) -> None:
    (tmp_path / LOCK_NAME).write_text(content)
    lock, problem = read_lock(tmp_path)
    assert lock == LockFile()
    assert problem is not None and why in problem


def test_missing_lock_is_empty_without_problem(tmp_path: Path) -> None:
    assert read_lock(tmp_path) == (LockFile(), None)


def test_write_atomic_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.txt"
    assert write_atomic(target, b"one") is True
    assert write_atomic(target, b"one") is False
    assert write_atomic(target, b"two") is True
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


def test_write_atomic_error_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a folder must go")
    with pytest.raises(OutputError, match="cannot write"):
        write_atomic(tmp_path / "blocker" / "sopc.lock", b"{}")


def test_run_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with run_lock(out, timeout=1):
        assert (out / ".sopc-run.lock").exists()
        # a different lock object, as another process would hold
        busy = pytest.raises(OutputError, match=f"another sopc compile is running on {out}")
        with busy, run_lock(out, timeout=0.1):
            pass  # pragma: no cover
    with run_lock(out, timeout=0.1):  # released: free again
        pass


def test_templates_hash_covers_the_shipped_templates() -> None:
    """An edit to any emit or prompt template must change the keys (else nothing re-renders)."""
    import hashlib

    from sop_compiler.files import templates_sha

    empty = hashlib.sha256().hexdigest()
    everything, prompts = templates_sha(), templates_sha(under="prompts")
    assert empty not in (everything, prompts)
    assert everything != prompts  # the emit templates (routine.md.j2, agent.py.j2...) count too


def test_lock_is_readable_by_others_like_any_output(tmp_path: Path) -> None:
    """mkstemp makes 0600 files; the lock is committed and read by CI, so it gets 0644."""
    from sop_compiler.lock import dump_lock, write_atomic

    write_atomic(tmp_path / "sopc.lock", dump_lock(_lock()))
    assert (tmp_path / "sopc.lock").stat().st_mode & 0o777 == 0o644
