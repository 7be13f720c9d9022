"""Prompts for the LLM backends, rendered from templates/prompts/*.j2.

The system prompt is static (conventions, worked example, and the schema only when it is not sent
as `response_format`) and comes first, then the tool catalog (static per run up to
MAX_PROMPT_TOOLS tools; past that, narrowed per procedure), then the procedure: a byte-identical
prefix across the requests of a run is what lets the provider's prompt cache apply.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2

from sop_compiler.files import TEMPLATES
from sop_compiler.models import (
    Block,
    Code,
    Figure,
    Flowchart,
    Heading,
    ListItem,
    Procedure,
    Quote,
    RoutineDraft,
    Table,
    Tool,
    ToolCatalog,
    block_text,
)
from sop_compiler.text import fold_lookalikes

# Bump when a template or the schema changes what the model is asked for (goes into the lock file).
PROMPT_TEMPLATE_VERSION = "4"

# A catalog larger than this is narrowed to the tools most relevant to each procedure.
MAX_PROMPT_TOOLS = 40

# Providers reject larger images (OpenAI: 20 MB per image).
MAX_IMAGE_BYTES = 20 * 1024 * 1024

# Any character a model may read as "<" (full-width, small form, angle brackets); what follows
# is checked on folded text, so full-width or look-alike letters cannot spell a closing tag.
_TAG_OPEN = re.compile("[<\uff1c\ufe64\u2329\u3008\u27e8\u2039]")
_TAG_NAME = re.compile(r"\s*/?\s*procedure", re.IGNORECASE)


@dataclass(frozen=True)
class ImagePart:
    """A figure's image, sent to a vision model as a data URL."""

    block_id: str
    data_url: str


@dataclass(frozen=True)
class RenderedProcedure:
    """The procedure as prompt text, its images, and the figures the model cannot see."""

    text: str
    images: tuple[ImagePart, ...]
    unread: tuple[tuple[str, str], ...]  # (block id, why it was not sent)


def _template_files() -> list[tuple[str, str]]:
    folder = TEMPLATES / "prompts"
    return sorted(
        (item.name, item.read_text(encoding="utf-8")) for item in folder.iterdir() if item.is_file()
    )


