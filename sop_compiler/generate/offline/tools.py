"""Finding catalog tools in SOP text, binding their arguments, and naming proposed tools."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

from sop_compiler.generate.offline.binding import verb_stems
from sop_compiler.models import Tool, ToolArgument, ToolCatalog


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_BACKTICK = re.compile(r"`([^`\n]{1,80})`")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\(\))?$")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_MONEY = re.compile(
    r"[$€£]\s?(\d{1,7}(?:,\d{3})*(?:\.\d{1,2})?)|\b(\d{1,7}(?:\.\d{1,2})?)\s?(?:usd|eur|gbp|dollars|euros|pounds)\b",
    re.IGNORECASE,
)
_NUMBER_TYPES = ("number", "integer")
# Words that sit between a verb and its object without changing the meaning ("issue *a* refund").
_FILLER = _words(
    """
    a an the this that their his her its customer customer's customers' new
    """
)

# Verbs whose action changes something (write) or only reads, for proposed tools.
WRITE_VERBS = _words(
    """
    activate add adjust apply approve arrange assign block book cancel change charge
    close correct create credit deactivate delete disable email enable file flag
    generate initiate issue lock log open order place process record refund reinstate
    reissue remove replace reschedule reserve reship reset resend restore schedule send submit
    suspend
    tag unlock update upgrade downgrade void waive
    """
)
READ_VERBS = _words(
    """
    lookup search retrieve pull check verify review find track
    """
)
# Read verbs that are only a tool when their object is data in a system ("check the order status").
_WEAK_READ_VERBS = _words(
    """
    check verify review find
    """
)
_DATA_NOUNS = re.compile(
    r"\b(?:record|account|order|status|history|invoice|balance|system|database|crm|details|log|"
    r"eligibility|warranty|shipment|tracking|subscription|payment|transaction|profile|portal)s?\b",
    re.IGNORECASE,
)
_OBJECT_STOP = re.compile(
    r"\b(?:in|on|of|for|with|to|from|via|using|by|if|when|and|or|so|before|after|within|at|as|that|"
    r"which|who|until|unless|because)\b|[,.;:()\"]"
)


@dataclass(frozen=True)
class ToolMention:
    """A catalog tool named in a piece of text."""

    tool: Tool
    position: int
    how: Literal["name", "alias", "verb"]  # named, named by an alias, or read from the verb phrase


class ToolIndex:
    """Regexes for every catalog tool's name and aliases, built once per catalog."""

    def __init__(self, catalog: ToolCatalog) -> None:
        self.catalog = catalog
        self._patterns: list[tuple[re.Pattern[str], Tool, Literal["name", "alias"]]] = []
        for tool in sorted(catalog.tools, key=lambda t: t.name):
            for name in [tool.name, *tool.aliases]:
                words = [re.escape(w) for w in name.split()]
                pattern = re.compile(
                    r"(?<![\w-])" + r"\s+".join(words) + r"(?![\w-])", re.IGNORECASE
                )
                self._patterns.append((pattern, tool, "name" if name == tool.name else "alias"))
        self._enum_values: dict[str, list[Tool]] = {}
        self._enum_params: list[tuple[str, str, Tool]] = []  # (value, parameter, tool)
        self._param_names: set[str] = set()
        for tool in sorted(catalog.tools, key=lambda t: t.name):
            for param, schema in tool.parameters.get("properties", {}).items():
                self._param_names.add(param)
                for value in schema.get("enum", []) if isinstance(schema, dict) else []:
                    owners = self._enum_values.setdefault(str(value), [])
                    if tool not in owners:
                        owners.append(tool)
                    self._enum_params.append((str(value), param, tool))

    def find(self, text: str) -> ToolMention | None:
        """The first catalog tool the text names, else one whose name is the text's verb phrase."""
        best: ToolMention | None = None
        for match in _BACKTICK.finditer(text):
            tool = self.catalog.get(match.group(1).strip().removesuffix("()"))
            if tool is not None:
                # "Send an authorisation request (`request_vet_authorisation`)": the SOP names
                # the tool; no verb of the sentence outranks that
                return ToolMention(tool, match.start(), "name")
        verb = _tokens(text)[:1]
        for pattern, tool, how in self._patterns:
            found = pattern.search(text)
            if found is not None:
                mention = ToolMention(tool, found.start(), how)
                if best is not None and best.how == "alias" and _does_verb(tool, verb):
                    best = mention  # "send the leak allowance letter": `send_letter`, by the verb
                elif best is None or best.how != "alias" or not _does_verb(best.tool, verb):
                    best = _earlier(best, mention)
        if best is not None and best.how == "alias" and not _does_verb(best.tool, verb):
            # "send the customer the claim acknowledgement": `send_notification` ("... claim
            # acknowledgement, claim rejection") sends it, not `open_damage_claim` ("claim")
            described = self._described(text, verb)
            best = described or best
        return best or self._verb_phrase(text)

    def _described(self, text: str, verb: list[str]) -> ToolMention | None:
        """The one tool named for the sentence's verb whose description holds two words of the
        sentence in a row."""
        words = _tokens(text)[1:]
        pairs = {f"{a} {b}" for a, b in pairwise(words)}
        found = [
            tool
            for tool in self.catalog.tools
            if _does_verb(tool, verb) and any(pair in tool.description.casefold() for pair in pairs)
        ]
        return ToolMention(found[0], 0, "verb") if len(found) == 1 else None

    def _verb_phrase(self, text: str) -> ToolMention | None:
        tokens = _tokens(text)
        if not tokens:
            return None
        for tool in sorted(self.catalog.tools, key=lambda t: (-len(t.name), t.name)):
            parts = tool.name.split("_")
            if _same_word(tokens[0], parts[0]) and _in_order(tokens[1:], parts[1:]):
                return ToolMention(tool, 0, "verb")
        return None

    def decision_owner(self, verb: str) -> ToolMention | None:
        """The one write tool that records this verb's outcome as a value: "deny" ->
        `set_claim_decision(decision: approved | denied)`."""
        owners = {
            tool.name: tool
            for value, tools in self._enum_values.items()
            if verb.casefold() in verb_stems(value)
            for tool in tools
            if tool.access == "write"
        }
        if len(owners) != 1:
            return None
        return ToolMention(next(iter(owners.values())), 0, "verb")

    def covers_verb(self, verb: str) -> bool:
        """True when a catalog tool is named for this action (`credit` -> apply_account_credit)."""
        return any(verb in tool.name.split("_")[1:] for tool in self.catalog.tools)

    def ticket_tool(self) -> Tool | None:
        """The catalog tool that puts a case in a human team's queue (e.g. `create_ticket`).

        An escalation after which the SOP goes on is a ticket, not a live transfer.
        """
        for tool in sorted(self.catalog.tools, key=lambda t: t.name):
            properties = tool.parameters.get("properties", {})
            if "ticket" in tool.name and any(p in properties for p in ("team", "queue")):
                return tool
        return None

    def enum_owner(self, text: str) -> ToolMention | None:
        """The one tool that has a backticked word of the text among its parameter values.

        "Use security questions instead" names a value in words: a multi-word value counts too
        when the text starts with "use" (one word, such as "lost", is too common to trust).
        """
        for match in _BACKTICK.finditer(text):
            value = match.group(1).strip()
            owners = self._enum_values.get(value, [])
            if len(owners) == 1:
                return ToolMention(owners[0], match.start(), "name")
        for value, owners in sorted(self._enum_values.items()):
            # "(sms_code)": a snake_case value written out is as plain as a backticked one
            found = re.search(rf"(?<![\w`]){re.escape(value)}(?![\w`])", text)
            if "_" in value and len(owners) == 1 and found:
                return ToolMention(owners[0], found.start(), "name")
        # "use the specialist carrier": a value said with its parameter's name ("12 months" is a
        # quantity with its unit, not a tool's choice)
        said = {
            tool.name: tool
            for value, param, tool in self._enum_params
            if not _NUMERIC.fullmatch(value)
            and re.search(rf"(?<!\w){_spoken(value)}[\s-]+{_spoken(param)}(?!\w)", text, re.I)
        }
        if len(said) == 1:
            return ToolMention(next(iter(said.values())), 0, "name")
        if re.match(r"^use\b", text, re.IGNORECASE):
            for value, owners in sorted(self._enum_values.items()):
                spoken = r"[\s_-]+".join(re.escape(w) for w in value.split("_"))
                found = re.search(rf"(?<!\w){spoken}(?!\w)", text, re.IGNORECASE)
                if "_" in value and len(owners) == 1 and found:
                    return ToolMention(owners[0], found.start(), "name")
        return None

    def marked_owner(self, text: str) -> ToolMention | None:
        """ "Mark the ticket collected", "mark the job as paid": the one write tool with that
        value among its parameter's values (`update_ticket`, status `collected`)."""
        if not _MARK.match(text):
            return None
        said = {
            tool.name: tool
            for value, _, tool in self._enum_params
            if tool.access == "write"
            and not _NUMERIC.fullmatch(value)
            and re.search(rf"(?<!\w){_spoken(value)}\W*$", text, re.IGNORECASE)
        }
        return ToolMention(next(iter(said.values())), 0, "verb") if len(said) == 1 else None

    def unknown_backticked(self, text: str) -> list[str]:
        """Backticked identifiers that look like tool names but are not in the catalog."""
        out: list[str] = []
        for match in _BACKTICK.finditer(text):
            name = match.group(1).strip().removesuffix("()")
            if (
                _IDENT.match(name)
                and "_" in name
                and self.catalog.get(name) is None
                and name not in self._enum_values
                and name not in self._param_names
            ):
                out.append(snake(name))
        return out


