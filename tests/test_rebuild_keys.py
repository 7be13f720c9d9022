"""Keys follow real dependencies: each rule of lock/staleness.py, counted in model requests.

Every test compiles against the local OpenAI-compatible test server (real openai client, real
HTTP) with the response cache off, so each request the server counts is a call a user would pay.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer, completion, default_draft

from sop_compiler.config import load_settings
from sop_compiler.models import RunResult
from sop_compiler.pipeline import compile_folder

REFUNDS = """# Refunds

## Issue a refund

1. Ask the customer for the order number.
2. Look up the order with the order lookup.
3. Tell the customer the refund is on its way.
"""

LOST = """# Lost parcel

## Report a lost parcel

1. Ask for the tracking number.
2. Track the shipment in the carrier portal.
3. Tell the customer what the carrier says.
"""

RESET = """# Password reset

## Reset a password

1. Ask the customer for the account email.
2. Hand the customer over to billing when the account is unpaid.
"""

SETUP = """# Router setup

## Set up a router

1. Ask which router the customer has.
2. Walk the customer through the setup.
"""

LOOKUP_ORDER = {
    "name": "lookup_order",
    "description": "Look up an order by its order number and return its status.",
    "access": "read",
    "parameters": {
        "type": "object",
        "properties": {"order_id": {"type": "string", "description": "The order number."}},
        "required": ["order_id"],
    },
}
SEND_EMAIL = {
    "name": "send_email",
    "description": "Send an email to the customer.",
    "access": "write",
    "parameters": {"type": "object", "properties": {"to": {"type": "string"}}, "required": []},
}
TRACK = {
    "name": "carrier_tracking",
    "description": "Track a shipment with the carrier by its tracking number.",
    "access": "read",
    "aliases": ["track_shipment"],
    "parameters": {
        "type": "object",
        "properties": {"tracking_number": {"type": "string"}},
        "required": ["tracking_number"],
    },
}


def _step(id_: str, kind: str, text: str, **more: Any) -> dict[str, Any]:
    return {"id": id_, "kind": kind, "text": text, **more}


def responder(body: dict[str, Any]) -> dict[str, Any]:
    """A model that uses lookup_order for refunds, proposes a tracking tool for lost parcels
    (or calls it once the catalog has it), and hands password resets off to billing."""
    draft = default_draft(body)
    text = "\n".join(
        m["content"]
        if isinstance(m["content"], str)
        else "\n".join(part.get("text", "") for part in m["content"])
        for m in body.get("messages", [])
    )
    title = re.findall(r"^Title: (.+)$", text, re.MULTILINE)[-1].casefold()
    cite = draft["steps"][0]
    end = [
        _step("8", "ask", "Ask whether there is anything else you can help with."),
        _step("9", "resolve", "Resolve the case."),
    ]
    if "refund" in title:
        draft["collect"] = [{"name": "order_id", "description": "the order", "origin": "customer"}]
        draft["steps"] = [
            {**cite, "kind": "ask", "collects": ["order_id"]},
            _step(
                "2",
                "tool_call",
                "Call `lookup_order`.",
                tool_call={
                    "tool": "lookup_order",
                    "arguments": [{"name": "order_id", "slot": "order_id"}],
                },
            ),
            *end,
        ]
    elif "lost" in title:
        if "`carrier_tracking(" in text:
            draft["steps"] = [
                cite,
                _step(
                    "2",
                    "tool_call",
                    "Call `carrier_tracking`.",
                    tool_call={
                        "tool": "carrier_tracking",
                        "arguments": [{"name": "tracking_number", "from_context": "the number"}],
                    },
                ),
                *end,
            ]
        else:
            draft["tools_proposed"] = [
                {
                    "name": "track_shipment",
                    "description": "Track a shipment by its tracking number.",
                    "access": "read",
                    "step_ids": ["1"],
                }
            ]
    elif "password" in title:
        draft["steps"] = [
            cite,
            _step("2", "handoff", "Hand off to billing.", target="Billing agent"),
        ]
    for number, step in enumerate(draft["steps"], start=1):
        step["id"] = str(number)
    return completion(draft)


def write_catalog(sops: Path, *tools: dict[str, Any]) -> None:
    (sops / "tools.yaml").write_text(json.dumps({"tools": list(tools)}), encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    sops = tmp_path / "sops"
    for rel, text in {
        "billing/refunds.md": REFUNDS,
        "shipping/lost.md": LOST,
        "account/reset.md": RESET,
    }.items():
        (sops / rel).parent.mkdir(parents=True, exist_ok=True)
        (sops / rel).write_text(text, encoding="utf-8")
    write_catalog(sops, LOOKUP_ORDER)
    return sops


class Counted:
    """Compile (or check) against the test server; `calls` is the requests the last run sent."""

    def __init__(self, sops: Path, server: LLMServer) -> None:
        self.sops = sops
        self.server = server
        self.calls = 0

    def __call__(self, *, check: bool = False) -> RunResult:
        settings = load_settings(
            self.sops,
            overrides={
                "output": self.sops.parent / "out",
                "backend": "openai",
                "base_url": self.server.base_url,
                "model": "test-model",
                "cache": False,
            },
        )
        before = len(self.server.chat_requests)
        result = compile_folder(self.sops, settings=settings, check=check)
        self.calls = len(self.server.chat_requests) - before
        return result


@pytest.fixture
def compile_(project: Path) -> Any:
    with LLMServer(responder=responder) as server:
        counted = Counted(project, server)
        first = counted()
        assert counted.calls == 3 and first.exit_code == 0, first.model_dump_json(indent=1)
        assert counted().written == [] and counted.calls == 0  # a no-op
        yield counted


def stale_details(result: RunResult) -> list[str]:
    return [f"{entry.path}: {entry.detail}" for entry in result.stale if entry.reason == "stale"]


def test_an_sop_in_a_new_folder_costs_only_its_own_calls(compile_: Counted) -> None:
    (compile_.sops / "tech").mkdir()
    (compile_.sops / "tech/setup.md").write_text(SETUP, encoding="utf-8")
    check = compile_(check=True)
    assert [(e.path, e.reason) for e in check.stale] == [("tech/setup.md", "new")]
    compile_()
    assert compile_.calls == 1
    # ... and removing it again costs nothing.
    shutil.rmtree(compile_.sops / "tech")
    result = compile_()
    assert compile_.calls == 0 and result.exit_code == 0
    assert not any(p.startswith("routines/tech/") for p in _outputs(compile_.sops))


def test_an_unused_tool_costs_no_call(compile_: Counted) -> None:
    write_catalog(compile_.sops, LOOKUP_ORDER, SEND_EMAIL)
    # No routine is stale; only the network's tools module and the review page show the tool.
    assert [e.path for e in compile_(check=True).stale] == ["REVIEW.md"]
    result = compile_()
    assert compile_.calls == 0 and result.exit_code == 0


def test_a_tool_that_covers_a_proposal_regenerates_only_that_routine(compile_: Counted) -> None:
    write_catalog(compile_.sops, LOOKUP_ORDER, TRACK)
    details = stale_details(compile_(check=True))
    assert details == [
        "shipping/lost.md: lost: catalog tool `carrier_tracking` now "
        "covers proposed tool `track_shipment`"
    ]
    result = compile_()
    assert compile_.calls == 1 and result.exit_code == 0
    routine = _routine(compile_.sops, "shipping", "lost")
    assert routine["tools_used"] == ["carrier_tracking"] and routine["tools_proposed"] == []
    assert compile_().written == [] and compile_.calls == 0


def test_a_changed_tool_revalidates_and_regenerates_only_what_now_fails(
    compile_: Counted,
) -> None:
    # A new description: the routine that uses it is re-validated and re-rendered, no call.
    edited = {**LOOKUP_ORDER, "description": "Find an order by its number."}
    write_catalog(compile_.sops, edited)
    details = stale_details(compile_(check=True))
    assert details == [
        "billing/refunds.md: refunds: catalog tool `lookup_order` changed: "
        "re-validated without a model call (regenerated only if it now fails)"
    ]
    result = compile_()
    assert compile_.calls == 0 and result.exit_code == 0
    # A renamed parameter: the routine now fails validation, so it (and only it) regenerates.
    renamed = {
        **edited,
        "parameters": {
            "type": "object",
            "properties": {"order_number": {"type": "string"}},
            "required": ["order_number"],
        },
    }
    write_catalog(compile_.sops, renamed)
    compile_()
    assert compile_.calls >= 1
    asked = compile_.server.chat_requests[-compile_.calls :]
    assert all("Title: Issue a refund" in r.messages_text() for r in asked)


def test_a_removed_agent_regenerates_the_routines_that_hand_off_to_it(compile_: Counted) -> None:
    shutil.rmtree(compile_.sops / "billing")
    result = compile_()
    asked = compile_.server.chat_requests[-compile_.calls :] if compile_.calls else []
    assert compile_.calls >= 1
    assert all("Title: Reset a password" in r.messages_text() for r in asked)
    assert result.exit_code in (0, 1)
    # The lost-parcel routine (no handoff) was not asked again.
    assert not any("Title: Lost parcel" in r.messages_text() for r in asked)


def test_check_names_the_model_when_it_changed(compile_: Counted, project: Path) -> None:
    (project / "sopc.toml").write_text('model = "other-model"\n', encoding="utf-8")
    settings = load_settings(
        project,
        overrides={
            "output": project.parent / "out",
            "backend": "openai",
            "base_url": compile_.server.base_url,
            "cache": False,
        },
    )
    check = compile_folder(project, settings=settings, check=True)
    details = stale_details(check)
    assert len(details) == 3
    assert all("the model changed (test-model -> other-model)" in d for d in details)


def test_the_ocr_engine_is_part_of_a_scanned_pages_key(
    compile_: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sop_compiler.ingest import image
    from sop_compiler.ingest.ocr import OcrResult, layout_text
    from sop_compiler.lock import staleness

    shutil.copy(
        Path(__file__).resolve().parents[1] / "sample_sops/account/identity-verification-scan.png",
        compile_.sops / "account/id-check.png",
    )
    # First a machine without an OCR engine.
    monkeypatch.setattr(image, "ocr_read", lambda data, engine="auto": None)
    monkeypatch.setattr(staleness, "_ocr_identity", lambda setting: "none")
    compile_()
    assert compile_.calls == 1
    lock = json.loads((compile_.sops.parent / "out/sopc.lock").read_text())
    assert lock["sops"]["account/id-check.png"]["ocr"] == "none"
    assert lock["sops"]["account/reset.md"]["ocr"] is None  # plain text never depends on OCR

    # Another machine has an engine: what its scanned page reads as is not current any more.
    text = "Verify identity\n\n1. Ask the customer for the account email.\n2. Send the code."
    monkeypatch.setattr(
        image,
        "ocr_read",
        lambda data, engine="auto": OcrResult("tesseract", tuple(layout_text(text))),
    )
    monkeypatch.setattr(staleness, "_ocr_identity", lambda setting: "tesseract 5.3.0")
    check = compile_(check=True)
    assert any(e.path == "account/id-check.png" for e in check.stale), check.stale
    assert all(e.path in ("account/id-check.png", "REVIEW.md") for e in check.stale), check.stale
    result = compile_()
    asked = compile_.server.chat_requests[-compile_.calls :] if compile_.calls else []
    assert compile_.calls >= 1 and result.exit_code in (0, 1)
    assert all("id-check.png" in r.messages_text() for r in asked)
    lock = json.loads((compile_.sops.parent / "out/sopc.lock").read_text())
    assert lock["sops"]["account/id-check.png"]["ocr"] == "tesseract 5.3.0"


def _outputs(sops: Path) -> list[str]:
    out = sops.parent / "out"
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def _routine(sops: Path, agent: str, routine_id: str) -> dict[str, Any]:
    path = sops.parent / "out" / "routines" / agent / f"{routine_id}.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_check_explain_prints_the_parts_of_each_stale_key(compile_: Counted, project: Path) -> None:
    from typer.testing import CliRunner

    from sop_compiler.cli import app

    write_catalog(project, {**LOOKUP_ORDER, "description": "Find an order."})
    (project / "sopc.toml").write_text('model = "test-model"\n', encoding="utf-8")
    out = str(project.parent / "out")
    args = ["check", str(project), "-o", out, "--explain", "--format", "json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    stale = json.loads(result.stdout)["stale"]
    entry = next(e for e in stale if "catalog tool `lookup_order` changed" in e["detail"])
    parts = entry["parts"]
    assert parts[0].startswith("text: ") and "(was" not in parts[0]
    assert any(p.startswith("backend: backend=openai model=test-model") for p in parts)
    changed = [p for p in parts if p.startswith("tool lookup_order: ")]
    assert len(changed) == 1 and "(was " in changed[0]
    assert all("(was" not in p for p in parts if not p.startswith("tool lookup_order"))


def test_compile_names_what_changed_per_routine(compile_: Counted) -> None:
    (compile_.sops / "shipping/lost.md").write_text(LOST + "4. Thank the customer.\n")
    result = compile_()
    reasons = {p.procedure_id: p.reason for s in result.sops for p in s.procedures}
    assert reasons == {"lost": "the SOP text changed", "refunds": None, "reset": None}


@pytest.mark.parametrize(
    ("name", "description", "covered"),
    [
        ("carrier_tracking", "anything", "carrier_tracking"),  # same name
        ("track_shipment", "anything", "carrier_tracking"),  # an alias
        ("tracking_carrier", "anything", "carrier_tracking"),  # the same words
        ("parcel_status", "Track a shipment by its tracking number.", "carrier_tracking"),
        ("send_sms", "Send a text message to the customer.", None),
        ("refund_order", "Refund the order.", None),
    ],
)
def test_which_catalog_tool_covers_a_proposed_one(
    name: str, description: str, covered: str | None
) -> None:
    from sop_compiler.lock.staleness import covering_tool
    from sop_compiler.models import Tool

    tools = [Tool.model_validate(LOOKUP_ORDER), Tool.model_validate(TRACK)]
    assert covering_tool(name, description, tools) == covered


def test_a_moved_sop_costs_only_its_own_calls(compile_: Counted) -> None:
    (compile_.sops / "account/lost.md").write_text(LOST, encoding="utf-8")
    (compile_.sops / "shipping/lost.md").unlink()
    (compile_.sops / "shipping").rmdir()
    result = compile_()
    asked = compile_.server.chat_requests[-compile_.calls :] if compile_.calls else []
    assert compile_.calls == 1 and result.exit_code == 0
    assert "Agent group: account" in asked[0].messages_text()
    assert "routines/account/lost.json" in _outputs(compile_.sops)
    assert not any(p.startswith("routines/shipping/") for p in _outputs(compile_.sops))


def test_compile_says_why_a_routine_was_regenerated_after_revalidation(compile_: Counted) -> None:
    renamed = {
        **LOOKUP_ORDER,
        "parameters": {"type": "object", "properties": {"order_number": {"type": "string"}}},
    }
    write_catalog(compile_.sops, renamed)
    result = compile_()
    reasons = {p.procedure_id: p.reason for s in result.sops for p in s.procedures}
    assert reasons["refunds"] is not None
    assert reasons["refunds"].startswith("catalog tool `lookup_order` changed, and it now fails (")
    assert reasons["lost"] is None and reasons["reset"] is None
