"""A routine's trigger: one routing sentence, read from "When to use", purpose and scope."""

from __future__ import annotations

import re

from sop_compiler.generate.offline.sections import Section, heading_title
from sop_compiler.models import Block, ListItem, Paragraph, Procedure, block_text
from sop_compiler.shape import title_verdict
from sop_compiler.text import split_sentences

__all__ = ["is_trigger_lead", "trigger_for", "without_trigger_lead"]

_WHO = r"(?:a|an|the)\s+(?:customer|caller|user|member|client|account holder)(?:'s\s+\w+)?"
# "Use this procedure when ...", "Use an account credit when ...": the SOP's own routing rule
_USE_WHEN = re.compile(r"^use\b[^.;:]{0,60}?\bwhen\s+(?P<clause>[^.;:]+)", re.IGNORECASE)
_PATTERNS = [
    re.compile(rf"\b(?:when|if|where|whenever)\s+(?P<clause>{_WHO}\s+[^.;:]+)", re.IGNORECASE),
    # "Customers, most often small businesses, ask us to correct an invoice so ..."
    re.compile(
        r"\b(?P<clause>customers(?:,[^,]{1,60},)?\s+(?:ask|call|write|contact|report|want)\b"
        r"[^.;:]+)",
        re.IGNORECASE,
    ),
    re.compile(r"\b(?P<clause>customers\s+who\s+[^.;:]+)", re.IGNORECASE),
    # "helps agents talk a customer through setting up a new router"
    re.compile(
        r"\b(?:talk|walk|guide|take)s?\s+(?:a|the)\s+customer\s+through\s+(?P<through>[^.;:]+)",
        re.IGNORECASE,
    ),
    re.compile(
        r"\b(?:covers|describes|explains|applies to|is for|use this (?:procedure|sop|process) "
        r"(?:for|when))\s+(?P<clause>[^.;:]+)",
        re.IGNORECASE,
    ),
]
# "A delivery exception is any carrier event that ...": a definition of what the title names
_DEFINES = re.compile(
    r"^(?P<a>an?|the)\s+(?P<term>[\w -]{3,40}?)\s+is\s+(?P<what>(?:any|a|an|the|every)\b[^.;:]+)",
    re.IGNORECASE,
)
_WHEN_TO_USE = re.compile(r"^(?:when to use|when this applies|applicability|use this)", re.I)
_BACKGROUND = re.compile(r"^(?:purpose|scope|overview|introduction|summary|about)", re.I)
_NOT_TRIGGER = re.compile(r"^(?:definitions?|glossary|terms|roles?|references?)", re.I)
_LABEL = re.compile(r"^(?:procedure|part|section|appendix)\s+[A-Z0-9]+\s*[:.-]\s*", re.I)
_RELATIVE_OR = re.compile(r",?\s+or\s+(?=(?:that|who|whose|which)\b)", re.IGNORECASE)
_VERB_OR = re.compile(r",?\s+or\s+(?=[a-z]+s\s)")
_STOP = frozenset(
    ["with", "from", "that", "this", "their", "them", "your", "about", "into", "over", "under"]
)
# Titles whose verb is the agent's part of the work: "asks to accept a return" reads wrong.
_AGENT_VERBS = frozenset(
    ["accept", "handle", "process", "respond", "issue", "apply", "review", "work"]
)
_MODALS = frozenset(
    ["cannot", "can", "could", "will", "would", "should", "must", "may", "might", "did", "had"]
)
_SINGULAR = {"have": "has", "are": "is", "were": "was", "do": "does", "go": "goes"}


# "When a customer asks about a return:" over a procedure's steps: the request it answers
_LEAD_REQUEST = re.compile(
    rf"^(?:when|whenever|if|once)\s+(?:{_WHO}|someone|anyone|a\s+person)\s+(?:asks|calls|"
    r"contacts|writes|emails|chats|requests|reports|wants|needs|phones|rings|texts|messages|"
    r"reaches out|gets in touch)\b[^.;:]*:$",
    re.IGNORECASE,
)


# "Use this when a customer phones to book": the SOP's own routing line over the steps
_USE_THIS_WHEN = re.compile(
    r"^(?:use\s+(?:this|these)\b[^.;:]{0,40}?\bwhen\b[^;:]*[.:]?|when\s+to\s+use\s+(?:it|this)\s*:.*)$",
    re.I,
)
# "When to use it: the rider says ...": the SOP's label for when the routine applies
_WHEN_TO_USE_LABEL = re.compile(r"^\W*when\s+to\s+use\s+(?:it|this)\W*:\W*(?P<clause>[^.;]+)", re.I)


