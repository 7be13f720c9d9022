"""Binding an SOP action phrase to a catalog tool: by name, alias, or verb-object meaning.

`bind` is the entry point. Rules, in order:
1. a tool name or alias written in the phrase (in backticks, brackets or as words) binds it;
2. a check of who is calling ("check the caller's details", "confirm the identity of the
   account holder") binds the catalog's one identity check (`identity_check`);
3. a verb-object phrase binds the tool whose name or description has the same verb (or a
   synonym) and the same object (or a synonym): "cancel the booking" -> `cancel_reservation`.
   A catalog tool's own verb is an order ("Retry the card payment"); the tool's name counts
   twice its description; who a tool is for ("the guest") is no object in common;
4. a message sent ("send the booking confirmation") binds the catalog's one message tool, or
   the one of its channel (`_messenger`);
5. otherwise a proposed tool is named only from an action phrase (a verb first, then an object),
   never from a fragment ("otherwise issue ...", "email address"); the nearest catalog tool
   (sharing the verb or the object) is named as `close` so the warning can say so.

`hands_over` says which tools hand a case to people (a team, a queue, a supervisor), the tools
an escalation calls; `HANDS_OVER` finds the SOP text that hands a case on, which is what asks
for such a tool (validate reads both).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sop_compiler.models import Tool, ToolCatalog
from sop_compiler.text import INSTRUCTION_VERBS

__all__ = [
    "HANDS_OVER",
    "RAISE_WITH",
    "READ_VERBS",
    "TEAM_VERBS",
    "Binding",
    "bind",
    "canonical_words",
    "done_again",
    "hands_over",
    "identity_check",
    "in_system",
    "is_statement",
    "listed_objects",
    "verb_stems",
]

_SYNONYMS = [
    {"cancel", "void", "annul", "end", "terminate"},
    {
        "change",
        "update",
        "modify",
        "edit",
        "amend",
        "switch",
        "adjust",
        "increase",
        "decrease",
        "lower",
        "reduce",
    },
    {"refund", "reimburse"},
    {
        "get",
        "find",
        "lookup",
        "look",
        "retrieve",
        "fetch",
        "check",
        "search",
        "view",
        "pull",
        "review",
        "consult",
        "list",
        "locate",
    },
    {"create", "open", "raise", "file", "log", "submit", "register", "lodge", "produce", "prepare"},
    {"send", "email", "notify"},
    {"booking", "reservation"},
    {"vehicle", "car"},
    {"order", "purchase"},
    {"subscription", "membership"},
    {"route", "assign", "forward", "allocate"},
    {"restore", "undelete", "recover", "reinstate", "reactivate"},
    {"customer", "user", "client", "account"},
    {"ticket", "case"},
    {"sms", "text"},
    {"payment", "money"},
]
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "this",
        "that",
        "their",
        "his",
        "her",
        "its",
        "of",
        "for",
        "to",
        "in",
        "on",
        "with",
        "from",
        "by",
        "and",
        "or",
        "it",
        "them",
        "as",
        "customer's",
        "user's",
        "any",
        "all",
        "new",
        # the verbs of being and having: "the refund is over £300" shares nothing with
        # "whether the patron is on the register"
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "has",
        "have",
        "had",
        "whether",
    ]
)
_NOT_VERB = frozenset(
    [
        "otherwise",
        "if",
        "or",
        "and",
        "but",
        "when",
        "unless",
        "then",
        "only",
        "also",
        "not",
        "no",
        "never",
        "email",
        "phone",
        "the",
        "a",
        "an",
    ]
)


_PARTICLES = frozenset({"off", "out", "back", "down", "away"})
_SECOND_SENSE = {"open": "get", "raise": "change"}
_A_NEW = re.compile(r"^\s*\S+\s+(?:a|an)\s+new\b", re.IGNORECASE)
_SET_UP = re.compile(r"^\s*set\s+up\s+", re.IGNORECASE)
# "Get the customer back on supply", "get them to sign": a "get" that moves a person, which
# neither reads a record nor asks for anything
MOVES_PERSON = re.compile(
    r"get\s+(?:the\s+)?(?:customer|caller|client|member|them|him|her|everyone)\s+"
    r"(?:back|to|into|onto|off|out|through|on|in|up|over|started|sorted)\b",
    re.IGNORECASE,
)
# "Bring up the account", "look up the order": one verb, whose "up" is no object ("top up")
_BRING_UP = re.compile(r"^\s*(?:bring|pull|look)\s+up\s+", re.IGNORECASE)
# "look the car up", "pull their account up": the same verb around its object
_BRING_X_UP = re.compile(
    r"^\s*(?:bring|pull|look)\s+(?P<what>(?:the|a|an|their|his|her|its|this|that|them|it)\b"
    r"[^,.;:()]{0,40}?)\s+up\b",
    re.IGNORECASE,
)
# "Put the second payment back on their card", "pay the money back to the member": a refund
_PUT_BACK = re.compile(
    r"^(?:put|pay|give)\s+(?P<what>(?:the|their|his|her|a|any)\b[^,;]{1,60}?)\s+back\s+"
    r"(?:on|onto|to|into)\s+(?P<where>\S.*)$",
    re.IGNORECASE,
)
# "Take the first night off their booking": a part removed, never a payment taken (money
# taken off, "take £20 off the bill", is a discount and stays as it is said)
_TAKE_OFF = re.compile(
    r"^take\s+(?P<what>(?:the|their|his|her|a|an|one)\s+"
    r"(?![^,;]*(?:\d|price|fee|charge|cost|amount|money|balance|excess))[^,;]{1,40}?)\s+off\s+"
    r"(?P<where>(?:the|their|his|her|its|our)\b.*)$",
    re.IGNORECASE,
)
_TAKES_OFF = re.compile(r"\btake\b[^.]{1,40}\boff\b", re.IGNORECASE)
_LIGHT_VERBS = frozenset({"create", "make", "arrange", "carry", "put", "place"})  # canonical
# verbs that make a thing a tool names last ("add a note" with `record_booking_note`); "add the
# matting charge" is no charge of the card
_MAKING_VERBS = _LIGHT_VERBS | {"add"}
# who a record is about: a word in common that says nothing of which tool is meant
WHO = frozenset(
    [
        "customer",
        "user",
        "client",
        "account",
        "member",
        "guest",
        "person",
        "patient",
        "caller",
        "tenant",
        "resident",
        "owner",
        "passenger",
        "student",
        "pupil",
        "parent",
    ]
)
# "text the renter ...", "email it to the member": to send a message of that kind (as a noun,
# "email address" is no action)
_MESSAGE_VERB = re.compile(
    r"^\s*(text|sms|email|e-mail)\s+(?=(?:it|them|the|a|an|him|her|their|your|us|back|each)\b|"
    r"[a-z]+'s\b)",
    re.IGNORECASE,
)


# "Text me the name", "email us the form": a message to the SOP's writer, whom no customer
# messaging tool reaches
_TO_THE_WRITER = re.compile(r"^\s*(?:text|sms|e-?mail|message|ring|phone|call)\s+(?:me|us)\b", re.I)


@dataclass(frozen=True)
class Binding:
    """The catalog tool an action binds to, or the name to propose and the nearest tool."""

    tool: str | None = None
    proposed: str | None = None
    close: str | None = None


def _stem(word: str) -> str:
    word = word.lower()
    for suffix in ("ations", "ation", "ings", "ing", "ies", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "es" and not word[:-2].endswith(("s", "x", "z", "ch", "sh")):
                continue  # "balances", "lines", "charges": the plural of a word ending in e
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def _canon(word: str) -> str:
    stem = _stem(word)
    for group in _SYNONYMS:
        if stem in group or word.lower() in group:
            return min(group)
    return stem


# "Add the £25 amendment fee" never means `waive_amendment_fee` ("Remove the amendment fee")
_UNDOING = frozenset(
    _canon(w) for w in ("remove", "waive", "delete", "cancel", "refund", "reverse", "void")
)
_POSSESSIVE = re.compile(r"(?<=[a-z])['\u2019]s\b")  # "the tenant's code": the tenant, no "s"


def canonical_words(text: str) -> list[str]:
    """The words of a text that carry meaning, stemmed, each synonym group as one word."""
    words = re.findall(r"[a-z]+", _POSSESSIVE.sub("", text.lower()))
    return [_canon(w) for w in words if w not in _STOP]


# verbs that say no more than "do" the action a noun after them names ("take the deposit on a
# pre-authorisation", "process it as an exchange"); never "refund", "cancel", ...
_DOING = _LIGHT_VERBS | frozenset(
    canonical_words("take collect secure process complete do handle carry")
)


# the noun of an action, back to its verb: "cancellation", "extension", "renewal", "payment"
_NOMINAL = (
    ("ssion", "t"),
    ("sion", "d"),
    ("ation", ""),
    ("ation", "e"),
    ("ion", "e"),
    ("ion", ""),
    ("al", ""),
    ("al", "e"),
    ("ment", ""),
    ("ure", "e"),
)


def nominal_verbs(text: str) -> set[str]:
    """The verbs a text's nouns of action are made from, canonical: "Extensions are limited"
    speaks of extending, "on a card pre-authorisation" of pre-authorising."""
    found: set[str] = set()
    for word in re.findall(r"[a-z]+(?:-[a-z]+)?", text.casefold()):
        word = word.replace("-", "")
        word = word[:-1] if word.endswith("s") else word
        for ending, verb in _NOMINAL:
            if len(word) >= 5 and word.endswith(ending) and len(word) - len(ending) >= 3:
                stem = word[: -len(ending)]
                found.update(canonical_words(stem + verb))
                if len(stem) > 3 and stem[-1] == stem[-2]:
                    found.update(canonical_words(stem[:-1] + verb))  # cancellation
    return found


READ_VERBS = frozenset(
    {"check", "look", "lookup", "search", "find", "verify", "review", "retrieve", "get", "pull"}
    | {"open", "view", "see", "confirm", "locate"}
)


# a verb alone, perhaps with a reason in brackets: "Decline (pre-existing)", "Settle." (never
# "Book it": what "it" is may be another thing than the one tool of that verb does)
_BARE = re.compile(r"^\s*[a-z]+\s*(?:\([^)]*\))?\s*[.!]?\s*$")
_IN_SYSTEM = re.compile(r"\b(?:in|on|into|within|through|via|from|using)\s+(?:the\s+)?$", re.I)


def in_system(before: str) -> bool:
    """True when the words before a system's name make it the place of the action ("... in")."""
    return _IN_SYSTEM.search(before) is not None


