"""Validation reports and run results."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# error: the routine is wrong (never deployed); warning: it may be (fails `--strict`);
# info: shown to the reviewer, never a failure (an open question the SOP leaves open).
Severity = Literal["error", "warning", "info"]


class Issue(BaseModel):
    """One problem found in a routine."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        description="Stable code, e.g. `dangling_target`, `unknown_tool`, `low_coverage`."
    )
    severity: Severity
    routine_id: str
    step_id: str | None = None
    message: str
    quote: str | None = Field(
        default=None, description="The SOP text the step or rule in question cites, if any."
    )

    def located(self) -> str:
        """The message with its step in front, once ("step 7: ..." or "step 7 calls ...")."""
        if not self.step_id or re.match(rf"step {re.escape(self.step_id)}\b", self.message):
            return self.message
        return f"step {self.step_id}: {self.message}"


class ValidationReport(BaseModel):
    """Everything validate found in one routine; never raised, always returned."""

    model_config = ConfigDict(extra="forbid")

    routine_id: str
    issues: list[Issue] = Field(default_factory=list)
    coverage: float | None = Field(
        default=None, description="Share of source instruction sentences cited."
    )

    @property
    def errors(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.severity == "warning"]


class Usage(BaseModel):
    """Token usage of model calls."""

    model_config = ConfigDict(extra="forbid")

    calls: int = 0
    cached_responses: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            **{name: getattr(self, name) + getattr(other, name) for name in Usage.model_fields}
        )
