"""Document shape: what a section of an SOP holds, read from its heading and its sentences.

segment asks two questions of every section. What does its heading name: a request or task
("Cancel a booking", "Returns and exchanges", "Restoring a suspended line", "No mobile data"),
facts ("Domain basics", "What a claim contains", "Fee schedule"), constraints for every request
("General rules", "Before any change", "Transfers to a human"), or boilerplate ("Contact us")?
And what do its sentences do: instruct the agent, constrain what it may do (always, never, must,
only, do not, at most), or state facts (field lists, "X has/contains/includes", definitions,
tables of values)? Each answer carries a short reason that `sopc inspect` shows.

The vocabularies are the forms SOPs take in general (heading verbs, request nouns, rule words,
knowledge signals), not phrases of any one document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sop_compiler.models import Figure, Heading, ListItem, Paragraph, Quote, Table
from sop_compiler.text import INSTRUCTION_VERBS, is_instruction, split_sentences

__all__ = [
    "ContentShape",
    "Kind",
    "Verdict",
    "content_shape",
    "is_boilerplate",
    "title_verdict",
]

Kind = Literal["procedure", "knowledge", "rules", "noise"]
AnyBlock = Heading | Paragraph | ListItem | Table | Figure | Quote | object


@dataclass(frozen=True)
class Verdict:
    """A section kind and why."""

    kind: Kind
    reason: str


# "3.2", "B)", "IV.", "C.9": a section number, not part of what the heading names
_NUMBER = re.compile(
    r"^(?:(?:section|part|chapter|procedure|checklist|playbook|appendix)\s+[\dA-Z]+(?:\.\d+)*"
    r"\s*[-\u2013\u2014:.]?|\d+(?:\.\d+)*[.)]?|[A-Z](?:\.\d+)+[.)]?|[A-Z][.)]|[IVX]+\.)\s+",
    re.IGNORECASE,
)
# Boilerplate a reader skips: who to call about the document, its history, legal notes.
_NOISE_TITLE = re.compile(
    r"^(?:contacts?(?:\s+(?:us|information|details))?|questions(?:\s+about\s+this\s+\w+)?|"
    r"feedback|revision\s+(?:history|notes|log)|(?:version|page|change|edit|update)\s+history|"
    r"change\s*log|changes\s+since\s+(?:the\s+)?(?:last|previous)\s+(?:version|issue|edition)|"
    r"what'?s\s+(?:changed|new)(?:\s+in\s+this\s+(?:version|issue))?|"
    r"(?:(?:document|chapter|section|manual|policy|procedure|sop)\s+)?amendments?"
    r"(?:\s+(?:log|history|record))?|document\s+(?:control|history|"
    r"information|details)|disclaimers?|legal(?:\s+notice)?|copyright|last\s+updated.*|"
    r"about\s+this\s+(?:document|policy|guide|handbook|page)|related\s+(?:documents|policies|"
    r"links|pages)|see\s+also|references?|further\s+reading|appendix\b.*|need\s+help\??)$",
    re.IGNORECASE,
)
# Constraints for every request: the heading says "rules" or names a cross-cutting concern.
_RULES_TITLE = re.compile(
    r"\b(?:rules?|principles?|guidelines?|standards?|requirements?|conduct|etiquette|"
    r"dos?\s+and\s+don'?ts|compliance|privacy|data\s+protection|restrictions?|prohibited|"
    r"at\s+all\s+times|throughout|escalations?|escalating|transfers?\s+to\b|transferring\s+to\b|"
    r"hand-?offs?|handing\s+(?:off|over)|when\s+to\s+(?:escalate|transfer|hand)|"
    r"authentication|identity\s+(?:checks?|verification)|verification|security|"
    r"tone(?:\s+of\s+voice)?|communication|before\s+(?:any|every|you|making|taking)\b.*|"
    r"for\s+(?:every|all|each|any)\s+\w+)\b",
    re.IGNORECASE,
)
# "Transfer to a human agent" starts with a verb but is the document's handoff rule;
# "Transferring tickets" is a task (what is transferred is no person).
_HANDOFF_TITLE = re.compile(
    r"^(?:(?:escalat(?:e|es|ing|ions?)|hand(?:ing)?\s*-?\s*off)\b|transfer(?:s|ring)?\s*$|"
    r"transfer(?:s|ring)?\b.*\b(?:humans?|agents?|supervisors?|specialists?|teams?|managers?|"
    r"people|staff|tier))",
    re.IGNORECASE,
)
# "Read me first", "Please read": a note to the reader of the whole document, not a task.
_READER_TITLE = re.compile(
    # "READ FIRST - APPLIES TO EVERYTHING BELOW"
    r"^(?:please\s+)?read\s+(?:me|this|(?:this|me)\s+first|first|before\s+\w+.*)"
    r"(?:\s*[-\u2013\u2014:]\s+.*)?$|"
    r"^.*\bread\s+(?:this|me)\s+first$",  # "Welcome / read me first"
    re.IGNORECASE,
)
_EVERYTHING_TITLE = re.compile(
    r"\bapplies\s+to\s+(?:everything|all|every)\b|^(?:general\s+)?(?:obligations|duties)$|"
    r"^(?:general|common)\s+(?:provisions|rules|principles|requirements|conditions)"
    # "GENERAL RULES (ALL CALLS)", "Standards (every contact)"
    r"(?:\s*\((?:for\s+|on\s+)?(?:all|every|any)\s+[\w\s-]+\))?$|"
    r"\((?:for\s+|on\s+)?(?:all|every)\s+(?:calls?|contacts?|cases?|procedures|requests?|"
    r"enquiries|customers|chats?|tickets?)\)$|"
    # "Rules for everything on this page", "Rules for every call"
    r"^(?:(?:house|ground|general)\s+)?rules\s+for\s+(?:everything|all|every|any)\b",
    re.IGNORECASE,
)


def names_rules_for_everything(title: str) -> bool:
    """ "Read me first", "READ FIRST - APPLIES TO EVERYTHING BELOW", "General Obligations",
    "General Provisions": a
    heading over what holds for every procedure of the document, never a task of its own."""
    text = _title(title)
    return bool(_READER_TITLE.match(text) or _EVERYTHING_TITLE.search(text))


# Facts: the heading names the domain, its data, definitions, prices or values.
_KNOWLEDGE_TITLE = re.compile(
    r"^(?:about|understanding|what\b|how\s+\w+\s+works?\b|key\s+facts|overview|background|"
    r"how\s+to\s+(?:use|read)(?:\s+(?:this|these)\b|$)|using\s+(?:this|these)\b|"
    r"introduction|purpose|scope|in\s+scope|out\s+of\s+scope|when\s+to\s+use\b|when\s+this|"
    r"application$|scope\s+and\s+application|"
    r"definitions?|glossary|roles?|responsibilities|audience|applicability|objectives?|"
    r"prerequisites|(?:words|terms)\s+(?:we|you)\s+use)\b|"
    r"\b(?:basics?|definitions?|glossary|terms|terminology|key\s+terms|reference|data\s+model|"
    r"fees?|charges|pricing|prices|rates|tariffs?|plans?|tiers?|levels?|types?|categories|"
    r"products?|catalogu?e|schedules?|hours|timelines?|timeframes?|time\s*frames?|windows?|"
    r"limits?|allowances?|amounts|times|dates|deadlines|matrix|tables?|faqs?|contents?|fields|details|structure|roles|responsibilities|"
    r"explained|at\s+a\s+glance|summary|status(?:es)?|states|values|codes|options|facts|"
    r"numbers|figures)$",
    re.IGNORECASE,
)
# Nouns that name something a customer asks for, or a problem they report.
_REQUEST_NOUNS = """
    activation activations addition additions adjustment adjustments amendment amendments
    application applications appeal appeals booking bookings cancellation cancellations
    cancelation cancelations change changes chargeback chargebacks claim claims closure closures
    compensation complaint complaints correction corrections damage delay delays delivery
    deliveries deposit deposits dispute disputes downgrade downgrades enrolment enrollment
    exchange exchanges extension extensions failure failures fault faults issue issues lookup
    loss missing modification modifications move moves onboarding order orders outage outages
    payment payments porting problem problems reactivation rebooking redemption refill refills
    refueling refuelling refund refunds reimbursement reimbursements reinstatement removal
    renewal renewals repair repairs replacement replacements request requests reschedule
    rescheduling reservation reservations reset resets restoration return returns setup
    suspension suspensions termination terminations top-up top-ups topup transfer transfers
    troubleshooting unlock unlocking upgrade upgrades withdrawal withdrawals