_MARK = re.compile(r"^(?:mark|flag)\s+\S", re.IGNORECASE)


def _does_verb(tool: Tool, verb: list[str]) -> bool:
    """True when the tool is named for the sentence's verb (`send_letter` for "send ...")."""
    return bool(verb) and _same_word(verb[0], tool.name.split("_")[0])


def _earlier(best: ToolMention | None, new: ToolMention) -> ToolMention:
    return new if best is None or new.position < best.position else best


def _tokens(text: str) -> list[str]:
    words = _WORD.findall(text.casefold().replace("look up", "lookup").replace("pull up", "pull"))
    return words


_NUMERIC = re.compile(r"[\d.,]+")


def _same_word(token: str, word: str) -> bool:
    # "issued", "orders", "customer's" all name the same thing as "issue", "order", "customer".
    return token == word or (token.startswith(word) and len(token) - len(word) <= 2)


def _in_order(tokens: list[str], words: list[str], max_gap: int = 2) -> bool:
    position = 0
    for word in words:
        window = tokens[position : position + max_gap + 1]
        hit = next((i for i, token in enumerate(window) if _same_word(token, word)), None)
        if hit is None:
            return False
        skipped = window[:hit]
        if any(token not in _FILLER and not token.endswith("'s") for token in skipped):
            return False
        position += hit + 1
    return True


