"""The grammar of SOP conditions: each construct read with exact scope, or kept verbatim.

One public function, `read`, turns a block (one list item or paragraph, with its nested items)
into a construct; `read_items` reads sibling blocks (and joins a run of conditions on one subject
into a switch); `read_table` reads a decision table. Every construct the offline compiler makes
comes from one of the rules below; whatever matches none of them exactly is a `Verbatim` with the
reason, which the compiler keeps as one `action` step with `needs_review`.

Constructs (examples are the tests in tests/test_grammar.py):
- "If X, A. Otherwise, B." / "If X, A; otherwise B." / "If not, B." / "Else, B."
  -> Condition(X, then=A, otherwise=B). "When X, ..." and "In case X, ..." read the same.
- "If X:" with nested items -> Condition(X, then=the nested items read in turn).
- "Unless X, A." / "A unless X." -> Condition(X, then=nothing, otherwise=A).
- "Only if X, A." / "A only if X." -> Condition(X, then=A), form "only_if" (also a rule).
- "X? Yes: A. No: B." / "Is X? If yes, A. If no, B." -> Condition(X, then=A, otherwise=B).
- "If A, or B, A2": a test joined by or/and/either/nor is kept whole ("A, or B").
- siblings "If X is p, A." / "If X is q, B." on one subject -> Switch(X, cases), and
  "Option A: if X, A." / "Option B: if Y, B." -> Switch of the options.
- a decision table whose last header names an outcome ("Action", "What to do") -> Switch on the
  other columns; any other table -> Facts (rows keyed by the header), never steps.
A branch whose last action escalates, hands off, resolves or says stop ends there (`ends`).
A condition whose two sides lead to the same place ("go to step 7" / "continue with step 7"),
or whose branch holds more than the grammar can scope, is Verbatim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "Branch",
    "Case",
    "Condition",
    "Construct",
    "Facts",
    "Plain",
    "Switch",
    "Verbatim",
    "ending",
    "read",
    "read_items",
    "read_table",
]

Ending = Literal["continue", "escalate", "handoff", "resolve", "stop"]


@dataclass(frozen=True)
class Plain:
    """One instruction with no condition; `goto` is an SOP step number it jumps to."""

    text: str
    ends: Ending = "continue"
    goto: str | None = None


@dataclass(frozen=True)
class Verbatim:
    """Text the grammar could not read exactly, kept whole, and why."""

    text: str
    reason: str


@dataclass(frozen=True)
class Branch:
    """What one side of a condition does; empty steps mean "carry on with the next step"."""

    steps: tuple[Construct, ...] = ()

    @property
    def ends(self) -> Ending:
        """How the branch ends: the ending of its last step ("continue" when it has none)."""
        if not self.steps:
            return "continue"
        last = self.steps[-1]
        return last.ends if isinstance(last, Plain) else "continue"

    @property
    def goto(self) -> str | None:
        """The SOP step this branch jumps to, if its last step says so."""
        last = self.steps[-1] if self.steps else None
        return last.goto if isinstance(last, Plain) else None


@dataclass(frozen=True)
class Condition:
    """A yes/no test with what each side does."""

    test: str
    then: Branch
    otherwise: Branch = field(default_factory=Branch)
    form: str = "if"


@dataclass(frozen=True)
class Case:
    """One case of a switch."""

    test: str
    branch: Branch


@dataclass(frozen=True)
class Switch:
    """A multi-way test: the first case whose test holds, else the default."""

    subject: str
    cases: tuple[Case, ...]
    default: Branch = field(default_factory=Branch)


@dataclass(frozen=True)
class Facts:
    """A table that is not a decision: rows of values keyed by its header (knowledge or limits)."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def sentences(self) -> list[str]:
        """Each row as one sentence keyed by the header ("Tier: Gold; Limit: 15 minutes.")."""
        return [
            "; ".join(f"{h}: {v}" for h, v in zip(self.header, row, strict=False) if v) + "."
            for row in self.rows
        ]


Construct = Plain | Verbatim | Condition | Switch | Facts

# --- sentences -------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(`])")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def _strip_end(text: str) -> str:
    return text.strip().rstrip(".;").strip()


# --- endings ---------------------------------------------------------------------------------