"""
_REQUESTS = frozenset(_REQUEST_NOUNS.split())
# Verbs a request heading starts with, beyond the instruction verbs (which cover most).
_HEADING_VERB_WORDS = """
    add amend appeal book claim decrease dispute increase lower pay raise reduce report
    reverse downgrade enrol enroll exchange extend freeze modify pause port
    reactivate rebook redeem refill refuel reinstate renew repair reschedule resume split swap
    switch terminate top unfreeze upgrade withdraw
"""
_NOT_HEADING_VERBS = frozenset(
    ["be", "do", "don't", "never", "let", "go", "try", "say", "keep", "make", "take", "end"]
)
_HEADING_VERBS = (INSTRUCTION_VERBS | frozenset(_HEADING_VERB_WORDS.split())) - _NOT_HEADING_VERBS
# Verbs that are also nouns: they start a task only before an article ("Order a card").
_AMBIGUOUS = _REQUESTS | frozenset(
    [
        "book",
        "call",
        "charge",
        "check",
        "claim",
        "close",
        "credit",
        "email",
        "file",
        "flag",
        "hand",
        "issue",
        "lock",
        "log",
        "move",
        "note",
        "open",
        "order",
        "print",
        "process",
        "record",
        "review",
        "set",
        "share",
        "start",
        "tag",
        "test",
        "track",
        "update",
        "use",
        "wait",
        "walk",
    ]
)
_DETERMINERS = frozenset(
    [
        "a",
        "an",
        "the",
        "your",
        "their",
        "his",
        "her",
        "its",
        "our",
        "my",
        "this",
        "that",
        "these",
        "those",
        "all",
        "any",
        "every",
        "each",
        "some",
        "someone",
        "somebody",
        "customer's",
        "customers'",
        "user's",
        "member's",
        "caller's",
    ]
)
_EXCEPTIONS_TITLE = re.compile(
    r"^(?:exceptions?|special\s+cases?|edge\s+cases?|caveats?|warnings?|important|"
    r"limitations?|exclusions?)\b",
    re.IGNORECASE,
)
_NOTES_TITLE = re.compile(r"^(?:notes?|tips?|examples?|good\s+to\s+know|faqs?)$", re.IGNORECASE)
# Titles of a whole document ("Reservation Support Policy"): the heading says nothing of a part.
_DOCUMENT_TITLE = re.compile(
    r"\b(?:polic(?:y|ies)|handbook|manual|playbook|sops?|guides?|guidelines|"
    r"rulebook|standard\s+operating\s+procedures?)$",
    re.IGNORECASE,
)
# Problem headings: "No mobile data", "Internet not working", "Card declined", "Package lost".
_BROKEN_THING = re.compile(
    r"^(?:disputed|damaged|lost|stolen|missing|failed|faulty|broken|wrong|duplicate|"
    r"unrecogni[sz]ed|defective|incorrect)\s+\w",
    re.IGNORECASE,
)
_PROBLEM_TITLE = re.compile(
    r"^(?:no|cannot|can't|unable\s+to|i\s+(?:want|need|cannot|can't)|customer\s+(?:wants|asks|"
    r"reports|cannot|can't)|how\s+(?:do|can|to)|what\s+to\s+do)\b|\b(?:not\s+working|does\s+not|"
    r"doesn't|won't|declined|lost|stolen|damaged|broken|late|delayed|missing|failed|"
    r"locked(?:\s+out)?|suspended|overcharged|double\s+charged|wrong\s+\w+)$|\?$|"
    r"^(?:lost|stolen|damaged|broken|late|delayed|missing|failed|declined|wrong|duplicate|"
    r"double|unrecogni[sz]ed|faulty|defective|disputed|cancelled|canceled|suspended|locked)\s",
    re.IGNORECASE,
)
_NEUTRAL_START = re.compile(r"^(?:the|a|an|our|your|my|for|to)\s+", re.IGNORECASE)

# Words of constraint: what holds, what is refused, what is limited.
_CONSTRAINT = re.compile(
    r"\b(?:always|never|must|mustn't|shall|only|cannot|can't|can\s+not|may\s+not|do\s+not|"
    r"don't|does\s+not\s+apply|not\s+(?:allowed|permitted|eligible|possible|available)|"
    r"prohibited|forbidden|required|requires?|need(?:s)?\s+(?:to|approval|a|an|the)|at\s+most|"
    r"at\s+least|no\s+more\s+than|no\s+later\s+than|up\s+to|maximum|minimum|unless|"
    r"ineligible|eligible|before\s+(?:any|you|taking|making|calling)|without)\b",
    re.IGNORECASE,
)
# Scope words of a rule that holds for the whole conversation, not for one request.
_GENERAL = re.compile(
    r"\b(?:any|every|all|each)\s+(?:\w+\s+)?(?:actions?|changes?|conversations?|requests?|calls?|"
    r"chats?|interactions?|contacts?|times?|cases?|updates?|writes?|transactions?|tools?|steps?|"
    r"questions?|topics?|tickets?|sessions?)\b|\bat\s+all\s+times\b|\bthroughout\b|"
    r"\bper\s+(?:conversation|call|chat|session|interaction)\b|"
    r"\b(?:this|the)\s+(?:policy|document|guide|handbook|guidelines)\b|"
    r"\b(?:make\s+up|invent|guess|speculat\w*)\b|\bone\s+(?:user|customer|member|person|caller)\b",
    re.IGNORECASE,
)
# Facts: "A reservation has ...", "Status is one of ...", "X means ...", "Fees are ...".
_FACT = re.compile(
    r"^(?:(?:each|every|a|an|the|all|our|any)\s+)?[\w'()/-]+(?:\s+[\w'()/-]+){0,5}?\s+"
    r"(?:has|have|holds?|contains?|includes?|consists?\s+of|comprises?|lists?|carries|"
    r"is\s+(?:one\s+of|either|made\s+up\s+of|defined\s+as|called|a|an|the|\d)|"
    r"are\s+(?:one\s+of|either|\d|the)|can\s+be\s+(?:in|one\s+of)|belongs?\s+to|means?|"
    r"refers?\s+to|comes?\s+in|costs?|takes?\s+effect|expires?|renews?|is\s+charged|are\s+charged)"
    r"\b",
    re.IGNORECASE,
)
# Document control and contact lines: who owns the text, when it changed, whom to write to.
_BOILERPLATE = re.compile(
    r"^(?:document\s+(?:control|id|no\.?|number|ref\w*)|doc(?:ument)?\s+ref\w*|pol-|sop-|"
    r"revision|rev\.?\s*\d|version|v\d|issue\s+\d|last\s+(?:updated|reviewed|revised)|effective|"
    r"(?:un)?controlled\s+copy|"
    r"approved|owner|owned\s+by|issued|internal\b|confidential|©|copyright|all\s+rights|"
    r"questions\??\s|contact\s|for\s+questions|print(?:ed)?\s+copies)"
    r"|\b(?:revision|rev\.|version)\s+[\d.]+|\blast\s+(?:updated|reviewed)\b|"
    # "Group: Bookings Tier 1 · Maintainer: Contact Centre QA · Macros reviewed quarterly."
    r"\b(?:owner|approved\s+by|effective|maintainer)\s*:|\bmaintained\s+by\b",
    re.IGNORECASE,
)
_TERM = re.compile(r"^[A-Z][\w'()/-]*(?:\s+[\w'()/-]+){0,3}\s*:\s+\S")
_STEP = re.compile(r"^(?:step\s+\d+\b|\d+(?:\.\d+)*[.):]\s+\S)", re.IGNORECASE)


def _title(text: str) -> str:
    return " ".join(_NUMBER.sub("", text).strip().rstrip(":").split())


def title_verdict(title: str) -> Verdict | None:
    """What a section heading names, or None when the heading alone does not say."""
    text = _title(title)
    if not text or _DOCUMENT_TITLE.search(text):
        return None  # "Reservation Support Policy" names the whole document
    if _NOISE_TITLE.match(text):
        return Verdict("noise", f"boilerplate heading {text!r}")
    if _EXCEPTIONS_TITLE.match(text):
        return Verdict("rules", f"heading {text!r} names exceptions to the procedures")
    if _NOTES_TITLE.match(text):
        return Verdict("knowledge", f"heading {text!r} names notes, not a task")
    if names_rules_for_everything(text):
        return Verdict("rules", f"heading {text!r} names what holds before every request")
    verb = _verb_first(text)
    if _HANDOFF_TITLE.match(text) or (_RULES_TITLE.search(text) and verb != "strong"):
        return Verdict("rules", f"heading {text!r} names rules for every request")
    if verb == "strong":
        return Verdict("procedure", f"heading {text!r} starts with a task verb")
    words = _words(text)
    if words[1:2] in (["and"], ["or"], ["of"], ["for"]) and _request_noun(words[0]):
        # "Renewals and overdue charges": a request and its facts, where "Refund limits" and
        # "Fees and charges" name facts only; "Cancellation of pre-paid plans": a request of
        # the thing its last word names
        return Verdict("procedure", f"heading {text!r} names a request ({words[0]!r})")
    if _BROKEN_THING.match(text):
        # "Disputed session charges", "Damaged items": a problem with the thing, not its facts
        return Verdict("procedure", f"heading {text!r} names a customer problem")
    if _KNOWLEDGE_TITLE.search(text):
        return Verdict("knowledge", f"heading {text!r} names facts, not a task")
    if verb == "weak":
        return Verdict("procedure", f"heading {text!r} starts with a task verb")
    noun = _request_noun(text)
    if noun:
        return Verdict("procedure", f"heading {text!r} names a request ({noun!r})")
    if _PROBLEM_TITLE.search(text):
        return Verdict("procedure", f"heading {text!r} names a customer problem")
    return None


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z][a-z'-]*", text.casefold())


def _verb_first(text: str) -> Literal["strong", "weak", ""]:
    """ "Cancel a booking" (strong), "Return delivered items", "Restoring a line" (weak).

    A word that is also a noun ("order", "return", "change") starts a task only when an
    article or a possessive follows it; otherwise it may start a noun phrase ("Order status").
    """
    words = _words(_NEUTRAL_START.sub("", text))
    if not words:
        return ""
    first, following = words[0], words[1:2]
    if following and following[0] in ("and", "or"):
        return ""  # "Contact and escalation", "Billing or refunds": nouns, not an order
    determined = bool(following) and following[0] in _DETERMINERS
    if first in _HEADING_VERBS:
        if first not in _AMBIGUOUS and following:
            return "strong"
        if determined:
            return "strong"
        return "weak" if following else ""
    if first.endswith("ing") and _gerund_stem(first) in _HEADING_VERBS:
        return "strong" if determined else "weak"
    return ""


def _gerund_stem(word: str) -> str:
    stem = word[:-3]
    doubled = stem[:-1] if len(stem) > 2 and stem[-1] == stem[-2] else ""
    for candidate in (stem, stem + "e", doubled):
        if candidate in _HEADING_VERBS:
            return candidate
    return stem


def _request_noun(text: str) -> str | None:
    for word in _words(text):
        if word in _REQUESTS:
            return word
    return None


@dataclass(frozen=True)
class ContentShape:
    """What a section's sentences do, counted."""

    sentences: int
    steps: int  # numbered steps
    instructions: int  # sentences that tell the agent to do something
    constraints: int  # sentences with a rule word (always, never, only, must, at most ...)
    general: int  # rule sentences scoped to every request ("before any change")
    facts: int  # descriptive sentences, definitions, table rows of values
    tables: int

    @property
    def actionable(self) -> int:
        return self.steps + self.instructions + self.constraints

    def verdict(self) -> Verdict:
        """The kind these sentences make, when the heading does not decide."""
        if self.steps >= 2:
            return Verdict("procedure", f"{self.steps} numbered steps")
        if not self.actionable:
            if self.facts or self.tables:
                return Verdict("knowledge", self._facts_reason())
            return Verdict("noise", "no instruction, rule or fact")
        if self.general * 2 >= self.actionable:
            return Verdict(
                "rules", f"{self.general} of {self.actionable} rules hold for every request"
            )
        if self.facts > self.actionable and not self.instructions:
            return Verdict("knowledge", self._facts_reason())
        if not self.instructions:
            return Verdict("rules", f"{self.constraints} constraints and no instruction")
        return Verdict(
            "procedure",
            f"{self.instructions} instructions, {self.constraints} constraints",
        )

    def _facts_reason(self) -> str:
        parts = [f"{self.facts} facts" if self.facts else "", "a table" if self.tables else ""]
        return " and ".join(p for p in parts if p) + ", no instruction"


