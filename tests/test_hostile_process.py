"""Process faults: Ctrl-C and SIGTERM mid-run, two compiles at once, unwritable and full outputs.

The signal and concurrency tests run the real `sopc compile` in a subprocess against the slow local
OpenAI-compatible server of tests/llm_server.py, so every routine takes a moment to generate.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer
from typer.testing import CliRunner

from sop_compiler.cli import app

pytestmark = pytest.mark.timeout(60)

PROCEDURES = 6
SECTIONS = "".join(
    f"## Case {n}\n\n1. Ask the customer for the order number of case {n}.\n"
    f"2. Look up the order with `lookup_order`.\n3. Resolve the case.\n\n"
    for n in range(1, PROCEDURES + 1)
)


def _sops(root: Path) -> Path:
    sops = root / "sops"
    (sops / "billing").mkdir(parents=True)
    (sops / "billing/cases.md").write_text(f"# Cases\n\n{SECTIONS}")
    return sops


@pytest.fixture
def slow_server() -> Iterator[LLMServer]:
    with LLMServer(delay=0.4) as server:
        yield server


class Compile:
    """`sopc compile` in a subprocess, with its stderr read line by line as it comes."""

    def __init__(
        self, sops: Path, out: Path, server: LLMServer, *extra: str, ignore_sigint: bool = False
    ) -> None:
        args = [
            sys.executable, "-m", "sop_compiler", "compile", str(sops), "-o", str(out),
            "--backend", "openai", "--base-url", server.base_url, "--model", "test-model",
            "--jobs", "1", "--no-cache", "--format", "json", *extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
            # As for a background job of a non-interactive shell: Ctrl-C is ignored, and only
            # SIGTERM can stop the run. Otherwise Ctrl-C is as a terminal sends it, even when
            # the suite itself runs as such a background job (and so would pass SIGINT on
            # ignored to the run).
            preexec_fn=partial(
                signal.signal, signal.SIGINT, signal.SIG_IGN if ignore_sigint else signal.SIG_DFL
            ),
        )
        self.err_lines: list[str] = []
        self.out_chunks: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_err, daemon=True),
            threading.Thread(target=self._read_out, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err_lines.append(line.rstrip("\n"))

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        self.out_chunks.append(self.proc.stdout.read())

    def generated(self) -> int:
        return sum(line.startswith("generated ") for line in self.err_lines)

    def wait_for(self, routines: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.generated() < routines:
            assert self.proc.poll() is None, "\n".join(self.err_lines)
            assert time.monotonic() < deadline, "compile made no progress"
            time.sleep(0.02)

    def finish(self, timeout: float = 40) -> tuple[int, dict[str, Any] | None, str]:
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(5)
        out = "".join(self.out_chunks)
        data = json.loads(out) if out.strip() else None
        return code, data, "\n".join(self.err_lines)


def _consistent(out: Path) -> set[str]:
    """Check the lock vouches only for files that exist with its hashes; return completed ids."""
    lock = json.loads((out / "sopc.lock").read_text())
    done = set()
    listed = set(lock["shared"])
    for entry in lock["sops"].values():
        for pid, proc in entry["procedures"].items():
            for rel, sha in proc["outputs"].items():
                assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == sha, rel
                listed.add(rel)
            if proc["outputs"]:
                done.add(pid)
    on_disk = {p.relative_to(out).as_posix() for p in (out / "routines").rglob("*") if p.is_file()}
    assert on_disk <= listed, f"routine files the lock does not know: {on_disk - listed}"
    leftovers = [p.name for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == [], leftovers
    return done


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_run_keeps_completed_routines_and_resumes(
    tmp_path: Path, slow_server: LLMServer, signum: signal.Signals
) -> None:
    sops, out = _sops(tmp_path), tmp_path / "out"
    run = Compile(sops, out, slow_server)
    run.wait_for(2)
    run.proc.send_signal(signum)
    code, _, stderr = run.finish()

    assert code == 130, stderr
    assert "interrupted: completed routines were kept" in stderr
    assert "Traceback" not in stderr
    done = _consistent(out)
    assert 2 <= len(done) < PROCEDURES
    asked = len(slow_server.chat_requests)

    resumed = Compile(sops, out, slow_server)
    code, result, stderr = resumed.finish()
    assert code == 0, stderr
    assert result is not None
    statuses = [p["status"] for s in result["sops"] for p in s["procedures"]]
    assert statuses.count("unchanged") == len(done)
    assert statuses.count("generated") == PROCEDURES - len(done)
    assert len(slow_server.chat_requests) - asked == PROCEDURES - len(done)
    assert _consistent(out) == {p["procedure_id"] for s in result["sops"] for p in s["procedures"]}


def test_sigterm_stops_cleanly_when_sigint_is_ignored(
    tmp_path: Path, slow_server: LLMServer
) -> None:
    sops, out = _sops(tmp_path), tmp_path / "out"
    run = Compile(sops, out, slow_server, ignore_sigint=True)
    run.wait_for(2)
    run.proc.send_signal(signal.SIGTERM)
    code, _, stderr = run.finish()

    assert code == 130, stderr
    assert "interrupted: completed routines were kept" in stderr
    assert "Traceback" not in stderr and "CancelledError" not in stderr
    assert 2 <= len(_consistent(out)) < PROCEDURES


def test_second_compile_on_the_same_output_waits_and_never_corrupts(
    tmp_path: Path, slow_server: LLMServer
) -> None:
    sops, out = _sops(tmp_path), tmp_path / "out"
    first = Compile(sops, out, slow_server)
    first.wait_for(1)
    second = Compile(sops, out, slow_server)
    assert first.proc.poll() is None and first.generated() < PROCEDURES  # the runs overlap
    first_code, first_result, first_err = first.finish()
    second_code, second_result, second_err = second.finish()

    assert first_code == 0, first_err
    assert second_code == 0, second_err
    assert first_result and second_result
    # the second run waited for the first, found everything current and called no model
    assert {p["status"] for s in second_result["sops"] for p in s["procedures"]} == {"unchanged"}
    assert len(slow_server.chat_requests) == PROCEDURES
    assert len(_consistent(out)) == PROCEDURES


def test_second_compile_fails_clearly_when_the_first_holds_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from filelock import FileLock

    from sop_compiler.pipeline import compile_folder

    sops, out = _sops(tmp_path), tmp_path / "out"
    out.mkdir()
    # the CLI waits 10 s for the other run; the test need not
    monkeypatch.setitem(compile_folder.__kwdefaults__, "lock_timeout", 0.2)
    with FileLock(out / ".sopc-run.lock"):
        result = CliRunner().invoke(
            app, ["compile", str(sops), "-o", str(out), "--backend", "offline"]
        )
    assert result.exit_code == 5
    lines = result.stderr.splitlines()
    assert lines[0] == f"error: another sopc compile is running on {out}"
    assert "Traceback" not in result.output
    assert not (out / "sopc.lock").exists() and not (out / "routines").exists()


# -- unwritable and full output folders ------------------------------------------------------------


def _one_error_line(result: Any) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.output
    return errors[0]


def test_output_path_that_is_a_file(tmp_path: Path) -> None:
    sops = _sops(tmp_path)
    out = tmp_path / "out"
    out.write_text("I am a file")
    result = CliRunner().invoke(app, ["compile", str(sops), "-o", str(out), "--backend", "offline"])
    assert result.exit_code == 5
    assert "is not a folder" in _one_error_line(result)
    assert out.read_text() == "I am a file"


def test_output_folder_under_a_file_cannot_be_created(tmp_path: Path) -> None:
    sops = _sops(tmp_path)
    (tmp_path / "blocker").write_text("a file where a folder must go")
    out = tmp_path / "blocker" / "out"
    result = CliRunner().invoke(app, ["compile", str(sops), "-o", str(out), "--backend", "offline"])
    assert result.exit_code == 5
    line = _one_error_line(result)
    assert "cannot create the output folder" in line and "blocker" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_output_folder(tmp_path: Path) -> None:
    sops, out = _sops(tmp_path), tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        result = CliRunner().invoke(
            app, ["compile", str(sops), "-o", str(out), "--backend", "offline"]
        )
    finally:
        out.chmod(0o755)
    assert result.exit_code == 5
    _one_error_line(result)


def _tree(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != ".sopc-run.lock"
    }


def test_full_disk_is_one_line_and_keeps_the_last_good_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sops, out = _sops(tmp_path), tmp_path / "out"
    runner = CliRunner()
    args = ["compile", str(sops), "-o", str(out), "--backend", "offline"]
    assert runner.invoke(app, args).exit_code == 0
    before = _tree(out)
    cases = sops / "billing/cases.md"
    cases.write_text(cases.read_text().replace("case 3.", "case three."))

    real_fdopen = os.fdopen

    class _Full:
        """A file whose every write fails as on a full disk."""

        def __init__(self, handle: Any) -> None:
            self.handle = handle

        def __enter__(self) -> _Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def flush(self) -> None:
            self.handle.flush()

        def fileno(self) -> int:
            return int(self.handle.fileno())

    def full(fd: int, *args: Any, **kwargs: Any) -> Any:
        return _Full(real_fdopen(fd, *args, **kwargs))

    with monkeypatch.context() as patch:
        patch.setattr(os, "fdopen", full)
        result = runner.invoke(app, args)
    assert result.exit_code == 5
    line = _one_error_line(result)
    assert "disk is full" in line or "No space left" in line, line
    assert _tree(out) == before  # nothing half-written, the old outputs and lock intact
    _consistent(out)

    again = runner.invoke(app, [*args, "--format", "json"])
    assert again.exit_code == 0
    statuses = [p["status"] for s in json.loads(again.stdout)["sops"] for p in s["procedures"]]
    assert statuses.count("generated") == 1 and statuses.count("unchanged") == PROCEDURES - 1