_ENDINGS: tuple[tuple[Ending, re.Pattern[str]], ...] = (
    ("escalate", re.compile(r"\bescalat\w*|\braise (?:it|a ticket|a case) (?:to|with)\b", re.I)),
    (
        "handoff",
        re.compile(r"\b(?:hand(?:s|ed)? (?:it |the \w+ )?(?:off|over)|transfer\w*)\b", re.I),
    ),
    (
        "resolve",
        re.compile(r"\b(?:resolve|close) (?:the|this) (?:case|ticket|conversation)\b", re.I),
    ),
    (
        "stop",
        re.compile(r"^(?:stop|end)\b|\b(?:and|then) stop\b|\bdo not (?:proceed|continue)\b", re.I),
    ),
)
_GOTO = re.compile(
    r"\b(?:go|skip|jump|return|continue|proceed)\s+(?:on\s+)?(?:to|with)\s+step\s+(?P<n>\d+[a-z]?)\b",
    re.I,
)


def ending(text: str) -> Ending:
    """How an instruction ends the flow: escalate, hand off, resolve, stop, or carry on."""
    for kind, pattern in _ENDINGS:
        if pattern.search(text):
            return kind
    return "continue"


def _plain(text: str) -> Plain:
    text = _strip_end(text)
    goto = _GOTO.search(text)
    return Plain(text=text, ends=ending(text), goto=goto.group("n") if goto else None)


_CONTINUE_ONLY = re.compile(
    r"^(?:then\s+)?(?:continue|proceed|carry on|move on)(?:\s+(?:as normal|as usual|normally|"
    r"with the (?:next|following) steps?|to the next step))?$",
    re.I,
)


_WHETHER = re.compile(r"^(?:ask|check|confirm|verify|find out|see)\b", re.I)  # "if" = whether


def _branch(text: str) -> Branch | None:
    """One side of a condition as a branch; None when it holds another condition (unscoped)."""
    text = _strip_end(text)
    if not text or _CONTINUE_ONLY.match(text):
        return Branch()
    if re.search(r"(?:^|[,;]\s*)(?:if|when|unless|otherwise)\b", text, re.I):
        return None
    if re.search(r"\b(?:if|unless|otherwise)\b", text, re.I) and not _WHETHER.match(text):
        return None  # a condition inside the branch ("refund it if the customer asks")
    return Branch((_plain(text),))


# --- conditions ------------------------------------------------------------------------------

_LEAD = re.compile(
    r"^(?P<kw>if|when|in case|in the event that|only if|unless)\s+(?P<rest>.+)$", re.I
)
_ELSE = re.compile(
    r"^(?:otherwise|else|if not|if no|if it (?:is|does|was|has) not|if they (?:do|are|have) not|"
    r"if the answer is no)\b[,:]?\s*(?P<rest>.*)$",
    re.I,
)
_ELSE_INLINE = re.compile(r"\s*(?:;|,)\s*(?:or\s+)?(?:otherwise|else|if not)\b[,:]?\s*", re.I)
_JOINER = re.compile(r"^(?:or|and|nor|either|but not|as well as)\b", re.I)
_COMMA = re.compile(r"(?<!\d),|,(?!\d)")
_THEN_WORD = re.compile(r"^then\b[,]?\s*", re.I)
_TRAILING = re.compile(r"^(?P<act>.+?),?\s+(?P<kw>only if|unless)\s+(?P<test>.+)$", re.I)
_QUESTION = re.compile(r"^(?P<test>[^?]+)\?\s*(?P<rest>.*)$")
_YES = re.compile(r"^(?:yes|if yes|if so)\b\s*[:,\-\u2013\u2014]?\s*(?P<rest>.*)$", re.I)
_NO = re.compile(r"^(?:no|if no|if not)\b\s*[:,\-\u2013\u2014]?\s*(?P<rest>.*)$", re.I)
_OPTION = re.compile(r"^option\s+(?P<name>[A-Z0-9]+)\s*[:.)\-\u2013\u2014]\s*(?P<rest>.+)$", re.I)


def _split_test(rest: str) -> tuple[str, str] | None:
    """Test and action of "X, A": the first comma not followed by or/and/either (kept in X)."""
    parts = _COMMA.split(rest)
    for i in range(1, len(parts)):
        after = parts[i].strip()
        if not _JOINER.match(after):
            test = ",".join(parts[:i]).strip()
            return test, _THEN_WORD.sub("", ",".join(parts[i:]).strip())
    then = re.match(r"^(?P<test>.+?)\s+then\s+(?P<act>.+)$", rest, re.I)
    if then:
        return then.group("test"), then.group("act")
    return None


def _verbatim(sentences: list[str], reason: str) -> Verbatim:
    return Verbatim(" ".join(sentences), reason)