_QUOTED = re.compile(r'"[^"]{1,80}"|\u201c[^\u201d]{1,80}\u201d')


# what comes before a thing that is not to happen: "no fee", "waive the fee", "without a charge"
DENIED_THING = re.compile(
    r"\b(?:no|without|waive[sd]?|waiving|free\s+of|never|not)\s+(?:(?:the|a|an|any)\s+)?"
    r"(?:[\w'-]+\s+){0,2}$",
    re.IGNORECASE,
)


_IDENTITY_CHECK = re.compile(
    r"^\s*(?:check|confirm|verify|validate|establish)\s+(?:that\s+)?(?:the\s+)?"
    r"(?:(?:caller|customer|client|person\s+calling|requester)(?:'s|\u2019s)?\s+"
    r"(?:is\s+(?:the|a|an)\b|identity\b|details\b|id\b|security\b)|"
    # "Confirm the identity of the Account Holder", "Check who they are: ..."
    r"identity\s+of\b|who\s+(?:they|the\s+caller|the\s+customer|"
    r"you(?:\s+are|['\u2019]re)\s+(?:speaking|talking)\s+(?:to|with))\b)"
    # "Take the caller through security", "complete ID&V": the call centre's words for it
    # "Check you are speaking to the account holder": who is on the line
    r"|^\s*(?:check|confirm|make\s+sure)\s+(?:that\s+)?you(?:\s+are|['\u2019]re)\s+(?:speaking|"
    r"talking)\s+(?:to|with)\s+(?:the\s+)?(?:account\s+holder|member|customer|policyholder|"
    r"supporter|parent|subscriber|right\s+person)\b"
    r"|^\s*(?:take|put|pass)\s+(?:the\s+)?(?:caller|customer|client|them|him|her)\s+through\s+"
    r"(?:the\s+)?(?:security|id\s*(?:&|and)\s*v|verification)\b"
    r"|^\s*(?:complete|do|run|carry\s+out|go\s+through|pass)\s+(?:the\s+)?"
    r"(?:security(?:\s+(?:checks?|questions))?|id\s*(?:&|and)\s*v)\b"
    # "Ask for the password": a secret is asked for to be checked
    r"|^\s*ask\s+(?:the\s+caller\s+|them\s+|the\s+customer\s+)?for\s+(?:the\s+|their\s+)?"
    r"(?:account\s+)?(?:password|passcode|pass\s+phrase|passphrase|memorable\s+word|"
    r"security\s+(?:answers?|word|questions?))\b",
    re.IGNORECASE,
)


