"""A structural diff of two routine sets (two output folders, or two git revisions of one).

What a reviewer wants from a pull request that regenerated routines: which routines appeared or
went away, and per routine which steps were added, removed, reworded or moved, which branches now
go elsewhere, which tools and edge cases changed, and which validation issues are new or fixed
(read from each side's `sopc.lock`).

Each side may have been written by another sopc version (the pull request that upgrades sopc is
exactly when a reviewer wants this diff), so routines are read leniently: unknown keys are
ignored, and a routine that still cannot be read is listed as unreadable instead of failing.
"""

from __future__ import annotations

import json
import subprocess
import types
import typing
from collections import Counter
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sop_compiler.errors import ConfigError
from sop_compiler.lock import LOCK_NAME, LockFile
from sop_compiler.models import Issue, Routine, Step

__all__ = [
    "RoutineChange",
    "RoutineRef",
    "RoutineSetDiff",
    "StepChange",
    "UnreadableRoutine",
    "diff_outputs",
    "diff_routines",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoutineRef(_Model):
    """A routine that was added or removed."""

    agent: str
    id: str
    title: str
    steps: int


class StepChange(_Model):
    """One step-level change."""

    change: Literal["added", "removed", "reworded", "moved", "branch", "kind"]
    old_id: str | None = None
    new_id: str | None = None
    before: str | None = None
    after: str | None = None


class RoutineChange(_Model):
    """Everything that changed in one routine present on both sides."""

    agent: str
    id: str
    title: str
    title_before: str | None = Field(default=None, description="Set when the title changed.")
    trigger: tuple[str, str] | None = Field(
        default=None, description="(before, after) when changed."
    )
    steps: list[StepChange] = Field(default_factory=list)
    tools_added: list[str] = Field(default_factory=list)
    tools_removed: list[str] = Field(default_factory=list)
    edge_cases_added: list[str] = Field(default_factory=list)
    edge_cases_removed: list[str] = Field(default_factory=list)
    rules_added: list[str] = Field(default_factory=list)
    rules_removed: list[str] = Field(default_factory=list)
    issues_new: list[Issue] = Field(default_factory=list)
    issues_fixed: list[Issue] = Field(default_factory=list)

    def empty(self) -> bool:
        """True when nothing a reviewer would see changed."""
        return not (
            self.title_before
            or self.trigger
            or self.steps
            or self.tools_added
            or self.tools_removed
            or self.edge_cases_added
            or self.edge_cases_removed
            or self.rules_added
            or self.rules_removed
            or self.issues_new
            or self.issues_fixed
        )


class UnreadableRoutine(_Model):
    """A routine file on one side that could not be read, so it is left out of the comparison."""

    side: Literal["old", "new"]
    file: str = Field(description="Path of the file inside its output folder.")
    reason: str


class RoutineSetDiff(_Model):
    """The structural difference between two routine sets."""

    old: str
    new: str
    added: list[RoutineRef] = Field(default_factory=list)
    removed: list[RoutineRef] = Field(default_factory=list)
    changed: list[RoutineChange] = Field(default_factory=list)
    unchanged: int = 0
    unreadable: list[UnreadableRoutine] = Field(
        default_factory=list, description="Routine files that could not be read, with why."
    )


_Side = tuple[dict[tuple[str, str], Routine], dict[tuple[str, str], list[Issue]]]


@dataclass
class _Loaded:
    """One side as read from disk or git: the routines, plus what could not be read."""

    side: _Side
    unreadable: list[tuple[str, str]]  # (file, reason)
    unreadable_keys: set[tuple[str, str]]  # (agent, id) of unreadable routines, where known


def diff_outputs(old: str, new: str, *, output: Path | None = None) -> RoutineSetDiff:
    """Compare two output folders, or two git revisions of `output` (default generated_routines)."""
    if Path(old).is_dir() and Path(new).is_dir():
        before, after = _read_folder(Path(old)), _read_folder(Path(new))
    else:
        folder = output or Path("generated_routines")
        if not folder.is_dir():
            raise ConfigError(
                "neither two folders nor git revisions of an output folder",
                path=folder,
                hint="give two output folders, or two revisions and -o <output folder>",
            )
        before, after = _read_revision(folder, old), _read_revision(folder, new)
    result = diff_routines(before.side, after.side, old_name=old, new_name=new)
    # A routine unreadable on one side is not "added" or "removed": it is listed as unreadable.
    result.added = [r for r in result.added if (r.agent, r.id) not in before.unreadable_keys]
    result.removed = [r for r in result.removed if (r.agent, r.id) not in after.unreadable_keys]
    result.unreadable = [
        UnreadableRoutine(side=name, file=file, reason=reason)
        for name, loaded in (("old", before), ("new", after))
        for file, reason in loaded.unreadable
    ]
    return result


def diff_routines(
    old: _Side, new: _Side, *, old_name: str = "old", new_name: str = "new"
) -> RoutineSetDiff:
    """Diff two loaded routine sets: ({(agent, id): Routine}, {(agent, id): issues})."""
    result = RoutineSetDiff(old=old_name, new=new_name)
    (old_routines, old_issues), (new_routines, new_issues) = old, new
    for key in sorted(old_routines.keys() | new_routines.keys()):
        before, after = old_routines.get(key), new_routines.get(key)
        if before is None and after is not None:
            result.added.append(_ref(after))
        elif after is None and before is not None:
            result.removed.append(_ref(before))
        elif before is not None and after is not None:
            change = _diff_routine(before, after, old_issues.get(key, []), new_issues.get(key, []))
            if change.empty():
                result.unchanged += 1
            else:
                result.changed.append(change)
    return result


def _ref(routine: Routine) -> RoutineRef:
    return RoutineRef(
        agent=routine.agent, id=routine.id, title=routine.title, steps=len(routine.walk())
    )


def _diff_routine(
    before: Routine, after: Routine, old_issues: list[Issue], new_issues: list[Issue]
) -> RoutineChange:
    change = RoutineChange(agent=after.agent, id=after.id, title=after.title)
    if before.title != after.title:
        change.title_before = before.title
    if before.trigger != after.trigger:
        change.trigger = (before.trigger, after.trigger)
    change.steps = _diff_steps(before.walk(), after.walk())
    old_tools = set(before.tools_used) | {t.name for t in before.tools_proposed}
    new_tools = set(after.tools_used) | {t.name for t in after.tools_proposed}
    change.tools_added, change.tools_removed = (
        sorted(new_tools - old_tools),
        sorted(old_tools - new_tools),
    )
    old_cases = {f"{case.when} → {case.then}" for case in before.edge_cases}
    new_cases = {f"{case.when} → {case.then}" for case in after.edge_cases}
    change.edge_cases_added = sorted(new_cases - old_cases)
    change.edge_cases_removed = sorted(old_cases - new_cases)
    old_rules, new_rules = _rule_texts(before), _rule_texts(after)
    change.rules_added = sorted(new_rules - old_rules)
    change.rules_removed = sorted(old_rules - new_rules)

    def key(issue: Issue) -> tuple[str, str, str]:
        return (issue.severity, issue.code, issue.message)

    old_keys, new_keys = {key(i) for i in old_issues}, {key(i) for i in new_issues}
    change.issues_new = sorted((i for i in new_issues if key(i) not in old_keys), key=key)
    change.issues_fixed = sorted((i for i in old_issues if key(i) not in new_keys), key=key)
    return change


def _rule_texts(routine: Routine) -> set[str]:
    """Rules as a reviewer compares them: kind, text, condition and what they govern."""
    out = set()
    for rule in routine.rules:
        text = f"{rule.kind}: {rule.text}"
        if rule.condition:
            text += f" (when {rule.condition})"
        if rule.governs:
            text += f" [governs {', '.join(rule.governs)}]"
        out.add(text)
    return out


def _diff_steps(old: list[Step], new: list[Step]) -> list[StepChange]:
    """Match steps by identical text (a renumbered step is `moved`), then by similar text."""
    changes: list[StepChange] = []
    pairs: dict[str, str] = {}  # old id -> new id
    by_text: dict[str, list[Step]] = {}
    for step in new:
        by_text.setdefault(step.text, []).append(step)
    unmatched_old: list[Step] = []
    for step in old:
        same = by_text.get(step.text)
        if same:
            pairs[step.id] = same.pop(0).id
        else:
            unmatched_old.append(step)
    matched = set(pairs.values())
    unmatched_new = [step for step in new if step.id not in matched]
    for before, after in _similar(unmatched_old, unmatched_new):
        pairs[before.id] = after.id
        changes.append(
            StepChange(
                change="reworded",
                old_id=before.id,
                new_id=after.id,
                before=before.text,
                after=after.text,
            )
        )
    matched = set(pairs.values())
    changes += [
        StepChange(change="removed", old_id=s.id, before=s.text) for s in old if s.id not in pairs
    ]
    changes += [
        StepChange(change="added", new_id=s.id, after=s.text) for s in new if s.id not in matched
    ]
    old_by_id, new_by_id = {s.id: s for s in old}, {s.id: s for s in new}
    for old_id, new_id in pairs.items():
        before, after = old_by_id[old_id], new_by_id[new_id]
        if old_id != new_id and before.text == after.text:
            changes.append(
                StepChange(change="moved", old_id=old_id, new_id=new_id, before=before.text)
            )
        if before.kind != after.kind:
            changes.append(
                StepChange(
                    change="kind",
                    old_id=old_id,
                    new_id=new_id,
                    before=before.kind,
                    after=after.kind,
                )
            )
        flow_before, flow_after = _flow(before, pairs), _flow(after, None)
        if flow_before != flow_after:
            changes.append(
                StepChange(
                    change="branch",
                    old_id=old_id,
                    new_id=new_id,
                    before=flow_before or "(next step)",
                    after=flow_after or "(next step)",
                )
            )
    new_order = {s.id: i for i, s in enumerate(new)}
    old_order = {s.id: i for i, s in enumerate(old)}
    # Removed steps sit where they were; each step's rows read reworded, branch, kind.
    rank = {"removed": 0, "added": 1, "reworded": 1, "moved": 1, "branch": 2, "kind": 3}
    return sorted(
        changes,
        key=lambda c: (
            new_order[c.new_id] if c.new_id is not None else old_order.get(c.old_id or "", 0) - 0.5,
            rank[c.change],
        ),
    )


_MIN_SIMILARITY = 0.5
_MAX_PAIRS = 10_000  # beyond this many candidate pairs, fall back to pairing equal step ids


def _similar(old: list[Step], new: list[Step]) -> list[tuple[Step, Step]]:
    """Pairs of (old, new) steps whose text is alike, best matches first, each step used once."""
    if len(old) * len(new) > _MAX_PAIRS:
        by_id = {step.id: step for step in new}
        return [(step, by_id[step.id]) for step in old if step.id in by_id]
    scored = sorted(
        (
            (SequenceMatcher(None, a.text, b.text).ratio(), i, j)
            for i, a in enumerate(old)
            for j, b in enumerate(new)
        ),
        key=lambda item: (-item[0], item[1], item[2]),
    )
    used_old: set[int] = set()
    used_new: set[int] = set()
    pairs: list[tuple[Step, Step]] = []
    for score, i, j in scored:
        if score < _MIN_SIMILARITY:
            break
        if i not in used_old and j not in used_new:
            used_old.add(i)
            used_new.add(j)
            pairs.append((old[i], new[j]))
    return pairs


def _flow(step: Step, pairs: dict[str, str] | None) -> str:
    """Where a step leads, with old ids mapped to new ones so renumbering alone is no change."""

    def target(step_id: str | None) -> str | None:
        if step_id is None or pairs is None:
            return step_id
        return pairs.get(step_id, f"{step_id} (removed)")

    parts: list[str] = []
    if step.condition is not None:
        parts.append(f"if {step.condition.test}: then {target(step.condition.then_step)}")
        if step.condition.else_step:
            parts.append(f"else {target(step.condition.else_step)}")
    if step.switch is not None:
        cases = ", ".join(f"{c.when}: {target(c.goto)}" for c in step.switch.cases)
        default = target(step.switch.default) or "next step"
        parts.append(f"switch on {step.switch.subject}: {cases}; otherwise {default}")
    if step.routine:
        parts.append(f"follow routine {step.routine}")
    if step.confirm:
        parts.append("needs the customer's yes")
    if step.next_step:
        parts.append(f"next {target(step.next_step)}")
    if step.target:
        parts.append(f"{step.kind} to {step.target}")
    if step.tool_call is not None:
        args = ", ".join(
            f"{a.name}={a.value!r}"
            if a.value is not None
            else f"{a.name}={a.slot}"
            if a.slot
            else a.name
            for a in step.tool_call.arguments
        )
        parts.append(f"call {step.tool_call.tool}({args})")
    return "; ".join(parts)


def _load(files: dict[str, bytes]) -> _Loaded:
    routines: dict[tuple[str, str], Routine] = {}
    unreadable: list[tuple[str, str]] = []
    unreadable_keys: set[tuple[str, str]] = set()
    for rel, data in sorted(files.items()):
        if rel == LOCK_NAME:
            continue
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError):
            unreadable.append((rel, "not valid JSON"))
            continue
        try:
            routine = Routine.model_validate(_known_fields(Routine, raw))
        except (ValidationError, RecursionError) as exc:
            why = _why(exc) if isinstance(exc, ValidationError) else "steps nested too deeply"
            unreadable.append((rel, why))
            if isinstance(raw, dict) and isinstance(raw.get("agent"), str):
                unreadable_keys.add((raw["agent"], str(raw.get("id"))))
            continue
        routines[(routine.agent, routine.id)] = routine
    issues: dict[tuple[str, str], list[Issue]] = {}
    if LOCK_NAME in files:
        try:
            lock = LockFile.model_validate(_known_fields(LockFile, json.loads(files[LOCK_NAME])))
        except (ValueError, RecursionError, ValidationError):
            lock = LockFile()  # an unreadable lock only costs the issue comparison
        for sop in lock.sops.values():
            for proc_id, proc in sop.procedures.items():
                issues[(proc.agent, proc_id)] = proc.issues
    return _Loaded((routines, issues), unreadable, unreadable_keys)


