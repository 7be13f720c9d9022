"""A Procedure: one section of a Document that holds one procedure's steps."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sop_compiler.models.document import Block, Notice, block_text


class Procedure(BaseModel):
    """One procedure (a section that holds steps), ready to be turned into a routine."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        description="Stable slug from file path and heading path, e.g. `refunds--issue-a-refund`."
    )
    title: str
    source: str = Field(description="SOP file, relative to the SOP folder, with / separators.")
    source_sha256: str
    agent: str = Field(default="general", description="Agent group (from the folder, or config).")
    heading_path: list[str] = Field(default_factory=list)
    blocks: list[Block] = Field(
        default_factory=list,
        description=(
            "The section's blocks, including sub-sections (notes, exceptions). Blocks before "
            "the first heading are the enclosing section's lead-in instructions, which apply "
            "before the procedure's own steps."
        ),
    )
    context: list[Block] = Field(
        default_factory=list,
        description="Document-level blocks that apply to every procedure (scope, definitions).",
    )
    notices: list[Notice] = Field(default_factory=list)
    images: dict[str, bytes] = Field(
        default_factory=dict,
        exclude=True,
        repr=False,
        description="Bytes of the images its figures show, by sha256 (never serialised).",
    )

    def text(self) -> str:
        """The cleaned text of the procedure (context first), one block per line."""
        return "\n".join(block_text(block) for block in [*self.context, *self.blocks])

    def text_sha256(self) -> str:
        """Hash of the cleaned text and structure; what decides whether the routine is stale."""
        # The hash of `id\nagent\n` and the blocks' JSON joined by newlines, fed a block at a
        # time: a big SOP's JSON is many times its size and is never held whole (issue 17).
        digest = hashlib.sha256(f"{self.id}\n{self.agent}\n".encode())
        for index, block in enumerate([*self.context, *self.blocks]):
            if index:
                digest.update(b"\n")
            digest.update(block.model_dump_json(exclude={"prov": {"bbox"}}).encode())
        return digest.hexdigest()


SectionKind = Literal["procedure", "knowledge", "rules", "noise", "group"]


class SectionClass(BaseModel):
    """How segment read one section of a document (shown by `sopc inspect`)."""

    model_config = ConfigDict(extra="forbid")

    heading_path: list[str] = Field(description="Titles from the top heading to this section.")
    kind: SectionKind = Field(
        description=(
            "procedure: a request or task; knowledge: facts the agent needs; rules: constraints "
            "for every procedure of the document or section; noise: boilerplate; group: a heading "
            "of several procedures."
        )
    )
    reason: str = Field(description="Why, in a few words.")
    blocks: list[str] = Field(
        default_factory=list, description="Ids of the section's own blocks, heading first."
    )
    in_procedures: list[str] = Field(
        default_factory=list, description="Ids of the procedures whose blocks hold its text."
    )
    in_context: list[str] = Field(
        default_factory=list, description="Ids of the procedures whose context holds its text."
    )