def identity_check(action: str, catalog: ToolCatalog) -> Tool | None:
    """The catalog's one identity-verification tool, when the action checks who is asking."""
    if _IDENTITY_CHECK.match(action) is None:
        return None
    verifiers = [t for t in catalog.tools if t.verifies_identity()]
    return verifiers[0] if len(verifiers) == 1 else None


# "Rebook the first available slot", "Re-run the trace": a verb done again
_AGAIN = re.compile(
    r"^re-?(?P<verb>book|run|send|issue|check|submit|take|order|arrange|trace|quote)\b",
    re.IGNORECASE,
)


def done_again(words: set[str]) -> set[str]:
    """The verbs of the words that say an action done again: "rebook" -> book."""
    return {
        word
        for said in words
        if (match := _AGAIN.fullmatch(said)) is not None
        for word in canonical_words(match["verb"])
    }


def _again(action: str, catalog: ToolCatalog) -> str:
    """ "Rebook the first available slot", "Re-run the trace": the action done again, said by its
    own verb, when no catalog tool is named for doing it again (`resend_top_up` is)."""
    match = _AGAIN.match(action.strip())
    if match is None:
        return action
    verb = match["verb"].casefold()
    if {f"re{verb}", f"re-{verb}"} & {t.name.split("_", 1)[0] for t in catalog.tools}:
        return action
    # "... or rebook a returned one": the catalog's own verb (never a flag "PRIORITY REBOOK")
    said = match.group(0).strip().casefold()
    if any(
        re.search(rf"(?:^|\bor\s+){re.escape(said)}\b", t.description, re.I) for t in catalog.tools
    ):
        return action
    return f"{verb}{action.strip()[match.end() :]}"


