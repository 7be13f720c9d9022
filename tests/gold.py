"""Gold files for the policy corpus (issue 10) and the fidelity benchmark (issue 11).

A case folder holds one document (one of DOCUMENT_NAMES), its catalog `tools.yaml` and
`gold.yaml`, the answer a careful human gives for the document. Per procedure, under its heading
as printed:
- `must_call`: the tools the main path must call; `must_not_call`: tools it must never call;
  `may_call`: reads a routine may make unasked (they fetch what a condition tests). A call none
  of these, a branch or a rule names counts against precision.
- `rules`: each a verbatim `quote` of the document (markup and whitespace folded), its `kind`
  and the tools it `governs`. A rule is kept when the routine has a rule citing it, or a
  condition of a step that cites it (the SOP's own test of the rule).
- `branches`: a `condition` quoted from the document; `then` and `otherwise` say which tools
  each side calls and must not call, and how it ends (`any` when the SOP does not say).
A document's `not_procedures` are its boilerplate headings (purpose, contacts, revision history);
`knowledge` holds its facts, quoted; `document_rules` govern every procedure.

`tests/data/fidelity/sample_sops.gold.yaml` is a `GoldSet`: a top-level `documents:` list of
`Gold` entries whose `document:` is a path relative to `sample_sops/` and which share the
catalog `sample_sops/tools.yaml`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

RuleKind = Literal["never", "always", "only_if", "limit", "confirm_before"]
Ending = Literal["resolve", "escalate", "handoff", "continue", "any"]
DOCUMENT_NAMES = (
    "policy.md",
    "policy.txt",
    "policy.html",
    "policy.docx",
    "sop.md",
    "sop.txt",
    "sop.html",
    "sop.docx",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GoldRule(_Model):
    quote: str = Field(
        min_length=3, description="Verbatim substring of the document (whitespace folded)."
    )
    kind: RuleKind
    governs: list[str] = Field(default_factory=list)


class Side(_Model):
    calls: list[str] = Field(default_factory=list)
    not_calls: list[str] = Field(default_factory=list)
    ends: Ending = "any"


class GoldBranch(_Model):
    condition: str = Field(min_length=3)
    then: Side
    otherwise: Side | None = None


class GoldProcedure(_Model):
    heading: str
    customer_facing: bool = True
    must_call: list[str] = Field(default_factory=list)
    must_not_call: list[str] = Field(default_factory=list)
    # reads a routine may make without being told (they return what the SOP's conditions test);
    # a call outside must_call, may_call, the branches and the rules counts against precision
    may_call: list[str] = Field(default_factory=list)
    rules: list[GoldRule] = Field(default_factory=list)
    branches: list[GoldBranch] = Field(default_factory=list)


class Gold(_Model):
    document: str
    domain: str
    procedures: list[GoldProcedure] = Field(min_length=1)
    not_procedures: list[str] = Field(default_factory=list)
    knowledge: list[str] = Field(default_factory=list)
    document_rules: list[GoldRule] = Field(default_factory=list)


class GoldSet(_Model):
    """Several documents sharing one catalog (the repo's sample_sops/)."""

    documents: list[Gold] = Field(min_length=1)


def load_gold(path: Path) -> Gold:
    """Read and validate one gold.yaml."""
    return Gold.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def load_gold_set(path: Path) -> GoldSet:
    """Read and validate a multi-document gold file such as sample_sops.gold.yaml."""
    return GoldSet.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def iter_cases(root: Path) -> Iterator[tuple[Path, Path, Path, Gold]]:
    """Yield (case_dir, document_path, tools_path, gold) for every case folder under `root`."""
    for case_dir in sorted(p for p in root.iterdir() if (p / "gold.yaml").is_file()):
        gold = load_gold(case_dir / "gold.yaml")
        yield case_dir, case_dir / gold.document, case_dir / "tools.yaml", gold
