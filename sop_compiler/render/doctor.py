"""How `sopc doctor` is shown: one line per check, then the sopc.toml lines to use (or JSON)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sop_compiler.escape import terminal_text

if TYPE_CHECKING:
    from sop_compiler.generate.doctor import DoctorReport, ModeCheck

__all__ = ["render_doctor"]


def render_doctor(report: DoctorReport, *, fmt: str) -> None:
    """Print the report: `text` (checks, then sopc.toml lines) or `json` (DoctorReport)."""
    if fmt == "json":
        print(report.model_dump_json(indent=2))
        return
    lines = [f"endpoint     {report.base_url} (model {report.model})"]
    if not report.reachable:
        lines.append(f"reachable    no: {report.error}")
        _print(lines)
        return
    lines.append("reachable    yes" + (" (a local server)" if report.local else ""))
    if report.models is None:
        lines.append("model        GET /models gave no list")
    elif report.model_listed:
        lines.append("model        listed")
    else:
        shown = ", ".join(report.models[:5]) or "none"
        lines.append(f"model        NOT listed (the server lists: {shown})")
    if report.round_trip_seconds is not None:
        lines.append(f"round trip   {report.round_trip_seconds:.2f}s for a short answer")
    lines.append(
        f"slots        {report.slots} (GET /props)" if report.slots else "slots        not reported"
    )
    lines += [_check(check) for check in report.modes]
    lines += [_check(check) for check in (report.vision, report.streaming) if check is not None]
    if report.error:
        lines.append(f"error        {report.error}")
    if report.best_mode is not None:
        lines += ["", "# sopc.toml", *report.toml_lines()]
    _print(lines)


def _check(check: ModeCheck) -> str:
    verdict = "works" if check.ok else "fails"
    return f"{check.name:<12} {verdict}: {check.detail}"


def _print(lines: list[str]) -> None:
    for line in lines:
        print(terminal_text(line))