def snake(text: str) -> str:
    """A snake_case identifier from any text (camelCase and spaces become underscores)."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)
    name = re.sub(r"[^a-z0-9]+", "_", text.casefold()).strip("_")
    if not name or name[0].isdigit():
        name = f"tool_{name}"
    return f"{name}_" if keyword.iskeyword(name) else name


def proposed_name(action: str, *, any_verb: bool = False) -> tuple[str, str] | None:
    """A proposed tool's (name, access) from an action's verb and object; None if no action.

    With `any_verb`, any verb names a (write) tool: the text says a system does it.
    """
    tokens = _tokens(action)
    if not tokens:
        return None
    verb = tokens[0]
    if tokens[:2] == ["add", "up"]:
        return None  # "add up the price of the items" is sums, not a system
    if _CASE_NOTES.search(action) and verb in _NOTE_VERBS:
        return "record_case_note", "write"  # one name for every "record ... in the case notes"
    if verb in WRITE_VERBS:
        access = "write"
    elif verb in READ_VERBS:
        if verb in _WEAK_READ_VERBS and not _DATA_NOUNS.search(action):
            return None
        access = "read"
    elif any_verb and verb.isalpha():
        access = "write"
    else:
        return None
    lowered = action.casefold().replace("look up", "lookup").replace("pull up", "pull")
    rest = lowered.split(None, 1)[1] if " " in lowered.strip() else ""
    obj = _OBJECT_STOP.split(rest, maxsplit=1)[0]
    words = [
        w
        for w in _WORD.findall(obj)
        if w not in _FILLER
        and not w.endswith("'s")
        and not w.endswith("ly")
        and w not in _PRONOUNS
        and not _AMOUNT.fullmatch(w)  # "add GBP 25": an amount, no thing a tool makes
    ][:2]
    if not words:
        return None
    return snake("_".join([verb, *words])), access


_AMOUNT = re.compile(r"\d[\d.,]*|gbp|usd|eur|aud|cad|nzd|pounds?|dollars?|euros?")
# "issue the new one": a word that stands for a thing named elsewhere names no tool
_PRONOUNS = frozenset(["it", "them", "one", "ones", "these", "those", "same", "other", "another"])
_CASE_NOTES = re.compile(r"\b(?:case|contact)\s+notes?\b|\bin the notes\b", re.IGNORECASE)
_NOTE_VERBS = _words(
    """
    record note log add write document enter put
    """
)


@dataclass(frozen=True)
class Known:
    """A value the conversation already holds when a later step runs."""

    ref: int  # uid of the step that obtained it
    phrase: str  # how the SOP names it, e.g. "order number"
    source: str  # "asked" | "argument" | "returned"
    tool: str | None = None


def _pretty(param: str) -> str:
    words = param.split("_")
    return " ".join("ID" if w == "id" else w for w in words)


def _phrases(param: str) -> list[str]:
    """How an SOP might name a parameter: order_id -> order number, order id, order reference."""
    base = re.sub(r"_(?:id|number|code|no)$", "", param)
    spoken = base.replace("_", " ")
    if base != param:
        return [f"{spoken} number", f"{spoken} id", f"{spoken} reference", f"{spoken} code"]
    extra = {
        "email": ["email address", "email"],
        "postcode": ["postcode", "postal code", "zip code"],
    }
    return extra.get(param, [spoken])


def bind_arguments(
    tool: Tool, *, action: str, condition: str | None, known: list[Known], team: str | None
) -> tuple[list[ToolArgument], list[tuple[int, str]]]:
    """Arguments for a call of `tool`: literals from the text, else where the value comes from.

    Returns the arguments and, for `from_context` texts that name a step, the step uid they name
    (the text holds `{step}` where that step's id goes).
    """
    properties: dict[str, Any] = tool.parameters.get("properties", {})
    required = set(tool.parameters.get("required", []))
    scope = f"{action} {condition or ''}"
    args: list[ToolArgument] = []
    refs: list[tuple[int, str]] = []
    for name, schema in properties.items():
        value = _literal(name, schema if isinstance(schema, dict) else {}, action, scope, team)
        if value is not None:
            args.append(ToolArgument(name=name, value=value))
            continue
        origin = _from_context(name, tool.name, known)
        if origin is not None:
            text, ref = origin
            args.append(ToolArgument(name=name, from_context=text))
            refs.append((ref, name))
            continue
        mentioned = next((p for p in _phrases(name) if p in action.casefold()), None)
        if mentioned is not None:
            args.append(ToolArgument(name=name, from_context=f"the {mentioned} this step names"))
            continue
        if name in required:
            enum = schema.get("enum") if isinstance(schema, dict) else None
            hint = f" (one of: {', '.join(str(v) for v in enum)})" if enum else ""
            args.append(
                ToolArgument(
                    name=name, from_context=f"the {_pretty(name)} from the conversation{hint}"
                )
            )
    return args, refs


def _literal(
    name: str, schema: dict[str, Any], action: str, scope: str, team: str | None
) -> str | int | float | bool | None:
    spoken = r"[\s_]+".join(re.escape(w) for w in name.split("_"))
    quoted = re.search(
        spoken + r"\s*(?:[:=]|of|as|to)?\s*[`\"“']([^`\"”']{1,80})[`\"”']", action, re.IGNORECASE
    )
    enum = schema.get("enum")
    kind = schema.get("type")
    if quoted:
        raw = quoted.group(1).strip()
        if kind in _NUMBER_TYPES:
            number = _to_number(raw, kind)
            if number is not None:
                return number
        elif enum is None or raw in enum:
            return raw
    if isinstance(enum, list):
        hits = _said_values(scope, [v for v in enum if isinstance(v, str)])
        if not hits:  # "deny the claim": the step's verb is the outcome it records
            verb = action.split(None, 1)[0].casefold() if action.split() else ""
            hits = [v for v in enum if isinstance(v, str) and verb in verb_stems(v)]
        if len(hits) == 1:
            return str(hits[0])
        return None
    if kind in _NUMBER_TYPES:
        amounts = [m.group(1) or m.group(2) for m in _MONEY.finditer(action)]
        if len(amounts) == 1 and kind == "number":
            return _to_number(amounts[0], kind)
        return None
    if kind == "string" and name in ("team", "queue", "department", "group"):
        # "team network-operations", "team `billing-supervisors`": the SOP spells the value out.
        slug = re.search(spoken + r"\s+`?([a-z0-9]+(?:[-_][a-z0-9]+)+)`?", action)
        if slug:
            return slug.group(1)
        return team
    return None


def _spoken(name: str) -> str:
    """A regex for a snake_case name as words ("goods_class" -> "goods class")."""
    return r"[\s_-]+".join(re.escape(w) for w in name.split("_") if w)


def _value_pattern(value: str) -> re.Pattern[str]:
    """An enum value said in words, whole ("second_warning_letter": "second warning letter")."""
    return re.compile(rf"(?<!\w){_spoken('_'.join(value.split()))}(?!\w)", re.IGNORECASE)


def _mentions(text: str, value: str) -> bool:
    return bool(_value_pattern(value).search(text))


def _said_values(text: str, values: list[str]) -> list[str]:
    """The enum values the text says, each in words of its own: "send the second warning
    letter" says `second_warning_letter`, and its "warning letter" is no `warning_letter`."""
    said = []
    for value in sorted(values, key=len, reverse=True):
        pattern = _value_pattern(value)
        if pattern.search(text):
            said.append(value)
            text = pattern.sub(" ", text)
    return [v for v in values if v in said]  # the catalog's order


def _to_number(raw: str, kind: str) -> int | float | None:
    try:
        number = float(raw.replace(",", ""))
    except ValueError:
        return None
    if kind == "integer":
        return int(number) if number.is_integer() else None
    return int(number) if number.is_integer() else number


def _from_context(param: str, tool: str, known: list[Known]) -> tuple[str, int] | None:
    phrases = _phrases(param)
    base = re.sub(r"_(?:id|number|code|no)$", "", param)
    # Where the value first entered the conversation: asked for, else first passed to a tool,
    # else returned by a lookup. (A later step may sit in a branch that did not run.)
    for item in known:
        if item.source == "asked" and any(p in item.phrase for p in phrases):
            said = next(p for p in phrases if p in item.phrase)
            return f"the {said} the customer gave in step {{step}}", item.ref
    identifier = base != param or param in ("email", "postcode", "tracking_number")
    for item in known:
        if identifier and item.source == "argument" and item.phrase == param:
            return f"the same {_pretty(param)} as in step {{step}}", item.ref
    for item in known:
        if (
            item.source == "returned"
            and item.tool
            and item.tool != tool
            and base in item.tool.split("_")
        ):
            return f"the {_pretty(param)} returned by `{item.tool}` in step {{step}}", item.ref
    return None