def is_trigger_lead(text: str) -> bool:
    """True for a lead line that says which request the procedure answers ("When a customer asks
    about a return:", "Use this when a customer phones to book."), which `trigger_for` reads: it
    is when the routine applies, not a step.
    "If the customer is a business customer:" tests the case and stays a condition."""
    said = " ".join(text.split())
    return _LEAD_REQUEST.match(said) is not None or _USE_THIS_WHEN.match(said) is not None


def without_trigger_lead(text: str) -> str | None:
    """`text` without the lead line that ends it ("Most people pay by bank transfer. If someone
    rings to pay:" -> "Most people pay by bank transfer."); None when that line is all of it."""
    *before, last = split_sentences(" ".join(text.split())) or [""]
    if not is_trigger_lead(last):
        return text
    return " ".join(before) or None


def trigger_for(procedure: Procedure, parts: list[Section]) -> str:
    """When to use the routine, in one sentence (it feeds the triage agent's routing)."""
    title = _LABEL.sub("", procedure.title).strip() or procedure.title
    own = [b for s in parts if s.kind == "context" for b in s.blocks]
    intro = next((s.blocks for s in parts if s.kind == "steps" and not s.lead_in), [])
    own += [b for b in intro[:1] if isinstance(b, Paragraph)]  # a lead paragraph
    # the lead paragraph under the procedure's own heading, which segment keeps as context
    own += [b for b in procedure.context if b.prov.heading_path[-1:] == [procedure.title]]
    for block in _texts(own):
        for sentence in split_sentences(block_text(block)):
            if match := _USE_WHEN.match(sentence.strip()) or _WHEN_TO_USE_LABEL.match(
                sentence.strip()
            ):
                return f"Use when {_clean(match.group('clause'))}."
    # A heading that orders a task ("Cancel a refill") says the request better than the scope
    # the whole document shares ("refill requests by phone or chat"), which every one of its
    # procedures would get word for word.
    shared_blocks = [] if _imperative(title) else _by_relevance(procedure)
    for blocks, shared in ((own, False), (shared_blocks, True)):
        for block in _texts(blocks):
            for sentence in split_sentences(block_text(block)):
                found = _from_sentence(sentence, title, shared)
                if found is not None:
                    return found
    return _from_title(title)


def _texts(blocks: list[Block]) -> list[Block]:
    return [b for b in blocks if isinstance(b, (ListItem, Paragraph))]


def _from_sentence(sentence: str, title: str, shared: bool) -> str | None:
    defined = _DEFINES.match(sentence.strip())
    if defined and _words(defined.group("term")) <= _words(title):
        article = defined.group("a").casefold()
        return f"Use for {article} {defined.group('term')}: {_clean(defined.group('what'))}."
    for pattern in _PATTERNS:
        match = pattern.search(sentence)
        if match is None:
            continue
        if "through" in match.groupdict() and match.group("through"):
            return f"Use when a customer needs help {_clean(match.group('through'))}."
        clause = _clean(match.group("clause"))
        # "explains how Shipping agents handle a parcel that ..." -> "a parcel that ..."
        clause = re.sub(
            r"^how\s+(?:[A-Z]\w*\s+){0,3}(?:agents?|staff|advisors?)\s+\w+\s+", "", clause
        )
        clause = re.sub(r"^the (customer|caller|user|member|client)", r"a \1", clause, flags=re.I)
        clause = _one_customer(clause)
        if shared:
            clause = _for_title(clause, title)
        who = re.match(_WHO, clause, re.IGNORECASE) and not re.match(r"^a \w+ who\b", clause)
        return f"Use {'when' if who else 'for'} {clause}."
    return None


def _one_customer(clause: str) -> str:
    """One customer's request: "customers who have ..." -> "a customer who has ..."."""
    match = re.match(
        r"^customers(?P<aside>,[^,]+,)?\s+(?P<who>who\s+)?(?P<verb>\w+)\b", clause, re.IGNORECASE
    )
    if match is None:
        return clause
    verb = match.group("verb")
    if verb.casefold() in _MODALS:
        singular = verb  # "customers who cannot get online" -> "a customer who cannot ..."
    else:
        singular = _SINGULAR.get(verb, verb if verb.endswith("s") else f"{verb}s")
    rest = clause[match.end() :]
    if match.group("who"):
        return f"a customer who {singular}{rest}"
    return f"a customer {singular}{rest}"


