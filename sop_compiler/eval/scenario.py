"""Scenarios: what must happen when a customer brings a case to a routine (hand-written YAML).

One file per routine, `<scenarios>/<agent>/<routine id>.yaml` (drafts that sopc writes beside a
reviewed file: `<routine id>.draft.yaml`; drafts a model wrote from the SOP text:
`<routine id>.sop.draft.yaml`), holding a list of scenarios:

    - name: refund over the supervisor limit
      message: I want my money back for order A-104233, it came broken.
      facts: {order_id: A-104233}
      decisions:                  # each condition or switch the path meets, in path order
        - {step: "5a", test: the refund amount is over $200, take: then}
      expect:
        agent: billing
        tool_calls:
          - {tool: create_ticket, arguments: {priority: high}}
        not_called: [issue_refund]
        ending: {kind: resolve}

A malformed file is a ScenarioError (exit 2) naming the file, the line and what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sop_compiler.errors import ConfigError

__all__ = [
    "DRAFT_SUFFIX",
    "SOP_DRAFT_SUFFIX",
    "Decision",
    "Expectation",
    "ExpectedCall",
    "ExpectedEnding",
    "Scenario",
    "ScenarioError",
    "ScenarioFile",
    "ToolResult",
    "load_scenario_file",
    "scenario_files",
    "scenario_schema",
]

DRAFT_SUFFIX = ".draft.yaml"
SOP_DRAFT_SUFFIX = ".sop.draft.yaml"  # `sopc scenarios --from-sop`: written from the SOP alone
Value = str | int | float | bool | None | list[Any] | dict[str, Any]


class ScenarioError(ConfigError):
    """A scenario file cannot be read or does not follow the format (exit 2)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Decision(_Model):
    """Which way one condition or switch goes on this scenario's path."""

    step: str = Field(
        description=(
            'Step id, e.g. "5a"; a step of a called routine is "<routine id>/<step id>". A step '
            "reached several times (a loop) is listed once per visit, in order."
        )
    )
    test: str | None = Field(
        default=None,
        description=(
            "The condition's test (or the switch's subject) as the routine states it; when "
            "given, the scenario fails if the step now asks something else."
        ),
    )

    take: str = Field(
        description=(
            'For a condition: "then" (the test holds) or "else"; for a switch: the `when` of '
            'the case that holds, or "default".'
        )
    )

    @field_validator("step", "take", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError('write "then" or "else" (YAML reads yes/no/true/false as booleans)')
        if isinstance(value, int | float):
            return str(value)  # an unquoted step number
        return value


class ToolResult(_Model):
    """What a tool returns on this scenario's path (the first entry that matches a call wins)."""

    tool: str = Field(description="Catalog tool name.")
    arguments: dict[str, Value] = Field(
        default_factory=dict,
        description="Only calls with these argument values get this result; empty: any call.",
    )
    result: dict[str, Value] = Field(
        default_factory=dict, description="The result; the slots the call collects are read here."
    )


class ExpectedCall(_Model):
    """A tool call that must happen, with the arguments that matter."""

    tool: str = Field(description="Catalog tool name.")
    arguments: dict[str, Value] = Field(
        default_factory=dict,
        description="Key arguments and their values; arguments not listed are not compared.",
    )


class ExpectedEnding(_Model):
    """How the case must end."""

    kind: Literal["resolve", "escalate", "handoff"]
    to: str | None = Field(
        default=None, description="For escalate: the human team; for handoff: the agent."
    )

    @model_validator(mode="after")
    def _target(self) -> ExpectedEnding:
        if self.kind == "resolve" and self.to is not None:
            raise ValueError("a resolve ending has no `to`")
        if self.kind == "handoff" and not self.to:
            raise ValueError("a handoff ending names the agent in `to`")
        return self


class Expectation(_Model):
    """What must happen."""

    agent: str | None = Field(
        default=None, description="The agent the conversation is routed to (the routine's)."
    )
    tool_calls: list[ExpectedCall] = Field(default_factory=list)
    order: Literal["exact", "in_order", "any"] = Field(
        default="exact",
        description=(
            "exact: these calls and no others, in this order; in_order: these calls in this "
            "order, others may come between; any: each of these calls, in any order."
        ),
    )
    not_called: list[str] = Field(
        default_factory=list, description="Tools that must not be called."
    )
    ending: ExpectedEnding
    category: str | None = Field(
        default=None, description="Ticket category: the last `category` argument of a tool call."
    )
    priority: str | None = Field(
        default=None, description="Ticket priority: the last `priority` argument of a tool call."
    )


class Scenario(_Model):
    """One case: what the customer brings, what the tools return, and what must happen."""

    name: str = Field(min_length=1, description="Unique within the file.")
    draft: bool = Field(
        default=False,
        description="Written by sopc and not reviewed yet; `sopc eval` skips drafts.",
    )
    message: str | None = Field(default=None, description="The customer's opening message.")
    facts: dict[str, Value] = Field(
        default_factory=dict,
        description="What the customer knows: answers to what the routine asks, by slot name.",
    )
    tool_results: list[ToolResult] = Field(default_factory=list)
    decisions: list[Decision] = Field(default_factory=list)
    expect: Expectation


class ScenarioFile(_Model):
    """The scenarios of one routine, and where they were read from."""

    path: str = Field(description="The file, as shown in messages.")
    agent: str
    routine: str
    scenarios: list[Scenario]
    lines: list[int] = Field(default_factory=list, description="Line of each scenario.")


def scenario_schema() -> dict[str, Any]:
    """The JSON schema of a scenario file (a list of scenarios)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "sopc scenarios of one routine",
        "type": "array",
        "items": {"$ref": "#/$defs/Scenario"},
        "$defs": Scenario.model_json_schema(ref_template="#/$defs/{model}")["$defs"]
        | {"Scenario": _without_defs(Scenario.model_json_schema(ref_template="#/$defs/{model}"))},
    }


def _without_defs(schema: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in schema.items() if key != "$defs"}


def scenario_files(folder: Path) -> list[Path]:
    """Every scenario file under `folder` (`<agent>/<routine>.yaml`), sorted."""
    if not folder.is_dir():
        return []
    found = [
        path
        for pattern in ("*/*.yaml", "*/*.yml")
        for path in folder.glob(pattern)
        if path.is_file() and not path.name.startswith(".")
    ]
    return sorted(found, key=lambda path: path.as_posix())


def routine_of(path: Path) -> tuple[str, str]:
    """(agent, routine id) a scenario file belongs to, from its place and name."""
    name = path.name
    for suffix in (SOP_DRAFT_SUFFIX, DRAFT_SUFFIX, ".yaml", ".yml"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.parent.name, name


def load_scenario_file(path: Path, *, shown: str | None = None) -> ScenarioFile:
    """Read and check one scenario file; ScenarioError (file:line: what) when it is malformed."""
    shown = shown or str(path)
    agent, routine = routine_of(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read: {exc}", path=shown) from None
    try:
        node, data = _parse(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else 1
        problem = " ".join(str(exc.problem or exc).split())
        raise ScenarioError(f"invalid YAML: {problem}", path=f"{shown}:{line}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"invalid YAML: {' '.join(str(exc).split())}", path=shown) from None
    if data is None:
        data = []
    if not isinstance(data, list):
        raise ScenarioError(
            "a scenario file holds a list of scenarios (`- name: ...`)", path=f"{shown}:1"
        )
    scenarios: list[Scenario] = []
    lines: list[int] = []
    for position, entry in enumerate(data):
        entry_line = _line(node, [position])
        try:
            scenario = Scenario.model_validate(entry)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = [position, *first["loc"]]
            where = ".".join(str(part) for part in first["loc"]) or "scenario"
            message = str(first["msg"]).removeprefix("Value error, ")
            raise ScenarioError(
                f"scenario {position + 1}: {where}: {message}", path=f"{shown}:{_line(node, loc)}"
            ) from None
        if any(seen.name == scenario.name for seen in scenarios):
            raise ScenarioError(
                f"two scenarios are named {scenario.name!r}", path=f"{shown}:{entry_line}"
            )
        scenarios.append(scenario)
        lines.append(entry_line)
    return ScenarioFile(path=shown, agent=agent, routine=routine, scenarios=scenarios, lines=lines)


# libyaml when present: scenario files are many and long (the pure-Python parser is ~10x slower).
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(text: str) -> tuple[yaml.Node | None, Any]:
    """The YAML node tree (for line numbers) and the data, from one parse."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return node, data


def _line(node: yaml.Node | None, loc: list[Any]) -> int:
    """The line (1-based) of the deepest YAML node that `loc` (a pydantic error path) reaches."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        elif isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            node = match
        else:
            break
        line = node.start_mark.line + 1
    return line
