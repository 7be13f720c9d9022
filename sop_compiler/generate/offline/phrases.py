"""Reading one SOP sentence: its condition (if any) and the actions it asks for."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from sop_compiler.generate.offline.binding import (
    DENIED_THING,
    MOVES_PERSON,
    RAISE_WITH,
    READ_VERBS,
    TEAM_VERBS,
    bind,
    canonical_words,
    hands_over,
    identity_check,
    in_system,
    is_statement,
    notifier,
)
from sop_compiler.generate.offline.tools import WRITE_VERBS, ToolIndex, ToolMention, proposed_name
from sop_compiler.models import Tool, ToolCatalog
from sop_compiler.text import FIRST_THING, INSTRUCTION_VERBS


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_LEAD = re.compile(
    r"^(?:(?:then|first|next|finally|also|now|afterwards|after that|lastly|please|always|"
    rf"alternatively|{FIRST_THING}|"
    r"either way|in (?:either|both|all|every|each) cases?|whatever happens|"
    r"(?:each|every)\s+(?:morning|evening|day|working\s+day|week|month|monday|tuesday|"
    r"wednesday|thursday|friday|saturday|sunday)(?:\s+(?:by|at|before|after|from)\s+"
    r"\d{1,2}(?:[:.]\d{2})?\s*(?:am|pm)?)?(?=,)|"
    # never "You must not": its "not" is no order ("Not charge the last team")
    r"(?:you|agents?|the agent)\s+(?:must|should|need to|needs to|have to|will)(?!\s+not\b)|"
    r"make sure to|"
    r"be sure to)\b,?\s*)+",
    re.IGNORECASE,
)
_ELSE = re.compile(
    r"^(?:otherwise|else|if not(?=[,:])|if no(?=[,:])|if they do not(?=[,:])|"
    r"if this is not the case|if that is not the case|"
    r"in all other cases|in any other case)\b(?:\s*[,:]|\s+[-\u2013\u2014](?=\s))?\s*",
    re.IGNORECASE,
)
_YES = re.compile(r"^(?:if so|if yes)\b[,:]?\s*", re.IGNORECASE)
# the words a condition opens with, wherever a condition is read (steps, and the rules under it)
CONDITION_OPENER = (
    r"(?:if|when|whenever|where|in case|in the event that|in the event|should|"
    r"provided(?: that)?|as long as)"
)
_IF = re.compile(
    rf"^{CONDITION_OPENER}\s+"
    r"(?!to\s+use\b)",  # "When to use: the customer ...": a macro's trigger line, no test
    re.IGNORECASE,
)
_ONCE = re.compile(r"^(?:once|as\s+soon\s+as|having)\s+[^,]{3,80},\s*", re.IGNORECASE)
# "For every illness claim in the first policy year, request ...": the order, for every case
_FOR_EVERY = re.compile(r"^for\s+(?:every|each|all|any)\b[^,]{1,80},\s*", re.IGNORECASE)
# "For a partial refund, add up ...": a case of the step, read as "if it is for a partial refund"
_FOR = re.compile(
    r"^for\s+(?!example\b|instance\b|more\b|security\b|your\b|each\b|every\b|all\b|this\b|that\b)"
    r"(?P<case>[^,]{3,80}),\s+(?:also\s+)?(?P<verb>[a-z']+)",
    re.IGNORECASE,
)
# "A line fault means the router is not to blame: follow CC-TS-001": a finding and what to do
_MEANS = re.compile(
    r"^(?P<finding>an?\s+[\w' -]{2,40}?)\s+means\s+(?P<why>[^:;]+?)\s*[:;]\s*(?P<action>\S.*)$",
    re.IGNORECASE,
)
_TRAILING_IF = re.compile(
    r"^(?P<action>.+?),?\s+(?:only\s+)?(?:if|when|in case|provided(?: that)?|as long as)\s+"
    r"(?P<test>.+)$",
    re.IGNORECASE,
)
# "..., so that you know when it was delivered", "Look at when that round is next": "when"
# opens a clause, not a condition.
_NOT_A_TEST = re.compile(
    r"(?:\beven|\band|\bknow|\bsee|\bwhich|\bexcept|\bat|\babout|\bof)$", re.IGNORECASE
)
_NO_TRAILING_IF = _words(
    """
    ask check confirm verify see find determine tell inform explain let advise establish
    """
)
_AND_SAY = re.compile(
    r"(?:\band|\bthen|,)\s+(?:tell|inform|explain|advise|let|ask|remind|warn|confirm|promise)\b",
    re.IGNORECASE,
)
_VAGUE_TESTS = _words(
    """
    needed necessary possible applicable required appropriate relevant
    """
)
_GOTO = re.compile(
    r"\b(?:go|skip|jump|proceed|continue|return|move|carry on)\s+"
    r"(?:back\s+|straight\s+|directly\s+|on\s+)?"
    # "go to step 7", and "then go to 7.3" in a manual whose steps are numbered 7.1, 7.2, ...
    r"(?:to|with)\s+(?:step\s+(?P<step>\d+(?:\.\d+)?[a-z]?)\b|"
    r"(?P<clause>\d+\.\d+[a-z]?)(?=\s*(?:[.;,)]|$)))",
    re.IGNORECASE,
)
_SPLIT = re.compile(
    r";\s+|,?\s+and then\s+|,\s+then\s+|\s+then\s+(?=go\b|skip\b|proceed\b)", re.IGNORECASE
)
# "and <verb> <object>": "offer a return and refund instead" joins two nouns, no second action.
# "..., and then refund it", "register the claim but refer it to the Fraud Unit": a second order
_AND = re.compile(
    r",?\s+(?:and|but)\s+(?=(?:then\s+|also\s+)?([a-z']+)\s+(?!instead\b)\w)", re.IGNORECASE
)
# "..., and you should transfer ...": the clause after it is an instruction of its own.
_YOU_SHOULD = re.compile(
    r",?\s+and\s+(?:you|agents?)\s+(?:should|must|need to|have to)\s+", re.IGNORECASE
)
_ASK_TO = re.compile(r"^ask\s+(?:the\s+)?(?:customer|caller|them|him|her)\s+to\b", re.IGNORECASE)
# "tell them to leave the car, get behind the barrier and call 999": a list of what they do
_TELL_TO = re.compile(
    r"^(?:(?:stop|then|also)\s+(?:and\s+)?)?(?:tell|advise|instruct|remind)\s+(?:the\s+)?"
    r"(?:customer|caller|member|driver|them|him|her)\s+to\b",
    re.IGNORECASE,
)
# "walk them through the settings page and change the name": the customer does both
_WALK = re.compile(r"^(?:walk|talk|guide|take)\s+\w+\s+through\b", re.IGNORECASE)
_SAY_LABEL = re.compile(r"^(?:tell|explain|inform|advise|remind|say)\b", re.IGNORECASE)
# "follow CC-ACC-002 Identity Verification": the case goes on in another SOP.
_FOLLOW_SOP = re.compile(r"^follow\s+(?:sop\s+)?[A-Z]{2,}(?:-[A-Z0-9]+)+\b(?!.*\bfirst\b)", re.I)
_OTHER_PROCEDURE = re.compile(
    r"^(?:go to|follow|continue with|use) the (?:procedure|section|process) (?:above|below)\b",
    re.IGNORECASE,
)
_GOTO_WORDS = frozenset({"go", "skip", "jump", "proceed", "continue", "return"})
END = "end"  # `goto` value: the closing step of the routine
# "the letting shall not proceed", "do not go ahead with the booking": the request stops here
NOT_PROCEED = re.compile(
    r"^(?:the\s+[\w-]+(?:\s+[\w-]+)?\s+(?:shall|must|will|should|cannot|can't|may)\s+not\s+|"
    r"(?:do\s+not|don't)\s+)(?:proceed|go\s+ahead|continue|"
    # "Don't process it here: plants go through a guarantee claim": not in this procedure
    r"(?:process|deal\s+with|handle)\s+(?:it|this|them)\s+here)\b",
    re.IGNORECASE,
)
STOP_ALONE = re.compile(r"^stop(?:\s+(?:here|there|now))?\s*[.!]?\s*$", re.IGNORECASE)
_RESOLVE = re.compile(
    r"^(?:(?:close|resolve|end|complete|wrap up)\s+(?:the\s+|this\s+)?"
    r"(?:case|ticket|conversation|chat|call|contact|interaction|request)\b"
    r"|mark\s+(?:the\s+|this\s+)?(?:case|ticket|conversation|request|it)\s+(?:as\s+)?"
    r"(?:resolved|solved|closed|complete|done)\b|resolve\b\s*(?:it\b)?\s*\.?$)",
    re.IGNORECASE,
)
_ESCALATE = re.compile(
    r"\bescalate\b(?:\s+(?:the\s+|this\s+)?(?:case|issue|ticket|call|chat|matter|complaint|request|"
    r"claim|booking|order|file|account|query|report|it|this|them))?"
    r"(?:\s+(?:immediately|straight away)\b)?(?:\s+(?:to|with)\s+(?P<team>.+))?",
    re.IGNORECASE,
)
# The people a procedure talks with, as SOPs name them (a customer, a patient, a guest, ...).
PERSON_NOUNS = (
    r"(?:customers?|callers?|clients?|users?|members?|passengers?|guests?|patients?|"
    r"policyholders?|subscribers?|buyers?|shoppers?|cardholders?|account\s+holders?|"
    r"travell?ers?|tenants?|residents?|requesters?)"
)
_HANDOFF = re.compile(
    r"\b(?:transfer|hand\s+(?:(?:it|them|this|the\s+\w+)\s+)?(?:off|over)|route|redirect|refer|pass|"
    # "hand it to the duty manager straight away"
    r"assign|hand\s+(?:it|them|this)(?=\s+to\s))(?:\s+(?:the\s+|this\s+|their\s+)?(?:"
    + PERSON_NOUNS
    + r"|case|chat|call|"
    r"conversation|ticket|them|it|this|contact|request|claim|order|issue|complaint))?"
    r"\s+to\s+(?P<who>.+)|"
    # "Put the call through to the duty spa manager straight away": a transfer
    r"\bput\s+(?:the\s+|this\s+|their\s+)?(?:" + PERSON_NOUNS + r"|call|chat|them|him|her)\s+"
    r"(?:straight\s+)?through\s+to\s+(?P<through>.+)",
    re.IGNORECASE,
)
_SEND_TO_TEAM = re.compile(
    r"^(?i:send|forward|refer|pass|assign|route)\s+(?:(?i:the|this|their|its)\s+)?"
    r"[\w' -]{1,40}?\s+(?:on\s+)?"
    r"to\s+(?P<who>(?:the\s+)?[A-Z][\w&'-]*(?:\s+(?:of\s+|and\s+|&\s+)?[A-Z][\w&'-]*){0,3}"
    r"(?:\s+(?:team|desk|office|unit|department))?|"
    # "refer the account to the school's business manager": people by their role, in lower case
    r"(?i:the|a|your|their)\s+(?:[a-z][\w'-]*\s+){0,3}?(?:manager|supervisor|team\s+leader|"
    r"team\s+lead|officer|coordinator|director))(?=$|[\s,.;:(])"
)
# "Raise a job with Metering Operations": the named team takes the work on
_RAISE_WITH_TEAM = re.compile(
    "^"
    + RAISE_WITH
    + r"(?P<who>(?i:the\s+)?[A-Z][\w&'-]*(?:\s+[A-Z][\w&'-]*){0,3}(?:\s+(?i:team|desk|office|"
    r"unit|department))?)(?=$|[\s,.;:(])"
)
# "Don't refund it", "We don't pause subscriptions, not even for a holiday", "Record nothing
# yet": what is not done
_NOT_DONE = re.compile(
    r"^(?:do\s+not|don't|never)\b|"
    r"^(?:we|you|staff|agents?)\s+(?:do\s+not|don't|never|cannot|can't|won't|will\s+not)\s|"
    r"^[a-z]+\s+nothing\b",
    re.IGNORECASE,
)
_LIMITED_ORDER = re.compile(
    r"^[a-z]+\s+(?:no\s+more\s+than|not\s+more\s+than|at\s+most|a\s+maximum\s+of)\s+"
    r"(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|twelve|once|twice)\s+"
    r"(?!minutes?\b|hours?\b|days?\b)[a-z]",
    re.IGNORECASE,
)
_ROLE_DECIDES = re.compile(
    r"^(?:the\s+)?(?P<who>(?:(?-i:[A-Z])[\w'-]*\s+){0,3}(?:manager|director|supervisor|lead|"
    r"team|desk|officer|partner|owner)|"
    # "the duty manager": a role in lower case is staff by its last word (an owner or a
    # partner may be the customer's)
    r"(?:[a-z][\w'-]*\s+){1,3}(?:manager|director|supervisor|lead|team|desk|officer))"
    r"\s+(?:decides|will\s+decide|makes\s+the\s+(?:call|"
    r"decision)|has\s+the\s+final\s+say)"
    # "The duty manager decides what happens to it", "... decides whether to send a taxi"
    r"(?:\s+(?:what|whether|how|if|on|about|when)\b[^.;:]{0,80})?\s*\.?$",
    re.IGNORECASE,
)
_GOES_TO = re.compile(
    # what is passed on is a case ("a second request", "anything beyond that"), never a thing
    # being shipped ("the parcel is sent to the Returns Centre")
    r"^(?i:(?:the|a|an|any|this|that|these|such)\b[\w' ,-]{0,40}?\b(?:requests?|cases?|"
    r"complaints?|claims?|quer(?:y|ies)|enquir(?:y|ies)|matters?|appeals?|disputes?|"
    r"applications?|refunds?)|anything(?:\s+else|\s+beyond\s+that|\s+more)?|everything\s+else|"
    # "Accounts in arrears go to the Club Secretary", "Anything longer than three months goes
    # to ...": cases of a kind, said in the plural, or all beyond a limit
    r"(?:accounts|files)\s+(?:in|with|on|over|above|older|under)\b[\w' ,£$€.-]{0,40}?|"
    r"anything\s+(?:longer|more|over|above|bigger|larger|higher|older)\b[\w' ,£$€.-]{0,40}?|"
    r"it|this|that)\s+"
    r"(?i:goes|go|is\s+passed|are\s+passed|is\s+referred|are\s+referred|is\s+escalated|"
    r"are\s+escalated|is\s+sent|are\s+sent)\s+(?i:on\s+)?(?i:to)\s+"
    r"(?P<who>(?i:the\s+)?[A-Z][\w&'-]*(?:\s+(?:of\s+|and\s+|&\s+)?[A-Z][\w&'-]*){0,3})"
    r"(?=$|[\s,.;:(])"
)
_BY_MEANS = re.compile(
    r"\b(?:through|via|using|by|with)\s+(?:a|an|the)\s+(?P<noun>task|ticket|case|form|referral|"
    r"request|letter|note|message|email|sms|text)\b"
    r"(?=\s*(?:$|[.,;:)]|(?:to|for|in|on|and|so)\b))",  # "with the ticket number" names a number
    re.IGNORECASE,
)
# "... goes to the Head of Quality for review", "call your team leader for approval": they are
# asked or told, the case stays here
_FOR_THEIR_SAY = re.compile(
    r"\bfor\s+(?:(?:their|his|her|an?)\s+)?(?:review|approval|sign-off|authori[sz]ation|"
    r"permission|advice|information|records)\b",
    re.IGNORECASE,
)
_CALL_ROLE = re.compile(
    r"^\w+\s+(?:the|your)\s+(?P<who>(?:[\w-]+\s+){0,2}(?:manager|supervisor|team\s+leader|"
    r"team\s+lead|duty\s+officer|on-call\s+\w+))\b"
    # the call is the whole order: "phone the warehouse manager to check the stock" asks
    r"(?=\s*(?:(?:straight\s+away|immediately|now|at\s+once|first)\s*)?[.!]?\s*$)",
    re.IGNORECASE,
)
# "stop and get Priya", "Over £50, ask Gareth to OK it": a person named (capitalised) whom the
# agent fetches, who takes the case over; never "get the postcode", which asks the customer
_GET_PERSON = re.compile(
    r"^(?i:get|fetch|grab|ask|request)\s+(?P<who>[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)"
    r"(?=\s*(?:[.!:;,]|$)|\s+(?i:to|in|over|involved)\b)"
)
# "through the Control Room": a named team (capitalised) the work is done by
_THROUGH_TEAM = re.compile(
    r"\b(?i:through|via)\s+(?:the\s+)?(?P<who>[A-Z][\w&'-]*(?:\s+[A-Z][\w&'-]*){0,3})"
    r"(?=\s*(?:$|[,.;:(]|\s(?i:who|which|team|desk)\b))"
)


def _passes_cases_to(who: str, tools: ToolIndex) -> list[Tool] | None:
    """The catalog's write tools that say they reach `who` ("Raise a case to the Control Room,
    a Team Leader or ..."), when `who` is people: a team word or a name such a tool gives; None
    for a system ("through the Portal")."""
    name = re.compile(rf"\bto\s+(?:the\s+)?{re.escape(who)}\b", re.IGNORECASE)
    owners = [t for t in tools.catalog.tools if t.access == "write" and name.search(t.description)]
    return owners if owners or _HUMAN.search(who) else None


_NAME_END = re.compile(
    # "the Health and Safety Lead": an "and" between capitals is part of the name
    r"\s+(?:via|using|with|by|through|and(?!\s+[A-Z])|so|for|immediately|within|who|which|if|"
    r"when|to|at|before|after|including|straight|now)\b|[,.;:()\"`]|\s[-\u2013\u2014]\s"
)
_HUMAN = re.compile(
    r"\b(?:supervisor|manager|team lead|lead|tier\s*\d|human|person|colleague|on-call|specialist|"
    r"department|desk|team|adjuster|head|officer|reviewer|analyst|engineer|owner)\b",
    re.IGNORECASE,
)
_ASKING = r"(?:ask|request|collect|obtain|gather|get)\b"
_ASK = re.compile(rf"^(?!{MOVES_PERSON.pattern}){_ASKING}", re.IGNORECASE)
_CONFIRM = re.compile(r"^confirm\b", re.IGNORECASE)
# what someone gives to let a thing be done: "approval", "sign-off", "the duty manager's OK"
CONSENT = re.compile(
    r"\b(?:approval|authori[sz]ation|sign-?off|go-ahead|say-so|OK|okay|consent)\b", re.IGNORECASE
)
# someone's consent: "the duty manager's OK", "the Finance Manager's approval" (a person's,
# by their role, not the customer's)
APPROVER = re.compile(
    rf"(?P<who>\b(?:(?!{_ASKING}|needs?\b|without\b)[\w-]+\s+){{0,2}}?{_HUMAN.pattern})"
    rf"['\u2019]s\s+{CONSENT.pattern}",
    re.IGNORECASE,
)


_BACKTICK_WORD = re.compile(r"`[^`]+`")
_CONFIRM_THAT = re.compile(r"^confirm\s+that\b", re.IGNORECASE)
_ORDERED_DONE = re.compile(r"\b(?:shall|must|should|is\s+to|are\s+to)\s+be\s+[a-z]+ed\b", re.I)


def _reaching(who: str, catalog: ToolCatalog) -> Tool | None:
    """The one write tool that reaches `who` ("the duty manager": `page_duty_manager`, described
    "Page the duty manager ..."): every word of the role in its name or description."""
    role = set(canonical_words(who)) - {"the", "our", "your"}
    found = [
        tool
        for tool in catalog.tools
        if tool.access == "write"
        and role
        and role <= set(canonical_words(f"{tool.name.replace('_', ' ')} {tool.description}"))
    ]
    return found[0] if len(found) == 1 else None


_SAY = _words(
    """
    tell inform explain let advise apologise apologize remind reassure thank greet offer
    say acknowledge warn suggest recommend share
    """
)
_INFO_NOUN = re.compile(
    r"\b(?:number|address|email|id|name|photo|picture|details|date|reason|code|receipt|proof|"
    r"postcode|phone|account|reference|description|screenshot|order|amount)s?\b",
    re.IGNORECASE,
)


@dataclass
class Action:
    """One thing to do, read from (part of) a sentence."""

    kind: str  # say | ask | tool_call | handoff | escalate | resolve | goto
    text: str
    quote: str  # verbatim text of the sentence this action is read from
    target: str | None = None
    tool: ToolMention | None = None
    proposed: tuple[str, str] | None = None  # (name, access) when no catalog tool covers it
    goto: str | None = None  # "step N" as the SOP numbers it


@dataclass
class Clause:
    """A sentence: an optional condition, an else marker, and its actions."""

    sentence: str
    actions: list[Action] = field(default_factory=list)
    test: str | None = None
    is_else: bool = False
    is_yes: bool = False  # "If so, ..." : a condition on the previous question
    test_tool: ToolMention | None = None  # a tool the test needs ("if `track_shipment` shows ...")
    inner_test: str | None = None  # "If X, refund it if Y": Y, a test inside the branch of X
    rest: str = ""  # the action part as written (what an edge case's `then` says)


# "Stop and escalate: in the event that anyone has been injured, ...": a label over a sentence
# that opens with its own test; the test and its orders say it all
_LABELLED_TEST = re.compile(
    r"^[A-Z][\w'-]*(?:\s+(?!(?i:can|may|must|is|are|will|shall|should)\b)[\w'-]+){0,3}:\s+"
    r"(?=(?i:if|when|where|in\s+the\s+event|in\s+case|should|provided|unless)\b)"
)


def read_clause(
    sentence: str,
    *,
    tools: ToolIndex,
    agents: tuple[str, ...],
    bind_meaning: bool = True,
    labels: bool = True,
) -> Clause:
    """Split a sentence into its condition and actions (`labels`: a case named before a colon
    is a test; not in a step a decision jumps to, whose case is tested already)."""
    text = _LEAD.sub("", _LABELLED_TEST.sub("", sentence.strip())).strip()
    clause = Clause(sentence=sentence)
    after = ""  # "Once it comes back signed, ": what the order waits for
    if match := _ELSE.match(text):
        rest = text[match.end() :]
        if _IF.match(rest) and not _ELSE.match(rest):
            # "Otherwise, if it is more than £300, open a ticket": the other side is a case
            # of its own, with its own test
            clause = read_clause(
                rest, tools=tools, agents=agents, bind_meaning=bind_meaning, labels=labels
            )
            clause.sentence, clause.is_else = sentence, True
            return clause
        clause.is_else = True
        text = rest
    elif match := _YES.match(text):
        clause.is_yes = True
        text = text[match.end() :]
    elif (case := _FOR.match(text)) and case.group("verb").casefold() in INSTRUCTION_VERBS:
        clause.test = f"it is for {case.group('case').strip()}"
        text = text[case.end("case") + 1 :].strip()
    elif (every := _FOR_EVERY.match(text)) and is_order(text[every.end() :]):
        text = text[every.end() :]  # "For every illness claim ..., request ...": every case
    elif (once := _ONCE.match(text)) and is_order(text[once.end() :]):
        # "Once it comes back signed, take the deposit", "Having taken payment, create the
        # booking": what comes first, then the order (the step keeps both)
        after = once.group(0)
        text = text[once.end() :]
    elif _IF.match(text):
        opener = _IF.match(text)
        assert opener is not None
        rest = text[opener.end() :]
        led = rest.rstrip()[:-1]
        *_, last = led.rsplit(", ", 1) if ", " in led else ("", "")
        if rest.rstrip().endswith(":") and is_order(last) and not _INLINE_THEN.search(led):
            # "If the aid still does not work, arrange a repair:" leads a list: the order
            # after the last comma heads it
            test, action = led[: -len(last)].rstrip(", "), last
        elif rest.rstrip().endswith(":") and not _INLINE_THEN.search(led):
            # "If the customer mentions a burning smell, smoke, ... or water:" leads a list: the
            # whole clause is the test, commas and all
            test, action = led, ""
        else:
            test, action = _split_condition(rest)
        if opener.group(0).strip().casefold() == "should":
            test = re.sub(r"\bbe\b", "is", test, count=1)  # "should the customer be ..."
        clause.test = test.rstrip(":").strip()
        clause.test_tool = tools.find(test) if "`" in test else None
        text = action
        if inner := _trailing_test(text):
            text, clause.inner_test = inner
    elif (means := _MEANS.match(text)) and is_order(means.group("action")):
        finding, why = means.group("finding"), means.group("why").strip()
        clause.test = f"there is {finding[0].lower()}{finding[1:]} ({why})"
        text = means.group("action")
    elif banded := _amount_case(text):
        clause.test, text = banded
    elif labels and (labelled := _case_label(text)) and _THAN_THAT.search(labelled[0]):
        # "Reported later than that: say sorry ..." after "Reported within 48 hours? ...": the
        # other side of the case before it
        clause.is_else, text = True, labelled[1]
    elif labels and (labelled := _case_label(text)):
        clause.test, text = label_test(labelled[0]), labelled[1]
    elif trailing := _trailing_test(text):
        text, clause.test = trailing
    clause.rest = _LEAD.sub("", text).strip()
    clause.actions = read_actions(
        clause.rest, quote=sentence, tools=tools, agents=agents, bind_meaning=bind_meaning
    )
    if after and clause.actions:
        first = clause.actions[0]
        said = f"{after[0].upper()}{after[1:]}{first.text[:1].lower()}{first.text[1:]}"
        clause.actions[0] = replace(first, text=said)
    return clause


_MONEY = r"(?:[£$€]\s?|(?:GBP|USD|EUR)\s)\d[\d,]*(?:\.\d+)?"
# "Over £25, raise a ticket to the Team Lead instead of refunding", "Between £100 and £500, ...":
# a band of an amount, first
AMOUNT_CASE = re.compile(
    r"^(?P<cmp>over|above|more\s+than|in\s+excess\s+of|under|below|less\s+than|between)\s+"
    rf"(?P<amount>{_MONEY}(?:\s+(?:and|to)\s+{_MONEY})?)\s*[,:]\s+",
    re.IGNORECASE,
)
_INSTEAD_OF = re.compile(r"\b(?:instead\s+of|rather\s+than)\s+(?P<verb>[a-z]+?)(?:ing)?\b", re.I)


def _amount_case(text: str) -> tuple[str, str] | None:
    """ "Over £25, raise a ticket instead of refunding" -> ("the refund is over £25", "raise
    ..."); what the amount is of is the order it replaces ("it" when none is named)."""
    match = AMOUNT_CASE.match(text)
    # "Between £100 and £500, the Aftersales Manager decides": theirs, in that band
    if match is None or not (
        is_order(text[match.end() :]) or _ROLE_DECIDES.match(text[match.end() :])
    ):
        return None
    rest = text[match.end() :]
    instead = _INSTEAD_OF.search(rest)
    thing = f"the {instead['verb'].casefold()}" if instead else "it"
    return f"{thing} is {match['cmp'].casefold()} {match['amount']}", rest


_THAN_THAT = re.compile(
    r"\b(?:later|earlier|more|less|fewer|longer|shorter|older|bigger|smaller|higher|lower)\s+"
    r"than\s+(?:that|this)$",
    re.IGNORECASE,
)
ABOUT = "it is about "
RULE_APPLIES = "this rule applies to the request: "  # the test of a prohibition and its action
_LABEL_CLAUSE = re.compile(
    r"\b(?:is|are|was|were|has|have|had|holds?|asks?|wants?|says?|reports?|died|does|do|did|"
    r"can|cannot|needs?|refuses?|requests?|lives?|owes?)\b",
    re.IGNORECASE,
)


# "Record expires before the appointment date: text the owner", "Order is over £50: refer it":
# the first word is the subject a verb of state follows, not an order
_STATE_VERBS = _words(
    """
    is are was were has have had isn't aren't wasn't hasn't haven't doesn't didn't expires
    expired lapses lapsed shows showed says said fails failed exceeds exceeded matches arrives
    arrived runs ran comes came
    """
)


def label_test(label: str) -> str:
    """A case label ("Honeybees:", a table cell) as a test: a clause as it is, a name as a topic
    ("it is about Honeybees")."""
    label = label.strip().rstrip(":")
    if label[1:2].islower():
        label = label[0].lower() + label[1:]
    words = label.casefold().split()
    clause = (
        _LABEL_CLAUSE.search(label)
        or re.search(r"\s[a-z]+ed\b", label)
        or (len(words) > 1 and words[1] in _STATE_VERBS)
    )
    return label if clause else f"{ABOUT}{label}"


# "Honeybees: DO NOT BOOK.", "Slot free today: book it", "Already 3: refer to the supervisor",
# "A painful red eye — don't book a routine test": a case named before a colon (or a dash) and
# the order for it. Not a remark ("Note: ..."), a step number ("Step 2: ..."), who does it
# ("Agents: ..."), nor an order itself ("Never refund it: ...")
# "Honeybees: do not book", "Any van below 2 of any cylinder size -> order stock for it"
_CASE_LABEL = re.compile(
    r"^(?P<label>[^:;.!?\[\]\u2014\u2013>]{2,180}?)"
    r"(?:\s*:|\s+[\u2014\u2013]|\s+-+>|\s+=+>|\s*[\u2192\u21d2])\s+(?=\S)"
)
_NOT_A_CASE = re.compile(
    r"^(?:notes?|tips?|hints?|important|warning|caution|reminder|remember|exceptions?|owner|"
    r"who|what|when|where|why|how|goal|aim|purpose|scope|actions?|steps?|stages?|phases?|"
    r"parts?|then|next|finally|first|script|say|reply|answer|question|example|e\.g|fyi|"
    r"n\.?b|yes|no|y|n|true|false|ok|result|outcome|frequency|timing|deadline|"
    r"responsible|contact|email|phone|price|cost|fee|sla|target|agents?|advisers?|staff|you|"
    r"we|team|escalation|rule|policy|procedure|process)\b",
    re.IGNORECASE,
)


# "A suspension needs the Transport Manager's approval: request it", "Data protection applies
# to everything below: never ...": a rule or a remark on the text before its colon, no case
# "the steps below", "the following": a label of text, never "below 2" (a case of how many)
_STATES_A_RULE = re.compile(
    r"\b(?:needs?|requires?|must|should|shall|appl(?:y|ies)|(?:below|above)(?!\s+[£$€]?\d)|"
    r"following)\b",
    re.I,
)


# "These applications are decided by the SEN Transport team: pass them on": of the things just
# named, what holds for them; no case of its own
_BACK_REFERENCE = frozenset({"these", "those", "such", "they"})


_ASIDE = re.compile(r"\([^()]{1,120}\)")
# "Controlled drugs (the record shows a CD flag) are never put through ...": a rule, no case
_NEGATION = re.compile(r"\b(?:never|not|no|cannot|can't|won't|isn't|aren't)\b", re.IGNORECASE)


def _case_label(text: str) -> tuple[str, str] | None:
    """ "Honeybees: do not book" -> ("Honeybees", "do not book"); None for no labelled case."""
    match = _CASE_LABEL.match(text)
    if match is None:
        return None
    label, rest = match.group("label").strip(), text[match.end() :]
    first, *after = label.casefold().split(None, 2)
    if first == "for":
        label = f"it is {label[0].lower()}{label[1:]}"  # "For anything heavier: refer ..."
    # "Claims over £60, or for anything other than a missed appointment (for example damaged
    # belongings or time off work): refer ...": an aside in brackets is no length of the case
    long = len(label.split()) > 12 or len(label) > 90
    if (
        len(_ASIDE.sub(" ", label).split()) > 12
        or (long and (not _ASIDE.search(label) or _NEGATION.search(label)))
        or (first in INSTRUCTION_VERBS and not (after and after[0] in _STATE_VERBS))
        or first in _ACTION_OPENERS
        or first in _BACK_REFERENCE
        or _NOT_A_CASE.match(label)
        or _STATES_A_RULE.search(label)
        or not (is_order(rest) or NEGATED.match(rest))
    ):
        return None
    return label, rest


# ", which lapses after 48 hours", ", I'd rather ring them myself": a clause of its own
_RELATIVE = re.compile(r",\s+(?i:which|who|whose)\s|(?:,|\s+and)\s+(?:I|[Ww]e)(?:'[a-z]{1,2})?\s")


def _and_order(text: str) -> bool:
    """ "do not extend it and offer an alternative": a second order after "and" (or "but")."""
    return any(m.group(1).casefold() in INSTRUCTION_VERBS for m in _AND.finditer(text))


def _trailing_test(text: str) -> tuple[str, str] | None:
    """ "Refund it if the customer asks" -> ("Refund it", "the customer asks"); None when the
    text does not start with an instruction, or its "if" opens no test ("check if ...",
    "... if needed")."""
    trailing = _TRAILING_IF.match(text)
    first = text.split(None, 1)[0].casefold() if text.split() else ""
    if (
        trailing is None
        or _NOT_A_TEST.search(trailing.group("action"))
        or (first not in INSTRUCTION_VERBS and first != "have")  # "have the pupil taken ..."
        or first in _NO_TRAILING_IF
        or trailing.group("test").rstrip(". ").casefold() in _VAGUE_TESTS
        # "queue it and tell the resident they will be contacted when a space is released":
        # the test is part of what is said, not a test of the order
        or _AND_SAY.search(trailing.group("action")) is not None
        # "do not raise a job; the client claims on the cover if they have it": the test is
        # the last clause's, not the order's
        or ";" in trailing.group("action")
        # "... when they look under 16; ask for ID": where the test ends is not said
        or ";" in trailing.group("test")
        # "(the new code follows automatically when it is deposited)": an aside, no test
        or trailing.group("action").count("(") > trailing.group("action").count(")")
        # "place a Provisional Booking, which lapses after 48 hours if no Deposit is received",
        # "Don't offer discounts, I'd rather ring them myself when I'm back": the test is the
        # relative or the writer's clause's, not the order's
        or _RELATIVE.search(trailing.group("action")) is not None
        # "do not extend the hire and offer an alternative item, if one is available": the test
        # is the offer's; the refusal holds either way, so the words stay as they are
        or (NEGATED.match(text) is not None and _and_order(trailing.group("action")))
        # "Cancel the pledge if they still want to, and refer the campaign to Trust & Safety":
        # the test ends before the next order, which holds either way; the words stay whole
        or _and_order(trailing.group("test"))
    ):
        return None
    return trailing.group("action"), trailing.group("test").rstrip(". ").strip()


def is_order(text: str) -> bool:
    """True when the text starts with an instruction verb ("follow ...", "transfer ...")."""
    first = _LEAD.sub("", text).split(None, 1)
    return bool(first) and first[0].casefold() in INSTRUCTION_VERBS


_CLAUSE_COMMA = re.compile(r"(?<!\d),|,(?!\d)")
_ACTION_OPENERS = frozenset({"do", "don't", "never", "you", "stop"})
_JOINS_TESTS = frozenset({"or", "and", "nor", "either", "but"})
# never "have" or "don't": "..., have the pupil taken to the school" is an order
_PREDICATE_VERBS = frozenset(
    {"is", "are", "was", "were", "has", "isn't", "aren't", "wasn't", "hasn't", "can't"}
    | {"cannot", "won't", "doesn't", "didn't"}
)
_INLINE_THEN = re.compile(r":\s+|\s+[-\u2013\u2014]\s+")


# ", or a house over 3 storeys" at the end of the test: the last of a list of cases
_LISTED_CASES = re.compile(r",\s+(?:or|and)\s+(?:a|an|the|any|some)\s+[^,;:.]+$", re.IGNORECASE)
_ASSENT = re.compile(r"^\s*(?:fine|ok|okay|sure|no\s+problem|that's\s+fine)\s*[,.!]\s+", re.I)


def _split_condition(rest: str) -> tuple[str, str]:
    """`the item is damaged, open a claim` -> (test, action); the comma before a verb wins."""
    commas = [  # not the one in "1,000", nor one inside "(stains, pet damage)"
        m.start()
        for m in _CLAUSE_COMMA.finditer(rest)
        if rest.count("(", 0, m.start()) <= rest.count(")", 0, m.start())
    ]
    # "the substitute holds an allergen: tell them not to eat it, refund the item, and ...": a
    # colon before the first comma ends the test
    colon = -1 if rest.startswith(RULE_APPLIES) else rest.find(": ")
    if colon > 0 and _LISTED_CASES.search(rest[:colon]):
        # "it's a business, a block of flats, or a house over 3 storeys: no price on the
        # phone": the cases the colon ends, commas and all
        return rest[:colon], _ASSENT.sub("", rest[colon + 2 :]).strip()
    # "the request is to skip: fine, skip the next visit": a word of assent is no order
    assented = _ASSENT.sub("", rest[colon + 2 :]) if colon > 0 else ""
    if colon > 0 and all(pos > colon for pos in commas) and is_order(assented):
        return rest[:colon], assented.strip()
    joins: list[int] = []  # "A, or B, stop": the comma before "or" joins two tests
    for pos in commas:
        after = _LEAD.sub("", rest[pos + 1 :].strip())
        word = after.split(None, 1)[0].casefold() if after.split() else ""
        if word in INSTRUCTION_VERBS or word in _ACTION_OPENERS:
            return rest[:pos], rest[pos + 1 :].strip()
        # "the member is on their own after dark, is over 75, or has a child with them": a
        # comma before another predicate of the same subject lists the tests
        if word in _JOINS_TESTS or word in _PREDICATE_VERBS:
            joins.append(pos)
    if plain := [pos for pos in commas if pos not in joins]:
        return rest[: plain[0]], rest[plain[0] + 1 :].strip()
    # "the parcel is lost: refund it" and "the parcel is lost - refund it": no comma
    if (mark := _INLINE_THEN.search(rest)) and is_order(rest[mark.end() :]):
        return rest[: mark.start()], rest[mark.end() :].strip()
    then = re.search(r"\s+then\s+", rest, re.IGNORECASE)
    if then:
        return rest[: then.start()], rest[then.end() :]
    return rest, ""


def read_actions(
    text: str,
    *,
    quote: str,
    tools: ToolIndex,
    agents: tuple[str, ...],
    bind_meaning: bool = True,
) -> list[Action]:
    """The actions of an instruction, split at `;`, `and then`, and `and <verb>`."""
    out: list[Action] = []
    stops = _STOP_THERE.search(text)
    if stops is not None and stops.start() > 0:
        text = text[: stops.start()]  # "point them to the day-pass page and stop there"
    elif (stops := _STOP_AND.match(text)) is not None and stops.end() < len(text):
        text = text[stops.end() :]  # "stop and refer the case to X": X, and nothing after it
    for part in (
        piece for chunk in _split_actions(text) for piece in _two_lookups(chunk, tools.catalog)
    ):
        out += _read_action(
            part, quote=quote, tools=tools, agents=agents, bind_meaning=bind_meaning
        )
    last = out[-1] if out else None
    ended = any(action.kind in _ENDINGS for action in out)  # "stop and escalate ...; do not ..."
    if stops is not None and last is not None and not ended:
        last.goto = last.goto or END
    return out


# "..., and stop there", "... and stop here", "explain we can't accept the claim and stop":
# nothing more is done in this case
_STOP_THERE = re.compile(r"(?:,?\s+and|,)\s+stop(?:\s+(?:there|here))?\s*[.!]?\s*$", re.I)
# "Stop and refer the case to the Research Integrity team", "stop, then call the Duty Manager"
_STOP_AND = re.compile(r"^\s*stop(?:\s+(?:there|here|work))?\s*(?:,\s*)?(?:and|then)\s+", re.I)
_ENDINGS = frozenset({"resolve", "escalate", "handoff"})


# "Look up the customer and the order": two records, each its own lookup
_TWO_RECORDS = re.compile(
    r"^(?P<verb>look\s+up|find|pull\s+up|retrieve|get|open)\s+(?P<one>(?:the|their|his|her)\s+"
    r"[a-z][\w'-]*(?:\s+[a-z][\w'-]*)?)\s+and\s+(?P<two>(?:the|their|his|her)\s+[a-z][\w'-]*"
    r"(?:\s+[a-z][\w'-]*)?)$",
    re.IGNORECASE,
)


def _two_lookups(chunk: str, catalog: ToolCatalog) -> list[str]:
    """ "Look up the customer and the order" as two lookups when each record has its own
    catalog read tool; otherwise the chunk as it is."""
    match = _TWO_RECORDS.match(chunk.strip())
    if match is None:
        return [chunk]
    parts = [f"{match['verb']} {match['one']}", f"{match['verb']} {match['two']}"]
    first, second = (catalog.get(bind(part, catalog).tool or "") for part in parts)
    if first is None or second is None or first is second or first.access != "read":
        return [chunk]
    # "Find the guest and their booking" with `lookup_guest` "... and their spa bookings": one
    thing = canonical_words(match["two"])[-1:]
    if second.access != "read" or set(thing) & set(canonical_words(first.description)):
        return [chunk]
    return parts


_DASH = re.compile(r"\s[\u2014\u2013-]\s")  # "... a review first — open a Security case"


def _split_actions(text: str) -> list[str]:
    parts: list[str] = []
    chunks: list[str] = []
    pieces: list[str] = []
    for chunk in _SPLIT.split(_YOU_SHOULD.sub("; ", text)):
        # "a further change needs a review first — open a Security case and wait"
        dashed = _DASH.search(chunk)
        head, tail = (chunk[: dashed.start()], chunk[dashed.end() :]) if dashed else (chunk, "")
        pieces += [head, tail] if dashed and is_order(tail) else [chunk]
    for chunk in pieces:
        label, colon, rest = chunk.partition(": ")
        word = rest.split(None, 1)[0].casefold() if rest.split() else ""
        says = bool(_SAY_LABEL.match(label))  # "tell the customer what X means: order ..."
        asked = _ASK_TO.match(label) is not None  # "ask the customer to restart it: switch ..."
        if colon and word in INSTRUCTION_VERBS and len(label.split()) >= 2 and not (says or asked):
            chunks += [label, rest]  # "never refund it: escalate to X" is two actions
        else:
            chunks.append(chunk)
    chunks = [
        piece for chunk in chunks for part in _not_but(chunk) for piece in _serial_orders(part)
    ]
    for chunk in chunks:
        start = 0
        # "ask them to connect one device and open a website": both are the customer's to do
        asks = bool(_ASK_TO.match(chunk) or _WALK.match(chunk))
        told = _TELL_TO.match(chunk) is not None
        for match in _AND.finditer(chunk):
            word = match.group(1).casefold()
            # "tell them to leave the car, get behind the barrier and call 999": the "and" ends
            # the list of what they are told
            asks = asks or (told and "," in chunk[: match.start()])
            # "tell them to call 999 and get out of the building": what they do, too
            asks = asks or (told and word in _THEIRS_TO_DO)
            # "ask them to wait, and get Gareth": what the agent does after the ask
            fetches = _GET_PERSON.match(chunk[match.start(1) :]) is not None
            if (
                (asks and word not in _GOTO_WORDS and not fetches)
                or word not in INSTRUCTION_VERBS
                or word == "be"
            ):
                continue
            # Only before a verb: a long sentence has many "and"s, and reading what comes before
            # each of them again made the compile quadratic (issue 17).
            left = chunk[start : match.start()]
            if _bracketed(chunk, match.start()):
                continue
            if _SHARED_OBJECT.match(left):
                # "Don't cancel and rebook a group to change it": two verbs of one object, and
                # neither is done, so no order to rebook
                continue
            if _TWO_WORDS.search(left) or left.strip().casefold() in _ORDERS_ALONE:
                parts.append(left)
                start = match.end()
        parts.append(chunk[start:])
    return [p.strip(" ,.") for p in parts if p.strip(" ,.")]


_TWO_WORDS = re.compile(r"\S\s+\S")
# "Don't cancel", "Never refund": a refusal of a verb alone, whose object comes after the next
# verb ("... and rebook a group")
_SHARED_OBJECT = re.compile(r"^\s*(?:do\s+not|don't|never)\s+[a-z]+\s*$", re.IGNORECASE)
# what a person told to do something does next ("... and get out", "... and stay away")
_THEIRS_TO_DO = frozenset(
    {"get", "leave", "stay", "keep", "go", "move", "turn", "switch", "stop", "unplug", "avoid"}
)
# "Apologise and refer it to the handling editor": a verb that is an order on its own
_ORDERS_ALONE = frozenset(
    {"apologise", "apologize", "sympathise", "sympathize", "empathise", "empathize", "listen"}
)


_KIND_OF_TRANSFER = re.compile(r"^(?:warm|cold|blind|live|direct)\s+transfer\b", re.IGNORECASE)


_SERIAL_AND = re.compile(r"(?P<comma>,)?\s+and\s+(?P<verb>[a-z']+)\b", re.IGNORECASE)
_SERIAL_COMMA = re.compile(r",\s+(?=([a-z']+)\b)", re.IGNORECASE)


# "Don't try a third time, send them a payment link instead": what is not done, and what is
_NOT_BUT = re.compile(
    r"^(?P<no>(?:do\s+not|don't|never)\s[^,;()]+),\s+(?P<yes>[a-z']+\s[^;()]*\binstead\b.*)$",
    re.IGNORECASE | re.DOTALL,
)


def _not_but(chunk: str) -> list[str]:
    """ "Don't try a third time, send them a payment link instead" as its two orders."""
    match = _NOT_BUT.match(chunk)
    if match is None or not is_order(match["yes"]):
        return [chunk]
    return [match["no"], match["yes"]]


def _bracketed(text: str, position: int) -> bool:
    """ "Take them off the next visit (skip it, don't cancel)": inside an aside, whose orders
    are the aside's, not a list of the sentence's."""
    before = text[:position]
    return before.count("(") > before.count(")")


def _serial_orders(chunk: str) -> list[str]:
    """ "tell the customer not to eat it, refund the item, and raise a ticket", "log it, send
    the parent the letter and tell the school": a list of orders, each its own (the last one
    "and" joins is split later). What the customer is asked to do is one ask."""
    last = next(
        (
            m
            for m in _SERIAL_AND.finditer(chunk)
            if (m["comma"] or m["verb"].casefold() in INSTRUCTION_VERBS)
            and not _bracketed(chunk, m.start())
        ),
        None,
    )
    if (
        last is None
        or last["verb"].casefold() not in INSTRUCTION_VERBS
        or not is_order(chunk)
        or _ASK_TO.match(chunk)
        or _WALK.match(chunk)
        or _TELL_TO.match(chunk)
    ):
        return [chunk]  # "Before you end the call, make sure ...": one order after its time
    pieces, start = [], 0
    for comma in _SERIAL_COMMA.finditer(chunk, 0, last.start()):
        if (
            comma.group(1).casefold() in INSTRUCTION_VERBS
            and len(chunk[start : comma.start()].split()) >= 2
            and not _bracketed(chunk, comma.start())
        ):
            pieces.append(chunk[start : comma.start()])
            start = comma.end()
    return [*pieces, chunk[start:]]


def _read_action(
    text: str, *, quote: str, tools: ToolIndex, agents: tuple[str, ...], bind_meaning: bool = True
) -> list[Action]:
    text = _sentence_case(text)
    first = text.split(None, 1)[0].casefold().strip(",:") if text.split() else ""
    if _KIND_OF_TRANSFER.match(text):
        first = "transfer"  # "Warm transfer to the field supervisor": a transfer
    goto = _GOTO.search(text)
    if goto and goto.start() == 0:
        return [Action("goto", text, quote, goto=goto["step"] or goto["clause"])]
    if _LIMITED_ORDER.match(text):
        # "Put no more than 25 accounts on hold in one day without telling the Finance
        # Director": a limit on the order (the routine's Rules keep it), never one more call
        return [Action("say", text, quote)]
    if NOT_PROCEED.match(text) or STOP_ALONE.match(text):
        # "... then stop.", "Don't process it here": nothing more is done in this case
        return [Action("say", text, quote, goto=END)]
    if _NOT_DONE.match(text) or _TAKE_NO.match(text):
        # "Take no payment at the desk from them": what is not done calls nothing
        return [Action("say", text, quote)]
    if _FOLLOW_SOP.match(text) or _OTHER_PROCEDURE.match(text):
        # another SOP (or "the procedure above") takes over: no tool call, this routine ends
        return [Action("say", text, quote, goto=END)]
    if _RESOLVE.match(text):
        return [Action("resolve", text, quote)]
    # "A leak allowance is a one-off credit", "Only one leak allowance per property": the
    # tool's alias is the subject of a statement, which calls nothing (a hand-over it makes,
    # "... - escalate to Accessibility", is still read)
    stated = is_statement(text) and not _BACKTICKED.search(text)
    # "ask the customer to confirm the amount before you issue any refund": the ask, and the
    # refund is what it comes before (a confirm_before rule), not this step's call
    asked = _ASK.match(text) or _CONFIRM.match(text) or first in _SAY
    probe = _BEFORE_CLAUSE.split(text, maxsplit=1)[0] if asked else text
    mention = None if stated else tools.find(probe)
    if mention is not None and mention.tool.access == "write" and _CONFIRM_THAT.match(text):
        mention = None  # "Confirm that the order will meet the limit": a check, no confirming
    if (
        mention is not None
        and mention.how == "alias"
        and DENIED_THING.search(text[: mention.position])
    ):
        mention = None  # "No fee.", "Waive the early-end fee": the alias is what is not done
    heads = not bind_meaning  # an item over sub-items that say how: its words bind no tool
    bind_meaning = bind_meaning and not stated
    escalate = (
        _ESCALATE.search(text) if first == "escalate" or "escalate" in text.casefold() else None
    )
    handoff = (
        _HANDOFF.search(text)
        if first in ("transfer", "hand", "route", "redirect", "refer", "pass", "assign", "put")
        else None
    )
    if handoff is not None and first == "assign" and not _HUMAN.search(_who(handoff)):
        handoff = None  # "assign a carrier to the shipment" is an action, not a handover
    if handoff is None and first in ("send", "forward", "refer", "pass", "assign", "route"):
        # "send the case to Records Review", "refer the site to Code Enforcement": a named team
        # takes the case over; "send the label to the customer" names no team
        handoff = _SEND_TO_TEAM.search(text)
        if (
            handoff
            and mention is not None
            and mention.how in ("name", "alias")
            and not hands_over(mention.tool)
        ):
            # "send the repeat request to the GP surgery (`request_repeat`)": the tool it names
            # sends it; nobody takes the case over
            return [Action("tool_call", text, quote, tool=mention)]
    if handoff is None and escalate is None and mention is None:
        # "Raise a job with Metering Operations": no catalog tool raises it, the team takes it
        handoff = _RAISE_WITH_TEAM.match(text)
    if (
        handoff is None
        and escalate is None
        and (goes := _GOES_TO.match(text))
        and not _FOR_THEIR_SAY.search(text)
    ):
        # "A second request goes to the Events Manager": the case is passed on, said of it
        handoff = goes
    if handoff is None and escalate is None and mention is None:
        decides = _ROLE_DECIDES.match(text)
        if decides is not None:
            # "Between £100 and £500, the Aftersales Manager decides": theirs to decide, so
            # theirs; with the one tool that reaches them ("Pass a decision to the Aftersales
            # Manager")
            ending = _ending(None, decides, text, quote, agents)
            reach = None if heads else _reaching(decides["who"], tools.catalog)
            if reach is None or not hands_over(reach):
                return [ending]
            call = Action("tool_call", text, quote, tool=ToolMention(reach, 0, "verb"))
            call.target = ending.target
            return [call, handed_over(ending)]
    if (
        handoff is None
        and escalate is None
        and mention is None
        and not asked  # "explain that refunds are paid through the Control Room": words
        and (through := _THROUGH_TEAM.search(text))
        and is_order(text)
        and (owners := _passes_cases_to(through["who"], tools)) is not None
    ):
        # "arrange a taxi or hotel for them through the Control Room": the team does it, with
        # the one catalog tool that says it reaches them ("Raise a case to the Control Room")
        ending = _ending(None, through, text, quote, agents)
        if len(owners) != 1:
            return [ending]
        call = Action("tool_call", text, quote, tool=ToolMention(owners[0], 0, "verb"))
        call.target = ending.target
        return [call, handed_over(ending)]
    if handoff is None and escalate is None and first in ("get", "fetch", "grab", "ask", "request"):
        handoff = _GET_PERSON.match(text)
    if handoff is None and first in ("call", "phone", "ring", "contact", "page", "alert"):
        # "Call the Duty Manager": a person who takes the case over ("call the customer back"
        # names nobody who does)
        handoff = None if _FOR_THEIR_SAY.search(text) else _CALL_ROLE.search(text)
    if escalate or handoff:
        ending = _ending(escalate, handoff, text, quote, agents)
        # "escalate ... with `create_ticket`" is the ticket: the call is the escalation, and the
        # case goes on as the SOP says (a ticket is no live transfer). "Transfer to Shipping to
        # arrange a return label" names what the other agent will do, so it is no call here.
        if (
            mention is not None
            and ending.kind == "escalate"
            and (mention.how == "name" or (mention.how == "verb" and first in TEAM_VERBS))
        ):
            return [Action("tool_call", text, quote, tool=mention, target=ending.target)]
        transfer = (
            _transfer_tool(_KIND_OF_TRANSFER.sub("transfer", text), mention, tools, bind_meaning)
            if ending.kind == "escalate"
            else None
        )
        if transfer is not None:
            # "escalate to the fraud lead" with `escalate_to_fraud_lead`, "transfer the customer
            # to a human agent" with `transfer_to_human_agents`: the catalog's own way of handing
            # the case to people. Call it; the escalation still ends the branch.
            call = Action("tool_call", text, quote, tool=transfer, target=ending.target)
            if AS_WELL.search(text):
                return [call]  # "refer the gas meter to the survey team as well": and go on
            return [call, handed_over(ending)]
        return [ending]
    if mention is None and _IN_SYSTEM.search(text) and not NEGATED.match(text):
        # "offer the discount in the retention offers tool": a system no catalog tool covers
        proposed = proposed_name(text, any_verb=True)
        if proposed is not None:
            return [Action("say", text, quote, proposed=proposed)]
    if (
        (first in _SAY or first == "ask")
        and bind_meaning
        and (told := notifier(text, tools.catalog)) is not None
    ):
        # "Tell the Site Manager the same day" with `notify_site_manager`: the tool that tells
        return [Action("tool_call", text, quote, tool=ToolMention(told, 0, "verb"))]
    if first in _SAY:
        return [Action("say", text, quote)]
    if mention is not None and not (
        mention.how == "alias"
        and mention.tool.access == "read"
        and (
            first in WRITE_VERBS
            or (first not in READ_VERBS and in_system(text[: mention.position]))
        )
    ):  # "update the CRM notes", "produce the quote in MoveBase": the system, not its read tool
        return [Action("tool_call", text, quote, tool=mention)]
    if mention is None and not stated and (means := _BY_MEANS.search(text)) and is_order(text):
        # "book a consultation with the Practice Manager through a task": the one tool named
        # for the thing it is done with (`task_for_team`)
        owners = [t for t in tools.catalog.tools if means["noun"] in t.name.split("_")]
        if len(owners) == 1:
            return [Action("tool_call", text, quote, tool=ToolMention(owners[0], 0, "verb"))]
    if (
        mention is None
        and not stated
        and (enum_tool := tools.enum_owner(text)) is not None
        # "use method `sms_code`", "Any such order shall be changed to the road service";
        # never "Back-office, run every Monday by the Billing Team", which orders nothing
        and (is_order(text) or _BACKTICK_WORD.search(text) or _ORDERED_DONE.search(text))
    ):
        return [Action("tool_call", text, quote, tool=enum_tool)]
    if mention is None and not stated and (marked := tools.marked_owner(text)) is not None:
        # "Mark the ticket collected": the tool that sets that status
        return [Action("tool_call", text, quote, tool=marked)]
    if bind_meaning and (verifier := identity_check(text, tools.catalog)) is not None:
        # "Confirm the identity of the Account Holder by security PIN": the identity check, never
        # a question (who is asking is what the tool verifies)
        return [Action("tool_call", text, quote, tool=ToolMention(verifier, 0, "verb"))]
    if re.search(r"\banything else\b", text, re.IGNORECASE) and first == "ask":
        return [Action("ask", text, quote)]
    # "confirm that the account is active" checks the record; "confirm the address" asks
    checks = _CONFIRM_THAT.match(text) and "customer" not in text
    if (lookup := _lookup(text, first, tools)) is not None:
        return [Action("tool_call", text, quote, tool=lookup)]
    named = bind(text, tools.catalog).tool if bind_meaning and first == "request" else None
    if named is not None and named.startswith(f"{first}_"):
        # "request the full clinical history" with `request_clinical_history`: the catalog's
        # own request, not a question for the customer
        tool = tools.catalog.get(named)
        assert tool is not None
        return [Action("tool_call", text, quote, tool=ToolMention(tool, 0, "verb"))]
    if bind_meaning and _ASK.match(text) and (approver := APPROVER.search(text)):
        # "request the duty manager's OK": of that person, never of the customer; the tool
        # that reaches them, or the words as they are
        if (tool := _reaching(approver.group("who"), tools.catalog)) is not None:
            return [Action("tool_call", text, quote, tool=ToolMention(tool, 0, "verb"))]
        return [Action("action", text, quote)]
    if first == "get" and bind_meaning and "customer" not in text.casefold():
        # "Get the latest mileage reading from the car's telematics" with `get_mileage_reading`:
        # a read that names what the tool returns, never a question for the customer
        read = tools.catalog.get(bind(text, tools.catalog).tool or "")
        if read is not None and read.access == "read" and _names_data(text, read):
            return [Action("tool_call", text, quote, tool=ToolMention(read, 0, "verb"))]
    if _ASK.match(text) or (
        _CONFIRM.match(text)
        and not checks
        and ("customer" in text.casefold() or _INFO_NOUN.search(text))
    ):
        return [Action("ask", polite_ask(text), quote)]
    # "check the email address on the account" reads what an earlier lookup returned
    checking = first in ("check", "verify", "make", "ensure", "see")
    meant = bind_meaning and not NEGATED.match(text)
    bound = bind(text, tools.catalog).tool if meant else None
    found = tools.catalog.get(bound) if bound is not None else None
    if (
        checking
        and bound is not None
        and not bound.startswith(f"{first}_")
        and not (found is not None and _names_data(text, found))
        # "check the caller's details against the logbook": the identity check
        and not (found is not None and found.verifies_identity())
    ):
        # "check the email address on the account" reads what was looked up; "verify the
        # caller" with `verify_borrower` is the catalog's own check
        bound = None
    if _CONFIRM_THAT.match(text) and found is not None and found.access == "write":
        # "Confirm that the group will meet the supervision ratio": a check of what is so,
        # never `confirm_group_booking`
        bound = None
    if bound is not None and (tool := tools.catalog.get(bound)) is not None:
        # "Cancel the booking" -> `cancel_reservation`: the tool the words mean (binding.py)
        return [Action("tool_call", text, quote, tool=ToolMention(tool, 0, "verb"))]
    if not NEGATED.match(text) and (decision := tools.decision_owner(first)) is not None:
        # "Deny the claim", "approve it yourself": the tool that records that outcome
        return [Action("tool_call", text, quote, tool=decision)]
    unknown = tools.unknown_backticked(text)
    if unknown:
        access = "write" if first in _WRITE_HINT else "read" if first in _READ_HINT else "write"
        return [Action("say", text, quote, proposed=(unknown[0], access))]
    proposed = proposed_name(text)
    if proposed is not None and tools.covers_verb(proposed[0].split("_")[0]):
        # "For a missing item, credit the item price": the catalog's credit tool does crediting
        proposed = None
    if proposed is not None:
        return [Action("say", text, quote, proposed=proposed)]
    return [Action("say", text, quote)]


# "... to the Technical Survey team as well": one more thing done, the case goes on here
AS_WELL = re.compile(
    r"\b(?:as\s+well|also|too|at\s+the\s+same\s+time|in\s+parallel)\b", re.IGNORECASE
)


_BACKTICKED = re.compile(r"`[a-z_][a-z0-9_]*`")
_BEFORE_CLAUSE = re.compile(
    r"\s+before\s+(?:you|we|they|it|any|the|a|issuing|making|\w+ing)\b", re.I
)


def _names_data(text: str, tool: Tool) -> bool:
    """ "Check crew and van availability" with `get_crew_availability`: the words name all of
    what the read tool returns (two words or more), so the check is that call. "Check the
    engineer diary for the postcode area" with `get_engineer_slots` ("List free engineer visit
    slots for a postcode area"): a word of its name and two more of its description."""
    nouns = tool.name.split("_")[1:]
    words = set(re.findall(r"[a-z]+", text.casefold()))
    if len(nouns) >= 2 and all(noun in words for noun in nouns):
        return True
    said = set(canonical_words(text)[1:])  # not the verb: "check", "verify"
    named = said & set(canonical_words(" ".join(nouns)))
    if named and _SHOWS.search(text) and "status" in tool.description.casefold():
        # "check the shipment shows returned to sender" with `get_shipment` "... with status":
        # the state the record shows is what the read returns
        return True
    described = (said & set(canonical_words(tool.description))) - named
    return bool(named) and len(described) >= 2


_SHOWS = re.compile(r"\b(?:shows?|showing|says|is\s+(?:marked|flagged|showing))\b", re.I)


HANDED_OVER = "The case is handed over; this routine ends here."


def handed_over(ending: Action) -> Action:
    """The end of a branch whose call handed the case to people: it says so, not the call twice."""
    ending.text = HANDED_OVER
    return ending


def _transfer_tool(
    text: str, mention: ToolMention | None, tools: ToolIndex, bind_meaning: bool
) -> ToolMention | None:
    """The catalog tool that hands a case to people, when the escalation names it by its verb
    phrase or its words bind to it (binding.py)."""
    if mention is not None:
        return mention if mention.how in ("verb", "alias") and hands_over(mention.tool) else None
    bound = bind(text, tools.catalog).tool if bind_meaning else None
    tool = tools.catalog.get(bound) if bound else None
    if tool is not None and hands_over(tool):
        return ToolMention(tool, 0, "verb")
    # "Put the call through to the duty spa manager" with `transfer_to_duty_manager`: the one
    # hand-over tool whose name holds whom it hands to
    said = set(re.findall(r"[a-z]+", text.casefold()))
    named = [
        t
        for t in tools.catalog.tools
        if hands_over(t)
        and (whom := set(t.name.split("_")[1:]) - {"to", "a", "the"})
        and whom <= said
    ]
    if len(named) == 1 and bind_meaning:
        return ToolMention(named[0], 0, "verb")
    # "refer the file to Compliance" with `assign_to_team(team)`: the one catalog tool that
    # hands a case to a team it is told is how every case goes to a team
    teams = [
        t
        for t in tools.catalog.tools
        if hands_over(t)
        and _TEAM_PARAM & set(t.parameters.get("properties") or {})
        and t is not tools.ticket_tool()  # a ticket for the team is no hand-over: it goes on
    ]
    return ToolMention(teams[0], 0, "verb") if len(teams) == 1 and bind_meaning else None


_TEAM_PARAM = frozenset({"team", "queue", "department", "desk", "to_team", "team_name"})


# What "get" fetches from a system rather than from the customer: records, not identifiers.
_RECORD_NOUN = re.compile(
    r"\b(?:details|record|account|status|history|balance|profile|information|info|data|file|"
    r"usage)s?\b",
    re.IGNORECASE,
)
_FROM_PERSON = re.compile(
    r"\b(?:customer|caller|user|member|client|guest|patient|employee|them|they|their)\b",
    re.IGNORECASE,
)


_DEFINITE = re.compile(r"^\w+(?:\s+up)?\s+(?:the|their|its|his|her|your)\b", re.IGNORECASE)


def _lookup(text: str, first: str, tools: ToolIndex) -> ToolMention | None:
    """ "Get the account details first", "check the line status": a lookup, when the words bind
    to a catalog read tool and no person is named to get them from ("get the customer's order
    number" asks them)."""
    if first in ("get", "obtain", "pull"):
        if _FROM_PERSON.search(text):
            return None
    elif first not in ("check", "look", "review", "retrieve") or not _DEFINITE.match(text):
        # "check the line status" reads one record; "check for open orders" is no lookup
        return None
    if not _RECORD_NOUN.search(text):
        return None
    bound = bind(text, tools.catalog).tool
    tool = tools.catalog.get(bound) if bound else None
    if tool is None or tool.access != "read":
        return None
    return ToolMention(tool, 0, "verb")


# a named system ("in the retention offers tool"); never just "on the system", which is ours
_IN_SYSTEM = re.compile(
    r"\b(?:in|with|using|via|through|from|to|on)\s+(?:the|our|a)\s+(?:[\w'-]+\s+){1,3}?"
    r"(?:tool|system|platform|portal)\b",
    re.IGNORECASE,
)
# an order not to do something: "Do not refund", "Never ...", "No refund"
NEGATED = re.compile(r"^(?:do not|don't|never|no)\b", re.IGNORECASE)
_TAKE_NO = re.compile(r"^(?:take|give|make|offer|accept|issue|charge)\s+no\s+\w", re.IGNORECASE)
_WRITE_HINT = _words(
    """
    create update cancel send issue refund reset schedule add remove
    """
)
_READ_HINT = _words(
    """
    check look lookup search find verify review retrieve get
    """
)


_AGENT_WORD = re.compile(r"\bagents?\b", re.IGNORECASE)


def _ending(
    escalate: re.Match[str] | None,
    handoff: re.Match[str] | None,
    text: str,
    quote: str,
    agents: tuple[str, ...],
) -> Action:
    if handoff is not None:
        who = _name(_who(handoff))
        agent = match_agent(who, agents)
        if agent is not None:
            return Action("handoff", text, quote, target=agent)
        if who and not agents and _AGENT_WORD.search(who) and not _HUMAN.search(who):
            # "hand off to the Billing agent" with no network known: validate decides later
            return Action("handoff", text, quote, target=who)
        # "route it to the department head": a person or team, not an agent of the network
        return Action("escalate", text, quote, target=who or None)
    assert escalate is not None
    team = _name(escalate.group("team") or "")
    return Action("escalate", text, quote, target=team or None)


def _who(handoff: re.Match[str]) -> str:
    """Whom a hand-over names ("... to the Billing team", "put the call through to ...")."""
    named = handoff.groupdict()
    return named.get("who") or named.get("through") or ""


def _name(raw: str) -> str:
    name = _NAME_END.split(raw, maxsplit=1)[0].strip()
    return re.sub(r"^(?:the|a|an|our)\s+", "", name, flags=re.IGNORECASE).strip()


_AGENT_SYNONYMS = {
    "technical": "tech",
    "accounts": "account",
    "shipments": "shipping",
    "delivery": "shipping",
}


def match_agent(who: str, agents: tuple[str, ...]) -> str | None:
    """The agent group a name refers to ("the Billing team" -> `billing`), or None."""
    words = {_AGENT_SYNONYMS.get(w, w) for w in re.findall(r"[a-z0-9]+", who.casefold())}
    best: tuple[int, str] | None = None
    for agent in sorted(agents):
        leaf = agent.rsplit("/", 1)[-1]
        parts = {_AGENT_SYNONYMS.get(w, w) for w in re.findall(r"[a-z0-9]+", leaf.casefold())}
        if parts and parts <= words and (best is None or len(parts) > best[0]):
            best = (len(parts), agent)
    return best[1] if best else None


_YOU = [
    (r"\bthe customer's\b", "your"),
    (r"\bthe caller's\b", "your"),
    (r"\btheir\b", "your"),
    (r"\bhis or her\b", "your"),
    (r"\bthemselves\b", "yourself"),
    (r"\bthey are\b", "you are"),
    (r"\bthey\b", "you"),
    (r"\bthem\b", "you"),
    (r"\bthe customer\b", "you"),
]


def _you(text: str) -> str:
    for pattern, repl in _YOU:
        text = re.sub(pattern, repl, text, flags=re.IGNORECASE)
    return _AGREE.sub(_agree, text)  # "whether you still has the box" -> "you still have"


_AGREE = re.compile(
    r"\b((?:you|they)(?:\s+(?:still|already|also|now|ever|really|only))?)\s+([a-z]+)\b",
    re.IGNORECASE,
)
_IRREGULAR_THIRD = {"has": "have", "is": "are", "was": "were", "does": "do"}
_REGULAR_THIRD = _words(
    "wants needs knows owns lives agrees prefers remembers uses likes plans expects holds"
)


def _agree(match: re.Match[str]) -> str:
    verb = match.group(2)
    said = _IRREGULAR_THIRD.get(verb.casefold()) or (
        verb[:-1] if verb.casefold() in _REGULAR_THIRD else verb
    )
    return f"{match.group(1)} {said}"


def polite_ask(text: str) -> str:
    """An ask step phrased as a polite question the agent can say as written."""
    body = text.rstrip(".?! ")
    who = r"(?:(?:the\s+)?(?:customer|caller|user|member|client|them)\s+)"
    if m := re.match(
        rf"^ask\s+{who}?(?:for|to provide|to give you|to share)\s+(?P<x>.+)$", body, re.I
    ):
        thing = m.group("x")
        return f'Ask the customer for {thing}: "Could you please share {_you(thing)}?"'
    if m := re.match(rf"^ask\s+{who}?to\s+(?P<x>.+)$", body, re.I):
        todo = m.group("x")
        return f'Ask the customer to {todo}: "Could you please {_you(todo)}?"'
    if m := re.match(rf"^ask\s+{who}?(?P<w>whether|if)\s+(?P<x>.+)$", body, re.I):
        question = _AGREE.sub(
            _agree, re.sub(r"^the (?:customer|caller)\b", "they", m.group("x"), flags=re.I)
        )
        return f'Ask the customer whether {question}: "Could you tell me whether {_you(question)}?"'
    if m := re.match(r"^confirm\s+(?P<x>.+?)(?:\s+with\s+(?:the\s+)?customer)?$", body, re.I):
        thing = m.group("x")
        return f'Ask the customer to confirm {thing}: "Could you please confirm {_you(thing)}?"'
    if m := re.match(
        rf"^(?:request|collect|obtain|gather|get)\s+(?P<x>.+?)(?:\s+from\s+{who})?$", body, re.I
    ):
        thing = m.group("x")
        return f'Ask the customer for {thing}: "Could you please share {_you(thing)}?"'
    return f"Politely {body[0].lower()}{body[1:]}."


def _sentence_case(text: str) -> str:
    text = text.strip().rstrip(",;: ")
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?", '"', "”")) else f"{text}."