def _alternatives(description: str) -> list[tuple[str, set[str]]]:
    """ "Move a scheduled shipment, or rebook a returned one, to a new delivery date": each
    other action a description offers after "or", and the words that follow it."""
    out = []
    for clause in re.split(r"\bor\s+", description)[1:]:
        words = [w for w in canonical_words(clause) if w not in _PARTICLES]
        if words:
            out.append((words[0], set(words[1:8])))
    return out


def listed_objects(description: str) -> set[str]:
    """The words of a description's bracketed list ("(rent, deposit, arrears)")."""
    return {
        word
        for listing in re.findall(r"\(([^()]*,[^()]*)\)", description)
        for word in canonical_words(listing)
    }


def _tool_verbs(catalog: ToolCatalog) -> set[str]:
    """The verbs the catalog's tool names (and write tools' descriptions) start with
    (`retry_payment`: retry, `change_plan`: change), and their synonyms, as bare words
    ("Refunds above £300 ..." is a plural noun)."""
    verbs = {tool.name.split("_", 1)[0] for tool in catalog.tools} - {"email"}
    # `submit_return` "Transmit a return to the IRS ...": a write tool's description opens
    # with its verb too ("Transmit the return")
    verbs |= {
        described[0].casefold()
        for tool in catalog.tools
        if tool.access == "write" and (described := re.findall(r"[A-Za-z]+", tool.description))
    }
    return verbs | {word for group in _SYNONYMS if verbs & group for word in group}


# what "raise" changes when it changes something: "raise the credit limit"
_AMOUNTS = frozenset(
    canonical_words("limit rate price amount cap level fee ceiling threshold allowance")
)


# verbs said of many things, which say nothing of which tool without their object
_GENERAL_VERBS = (
    _LIGHT_VERBS
    | _DOING
    | frozenset(
        canonical_words(
            "add issue send create update change check book cancel close open set record log note "
            "get find give offer apply put move start stop end raise run tell ask call contact "
            "arrange schedule request confirm mark review assign pass refer transfer escalate "
            "remove clear reset replace return"
        )
    )
)


_LIST_OF = re.compile(
    r"^[a-z]+\s+(?:(?:the|a|an|today's|tomorrow's|this\s+week's|the\s+day's)\s+)?"
    r"(?:full\s+)?list\s+of\s+(?P<things>.+)"
)
_REPORT_OF = re.compile(
    r"^(?:run|pull|print|open|get|generate|check|review)\s+(?:(?:the|a|an|today's|this\s+week's|"
    r"last\s+week's)\s+)?(?P<things>[a-z][\w' -]{2,60}?)\s+(?:report|list)\b"
)
_OF_THINGS = re.compile(r"\b(?:of|the|a|an|any|all|each|every|no)\s+$")


# whose a thing is, said of anyone: "customer", "client", "user" and "account" are one word
_WHOSE = frozenset(canonical_words("customer caller"))

# "Tell the Site Manager the same day", "let the duty manager know": a person told
_TELL = re.compile(
    r"^\s*(?:tell|inform|alert|let|e-?mail|text|message|ring|phone|call|ask)\s+"
    r"(?P<who>(?:the|your|our)\s+[a-z][\w -]{2,40})",
    re.IGNORECASE,
)
_NOTIFYING = frozenset({"notify", "alert", "inform", "tell", "flag", "page", "message", "email"})
# the last word of a tool that reaches staff: `notify_site_manager`, `message_hire_desk`
_STAFF = frozenset(
    re.findall(
        r"[a-z]+",
        """
        manager supervisor desk team office controller officer secretary pharmacist engineer
        technician crew dispatcher lead leader head director coordinator planner cleaner vet
        greenkeeper surveyor inspector tailor locksmith fitter mechanic nurse
        """,
    )
)
_CUSTOMERS = frozenset(canonical_words("customer caller client member guest patient them him her"))


def notifier(action: str, catalog: ToolCatalog) -> Tool | None:
    """ "Tell the Site Manager the same day" with `notify_site_manager`, "Email the hire desk"
    with `message_hire_desk`: the catalog's one tool that reaches the member of staff the order
    names, every word of its name after the verb said. Telling the customer (or a parent, a
    lead contact) is what to say to them, whatever tool could write to them."""
    told = _TELL.match(action)
    if told is None:
        return None
    who = set(canonical_words(told["who"]))
    party = _PARTY.match(told["who"])  # "the Member Care Manager" is staff, by the role
    if who & _CUSTOMERS and party is None:
        return None  # "tell the customer the price": what to say to them
    found = [
        tool
        for tool in catalog.tools
        if tool.access != "read"
        and (words := tool.name.lower().split("_"))[0] in _NOTIFYING
        and len(words) > 1
        and words[-1] in _STAFF  # `notify_parent`, `email_lead_contact`: what to say to them
        and set(canonical_words(" ".join(words[1:]))) <= who
    ]
    if not found:
        # "Tell the Member Care Manager" with `refer_to_team` "Refer a case to another team
        # (..., Member Care Manager)": the one hand-over tool whose description names them
        named = party["party"].casefold() if party else ""
        found = [
            tool
            for tool in catalog.tools
            if named and hands_over(tool) and named in tool.description.casefold()
        ]
    return found[0] if len(found) == 1 else None


