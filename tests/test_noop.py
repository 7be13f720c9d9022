"""The fast no-op path: SOP discovery and the output stat cache (never trusted by --check)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sop_compiler.config import Settings, load_settings
from sop_compiler.ingest import SUFFIXES, discover, discover_sources
from sop_compiler.lock import FileStates, NoopRunResult
from sop_compiler.models import RunResult
from sop_compiler.pipeline import compile_folder

SOP = "# Refunds\n\n## Issue a refund\n\n1. Ask for the order number.\n2. Look up the order.\n"


def _reference_discover(root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The plain os.walk discovery that discover() must match."""
    root = root.resolve()
    found: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for folder, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(folder)
        real = here.resolve()
        if real in seen or not real.is_relative_to(root):
            dirnames[:] = []
            if not real.is_relative_to(root):
                skipped.append((here, "symlink points outside the SOP folder"))
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in sorted(filenames):
            path = here / name
            if name.startswith(".") or name.lower() in {"tools.yaml", "sopc.toml", "readme.md"}:
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                skipped.append((path, "symlink points outside the SOP folder"))
            elif path.suffix.lower() in SUFFIXES:
                found.append(path)
            else:
                skipped.append((path, f"unsupported file type {path.suffix or '(none)'}"))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix()), skipped


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "sops"
    for rel in [
        "billing/b.md", "billing/A.PDF", "billing/deep/c.txt", "shipping/x.docx", "top.md",
        "notes.xyz", "noext", "trailing.", ".hidden.md", "_drafts/d.md", ".git/e.md",
        "README.md", "tools.yaml",
    ]:  # fmt: skip
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(SOP)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.md").write_text(SOP)
    (root / "billing" / "link.md").symlink_to(root / "top.md")
    (root / "billing" / "out.md").symlink_to(outside / "o.md")
    (root / "aliased").symlink_to(root / "shipping")
    (root / "elsewhere").symlink_to(outside)
    (root / "billing" / "deep" / "loop").symlink_to(root / "billing")
    (root / "broken.md").symlink_to(root / "missing.md")
    return root


