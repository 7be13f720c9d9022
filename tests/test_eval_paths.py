"""`sopc paths`: every path of every routine, as a reviewer reads it, and the checks over paths."""

from __future__ import annotations

import json
from pathlib import Path

from test_eval import GOOD, REFUND, call, cond, project, routine, run, scenarios, step


def test_paths_lists_each_way_its_calls_and_ending(tmp_path: Path) -> None:
    r = routine(
        "refund",
        [call("1", "lookup_order", order_id="A"),
         cond("2", "the amount is over $200", "3", "4"),
         step("3", "escalate", target="Billing Supervisor queue"),
         call("4", "issue_refund", order_id="A"), step("5", "resolve")],
    )  # fmt: skip
    sops, out = project(tmp_path, r)
    shown = run("paths", str(sops), "-o", str(out))
    assert shown.exit_code == 0, shown.output
    assert "billing/refund: 2 paths" in shown.output
    assert "2 then: the amount is over $200" in shown.output
    assert "ends: escalate to Billing Supervisor queue" in shown.output
    data = json.loads(run("paths", str(sops), "-o", str(out), "--format", "json").output)
    (view,) = data
    assert [p["ending"] for p in view["paths"]] == [
        "escalate to Billing Supervisor queue",
        "resolve",
    ]
    assert view["paths"][1]["calls"] == ['lookup_order(order_id="A")', 'issue_refund(order_id="A")']
    assert view["checks"] == []


def test_a_write_twice_on_one_path_is_a_warning_and_a_path_with_no_end_an_error(
    tmp_path: Path,
) -> None:
    twice = routine(
        "twice",
        [cond("1", "the item is unusable", "2", "3"), call("2", "issue_refund", order_id="A"),
         cond("3", "the damage is cosmetic", "4", "5"), call("4", "issue_refund", order_id="A"),
         step("5", "resolve")],
    )  # fmt: skip
    sops, out = project(tmp_path, twice)
    shown = run("paths", str(sops), "-o", str(out))
    assert shown.exit_code == 0  # a warning: sometimes meant ("send the link once more")
    assert "warning repeated_write: path 1 calls the write tool `issue_refund` twice" in (
        shown.output
    )
    falls = routine("falls", [call("1", "lookup_order", order_id="A")])
    (tmp_path / "b").mkdir()
    sops, out = project(tmp_path / "b", falls)
    shown = run("paths", str(sops), "-o", str(out))
    assert shown.exit_code == 1
    assert "error no_ending: path 1 stops without an ending" in shown.output


def test_paths_on_a_folder_with_no_routines_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "sops").mkdir()
    shown = run("paths", str(tmp_path / "sops"), "-o", str(tmp_path / "nothing"))
    assert shown.exit_code == 2
    assert "no routines here" in shown.output and "Traceback" not in shown.output


# --- eval --baseline ---------------------------------------------------------------------------


def test_baseline_fails_naming_the_scenario_that_passed_before_and_passes_when_nothing_dropped(
    tmp_path: Path,
) -> None:
    sops, out = project(tmp_path, REFUND)
    scenarios(sops, "billing", "refund", GOOD)
    stored = run("eval", str(sops), "-o", str(out), "--format", "json")
    assert stored.exit_code == 0
    baseline = tmp_path / "baseline.json"
    baseline.write_text(stored.output)
    same = run("eval", str(sops), "-o", str(out), "--baseline", str(baseline))
    assert same.exit_code == 0 and "regression" not in same.output
    # the routine changes: the small refund now goes over the supervisor limit
    target = out / "routines" / "billing" / "refund.json"
    text = target.read_text().replace('"else_step": "4"', '"else_step": "3a"')
    target.write_text(text)
    worse = run("eval", str(sops), "-o", str(out), "--baseline", str(baseline))
    assert worse.exit_code == 1
    assert "regression: scenario billing/refund: 'small refund' passed in the baseline" in (
        worse.output
    )
    assert "pass_rate dropped from 1 to 0.5" in worse.output


def test_a_baseline_that_is_not_eval_json_is_one_clear_line(tmp_path: Path) -> None:
    sops, out = project(tmp_path, REFUND)
    scenarios(sops, "billing", "refund", GOOD)
    bad = tmp_path / "notes.json"
    bad.write_text("[1, 2]")
    shown = run("eval", str(sops), "-o", str(out), "--baseline", str(bad))
    assert shown.exit_code == 2
    assert "not a baseline" in shown.output and "Traceback" not in shown.output


# --- check: scenarios that no longer fit their routine ------------------------------------------


def test_check_fails_on_a_scenario_naming_a_step_the_routine_no_longer_has(tmp_path: Path) -> None:
    import shutil

    repo = Path(__file__).resolve().parent.parent
    sops, out = tmp_path / "sops", tmp_path / "out"
    shutil.copytree(repo / "sample_sops", sops)
    assert run("compile", str(sops), "-o", str(out)).exit_code == 0
    fine = run("check", str(sops), "-o", str(out))
    assert fine.exit_code == 0 and "stale scenario" not in fine.output
    scenario = next((sops / "scenarios" / "tech_support").glob("internet-outage*.yaml"))
    text = scenario.read_text()
    assert "  - step: 2a\n" in text
    scenario.write_text(text.replace("  - step: 2a\n", "  - step: 99z\n", 1))
    stale = run("check", str(sops), "-o", str(out))
    assert stale.exit_code == 1
    assert "stale scenario:" in stale.output and "step 99z, which no longer exists" in stale.output