# whom an order tells, up to their role: "the Member Care Manager", "the Finance Team"
_PARTY = re.compile(
    r"(?:the|your|our)\s+(?P<party>(?:(?!(?:their|his|her|them|him|they|you)\b)[\w'-]+\s+){1,3}?(?:"
    + "|".join(sorted(_STAFF))
    + r"))\b",
    re.IGNORECASE,
)


def bind(action: str, catalog: ToolCatalog) -> Binding:
    """The tool an action phrase means (see the module rules)."""
    lowered = action.lower()
    first = lowered.split()[0].strip(",.:;") if lowered.split() else ""
    # "apply the allowance in Aquabase": a read tool's alias as the place where another verb's
    # action is done names the system, not a call of the read tool
    elsewhere = first in INSTRUCTION_VERBS and first not in READ_VERBS
    for tool in catalog.tools:
        for name in [tool.name, *tool.aliases]:
            spaced = name.replace("_", " ").lower()
            found = re.search(rf"(?<![a-z_]){re.escape(name.lower())}(?![a-z_])", lowered)
            if found is None and " " in spaced and spaced in lowered:
                found = re.search(re.escape(spaced), lowered)
                if found is not None and _OF_THINGS.search(lowered[: found.start()]):
                    # "Pull the list of open delayed bag files": the tool's name said as the
                    # things listed (an adjective and nouns), not the action `open_delayed_
                    # bag_file` does
                    continue
            if found is None or (
                name != tool.name and DENIED_THING.search(lowered[: found.start()])
            ):
                continue
            place = in_system(lowered[: found.start()])
            if elsewhere and tool.access == "read" and name != tool.name and place:
                continue
            return Binding(tool=tool.name)
    if (listed := _LIST_OF.match(lowered) or _REPORT_OF.match(lowered)) is not None:
        # "Pull the list of open delayed bag files" -> `list_open_files`, "Run the overdue
        # accounts report" -> `list_overdue_accounts` ("Report of trade accounts ..."): the one
        # read tool that lists such things
        things = set(canonical_words(listed["things"]))
        listers = [
            t
            for t in catalog.tools
            if t.access == "read"
            and (t.name.startswith("list_") or t.description.casefold().startswith("report of"))
            and things & set(canonical_words(" ".join(t.name.split("_")[1:])))
        ]
        if len(listers) == 1:
            return Binding(tool=listers[0].name)
    if (verifier := identity_check(action, catalog)) is not None:
        # "Check the caller's details against the V5C logbook", "confirm the caller is the
        # account holder": the catalog's one tool that verifies who is asking
        return Binding(tool=verifier.name)
    if MOVES_PERSON.match(action.strip()) or _TO_THE_WRITER.match(action):
        return Binding()
    if (told := notifier(action, catalog)) is not None:
        # "Email the hire desk so they can book a second van" with `message_hire_desk`
        return Binding(tool=told.name)
    action = _BRING_UP.sub("lookup ", _again(action, catalog), count=1)
    action = _BRING_X_UP.sub(r"lookup \g<what>", action, count=1)
    action = _PUT_BACK.sub(r"refund \g<what> to \g<where>", action, count=1)
    if not any(_TAKES_OFF.search(tool.description) for tool in catalog.tools):
        # a catalog that says "Take the customer off the round" means it as it says
        action = _TAKE_OFF.sub(r"remove \g<what> from \g<where>", action, count=1)
    lowered = action.lower()
    first = lowered.split()[0].strip(",.:;") if lowered.split() else ""
    said = _SET_UP.sub("create ", _MESSAGE_VERB.sub(r"send \1 ", action, count=1), count=1)
    # 'send the customer the "adverse reaction received" email': the quoted name is the
    # template's, what is sent is the email
    words = canonical_words(_QUOTED.sub(" ", said))
    said_as_verb = _MESSAGE_VERB.match(action) is not None
    if not words or (first in _NOT_VERB and not said_as_verb):
        return Binding()
    # "Retry the card payment", "Amend the order": a catalog tool's own verb is an order too
    imperative = first in INSTRUCTION_VERBS or first in _tool_verbs(catalog)
    if not imperative and not said_as_verb and not _SET_UP.match(action):
        # "ClearRoad holds a block of test slots", "Ratios differ by room, so availability is
        # per room": no order, so no action to bind
        return Binding()
    # "Take them off the next visit": the particle of a phrasal verb is no object of it
    verb, objects = words[0], set([w for w in words[1:] if w not in _PARTICLES][:3])
    if imperative and _BARE.match(lowered):
        # "Decline (pre-existing)", "Settle" in a table of decisions: the one tool of that verb
        owners = [
            t for t in catalog.tools if canonical_words(t.name.replace("_", " "))[:1] == [verb]
        ]
        if len(owners) == 1:
            return Binding(tool=owners[0].name)
    # "hold the order" names the action as `place_order_hold` does; "the label is ..." no action
    # "open the leave balance" reads a record; "open a ticket" creates one: the reading is the
    # second choice, taken only when no tool that creates fits the object ("raise a ticket",
    # but "raise the credit limit" changes it)
    sense = _SECOND_SENSE.get(lowered.split()[0]) if lowered.split() else None
    if sense == "get" and _A_NEW.match(lowered):
        sense = None  # "Open a new account" makes one; it reads nothing
    if sense == "change" and not objects & _AMOUNTS:
        sense = None  # "raise a job with Metering Operations" changes nothing: no amount
    second = _canon(sense) if sense else None
    definite = sense == "get" and bool(
        re.match(r"^\S+\s+(?:the|their|its|his|her|your)\b", lowered)
    )
    best: tuple[int, int, int, str] | None = None
    close: str | None = None
    said_as_noun = nominal_verbs(" ".join(action.split()[1:]))  # "... on a pre-authorisation"
    for tool in catalog.tools:
        name_words = canonical_words(tool.name.replace("_", " "))
        described = [w for w in canonical_words(tool.description) if w not in _PARTICLES]
        tool_verbs = {name_words[0]} if name_words else set()
        tool_verbs |= {described[0]} if described else set()
        if tool.access == "read" and described[:1] == ["return"]:
            tool_verbs.add(_canon("get"))  # "Return the standard price ...": a read of it
        # `take_payment` "Take a card payment ... (rent, deposit, arrears, buy-out balance)":
        # the things a description lists in brackets are what the tool acts on too
        tool_objects = set(name_words[1:]) | set(described[1:6]) | listed_objects(tool.description)
        for alternative, its_objects in _alternatives(tool.description):
            if alternative == verb and verb not in tool_verbs:
                tool_verbs.add(verb)  # "rebook the delivery" and "... or rebook a returned one"
                tool_objects |= its_objects
        # the tool's name counts twice its description: "check that the class has space" is
        # `check_class_availability`, not `lookup_enrolment` "... course, class, term week"
        common = objects & tool_objects
        shared = len(common) + len(objects & set(name_words[1:]))
        # "hold the order" -> `place_order_hold`: the action said as the tool's noun, second
        nominal = (
            imperative and verb in set(name_words[1:]) and bool(objects & (tool_objects - {verb}))
        )
        # "set up the freeze" -> `freeze_membership`: a light verb over the tool's own action
        # "make a note on the booking" -> `add_booking_note`: a light verb over what the tool
        # makes (its last word) and where
        # (a read tool makes nothing: "add them to the block" is no `get_group_block`)
        made = (
            tool.access != "read"
            and len(name_words) > 2
            and name_words[-1] in objects
            and len(objects & tool_objects) > 1
        )
        light = (verb in _LIGHT_VERBS and bool(objects & tool_verbs)) or (
            verb in _MAKING_VERBS and made and not tool_verbs & _UNDOING
        )
        # "Make the booking" -> `create_booking`: a light verb over what a making tool names
        light = light or (
            verb in _LIGHT_VERBS
            and name_words[:1] == [_canon("create")]
            and words[1:2] == name_words[1:2]
        )
        shared += light
        rank = 1 if verb in tool_verbs else 0 if second in tool_verbs or nominal or light else -1
        if rank < 1 and verb in _DOING and name_words[:1] and name_words[0] in said_as_noun:
            # "Take the £50 security deposit on a card pre-authorisation" -> `preauthorise_card`:
            # a verb that only does it, the tool's own action said as a noun, and its object
            rank = 1 if common else rank
        direct = common  # the things said after the verb that the tool names
        if rank == 1 and not shared:
            # "Take the first month's fee and the deposit in a single payment" -> `take_payment`:
            # the tool's own verb, its object said further on
            common = set(words[4:9]) & set(name_words[1:])
            shared = len(common)
        if rank == 1 and verb not in name_words[:1] and not common - WHO and objects - WHO:
            # "Add the charge to the guest's room bill" and `issue_spa_voucher` "Add a spa voucher
            # to the guest's stay": the description's verb, and only who it is for in common
            rank = 0 if nominal or light else -1
        if rank == 1 and tool.access != "read" and not direct - _WHOSE and objects - WHO:
            # "Add it as an allergen flag on the account" and `add_box_credit`: a write tool's
            # verb and none of the things it names ("account" is anyone's; "Add the allergen flag
            # so the next box is safe" names no box to credit), second to `set_allergen_flag`
            # (a read of "the account" is what it says)
            rank = 0
        if definite and second in tool_verbs and (common - WHO or not objects - WHO):
            # "open the account" reads the account; "open a ticket" creates one. A read of
            # only whose it is ("Open the claim with the customer's photos" and "Open storage
            # accounts with ...") reads nothing the step names
            rank = 1
        elif definite and second and verb in tool_verbs:
            rank = 0
        nouns = set(name_words[1:]) - {verb}
        if rank == 1 and first == tool.name.split("_", 1)[0] and nouns and nouns <= set(words[1:]):
            # "Check the policy has escape of water cover" -> `check_cover`: every word of the
            # tool's name said, its verb as it is, over `find_policy` by a synonym
            shared += len(name_words)
        if rank >= 0 and shared:
            # a tie goes to the tool with more than whose it is in common ("Send the customer a
            # replacement router": `reship_order`, never `send_password_reset` by "customer"),
            # then to the tool of the verb said ("Check availability for the group's dates" is
            # `check_room_availability`, not `get_group_block` by a synonym)
            tie = int(bool(common - _WHOSE)) * 2 + int(tool.name.split("_", 1)[0] == first)
            if best is None or (rank, shared, tie) > best[:3]:
                best = (rank, shared, tie, tool.name)
        elif close is None and (verb in tool_verbs or shared):
            close = tool.name
    if best is not None:
        return Binding(tool=best[3])
    if verb == _canon("send") and (messenger := _messenger(said, catalog)) is not None:
        return Binding(tool=messenger)
    owners = [
        t
        for t in catalog.tools
        if t.access == "write" and canonical_words(t.name.replace("_", " "))[:1] == [verb]
    ]
    if imperative and len(owners) == 1 and verb not in _GENERAL_VERBS and objects - WHO:
        # "Refund the unused days to the original card" and `refund_hire`, "Release only the
        # undisputed part" and `release_deposit`: the one tool of an action only it does
        return Binding(tool=owners[0].name)
    raw = [w for w in re.findall(r"[a-z]+", lowered) if w not in _STOP]
    if len(raw) < 2:
        return Binding(close=close)
    return Binding(proposed=f"{raw[0]}_{raw[1]}", close=close)


