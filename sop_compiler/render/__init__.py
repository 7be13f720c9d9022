"""Rendering results for people (rich) and machines (JSON, GitHub annotations); no logic."""

from __future__ import annotations

import sys

from sop_compiler.errors import SopcError
from sop_compiler.render.diff import render_diff
from sop_compiler.render.inspect import render_inspect
from sop_compiler.render.run import render_run

__all__ = ["print_error", "render_diff", "render_inspect", "render_run"]


def print_error(exc: SopcError) -> None:
    """One line on stderr: `error: <file>: <what is wrong>`, then the hint if there is one."""
    print(f"error: {exc}", file=sys.stderr)
    if exc.hint:
        print(f"hint: {exc.hint}", file=sys.stderr)
