"""Fidelity of the offline compiler on the gold corpora: does each routine say what its SOP says?

    python bench/fidelity.py            every case under tests/data/policies and tests/data/fidelity
    python bench/fidelity.py --json     the same numbers as JSON
    python bench/fidelity.py --heldout  tests/data/heldout only: cases written blind, tuned on since
    python bench/fidelity.py --heldout2 tests/data/heldout2 only: a second blind corpus
    python bench/fidelity.py --heldout3 tests/data/heldout3 only: a third, scored once at its merge
    python bench/fidelity.py --heldout4 tests/data/heldout4 only: a fourth
    python bench/fidelity.py --heldout5 tests/data/heldout5 only: a fifth
    python bench/fidelity.py --heldout6 tests/data/heldout6 only: a sixth
    python bench/fidelity.py --heldout7 tests/data/heldout7 only: a seventh
    python bench/fidelity.py --heldout8 tests/data/heldout8 only: an eighth
    python bench/fidelity.py --heldout9 tests/data/heldout9 only: a ninth
    python bench/fidelity.py --heldout10 tests/data/heldout10 only: a tenth, scored once at merge
    python bench/fidelity.py --heldout11 tests/data/heldout11 only: an eleventh, scored once
    python bench/fidelity.py --heldout12 tests/data/heldout12 only: a twelfth, scored once
    python bench/fidelity.py --heldout13 tests/data/heldout13 only: a thirteenth, scored once
    python bench/fidelity.py --heldout14 tests/data/heldout14 only: a fourteenth, scored once
    python bench/fidelity.py --heldout15 tests/data/heldout15 only: a fifteenth, scored once
    python bench/fidelity.py --heldout16 tests/data/heldout16 only: a sixteenth, scored once
    python bench/fidelity.py --heldout17 tests/data/heldout17 only: a seventeenth, scored once
    python bench/fidelity.py --heldout18 tests/data/heldout18 only: an eighteenth, scored once

For every gold procedure it compiles the document with the offline backend (no network) and
counts: the procedure found under its heading; each gold rule kept as a rule that cites it (and
with the gold kind, and the gold tools in `governs`); each gold fact kept as knowledge or a rule;
each must-call tool called; each must-not-call tool absent; validation errors. Ratios are shares of
the gold items, so they compare across versions of sopc.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from gold import Gold, GoldBranch, GoldRule, Side, iter_cases, load_gold_set  # noqa: E402

from sop_compiler.catalog import load_catalog  # noqa: E402
from sop_compiler.config import Settings  # noqa: E402
from sop_compiler.generate.offline import build_draft  # noqa: E402
from sop_compiler.models import Procedure, RoutineDraft, Step, walk_steps  # noqa: E402
from sop_compiler.pipeline import read_procedures  # noqa: E402
from sop_compiler.validate import check_draft  # noqa: E402

_MARKUP = re.compile(r"[*_`#|]+")


def _fold(text: str) -> str:
    return " ".join(_MARKUP.sub(" ", text).split()).casefold().rstrip(".")


@dataclass
class Tally:
    """Counts of gold items and of those the routines keep, and what each miss was."""

    counts: dict[str, list[int]] = field(default_factory=dict)
    misses: list[str] = field(default_factory=list)

    def add(self, name: str, ok: bool, what: str = "") -> None:
        hit, total = self.counts.setdefault(name, [0, 0])
        self.counts[name] = [hit + int(ok), total + 1]
        if not ok:
            self.misses.append(f"{name}: {what}")

    def ratio(self, name: str) -> str:
        hit, total = self.counts.get(name, [0, 0])
        return f"{hit}/{total} ({hit / total:.0%})" if total else "-"


# "1.", "6.2", "(a)", "A.", "Section 3:": the numbering a heading carries and a procedure's title
# drops
_NUMBERING = re.compile(
    r"^(?:(?:section|chapter|procedure|part)\s+)?(?:\d+(?:\.\d+)*|\(?[a-z]\)|[a-z]\.)[.:)]?\s+"
)
# "If X": a gold condition quoted with its opener; a routine's test is X
_OPENER = re.compile(
    r"^(?:if|when|whenever|unless|only if|in case|where|wherever|provided(?: that)?|as long as)\s+"
)


# "== PROCEDURE 2: BAN APPEALS ==", "--- GLOSSARY ---": the rules of a plain-text banner
_BANNER = re.compile(r"^[=~*#+-]{2,}\s*|\s*[=~*#+-]{2,}$")


def _match(title: str, heading: str) -> bool:
    title = _BANNER.sub("", _fold(title))
    heading = _NUMBERING.sub("", _BANNER.sub("", _fold(heading)))
    return title == heading or title.endswith(heading)


def _score_rule(gold: GoldRule, draft: RoutineDraft, tally: Tally) -> None:
    quote = _fold(gold.quote)
    found = [
        r
        for r in draft.rules
        if quote in _fold(r.text) or (r.source and _fold(r.source.quote) in quote)
    ]
    # tests/gold.py: a rule is kept as a rule, or as a condition of the steps that cites it
    gating = any(
        s.condition is not None
        and s.source is not None
        and s.source.quote
        and (_fold(s.source.quote) in quote or quote in _fold(s.source.quote))
        for s in walk_steps(draft.steps)
    )
    tally.add("rules kept", bool(found) or gating, gold.quote)
    tally.add("rule kind agrees", any(r.kind == gold.kind for r in found), gold.quote)
    for tool in gold.governs:
        tally.add(
            "rule governs gold tool",
            any(tool in r.governs for r in found),
            f"{tool}: {gold.quote}" + ("" if found or gating else " (rule not kept)"),
        )
    for tool in sorted({tool for r in found for tool in r.governs}):
        tally.add("rule governs only gold tools", tool in gold.governs, f"{tool}: {gold.quote}")


def _reach(steps: list[Step], start: str | None) -> list[Step]:
    """Every step reachable from step `start` (following every branch), in walk order."""
    flat = steps
    position = {step.id: n for n, step in enumerate(flat)}
    seen: set[int] = set()
    todo = [position[start]] if start in position else []
    while todo:
        n = todo.pop()
        if n in seen or n >= len(flat):
            continue
        seen.add(n)
        for target in flat[n].targets():
            todo.append(n + 1 if target is None else position.get(target, len(flat)))
    return [flat[n] for n in sorted(seen)]


_HANDOVER = re.compile(r"ticket|escalat|transfer|refer_to|_case\b|work_item")


# "never ends in handoff (ends: ['escalate'])" and the other way round
_HANDED_EITHER_WAY = re.compile(
    r"never ends in handoff \(ends: \[[^]]*'escalate'|"
    r"never ends in escalate \(ends: \[[^]]*'handoff'"
)


def _side(side: Side, reached: list[Step]) -> tuple[list[str], list[str]]:
    """What a branch side does wrong (forbidden calls, a wrong ending) and what it misses."""
    called = {s.tool_call.tool for s in reached if s.tool_call is not None}
    ends = {s.kind for s in reached if s.kind in ("resolve", "escalate", "handoff")}
    if any(_HANDOVER.search(tool) for tool in called):
        ends.add("escalate")  # a ticket for a team (or a transfer tool) hands the case over
    if any("transfer" in tool for tool in called) and "escalate" in ends:
        ends.add("handoff")  # "transfer the caller to Billing" with `transfer_call`
    wrong = [f"calls {tool}" for tool in side.not_calls if tool in called]
    if side.ends not in ("any", "continue") and side.ends not in ends:
        wrong.append(f"never ends in {side.ends} (ends: {sorted(ends) or 'none'})")
    missed = [f"no call of {tool}" for tool in side.calls if tool not in called]
    return wrong, missed


def _opens_with_test(wanted: str, test: str) -> bool:
    """A gold condition that quotes its whole sentence ("Where fewer than 7 days remain, the
    Adviser shall explain ...") is found by the step that tests its clause ("fewer than 7 days
    remain"): of three words or more, where the sentence starts."""
    clause = _OPENER.sub("", _fold(test))
    return len(clause.split()) >= 3 and wanted.startswith(clause)


def _score_branch(gold: GoldBranch, draft: RoutineDraft, where: str, tally: Tally) -> None:
    """Found: a condition step tests the gold condition. Right: each side does what gold says."""
    steps = list(walk_steps(draft.steps))
    wanted = _OPENER.sub("", _fold(gold.condition))
    step = next(
        (
            s
            for s in steps
            if s.condition is not None
            and (
                wanted in _fold(s.condition.test)
                or wanted in _fold(s.text)
                or _opens_with_test(wanted, s.condition.test)
            )
        ),
        None,
    )
    tally.add("branches found", step is not None, f"{where}: {gold.condition}")
    if step is None or step.condition is None:
        return
    after = steps[steps.index(step) + 1].id if steps.index(step) + 1 < len(steps) else None
    then, otherwise = step.condition.then_step, step.condition.else_step or after
    negated = (f"it is not true that {wanted}", f"the answer to '{wanted}' is no")
    # "Unless X, ...", "X? If not, ...", "Unless X (an aside), ...": the test of X's other side
    test = _fold(step.condition.test)
    if any(test == n or test.startswith(f"{n} (") for n in negated):
        then, otherwise = otherwise, then
    sides = [("then", gold.then, then)]
    if gold.otherwise is not None:
        sides.append(("otherwise", gold.otherwise, otherwise))
    wrong: list[str] = []
    missed: list[str] = []
    for name, side, start in sides:
        bad, lacking = _side(side, _reach(steps, start))
        wrong += [f"{name}: {what}" for what in bad]
        missed += [f"{name}: {what}" for what in lacking]
    tally.add(
        "branches not wrong (of those found)", not wrong, f"{where}: {gold.condition}: {wrong}"
    )
    # a blind gold's "handoff" is to some team, not to an agent of the network it never saw:
    # the same figure with an escalation and a hand-over taken as one ending
    handed = [w for w in wrong if not _HANDED_EITHER_WAY.search(w)]
    tally.add(
        "branches not wrong, a hand-over either way",
        not handed,
        f"{where}: {gold.condition}: {handed}",
    )
    tally.add(
        "branches complete (of those found)", not missed, f"{where}: {gold.condition}: {missed}"
    )


def _called(draft: RoutineDraft) -> set[str]:
    return {s.tool_call.tool for s in walk_steps(draft.steps) if s.tool_call is not None}


def score_case(document: Path, tools: Path, gold: Gold, tally: Tally) -> None:
    settings = Settings()
    catalog = load_catalog(tools, sop_root=tools.parent)
    result = read_procedures(document, root=document.parent, settings=settings)
    procedures: list[Procedure] = result.procedures
    for wanted in gold.procedures:
        procedure = next((p for p in procedures if _match(p.title, wanted.heading)), None)
        tally.add("procedures found", procedure is not None, f"{document.name}: {wanted.heading}")
        if procedure is None and len(procedures) == 1 and len(gold.procedures) == 1:
            procedure = procedures[0]  # one procedure, titled after the document
        if procedure is None:
            continue
        draft = build_draft(procedure, catalog=catalog)
        for rule in [*gold.document_rules, *wanted.rules]:
            _score_rule(rule, draft, tally)
        called = _called(draft)
        where = f"{document.parent.name}/{procedure.title}"
        for tool in wanted.must_call:
            tally.add("must-call tools called", tool in called, f"{where}: {tool}")
        for tool in wanted.must_not_call:
            tally.add("must-not-call tools absent", tool not in called, f"{where}: {tool}")
        named = (
            set(wanted.must_call)
            | set(wanted.may_call)
            | {
                tool
                for branch in wanted.branches
                for side in (branch.then, branch.otherwise)
                if side is not None
                for tool in side.calls
            }
        )
        named |= {t for rule in [*gold.document_rules, *wanted.rules] for t in rule.governs}
        for tool in sorted(called):
            # precision: a call the gold names (must-call, a branch's call, a governed tool)
            tally.add("tool precision (calls gold names)", tool in named, f"{where}: {tool}")
        for branch in wanted.branches:
            _score_branch(branch, draft, where, tally)
        flagged = len(draft.open_questions)
        tally.add(  # an open question is a needs-review flag: what the compiler could not read
            "routines with no open question", not flagged, f"{where}: {flagged} open question(s)"
        )
        issues = check_draft(draft, procedure=procedure, catalog=catalog, settings=settings)
        errors = [f"{i.code} ({i.message})" for i in issues if i.severity == "error"]
        tally.add("routines without validation errors", not errors, f"{where}: {errors}")
        kept = " ".join(_fold(k.fact) for k in draft.knowledge) + " "
        kept += " ".join(_fold(r.text) for r in draft.rules)
        for fact in gold.knowledge:
            tally.add("facts kept", _fold(fact) in kept)
    for heading in gold.not_procedures:
        kept_out = not any(_match(p.title, heading) for p in procedures)
        tally.add("non-procedure sections kept out", kept_out, f"{gold.document}: {heading}")


def tally_all() -> Tally:
    """Every gold case the compiler was developed against: tests/data/policies,
    tests/data/fidelity and sample_sops."""
    tally = Tally()
    for root in ("policies", "fidelity"):
        for _, document, tools, gold in iter_cases(REPO / "tests" / "data" / root):
            score_case(document, tools, gold, tally)
    samples = REPO / "sample_sops"
    for gold in load_gold_set(
        REPO / "tests" / "data" / "fidelity" / "sample_sops.gold.yaml"
    ).documents:
        score_case(samples / gold.document, samples / "tools.yaml", gold, tally)
    return tally


# the blind corpora under tests/data, oldest first
BLIND = (
    "heldout",
    "heldout2",
    "heldout3",
    "heldout4",
    "heldout5",
    "heldout6",
    "heldout7",
    "heldout8",
    "heldout9",
    "heldout10",
    "heldout11",
    "heldout12",
    "heldout13",
    "heldout14",
    "heldout15",
    "heldout16",
    "heldout17",
    "heldout18",
)


def tally_heldout(folder: str = "heldout") -> Tally:
    """A blind corpus under tests/data (`heldout` to `heldout18`): cases whose author never ran
    sopc on them. Each was scored once before anything was tuned on it; BENCHMARKS.md keeps
    that first run, the honest estimate of how the compiler does on documents it has not seen,
    and the corpus was tuned on (its forms, never its documents) afterwards."""
    tally = Tally()
    root = REPO / "tests" / "data" / folder
    if root.is_dir():
        for _, document, tools, gold in iter_cases(root):
            score_case(document, tools, gold, tally)
    return tally


# The targets of issue 11 (a share of the gold items; None: reported, no target).
TARGETS: dict[str, float | None] = {
    "must-call tools called": 0.9,
    "must-not-call tools absent": 1.0,
    "tool precision (calls gold names)": 0.95,
    "rules kept": 0.95,
    "rule governs gold tool": None,
    "rule governs only gold tools": None,
    "branches not wrong (of those found)": 1.0,
    "branches not wrong, a hand-over either way": None,
    "branches found": None,
    "branches complete (of those found)": None,
    "routines without validation errors": 1.0,
    "routines with no open question": None,
}


def bench_fidelity(report: Callable[..., None]) -> None:
    """The rows of bench/run.py's `fidelity` section: the development corpora, then held out."""
    print("Fidelity of the offline compiler on the gold corpora (tests/data/policies, fidelity)")
    corpora = [("", tally_all())] + [
        (" ".join(["held out", name.removeprefix("heldout")]).strip() + ": ", tally_heldout(name))
        for name in BLIND
    ]
    for prefix, tally in corpora:
        for name, target in TARGETS.items():
            if not tally.counts.get(name):
                continue
            hit, total = tally.counts[name]
            met = None if target is None else hit / total >= target
            shown = "" if target is None else f">= {target:.0%}"
            report(f"{prefix}{name}", tally.ratio(name), shown, met)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--misses", action="store_true", help="also list every gold item missed")
    for name in BLIND:
        parser.add_argument(
            f"--{name}",
            action="store_true",
            help=f"score tests/data/{name} (written blind) instead",
        )
    args = parser.parse_args()
    blind = [name for name in BLIND if getattr(args, name)]
    tally = tally_heldout(blind[-1]) if blind else tally_all()
    if not tally.counts:
        print("no gold cases found", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(tally.counts, indent=2, sort_keys=True))
        return 0
    width = max(len(name) for name in tally.counts)
    for name in tally.counts:
        print(f"{name:<{width}}  {tally.ratio(name)}")
    if args.misses:
        print("\n".join(["", *tally.misses]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
