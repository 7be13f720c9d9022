"""The tool catalog: the real tools agents may call."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Tool(BaseModel):
    """One tool from `tools.yaml`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z_][a-z0-9_]*$", description="snake_case tool name.")
    description: str
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}, "required": []},
        description="JSON schema of the arguments (an object schema).",
    )
    access: Literal["read", "write"] = "read"
    needs_approval: bool = False
    aliases: list[str] = Field(
        default_factory=list, description="Other names the SOPs use for this tool."
    )
    verifies: bool | None = Field(
        default=None,
        description=(
            "A successful call verifies the customer's identity. Unset: true for a read tool "
            "named `verify_*` or `authenticate_*`."
        ),
    )
    returns: dict[str, Any] | None = Field(
        default=None, description="JSON schema of the result, when the tool's result is known."
    )

    def verifies_identity(self) -> bool:
        """Whether a successful call of this tool verifies the customer."""
        if self.verifies is not None:
            return self.verifies
        return self.access == "read" and self.name.startswith(("verify_", "authenticate_"))


class ToolCatalog(BaseModel):
    """All catalog tools, by name."""

    model_config = ConfigDict(extra="forbid")

    tools: list[Tool] = Field(default_factory=list)
    source: str | None = Field(default=None, description="File the catalog was read from.")

    def get(self, name: str) -> Tool | None:
        """The tool called `name`, or None."""
        return next((tool for tool in self.tools if tool.name == name), None)

    def names(self) -> list[str]:
        return sorted(tool.name for tool in self.tools)

    def sha256(self) -> str:
        """Hash of the catalog's content (not its path), for the lock file."""
        payload = json.dumps([tool.model_dump() for tool in self.tools], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()
