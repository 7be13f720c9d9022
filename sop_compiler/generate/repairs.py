"""When a repair can work, and what to ask for: the output limit, cut-off and hopeless answers.

A repair is worth a request only when the model can do better with the problems listed: an
answer cut off at the token limit is asked again once, shorter (never resent identically); an
answer that misses what every routine needs (its required top-level fields, or any step) twice
in a row says that the model cannot follow the schema, and repairs stop with a hint.
"""

from __future__ import annotations

from sop_compiler.models import Procedure, RoutineDraft

__all__ = [
    "CUT_OFF_ECHO",
    "HOPELESS_IN_A_ROW",
    "hopeless",
    "hopeless_error",
    "shorter",
    "sized_max_tokens",
]

# The default output limit: room for a routine of the schema's shape, per block of the procedure
# (a step with its citation is about 150 tokens), so a runaway answer stops instead of running
# to the timeout.
_TOKENS_BASE, _TOKENS_PER_BLOCK, _TOKENS_MIN, _TOKENS_MAX = 1024, 256, 4096, 32768
# How much of a cut-off answer goes back with the request to shorten it (chat templates of many
# local models want user and assistant turns to alternate).
CUT_OFF_ECHO = 2000
HOPELESS_IN_A_ROW = 2


def sized_max_tokens(procedure: Procedure) -> int:
    """An output limit sized to the routine schema and the procedure's length."""
    blocks = len(procedure.blocks) + len(procedure.context)
    return max(_TOKENS_MIN, min(_TOKENS_MAX, _TOKENS_BASE + _TOKENS_PER_BLOCK * blocks))


def shorter(limit: int | None) -> str:
    """The problem to send back for an answer cut off at the output token limit."""
    at = f" of {limit} tokens" if limit else ""
    return (
        f"your answer was cut off at the output limit{at} before the JSON object was complete: "
        "answer again, shorter, so that the whole object fits: one short sentence per step, "
        "quotes of at most 8 words, no repeated text, and empty lists where there is nothing to say"
    )


def hopeless(draft: RoutineDraft | None, problems: list[str]) -> bool:
    """True for an answer that misses the schema's required top-level fields, or has no steps."""
    if draft is not None:
        return not draft.steps
    return any(
        problem.startswith("schema: ")
        and problem.endswith(": Field required")
        and "." not in problem.removeprefix("schema: ").partition(":")[0]
        for problem in problems
    )


def hopeless_error(count: int, problems: list[str], *, mode: str) -> str:
    """Why repairs stopped, with what to try instead."""
    detail = "; ".join(problems[:3])
    hint = (
        "a bigger model"
        if mode == "json_schema"
        else 'structured_output = "json_schema" in sopc.toml, or a bigger model'
    )
    return (
        f"repairs stopped: {count} answers in a row missed the routine's required fields or "
        f"steps ({detail}); the model may be too small for the schema, or the server may "
        f"ignore response_format {mode}: try {hint}"
    )
