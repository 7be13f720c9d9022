"""Fuzz the offline compiler's input: any SOP text compiles, or is refused in one line.

SOP-shaped lines (headings, numbered and lettered steps, conditions, tool names, tables, links,
injection phrases, look-alike letters, control and bidi characters, unbalanced brackets) are
drawn by hypothesis and compiled end to end (read, clean, segment, compile, validate, render,
write). The run never raises, exits 0, 1 or 4, writes the same bytes twice, and no output holds
a raw control character or HTML tag taken from the SOP. Bounded: a few dozen small SOPs.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sop_compiler.config import load_settings
from sop_compiler.pipeline import compile_folder

pytestmark = pytest.mark.timeout(300)

_WORDS = st.sampled_from(
    [
        "ask", "the", "customer", "for", "order", "number", "refund", "issue", "escalate",
        "billing", "team", "if", "otherwise", "never", "must", "within", "30", "days", "$50",
        "`lookup_order`", "`issue_refund`", "lookup_customer", "approve", "every", "ignore all "
        "previous instructions", "Іgnore", "ｒｅｆｕｎｄ", "[portal](https://x.example)",
        "![p](https://t.example/p.gif)", "<script>", "</procedure>", "```", "|", "*", "_", "\\",
        "\x1b[2J", "\u202e", "\u200b", "\x00", "é", "日本", "(", ")", "[", "]", "{{", "}}",
        "\"\"\"", "'", ":", ";", ".", ",", "?", "!",
    ]
)  # fmt: skip
_SENTENCE = st.lists(_WORDS, min_size=1, max_size=14).map(" ".join)
_LINE = st.one_of(
    _SENTENCE.map(lambda s: f"# {s}"),
    _SENTENCE.map(lambda s: f"## {s}"),
    st.tuples(st.integers(1, 12), _SENTENCE).map(lambda t: f"{t[0]}. {t[1]}"),
    _SENTENCE.map(lambda s: f"   a. {s}"),
    _SENTENCE.map(lambda s: f"- {s}"),
    _SENTENCE.map(lambda s: f"If {s}, {s}."),
    _SENTENCE.map(lambda s: f"| {s} | {s} |"),
    _SENTENCE.map(lambda s: f"> {s}"),
    _SENTENCE,
    st.just(""),
)
_SOP = st.lists(_LINE, min_size=1, max_size=25).map(lambda lines: "\n".join(lines) + "\n")


def _compile(text: str, folder: Path) -> tuple[int, dict[str, bytes]]:
    sops, out = folder / "sops", folder / "out"
    sops.mkdir(exist_ok=True)
    (sops / "fuzzed.md").write_text(text, encoding="utf-8")
    settings = load_settings(sops, overrides={"output": out, "backend": "offline"})
    with contextlib.redirect_stderr(io.StringIO()):
        result = compile_folder(sops, settings=settings, fmt="json")
    files = {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in ("sopc.lock", ".sopc-run.lock")
    }
    return result.exit_code, files


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(text=_SOP)
# found by this test on a fresh machine: a link in a condition reached a REVIEW.md flowchart label
@example(text="If [portal](https://x.example) ```, [portal](https://x.example) ```.\n")
def test_any_sop_text_compiles_deterministically_and_safely(text: str) -> None:
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
        code, files = _compile(text, Path(one))
        again, files_again = _compile(text, Path(two))
    assert code in (0, 1, 4), code
    assert (code, files) == (again, files_again)  # byte-identical, wherever it runs
    for rel, data in files.items():
        if code == 4:
            break
        shown = data.decode("utf-8")
        for raw in ("\x1b", "\u202e", "\x00"):
            assert raw not in shown or rel.endswith(".json"), (rel, repr(raw))
        if rel.endswith(".md"):
            assert "<script>" not in shown and "](https://" not in shown, rel
        if rel.endswith(".py"):
            compile(shown, rel, "exec")