def _same_place(a: Branch, b: Branch) -> bool:
    """Both sides lead to the same place: both only continue, or both jump to one step."""
    if not a.steps and not b.steps:
        return True
    return a.goto is not None and a.goto == b.goto and len(a.steps) == len(b.steps) == 1


def _condition(test: str, then: Branch, otherwise: Branch, form: str, text: str) -> Construct:
    if _same_place(then, otherwise):
        return Verbatim(text, "both sides of the condition lead to the same step")
    return Condition(test=_strip_end(test), then=then, otherwise=otherwise, form=form)


def read(text: str, children: tuple[Construct, ...] = ()) -> Construct | list[Construct]:
    """One block as constructs: a condition, a plain instruction, or verbatim with the reason.

    `children` are the block's nested items, already read; they are the branch of "If X:".
    A block of several plain sentences gives a list of Plain; a condition must take the whole
    block (a sentence after a condition with no "otherwise" could be in its scope or not).
    """
    sentences = _sentences(text)
    if not sentences:
        return Verbatim(text, "empty block")
    option = _OPTION.match(sentences[0])
    if option:
        sentences = [option.group("rest"), *sentences[1:]]
    lead = [s for s in _lead_plain(sentences)]
    rest = sentences[len(lead) :]
    out: list[Construct] = [_plain(s) for s in lead]
    if not rest:
        if children:
            return Verbatim(
                " ".join(sentences), "nested items under a block that is not a condition"
            )
        return out if len(out) > 1 else out[0]
    construct = _read_condition(rest, children)
    if isinstance(construct, Verbatim):
        return Verbatim(" ".join(sentences), construct.reason)
    return [*out, construct] if out else construct


def _is_conditional(sentence: str) -> bool:
    return bool(
        _LEAD.match(sentence)
        or _TRAILING.match(sentence)
        or _ELSE.match(sentence)
        or (_QUESTION.match(sentence) and not sentence.rstrip().endswith("?"))
        or re.match(r"^(?:yes|no)\b\s*[:\-\u2013\u2014]", sentence, re.I)
    )


def _lead_plain(sentences: list[str]) -> list[str]:
    lead: list[str] = []
    for sentence in sentences:
        if _is_conditional(sentence) or sentence.rstrip().endswith("?"):
            break
        lead.append(sentence)
    return lead


def _read_condition(sentences: list[str], children: tuple[Construct, ...]) -> Construct:
    text = " ".join(sentences)
    first = sentences[0]
    if first.rstrip().endswith("?") or (_QUESTION.match(first) and not _LEAD.match(first)):
        return _read_question(sentences, text)
    trailing = _TRAILING.match(first)
    lead = _LEAD.match(first)
    if lead is None and trailing is not None and len(sentences) == 1 and not children:
        kw = trailing.group("kw").lower()
        act = _branch(trailing.group("act"))
        if act is None or not act.steps:
            return Verbatim(text, "the action before the condition could not be read")
        if kw == "unless":
            return _condition(trailing.group("test"), Branch(), act, "unless", text)
        return _condition(trailing.group("test"), act, Branch(), "only_if", text)
    if lead is None:
        return Verbatim(text, "an alternative with no condition before it")
    kw = " ".join(lead.group("kw").lower().split())
    form = {"unless": "unless", "only if": "only_if", "when": "when"}.get(kw, "if")
    rest = lead.group("rest")
    if rest.rstrip().endswith(":"):
        if len(sentences) > 1:
            return Verbatim(text, "text after a condition that opens a list")
        if not children:
            return Verbatim(text, "a condition that opens a list with no items")
        opened = Branch(children)
        if form == "unless":
            return _condition(rest.rstrip(":"), Branch(), opened, form, text)
        return _condition(rest.rstrip(":"), opened, Branch(), form, text)
    if children:
        return Verbatim(text, "nested items under a condition that does not open a list")
    split = _split_test(rest)
    if split is None:
        return Verbatim(text, "no comma or 'then' between the condition and its action")
    test, action = split
    inline = _ELSE_INLINE.split(action, maxsplit=1)
    then = _branch(inline[0])
    otherwise: Branch | None = Branch()
    if len(inline) == 2:
        otherwise = _branch(inline[1])
        if len(sentences) > 1:
            return Verbatim(text, "text after a condition whose alternative is already stated")
    elif len(sentences) == 2:
        alt = _ELSE.match(sentences[1])
        if alt is None:
            return Verbatim(
                text, "a sentence after the condition that may or may not be in its scope"
            )
        otherwise = _branch(alt.group("rest"))
    elif len(sentences) > 2:
        return Verbatim(text, "several sentences after the condition; its scope is unclear")
    if then is None or otherwise is None:
        return Verbatim(text, "a condition inside a branch")
    if form == "unless":
        return _condition(test, otherwise, then, form, text)
    return _condition(test, then, otherwise, form, text)


