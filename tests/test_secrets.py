"""The API key never appears in anything sopc writes or prints, whatever the server answers.

A recognisable fake key goes through the real openai backend to the local server of
tests/llm_server.py, which answers with successes, 500s, a timeout and a 401, several of them
echoing the key back (as real servers do in "Incorrect API key provided: sk-..."). Then every
file sopc wrote, stdout, stderr (with `--debug` and the openai client's own debug log) and every
log record are searched for the key.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from llm_server import LLMServer, Reply, error
from typer.testing import CliRunner

from sop_compiler.cli import app

KEY = "sk-test-SECRET-DO-NOT-LEAK-123"
FRAGMENTS = (KEY, "SECRET-DO-NOT-LEAK", KEY[-12:])

pytestmark = pytest.mark.timeout(60)

SOP = "".join(
    f"## Case {n}\n\n1. Ask the customer for the order number of case {n}.\n"
    f"2. Look up the order with `lookup_order`.\n\n"
    for n in range(1, 5)
)


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


def _project(tmp_path: Path) -> tuple[Path, Path, Path]:
    sops = tmp_path / "sops"
    (sops / "billing").mkdir(parents=True)
    (sops / "billing/cases.md").write_text(f"# Cases\n\n{SOP}")
    # local = false: the script retries a timeout, as against a cloud endpoint
    settings = "timeout = 0.5\nmax_retries = 1\nrepair_attempts = 0\nlocal = false\n"
    (sops / "sopc.toml").write_text(settings)
    # the autouse fixture of conftest.py points the response cache at a temp folder
    return sops, tmp_path / "out", Path(os.environ["SOPC_CACHE_DIR"])


def _script(server: LLMServer) -> None:
    """Per procedure, in order (one job at a time): 500-then-ok, timeouts, a 400, a 401."""
    echo = f"upstream said: bad request from key {KEY}"
    server.queue(
        error(500, echo, type_="server_error"),
        Reply(),  # the retry succeeds
        Reply(delay=2.0),
        Reply(delay=2.0),  # the retry times out too
        error(400, echo),  # not retried: its message is the procedure's error
        error(
            401, f"Incorrect API key provided: {KEY}. Find your key at ...", code="invalid_api_key"
        ),
    )


def _everything_written(*folders: Path) -> str:
    texts = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                texts.append(f"== {path}\n" + path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(texts)


def _assert_clean(*texts: str) -> None:
    for text in texts:
        for fragment in FRAGMENTS:
            assert fragment not in text, (
                f"the key leaked: ...{text[max(0, text.find(fragment) - 200) :][:400]}"
            )


def test_key_never_leaks_in_process(
    tmp_path: Path,
    server: LLMServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: sopc, openai, httpx, httpcore
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    sops, out, cache = _project(tmp_path)
    _script(server)
    args = ["--debug", "compile", str(sops), "-o", str(out), "--base-url", server.base_url]
    args += ["--model", "test-model", "--jobs", "1"]
    result = CliRunner().invoke(app, args)

    assert result.exit_code == 2, result.output  # a 401 stops the run: a configuration error
    assert server.chat_requests[0].authorization == f"Bearer {KEY}"  # the key was really used
    assert "401 Unauthorized" in result.stderr  # an error, not a note
    assert "bad request from key" in result.stdout  # the echoed message is shown, scrubbed
    written = _everything_written(out, cache, sops)
    assert (out / "sopc.lock").is_file() and list(cache.rglob("*"))  # both were written
    exception = repr(result.exception) if result.exception else ""
    _assert_clean(written, result.stdout, result.stderr, caplog.text, exception)
    for record in caplog.records:
        _assert_clean(record.getMessage(), repr(record.args), str(record.exc_info))


def test_key_never_leaks_from_the_process_with_debug_logging(
    tmp_path: Path, server: LLMServer
) -> None:
    sops, out, cache = _project(tmp_path)
    _script(server)
    env = {**os.environ, "OPENAI_API_KEY": KEY, "OPENAI_LOG": "debug", "SOPC_DEBUG": "1"}
    args = [sys.executable, "-m", "sop_compiler", "--debug", "compile", str(sops), "-o", str(out)]
    args += ["--base-url", server.base_url, "--model", "test-model", "--jobs", "1"]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=50)

    assert done.returncode == 2, done.stderr
    assert "HTTP Request" in done.stderr or "Request options" in done.stderr  # debug log was on
    _assert_clean(_everything_written(out, cache, sops), done.stdout, done.stderr)

    # a second run answers from the cache: still nothing
    again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=50)
    _assert_clean(_everything_written(out, cache, sops), again.stdout, again.stderr)


def test_a_config_error_with_debug_shows_no_key(tmp_path: Path, server: LLMServer) -> None:
    """`--debug` turns errors into tracebacks: the traceback must not carry the key either."""
    sops, out, _ = _project(tmp_path)
    (sops / "tools.yaml").write_text("tools: [ {name: 'Bad Name'} ]\n")
    env = {**os.environ, "OPENAI_API_KEY": KEY, "OPENAI_LOG": "debug"}
    args = [sys.executable, "-m", "sop_compiler", "--debug", "compile", str(sops), "-o", str(out)]
    args += ["--base-url", server.base_url, "--model", "test-model"]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=50)
    assert done.returncode != 0 and "Traceback" in done.stderr
    _assert_clean(done.stdout, done.stderr)
