"""emit: the only stage that writes outputs (routine files, agent network, review page)."""

from __future__ import annotations

from sop_compiler.emit._plan import agent_dir, deployable, routine_paths
from sop_compiler.emit.network import PACKAGE, render_network
from sop_compiler.emit.review import render_review
from sop_compiler.emit.routines import render_routine
from sop_compiler.emit.write import write_outputs

__all__ = [
    "PACKAGE",
    "agent_dir",
    "deployable",
    "render_network",
    "render_review",
    "render_routine",
    "routine_paths",
    "write_outputs",
]
