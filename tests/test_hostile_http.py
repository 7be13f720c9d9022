"""Hostile HTTP (issue 17): a base URL's user info is never sent, a huge answer is never read whole.

Real openai client, real HTTP, against tests/llm_server.py.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer, Reply, completion, default_draft
from typer.testing import CliRunner

from sop_compiler.cli import app

pytestmark = pytest.mark.timeout(60)

KEY = "sk-test-ONLY-CREDENTIAL-7d1e"
SOP = "# Refunds\n\n## Issue a refund\n\n1. Ask the customer for the order number.\n"


def _sops(tmp_path: Path) -> Path:
    sops = tmp_path / "sops"
    (sops / "billing").mkdir(parents=True)
    (sops / "billing" / "a.md").write_text(SOP)
    (sops / "sopc.toml").write_text("max_retries = 0\n")
    return sops


def test_user_info_in_openai_base_url_is_never_sent_as_basic_auth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API key is the only credential the server sees, on every request (probe included)."""
    sops, out = _sops(tmp_path), tmp_path / "out"
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with LLMServer() as server:
        url = server.base_url.replace("http://", "http://alice:hunter2pass@")
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        args = ["compile", str(sops), "-o", str(out), "--backend", "openai"]
        result = CliRunner().invoke(app, [*args, "--model", "test-model", "--jobs", "1"])
        requests = list(server.requests)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert any(r.method == "POST" for r in requests) and any(r.method == "GET" for r in requests)
    for request in requests:
        assert request.authorization == f"Bearer {KEY}", (request.method, request.path)
    shown = result.stdout + result.stderr
    assert "hunter2pass" not in shown
    assert "user name or password" in shown  # the user is told it was left out
    for path in out.rglob("*"):
        if path.is_file():
            assert b"hunter2pass" not in path.read_bytes(), path


def _bomb(size: int) -> bytes:
    """A gzip body that inflates to `size` bytes of one JSON string (about 1,000x smaller)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    parts = [packer.compress(b'{"id": "chatcmpl-x", "object": "chat.completion", "x": "')]
    block = b"A" * (1 << 20)
    parts += [packer.compress(block) for _ in range(size >> 20)]
    parts.append(packer.compress(b'"}') + packer.flush())
    return b"".join(parts)


def _compile(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *replies: Reply,
    stream: bool,
    responder: Callable[[dict[str, Any]], Reply] | None = None,
) -> tuple[Any, Path, str]:
    """Compile one SOP against a server answering `replies`, reading at most 1 MiB an answer."""
    sops, out = _sops(tmp_path), tmp_path / "out"
    toml = "max_retries = 0\nrepair_attempts = 0\nmax_answer_mb = 1\n"
    (sops / "sopc.toml").write_text(f"{toml}stream = {str(stream).lower()}\n")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with LLMServer(**({"responder": responder} if responder else {})) as server:
        server.queue(*replies)
        args = ["compile", str(sops), "-o", str(out), "--base-url", server.base_url]
        result = CliRunner().invoke(app, [*args, "--model", "test-model", "--format", "json"])
        host = server.base_url.split("//", 1)[1].split("/", 1)[0]
    return result, out, host


def _assert_refused(result: Any, out: Path, host: str, reason: str) -> None:
    assert result.exit_code == 3, result.stdout + result.stderr
    (procedure,) = json.loads(result.stdout)["sops"][0]["procedures"]
    error = procedure["error"]
    assert f"{host}/v1/chat/completions: " in error and reason in error, error
    assert "\n" not in error and "Traceback" not in result.stdout + result.stderr
    assert not list((out / "routines").rglob("*.json")) if (out / "routines").exists() else True


@pytest.mark.parametrize("status", [200, 500])
def test_a_gzip_bomb_is_refused_after_the_cap_without_reading_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    """64 MiB inflated from 64 KB: an answer, or an error body, stops at max_answer_mb."""
    bomb = Reply(status=status, raw=_bomb(64 << 20), headers={"Content-Encoding": "gzip"})
    result, out, host = _compile(tmp_path, monkeypatch, bomb, stream=False)
    _assert_refused(result, out, host, "larger than 1 MiB (max_answer_mb)")


def test_a_gzip_bomb_answering_a_stream_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = Reply(raw=_bomb(64 << 20), headers={"Content-Encoding": "gzip"})
    result, out, host = _compile(tmp_path, monkeypatch, bomb, stream=True)
    _assert_refused(result, out, host, "larger than 1 MiB (max_answer_mb)")


def test_a_streamed_answer_past_the_cap_is_cut_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Server-sent events, uncompressed: the events are counted as they arrive."""
    draft = default_draft({})
    draft["title"] = "x" * (3 << 20)
    result, out, host = _compile(
        tmp_path, monkeypatch, Reply(body=completion(draft), pieces=6), stream=True
    )
    _assert_refused(result, out, host, "larger than 1 MiB (max_answer_mb)")


def test_an_unknown_content_encoding_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = Reply(raw=b"\x00" * 64, headers={"Content-Encoding": "br"})
    result, out, host = _compile(tmp_path, monkeypatch, reply, stream=False)
    _assert_refused(result, out, host, "content encoding 'br', which sopc does not read")


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
def test_a_compressed_answer_under_the_cap_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoding: str
) -> None:
    """Compression itself is fine: a gzip or deflate (with or without zlib header) answer."""
    wbits = {"gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS, "raw-deflate": -15}[encoding]
    header = "gzip" if encoding == "gzip" else "deflate"

    def compressed(request: dict[str, Any]) -> Reply:
        packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
        body = json.dumps(completion(default_draft(request))).encode()
        raw = packer.compress(body) + packer.flush()
        return Reply(raw=raw, headers={"Content-Encoding": header})

    result, out, _ = _compile(tmp_path, monkeypatch, stream=False, responder=compressed)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert list((out / "routines").rglob("*.json"))