# what is sent as a message ("send the booking confirmation", "email the engagement letter"),
# and the channels a message tool names
_MESSAGE = re.compile(
    r"\b(?:confirmation|letter|e-?mail|message|notice|reminder|receipt|text|sms|reply|"
    r"notification)s?\b",
    re.IGNORECASE,
)
_CHANNELS = ("email", "letter", "sms", "text", "portal", "post")


def _messenger(action: str, catalog: ToolCatalog) -> str | None:
    """ "Send the booking confirmation" with `send_customer_message` ("Email a standard letter
    to the customer"): a message sent, and the catalog's one tool that sends messages (or the
    one of its channel, "by text" with `send_sms` beside `send_letter`)."""
    if _MESSAGE.search(action) is None:
        return None
    tools = [
        t
        for t in catalog.tools
        if t.access != "read"
        and not hands_over(t)
        and _canon(t.name.split("_", 1)[0]) == _canon("send")
        # what it sends is a message (`send_replacement` sends goods)
        and _MESSAGE.search(f"{t.name.replace('_', ' ')} {t.description}") is not None
    ]
    said = set(re.findall(r"[a-z]+", action.lower().replace("e-mail", "email")))
    channel = [t for t in tools if said & set(_CHANNELS) & set(t.name.split("_"))]
    if len(channel) == 1:
        return channel[0].name
    return tools[0].name if len(tools) == 1 else None


