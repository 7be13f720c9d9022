"""`sopc inspect`: what a user sees, end to end through the readers, clean and segment."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sop_compiler.models import (
    Document,
    Figure,
    Heading,
    ImageRef,
    InspectResult,
    ListItem,
    Provenance,
    Removal,
    Table,
)

_READERS = ("sop_compiler.ingest.markdown", "sop_compiler.ingest.text")
needs_readers = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in _READERS),
    reason="the Markdown and text readers are not written yet",
)

REFUNDS_MD = """\
# Refunds SOP

Confidential – internal use only

## Table of Contents

- Purpose
- Issue a refund

## 1. Purpose

This SOP explains how agents handle
refund requests.

## 2. Issue a refund

1. Look up the order with `lookup_order`.
2. If the order is older than 90 days, escalate to Billing.
3. Issue the refund.

### Exceptions

- Gift cards are never refunded. [bold red]not markup[/]

## 3. Partial refund

1. Ask which items are damaged.
2. Refund those items.

## Revision history

| Version | Date | Author | Change |
|---|---|---|---|
| 1.0 | 2024-01-01 | JD | First |
"""


@pytest.fixture
def sops(tmp_path: Path) -> Path:
    folder = tmp_path / "sops" / "billing"
    folder.mkdir(parents=True)
    (folder / "refunds.md").write_text(REFUNDS_MD, encoding="utf-8")
    (folder / "lost.txt").write_text(
        "LOST PARCELS\n\n1. Track the parcel.\n2. Open a claim.\n\nPage 2 of 3\n", encoding="utf-8"
    )
    return tmp_path / "sops"


def _run(*args: str) -> tuple[int, str, str]:
    from sop_compiler.cli import app

    result = CliRunner().invoke(app, ["inspect", *args])
    return result.exit_code, result.stdout, result.stderr


@needs_readers
def test_json_shows_blocks_removals_and_procedures(sops: Path) -> None:
    code, out, err = _run("--format", "json", str(sops / "billing" / "refunds.md"))
    assert code == 0, err
    (result,) = json.loads(out)
    assert result["error"] is None
    document = result["document"]
    texts = [block.get("text") for block in document["blocks"]]
    assert "This SOP explains how agents handle refund requests." in texts  # broken line joined
    removed = {(item["rule"], item["text"]) for item in document["removals"]}
    assert ("toc", "Table of Contents") in removed
    assert ("boilerplate", "Confidential – internal use only") in removed
    assert any(rule == "revision_history" for rule, _ in removed)
    assert [p["id"] for p in result["procedures"]] == [
        "refunds--issue-a-refund",
        "refunds--partial-refund",
    ]
    issue = result["procedures"][0]
    assert issue["title"] == "Issue a refund"
    assert issue["heading_path"] == ["Refunds SOP", "Issue a refund"]
    ids = {block["id"]: block for block in document["blocks"]}
    exceptions = [ids[i] for i in issue["blocks"] if ids[i]["kind"] == "heading"]
    assert [h["text"] for h in exceptions] == ["Issue a refund", "Exceptions"]
    assert out == _run("--format", "json", str(sops / "billing" / "refunds.md"))[1]  # stable


@needs_readers
def test_text_output_is_plain_and_escapes_sop_text(sops: Path) -> None:
    code, out, err = _run(str(sops / "billing" / "refunds.md"))
    assert code == 0, err
    assert "\x1b[" not in out  # not a terminal and NO_COLOR: no colour codes
    assert "[bold red]not markup[/]" in out
    assert "Removed by clean" in out and "Procedures" in out
    assert "refunds--issue-a-refund" in out
    assert "1. Look up the order with `lookup_order`." in out
    assert "Table of Contents" in out.split("Removed by clean")[1]


@needs_readers
def test_folder_with_a_bad_file_reports_it_and_shows_the_rest(sops: Path) -> None:
    (sops / "billing" / "empty.md").write_bytes(b"")
    code, out, err = _run("--format", "json", str(sops))
    assert code == 4
    results = {item["source"]: item for item in json.loads(out)}
    assert sorted(results) == ["billing/empty.md", "billing/lost.txt", "billing/refunds.md"]
    assert results["billing/lost.txt"]["procedures"][0]["id"] == "lost"
    assert "error: billing/empty.md: file is empty" in err
    assert err.count("error:") == 1


def test_missing_file_is_one_line_on_stderr(tmp_path: Path) -> None:
    code, out, err = _run(str(tmp_path / "nope.md"))
    assert code == 4
    assert out == ""
    assert err.strip().startswith("error: ") and "nope.md" in err and "Traceback" not in err


def _document() -> Document:
    def prov(n: int, page: int | None = None) -> Provenance:
        return Provenance(file="billing/x.pdf", page=page or 1, paragraph=None if page else n)

    table = Table(id="b3", prov=prov(3, 2), header=["Limit", "Who"], rows=[["$50", "Agent"]] * 7)
    figure = Figure(
        id="b4",
        prov=prov(4, 3),
        image=ImageRef(sha256="f" * 64, mime="image/png", width=640, height=480),
        caption="Refund flow",
    )
    return Document(
        source="billing/x.pdf",
        format="pdf",
        sha256="0" * 64,
        page_count=3,
        blocks=[
            Heading(id="b1", prov=prov(1, 1), text="Refunds", level=1, number="3"),
            ListItem(
                id="b2", prov=prov(2, 1), text="Check it.", marker="a.", ordered=True, level=1
            ),
            table,
            figure,
        ],
        removals=[Removal(rule="page_number", reason="r", text="Page 2", prov=prov(9, 2))],
    )


def test_render_text_tables_figures_and_provenance(capsys: pytest.CaptureFixture[str]) -> None:
    from sop_compiler.render.inspect import render_inspect

    render_inspect([InspectResult(source="billing/x.pdf", document=_document())], fmt="text")
    out = capsys.readouterr().out
    assert "# 3 Refunds  b1 p.1" in out
    assert "  a. Check it.  b2 p.1" in out
    assert "[figure] Refund flow (image 640x480, unread)  b4 p.3" in out
    assert "Limit" in out and "… 2 more rows" in out
    assert "page_number" in out and "billing/x.pdf p.2" in out


def test_render_json_lists_errors_and_sorts_by_source(capsys: pytest.CaptureFixture[str]) -> None:
    from sop_compiler.render.inspect import render_inspect

    results = [
        InspectResult(source="z.md", error="z.md: file is empty"),
        InspectResult(source="billing/x.pdf", document=_document()),
    ]
    render_inspect(results, fmt="json")
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert [item["source"] for item in payload] == ["billing/x.pdf", "z.md"]
    error = "z.md: file is empty"
    assert payload[1] == {
        "source": "z.md",
        "document": None,
        "procedures": [],
        "sections": [],
        "error": error,
    }
    assert captured.err == "error: z.md: file is empty\n"
