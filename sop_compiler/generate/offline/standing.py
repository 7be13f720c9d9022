"""Standing text: the rules a routine keeps at every step, and the facts it may look up.

Policies say most of what matters as constraints, not steps: "A reservation with any flown
segment cannot be cancelled", "Refunds go only to the original payment method", "You must get
the customer's explicit yes before any change". Each such sentence, in the procedure or in the
document text every procedure inherits (its context), becomes a rule:

- confirm_before: a confirmation, consent or explicit yes is asked before something;
- only_if: "only if / when / to / for ...", or "unless" with no prohibition;
- never: a prohibition (never, do not, cannot, may not, is not allowed, not eligible ...);
- limit: a number to keep within (at most, no more than, up to, maximum, within N days);
- always: must, always, is required, has to, "only" with no condition ("only one user").

A rule governs the catalog tools it names, or whose verb and object it says ("cannot be
cancelled" governs `cancel_reservation` when the sentence also names the reservation). A rule
about "any change" or "every action" governs every write tool the routine calls.

Facts are the tables (one fact per row, each cell with its column) and the descriptive sentences
of the context (what a record contains, definitions, fees). The sentences of the procedure's own
blocks stay with the steps: the offline reader decides what they do.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from sop_compiler.generate.offline.binding import WHO, canonical_words, nominal_verbs, verb_stems
from sop_compiler.generate.offline.nodes import Builder, Node, flatten, quote
from sop_compiler.generate.offline.phrases import CONDITION_OPENER
from sop_compiler.generate.offline.sections import (
    ACTION_HEADER,
    AUDIENCE,
    CASE_HEADER,
    EXCEPTION_LABEL,
    cited,
)
from sop_compiler.generate.offline.tools import ToolIndex
from sop_compiler.models import (
    Heading,
    Knowledge,
    ListItem,
    Paragraph,
    Procedure,
    Quote,
    Rule,
    RuleKind,
    SourceRef,
    Table,
    block_text,
)
from sop_compiler.shape import is_boilerplate
from sop_compiler.text import (
    CONTEXT_TITLE,
    INSTRUCTION_VERBS,
    NUMBERING,
    injection_excerpt,
    is_instruction,
    quote_form,
    split_sentences,
)

__all__ = [
    "Standing",
    "confirm_gates",
    "insert_confirmations",
    "is_decision_table",
    "rule_kind",
    "sentence_key",
    "standing",
]

_CONFIRM = re.compile(
    r"\b(?:confirm(?:s|ed|ation)?|explicit(?:ly)?\s+(?:yes|consent|agreement|approval)|"
    r"consent|agree(?:s|ment)?|say(?:s)?\s+yes|a\s+(?:clear\s+)?yes)\b",
    re.IGNORECASE,
)
# "Confirm the caller's date of birth": checking who is asking, not asking for a yes.
_CONFIRMS_IDENTITY = re.compile(
    r"\bconfirm(?:s|ed)?\s+(?:the\s+)?(?:\w+(?:'s|s')\s+)?(?:date\s+of\s+birth|identity|"
    r"full\s+name|(?:home\s+|postal\s+|email\s+)?address|phone\s+number|postcode|zip\s+code|"
    r"passcode|pin)\b",
    re.IGNORECASE,
)
_NOTIFY = re.compile(r"^(?:send|notify|email|message|sms|text)_", re.IGNORECASE)
# things named with a verb-like word: "the confirmation number" asks for no confirmation, "the
# email address" sends nothing, "the order number" orders nothing
_NOUN_COMPOUND = re.compile(
    r"\b(?:e-?mail\s+address(?:es)?|phone\s+numbers?|order\s+numbers?|booking\s+references?|"
    r"confirmation\s+(?:number|code|email|e-mail|letter|message|page|id|reference|link|sms)s?)\b",
    re.IGNORECASE,
)
_BEFORE = re.compile(r"\b(?:before|prior\s+to|first)\b", re.IGNORECASE)
_ONLY_IF = re.compile(
    r"\bonly\s+(?:\w+\s+){0,2}?(?:if|when|whenever|after|once|where|while|to|for|with|by|on|in|"
    r"within|from|via|through|at)\b|\bonly\s+\w+\s+(?:who|that|which|whose)\b",
    re.IGNORECASE,
)
_UNLESS = re.compile(r"\bunless\b", re.IGNORECASE)
# "prohibited content", "forbidden items": the word names a kind of thing, forbids nothing
_A_KIND_WORDS = (
    r"(?:prohibited|forbidden)\s+(?!(?:from|to|in|on|at|for|by|under|unless|except|without|and|"
    r"or|if|when|where|while)\b)[a-z]"
)
_A_KIND = re.compile(_A_KIND_WORDS, re.IGNORECASE)
_NEVER = re.compile(
    r"\b(?:never|must\s+not|mustn't|cannot|can\s*not|can't|may\s+not|should\s+not|shouldn't|"
    r"will\s+not|won't|is\s+not|are\s+not|isn't|aren't|"
    r"not\s+(?:allowed|permitted|eligible|possible|available)|ineligible|"
    r"under\s+no\s+circumstances)\b|"
    # "Smoking is prohibited", "prohibited from", never "prohibited content (hate symbols, ...)":
    # a kind of thing, named by the word
    r"\b(?!" + _A_KIND_WORDS + r")(?:prohibited|forbidden)\b|"
    # "Do not refund ...", "...; do not open a claim", "agents must not": an order, while
    # "Credits do not expire" or "we do not control the timing" describes
    r"(?:^|[:;,]\s*|\b(?:you|agents?|staff|representatives?|advisors?)\s+(?:should\s+)?)"
    r"(?:please\s+)?(?:do\s+not|don't)\b|\bshall\s+not\b|"
    # "we do not offer exchanges over the phone": what the company never does for anyone
    r"\bwe\s+(?:do\s+not|don't)\s+(?:offer|do|accept|give|issue|refund|provide|allow|send|"
    r"process|book|cancel|sell|exchange|replace|ship|deliver|waive|extend|transfer|discuss)\b",
    re.IGNORECASE,
)
_DENIED = re.compile(  # "is not" / "are not" count only before a permission word
    r"\b(?:is|are|isn't|aren't)\s+(?:not\s+)?(?:allowed|permitted|eligible|possible|available|"
    r"refundable|transferable|accepted|covered|offered|given)\b",
    re.IGNORECASE,
)
_LIMIT = re.compile(
    r"\b(?:at\s+most|at\s+least|no\s+more\s+than|no\s+later\s+than|not\s+more\s+than|maximum|"
    r"minimum|max\.?|min\.?|(?:must\s+not\s+|never\s+)?exceed(?:s|ing)?|limit(?:ed)?\s+to|"
    r"capped\s+at|\d+\s+or\s+(?:less|fewer|more))\b",
    re.IGNORECASE,
)
# "within 30 days", "up to $50" restrict only when something depends on them
_WEAK_LIMIT = re.compile(r"\b(?:within|up\s+to)\b", re.IGNORECASE)
_ORDER_OF_UP_TO = re.compile(
    r"^(?:(?:you|agents?|we)\s+(?:can|may)\s+)?(?:" + "|".join(sorted(INSTRUCTION_VERBS)) + r")\b"
    r"[^.;:]*\bup\s+to\s+(?:[£$€]\s?)?\d",
    re.IGNORECASE,
)
_DEPENDS = re.compile(
    r"\b(?:needs?|requires?|required|must|only|may|allowed|permitted|accepted|eligible|valid|"
    r"free|refundable|for\s+(?:[\w']+\s+)?(?:approval|sign-off|authori[sz]ation))\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|twelve|once|twice)\b", re.I
)
_ALWAYS = re.compile(
    r"\b(?:always|must|shall|is\s+required|are\s+required|required\s+to|need(?:s)?\s+to|"
    r"has\s+to|have\s+to|mandatory|at\s+all\s+times|every\s+time)\b",
    re.IGNORECASE,
)
_EVERY_CHANGE = re.compile(
    r"^\s*confirm\s+(?:any|every|each|all)\b|\bwait\s+for\s+(?:a|an|their)\s+(?:clear\s+|explicit\s+)?yes\b",
    re.IGNORECASE,
)
# "Only the policyholder may file a claim", "Only pending orders can be cancelled"
_ONLY_SUBJECT = re.compile(
    r"^\s*only\s+(?:\w+\s+){1,4}?(?:may|can|is|are|will|get|gets|qualify|qualifies)\b",
    re.IGNORECASE,
)
_ONE_OF = re.compile(r"\bmust\s+be\s+(?:either|one\s+of)\b", re.IGNORECASE)
# a comparison is a limit when something depends on it: "Returns above 500 USD need approval"
_COMPARED = re.compile(
    r"\b(?:above|over|beyond|more\s+than|less\s+than|fewer\s+than|below|under)\s+"
    r"(?:[$€£]\s?)?\d",
    re.IGNORECASE,
)
# "Goodwill voucher: a discretionary voucher ...", "Preflight — the automatic file check ...":
# a term defined, not a rule
_DEFINITION = re.compile(r"^[A-Z][\w\s()'/-]{1,40}(?::|\s[\u2014\u2013])\s+(?:an?|the)\s", re.I)
# words that make a rule even in a background section (purpose, scope, roles, definitions)
_STRONG = re.compile(
    r"\b(?:never|must|must\s+not|cannot|can't|may\s+not|should\s+not|shall\s+not|prohibited|"
    r"forbidden|at\s+most|no\s+more\s+than|under\s+no\s+circumstances)\b",
    re.IGNORECASE,
)
# a document's control line: fields set apart by dots or bars, an owner or a version among them
# "Read these before the procedures.": a word on the list below, no rule of its own
_READ_THESE = re.compile(r"^\W*(?:please\s+)?read\s+(?:these|this|the\s+following)\b", re.I)
_DOCUMENT_META = re.compile(
    r"^(?=.*\s[·|•]\s)(?=.*\b(?:owner|version|v\d+(?:\.\d+)+|last\s+(?:reviewed|updated)|"
    r"classification|document\s+(?:id|number|ref))\b)",
    re.IGNORECASE,
)
# "a PDF preview that the customer must approve": said of the thing, in a relative clause
_DESCRIBED = re.compile(r"\b(?:that|which|who|whom)\s+(?:[\w'-]+\s+){0,4}$", re.IGNORECASE)


def _strong(text: str) -> bool:
    """True when a word of `text` makes a rule even in a background section, said of what the
    reader does ("Never quote a fix time"), not of a thing it describes ("the proof that the
    customer must approve", "prohibited content")."""
    return any(
        not _DESCRIBED.search(text[: match.start()]) and not _A_KIND.match(text, match.start())
        for match in _STRONG.finditer(text)
    )


# "Tell the customer that they do not need to call again": the words to say, not a rule
_SAYING = re.compile(
    r"^\s*(?:tell|explain|inform|remind|advise|say|let\s+\w+\s+know|reassure)\b", re.IGNORECASE
)
_PURPOSE = re.compile(
    r"^\s*(?:it|this\s+(?:procedure|sop|policy|article|document|guide|process|playbook))\s+"
    r"(?:exists|says|tells|describes|covers|explains|sets\s+out|is\s+for|applies)\b",
    re.IGNORECASE,
)
_BACKGROUND = re.compile(r"^(?:roles?|responsibilit|terms?\b|key\s+terms)", re.IGNORECASE)
_BEYOND = re.compile(r"\b(?:beyond|exceed(?:s|ing)?)\s+(?:[$€£]\s?)?\d", re.IGNORECASE)
_FREQUENCY = re.compile(
    r"\b(?:once|twice|\d+\s+times?)\s+(?:per|a|an|every|each|in)\b|\b(?:once|twice)\s+in\b",
    re.IGNORECASE,
)
_NO_NOUN = re.compile(
    r"\bno\s+(?:partial\s+|[\w-]+\s+)?(?:refunds?|exceptions?|returns?|exchanges?|credits?|cash|"
    r"compensation|discounts?|waivers?|extensions?|transfers?|cancellations?)\b",
    re.IGNORECASE,
)
# "Complete the security questions before discussing the policy", "Take payment before
# booking": an order that comes first, whatever the request
_ORDER_BEFORE = re.compile(r"\bbefore\s+(?:you\s+|we\s+)?(?P<verb>[a-z]+)\b", re.IGNORECASE)
# "Log an incident in every case, even if resolved"
_EVERY_CASE = re.compile(r"\bin\s+(?:every|each|all|any)\s+cases?\b", re.IGNORECASE)
# "Cancelling needs the Transport Manager's approval"
_NEEDS_APPROVAL = re.compile(
    r"\b(?:(?:needs?|requires?)\s+(?:the\s+|a\s+|an\s+)?|go(?:es)?\s+to\s+)[\w' -]{0,40}?"
    r"(?:approval|authori[sz]ation|sign-off|permission)\b",
    re.IGNORECASE,
)
# an imperative that holds for every request: "Verify the cardholder before discussing any card"
_BEFORE_ANY = re.compile(r"\bbefore\s+(?:\w+\s+){0,2}?(?:any|every|each|all)\b", re.IGNORECASE)
_ONLY = re.compile(r"\bonly\b", re.IGNORECASE)
_CONDITION = re.compile(
    r"\b(?:only\s+(?:\w+\s+){0,2}?(?:if|when|whenever|after|once|where|while)|unless)\s+(?P<c>.+)$",
    re.IGNORECASE,
)
# a rule about every change rather than one tool: "before taking any action that updates ..."
_ANY_WRITE = re.compile(
    r"\b(?:any|every|each|all)\s+(?:\w+\s+){0,2}?(?:change|changes|action|actions|update|updates|"
    r"modification|modifications|write|writes|transaction|transactions|booking|order|account)\b",
    re.IGNORECASE,
)
# an item that opens a branch; "Where ...", "Should ..." and "As long as ..." open one only with
# the comma that ends their test (_SCOPE), as they also open statements ("Where we can, ...")
_BRANCH = re.compile(
    r"^\s*(?:if|when|whenever|otherwise|if not|in case|in the event(?: that)?)\b", re.IGNORECASE
)
_QUOTED = re.compile(r"[\"“”][^\"“”]*[\"“”]")  # quoted values name no rule words
_LEADING_MARK = re.compile(r"^\s*(?:[-*•]\s+|\d+[.)]\s+|[a-z][.)]\s+)")


@dataclass
class Standing:
    """What a procedure holds besides its steps."""

    rules: list[Rule] = field(default_factory=list)
    knowledge: list[Knowledge] = field(default_factory=list)
    # (block id, sentence_key) of every rule sentence: the reader keeps them out of the steps
    rule_sentences: set[tuple[str, str]] = field(default_factory=set)
    general_writes: list[Rule] = field(default_factory=list)  # rules about every write


def sentence_key(sentence: str) -> str:
    """A sentence as rules record it: one space between words, no list marker in front."""
    return _LEADING_MARK.sub("", " ".join(sentence.split()))


def rule_kind(sentence: str) -> RuleKind | None:
    """The kind of rule a sentence states, or None when it restricts nothing.

    "If the booking is within 24 hours, cancel it" is a branch of the steps, not a rule: a
    sentence that opens with a condition is a rule only when it forbids or restricts outright.
    """
    if _BRANCH.match(sentence) and not _ONLY_IF.search(sentence):
        return None  # the steps read it as a condition
    if _DEFINITION.match(sentence) and not _strong(sentence):
        return None
    if _DOCUMENT_META.match(sentence) or is_boilerplate(sentence) or _READ_THESE.match(sentence):
        return None  # "Owner: Support Operations · Version 1.9 · Internal only", "Controlled
        # copy: do not print"
    if (_SAYING.match(sentence) and not _TELL_BEFORE.search(sentence)) or _PURPOSE.match(sentence):
        return None  # what to tell the customer, or why the document exists
    sentence = _QUOTED.sub('""', sentence)  # "no longer needed" is a value, not a prohibition
    sentence = _LEADING_MARK.sub("", sentence)
    sentence = _NOUN_COMPOUND.sub(" ", sentence)
    if _CONFIRMS_IDENTITY.search(sentence):
        return "always"  # "confirm the patient's date of birth before ...": who, not a yes
    if _CONFIRM.search(sentence) and (_BEFORE.search(sentence) or _EVERY_CHANGE.search(sentence)):
        return "confirm_before"
    if (told := _TELL_BEFORE.search(sentence)) and _a_change(told["verb"]):
        # "tell the pupil about the charge before you cancel"; never "Never tell a passenger
        # their bag is lost before day 21", a time
        return "confirm_before"
    if (
        _ONLY_IF.search(sentence)
        or _ONLY_SUBJECT.match(sentence)
        or _ONE_OF.search(sentence)
        or _NONE_UNTIL.match(sentence)
    ):
        return "only_if"
    if (
        (_NEVER.search(sentence) and not _harmless_not(sentence))
        or _NO_NOUN.search(sentence)
        or _NO_ONE_MAY.search(sentence)
        or _NON_ABLE.search(sentence)
    ):
        # "never offer it twice in 12 months", "never extend beyond 16:00": a number to keep to
        return "limit" if _FREQUENCY.search(sentence) or _BEYOND.search(sentence) else "never"
    if (
        _ALLOWED_UNTIL.search(sentence)
        or _ALLOWANCE.search(sentence)
        or _UP_TO_YOU.search(sentence)
    ):
        # "Slots can be changed up to 11pm the night before", "one ... per stay", "Refunds up
        # to £50 you can do yourself"
        return "limit"
    numbered_limit = bool(
        (_COMPARED.search(sentence) and _DEPENDS.search(sentence)) or _FREQUENCY.search(sentence)
    )
    if _UNLESS.search(sentence):
        return "only_if"
    # "Pause the subscription for up to 3 months", "you can offer a voucher of up to £40": the
    # most the order may do
    most = _ORDER_OF_UP_TO.search(sentence)
    weak = _WEAK_LIMIT.search(sentence) and (_DEPENDS.search(sentence) or most)
    if numbered_limit or ((_LIMIT.search(sentence) or weak) and _NUMBER.search(sentence)):
        return "limit"
    ordered = (
        sentence.split(None, 1)[0].casefold() in INSTRUCTION_VERBS if sentence.split() else False
    )
    if _ONLY_COUNT.match(sentence):
        return "limit"  # "Only one remote reset per fault"
    if _NEEDS_APPROVAL.search(sentence):
        return "only_if"  # "Cancelling needs the Transport Manager's approval"
    if _ONLY.search(sentence) and not ordered:
        return "only_if"  # "CSEs may only discuss a shipment with ...", "accepted ... only"
    if (
        _ALWAYS.search(sentence)
        or _ONLY.search(sentence)  # "Help only one user per conversation": an order to keep
        or _BEFORE_ANY.search(sentence)
        or _EVERY_ONE.search(sentence)
        or _EVERY_CASE.search(sentence)
        or (
            ordered
            and (first := _ORDER_BEFORE.search(sentence)) is not None
            and first["verb"].casefold() not in _NOT_A_CHANGE  # "... before you end the call"
        )
    ):
        return "always"
    return None


# what may be done to a thing until when, or how often: "Slots can be changed up to 11pm the
# night before delivery", "A booking can be moved for free once"
_ALLOWED_UNTIL = re.compile(
    r"\b(?:can|may)\s+(?:only\s+)?be\s+[a-z]+(?:ed|en)\b[^.;:]{0,40}?\b(?:up\s+to|until|"
    r"no\s+later\s+than|once|twice|(?:one|two|three|[1-9])\s+times?)\b",
    re.IGNORECASE,
)
# "Refunds up to £50 you can do yourself": how far the reader may go alone
_UP_TO_YOU = re.compile(
    r"\bup\s+to\s+(?:[£$€]\s?)?\d[\d,.]*\b[^.;]{0,30}?\byou\s+(?:can|may)\b", re.IGNORECASE
)
# how many someone gets: "Platinum members get one late cancellation per stay"
_ALLOWANCE = re.compile(
    r"\b(?:gets?|receives?|(?:is|are)\s+allowed)\s+(?:one|two|three|[1-9])\s+[\w -]{1,40}?"
    r"\s+per\s+[a-z]+",
    re.IGNORECASE,
)
# "tell the pupil about the charge before you cancel", "get their agreement before you raise"
_TELL_BEFORE = re.compile(
    r"\b(?:tell|inform|warn|notify|get\s+(?:their|his|her|the\s+\w+'s)\s+(?:agreement|ok|okay|"
    r"go-ahead|yes))\b.*?\bbefore\s+(?:you\s+|we\s+)?(?P<verb>[a-z]+)",
    re.IGNORECASE,
)
_NOT_A_CHANGE = frozenset({"end", "finish", "close", "hang", "leave", "transfer"})


def _a_change(verb: str) -> bool:
    """ "before you cancel", "before cancelling": a change done after the telling; "before day
    21", "before the cut-off" is a time."""
    verb = verb.casefold()
    done = verb[:-3] if verb.endswith("ing") else verb
    said = {verb, done, f"{done}e", done[:-1] if done[-1:] == done[-2:-1] else done}
    return bool(said & INSTRUCTION_VERBS) and not said & _NOT_A_CHANGE


_ONLY_COUNT = re.compile(r"^\s*only\s+(?:one|two|three|1|2|3)\b", re.IGNORECASE)


# "No loan information may be disclosed to ...": nothing of that kind may be done
# "NO BIKE LEAVES THE WORKSHOP UNTIL IT IS PAID FOR IN FULL": nothing of that kind is done
# before the condition holds
_NONE_UNTIL = re.compile(r"^\s*no\s+[a-z]+(?:\s+[a-z]+)?\s+[a-z]+s\b[^.;]{0,60}?\buntil\b", re.I)
_NO_ONE_MAY = re.compile(
    r"^\s*no\s+[\w' -]{1,40}?\s+(?:may|can|shall|will|is\s+to|are\s+to)\s+be\b", re.I
)
# "Promotional rates are non-refundable"
_NON_ABLE = re.compile(
    r"\bnon-?(?:refundable|transferable|returnable|exchangeable|cancell?able)\b", re.I
)
# "Every call ends with a contact note", "Every request ... is noted on the permit"
_EVERY_ONE = re.compile(
    r"^\s*(?:every|each)\s+[\w' -]{1,60}?\s+(?:is|are|ends|gets|needs|must|has|starts)\b", re.I
)


def _harmless_not(sentence: str) -> bool:
    """ "The order is not yet shipped", "customers who cannot get online": no prohibition.

    A bare "is not" / "are not" counts only before a permission word ("is not refundable"), and
    a negation inside a relative clause ("who cannot", "that does not") describes someone.
    """
    forbidding = [
        m
        for m in _NEVER.finditer(sentence)
        if not _RELATIVE.search(sentence[: m.start()])
        and (
            not re.fullmatch(r"(?:is|are)\s+not|isn't|aren't", m.group(0), re.IGNORECASE)
            or _done_to(sentence[m.end() :])  # "a transcript is not released while ..."
        )
    ]
    return not forbidding and not _DENIED.search(sentence)


# "customers who cannot", "borrowers call when they cannot pay": someone described
_RELATIVE = re.compile(
    r"\b(?:who|that|which|whose|where)\s+$|"
    r"\b(?:when|because|since|as|until|while)\s+(?:they|he|she|we|you|it|the\s+\w+)\s+$",
    re.IGNORECASE,
)


def _done_to(rest: str) -> bool:
    """True when `rest` opens with the participle of an action ("released", "refunded")."""
    word = rest.split(None, 1)[0].casefold().strip(",.;:") if rest.split() else ""
    return bool(verb_stems(word) & INSTRUCTION_VERBS) or word in _DONE_IRREGULAR


_DONE_IRREGULAR = frozenset({"given", "sent", "paid", "sold", "shown", "made", "kept", "held"})


def standing(procedure: Procedure, tools: ToolIndex) -> Standing:
    """The rules and facts of one procedure: its own blocks and the context it inherits."""
    out = Standing()
    seen: set[str] = set()
    for where, blocks in (("context", procedure.context), ("own", procedure.blocks)):
        background = audience = False
        lead: str | None = None  # "Exceptions - no compensation is given:" over its cases
        for at, block in enumerate(blocks):
            stem, lead = lead, None
            if isinstance(block, Heading):
                title = NUMBERING.sub("", block.text).strip()
                background = bool(CONTEXT_TITLE.match(title) or _BACKGROUND.match(title))
                audience = AUDIENCE.match(title) is not None
                continue
            if isinstance(block, Table) and (columns := _do_and_dont(block)):
                # "Do | Don't": each cell a rule, "Don't ..." never, "Quote the charge" always
                for column, cell in columns:
                    text = sentence_key(cell)
                    if text and text not in seen:
                        seen.add(text)
                        out.rules.append(
                            Rule(
                                kind=rule_kind(text) or column,
                                text=text,
                                governs=_governs(text, tools),
                                source=_ref(block.id, text),
                            )
                        )
                continue
            if isinstance(block, Table):
                if not is_decision_table(block):  # a decision table is edge cases
                    out.knowledge += _table_facts(block)
                if _action_table(block):  # "Safety concern | ... Do not contact the instructor."
                    for case, cell in _action_cells(block):
                        _add_embedded(out, seen, block.id, cell, case, tools)
                continue
            if not isinstance(block, (Paragraph, ListItem, Quote)):
                continue
            if stem is not None and isinstance(block, ListItem) and completes(stem, block.text):
                # "- when the delay was caused by the customer ..., or": the lead's rule, for
                # this case; the item's own words are its source
                lead = stem
                case = " ".join(block.text.split())  # folded: no run of spaces to backtrack
                text = f"{stem} {_COMPLETION_END.sub('', case)}."
                if text not in seen:
                    seen.add(text)
                    rule = Rule(
                        kind=rule_kind(stem) or "never",
                        text=text,
                        governs=_governs(text, tools),
                        source=_ref(block.id, block.text),
                    )
                    out.rules.append(rule)
                continue
            lead = rule_lead(block.text)
            after = blocks[at + 1] if at + 1 < len(blocks) else None
            if lead is not None and isinstance(after, ListItem) and completes(lead, after.text):
                # the lead is said whole by the rules of its items
                keys = {(block.id, sentence_key(t)) for t in split_sentences(block.text)}
                out.rule_sentences |= keys
                continue
            sentences = split_sentences(block.text)
            # "If an item never arrived, transfer ... Do not correct the invoice yet.": what follows
            # a condition holds when it holds, never at every step
            opening = sentence_key(sentences[0]) if sentences else ""
            scope = _scope(opening) if _BRANCH.match(opening) else _asked(opening, sentences)
            for sentence in sentences:
                text = sentence_key(sentence)
                if not text or injection_excerpt(text) is not None or text in seen:
                    continue
                kind = rule_kind(text)
                if _BRANCH.match(opening) and scope is None and text != opening:
                    kind = None  # "Otherwise, ...": a branch whose condition is another item's
                if background and not _strong(text):
                    kind = None  # "It exists so that ... never refunded twice": the why
                if audience and isinstance(block, ListItem):
                    kind = None  # "- Branch supervisors (the end-of-day section is for you only)"
                if kind is None:
                    descriptive = not is_instruction(text) and _is_fact(text)
                    if (where == "context" or background) and descriptive:
                        seen.add(text)
                        out.knowledge.append(Knowledge(fact=text, source=_ref(block.id, text)))
                    elif not background:
                        # "Where it is more than £300, log it ... and do not process the
                        # refund yourself", "Found? -> do not create a new card"
                        test = _scope(text) or _scope(opening)
                        _add_embedded(out, seen, block.id, text, test, tools)
                    continue
                seen.add(text)
                rule = Rule(
                    kind=kind,
                    text=text,
                    condition=scope if scope and text != opening else _condition(text, kind),
                    governs=_governs(text, tools),
                    source=_ref(block.id, text),
                )
                out.rules.append(rule)
                out.rule_sentences.add((block.id, text))
                if kind == "confirm_before" and _ANY_WRITE.search(text) and not _named(text, tools):
                    out.general_writes.append(rule)  # "before any change": every write
    return out


_COMPLETION_END = re.compile(r"(?:[,;]\s*(?:or|and)?|\s+(?:or|and)|[.;,])\s*$", re.IGNORECASE)


_JOINING = re.compile(
    r"^(?:when|whenever|if|where|unless|for|while|after|before|once|because|on|in)\b", re.I
)


def completes(stem: str, item: str) -> bool:
    """ "No compensation is given" and "when the delay was caused by the customer, or": an item
    that finishes the lead's sentence, the clause of one case."""
    return item[:1].islower() and bool(_JOINING.match(item) or _JOINING.search(stem.split()[-1]))


def rule_lead(text: str) -> str | None:
    """ "Exceptions - no compensation is given:" -> "No compensation is given": a rule whose
    cases the items after it name ("- when the delay was caused by the customer, or"); None
    for any other text."""
    text = " ".join(text.split())
    if not text.endswith(":"):
        return None
    stem = EXCEPTION_LABEL.sub("", text[:-1]).strip()
    stem = stem[:1].upper() + stem[1:]
    return stem if stem and rule_kind(stem) is not None else None


# A prohibition inside a longer sentence: after "and", a semicolon, a colon, an arrow or a dash
_EMBEDDED = re.compile(
    r"(?:[;:]\s+|,?\s+(?:and|so)\s+|\s*(?:->|\u2192)\s*|\s[-\u2013\u2014]\s|[.!?]\s+|,\s+(?=you\s))"
    # "If the supporter asks for a break, you must not pause the Direct Debit"
    r"(?P<rule>(?:you\s+(?:must\s+not|mustn't|may\s+not|should\s+not|cannot|can't)|do\s+not|"
    r"don't|never|must\s+not)\s+[^.;]+)",
    re.IGNORECASE,
)


def _add_embedded(
    out: Standing, seen: set[str], block_id: str, text: str, test: str | None, tools: ToolIndex
) -> None:
    """The prohibitions a sentence holds after its first clause, each a `never` rule that
    holds under the sentence's condition (or the table row's case), citing its own words."""
    for match in _EMBEDDED.finditer(text):
        clause = match["rule"].strip().rstrip(",")
        said = f"{clause[0].upper()}{clause[1:]}"
        if said in seen or len(clause.split()) < 3:
            continue
        seen.add(said)
        out.rules.append(
            Rule(
                kind="never",
                text=said,
                condition=test,
                governs=_governs(clause, tools),
                source=_ref(block_id, clause),
            )
        )


def _do_and_dont(table: Table) -> list[tuple[RuleKind, str]]:
    """The cells of a "Do | Don't" (or "Always | Never") table, each with the kind of rule its
    column makes; none for any other table."""
    header = [" ".join(h.split()).casefold().rstrip(".!:") for h in table.header or []]
    kinds: list[RuleKind | None] = [
        "always" if h in _DO_HEADERS else "never" if h in _DONT_HEADERS else None for h in header
    ]
    if len(kinds) < 2 or None in kinds or set(kinds) != {"always", "never"}:
        return []
    return [
        (kind, " ".join(cell.split()))
        for row in table.rows
        for kind, cell in zip(kinds, row, strict=False)
        if kind is not None and cell.strip()
    ]


_DO_HEADERS = frozenset({"do", "dos", "do's", "always", "please do", "you should"})
_DONT_HEADERS = frozenset({"don't", "dont", "do not", "don'ts", "never", "please don't"})


def _action_table(table: Table) -> bool:
    """A table whose last column says what to do (its cells are orders, and may forbid)."""
    header = [" ".join(h.split()) for h in table.header or []]
    return len(header) >= 2 and bool(ACTION_HEADER.match(header[-1]))


def _action_cells(table: Table) -> list[tuple[str | None, str]]:
    """(the row's case, its action cell) for every row of an action table."""
    out: list[tuple[str | None, str]] = []
    for row in table.rows:
        cells = [" ".join(c.split()) for c in row]
        if len(cells) >= 2 and cells[-1]:
            case = cells[0][:1].lower() + cells[0][1:] if cells[0][1:2].islower() else cells[0]
            out.append((case or None, f". {cells[-1]}"))
    return out


def confirm_gates(found: Standing, called_writes: list[str]) -> dict[str, Rule]:
    """For each write tool the routine calls, the confirm_before rule that gates it (if any).

    A rule about every change governs each write the routine calls; the governs list is filled
    in so that a reviewer sees which calls it gates.
    """
    gates: dict[str, Rule] = {}
    for rule in found.rules:
        if rule.kind != "confirm_before":
            continue
        if rule in found.general_writes or not rule.governs:
            # "before any change", or a rule naming no tool (validate reads it as gating every
            # write): every write the routine calls, but a notification changes nothing
            changes = {w for w in called_writes if not _NOTIFY.match(w)}
            rule.governs = sorted(changes or set(called_writes))  # no change: gate them all
        for name in rule.governs:
            if name in called_writes:
                gates.setdefault(name, rule)
    return gates


def insert_confirmations(builder: Builder, top: list[Node], gates: dict[str, Rule]) -> list[Node]:
    """Before each write that a confirm_before rule gates, an ask for the customer's explicit yes.

    The ask goes into every list that holds the write (its step list and the branch of each
    condition that leads to it), and a "go to step N" that meant the write now reaches the ask
    first. An ask about confirming right before the write is marked as the confirmation instead.
    """
    if not gates:  # a confirmation rule says there is someone to ask, whoever the text names
        return top
    gated = [n for n in builder.nodes if n.tool_call is not None and n.tool_call.tool in gates]
    if not gated:
        return top
    asks: dict[int, Node] = {}
    for node in gated:
        assert node.tool_call is not None
        name, rule = node.tool_call.tool, gates[node.tool_call.tool]
        source = rule.source
        asks[node.uid] = builder.node(
            "ask",
            f"Before you call `{name}`, tell the customer exactly what will change and ask for "
            "their explicit yes.",
            block_id=source.block_ids[0] if source else None,
            quote=source.quote if source else None,
            level=node.level,
            confirm=True,
        )

    def place(nodes: list[Node]) -> list[Node]:
        out: list[Node] = []
        for node in nodes:
            ask = asks.get(node.uid)
            if ask is not None:
                if out and out[-1].kind == "ask" and _CONFIRM.search(out[-1].text):
                    out[-1].confirm = True  # the SOP's own "Confirm the change with ..." ask
                else:
                    out.append(ask)
            out.append(node)
        return out

    for node in list(builder.nodes):
        node.children = place(node.children)
        node.then_nodes = place(node.then_nodes)
        node.else_nodes = place(node.else_nodes)
    top = place(top)
    placed = {node.uid for node in flatten(top)}
    for key, node in list(builder.keys.items()):
        if node.uid in asks and asks[node.uid].uid in placed:
            builder.keys[key] = asks[node.uid]
    return top


_FACT = re.compile(
    r"\b(?:is|are|has|have|contains?|includes?|consists?\s+of|means|costs?|takes?|"
    r"belongs?\s+to|applies|apply|covers?|lasts?)\b",
    re.IGNORECASE,
)


def _is_fact(sentence: str) -> bool:
    """A descriptive sentence worth keeping as reference: a definition, contents, a value."""
    return bool(_FACT.search(sentence)) and len(sentence.split()) >= 4


_SCOPE = re.compile(rf"^\s*{CONDITION_OPENER}\s+(?P<test>[^,;:]+)[,;:]", re.IGNORECASE)


def _asked(opening: str, sentences: list[str]) -> str | None:
    """ "Not in stock? Don't book a bay. Tell the customer ...": a short question that opens an
    item is the case its other sentences answer, under which its rules hold."""
    if len(sentences) < 2 or not opening.endswith("?") or len(opening.split()) > _QUESTION_WORDS:
        return None
    asked = opening.rstrip("?").strip()
    return asked if asked[1:2].isupper() else asked[:1].lower() + asked[1:]  # "ID ok", "not in"


_QUESTION_WORDS = 12


def _scope(opening: str) -> str | None:
    """The condition an item opens with ("If the account is closed, ..." -> "the account is
    closed"), under which the item's other rules hold."""
    match = _SCOPE.match(opening)
    return match.group("test").strip() if match else None


def _condition(sentence: str, kind: RuleKind) -> str | None:
    if kind not in ("only_if", "never"):
        return None
    match = _CONDITION.search(sentence)
    if match is None:
        return None
    condition = match.group("c").strip().rstrip(".;:")
    if kind == "never":
        return f"unless {condition}"
    return condition


def _named(sentence: str, tools: ToolIndex) -> str | None:
    """The catalog tool the sentence names (by name or alias, not just by its verb), if any."""
    mention = tools.find(sentence)
    return mention.tool.name if mention is not None and mention.how != "verb" else None


def _governs(sentence: str, tools: ToolIndex) -> list[str]:
    """The catalog tools a rule sentence names, or whose action it speaks of.

    A tool is spoken of when the sentence has the tool's verb (the first word of its name or of
    its description) and one of its objects ("Never pay a claim that is not approved" governs
    `disburse_claim_payment`, described "Pay out an approved claim").
    """
    # the rule part, not what follows it, unless that forbids too ("...; if it was not, the
    # handler shall not register a claim")
    first, *rest = sentence.split(";")
    sentence = _QUOTED.sub(" ", " ".join([first, *(p for p in rest if _NEVER.search(p))]))
    sentence = _NOUN_COMPOUND.sub(" ", sentence)
    explicit = _named(sentence, tools)
    named = {explicit} if explicit else set()
    plain = _IED.sub("y", _DOUBLED_ED.sub(r"\1", sentence))  # "cancelled", "modified"
    plain = _IRREGULAR.sub(lambda m: _PARTICIPLES[m.group(0).casefold()], plain)
    words = set(canonical_words(plain))
    acts = set(canonical_words(plain)) | nominal_verbs(plain)
    by_verb = Counter(  # how many write tools open with each verb
        (canonical_words(tool.name.replace("_", " ")) or [""])[0]
        for tool in tools.catalog.tools
        if tool.access == "write"
    )
    for tool in tools.catalog.tools:
        if tool.access != "write":
            continue  # a restriction read from the words is about an action, not a lookup
        title = canonical_words(tool.name.replace("_", " "))
        if title and title[0] in acts and title[0] not in _LIGHT and by_verb[title[0]] == 1:
            # "Refunds over £300 need ...", "Max 3 renewals per item", "do not refund": the
            # action of the one write tool of that verb, as a verb or as its noun
            named.add(tool.name)
            continue
        described = canonical_words(tool.description)
        verbs = set(title[:1] + described[:1])
        # who it is for is no object: "... there are three Margaret Jones on our books" says
        # nothing of booking the patient's vaccination
        objects = (set(title[1:]) | set(described[1:6])) - WHO
        # "Refunds above 200 USD need approval" speaks of `issue_refund` ("Refund an order"):
        # the name's object is the action the description opens with
        action_noun = set(title[1:]) & set(described[:1])
        if (verbs & words and (objects - verbs) & words) or action_noun & words:
            named.add(tool.name)
    return sorted(named)


# verbs too common to say which action a rule is about ("add a note", "make a change")
_LIGHT = frozenset(
    canonical_words(
        "add set make get give take put create update change send record log note open mark "
        "apply process submit request run start issue check do save edit modify list flag "
        "assign contact notify email call text reply place keep use ask tell offer confirm approve "
        "authorise authorize agree accept"
    )
)
_PARTICIPLES = {
    "frozen": "freeze",
    "paid": "pay",
    "sent": "send",
    "made": "make",
    "given": "give",
    "written": "write",
    "chosen": "choose",
    "taken": "take",
    "shown": "show",
    "sold": "sell",
    "bought": "buy",
    "held": "hold",
    "left": "leave",
    "kept": "keep",
}
_IRREGULAR = re.compile(r"\b(?:" + "|".join(_PARTICIPLES) + r")\b", re.IGNORECASE)
_DOUBLED_ED = re.compile(r"([bdglmnprt])\1(?:ed|ing)\b")
_IED = re.compile(r"ied\b")


def _ref(block_id: str, sentence: str) -> SourceRef:
    return SourceRef(block_ids=cited(block_id), quote=quote(sentence))


def is_decision_table(table: Table) -> bool:
    """A table of cases and what to do ("Situation | Action"), not of reference values."""
    header = [" ".join(h.split()) for h in table.header or []]
    return (
        len(header) >= 2
        and bool(CASE_HEADER.match(header[0]))
        and bool(ACTION_HEADER.match(header[-1]))
    )


def _table_facts(table: Table) -> list[Knowledge]:
    """One fact per row: each cell with its column's header ("Cabin: Economy; Free bags: 1")."""
    header = [" ".join(h.split()) for h in table.header or []]
    form = quote_form(block_text(table))
    out: list[Knowledge] = []
    for row in table.rows:
        cells = [" ".join(c.split()) for c in row]
        if not any(cells):
            continue
        if len(header) == len(cells) and all(header):
            fact = "; ".join(f"{h}: {c}" for h, c in zip(header, cells, strict=True) if c)
        else:
            fact = "; ".join(c for c in cells if c)
        cited = " ".join(c for c in cells if c)
        if quote_form(cited) not in form:
            cited = next(c for c in cells if c)
        out.append(Knowledge(fact=fact, source=SourceRef(block_ids=[table.id], quote=quote(cited))))
    return out
