"""One walk of a routine: `sopc paths`, eval, the review page and validation list the same paths.

Where the two walkers of old disagreed (a loop, a jump to a missing step, a call into another
routine, how long a path may be), these pin what each of them shows now.
"""

from __future__ import annotations

from pathlib import Path

from test_eval import call, cond, project, routine, run, step

from sop_compiler.interpret import MAX_STEPS, explore
from sop_compiler.paths import enumerate_paths

RETRY = routine(
    "retry",
    [call("1", "lookup_order", order_id="A"), cond("2", "the lookup failed", "1", "3"),
     step("3", "resolve")],
)  # fmt: skip


def test_a_loop_is_walked_once_by_eval_and_listed_up_to_where_it_comes_back(
    tmp_path: Path,
) -> None:
    sops, out = project(tmp_path, RETRY)
    shown = run("paths", str(sops), "-o", str(out))
    assert shown.exit_code == 0, shown.output
    assert "billing/retry: 2 paths" in shown.output
    assert "1. 2 then: the lookup failed; 2 else: the lookup failed" in shown.output
    assert 'calls: lookup_order(order_id="A"), lookup_order(order_id="A")\n' in shown.output
    listed = enumerate_paths(RETRY).paths
    assert [p.describe() for p in listed] == ["1 → 2 (yes) → back to 1", "1 → 2 (no) → 3 → resolve"]
    # the same walks: each listed path is the start of the walk eval numbers the same
    walked = explore(RETRY).done
    for path, trace in zip(listed, walked, strict=True):
        assert [(s.routine_id, s.step_id) for s in path.steps] == trace.steps[: len(path.steps)]


def test_a_routine_that_only_goes_round_is_an_error_not_zero_paths(tmp_path: Path) -> None:
    spin = routine(
        "spin",
        [cond("1", "the customer is happy", "2", "3"), step("2", "say", next_step="1"),
         step("3", "say", next_step="1")],
    )  # fmt: skip
    sops, out = project(tmp_path, spin)
    shown = run("paths", str(sops), "-o", str(out))
    assert shown.exit_code == 1
    assert "billing/spin: 1 paths" in shown.output
    assert (
        "error no_ending: path 1 stops without an ending: loop that does not end: spin step 1 "
        "comes round again after every way from it was taken" in shown.output
    )
    assert [p.describe() for p in enumerate_paths(spin).paths] == [
        "1 (yes) → 2 → back to 1",
        "1 (no) → 3 → back to 1",
    ]
    # with a way out, a walk that could only go round again is left out
    two = routine(
        "two",
        [cond("1", "a", "2", "4"), cond("2", "b", "1", "3"), step("3", "resolve"),
         cond("4", "c", "1", "5"), step("5", "resolve")],
    )  # fmt: skip
    found = explore(two)
    assert found.stuck == [] and len(found.done) == 4


def test_a_jump_to_a_missing_step_stops_the_same_way_everywhere(tmp_path: Path) -> None:
    broken = routine("broken", [cond("1", "the order is late", "9", "2"), step("2", "resolve")])
    sops, out = project(tmp_path, broken)
    shown = run("paths", str(sops), "-o", str(out))
    assert shown.exit_code == 1
    assert (
        "error no_ending: path 2 stops without an ending: broken step 1 goes to step 9, "
        "which does not exist" in shown.output
    )  # the walks that end come first in `sopc paths`, so eval numbers them alike
    assert [p.describe() for p in enumerate_paths(broken).paths] == [
        "1 (yes) → goes to missing step 9",
        "1 (no) → 2 → resolve",
    ]


def test_a_call_is_followed_into_the_called_routine_and_a_call_cycle_never_ends(
    tmp_path: Path,
) -> None:
    verify = routine(
        "verify",
        [cond("1", "the caller is verified", "2", "3"), step("2", "resolve"),
         step("3", "escalate", target="Security")],
    )  # fmt: skip
    main = routine("main", [step("1", "call", routine="verify"), step("2", "resolve")])
    sops, out = project(tmp_path, verify, main)
    shown = run("paths", str(sops), "-o", str(out))
    assert "billing/main: 2 paths" in shown.output
    assert "1. verify/1 then: the caller is verified\n     calls: none\n     ends: resolve" in (
        shown.output
    )
    found = enumerate_paths(main, routines={"verify": verify})
    assert [p.describe() for p in found.paths] == [
        "1 → verify:1 (yes) → verify:2 → 2 → resolve",
        "1 → verify:1 (no) → verify:3 → escalate to Security",
    ]
    # called twice, a routine decides afresh: the path on which both checks pass is there
    twice = routine(
        "twice",
        [step("1", "call", routine="verify"), step("2", "call", routine="verify"),
         step("3", "resolve")],
    )  # fmt: skip
    (tmp_path / "t").mkdir()
    sops, out = project(tmp_path / "t", verify, twice)
    shown = run("paths", str(sops), "-o", str(out))
    assert "billing/twice: 3 paths\n  1. verify/1 then: the caller is verified; verify/1 then:" in (
        shown.output
    )
    assert [p.describe() for p in enumerate_paths(twice, routines={"verify": verify}).paths] == [
        "1 → verify:1 (yes) → verify:2 → 2 → verify:1 (yes) → verify:2 → 3 → resolve",
        "1 → verify:1 (yes) → verify:2 → 2 → verify:1 (no) → verify:3 → escalate to Security",
        "1 → verify:1 (no) → verify:3 → escalate to Security",
    ]
    # a routine that is not given stops the walk, rather than being skipped
    assert [p.describe() for p in enumerate_paths(main, routines={}).paths] == [
        "1 → calls unknown routine verify"
    ]
    # a call cycle is cut where calls nest too deep: it is never a path that resolves
    again = routine("again", [step("1", "call", routine="main"), step("2", "resolve")])
    cycle = routine("main", [step("1", "call", routine="again"), step("2", "resolve")])
    (path,) = enumerate_paths(cycle, routines={"again": again, "main": cycle}).paths
    assert path.end == "cut" and path.describe().endswith("→ again:1 → cut (too long)")
    (tmp_path / "c").mkdir()
    sops, out = project(tmp_path / "c", again, cycle)
    shown = run("paths", str(sops), "-o", str(out))
    assert shown.exit_code == 1 and "stops: calls nest deeper than 16" in shown.output


def test_a_long_path_is_followed_to_its_end_and_only_a_longer_one_is_cut() -> None:
    long = routine("long", [*(step(str(n)) for n in range(1, 451)), step("451", "resolve")])
    (path,) = enumerate_paths(long).paths
    assert path.end == "resolve" and len(path.steps) == 451
    endless = routine("endless", [*(step(str(n)) for n in range(1, MAX_STEPS + 2))])
    (path,) = enumerate_paths(endless).paths
    assert path.end == "cut" and path.describe().endswith(f"{MAX_STEPS} → cut (too long)")
    (trace,) = explore(endless).stuck
    assert (
        trace.error == f"longer than {MAX_STEPS} steps: cut before ('endless', '{MAX_STEPS + 1}')"
    )