def test_discover_matches_a_plain_walk(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    assert discover(root) == _reference_discover(root)


def test_discover_sources_names_files_by_their_real_path(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    named = dict(
        (p.relative_to(root.resolve()).as_posix(), s) for p, s in discover_sources(root)[0]
    )
    assert named["billing/link.md"] == "top.md"  # a symlink is named by its target
    assert named["aliased/x.docx"] == "shipping/x.docx"  # reached first through the alias
    assert named["billing/deep/c.txt"] == "billing/deep/c.txt"
    assert discover_sources(root / "top.md") == ([(root.resolve() / "top.md", "top.md")], [])


def _build(tmp_path: Path) -> tuple[Path, Path, object]:
    sops, out = tmp_path / "sops", tmp_path / "out"
    sops.mkdir()
    (sops / "refunds.md").write_text(SOP)
    settings = load_settings(sops, overrides={"backend": "offline", "output": out})
    assert compile_folder(sops, settings=settings).exit_code == 0
    return sops, out, settings


def _edit_keeping_size_and_mtime(path: Path) -> None:
    before = path.stat()
    data = path.read_bytes()
    path.write_bytes(data[:-2] + b"X\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_noop_compile_trusts_the_stat_cache_outside_the_output(tmp_path: Path) -> None:
    sops, out, settings = _build(tmp_path)
    again = compile_folder(sops, settings=settings)  # type: ignore[arg-type]
    assert again.written == [] and again.exit_code == 0
    stat_dir = Path(os.environ["SOPC_CACHE_DIR"]) / "stat"
    caches = [p for p in stat_dir.glob("*.json") if not p.name.endswith(".noop.json")]
    assert len(caches) == 1
    assert [p.name for p in stat_dir.glob("*.noop.json")] == [caches[0].stem + ".noop.json"]
    recorded = json.loads(caches[0].read_text())["files"]
    assert "sopc.lock" not in recorded and any(rel.endswith(".md") for rel in recorded)
    assert not [p for p in out.rglob("*") if "stat" in p.name]


def test_hand_edit_with_same_size_and_mtime_is_still_found(tmp_path: Path) -> None:
    sops, out, settings = _build(tmp_path)
    compile_folder(sops, settings=settings)  # type: ignore[arg-type]
    routine = next((out / "routines").rglob("*.md"))
    original = routine.read_bytes()
    _edit_keeping_size_and_mtime(routine)
    check = compile_folder(sops, settings=settings, check=True)  # type: ignore[arg-type]
    assert check.exit_code == 1 and any(s.reason == "edited" for s in check.stale)
    fixed = compile_folder(sops, settings=settings)  # type: ignore[arg-type]
    assert routine.relative_to(out).as_posix() in fixed.written
    assert routine.read_bytes() == original


def test_racily_clean_entries_are_hashed_again(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    target = out / "a.md"
    target.write_bytes(b"real content\n")
    st = target.stat()
    claimed = hashlib.sha256(b"other bytes!\n").hexdigest()  # same size, other content
    cache = tmp_path / "cache" / "stat.json"
    cache.parent.mkdir()
    record = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, claimed]
    cache.write_text(
        json.dumps({"version": 1, "out": str(out.resolve()), "files": {"a.md": record}})
    )
    # The cache was written in the same tick as the file: its record proves nothing.
    os.utime(cache, ns=(st.st_mtime_ns, st.st_mtime_ns))
    assert FileStates(out, cache_file=cache).state("a.md", claimed) == "edited"
    # Written later: the record (here deliberately wrong) is trusted, which is why only a
    # compile uses the cache and --check always hashes.
    os.utime(cache, ns=(st.st_mtime_ns + 10**9, st.st_mtime_ns + 10**9))
    assert FileStates(out, cache_file=cache).state("a.md", claimed) == "ok"
    assert FileStates(out).state("a.md", claimed) == "edited"


@pytest.mark.parametrize("content", ["not json", '{"version": 99}', '{"version": 1, "files": 3}'])
def test_a_damaged_stat_cache_only_costs_hashing(tmp_path: Path, content: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.md").write_bytes(b"x\n")
    cache = tmp_path / "stat.json"
    cache.write_text(content)
    states = FileStates(out, cache_file=cache)
    assert states.state("a.md", hashlib.sha256(b"x\n").hexdigest()) == "ok"
    assert states.state("b.md", "0" * 64) == "missing"


# -- the no-op fast path ------------------------------------------------------------------------

TOOLS = """\
tools:
  - name: lookup_order
    description: Look up an order.
    access: read
    parameters: {type: object, properties: {order_id: {type: string}}, required: [order_id]}
"""


def _project(tmp_path: Path) -> tuple[Path, Path, Settings]:
    sops, out = tmp_path / "sops", tmp_path / "out"
    for index, folder in enumerate(["billing", "billing", "shipping"]):
        (sops / folder).mkdir(parents=True, exist_ok=True)
        (sops / folder / f"sop-{index}.md").write_text(SOP.replace("Refunds", f"Case {index}"))
    (sops / "tools.yaml").write_text(TOOLS)
    (sops / "notes.xyz").write_text("not an SOP")  # a skipped file: a note on every run
    settings = load_settings(sops, overrides={"backend": "offline", "output": out})
    assert compile_folder(sops, settings=settings).exit_code == 0
    return sops, out, settings


def _clean_noop(sops: Path, settings: Settings) -> RunResult:
    """A no-op by the normal path, which records it for the fast path."""
    result = compile_folder(sops, settings=settings)
    assert result.written == [] and not isinstance(result, NoopRunResult)
    time.sleep(0.02)  # past the racy-clean window of the timestamps just recorded
    return result


@pytest.fixture
def planning(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every time a compile plans its SOPs (the fast path never does)."""
    import sop_compiler.pipeline as pipeline

    calls: list[str] = []
    real = pipeline.start_plan

    def start_plan(*args: Any, **kwargs: Any) -> Any:
        calls.append("planned")
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "start_plan", start_plan)
    return calls


def test_a_no_op_takes_the_fast_path_with_the_same_result(
    tmp_path: Path, planning: list[str]
) -> None:
    sops, out, settings = _project(tmp_path)
    normal = _clean_noop(sops, settings)
    planning.clear()
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    fast = compile_folder(sops, settings=settings)
    assert planning == []  # decided without planning any SOP
    assert isinstance(fast, NoopRunResult)
    assert fast.exit_code == 0 and fast.written == []
    assert fast.model_dump() == normal.model_dump()  # outcomes, issues, notes: all the same
    assert json.loads(fast.model_dump_json()) == json.loads(normal.model_dump_json())
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # nothing rewritten
    strict = compile_folder(sops, settings=settings, strict=True)
    assert planning == []
    assert (
        strict.exit_code
        == compile_folder(sops, settings=settings, check=True, strict=True).exit_code
    )


def _change_sop(sops: Path, out: Path) -> None:
    path = sops / "billing/sop-0.md"
    path.write_text(path.read_text().replace("Look up the order", "Look up the customer's order"))


def _change_catalog(sops: Path, out: Path) -> None:
    (sops / "tools.yaml").write_text(TOOLS.replace("Look up an order.", "Find an order."))


def _edit_output(sops: Path, out: Path) -> None:
    _edit_keeping_size_and_mtime(next((out / "routines").rglob("*.md")))


def _delete_output(sops: Path, out: Path) -> None:
    next((out / "routines").rglob("*.md")).unlink()


def _add_sop(sops: Path, out: Path) -> None:
    (sops / "shipping/new.md").write_text(SOP.replace("Refunds", "New case"))


def _remove_sop(sops: Path, out: Path) -> None:
    (sops / "shipping/sop-2.md").unlink()


def _touch_lock(sops: Path, out: Path) -> None:
    lock = out / "sopc.lock"
    lock.write_bytes(lock.read_bytes())  # same bytes, yet it may have been edited: re-read it


@pytest.mark.parametrize(
    "change",
    [
        _change_sop,
        _change_catalog,
        _edit_output,
        _delete_output,
        _add_sop,
        _remove_sop,
        _touch_lock,
    ],
)
def test_any_change_takes_the_normal_path(
    tmp_path: Path, planning: list[str], change: Callable[[Path, Path], None]
) -> None:
    sops, out, settings = _project(tmp_path)
    _clean_noop(sops, settings)
    change(sops, out)
    planning.clear()
    result = compile_folder(sops, settings=settings)
    assert planning == ["planned"] and not isinstance(result, NoopRunResult)
    check = compile_folder(sops, settings=settings, check=True)
    assert check.stale == [] and check.exit_code == 0  # the normal path repaired everything


def test_a_changed_setting_takes_the_normal_path(tmp_path: Path, planning: list[str]) -> None:
    sops, _out, settings = _project(tmp_path)
    _clean_noop(sops, settings)
    planning.clear()
    strict_coverage = settings.model_copy(update={"coverage_threshold": 0.99})
    result = compile_folder(sops, settings=strict_coverage)
    assert planning == ["planned"] and not isinstance(result, NoopRunResult)
    planning.clear()
    refreshed = compile_folder(sops, settings=settings, refresh=True)
    assert planning == ["planned"] and not isinstance(refreshed, NoopRunResult)


def test_no_fast_path_without_the_cache_or_for_check(tmp_path: Path, planning: list[str]) -> None:
    sops, _out, settings = _project(tmp_path)
    _clean_noop(sops, settings)
    planning.clear()
    compile_folder(sops, settings=settings.model_copy(update={"cache": False}))
    compile_folder(sops, settings=settings, check=True)
    compile_folder(sops, settings=settings, dry_run=True)
    assert planning == ["planned"] * 3


def test_a_symlinked_sop_folder_is_always_planned(tmp_path: Path, planning: list[str]) -> None:
    sops, _out, settings = _project(tmp_path)
    (sops / "linked").symlink_to(sops / "shipping")
    compile_folder(sops, settings=settings)
    _clean_noop(sops, settings)
    planning.clear()
    compile_folder(sops, settings=settings)
    assert planning == ["planned"]


def test_output_folder_inside_the_sops_keeps_the_fast_path_and_its_rule(
    tmp_path: Path, planning: list[str]
) -> None:
    sops, _out, settings = _project(tmp_path)
    inside = settings.model_copy(update={"output": sops / "gen"})
    assert compile_folder(sops, settings=inside).exit_code == 0
    (sops / "old").mkdir()
    (sops / "old/sopc.lock").write_text("{}")  # an earlier output folder: never SOPs
    (sops / "old/REVIEW.md").write_text(SOP.replace("Refunds", "Not an SOP"))
    normal = _clean_noop(sops, inside)
    assert len(normal.sops) == 3
    planning.clear()
    fast = compile_folder(sops, settings=inside)
    assert planning == [] and isinstance(fast, NoopRunResult) and len(fast.sops) == 3
    # Without its lock the folder holds SOPs again: the fast path must not vouch for it.
    (sops / "old/sopc.lock").unlink()
    result = compile_folder(sops, settings=inside)
    assert planning == ["planned"] and len(result.sops) == 4