def _for_title(clause: str, title: str) -> str:
    """Of a clause shared by several procedures, the part this procedure's title is about.

    "a parcel that the customer reports as lost or that arrived damaged" is two cases; the
    routine "Package arrived damaged" is the second: "a parcel that arrived damaged".
    """
    head, parts = _disjuncts(clause)
    if len(parts) < 2:
        return clause
    keys = _words(title)
    hits = [p for p in parts if _words(p) & keys]
    if not hits or len(hits) == len(parts):
        return clause
    picked = hits[0]
    if picked is not parts[0] and re.search(r"\bit\b", picked):
        # "... disputes a card payment or asks for information about it": name what "it" is
        thing = re.findall(r"\b(?:an?|the)\s+[\w -]+?(?=\s*\(|$)", parts[0])
        if thing:
            picked = re.sub(r"\bit\b", thing[-1].strip(), picked, count=1)
    return f"{head} {picked}".strip()


def _disjuncts(clause: str) -> tuple[str, list[str]]:
    """The shared subject and the alternatives of "X that A or that B" / "X does A or does B"."""
    parts = _RELATIVE_OR.split(clause)
    if len(parts) > 1:
        first = re.search(r"\b(?:that|who|whose|which)\b", parts[0])
        if first is None:
            return "", [clause]
        return parts[0][: first.start()].strip(), [parts[0][first.start() :], *parts[1:]]
    parts = _VERB_OR.split(clause)
    if len(parts) > 1:
        tokens = parts[0].split()
        verb = next(
            (i for i, t in enumerate(tokens) if i >= 2 and t.endswith("s") and "'" not in t), None
        )
        if verb is None:
            return "", [clause]
        return " ".join(tokens[:verb]), [" ".join(tokens[verb:]), *parts[1:]]
    return "", [clause]


def _imperative(title: str) -> bool:
    """ "Cancel a refill", "Change the flight": a heading that starts with a task verb."""
    verdict = title_verdict(title)
    first = title.split(None, 1)[0].casefold() if title.split() else ""
    return verdict is not None and "task verb" in verdict.reason and not first.endswith("ing")


def _from_title(title: str) -> str:
    """From a title: "Reopening an account" or "Reopen an account" -> "Use when a customer asks
    to reopen an account"."""
    first, _, rest = title.partition(" ")
    # "Identity Verification" -> "identity verification"; acronyms ("VAT") stay as they are
    lowered = " ".join(w.lower() if w[1:2].islower() else w for w in title.split())
    if _imperative(title) and rest:
        return f"Use when a customer asks to {first.casefold()} {rest}."
    if first.casefold().endswith("ing") and rest:
        verb = _infinitive(first.casefold())
        if verb not in _AGENT_VERBS:
            return f"Use when a customer asks to {verb} {rest}."
    return f"Use for {lowered}."


def _infinitive(gerund: str) -> str:
    stem = gerund[:-3]
    if stem.endswith("y") or len(stem) < 3:
        return stem
    if len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] not in "lsz":
        return stem[:-1]  # "shipping" -> "ship"
    if re.search(r"(?:[^aeiou][lcvgz]|[aeiou]s|u)$", stem):
        return f"{stem}e"  # "closing" -> "close", "handling" -> "handle", "issuing" -> "issue"
    return stem


def _words(text: str) -> set[str]:
    return {w[:5] for w in re.findall(r"[a-z]+", text.casefold()) if len(w) >= 4 and w not in _STOP}


def _clean(text: str) -> str:
    return " ".join(text.split()).rstrip(" ,")


def _by_relevance(procedure: Procedure) -> list[Block]:
    """Context blocks in the order a trigger is read from: "When to use", then purpose/scope.

    Definitions and roles describe words and people, not requests: they never give a trigger.
    """
    ranked: list[tuple[int, int, Block]] = []
    for position, block in enumerate(procedure.context):
        title = heading_title(block.prov.heading_path[-1]) if block.prov.heading_path else ""
        if _NOT_TRIGGER.match(title):
            continue
        rank = 0 if _WHEN_TO_USE.match(title) else 1 if _BACKGROUND.match(title) else 2
        ranked.append((rank, position, block))
    return [block for _, _, block in sorted(ranked, key=lambda item: item[:2])]
