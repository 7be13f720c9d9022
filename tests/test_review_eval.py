"""REVIEW.md's Paths section: each routine's paths as `sopc paths` numbers them and `sopc eval`
names them, from the routines alone (so scenario edits never make the outputs stale)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sop_compiler.cli import app

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def compiled(tmp_path: Path) -> tuple[Path, Path]:
    sops = tmp_path / "sops"
    (sops / "billing").mkdir(parents=True)
    shutil.copy(REPO / "sample_sops/tools.yaml", sops / "tools.yaml")
    shutil.copy(REPO / "sample_sops/billing/refunds-and-credits.pdf", sops / "billing")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["compile", str(sops), "-o", str(out), "--backend", "offline"])
    assert result.exit_code == 0, result.output
    return sops, out


def _eval_section(review: str, title: str) -> str:
    routine = review[review.index(f"## Billing: {title}") :]
    start = routine.index("### Paths\n")
    end = routine.index("\n### ", start + 1)
    return routine[start:end]


def _lines(section: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^\d+\. (.+)$", section, re.MULTILINE)]


def test_the_eval_section_lists_the_paths_sopc_paths_walks(compiled: tuple[Path, Path]) -> None:
    sops, out = compiled
    review = (out / "REVIEW.md").read_text(encoding="utf-8")
    listed = CliRunner().invoke(app, ["paths", str(sops), "-o", str(out), "--format", "json"])
    views = {view["routine"]: view for view in json.loads(listed.stdout)}
    credit = views["refunds-and-credits--applying-an-account-credit"]
    section = _eval_section(review, "Applying an account credit")
    assert section.startswith(
        f"### Paths\n\n{len(credit['paths'])} paths from the first step to an end"
    )
    lines = _lines(section)
    assert len(lines) == len(credit["paths"])
    for line, path in zip(lines, credit["paths"], strict=True):
        ways = ", ".join(way.split(":", 1)[0] for way in path["ways"]) or "no branch"
        tools = ", ".join(call.split("(", 1)[0] for call in path["calls"]) or "no tool call"
        assert line.replace("\\_", "_") == f"{ways} → {tools} → {path['ending']}"
    # over the limit shown: the first 40, and the count says how many there are
    refund = views["refunds-and-credits--issuing-a-refund"]
    big = _eval_section(review, "Issuing a refund")
    assert len(refund["paths"]) > 40 and len(_lines(big)) == 40
    assert big.startswith(f"### Paths\n\nThe first 40 of {len(refund['paths'])} paths")
    assert "`sopc eval` reports it" in big


def test_eval_names_uncovered_paths_as_review_does_and_scenarios_never_stale_it(
    compiled: tuple[Path, Path],
) -> None:
    sops, out = compiled
    review = (out / "REVIEW.md").read_bytes()
    drafted = CliRunner().invoke(app, ["scenarios", str(sops), "-o", str(out)])
    assert drafted.exit_code == 0, drafted.output
    ran = CliRunner().invoke(app, ["eval", str(sops), "-o", str(out), "--format", "json"])
    uncovered = [
        path for entry in json.loads(ran.stdout)["coverage"] for path in entry["uncovered"]
    ]
    lines = _lines(_eval_section(review.decode(), "Applying an account credit"))
    ways = {line.split(" → ", 1)[0] for line in lines}
    assert ways and ways <= {path.split(" -> ", 1)[0] for path in uncovered}
    # eval numbers an uncovered path as REVIEW.md does, and counts the drafts waiting for review
    [credit] = [
        e for e in json.loads(ran.stdout)["coverage"] if e["routine"].endswith("account-credit")
    ]
    assert credit["uncovered_numbers"] == list(range(1, len(lines) + 1))
    assert credit["drafts"] == len(lines)
    for number, path in zip(credit["uncovered_numbers"], credit["uncovered"], strict=True):
        assert lines[number - 1].split(" → ", 1)[0] == path.split(" -> ", 1)[0]
    text = CliRunner().invoke(app, ["eval", str(sops), "-o", str(out)]).stdout
    assert "uncovered: billing/refunds-and-credits--applying-an-account-credit: paths 1, 2, 3" in (
        text
    )
    assert (
        f"of {len(lines)} (numbered as in `sopc paths` and REVIEW.md); {len(lines)} drafts" in text
    )
    # scenario files are inputs of eval, not of REVIEW.md: check finds the outputs current
    checked = CliRunner().invoke(app, ["check", str(sops), "-o", str(out)])
    assert "stale scenario:" in checked.stderr  # drafts only: no path has a reviewed scenario
    assert "REVIEW.md" not in checked.output
    again = CliRunner().invoke(app, ["compile", str(sops), "-o", str(out), "--backend", "offline"])
    assert again.exit_code == 0 and (out / "REVIEW.md").read_bytes() == review  # byte-stable