@functools.cache
def _environment() -> jinja2.Environment:
    # Autoescape stays off: prompts are plain text, and SOP text is neutralised by _data().
    return jinja2.Environment(
        loader=jinja2.DictLoader(dict(_template_files())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,
    )


def _render(name: str, **values: Any) -> str:
    return _environment().get_template(name).render(**values).strip() + "\n"


def _strict(node: Any) -> Any:
    """OpenAI strict mode: every property required, no extra keys, no defaults or titles."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "$defs"):  # maps of names to schemas, not schemas
            out[key] = {name: _strict(sub) for name, sub in value.items()}
        elif key not in ("default", "title"):
            out[key] = _strict(value)
    if out.get("type") == "object" and "properties" in node:
        out["additionalProperties"] = False
        out["required"] = list(out["properties"])
    if "$ref" in out and len(out) > 1:
        # strict mode does not allow siblings of $ref; the description lives on the definition
        out = {"$ref": out["$ref"]}
    return out


@functools.cache
def _schema_json() -> str:
    schema = _strict(RoutineDraft.model_json_schema())
    return json.dumps(schema, ensure_ascii=False, separators=(",", ":"))


@functools.cache
def _prompt_schema_json() -> str:
    """The schema as the prompt shows it (json_object, text): optional fields keep defaults."""

    def untitled(node: Any) -> Any:
        if isinstance(node, list):
            return [untitled(item) for item in node]
        if not isinstance(node, dict):
            return node
        return {
            key: {name: untitled(sub) for name, sub in value.items()}
            if key in ("properties", "$defs")
            else untitled(value)
            for key, value in node.items()
            if key != "title"
        }

    schema = untitled(RoutineDraft.model_json_schema())
    return json.dumps(schema, ensure_ascii=False, separators=(",", ":"))


def routine_schema() -> dict[str, Any]:
    """The strict JSON schema of RoutineDraft, as sent in the json_schema response format."""
    return json.loads(_schema_json())  # type: ignore[no-any-return]  # a fresh copy each time


def schema_sha256() -> str:
    """Hash of the routine schema (for cache keys and the lock file)."""
    return hashlib.sha256(_schema_json().encode()).hexdigest()


@functools.cache
def system_prompt(*, schema: bool = True) -> str:
    """The static prefix: conventions and a worked example; identical for every request.

    `schema`: include the routine schema, for the json_object and text response formats. With
    structured output the schema travels once, in `response_format`, and is left out here.
    """
    files = dict(_template_files())
    example = RoutineDraft.model_validate_json(files["example_routine.json"])
    return _render(
        "system.j2",
        schema_json=_prompt_schema_json() if schema else "",
        example_procedure=files["example_procedure.txt"].strip(),
        example_json=example.model_dump_json(exclude_none=True, exclude_defaults=True),
    )


def catalog_prompt(
    catalog: ToolCatalog, agents: Sequence[str], *, procedure: Procedure | None = None
) -> str:
    """The tool catalog and agent groups of this run, compactly (one line per tool).

    Static per run, so it follows the static prefix; a catalog over MAX_PROMPT_TOOLS tools is
    narrowed to those relevant to `procedure` (see `relevant_tools`).
    """
    chosen = catalog.tools
    if procedure is not None and len(chosen) > MAX_PROMPT_TOOLS:
        chosen = relevant_tools(catalog, procedure)
    tools = [
        {
            "name": tool.name,
            "access": tool.access,
            "needs_approval": tool.needs_approval,
            "description": _one_line(tool.description),
            "signature": _signature(tool.parameters),
        }
        for tool in sorted(chosen, key=lambda tool: tool.name)
    ]
    # Agent names are folder names: quoted as JSON strings, so no newline or quote in one can
    # start a line of its own in the system message.
    quoted = [json.dumps(agent, ensure_ascii=False) for agent in sorted(set(agents))]
    narrowed = len(catalog.tools) - len(chosen)
    return _render("catalog.j2", tools=tools, agents=quoted, narrowed=narrowed)


def relevant_tools(
    catalog: ToolCatalog, procedure: Procedure, *, limit: int = MAX_PROMPT_TOOLS
) -> list[Tool]:
    """The catalog tools worth showing for `procedure`: every tool it names, then the best ranked.

    Deterministic: a tool the SOP names (its name or an alias, in any case) is always kept, even
    past `limit`; the rest are ranked by how many of the words of their name, aliases and
    description the procedure uses (rarer words count more), ties broken by name.
    """
    text = " ".join(block_text(b) for b in [*procedure.context, *procedure.blocks])
    text = f"{procedure.title}\n{text}".casefold()
    words = set(_WORD.findall(text))
    spans = " ".join(_WORD.findall(text))
    named = [tool for tool in catalog.tools if _names(tool, text, spans)]
    frequency: dict[str, int] = {}
    vocab = {tool.name: _tool_words(tool) for tool in catalog.tools}
    for tool_words in vocab.values():
        for word in tool_words:
            frequency[word] = frequency.get(word, 0) + 1

    def score(tool: Tool) -> float:
        return sum(1.0 / frequency[w] for w in vocab[tool.name] if w in words)

    rest = sorted(
        (tool for tool in catalog.tools if tool not in named),
        key=lambda tool: (-score(tool), tool.name),
    )
    room = max(0, limit - len(named))
    return named + [tool for tool in rest[:room] if score(tool) > 0]


_WORD = re.compile(r"[a-z0-9]+")
_COMMON = frozenset(
    {"a", "an", "and", "the", "of", "to", "for", "by", "in", "on", "or", "with", "its", "their"}
)


def _tool_words(tool: Tool) -> set[str]:
    text = " ".join([tool.name.replace("_", " "), *tool.aliases, tool.description]).casefold()
    return {w for w in _WORD.findall(text) if w not in _COMMON and len(w) > 2}


def _names(tool: Tool, text: str, spans: str) -> bool:
    """True when the procedure text names the tool, by its name or by an alias."""
    if tool.name in text:
        return True
    for alias in tool.aliases:
        words = " ".join(_WORD.findall(alias.casefold()))
        if words and f" {words} " in f" {spans} ":
            return True
    return False


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _signature(parameters: dict[str, Any]) -> str:
    """A tool's parameters as `name: type, other?: "a"|"b"`; anything unusual as compact JSON."""
    properties = parameters.get("properties")
    if parameters.get("type") != "object" or not isinstance(properties, dict):
        return json.dumps(parameters, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    required = set(parameters.get("required") or [])
    out = []
    for name, schema in properties.items():
        mark = "" if name in required else "?"
        out.append(f"{name}{mark}: {_type(schema)}")
    extra = {k: v for k, v in parameters.items() if k not in ("type", "properties", "required")}
    if extra:
        out.append(json.dumps(extra, sort_keys=True, ensure_ascii=False, separators=(",", ":")))
    return ", ".join(out)


def _type(schema: Any) -> str:
    """One parameter's schema, compactly: type, enum values, constraints, a short description."""
    if not isinstance(schema, dict):
        return json.dumps(schema, ensure_ascii=False)
    if "enum" in schema:
        kind = "|".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    elif schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        kind = f"{_type(schema['items'])}[]"
    else:
        kind = str(schema.get("type", "any"))
    shown = {"type", "enum", "description", "title"} | ({"items"} if kind.endswith("[]") else set())
    extra = {k: v for k, v in schema.items() if k not in shown}
    if extra:
        kind += " " + json.dumps(extra, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    description = _one_line(str(schema.get("description") or ""))
    return f"{kind} ({description})" if description else kind


def _data(text: str) -> str:
    """SOP text as quoted data: it must not be able to close the <procedure> tag."""

    def escape(match: re.Match[str]) -> str:
        after = fold_lookalikes(text[match.end() : match.end() + 40])
        return "&lt;" if _TAG_NAME.match(after) else match.group(0)

    return _TAG_OPEN.sub(escape, text)


def _squash(text: str) -> str:
    return " ".join(text.split()).casefold()


def _text_follows(figure: Figure, following: Block | None) -> bool:
    """True when the block after a read figure repeats its OCR text.

    Readers emit a scanned page or image as the Figure (its OCR text included) followed by the
    headings, steps and paragraphs OCR found in it: the model needs that text only once.
    """
    if not (figure.read and figure.text) or following is None or isinstance(following, Figure):
        return False
    read = _squash(figure.text)
    if isinstance(following, Table):
        cells = [_squash(cell) for row in following.rows for cell in row if cell.strip()]
        return bool(cells) and all(cell in read for cell in cells)
    text = _squash(block_text(following))
    return bool(text) and text in read


def _block_line(block: Block, label: str = "", *, text: bool = True) -> str:
    # Labels in parentheses are sopc's, not SOP text: the prompt says never to quote them.
    if isinstance(block, Heading):
        number = f"{block.number} " if block.number else ""
        body = f"{'#' * block.level} {number}{block.text}"
    elif isinstance(block, ListItem):
        body = f"{'  ' * block.level}{block.marker} {block.text}"
    elif isinstance(block, Table):
        rows = ([block.header] if block.header else []) + block.rows
        lines = ["(table)" + (f" {block.caption}" if block.caption else "")]
        lines += ["| " + " | ".join(" ".join(cell.split()) for cell in row) + " |" for row in rows]
        body = "\n".join(lines)
    elif isinstance(block, Figure):
        kind = "scanned page" if block.scanned_page else "figure"
        if block.text and not text:
            label += "; its text, read by OCR, is given by the blocks that follow"
        lines = [f"({kind}{label})" + (f" {block.caption}" if block.caption else "")]
        if block.text and text:
            lines.append(block.text)
        body = "\n".join(lines)
    elif isinstance(block, Code):
        body = f"(code{', ' + block.language if block.language else ''})\n{block.text}"
    elif isinstance(block, Quote):
        body = f"> {block.text}"
    elif isinstance(block, Flowchart):
        body = _flowchart_text(block)
    else:
        body = block.text
    return f"[{block.id}] {_data(body)}"


def _flowchart_text(chart: Flowchart) -> str:
    """A flowchart as structured text: its nodes, then its edges with their labels."""
    lines = [
        f"(flowchart, {chart.notation}; entry node {chart.entry}; every decision node is a "
        "condition or switch with one branch per edge, its label the answer; keep loops)"
    ]
    lines += [f"node {n.id} ({n.kind}): {' '.join(n.text.split())}" for n in chart.nodes]
    for edge in chart.edges:
        label = f" [{' '.join(edge.label.split())}]" if edge.label else ""
        lines.append(f"edge {edge.source} -> {edge.target}{label}")
    lines += [f"(not read: {note})" for note in chart.unread]
    return "\n".join(lines)


def render_procedure(
    procedure: Procedure, *, images: Mapping[str, bytes], vision: bool
) -> RenderedProcedure:
    """The procedure message: blocks with their ids as quoted data, plus image parts for figures."""
    parts: list[ImagePart] = []
    unread: list[tuple[str, str]] = []

    def line(block: Block, following: Block | None) -> str:
        if not isinstance(block, Figure):
            return _block_line(block)
        text = not _text_follows(block, following)
        if block.image is None:
            return _block_line(block, text=text)
        data = images.get(block.image.sha256)
        why = (
            "vision is off"
            if not vision
            else "image bytes not available"
            if data is None
            else "image larger than 20 MB"
            if len(data) > MAX_IMAGE_BYTES
            else ""
        )
        if why or data is None:
            unread.append((block.id, why))
            return _block_line(block, ", image not available to you", text=text)
        encoded = base64.b64encode(data).decode("ascii")
        parts.append(ImagePart(block.id, f"data:{block.image.mime};base64,{encoded}"))
        return _block_line(block, f", image {len(parts)} below", text=text)

    def lines(blocks: Sequence[Block]) -> str:
        return "\n".join(
            line(block, blocks[i + 1] if i + 1 < len(blocks) else None)
            for i, block in enumerate(blocks)
        )

    context = lines(procedure.context)
    body = lines(procedure.blocks)
    text = _render(
        "procedure.j2",
        title=_data(procedure.title),
        agent=_data(procedure.agent),
        section=_data(" > ".join(procedure.heading_path)),
        source=_data(procedure.source),
        context=context,
        body=body,
        images=bool(parts),
    )
    return RenderedProcedure(text=text, images=tuple(parts), unread=tuple(unread))


def repair_prompt(errors: Sequence[str]) -> str:
    """Ask for a corrected full answer, listing what was wrong with the previous one."""
    return _render("repair.j2", errors=list(errors))
