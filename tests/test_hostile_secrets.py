"""Key leaks (issue 17): a base URL's user info and key parameters never reach a message."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sop_compiler.cli import app
from sop_compiler.errors import redact_url

REPO = Path(__file__).resolve().parents[1]
BAD = "htp://alice:s3cretpass@host/v1?key=abcdefgh123&api_key=zyxwvut987"
SECRETS = ("alice", "s3cretpass", "abcdefgh123", "zyxwvut987")


@pytest.mark.parametrize("where", ["flag", "env", "toml"])
def test_a_mistyped_base_url_is_redacted_wherever_it_comes_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    sops = tmp_path / "sops"
    (sops / "billing").mkdir(parents=True)
    (sops / "billing" / "a.md").write_text("# R\n\n## Do\n\n1. Ask the customer for the order.\n")
    (sops / "tools.yaml").write_bytes((REPO / "sample_sops" / "tools.yaml").read_bytes())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    args = ["compile", str(sops), "-o", str(tmp_path / "out"), "--backend", "openai"]
    if where == "flag":
        args += ["--base-url", BAD]
    elif where == "env":
        monkeypatch.setenv("SOPC_BASE_URL", BAD)
    else:
        (sops / "sopc.toml").write_text(f'base_url = "{BAD}"\n')
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    shown = result.stdout + (result.stderr if result.stderr_bytes is not None else "")
    assert "htp://host/v1" in shown  # the user still sees which URL is wrong
    for secret in SECRETS:
        assert secret not in shown


def test_redact_url_keeps_an_ordinary_url_whole() -> None:
    assert redact_url("http://localhost:8000/v1") == "http://localhost:8000/v1"
    assert redact_url(BAD) == "htp://host/v1"
    assert redact_url("https://u:p@h.example/v1#frag") == "https://h.example/v1"


KEY = "sk-test-ECHOED-KEY-4f9a2b7c"


def test_a_model_answer_echoing_the_key_is_written_scrubbed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llm_server import LLMServer, completion, default_draft

    def echo(body: dict[str, object]) -> dict[str, object]:
        draft = default_draft(body)  # type: ignore[arg-type]
        draft["title"] = f"Refunds (Bearer {KEY})"
        for step in draft.get("steps", []):
            step["text"] = f"{step['text']} Authorization: Bearer {KEY}"
        return completion(draft)

    sops, out = tmp_path / "sops", tmp_path / "out"
    (sops / "billing").mkdir(parents=True)
    (sops / "billing" / "a.md").write_text(
        "# Refunds\n\n## Issue a refund\n\n1. Ask the customer for the order number.\n"
    )
    (sops / "tools.yaml").write_bytes((REPO / "sample_sops" / "tools.yaml").read_bytes())
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with LLMServer(responder=echo) as server:
        args = ["compile", str(sops), "-o", str(out), "--base-url", server.base_url]
        result = CliRunner().invoke(app, [*args, "--model", "test-model", "--jobs", "1"])
        assert server.chat_requests and server.chat_requests[0].authorization == f"Bearer {KEY}"
    written = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert any(b"Authorization: Bearer ***" in data for data in written.values()), result.stdout
    for path, data in written.items():
        assert KEY.encode() not in data and b"ECHOED-KEY" not in data, path
    assert KEY not in result.stdout