def _why(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the routine"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _known_fields(model: type[BaseModel], data: Any) -> Any:
    """`data` without the keys `model` does not know, at every level (another sopc's output)."""
    if not isinstance(data, dict):
        return data
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        key = field.alias or name
        if key in data:
            out[key] = _known_value(field.annotation, data[key])
    return out


def _known_value(annotation: Any, value: Any) -> Any:
    models = [arg for arg in _type_args(annotation) if _is_model(arg)]
    if not models:
        return value
    if isinstance(value, list):
        return [_known_fields(models[0], item) for item in value]
    if isinstance(value, dict) and typing.get_origin(annotation) is dict:
        return {key: _known_fields(models[0], item) for key, item in value.items()}
    return _known_fields(models[0], value)


def _type_args(annotation: Any) -> list[Any]:
    """The annotation and every type inside it (`list[Step] | None` -> list, Step, None, ...)."""
    out = [annotation]
    for arg in typing.get_args(annotation):
        out += _type_args(arg)
    return out


def _is_model(annotation: Any) -> bool:
    return (
        isinstance(annotation, type)
        and not isinstance(annotation, types.GenericAlias)
        and issubclass(annotation, BaseModel)
    )


def _read_folder(folder: Path) -> _Loaded:
    if not (folder / "routines").is_dir() and not (folder / LOCK_NAME).is_file():
        raise ConfigError(
            f"not a sopc output folder (no routines/ and no {LOCK_NAME})",
            path=folder,
            hint="give two folders written by `sopc compile -o`, or two git revisions",
        )
    files = {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted((folder / "routines").rglob("*.json"))
    }
    if (folder / LOCK_NAME).is_file():
        files[LOCK_NAME] = (folder / LOCK_NAME).read_bytes()
    return _load(files)


def _git(folder: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=folder, capture_output=True, check=False)
    except OSError:
        raise ConfigError("git is not available to read revisions") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise ConfigError(
            f"git {args[0]} failed: {message[0] if message else 'unknown error'}", path=folder
        )
    return done.stdout


def _read_revision(folder: Path, revision: str) -> _Loaded:
    if revision.startswith("-"):
        raise ConfigError(f"not a revision: {revision!r}")
    names = _git(
        folder, "ls-tree", "-r", "-z", "--name-only", revision, "--", "routines", LOCK_NAME
    )
    listed = [rel for rel in names.decode().split("\0") if rel]
    if not listed:
        raise ConfigError(
            f"revision {revision!r} has no routines/ and no {LOCK_NAME} in this folder",
            path=folder,
            hint="name the output folder with -o",
        )
    files: dict[str, bytes] = {}
    for rel in sorted(listed):
        if rel == LOCK_NAME or (rel.startswith("routines/") and rel.endswith(".json")):
            files[rel] = _git(folder, "show", f"{revision}:./{rel}")
    return _load(files)


def counts(diff: RoutineSetDiff) -> Counter[str]:
    """Headline numbers: routines added/removed/changed and step changes by kind."""
    total: Counter[str] = Counter(
        added=len(diff.added), removed=len(diff.removed), changed=len(diff.changed)
    )
    for change in diff.changed:
        total.update(f"steps {c.change}" for c in change.steps)
    return total
