"""Mutation tests: change one sentence of a sample SOP, compile offline, and eval must fail.

Each mutation is a copy of sample_sops/ (with its reviewed scenarios) and of generated_routines/
in tmp_path, one sentence removed or changed; `compile_folder` regenerates only that SOP with the
offline backend, and `sopc eval` must then exit 1, naming a scenario of the mutated routine and
what differs. The unmutated copy passes, so each failure is the mutation's doing.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sop_compiler.cli import app
from sop_compiler.config import load_settings
from sop_compiler.pipeline import compile_folder

REPO = Path(__file__).resolve().parents[1]

# (SOP file, what the sentence says, pattern, replacement, routine, a difference eval must name)
MUTATIONS = [
    pytest.param(
        "account/password-reset.md",
        r"If verification fails three times",
        "If verification fails five times",
        "account/password-reset",
        "step 2c now asks 'verification fails five times', the scenario decided "
        "'verification fails three times'",
        id="threshold-password-reset-attempts",
    ),
    pytest.param(
        "billing/invoice-corrections.md",
        r"the difference is over \$100",
        "the difference is over $500",
        "billing/invoice-corrections",
        "step 2i now asks 'the difference is over $500', the scenario decided "
        "'the difference is over $100'",
        id="threshold-invoice-supervisor-limit",
    ),
    pytest.param(
        "shipping/lost-or-damaged-package.md",
        r" If the order total is over\s+\$300, escalate to the Shipping Supervisor queue for "
        r"approval before you reship\.",
        "",
        "shipping/lost-or-damaged-package--package-reported-lost",
        '- create_ticket(team="Shipping Supervisor queue")',
        id="escalation-removed-lost-parcel-over-300",
    ),
    pytest.param(
        "tech_support/internet-outage-troubleshooting.txt",
        r" If there is a known outage, tell the customer the estimated\s+fix time and go to "
        r"step 9\.",
        "",
        "tech_support/internet-outage-troubleshooting",
        "decision names step 2a, which no longer exists",
        id="branch-removed-known-outage",
    ),
    pytest.param(
        "shipping/returns-and-exchanges.html",
        r"transfer the customer to Tech Support for a fault check",
        "transfer the customer to Billing for a fault check",
        "shipping/returns-and-exchanges--accepting-a-return",
        "ending: expected handoff to tech_support, actual handoff to billing (step 2e)",
        id="handoff-changed-faulty-return",
    ),
    pytest.param(
        "tech_support/device-setup.txt",
        r"book an engineer visit with\s+`schedule_technician` and tell",
        "tell",
        "tech_support/device-setup",
        "- schedule_technician(",
        id="tool-step-removed-engineer-visit",
    ),
]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sample_sops/ and generated_routines/ copied once; each test copies this pair again."""
    base = tmp_path_factory.mktemp("baseline")
    shutil.copytree(REPO / "sample_sops", base / "sops")
    shutil.copytree(REPO / "generated_routines", base / "out")
    return base


def _eval(sops: Path, out: Path) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, ["eval", str(sops), "-o", str(out), "--format", "json"])
    return result.exit_code, json.loads(result.stdout)


def _copy(baseline: Path, tmp_path: Path) -> tuple[Path, Path]:
    sops, out = tmp_path / "sops", tmp_path / "out"
    shutil.copytree(baseline / "sops", sops)
    shutil.copytree(baseline / "out", out)
    return sops, out


def _compile(sops: Path, out: Path) -> Any:
    settings = load_settings(sops, overrides={"output": out, "backend": "offline"})
    return compile_folder(sops, settings=settings)


def test_the_unmutated_copy_passes(baseline: Path, tmp_path: Path) -> None:
    sops, out = _copy(baseline, tmp_path)
    result = _compile(sops, out)
    assert result.exit_code == 0
    code, report = _eval(sops, out)
    assert code == 0 and report["summary"]["failed"] == 0


@pytest.mark.parametrize(("sop", "pattern", "replacement", "routine", "difference"), MUTATIONS)
def test_a_one_sentence_mutation_fails_eval_naming_the_scenario(
    baseline: Path,
    tmp_path: Path,
    sop: str,
    pattern: str,
    replacement: str,
    routine: str,
    difference: str,
) -> None:
    sops, out = _copy(baseline, tmp_path)
    path = sops / sop
    text = path.read_text(encoding="utf-8")
    mutated, count = re.subn(pattern, replacement, text)
    assert count == 1, f"the sentence to mutate is not in {sop}"
    path.write_text(mutated, encoding="utf-8")

    result = _compile(sops, out)
    assert result.exit_code == 0, "the mutated SOP must compile without error"
    code, report = _eval(sops, out)

    assert code == 1
    failed = [r for r in report["results"] if r["status"] == "failed"]
    assert failed and {r["routine"] for r in failed} == {routine}
    assert all(r["name"] and r["file"].endswith(f"{routine}.yaml") for r in failed)
    named = ["\n".join(r["differences"]) for r in failed]
    assert any(difference in text for text in named), named[0]