def verb_stems(value: str) -> set[str]:
    """The verbs an outcome value is the participle of: "denied" -> deny, "approved" -> approve,
    "rejected" -> reject, "cancelled" -> cancel. Empty for a value that is no participle."""
    value = value.casefold()
    if not re.fullmatch(r"[a-z]{4,}ed", value):
        return set()
    stem = value[:-2]
    stems = {stem, value[:-1]}
    if value.endswith("ied"):
        stems.add(value[:-3] + "y")
    if len(stem) > 2 and stem[-1] == stem[-2]:
        stems.add(stem[:-1])  # cancelled
    return stems


_TRANSFER_VERBS = frozenset(
    ["transfer", "escalate", "route", "hand", "handoff", "forward", "refer"]
)
TEAM_VERBS = frozenset({"route", "assign", "refer", "send", "forward", "pass"})
_PEOPLE = re.compile(
    r"(?:\b|_)(?:team|queue|specialists?|department|desk|supervisor|manager|human|staff)(?:\b|_)",
    re.IGNORECASE,
)
# "Raise a job with Metering Operations", "log a case with the Fraud team": work raised with a
# named team, which takes it on
RAISE_WITH = (
    r"(?i:raise|log|open|put\s+in)\s+(?i:an?\s+)?(?:[\w-]+\s+){0,2}?"
    r"(?i:job|case|ticket|request|referral|task)\s+(?i:with)\s+"
)
# SOP text that hands a case to people: "escalate to", "refer the file to Compliance", "pass
# weather concerns to the Contracts Manager", "hand it over to the night team"
HANDS_OVER = re.compile(
    r"(?i:\b(?:escalat(?:e|es|ed|ing|ion)|refer(?:s|red|ring)?|transfer(?:s|red|ring)?|"
    r"hand(?:s|ed|ing)?\s+(?:\w+\s+)?(?:over|off))\b)|"
    r"(?i:\b(?:pass|send|forward|assign|route)\w*\s+(?:[\w'-]+\s+){0,5}?to\s+(?:the\s+|a\s+)?)[A-Z]|"
    r"\b" + RAISE_WITH + r"(?i:the\s+)?[A-Z]"
)