def _read_question(sentences: list[str], text: str) -> Construct:
    """ "X? Yes: A. No: B." (the answers may share the question's sentence)."""
    match = _QUESTION.match(" ".join(sentences))
    if match is None:
        return Verbatim(text, "a question with no answers")
    test, rest = match.group("test").strip(), match.group("rest").strip()
    parts = re.split(r"(?:(?<=[.;])|^)\s*(?=(?:if\s+)?(?:yes|no|so|not)\b)", rest, flags=re.I)
    parts = [p.strip() for p in parts if p.strip()]
    yes: Branch | None = None
    no: Branch | None = None
    for part in parts:
        y, n = _YES.match(part), _NO.match(part)
        if y and yes is None:
            yes = _branch(y.group("rest"))
            if yes is None:
                return Verbatim(text, "a condition inside an answer")
        elif n and no is None:
            no = _branch(n.group("rest"))
            if no is None:
                return Verbatim(text, "a condition inside an answer")
        else:
            return Verbatim(text, "text after the question that is not a yes/no answer")
    if yes is None and no is None:
        return Verbatim(text, "a question with no yes/no answers")
    return _condition(test, yes or Branch(), no or Branch(), "question", text)


# --- siblings: switches ----------------------------------------------------------------------

_SUBJECT = re.compile(
    r"^(?P<subject>.+?)\s+(?:is|are|was|were|has|have|equals|exceeds|falls|costs|totals)\b", re.I
)


def _subject(test: str) -> str | None:
    match = _SUBJECT.match(test)
    return " ".join(match.group("subject").lower().split()) if match else None


def read_items(items: list[tuple[str, tuple[Construct, ...]]]) -> list[Construct]:
    """Sibling blocks in order; a run of conditions on one subject (or options) is one switch.

    A run joins only when every member is a plain "If X, A." with no otherwise and the tests
    name the same subject (or every member is labelled "Option ..."); else each stays itself.
    """
    read_ = [(text, read(text, children)) for text, children in items]
    out: list[Construct] = []
    i = 0
    while i < len(read_):
        j = i
        key = _run_key(*read_[i])
        while key is not None and j + 1 < len(read_) and _run_key(*read_[j + 1]) == key:
            j += 1
        if j > i:
            members = [c for _, c in read_[i : j + 1] if isinstance(c, Condition)]
            subject = "which option applies" if key == "option" else str(key)
            out.append(Switch(subject=subject, cases=tuple(Case(m.test, m.then) for m in members)))
        else:
            construct = read_[i][1]
            out += construct if isinstance(construct, list) else [construct]
        i = j + 1
    return out


def _run_key(text: str, construct: Construct | list[Construct]) -> str | None:
    if not isinstance(construct, Condition) or construct.form not in {"if", "when"}:
        return None
    if construct.otherwise.steps:
        return None
    if _OPTION.match(text.strip()):
        return "option"
    return _subject(construct.test)


# --- tables ----------------------------------------------------------------------------------

_OUTCOME = re.compile(
    r"^(?:action|actions|what to do|then|outcome|next step|next steps|do this|response|"
    r"resolution|handling|agent action|route to|decision)$",
    re.I,
)


def read_table(header: list[str], rows: list[list[str]]) -> Construct:
    """A decision table as a switch on its input columns, or any other table as facts."""
    head = tuple(" ".join(h.split()) for h in header)
    body = tuple(tuple(" ".join(c.split()) for c in row) for row in rows)
    if len(head) < 2 or any(len(row) != len(head) for row in body):
        return Verbatim(
            " | ".join(head), "a table whose rows do not have one cell per header column"
        )
    if not _OUTCOME.match(head[-1]):
        return Facts(head, body)
    cases: list[Case] = []
    default = Branch()
    for row in body:
        tests = [
            f"{h.lower()} is {v}"
            for h, v in zip(head[:-1], row[:-1], strict=True)
            if v and v.lower() not in {"any", "-", "*", "n/a"}
        ]
        branch = _branch(row[-1])
        if branch is None:
            return Verbatim(" | ".join(row), "a condition inside a table's outcome cell")
        if not tests:
            default = branch
            continue
        cases.append(Case(" and ".join(tests), branch))
    subject = " and ".join(h.lower() for h in head[:-1])
    return Switch(subject=subject, cases=tuple(cases), default=default)
