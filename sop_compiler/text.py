"""Text helpers shared by the offline backend and validate: sentences, instructions, injection.

They live apart from both stages so that what the offline compiler turns into steps is exactly what
validate's coverage counts, without one stage importing the other.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "CONTEXT_TITLE",
    "ELLIPSIS",
    "INSTRUCTION_VERBS",
    "NUMBERING",
    "fold_lookalikes",
    "injection_excerpt",
    "is_constraint",
    "is_instruction",
    "normalize",
    "quote_form",
    "split_sentences",
]

# Verbs an instruction starts with (the imperative mood of a support SOP).
_VERBS = """
    accept acknowledge activate add adjust advise apologise apologize apply approve arrange ask
    assign assist attach attempt be book calculate call cancel capture change charge check clarify
    close collect compare confirm contact continue copy correct create credit deactivate decline
    delete deny determine direct disable do document don't email enable end enter ensure escalate
    explain file find flag follow gather generate get give go greet guide hand help identify inform
    initiate instruct issue keep let lock log look lookup make mark move never note notify obtain
    offer open order place print proceed process provide pull read reassure reboot record redirect
    refer refund reinstate reissue reject remind remove reopen repeat replace reply request
    require reschedule reserve resend reset reship resolve respond restart restore retrieve return
    review route run say schedule search select send set share skip start submit suggest suspend
    tag take hold release freeze block pause extend renew void count handle raise clear produce
    settle pay message queue spread turn switch put pass complete swap chase dispatch
    prepare register amend retry list ship text locate establish ascertain rebook rerun re-run bring
    tell test thank track transfer try unlock update use validate verify wait waive walk warn
    tick untick write photograph ring phone allocate