def content_shape(blocks: list[AnyBlock]) -> ContentShape:
    """Count what the blocks' sentences do (headings are skipped)."""
    sentences = steps = instructions = constraints = general = facts = tables = 0
    for block in blocks:
        if isinstance(block, Table):
            # a row that tells what to do ("Reviewed — abnormal | Do not discuss. Book a
            # callback.") is an instruction, a row of values a fact
            tables += 1
            rows = [any(map(_instructs, row)) for row in block.rows]
            instructions += sum(rows)
            facts += len(rows) - sum(rows)
            continue
        if not isinstance(block, Paragraph | ListItem | Quote) or is_boilerplate(block.text):
            continue
        if (isinstance(block, ListItem) and block.ordered) or (
            isinstance(block, Paragraph) and _STEP.match(block.text)
        ):
            steps += 1
        for sentence in split_sentences(block.text):
            if is_boilerplate(sentence):
                continue
            sentences += 1
            rule = bool(_CONSTRAINT.search(sentence))
            told = _instructs(sentence)
            instructions += told
            constraints += rule and not told
            general += (rule or told) and bool(_GENERAL.search(sentence))
            facts += not (rule or told) and _is_fact(sentence)
    return ContentShape(sentences, steps, instructions, constraints, general, facts, tables)


def is_boilerplate(text: str) -> bool:
    """Document control or contact text ("Revision 3.2, approved 2026-09-01"), no instruction."""
    text = text.strip()
    if _CONTROL_BLOCK.match(text) and len(_FIELD.findall(text)) >= 2:
        return True  # "Document control Version: 3.1 ... Classification: Internal - do not share"
    if _BOILERPLATE.search(text) and not _CONSTRAINT.search(_CONTROL_WORDS.sub("", text)):
        return True
    # "Document PPS-OPS-004, version 5. Owner: Head of Operations. Internal use only.": every
    # sentence is document control, though the paragraph is too long to look like one field
    sentences = split_sentences(text)
    return len(sentences) > 1 and all(map(is_boilerplate, sentences))


# control words that sound like a rule: "Internal use only", "Controlled copy: do not print"
_CONTROL_WORDS = re.compile(
    r"\b(?:for\s+)?internal\s+use\s+only\b|^(?:un)?controlled\s+copy\b.*|"
    r"^do\s+not\s+(?:print|copy|distribute|reproduce)\b.*",
    re.IGNORECASE,
)


_CONTROL_BLOCK = re.compile(r"^document\s+(?:control|information|history)\b", re.IGNORECASE)
_FIELD = re.compile(r"\b[A-Z][a-z]+(?:\s+[a-z]+)?\s*:\s")


def _instructs(sentence: str) -> bool:
    return is_instruction(sentence)


def _is_fact(sentence: str) -> bool:
    text = sentence.strip()
    return bool(_FACT.match(text) or _TERM.match(text))