def hands_over(tool: Tool) -> bool:
    """A tool named or described as handing a case on (`transfer_to_human_agents`, `notify_
    supervisor` described "Escalate a case to the shift supervisor", `assign_to_team` "Assign a
    file or request to a specialist team")."""
    said = tool.description.split(None, 1)[0].casefold() if tool.description.split() else ""
    verbs = {tool.name.split("_", 1)[0], said}
    if verbs & _TRANSFER_VERBS:
        return True
    return bool(verbs & TEAM_VERBS) and bool(_PEOPLE.search(f"{tool.name} {tool.description}"))


# A statement about a thing: a determiner first ("A leak allowance is ...", "Only one ... per
# ..."), or a subject and a verb in the third person ("ClearRoad holds ...", "Deliveries are
# made ..."), never what the agent does ("The agent raises a case")
_NOT_THE_AGENT = r"(?!(?:agents?|advis[eo]rs?|staff|team|you|we|officers?|customers?|callers?)\b)"
_STATEMENT = re.compile(
    r"^(?:(?:a|an|the|only|each|every|no|one|any|this|these|those|such)\s+"
    + _NOT_THE_AGENT
    + r"\S+\s+(?!\w+\s+to\b)(?:\S+\s+)*?(?:is|are|was|were|per|has|have|can|may|must|covers?|"
    r"means?)\b|(?:our\s+)?"
    + _NOT_THE_AGENT
    + r"[a-z][\w'-]*\s+(?:is|are|was|were|has|have|can|may|cannot|will|would|[a-z]+s)\b|"
    # "The Pharmacovigilance Team decides on any goodwill": what a named team does
    r"the\s+(?:(?-i:[A-Z])[\w-]*\s+){1,3}(?:team|desk|unit|department|office|manager|lead|"
    r"leader|supervisor|officer)\s+(?:also\s+|then\s+|alone\s+)?[a-z]+s\b|"
    # "Members often update their card": a plural subject, how often, a verb
    # "Maximum 6 vouchers per booking": a limit, said of no action
    r"(?:maximum|minimum|max\.?|min\.?|at\s+most|at\s+least|no\s+more\s+than|up\s+to)\s+"
    r"[£$€]?\d|"
    # "There's no charge": what there is, or is not
    r"there(?:'s|\s+is|\s+are|\s+was|\s+were)\s|"
    # "Remote opening does not work on an offline locker": what a thing does not do
    + _NOT_THE_AGENT
    + r"(?:[a-z][\w'-]*\s+){1,3}(?:does|do|did|will|would|can|could)(?:\s+not|n't)\s|"
    r"(?:our\s+)?" + _NOT_THE_AGENT + r"[a-z][\w'-]*s\s+(?:often|usually|sometimes|normally|"
    r"generally|typically|rarely|seldom|frequently|tend\s+to)\s+[a-z])",
    re.IGNORECASE,
)
# "Tip: ...", "Note: ...": a label that says what follows is a remark; what follows decides
_REMARK = re.compile(r"^(?:tip|note|hint|fyi|n\.?b\.?)\s*:\s+", re.IGNORECASE)


def is_statement(text: str) -> bool:
    """True for a sentence that states a fact rather than orders an action: it calls nothing."""
    text = _REMARK.sub("", text.strip())
    first = text.split(None, 1)[0].casefold().strip(",.:;") if text.split() else ""
    _, colon, rest = text.partition(": ")
    said = rest.split(None, 1)[0].casefold().strip(",.;") if rest.split() else ""
    if colon and first not in INSTRUCTION_VERBS and said in ("nothing", "no", "none"):
        return True  # "Returned to sender already: nothing can be done by us"
    if _NOUN_IS.match(text.strip()) or _NOUN_OF_IS.match(text.strip()):
        # "Contact is made by the Fraud team", "Credit for a box someone couldn't eat is the
        # full box value": the verb's noun, and what it is
        return True
    if first in INSTRUCTION_VERBS or _STATEMENT.match(text.strip()) is None:
        return False
    # "Parcel shows 'delivery failed', rebook it", "... only - escalate to Accessibility": a
    # case and its order
    _, *after = _CLAUSE_BREAK.split(text, maxsplit=1)
    then = after[0].split(None, 1)[0].casefold() if after and after[0].split() else ""
    return then not in INSTRUCTION_VERBS


_NOUN_OF_IS = re.compile(r"^[a-z]+\s+(?:for|of)\s+[^,:;]{0,80}?\s(?:is|are)\s", re.I)
_NOUN_IS = re.compile(r"^[a-z]+\s+(?:is|are|was|were|has\s+been|have\s+been|will\s+be)\s", re.I)
_CLAUSE_BREAK = re.compile(r"[,;:]\s+|\s[-\u2013\u2014]\s")
