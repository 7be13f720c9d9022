"""`sopc review OUT --html FILE`: a self-contained page, checked as text and in a real browser."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sop_compiler.cli import app

REPO = Path(__file__).resolve().parents[1]
MERMAID_JS = (
    REPO / "tools" / "mermaid-check" / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
)

TOOLS = """\
tools:
  - name: lookup_order
    description: Look up an order.
    access: read
    parameters:
      type: object
      properties:
        order_id: {type: string, description: The order number.}
      required: [order_id]
  - name: create_ticket
    description: Open a ticket.
    access: write
"""
SOP = """\
Late delivery

1. Ask the customer for the order number.
2. Look up the order with `lookup_order`.
3. If the parcel is more than 5 days late, open a ticket with `create_ticket`.
4. Tell the customer <script>alert("sop")</script> the new delivery date.
"""


def _compile(tmp_path: Path) -> Path:
    sops = tmp_path / "sops"
    (sops / "shipping").mkdir(parents=True)
    (sops / "tools.yaml").write_text(TOOLS, encoding="utf-8")
    (sops / "shipping" / "late.txt").write_text(SOP, encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["compile", str(sops), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _review(out: Path, page: Path, *extra: str) -> str:
    result = CliRunner().invoke(app, ["review", str(out), "--html", str(page), *extra])
    assert result.exit_code == 0, result.output
    assert f"wrote {page}" in result.stdout
    return page.read_text(encoding="utf-8")


def test_the_page_links_steps_to_quotes_and_loads_nothing(tmp_path: Path) -> None:
    out = _compile(tmp_path)
    html = _review(out, tmp_path / "review.html")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html)  # nothing remote
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html  # SOP text is text
    for target in re.findall(r'class="src" href="#([^"]+)"', html):
        assert f'id="{target}"' in html  # every step's source link lands on its quote
    assert 'class="src"' in html
    assert "Ask the customer for the order number." in html
    # the write tool the catalog lets run unapproved: the warning and its step are highlighted
    assert re.search(r'<li id="[^"]+" class="warning"><span class="id">3a?</span>', html)
    assert "write_without_approval" in html
    assert "Mermaid source" in html and "flowchart TD" in html  # no script given: the source


def test_with_the_sop_folder_each_quote_sits_in_its_block(tmp_path: Path) -> None:
    out = _compile(tmp_path)
    html = _review(out, tmp_path / "review.html", "--sops", str(tmp_path / "sops"))
    blocks = re.findall(r'<div class="block ([a-z ]+)" data-block="(b\d+)">', html)
    # the title line cites nothing and says so; every step's block is cited
    assert blocks == [("text uncited", "b1")] + [("text", f"b{n}") for n in range(2, 6)]
    assert html.count("nothing cites this") == 1
    # the quote of step 2 comes right after the block it cites
    block = html.index("Look up the order with `lookup_order`.</div>")
    quote = html.index("<blockquote>Look up the order with `lookup_order`.</blockquote>")
    assert 0 < quote - block < 400
    code = (
        CliRunner()
        .invoke(
            app,
            [
                "review",
                str(out),
                "--html",
                str(tmp_path / "x.html"),
                "--sops",
                str(out / "REVIEW.md"),
            ],
        )
        .exit_code
    )
    assert code == 4  # not a folder


def test_review_refuses_a_folder_that_is_no_output(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["review", str(tmp_path), "--html", str(tmp_path / "r.html")])
    assert result.exit_code == 4
    assert "not an output folder of sopc compile" in result.stderr
    assert not (tmp_path / "r.html").exists()


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


needs_browser = pytest.mark.skipif(
    importlib.util.find_spec("playwright") is None
    or _browser() is None
    or not MERMAID_JS.is_file(),
    reason="needs the playwright package, a Chromium (apt-get install chromium) and mermaid "
    "(npm ci --prefix tools/mermaid-check)",
)


@needs_browser
def test_the_page_in_a_real_browser(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    out = _compile(tmp_path)
    page_file = tmp_path / "review.html"
    _review(out, page_file, "--mermaid-js", str(MERMAID_JS), "--sops", str(tmp_path / "sops"))
    shots = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_browser(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_file.as_uri())
            # Mermaid replaced the flowchart's source with a drawing
            page.wait_for_selector("pre.mermaid svg", timeout=30_000)
            assert page.locator("pre.mermaid svg").count() == page.locator("pre.mermaid").count()
            assert page.locator("pre.mermaid svg g.node").count() >= 4
            # a step's source link goes to its quote, which is then highlighted
            link = page.locator("a.src").first
            target = (link.get_attribute("href") or "").lstrip("#")
            link.click()
            assert page.evaluate("location.hash") == f"#{target}"
            assert page.locator(f"[id='{target}']").evaluate("e => e.matches(':target')")
            quote = page.locator(f"[id='{target}'] blockquote").inner_text()
            assert "order number" in quote.lower() or quote
            # the warning is highlighted on its step
            warned = page.locator("ol.steps li.warning").first
            colour = warned.evaluate("e => getComputedStyle(e).borderLeftColor")
            assert colour == "rgb(224, 161, 0)"
            assert errors == []
            assert all(url.startswith("file://") for url in requests), requests
            shot = shots / "review-page.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