"""
INSTRUCTION_VERBS = frozenset(_VERBS.split())
# "The first thing to do is (to) check ...": the order that follows, first
FIRST_THING = r"the\s+first\s+thing\s+(?:to\s+do\s+)?is\s+(?:to\s+)?"
_LEAD_WORDS = re.compile(
    r"^(?:(?:then|first|next|finally|also|now|afterwards|after that|lastly|please|always|"
    r"otherwise|else|if so|if not|if yes|if no|either way|"
    rf"{FIRST_THING}|"
    r"in (?:either|both|all|every|each) cases?|"
    r"whatever happens|(?:each|every)\s+(?:morning|evening|day|working\s+day|week|month|"
    r"monday|tuesday|wednesday|thursday|friday)(?=,)|"
    # "Stop and call 999 advice first": the order after the stop
    r"stop\s+and(?=\s+[a-z]))\b,?\s*)+",
    re.IGNORECASE,
)
_CONDITION_START = re.compile(
    r"^(?:if|when|whenever|in case|in the event that|should|once|unless|where|while|before|"
    r"after|for|having|as soon as)\b",
    re.IGNORECASE,
)
# Who follows the SOP, as formal SOPs name them ("the Arranger taking the call shall ...", "the
# Dispatch Coordinator shall ..."): never the customer, nor a manager who approves
AGENT_ROLE = (
    r"(?:the\s+)?(?:(?-i:[A-Z])[\w-]*\s+){0,2}"
    r"(?:arrangers?|administrators?|advisers?|advisors?|agents?|handlers?|operators?|"
    r"representatives?|assistants?|colleagues?|clerks?|co-?ordinators?|officers?|analysts?|"
    r"assessors?|caseworkers?|cashiers?|receptionists?|dispatchers?|controllers?|processors?|"
    r"staff(?:\s+members?)?|team\s+members?)"
    r"(?:\s+(?:taking|handling|on|at|dealing\s+with)\s+[\w ]{2,25}?)?"
)
_AGENT_MODAL = re.compile(
    rf"\b(?:you|we|{AGENT_ROLE})\s+"
    r"(?:must|should|need to|needs to|have to|has to|shall|may not|cannot|can't|will)\b",
    re.IGNORECASE,
)
# Section titles whose text is background, not instructions (coverage does not count it).
CONTEXT_TITLE = re.compile(
    r"^(?:purpose|scope|overview|background|introduction|definitions?|glossary|references?|related|"
    r"see also|(?:[\w-]+\s+)?contacts?|revision history|document control|version history|"
    r"polic(?:y|ies)|audience|"
    r"applicability|objectives?|summary|about|when to use|when this applies|"
    # "Why I'm sending this", "Why this matters": the reasons, not the steps
    r"why\s+(?:i'm|i\s+am|we're|we\s+are|this|these|it)\b)\b",
    re.IGNORECASE,
)
_META = re.compile(
    r"^(?:use|follow|read|apply) this (?:procedure|sop|process|guide|document)\b", re.I
)
_ABBREVIATIONS = (
    "e.g.",
    "i.e.",
    "etc.",
    "approx.",
    "mr.",
    "mrs.",
    "ms.",
    "dr.",
    "no.",
    "vs.",
    "ref.",
)
# a sentence ends at its stop before a capital, and always at a bullet that starts a line
# ("Remember\n• Always pull up the vehicle ...\n• Never quote a price ...": three)
_SENTENCE_END = re.compile(
    r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(`\[]?[A-Z0-9$€£])|[ \t]*\n[ \t]*[•▪◦‣*-][ \t]+(?=\S)"
)

# Text addressed to the model or to sopc rather than to a support agent.
_INJECTION = re.compile(
    r"|".join(
        [
            r"\b(?:ignore|disregard|forget|override)\b[^.\n]{0,40}?\b(?:previous|prior|above|earlier|"
            r"preceding|all|any|your|these|those)\b[^.\n]{0,25}?\b(?:instructions?|rules?|prompts?|"
            r"guidelines|directions|context)\b",
            r"\byou are now (?:an? )?(?:\w+ )?(?:ai|assistant|model|chatgpt|gpt|llm|chatbot)\b",
            r"\byou are (?:an? )?(?:ai|chatgpt|gpt|llm|chatbot|(?:large )?language model|ai model|"
            r"ai assistant)\b",
            r"\bsystem prompt\b",
            r"\bas an ai\b",
            r"\bsopc\b",
            r"\bsop[ -]?compiler\b",
            r"\bdisregard the\b",
            r"\badd (?:a |an |the |new |another )?(?:new )?tools?\b",
            r"\b(?:do not|don't|never) validate\b",
            r"\bskip (?:the )?validation\b",
            r"\b(?:dear|attention|note to (?:the )?|hey) "
            r"(?:ai|model|assistant|llm|chatgpt|compiler|bot)\b",
            r"\b(?:the|this|any) (?:llm|language model|ai model)\b",
            r"\bdeveloper mode\b",
            r"\bjailbreak\b",
            r"\breveal (?:your|the) (?:instructions|prompt)\b",
            r"\bnew instructions\s*:",
            r"<\|im_start\|>|<\|im_end\|>|<\|system\|>|<\|endoftext\|>|\[/?INST\]|<<SYS>>",
            # French, Spanish, German, Portuguese (matched on accent-free, folded text)
            r"\b(?:ignor\w*|oubli\w*|olvid\w*|vergiss\w*|esquec\w*)\b[^.\n]{0,40}?\b(?:toutes|"
            r"todas|todos|alle|allen|vorherigen|vorigen|bisherigen|precedentes|anterieures|"
            r"anteriores|previas)\b[^.\n]{0,25}?\b(?:instructions?|instrucciones|instrucoes|"
            r"anweisungen|instruktionen|consignes|regles|reglas|regeln|regras)\b",
            r"\b(?:ignor\w*|oubli\w*|olvid\w*|vergiss\w*|esquec\w*)\b[^.\n]{0,25}?\b(?:"
            r"instructions|instrucciones|instrucoes|anweisungen|consignes)\s+(?:precedentes|"
            r"anterieures|anteriores|previas)\b",
            # soft forms: a standing order to the model rather than a step for the agent
            r"\bfrom now on\b[^.\n]{0,20}?\b(?:the )?(?:assistant|model|ai|bot|chatbot|llm)\b",
            r"\b(?:the )?(?:assistant|model|ai|bot|chatbot|llm) (?:must|should|shall|will) "
            r"(?:always )?(?:approve|accept|grant|issue|refund)\w* (?:every|all|any)\b",
        ]
    ),
    re.IGNORECASE,
)
# A defined term or field label before a colon: "Refund", "Document ID", "Lost parcel".
_TERM = re.compile(r"^[A-Z][\w'()-]*(?:\s+(?:[A-Z(][\w'()-]*|\w+)){0,2}$")
NUMBERING = re.compile(r"^(?:\d+(?:\.\d+)*[.)]?|[A-Z][.)])\s+")
_QUOTE_CHARS = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "`": ""})
ELLIPSIS = re.compile(r"\s*(?:\.\.\.|…)\s*")


def normalize(text: str) -> str:
    """Case-fold, unify quotes and dashes, drop backticks and collapse whitespace (for quotes)."""
    return " ".join(text.translate(_QUOTE_CHARS).casefold().split())


def _abbreviated(head: str) -> bool:
    """True when the text ends with an abbreviation as a word of its own ("e.g.", "No."), never
    a word that only ends like one ("firearms.", "items.", "casino.")."""
    return any(
        head.endswith(short) and (len(head) == len(short) or not head[-len(short) - 1].isalnum())
        for short in _ABBREVIATIONS
    )


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, each a verbatim (stripped) substring; abbreviations do not split."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        head = text[start : match.start()].rstrip()
        if not head or _abbreviated(head.casefold()):
            continue
        sentences.append(text[start : match.start()].strip())
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def is_instruction(sentence: str) -> bool:
    """True when a sentence tells the agent to do something (imperative, `if X, do Y`, `must`)."""
    return _is_instruction(sentence, _MAX_CLAUSES)


# Labels ("Marketplace orders:") and conditions ("If X,") nest a few deep in a real sentence; a
# bound keeps a pathological one (a list of 1,000 times "09:00: ...") linear instead of recursing
# once per colon or comma.
_MAX_CLAUSES = 4


def _is_instruction(sentence: str, depth: int) -> bool:
    text = _LEAD_WORDS.sub("", sentence.strip().lstrip("-*•>#0123456789.) ").strip())
    if _META.match(text):
        return False  # "Use this procedure when ..." describes the SOP, it is no step
    nested = depth > 0
    label, colon, rest = text.partition(":")
    if (
        nested
        and colon
        and rest.strip()
        and len(label.split()) <= 6
        and _is_instruction(rest, depth - 1)
    ):
        return True  # "Marketplace orders: direct the customer to the seller."
    if colon and rest.strip() and _is_term(label.strip()):
        return False  # "Refund: money returned to ..." defines a term; "Refund" is no order here
    if _CONDITION_START.match(text):
        _, comma, rest = text.partition(",")
        return bool(comma) and (
            (nested and _is_instruction(rest, depth - 1)) or bool(_AGENT_MODAL.search(rest))
        )
    first = re.match(r"[A-Za-z']+(?![-\w])", text)  # "Pay-at-counter rentals ...": no order
    if first and first.group(0).casefold() in INSTRUCTION_VERBS:
        return True
    return bool(
        re.match(r"(?:make sure|be sure)\b", text, re.IGNORECASE) or _AGENT_MODAL.search(text)
    )


def _is_term(label: str) -> bool:
    """A defined term or field label ("Refund", "Document ID"), not an order ("Check the order")."""
    if not _TERM.match(label):
        return False
    words = label.split()
    return (
        len(words) == 1
        or all(w[:1].isupper() or w[:1] == "(" for w in words)
        or words[0].casefold() not in INSTRUCTION_VERBS
    )


# Latin look-alikes (Cyrillic, Greek, dotless i) that NFKC does not fold; enough for the words
# the detector matches. Zero-width characters and soft hyphens are dropped.
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁһӏАВЕКМНОРСТХІЈЅοαεινκτρχΟΑΒΕΙΚΜΝΤΧΖΡı",
    "aeopcyxijsdhlABEKMHOPCTXIJSoaeivktpxOABEIKMNTXZPi",
    "\u200b\u200c\u200d\u2060\ufeff\u00ad",
)


def fold_lookalikes(text: str) -> str:
    """`text` with compatibility forms (full-width), accents and Latin look-alikes folded."""
    return "".join(_fold_char(char) for char in text)


def _fold_char(char: str) -> str:
    if char.isascii():
        return char
    decomposed = unicodedata.normalize("NFKD", char.translate(_CONFUSABLES))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).translate(_CONFUSABLES)


def injection_excerpt(text: str) -> str | None:
    """A short excerpt around text that addresses the model or the compiler, or None.

    Matched on folded text (NFKC compatibility forms, accents and look-alike letters), so
    "Іgnore all previous іnstructions" in Cyrillic or full-width letters is caught too.
    """
    folded: list[str] = []
    origin: list[int] = []  # index in `text` of every folded character
    for index, char in enumerate(text):
        part = _fold_char(char)
        folded.append(part)
        origin += [index] * len(part)
    match = _INJECTION.search("".join(folded))
    if match is None:
        return None
    if match.end() <= match.start():
        return None
    start = max(0, origin[match.start()] - 20)
    end = min(len(text), origin[match.end() - 1] + 1 + 30)
    excerpt = " ".join(text[start:end].split())
    return ("…" if start else "") + excerpt + ("…" if end < len(text) else "")


# What a quote may carry that the prompt's rendering of a block adds or changes: the block id,
# heading marks, list markers and bullets, `> `, table pipes and cell borders.
_RENDER_MARKS = re.compile(
    r"(?m)^\s*(?:\[b\d+\]\s*)?(?:#{1,6}\s+|>\s*|[-*•+]\s+|\(?\d+(?:\.\d+)*[.)]\s+|"
    r"\(?[a-z][.)]\s+|step\s+\d+[.:]\s+)*"
)
_CELL_BORDERS = re.compile(r"\|?\s*:?-{3,}:?\s*(?=\||$)|\|")


def quote_form(text: str) -> str:
    """Text as citations compare it: `normalize`d, without the marks the prompt's rendering adds.

    The same function is applied to the quote and to the cited blocks, so a quote copied from the
    prompt with its list marker (`4. Ask ...`) or its table pipes (`| Gold | 20% |`) still matches.
    """
    unmarked = _RENDER_MARKS.sub("", text.translate(_QUOTE_CHARS))
    return normalize(_CELL_BORDERS.sub(" ", unmarked)).strip(" \"'")


# A sentence that states a constraint: a negation, a restriction, an obligation or a number.
_CONSTRAINT = re.compile(
    r"\b(?:not|never|no|none|nor|cannot|can't|won't|mustn't|shouldn't|don't|doesn't|isn't|"
    r"aren't|only|must|shall|required?|requires|unless|except|exceptions?|prohibited|forbidden|"
    r"allowed|permitted|eligible|ineligible|at (?:most|least)|maximum|minimum|up to|limit(?:ed|s)?|"
    r"exceeds?|no more than|no later than|within|before|always)\b|"
    r"[$€£]\s?\d|\d\s?%|\b\d[\d,.]*\s*(?:percent|days?|hours?|minutes?|weeks?|months?|years?|"
    r"business|working|calendar|times|items?|nights?|kg|lbs?|gb|mb|usd|eur|gbp)\b",
    re.IGNORECASE,
)


def is_constraint(sentence: str) -> bool:
    """True when a sentence restricts what may be done: never, only, must, a limit, a number."""
    return bool(_CONSTRAINT.search(sentence))
