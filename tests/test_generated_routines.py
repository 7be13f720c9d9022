"""generated_routines/ is the committed output for sample_sops/: it must be current."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sop_compiler.cli import app

REPO = Path(__file__).resolve().parents[1]


def test_generated_routines_are_current() -> None:
    """Fails when an SOP, the catalog, a template or the compiler changed without a regeneration.

    Fix: `sopc compile sample_sops -o generated_routines` and commit the result.
    """
    result = CliRunner().invoke(
        app,
        [
            "check",
            str(REPO / "sample_sops"),
            "-o",
            str(REPO / "generated_routines"),
            "--format",
            "json",
        ],
    )
    report = json.loads(result.stdout)
    assert result.exit_code == 0, report["stale"]
    assert report["stale"] == []
