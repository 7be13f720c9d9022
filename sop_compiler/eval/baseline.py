"""`sopc eval --baseline FILE`: what got worse since a stored run.

The baseline is the `--format json` output of an earlier `sopc eval` (deterministic or `--live`).
A run regresses when a scenario that passed there fails now (or is gone), or when a metric
drops: the share of scenarios passing and of paths covered, and for a live run each accuracy,
precision, recall and pass^k (and forbidden calls, which may only go down). A metric the
baseline did not measure is not compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sop_compiler.errors import ConfigError

__all__ = ["regressions"]

_HIGHER_IS_BETTER = (
    "pass_rate",
    "path_coverage",
    "pass_k",
    "trial_pass_rate",
    "routing_accuracy",
    "tool_precision",
    "tool_recall",
    "ending_accuracy",
    "category_accuracy",
    "priority_accuracy",
)
_LOWER_IS_BETTER = ("forbidden_calls",)


def regressions(current: dict[str, Any], baseline: Path) -> list[str]:
    """One line per scenario that passed in `baseline` and does not now, and per metric that
    dropped; `current` is this run's `--format json` payload."""
    before = _load(baseline)
    out: list[str] = []
    now = {_key(r): r for r in current.get("results", [])}
    for result in before.get("results", []):
        if result.get("status") != "passed":
            continue
        key = _key(result)
        name = f"{key[0]}: {key[1]!r}"
        if key not in now:
            out.append(f"scenario {name} passed in the baseline and is gone")
        elif now[key].get("status") != "passed":
            out.append(f"scenario {name} passed in the baseline and fails now")
    was, is_ = _metrics(before), _metrics(current)
    for metric in _HIGHER_IS_BETTER:
        old, new = _number(was.get(metric)), _number(is_.get(metric))
        if old is not None and new is not None and new < old - 1e-9:
            out.append(f"{metric} dropped from {old:.3g} to {new:.3g}")
    for metric in _LOWER_IS_BETTER:
        old, new = _number(was.get(metric)), _number(is_.get(metric))
        if old is not None and new is not None and new > old:
            out.append(f"{metric} rose from {old:g} to {new:g}")
    return out


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the baseline: {exc.strerror or exc}", path=path) from None
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(
            "not a baseline: store `sopc eval --format json` output", path=path
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ConfigError("not a baseline: store `sopc eval --format json` output", path=path)
    return data


def _key(result: dict[str, Any]) -> tuple[str, str]:
    return str(result.get("routine", "")), str(result.get("name", ""))


def _metrics(payload: dict[str, Any]) -> dict[str, Any]:
    """The metrics of a deterministic run (from its summary) or of a live run (as reported)."""
    metrics = dict(payload.get("metrics") or {})
    summary = payload.get("summary") or {}
    if summary.get("scenarios") and "passed" in summary:
        metrics["pass_rate"] = summary.get("passed", 0) / summary["scenarios"]
    if summary.get("paths"):
        metrics["path_coverage"] = summary.get("paths_covered", 0) / summary["paths"]
    return metrics


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
