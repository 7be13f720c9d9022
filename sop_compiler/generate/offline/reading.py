"""Read a procedure's units into nodes: sentences, conditions, otherwise, actions and tool calls."""

from __future__ import annotations

import re
from dataclasses import replace

from sop_compiler.generate.offline.binding import bind, canonical_words, hands_over, verb_stems
from sop_compiler.generate.offline.chains import alternative_cases, case_runs
from sop_compiler.generate.offline.nodes import (
    BEFORE,
    OUTCOME,
    PROPOSED_NOTE,
    Builder,
    CaseGroup,
    Node,
    only_goto,
    quote,
    strip_end,
)
from sop_compiler.generate.offline.phrases import (
    AMOUNT_CASE,
    APPROVER,
    AS_WELL,
    CONSENT,
    END,
    NEGATED,
    RULE_APPLIES,
    STOP_ALONE,
    Action,
    Clause,
    handed_over,
    is_order,
    read_clause,
)
from sop_compiler.generate.offline.sections import (
    ANSWER,
    Unit,
    answered_items,
    jump_targets,
    labelled_cases,
    labelled_run,
    out_of_scope,
    routed,
    timed_cases,
    unbracketed,
)
from sop_compiler.generate.offline.standing import completes, rule_kind, rule_lead, sentence_key
from sop_compiler.generate.offline.tools import Known, ToolMention, bind_arguments
from sop_compiler.models import TERMINAL_KINDS, ToolCall
from sop_compiler.text import (
    AGENT_ROLE,
    INSTRUCTION_VERBS,
    injection_excerpt,
    is_instruction,
    split_sentences,
)

_FOR_CASE = "it is for "  # the test phrases.read_clause makes of "For a partial refund, ..."
_ALTERNATIVELY = re.compile(r"^\s*alternatively\b", re.IGNORECASE)
_PROHIBITION = re.compile(r"^\s*(?:do not|don't|never)\b", re.IGNORECASE)
_CLOSING = re.compile(
    r"^(?:before (?:you|we) (?:end|close|finish)|ask (?:the customer )?whether there is anything "
    r"else|either way|in (?:either|both|all|every|each) cases?|whatever happens|having)\b",
    re.IGNORECASE,
)
_OTHERWISE = re.compile(r"(?:^|[.;]\s+)(?:otherwise|if not)\b", re.IGNORECASE)


def read_units(builder: Builder, units: list[Unit]) -> list[Node]:
    """Top-level steps (each with its sub-steps as children) for a run of SOP units."""
    out: list[Node] = []
    pending: Node | None = None
    cases: list[Node] = []  # the top-level items in a row that each open with a condition
    rules_lead = False  # under "Additional rules:": its items are rules, not steps
    labelled: list[Node] = []  # the steps of a run of labelled cases (sections.labelled_run)
    # the numbers of steps that are only rules ("7.3 Compensation is paid only if ..."): a
    # "go to 7.3" goes on to the next step, under that rule
    ruled: list[str] = []
    builder.targets |= jump_targets(units)
    for unit in labelled_run(timed_cases(routed(_without_rule_cases(units)))):
        if labelled and not unit.case_of_run:
            _one_of(builder, labelled)
            labelled = []
        if unit.key is None and not unit.children:
            rules_lead = (rules_lead and unit.numbered) or (
                not unit.numbered and _RULES_LEAD.match(unit.text.strip()) is not None
            )
        else:
            rules_lead = False
        if rules_lead and unit.numbered and _restricts_only(unit.text):
            # "Spread over up to 60 months only if such a written request is on file": a rule
            # on the spread a step makes, never a spread of its own
            ruled += [unit.key] if unit.key else []
            continue
        unit = labelled_cases(answered_items(out_of_scope(unbracketed(unit))))
        unit = replace(unit, children=_without_rule_cases(unit.children))
        closes = _OPENS_OTHERWISE.match(unit.text) is not None and bool(cases)
        own, pending_own = _sentences(builder, unit, 0, pending)
        kids: list[Node] = []
        after: list[Node] = []  # a plain paragraph after the sub-items, and all after it
        child_pending: Node | None = None
        runs = case_runs(builder, unit.children)
        groups: dict[int, CaseGroup] = {}
        for child, run in zip(unit.children, runs, strict=True):
            split = run is not None and _has_otherwise(child.text)
            nodes, child_pending = _sentences(builder, child, 1, child_pending, split=split)
            kids += nodes
            if after or not child.numbered:
                after += nodes
            if child.key and nodes:
                builder.keys.setdefault(child.key, nodes[0])
            if run is not None and nodes:
                groups.setdefault(run, CaseGroup([])).members.append(nodes)
        made_groups = [g for g in groups.values() if len(alternative_cases(g)) >= 2]
        last_cond = (
            pending_own
            if pending_own is not None and own and own[-1] in (pending_own, *pending_own.then_nodes)
            else None
        )
        # "If X, do A." with indented sub-items: the sub-items say how to do A, so they run
        # only when X holds (unless X already has its own jump or otherwise).
        # Only a condition that opens the item: "Find the customer. No record? Create one." over
        # "Check the IMEI ..." runs the sub-items for every customer.
        opens_branch = last_cond is not None and (
            unit.text.rstrip().endswith(":")
            or (
                own[0] is last_cond
                and not (last_cond.then_goto or last_cond.else_nodes or last_cond.else_goto)
            )
        )
        if last_cond is not None and opens_branch and kids:
            # "If X:" followed by its sub-items; a paragraph after "If X, do A." is a step
            # of its own the SOP did not number ("5. If X, do A." then "Where Y, do B.")
            ended = unit.text.rstrip().endswith(":")
            last_cond.then_nodes += kids if ended else kids[: len(kids) - len(after)]
        elif kids:
            last_cond = None
        # "1. Find the order and the payment." (or "If it still fails, arrange a repair:") over
        # sub-steps that call the tools: a heading for them, not an action that needs a tool
        heading = own[-1] if own and last_cond is not None and opens_branch else None
        heading = own[0] if len(own) == 1 else heading
        if heading is not None and heading.proposed and any(k.kind == "tool_call" for k in kids):
            heading.proposed = None
            heading.text = heading.text.split(PROPOSED_NOTE)[0]
        if not own:
            if not kids:
                ruled += [unit.key] if unit.key else []
                continue
            own = [kids.pop(0)]
        head, *rest = own
        head.level = 0
        for node in [*rest, *kids]:
            node.level = 1
        head.children = [*rest, *kids]
        _how_its_call_is_made(head, head.children)
        _done_instead(head)
        for key in [*ruled, *([unit.key] if unit.key else [])]:
            builder.keys.setdefault(key, head)
        ruled = []
        for group in made_groups:
            group.anchor = head
            builder.groups.append(group)
        if closes and len(cases) >= 2 and cases[-1].else_nodes[:1] == [head]:
            # "2. If A, ... 3. If B, ... 4. Otherwise, ...": one of them runs, never A and
            # then the otherwise of B
            group = CaseGroup([[case, *case.children] for case in cases], anchor=cases[0])
            if len(alternative_cases(group)) >= 2:
                builder.groups.append(group)
        opens = head.kind == "condition" and not (head.else_nodes or head.else_goto)
        if opens and cases and _one_or_other(cases[-1].test or "", head.test or ""):
            # "4. If the member has enough credits, book the room. 5. If they don't have
            # enough credits: ...": the second is the first one's other side ("2. If they want
            # a break: pause ... 3. If they want to leave: cancel ...": one or the other)
            group = CaseGroup([[case, *case.children] for case in (cases[-1], head)])
            group.anchor = cases[-1]
            if len(alternative_cases(group)) >= 2:
                builder.groups.append(group)
        prior = pending if pending is not None and pending.kind == "condition" else None
        if (
            opens
            and not cases
            and prior is not None
            and prior.level > 0
            and not (prior.else_nodes or prior.else_goto)
            and _complement(prior.test or "", head.test or "")
        ):
            # "2. Check the address. If we cannot supply it, explain the options. 3. If we can
            # supply it, schedule the move": the step is the other side of the test before it
            group = CaseGroup([[prior, *prior.then_nodes], [head, *head.children]])
            group.anchor = prior
            if len(alternative_cases(group)) >= 2:
                builder.groups.append(group)
        cases = [*cases, head] if opens and not closes else []
        if unit.case_of_run:
            labelled.append(head)
        out.append(head)
        pending = last_cond if last_cond is not None else (child_pending if kids else pending_own)
    if labelled:
        _one_of(builder, labelled)
    return out


_USE = re.compile(r"^use\b", re.IGNORECASE)


def _how_its_call_is_made(head: Node, children: list[Node]) -> None:
    """ "Text the patient to confirm the day. Use the "Delivery confirmed" template": the
    sentence (or sub-item) after it says how the step's own call is made (its literal arguments
    join that call), never a second text."""
    call = head.tool_call
    cased = {id(n) for c in children for n in [*c.then_nodes, *c.else_nodes]}
    for kid in children:
        if call is None or kid.tool_call is None or kid.tool_call.tool != call.tool:
            continue
        if not _USE.match(kid.text) or id(kid) in cased or _INSTEAD.search(kid.text):
            continue  # "If they cannot access their email, use method `sms_code` instead"
        fixed = {a.name: a for a in kid.tool_call.arguments if a.value is not None}
        named = {a.name for a in call.arguments}
        arguments = [fixed.get(a.name, a) for a in call.arguments]
        arguments += [a for name, a in fixed.items() if name not in named]
        head.tool_call = call = call.model_copy(update={"arguments": arguments})
        kid.kind, kid.tool_call = "say", None
        tag = f" (`{call.tool}`)."  # the name `_tool_node` gave the call it no longer is
        if kid.text.endswith(tag):
            kid.text = f"{kid.text[: -len(tag)]}."


_CALL_FIELDS = (
    "kind",
    "text",
    "block_id",
    "quote",
    "tool_call",
    "arg_refs",
    "text_ref",
    "target",
    "test",
)


def _done_instead(head: Node) -> None:
    """ "5. Send a patrol. - If the car has crash damage, send a recovery truck instead of a
    patrol": the sub-item's case replaces the step's own call, which is made only otherwise.

    The step becomes the case (its number still the one a jump names), its call the otherwise
    side; never when the case already has an otherwise or a jump of its own, nor when it tests
    how the call went ("If the Refund Tool rejects the refund, ... instead")."""
    call = head.tool_call
    if call is None or head.kind != "tool_call" or head.goto or head.jump:
        return
    for kid in head.children:
        if kid.kind != "condition" or kid.else_nodes or kid.else_goto or kid.then_goto:
            continue
        if OUTCOME.search(kid.test or ""):
            continue  # "If the Refund Tool rejects the refund, apply a credit instead": after it
        if not any(
            n.tool_call is not None and n.tool_call.tool != call.tool and _INSTEAD.search(n.text)
            for n in kid.then_nodes
        ):
            continue
        for name in _CALL_FIELDS:  # the step is the case now, and the case node its call
            mine, its = getattr(head, name), getattr(kid, name)
            setattr(head, name, its)
            setattr(kid, name, mine)
        head.then_nodes, kid.then_nodes = kid.then_nodes, []
        head.else_nodes = [kid]
        # the sub-steps in the order they run: the case's, then the step's own call
        case = {id(n) for n in head.then_nodes}
        at = head.children.index(kid)
        rest = [c for c in head.children[at + 1 :] if id(c) not in case]
        head.children = [*head.children[:at], *head.then_nodes, kid, *rest]
        return


def _without_rule_cases(units: list[Unit]) -> list[Unit]:
    """`units` without the items that finish a rule's lead ("Exceptions - no compensation is
    given:" over "- when the delay was caused by the customer, or"): the routine's Rules keep
    them, one rule per case (standing.py)."""
    out: list[Unit] = []
    lead: str | None = None
    for unit in units:
        if lead is not None and not unit.children and completes(lead, unit.text):
            continue
        lead = rule_lead(unit.text)
        if lead is not None and unit.children:  # the lead's items are its sub-items
            kept = [c for c in unit.children if c.children or not completes(lead, c.text)]
            unit = replace(unit, children=kept)
        out.append(unit)
    return out


def _one_of(builder: Builder, run: list[Node]) -> None:
    """ "First report: ..." / "Second report in the same term: ...": the labelled cases of one
    thing, one of which holds, wired if / else-if (chains.py)."""
    group = CaseGroup([[case, *case.children] for case in run], anchor=run[0])
    cases = len(run) >= 2 and all(case.kind == "condition" for case in run)
    if cases and len(alternative_cases(group)) >= 2:
        builder.groups.append(group)


_RULES_LEAD = re.compile(
    r"^(?:(?:additional|other|general|further|key|important|standing)\s+)?(?:rules|restrictions|"
    r"limits)(?:\s+(?:that\s+)?apply)?\s*:$",
    re.IGNORECASE,
)


def _restricts_only(text: str) -> bool:
    """True when an item restricts or forbids and orders nothing else: each sentence is such a
    rule or a fact ("A borrower may ask for a longer spread"); "After any change, send the
    statement" is done."""
    sentences = split_sentences(text)
    kinds = [rule_kind(sentence_key(s)) for s in sentences]
    restricting = [k in ("only_if", "never", "limit") for k in kinds]
    facts = [k is None and not is_instruction(s) for k, s in zip(kinds, sentences, strict=True)]
    return any(restricting) and all(r or f for r, f in zip(restricting, facts, strict=True))


_OPENS_OTHERWISE = re.compile(
    r"^\s*(?:otherwise|else|in all other cases|in any other case|if not|if none)\b", re.I
)


def _sentences(
    builder: Builder, unit: Unit, level: int, pending: Node | None, *, split: bool = False
) -> tuple[list[Node], Node | None]:
    """Nodes of one unit's text, in order, and the condition an `Otherwise` may still finish."""
    if unit.part:  # "when it started;" after "record:": what to record, as the SOP says it
        text = unit.text.strip()
        node = builder.node("say", text, block_id=unit.block_id, quote=quote(text), level=level)
        return [node], pending
    nodes: list[Node] = []
    notes: list[str] = []
    noted: list[str] = []  # the SOP's own words of the notes, which their step cites
    owner: Node | None = None  # the condition this item opens with
    refused: list[list[Node]] = []  # branches that refuse the request or forbid its write
    refused_else: list[Node] = []  # conditions whose otherwise-side refuses it
    instead_of: Node | None = None  # a refusal mid-item: its orders that follow are its branch
    otherwise_of: Node | None = None  # the condition whose "Otherwise" this item's text began
    required = False  # a sentence of the item said what the request needs ("only possible if")
    asked: tuple[Node, int] | None = None  # a question inside the step, its first answer's end
    excepted: re.Match[str] | None = None  # the last rule's exception ("except where X")
    for sentence, original in _clauses(unit.text):
        then = _THEN_ORDER.match(sentence)
        if excepted is not None and then is not None:
            # "... never by us, except where it was delivered damaged. Then order the
            # replacement": the order is the exception's case, never every case's
            sentence = f"If {excepted['test'].strip()}, {then['rest']}"
        excepted = None
        excerpt = injection_excerpt(sentence)
        if excerpt is not None:
            builder.skipped.append(excerpt)
            continue
        asked_for = required  # what an earlier sentence of the item said the request needs
        required = required or rule_kind(sentence_key(original)) == "only_if"
        named = _named_it(sentence, builder.subject)
        sentence = _prohibition_as_condition(named)
        prohibition = sentence != named
        # an item with sub-items heads them: its words bind no tool, its sub-items say how (a
        # note that follows the item is no sub-item)
        heads = any(child.numbered and _says_how(child.text) for child in unit.children)
        clause = read_clause(
            sentence,
            tools=builder.tools,
            agents=builder.agents,
            bind_meaning=not heads,
            # "6. Router fault: send a new router" where step 5 jumps to it: tested already
            labels=(unit.key or "").casefold() not in builder.targets,
        )
        clause.actions = [_stated_rule(action) for action in clause.actions]
        if (
            clause.test is not None
            and _ELLIPTIC.match(clause.test)
            and pending is not None
            and _NEGATIVE.search(pending.test or "")
        ):
            # "Book the repair, provided that the property is not unsafe. If it is, follow
            # Section 3 first": "if it is" is the other side of the test before it
            clause.test, clause.is_else = None, True
        # "Note: ... If they ring back 10 mins later it's a new job.": in a paragraph of its
        # own, a test that orders nothing is a fact, never "Check whether they ring back ..."
        idle = (
            clause.test is not None
            and not clause.actions
            and not unit.numbered
            and not unit.children
            and not sentence.rstrip().endswith(":")
        )
        instruction = (
            (clause.test is not None and not idle)
            or clause.is_else
            or clause.is_yes
            or is_instruction(sentence)
            or any(
                a.kind in ("tool_call", "escalate", "handoff", "resolve") for a in clause.actions
            )
        )
        if not instruction:
            if (unit.block_id, sentence_key(original)) in builder.rule_sentences:
                # a constraint with no action: the routine's Rules keep it ("..., except where
                # the appliance was delivered damaged", whose case a "Then ..." may go on with)
                excepted = _EXCEPT_WHERE.search(sentence)
                continue
            last = nodes[-1] if nodes else None
            # "... reassure the caller. Done.": the branch it closes ends the case
            branch = owner is not None or (pending is not None and last in pending.then_nodes)
            if (
                last is not None
                and branch
                and _NOTHING_MORE.match(sentence.strip())
                and last.kind not in TERMINAL_KINDS
                and last.goto is None
            ):
                # "Less than 30 minutes late: give the time. Nothing else is needed."
                last.goto = END
            if nodes:
                nodes[-1].text = f"{nodes[-1].text} {sentence.strip()}"
            else:
                notes.append(sentence.strip())
                noted.append(original.strip())
            continue
        plain = clause.test is None and not clause.is_else and not clause.is_yes
        goto = only_goto(clause.actions) if plain else None
        going_on = plain and not _PROHIBITION.match(sentence) and rule_kind(sentence) != "never"
        # "Call the Duty Manager. If the Duty Manager decides to end the stay, ...": the SOP
        # goes on with what the person it escalated to decides
        decided = (
            clause.test is not None
            and bool(nodes)
            and nodes[-1].kind == "escalate"
            and bool(nodes[-1].target)
            and (nodes[-1].target or "").casefold() in clause.test.casefold()
        )
        if (going_on or decided) and nodes and nodes[-1].kind == "escalate":
            # the SOP goes on after the escalation (tells the customer, goes to step N):
            # it is a ticket for the team, not the end of the routine
            _as_ticket(builder, nodes[-1])
        if goto is not None and nodes:
            # "... Then go to step 6." continues the step before it; after an ending it is moot
            if nodes[-1].kind not in TERMINAL_KINDS and nodes[-1].goto is None:
                nodes[-1].goto = goto
            continue
        if plain and nodes and nodes[-1].kind in TERMINAL_KINDS:
            # after a handoff nothing runs: keep the sentence as its note
            nodes[-1].text = f"{nodes[-1].text} {sentence.strip()}"
            continue
        if plain and _CLOSING.match(sentence.strip()):
            # "Before you end the call, ...", "Either way, ...": every path does it, not one
            # branch, nor the otherwise-side that came before it
            owner = otherwise_of = None
        parallel = (
            owner is not None
            and (owner.test or "").startswith(_FOR_CASE)
            and (clause.test or "").startswith(_FOR_CASE)
        )
        parallel = parallel or (
            owner is not None
            and clause.test is not None
            and _ALTERNATIVELY.match(sentence) is not None
        )
        # "Score below 40? Decline it. Score 40 or more? Open the account.": two questions,
        # two cases
        parallel = parallel or (
            owner is not None
            and (owner.test or "").endswith("?")
            and (clause.test or "").endswith("?")
        )
        # "If there is space, book it. If the room is full, ...; do not book": a case that
        # refuses what the item's first case does is the other case, never inside it
        parallel = parallel or (
            owner is not None
            and clause.test is not None
            and _denies(builder, clause)
            and _refuses_call(builder, clause, owner.then_nodes)
        )
        if parallel:
            owner = None  # "For a late delivery, ... For a missing item, ...": two cases
        case_of = pending if pending is not None else owner
        sibling: Node | None = None  # the case this sentence is the other side of
        if (
            clause.test is not None
            and not clause.is_else
            and case_of is not None
            and case_of.kind == "condition"
            and case_of.then_nodes
            and not case_of.else_nodes
            and case_of.else_goto is None
            and case_of in nodes
            and _same_subject(case_of.test or "", clause.test)
        ):
            # "Where the refund is £300 or less, refund it. Where it is more than £300, log a
            # complaint": the second case of the same thing is the first one's other side
            clause.is_else, pending = True, case_of
            sibling = case_of
        no_to = _NO_TO.match(clause.test or "")
        asked_first = next(
            (
                node
                for node in nodes
                if no_to is not None
                and node.kind == "condition"
                and not node.else_nodes
                and node.else_goto is None
                and (node.test or "").rstrip("?") == no_to["question"].rstrip("?")
            ),
            None,
        )
        if asked_first is not None:
            # 'YES => ask them to ... If they can't, send a plumber. NO => go to Step 3': the
            # no is the other side of the question, past the cases inside its yes
            clause.test, clause.is_else, pending, owner = None, True, asked_first, None
        goto = only_goto(clause.actions) if _ANSWER_LINE.match(original) else None
        if goto is not None and clause.is_else and _next_key(unit.key) == goto.casefold():
            continue  # "NO => go to Step 3" in step 2: where the other answer goes on too
        if (
            clause.is_else
            and pending is None
            and owner is not None
            and not owner.else_nodes
            and owner.else_goto is None
        ):
            pending = owner  # "If X, A. B. Otherwise, C.": C answers X, after X's sentences
        if (
            owner is None
            and plain
            and pending is not None
            and pending.then_nodes
            and (_NEGATIVE.search(pending.test or "") or _THIS_CASE.search(sentence))
            and _refuses_write(builder, clause)
        ):
            # "If the proof is not dated in the last 3 months, ask for a current one. Do not
            # issue a permit without valid proof", "... Do not take payment in this case": the
            # case's own prohibition
            owner = pending
        else_of_owner = clause.is_else and owner is not None and pending is owner
        # "In any other case, ... raise a case": an otherwise that answers no condition this
        # routine reads keeps its words, and says so, never a step for every case
        answers_none = pending is None or bool(pending.else_nodes) or pending.else_goto is not None
        stray = _STRAY_ELSE.match(original.strip()) if clause.is_else and answers_none else None
        answered = pending
        made, pending = _clause(
            builder,
            clause,
            unit.block_id,
            level,
            pending,
            nodes,
            split=split and not nodes,
            branch=owner is not None and not else_of_owner,
        )
        if stray is not None and made:
            made[0].text = f"{stray.group(0)}{made[0].text[:1].lower()}{made[0].text[1:]}"
            builder.questions.append(
                (
                    f"Step {{step}}: {stray.group(0).strip(' ,:')!r} answers no condition here.",
                    made[0],
                )
            )
        if (
            otherwise_of is not None
            and not unit.one_side  # "No: it is not admitted. Stop and escalate.": all its side
            and (clause.test is not None or not is_order(sentence))
        ):
            otherwise_of = None  # "If the customer asks for a refund, ...": a case of its own
        if otherwise_of is not None and not clause.is_else:
            otherwise_of.else_nodes += made  # "Otherwise, do not end it. Ask the rider ..."
        elif clause.is_else and answered is not None and answered.else_nodes[:1] == made[:1]:
            otherwise_of = answered if made else None
        if sentence != original or unit.cite:
            for node in made:  # cite the SOP's words, not the reading of them (or a table row)
                node.quote = quote(unit.cite or original)
        refusing = prohibition or (clause.test is not None and _denies(builder, clause))
        # "Exchanges are only possible if ... 48 hours away. If it's closer than that, apologise
        # and offer the returns list instead": the case the requirement rules out, and what is
        # done in its place; the request is not carried out
        refusing = refusing or (
            asked_for
            and clause.test is not None
            and any(_INSTEAD.search(a.text) for a in clause.actions)
        )
        # "... Where it is more than £300, log it and do not process the refund yourself": the
        # refund is the other case's, which this side never reaches: nothing to end
        theirs = sibling is not None and _refuses_call(builder, clause, sibling.then_nodes)
        refusing = refusing and not theirs
        if refusing:
            refused.append(made)  # ended once the item's later sentences joined the branch
        elif owner is not None and not else_of_owner and plain and _refuses_write(builder, clause):
            # "If the zone is full, queue the household. Do not take payment in this case.":
            # the case forbids a write, so it ends once its sentences are done
            refused.append([owner])
        elif (
            clause.is_else
            and answered is not None
            and made
            and not theirs
            and _denies(builder, clause)
        ):
            refused_else.append(answered)  # "No: do not book a test slot; tell the pupil ..."
        if owner is not None and owner is instead_of and not is_order(sentence):
            owner = instead_of = None  # "Flexible bookings can be ...": another case begins
        # "Check the stock board. Short? DO NOT SUBSTITUTE. Pass the order to the manager": a
        # question inside a step may hold the rest of the step (`asked`, below)
        question = (clause.test or "").endswith("?")
        # "Check the history. IF AN OPEN JOB EXISTS: do not raise a new one. Add the notes to
        # it and end the call.": a case opened with a colon holds the rest of its item
        colon = clause.test is not None and _COLON_CASE.match(sentence) is not None
        if owner is not None and not else_of_owner:
            owner.then_nodes += made  # an item that opens with "If X," is X's branch
        elif owner is not None:
            owner = None
        elif (
            (not nodes or parallel or refusing or question or colon)
            and clause.test is not None
            and pending is not None
        ):
            # "3. Check the coverage. If there is none, do not book. Add the account to the
            # waiting list ...": what follows a refusal in its item is what to do instead
            opening = pending.outer or pending
            owner = opening if opening.then_goto is None else None
            instead_of = owner if refusing and nodes and not parallel else instead_of
            if question and nodes and not (parallel or refusing) and owner is not None:
                asked = (owner, len(owner.then_nodes))
        if _APPROVED_OVER.match(original.strip()):
            owner = None  # "Any refund over £300 needs approval: ...": that sentence is the case
        if notes and made and made[0].kind == "condition":
            # "Allocate a room of the type booked. If the guest arrives before 15:00, ...": a
            # condition shows its test, never its text; the words before it are a step of
            # their own
            nodes.append(_notes_step(builder, unit, notes, noted, level))
            notes, noted = [], []
        if notes and made:
            made[0].text = " ".join([*notes, made[0].text])
            notes, noted = [], []
        nodes += made
    if asked is not None:
        # ... when its answer only forbids ("DO NOT SUBSTITUTE": what follows is what to do
        # instead), or what follows ends the case (for every order that was not short, the
        # hand-over would end them all). Orders that go on after an answer that acts ("No
        # record? Create one. Check the IMEI ...") are every case's.
        question_of, first = asked
        answer, rest = question_of.then_nodes[:first], question_of.then_nodes[first:]
        forbids = bool(answer) and all(NEGATED.match(node.text) for node in answer)
        if not forbids and not any(node.kind in TERMINAL_KINDS for node in rest):
            question_of.then_nodes = answer
    for made in refused:
        _end_after_alternative(made)
    for cond in refused_else:
        last = cond.else_nodes[-1] if cond.else_nodes else None
        if last is not None and last.kind not in TERMINAL_KINDS and last.goto is None:
            last.goto = END  # after the refusal's own sentences, the case is over
    if notes and unit.numbered:
        nodes.append(_notes_step(builder, unit, notes, noted, level))
    for script in unit.extra:
        if nodes:
            nodes[-1].text = f'{nodes[-1].text.rstrip(":. ")}: "{" ".join(script.split())}"'
    if owner is not None and not owner.else_nodes and owner.else_goto is None:
        # "a. If X, do A. If Y, do B." then "b. Otherwise, ...": the otherwise answers X,
        # the condition the item opened with, not the one nested inside its branch.
        pending = owner
    _stop_after_the_branch(nodes)
    return nodes, pending


def _notes_step(
    builder: Builder, unit: Unit, notes: list[str], noted: list[str], level: int
) -> Node:
    """The sentences of an item that order nothing, as a step of their own (citing the first)."""
    return builder.node(
        "say", " ".join(notes), block_id=unit.block_id, quote=quote(noted[0]), level=level
    )


def _stop_after_the_branch(nodes: list[Node]) -> None:
    """ "If the caller isn't the patient, stop here. Be polite, explain why, don't book
    anything.": the case ends after its own sentences, not at "stop here" (nor after "stop and
    tell them to leave the car", with "Put the ticket to the Duty Controller" still to do)."""
    for node in nodes:
        if node.kind != "condition":
            continue
        for branch in (node.then_nodes, node.else_nodes):
            stops = [
                n
                for n in branch[:-1]
                if n.goto == END
                and (STOP_ALONE.match(n.text.strip()) or _STOP_AND_SAID.search(n.quote or ""))
            ]
            last = branch[-1] if branch else None
            if not stops or last is None or last.kind == "condition":
                continue
            for stop in stops:
                stop.goto = None
            if last.kind not in TERMINAL_KINDS and last.goto is None:
                last.goto = END


_STOP_AND_SAID = re.compile(r"\bstop(?:\s+(?:there|here))?\s*,?\s+(?:and|then)\s", re.I)
_COLON_CASE = re.compile(r"^\s*(?:if|when|where)\s+[^,:;]{3,120}:\s+\S", re.IGNORECASE)
# "...; otherwise B" and "..., otherwise B": the otherwise-side is a sentence of its own
_STRAY_ELSE = re.compile(
    r"^(?:otherwise|else|in\s+(?:all|any)\s+other\s+cases?|if\s+not)\b[,:]?\s*", re.IGNORECASE
)
_ORDINARY = 2_000  # characters: the longest sentence a backtracking form is tried on
# "Do not charge a fee over the phone - if the member insists, create a case": after the dash, a
# case of its own, never the end of a test that ends the order before it
_DASH_IF = re.compile(r"\s[-\u2013\u2014]\s+(?=(?:if|when|unless|where)\s)", re.IGNORECASE)
_SEMI_OTHERWISE = re.compile(
    r";\s+(?=(?:otherwise|if not|if no|else|in any other case|in all other cases)\b)|"
    r",\s+(?=otherwise\b)|"
    # "You can refund up to £25 yourself; over £25, raise a ticket instead": the other band
    r";\s+(?=" + re.sub(r"\(\?P<\w+>", "(?:", AMOUNT_CASE.pattern.removeprefix("^")) + ")|"
    # "Charges up to £300 you can raise yourself; anything over £300 goes to the Team Lead"
    r";\s+(?=(?:anything|everything|any\s+[a-z]+)\s+(?:over|above|more\s+than|under|below|"
    r"less\s+than)\s+[£$€]\s?\d)",
    re.I,
)
# "Spread it only if a request is on file; never over 60 months": the prohibition after the
# semicolon is no part of the test that ends the order ("If X, explain; do not register it"
# keeps its prohibition on the then-side)
_SEMI_NEVER = re.compile(
    r"^(?P<order>[^;]*?\s(?:if|when)\s[^;]+);\s+(?P<never>(?:never|do not|don't)\b.*)$", re.I | re.S
)
_ONLY_IF_OPENING = re.compile(r"^(\s*)only\s+(if|when)\b", re.IGNORECASE)
# "Only if the repair will cost more than £50 does it go to the area manager, who ...": the
# test, then what is done in it, said the other way round
_ONLY_IF_DOES = re.compile(
    r"^(?P<lead>\s*)If\s+(?P<test>[^,;]{3,120}?)\s+(?:does|do)\s+(?:it|they|this|the\s+\w+)\s+"
    r"go\s+to\s+(?P<rest>\S.*)$",
    re.IGNORECASE | re.DOTALL,
)


def _only_if_does(match: re.Match[str]) -> str:
    """ "If the repair will cost more than £50 does it go to the area manager" (after "Only
    if" became "If") -> "If the repair will cost more than £50, pass it to the area manager"."""
    return f"{match['lead']}If {match['test']}, pass it to {match['rest']}"


# "Do not extend a rental where the agreement shows a balance": the "where" is the test
_FORBIDDEN_WHERE = re.compile(r"^(\s*(?:do not|don't|never)\b[^,;]*?)\s+where\s+", re.I)
# "Yes → replace it", "if no -> book a repair": an arrow after an answer is its colon
_ANSWER_ARROW = re.compile(r"\b(yes|no)\s*(?:\u2192|->|=>)\s*", re.IGNORECASE)
# "Refund it if the parcel is lost, or replace it if it arrived damaged": two cases
_OR_ACTION = re.compile(r",\s+or\s+(?=([a-z]+)\b)", re.IGNORECASE)
_TESTS = re.compile(r"\b(?:if|when|unless)\b", re.IGNORECASE)
_TRAILING_TEST = re.compile(r"\s(?:if|when|unless)\s", re.IGNORECASE)  # after the order


def _alternatives(parts: list[str]) -> list[tuple[str, str]]:
    """Each part (its reading, and its words), split where a test covers only one of its orders:
    "Refund it if lost, or replace it if damaged" is two cases (the second "Alternatively, ...",
    a case of its own); "set up the freeze, add the fee if one applies, and send the email" is
    three sentences, of which only the fee depends on the test."""
    out: list[tuple[str, str]] = []
    todo = [(part, part) for part in reversed(parts)]
    while todo:
        reading, part = todo.pop()
        match = _OR_ACTION.search(part)
        comma = _COMMA_ACTION.search(part)
        then = _AND_THEN_ACTION.search(part)
        if (
            match is not None
            and match.group(1).casefold() in INSTRUCTION_VERBS
            and _TESTS.search(part[: match.start()])
            and _TESTS.search(part[match.end() :])
        ):
            first, second = part[: match.start()], part[match.end() :]
            out += [(f"{first}.", first), (f"Alternatively, {second}", second)]
        elif comma is not None and _test_on_last(part[: comma.start()], part[comma.end() :]):
            first, second = part[: comma.start()], part[comma.end() :]
            todo += [(second[0].upper() + second[1:], second), (f"{first}.", first)]
        elif then is not None and _ends_in_test(part[: then.start()], part[then.end() :]):
            first, second = part[: then.start()], part[then.end() :]
            todo += [(second[0].upper() + second[1:], second), (f"{first}.", first)]
        else:
            out.append((reading, part))
    return out


_COMMA_ACTION = re.compile(r",\s+(?=([a-z]+)\b)", re.IGNORECASE)


def _test_on_last(first: str, second: str) -> bool:
    """True for "<order>, <order> if <test>": two orders, the test after the second only."""
    verb = second.split(None, 1)[0].casefold() if second.split() else ""
    return (
        verb in INSTRUCTION_VERBS
        and is_order(first)
        and _TESTS.search(first) is None
        and _TRAILING_TEST.search(second) is not None
    )


_AND_THEN_ACTION = re.compile(r",\s+(?:and|then)\s+(?=([a-z]+)\b)", re.IGNORECASE)


def _ends_in_test(first: str, second: str) -> bool:
    """True for "<order> ... if <test>" before ", and <order>" with no test of its own."""
    verb = second.split(None, 1)[0].casefold() if second.split() else ""
    return (
        verb in INSTRUCTION_VERBS
        and is_order(first)
        and _TRAILING_TEST.search(first) is not None
        and _TESTS.search(second) is None
    )


# "Nothing else is needed", "No further action is required": the case is done here
_NOTHING_MORE = re.compile(
    r"^(?:(?:nothing\s+(?:else|more|further)\s+(?:is\s+)?(?:needed|required|to\s+do)|"
    r"no\s+(?:further|other)\s+action\s+(?:is\s+)?(?:needed|required))\b|"
    r"(?:done|finished|that'?s\s+it|that\s+is\s+all)[.!]?$)",
    re.IGNORECASE,
)


def _says_how(text: str) -> bool:
    """A sub-item that says how its step is done: an order, not a prohibition or a note ("- Never
    exchange tickets for a show that has started" under "Charge the fee, then move the seats")."""
    text = text.strip()
    # "- If flagged as stolen, ..." under "Check the IMEI against the register", "- Same-day
    # slots: add £25" under "Book the slot": a case of what the step finds or does, not how it
    # is done
    return (
        is_instruction(text)
        and NEGATED.match(text) is None
        and not _CASE_OPENING.match(text)
        and not _LABELLED.match(text)
        and not _ARROWED.match(text)  # "- Not covered => explain which part excludes it"
    )


_ARROWED = re.compile(r"^[^=>\u2192]{2,80}?\s(?:=>|->|\u2192)\s+\S")


_CASE_OPENING = re.compile(r"^(?:if|when|unless|otherwise|where)\b", re.IGNORECASE)
_LABELLED = re.compile(r"^[^:;.!?]{2,60}:\s+\S")


def _clauses(text: str) -> list[tuple[str, str]]:
    """The sentences of a unit, with "...; otherwise ..." as two, "Only if X, do Y" as "If",
    "Unless X, A" as "If it is not true that X, A", and "X? Yes: A. No: B." as "If X, A." and
    "Otherwise, B.".

    "Restore it yourself; otherwise open a ticket" has two branches: read as one sentence, the
    otherwise would run on the then-branch. "Only if X, do Y" is "If X, do Y" for the steps; the
    routine's Rules keep the "only". A question answered by "Yes:" tests the question itself.
    Each reading comes with the verbatim text it is read from (what its steps quote).
    """
    out: list[tuple[str, str]] = []
    for sentence in (
        part for whole in split_sentences(text) for part in _DASH_IF.split(whole) if part.strip()
    ):
        parts = _SEMI_OTHERWISE.split(sentence)
        # the forms below are read in sentences of ordinary length only: their patterns
        # backtrack, and a sentence of a megabyte is no form (it stays as it is written)
        ordinary = len(sentence) <= _ORDINARY
        if (
            ordinary
            and len(parts) == 1
            and ";" in sentence
            and (never := _SEMI_NEVER.match(sentence))
            and is_order(sentence)
        ):
            parts = [never["order"], never["never"][0].upper() + never["never"][1:]]
        for reading, part in _alternatives(parts):
            reading = _ANSWER_ARROW.sub(r"\1: ", reading)
            reading = _FORBIDDEN_WHERE.sub(r"\1 if ", reading)
            reading = _ONLY_IF_OPENING.sub(
                lambda m: f"{m.group(1)}{m.group(2).capitalize()}", reading
            )
            reading = _ONLY_IF_DOES.sub(_only_if_does, reading)
            reading = _ROLE_SHALL.sub(_role_order, reading)
            if ordinary:
                reading = _approval_as_if(reading)
                reading = _FOR_ONLY.sub(_for_only_as_if, reading)
            reading = _UNLESS.sub(_unless_as_if, reading)
            reading = _TRAILING_UNLESS.sub(_trailing_unless_as_if, reading)
            out.append((reading, part))
    return _answered_questions(out)


# "The Adviser shall look up the order", "..., the Arranger shall then dispatch the team", "Each
# morning the Administrator shall review the register": an
# order to whoever follows the SOP, in the formal third person (never "the Branch Manager shall
# approve", which is someone else's part)
_ROLE_SHALL = re.compile(
    r"(?P<lead>^\s*(?:(?:each|every)\s+\w+,?\s+|(?:otherwise|in\s+any\s+other\s+case|"
    r"in\s+all\s+other\s+cases),?\s+)?|[,;:]\s+(?:and\s+|then\s+|so\s+)?)"
    rf"{AGENT_ROLE}"
    r"\s+(?:(?:shall|must|should|will|is\s+to)\s+(?P<neg>not\s+)?(?:then\s+|also\s+|first\s+)?"
    r"(?P<verb>[a-z]+)|(?:then\s+|also\s+)?(?P<does>[a-z]+(?:es|s)))\b|"
    r"(?P<and>\band\s+)(?:shall|must)\s+(?P<and_neg>not\s+)?",
    re.IGNORECASE,
)


def _role_order(match: re.Match[str]) -> str:
    if match.group("and"):  # "decline the claim and shall not offer a refund", "... and must"
        return f"{match.group('and')}{'do not ' if match.group('and_neg') else ''}"
    verb = match.group("verb") or _base_verb(match.group("does"))
    if verb.casefold() not in INSTRUCTION_VERBS or verb.casefold() == "be":
        return match.group(0)
    lead = match.group("lead")
    start = not lead.strip()
    if lead.strip() and lead.strip()[0] not in ",;:":
        lead = f"{lead.strip().rstrip(',')}, "  # "Each morning, review the register"
    if match.group("neg"):
        return f"{lead}{'Do' if start else 'do'} not {verb.casefold()}"
    return f"{lead}{verb.capitalize() if start else verb.casefold()}"


# "Refunds of more than £1,500 are approved by the Marina Manager before payment: raise them to
# the Marina Manager", "A damage charge over £150 needs the Shop Manager's approval before you
# charge the card": a threshold and what it needs, as the case it is
_APPROVED_OVER = re.compile(
    r"^(?P<lead>\s*)(?:(?:any|a|an|the|all)\s+)?(?P<thing>[a-z][\w-]*(?:\s+[a-z][\w-]*){0,2}?)\s+"
    r"(?P<cmp>over|above|of\s+more\s+than|of\s+over|more\s+than|exceeding|in\s+excess\s+of)\s+"
    r"(?P<amount>(?:[£$€]\s?|(?:GBP|USD|EUR)\s)[\d,]+(?:\.\d+)?)(?:\s+gross)?\s+(?:also\s+)?"
    r"(?:(?P<need>needs?|requires?)\s|(?:is|are|must\s+be)\s+approved\s+by\s|"
    r"(?P<goes>go(?:es)?\s+(?:straight\s+)?to|(?:is|are)\s+(?:passed|referred|sent)\s+to)\s)",
    re.IGNORECASE,
)  # the prefix only: what follows is split in plain code, never by backtracking


# "Take the £50 security deposit for hire caravans only": the order holds only in that case
_FOR_ONLY = re.compile(
    r"^(?P<lead>\s*)(?P<action>(?P<verb>[A-Za-z]+)\b[^;:]*?)\s+(?:for|on)\s+"
    r"(?P<case>[a-z][\w' -]{2,40}?)\s+only(?P<end>[.!]?)\s*$",
    re.IGNORECASE,
)


def _for_only_as_if(match: re.Match[str]) -> str:
    if match.group("verb").casefold() not in INSTRUCTION_VERBS:
        return match.group(0)
    action = match.group("action")
    return (
        f"{match.group('lead')}If it is for {match.group('case')}, "
        f"{action[0].lower()}{action[1:]}{match.group('end') or '.'}"
    )


_FOR_APPROVAL = re.compile(
    r"^(?P<who>[^.;:]{3,60}?)\s+for\s+(?:(?:their|his|her)\s+)?(?:approval|sign-off|"
    r"authori[sz]ation|an?\s+ok)(?P<then>.*)$",
    re.IGNORECASE | re.DOTALL,
)


def _approval_as_if(reading: str) -> str:
    """The threshold sentence as "If the <thing> is over <amount>, <what to do>."; as it is
    when it says no more than who approves ("Refunds over £50 are approved by Finance.")."""
    match = _APPROVED_OVER.match(reading)
    if match is None:
        return reading
    thing = match.group("thing").casefold()
    thing = thing[:-1] if thing.endswith("s") and not thing.endswith("ss") else thing
    cmp = re.sub(r"^of\s+", "", match.group("cmp").casefold())
    # "Anything more than £10 needs Gareth to OK it": "it is more than £10"
    said = "it" if thing in ("anything", "everything", "any") else f"the {thing}"
    test = f"{said} is {cmp} {match.group('amount')}"
    if match.group("goes"):
        rest = reading[match.end() :].strip()
        if asked := _FOR_APPROVAL.match(rest):
            # "Refunds over £250 go to the Shop Manager for approval first": their approval
            who, then = asked.group("who"), asked.group("then")
            return f"{match.group('lead')}If {test}, request approval from {who}{then}"
        # "Anything over £50 goes to the duty manager - stop and escalate": the hand-over
        return f"{match.group('lead')}If {test}, pass it to {rest}"
    said, mark, action = reading[match.end() :].partition(":")
    if not mark:
        said, mark, action = said.partition(";")
    action, said = action.strip().rstrip(".!").strip(), said.strip().rstrip(".!").strip()
    if action:
        return f"{match.group('lead')}If {test}, {action}."
    if match.group("need") and CONSENT.search(said):  # "the duty manager's OK"
        return f"{match.group('lead')}If {test}, request {said}."
    return reading


def _base_verb(does: str) -> str:
    """ "creates" -> "create", "refunds" -> "refund", "passes" -> "pass", "applies" -> "apply"."""
    for ending, base in (("ies", "y"), ("sses", "ss"), ("shes", "sh"), ("ches", "ch"), ("s", "")):
        stem = does[: -len(ending)] + base
        if does.casefold().endswith(ending) and stem.casefold() in INSTRUCTION_VERBS:
            return stem
    return does


# "Unless X, A": A runs when X does not hold (the comma before the action ends the test).
_UNLESS_WORD = r"(?:unless|except\s+(?:when|where|if))"
_UNLESS = re.compile(
    rf"^(?P<lead>\s*){_UNLESS_WORD}\s+(?P<test>[^,;]{{3,}}?),\s*(?P<action>\S.*)$", re.I
)


def _unless_as_if(match: re.Match[str]) -> str:
    test = match.group("test").strip()
    which = _IN_WHICH_CASE.match(match.group("action"))
    if which is not None:
        # "... - unless every item was damaged, in which case refund the delivery charge too":
        # the exception is the case, and what follows is done in it
        return f"{match.group('lead')}If {test}, {match.group('action')[which.end() :]}"
    return f"{match.group('lead')}If it is not true that {test}, {match.group('action')}"


_IN_WHICH_CASE = re.compile(r"in\s+which\s+case,?\s+", re.IGNORECASE)


# "Cancel the order unless it has shipped.": the same test, written after the action.
_TRAILING_UNLESS = re.compile(
    rf"^(?P<lead>\s*)(?P<action>(?P<verb>[A-Za-z]+)\b[^;]*?),?\s+{_UNLESS_WORD}\s+"
    r"(?P<test>[^,;]{3,}?)"
    r"(?P<end>[.!]?)\s*$",
    re.IGNORECASE,
)


def _trailing_unless_as_if(match: re.Match[str]) -> str:
    if match.group("verb").casefold() not in INSTRUCTION_VERBS:
        return match.group(0)
    action = match.group("action")
    test = match.group("test").strip()
    return f"{match.group('lead')}If it is not true that {test}, {action[0].lower()}{action[1:]}."


_IF_ANSWER = re.compile(r"^if\s+(?:(?P<no>not|no)|so|yes)\s*,\s*(?P<rest>\S.*)$", re.IGNORECASE)
# "Yes: route it", "A: NO: book somewhere to stay" (a call script's answer line)
_ANSWER = re.compile(
    r"^(?:a\s*:\s*)?(?P<answer>yes|no)\s*(?:->|=>|\u2192|[:,\-\u2013\u2014])\s*(?P<rest>\S.*)$",
    re.IGNORECASE,
)


def _next_key(key: str | None) -> str | None:
    """The SOP's number of the step after `key` ("2" -> "3"), if it is a plain number."""
    return str(int(key) + 1) if key is not None and key.isdigit() else None


_ANSWER_LINE = re.compile(rf"^\s*(?:a\s*:\s*)?{ANSWER}", re.IGNORECASE)
_EXCEPT_WHERE = re.compile(
    r"\b(?:except\s+(?:where|when|if)|unless|only\s+(?:if|when))\s+(?P<test>[^.;]{3,160})",
    re.IGNORECASE,
)
_THEN_ORDER = re.compile(r"^then,?\s+(?P<rest>[a-z].*)$", re.IGNORECASE | re.DOTALL)
_NO_TO = re.compile(r"^the answer to '(?P<question>.+)' is no$")
_PUT_QUESTION = re.compile(
    r"^(?:(?:[^\"“”]{0,40}?\b)?ask(?:\s+(?:them|him|her|the\s+\w+))?\s*[:,]?|q\s*[:.])\s*[\"“]"
    r"(?P<question>[^\"“”]+\?)[\"”]?$",
    re.IGNORECASE,
)


def _answered_questions(sentences: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """ "Is it over 10 days?" "Yes: route it." "No: approve it." -> "If <question>, route it.",
    "Otherwise, approve it." (a "No:" first becomes the then-side of the negated question).
    Each keeps the answer's own words as its verbatim text."""
    out: list[tuple[str, str]] = []
    question: str | None = None
    answered = False  # the question's "Yes:" came, its "No:" may follow
    yes_at: int | None = None  # where the reading of the question's "Yes:" is
    no_first = False  # the question's "No:" came first, its "Yes:" may follow
    for sentence, verbatim in sentences:
        answer = _ANSWER.match(sentence.strip()) if question is not None else None
        # "Short? Do not substitute. Pass the order to the manager.": the orders that follow a
        # question of a few words are what to do when it holds, as after "Yes:"
        follows = (
            bool(out)
            and out[-1][0].strip() == question
            and is_instruction(sentence)
            and not _CASE_OPENING.match(sentence.strip())  # "If not, ...": its own answer
        )
        if answer is None and not answered and _asks_yourself(question) and follows:
            answer = _ANSWER.match(f"yes: {sentence.strip()}")
        said = _IF_ANSWER.match(sentence.strip()) if question is not None else None
        if answer is None and said and bool(out) and out[-1][0].strip() == question:
            # "Is the account up to date? If not, the arrears have to be cleared first."
            answer = _ANSWER.match(f"{'no' if said['no'] else 'yes'}: {said['rest']}")
        if answer is None:
            put = _PUT_QUESTION.match(sentence.strip())
            if put is not None:
                # 'Listen, then ask: "Has this been put right already?"': the question asked
                sentence = put["question"]
            asking = sentence.strip().endswith("?")
            if not (question is not None and answered) or asking:
                # "X? Yes: do not cancel. Escalate it. No: continue.": the yes-side's
                # sentences keep the question open for its "No:", until another question
                question = sentence.strip() if asking else None
                answered = False
            out.append((sentence, verbatim))
            continue
        answered = True
        rest, asked = answer.group("rest"), bool(out) and out[-1][0].strip() == question
        if answer.group("answer").casefold() == "yes" and no_first and not asked:
            reading, no_first = f"Otherwise, {rest}", False
        elif answer.group("answer").casefold() == "yes":
            reading = f"If {question}, {rest}" if asked else f"If so, {rest}"
            yes_at = len(out) - 1 if asked else len(out)
        else:
            # "YES => ask them to ... If they can't, send a plumber. NO => go to Step 3": the
            # no is the question's, never the otherwise of the test between
            between = out[yes_at + 1 :] if yes_at is not None else []
            nested = any(_CASE_OPENING.match(said.strip()) for said, _ in between)
            reading = (
                f"If the answer to {question!r} is no, {rest}"
                if asked or nested
                else f"Otherwise, {rest}"
            )
        if asked:
            out[-1] = (reading, verbatim)  # the question becomes the condition
        else:
            out.append((reading, verbatim))
        if answer.group("answer").casefold() == "no":
            # "A: NO => book somewhere to stay. YES => go to Step 6": a no first leaves the
            # yes to come, as its otherwise
            no_first = asked
            question = question if asked else None
            yes_at = None
    return out


def _asks_yourself(question: str | None) -> bool:
    """ "Short?", "Vet treatment needed?", "Found on the system?": a question of a few words the
    agent answers, never one put to the customer ("Ask if ...?", a quoted line)."""
    # "Is it wear from normal use, or a manufacturing fault?", "Child or vulnerable person
    # locked inside, or something on the hob?": cases listed with "or", longer
    listed = bool(question and (_YES_NO.match(question) or _CASES_OR.search(question)))
    words = _MAX_QUESTION_WORDS * 2 if listed else _MAX_QUESTION_WORDS
    return (
        question is not None
        and len(question.split()) <= words
        and not question.lstrip().startswith(('"', "'", "\u201c", "\u2018"))
        and not is_instruction(question)
    )


_MAX_QUESTION_WORDS = 8
_CASES_OR = re.compile(r"^(?!.*\byou\b)[A-Z][^?]*,\s+or\s+[^?]+\?$")
# "Is it wear from normal use, or a manufacturing fault?": a question that asks whether, longer
_YES_NO = re.compile(r"^(?:is|are|was|were|has|have|does|did)\s+(?:it|this|that|the)\b", re.I)


# "cancel it", never "to settle it" (what the purpose clause's "it" is, the sentence says), nor
# "switch it off", "put it back": a thing at hand, whatever the section is about
_VERB_IT = re.compile(
    r"(?<!\bto\s)\b([A-Za-z]+)\s+it\b(?!['\u2019])"  # "check it's really them": "it is"
    r"(?!\s+(?:is|was|has|had|to|will|off|on|up|down|back|out|over|away)\b)"
)


def _named_it(sentence: str, subject: str | None) -> str:
    """ "..., cancel it." in the section "Cancel a reservation" is "..., cancel the reservation."

    Only where "it" is the object of an instruction verb, so that the tool its words mean can
    be bound.
    """
    if subject is None:
        return sentence

    def name(match: re.Match[str]) -> str:
        verb = match.group(1)
        if verb.casefold() not in INSTRUCTION_VERBS or canonical_words(verb) == canonical_words(
            subject
        ):
            return match.group(0)  # "Never refund it" in "Issuing a refund": not the refund
        return f"{verb} the {subject}"

    return _VERB_IT.sub(name, sentence)


_SO_DO = re.compile(r"\b(?:so|then|and)\s+([a-z]+)\b", re.IGNORECASE)
_RULE_THEN_ACTION = re.compile(r"^(?P<rule>[^;\u2014]+?)(?:;|\s\u2014)\s*(?P<action>\S.*)$")
# "... — send it to the Fraud queue": an escalation holds only where its rule applies
_HANDS_ON = re.compile(r"^(?:escalate|send|refer|transfer|pass|route|hand)\b", re.IGNORECASE)


def _prohibition_as_condition(sentence: str) -> str:
    """ "A reservation with a flown segment cannot be cancelled; transfer to a human agent."

    The action after a prohibition holds only when the prohibition applies, so the sentence is
    read as "If this rule applies to the request: <prohibition>, <action>", never as an action
    for every case.
    """
    match = _RULE_THEN_ACTION.match(sentence.strip())
    if match is None:
        return sentence
    rule, action = match.group("rule").strip(), match.group("action")
    if _CASE_OPENING.match(rule):
        # "Where there is a court order, do not add anyone — transfer the request to the DSL":
        # the rule tests its own case, and the action is that case's
        return f"{rule}; {action}"
    orders = is_instruction(action) or any(
        verb.casefold() in INSTRUCTION_VERBS for verb in _SO_DO.findall(action)
    )  # "...; the charge is recalculated, so explain that and close the contact"
    # "Never end a trip for a rider with two trips open — send it to the Fraud queue": even a
    # prohibition said as an order only sends on the cases it names
    ordered = is_instruction(rule) and not _HANDS_ON.match(action.strip())
    if rule_kind(rule) != "never" or ordered or not orders:
        return sentence
    return f"If {RULE_APPLIES}{rule[0].lower()}{rule[1:]}, {action}"


_DENIAL = re.compile(r"^(?:deny|decline|reject|refuse|turn\s+down)\b", re.IGNORECASE)
# "Don't book anything", "do not send anything else": nothing more is done for the request
_NOTHING_DONE = re.compile(
    r"^(?:(?:do\s+not|don't|never)\s+[a-z]+\s+anything(?:\s+else)?|"
    # "Thank them, make no change and ask the account holder to contact us"
    r"make\s+no\s+(?:changes?|amendments?)(?:\s+to\s+[\w' ]{1,40})?|"
    r"(?:change|record|book|log|charge)\s+nothing(?:\s+(?:yet|else|for\s+now))?)\s*[.!]?$",
    re.IGNORECASE,
)


def _denies(builder: Builder, clause: Clause) -> bool:
    """ "If the policy was not active, deny the claim and explain why": the request is refused,
    so that branch ends the case (the SOP would say if anything else followed). "If the illness
    started in the waiting period, explain this; do not register the claim" forbids the write a
    catalog tool does: the branch ends too, never on into the step that registers it."""
    failed = _FAILED_CHECK.search(clause.test or "") is not None
    for action in clause.actions:
        text = action.text.strip()
        if _DENIAL.match(text) or (action.kind == "say" and _NOT_YET.search(text)):
            return True  # "explain that it must be extended first": not now, the case is over
        if action.kind == "say" and _REFUSED_PASSIVE.search(text):
            return True  # "the application must be refused": said of the request, as an order
        forbidden = _FORBIDDEN_ACTION.match(text)
        if forbidden and (failed or _write_tool(builder, forbidden["what"])):
            return True  # "If any of the three do not match, do not discuss ...": no going on
        if _NOTHING_DONE.match(text):
            return True  # "Say sorry, we don't cover it. Don't book anything."
        none = _NONE_DONE.search(text) if action.kind == "say" else None
        if none and any(
            _write_tool(builder, f"{verb} a {none['thing']}") for verb in verb_stems(none["done"])
        ):
            return True  # "the warranty has lapsed and no claim shall be opened"
    return False


# "no claim shall be opened", "no refund is to be issued": the write a tool does, forbidden
_NONE_DONE = re.compile(
    r"\bno\s+(?P<thing>[a-z][\w-]*(?:\s+[a-z][\w-]*)?)\s+(?:shall|may|can|will|should|must|"
    r"is\s+to|are\s+to)\s+be\s+(?P<done>[a-z]+ed)\b",
    re.IGNORECASE,
)


_FORBIDDEN_ACTION = re.compile(
    r"^(?:do not|don't|never|you\s+(?:must\s+not|mustn't|may\s+not|cannot|can't|should\s+not))"
    r"\s+(?P<what>\S.*)$",
    re.IGNORECASE,
)
_REFUSED_PASSIVE = re.compile(
    r"^(?:the|this|that|their|his|her|its)\s+[\w -]{2,30}?\s+(?:must|should|will|is\s+to)\s+be\s+"
    r"(?:refused|declined|rejected|denied|turned\s+down)\b",
    re.IGNORECASE,
)


_SUBJECT_END = re.compile(
    r"\s(?:is|are|was|were|has|have|had|does|do|did|can|will)(?:n't|\s+not)?\b|\scannot\b",
    re.IGNORECASE,
)
_POINTS_BACK = frozenset(["it", "they", "this", "that"])


def _same_subject(first: str, second: str) -> bool:
    """True when two tests say something of the same thing, one of which holds: "the refund is
    £300 or less" and "it is more than £300", "it is for a late delivery" and "it is for a
    missing item", "the member has enough credits" and "they don't"."""
    one, two = _SUBJECT_END.search(first), _SUBJECT_END.search(second)
    if one is None or two is None:
        return False
    subject, other = (
        first[: one.start()].strip().casefold(),
        second[: two.start()].strip().casefold(),
    )
    if not subject or first.strip().casefold() == second.strip().casefold():
        return False
    if other != subject and other not in _POINTS_BACK:
        return False
    # one of them holds, never both ("the customer is a member" and "... is angry" can)
    denied = bool(_NEGATIVE.search(first)) != bool(_NEGATIVE.search(second))
    amounts = bool(_AMOUNT_TEST.search(first)) and bool(_AMOUNT_TEST.search(second))
    kinds = bool(_KIND_TEST.match(first, one.start())) and bool(
        _KIND_TEST.match(second, two.start())
    )
    # "it is the appliance itself" / "it is the fitting": what the fault is, one thing
    named = (
        subject in _WHAT_IT_IS
        and bool(_NAMED_TEST.match(first, one.start()))
        and bool(_NAMED_TEST.match(second, two.start()))
    )
    return denied or amounts or kinds or named


# "is £300 or less" / "is more than £300": bands of one amount, one of which holds
_AMOUNT_TEST = re.compile(
    r"\b(?:over|above|under|below|more\s+than|less\s+than|fewer\s+than|up\s+to|at\s+least|"
    r"at\s+most|within|or\s+(?:less|more|fewer|over|under))\b|\d",
    re.IGNORECASE,
)
# "is for a late delivery" / "is for a missing item": the one reason a request is for
_KIND_TEST = re.compile(r"\s(?:is|are)\s+for\s", re.IGNORECASE)
_NAMED_TEST = re.compile(r"\s(?:is|are)\s+(?:the|an?)\s", re.IGNORECASE)
_WHAT_IT_IS = frozenset(
    {"it", "this", "that", "the fault", "the problem", "the issue", "the cause"}
)


def _one_or_other(first: str, second: str) -> bool:
    """True when of two tests in a row at most one holds (`_complement`, `_wanted_apart`)."""
    return _complement(first, second) or _wanted_apart(first, second)


# "they want a break": what someone wants, never "they want it"
_WANTS = re.compile(r"\swants?\s+(?!(?:it|this|that)\b)\S", re.IGNORECASE)


def _wanted_apart(first: str, second: str) -> bool:
    """True when two tests say what the same person wants, one thing or another: "they want a
    break" and "they want to leave" (what the request is, never both)."""
    one, two = _WANTS.search(first), _WANTS.search(second)
    if one is None or two is None or _NEGATIVE.search(first) or _NEGATIVE.search(second):
        return False
    who = first[: one.start()].strip().casefold()
    return (
        bool(who)
        and who == second[: two.start()].strip().casefold()
        and first.strip().casefold() != second.strip().casefold()
    )


def _complement(first: str, second: str) -> bool:
    """True when the second test is the first one denied: "the member has enough credits" and
    "they don't have enough credits"."""
    if not _same_subject(first, second):
        return False
    return bool(_NEGATIVE.search(first)) != bool(_NEGATIVE.search(second))


def _refuses_write(builder: Builder, clause: Clause) -> bool:
    """True when the clause forbids a catalog write ("Do not take payment in this case"), or
    anything at all ("Don't book anything")."""
    if any(_NOTHING_DONE.match(a.text.strip()) for a in clause.actions):
        return True
    forbidden = (_FORBIDDEN_ACTION.match(a.text.strip()) for a in clause.actions)
    return any(_write_tool(builder, f["what"]) is not None for f in forbidden if f)


def _refuses_call(builder: Builder, clause: Clause, nodes: list[Node]) -> bool:
    """True when the clause forbids a write one of `nodes` calls."""
    called = {n.tool_call.tool for n in nodes if n.tool_call is not None}
    forbidden = (_FORBIDDEN_ACTION.match(a.text.strip()) for a in clause.actions)
    return any(_write_tool(builder, f["what"]) in called for f in forbidden if f)


# what has to happen before the request can be met: "it must be extended first"
_NOT_YET = re.compile(
    r"\b(?:must|needs?\s+to|has\s+to|have\s+to)\s+be\s+\w+(?:\s+\w+){0,5}\s+first\b|"
    r"\bcannot\s+be\s+\w+\s+until\b|"
    # "we can't book a delivery yet"
    r"\b(?:we|you)\s+(?:can't|can\u2019t|cannot)\s+\w+(?:\s+\w+){0,4}?\s+yet\b",
    re.IGNORECASE,
)
# a check that failed: identity or details that do not match, a verification that fails
_FAILED_CHECK = re.compile(
    r"\b(?:do(?:es)?\s+not|don't|doesn't|cannot|can't|fails?|failed)\s+"
    r"(?:match|verify|be\s+verified|be\s+confirmed|pass)\b|\b(?:fails?|failed)\b|"
    # "If the caller is not the account holder": who asks is not who may
    r"\b(?:caller|customer|person|requester|contact)\s+(?:is|are)\s+not\s+(?:the|a|an)\b",
    re.IGNORECASE,
)


def _end_when_done(builder: Builder, cond: Node, level: int, before: Node | None = None) -> None:
    """End a branch that does what replaces the procedure, or leaves it to another team.

    "2. If the pay date is within 3 days, add the amount to the next payroll instead": a step
    of the procedure (not a sub-item, whose "instead" is a fallback of that step) done another
    way, never also the way that follows. "... open a Security case and wait": nothing more
    happens here until the team answers.
    """
    nodes = cond.then_nodes
    last = nodes[-1] if nodes else None
    if last is None or last.kind in TERMINAL_KINDS or last.goto is not None:
        return
    writes = [
        n
        for n in nodes
        if n.tool_call is not None
        and (tool := builder.tools.catalog.get(n.tool_call.tool)) is not None
        and tool.access == "write"
    ]
    instead = level == 0 and any(_INSTEAD.search(n.text) for n in writes)
    # "Where the size is unavailable, offer the next size up. If the Tenant declines, add them
    # to the waiting list": what was asked for cannot be had, and its stand-in was turned down
    instead = instead or (
        bool(_DECLINES.search(cond.test or ""))
        and before is not None
        and before.kind == "condition"
        and bool(_UNAVAILABLE.search(before.test or ""))
    )
    waits = bool(writes) and _WAIT.search(last.text) is not None
    team = next((t for n in reversed(writes) if (t := n.target or _team_named(n.text))), None)
    called_back = bool(writes) and _CALL_BACK.search(last.text) is not None
    if called_back and team is not None and not instead:
        # "raise a task for the Lab Liaison team to chase the lab, and tell the customer we'll
        # call": the case is with that team now
        ending = builder.node(
            "escalate", "The case is with the team; this routine ends here.", target=team
        )
        ending.level, ending.block_id, ending.quote = last.level, last.block_id, last.quote
        nodes.append(ending)
    elif instead or waits:
        last.goto = END


_DECLINES = re.compile(
    r"\b(?:declines?|refuses?|turns?\s+(?:it|this|that|them)?\s*down|does\s+not\s+(?:accept|want)|"
    r"doesn't\s+(?:accept|want)|do\s+not\s+(?:accept|want)|don't\s+(?:accept|want)|says?\s+no)\b",
    re.IGNORECASE,
)
_UNAVAILABLE = re.compile(
    r"\b(?:unavailable|not\s+available|out\s+of\s+stock|sold\s+out|fully\s+booked|"
    r"no\s+longer\s+(?:available|offered|made)|cannot\s+be\s+(?:supplied|provided|booked)|"
    r"(?:is|are)\s+full)\b",
    re.IGNORECASE,
)


def _team_named(text: str) -> str | None:
    """The team a task or ticket is for: "raise a task for the Lab Liaison team" -> Lab Liaison."""
    named = _FOR_TEAM.search(text)
    return named["who"] if named else None


_FOR_TEAM = re.compile(
    r"\b(?:for|to)\s+(?:the|our)\s+(?P<who>(?:[A-Z][\w&'-]*\s+){1,3}(?i:team|desk|department))\b"
)
_INSTEAD = re.compile(r"\binstead\b", re.IGNORECASE)
_WAIT = re.compile(r"\band\s+wait\b|^wait\b", re.IGNORECASE)
# "tell the customer we'll call within 2 working days": the case waits for the team's call back
_CALL_BACK = re.compile(
    r"\b(?:we|they|someone|the\s+[\w-]+(?:\s+[\w-]+)?\s+team)(?:'ll|\s+will)\s+(?:call|phone|ring|"
    r"contact|get\s+back|be\s+in\s+touch)\b",
    re.IGNORECASE,
)


def _asked_last(pending: Node | None) -> Node | None:
    """The yes/no question a condition's branch ends with ("ask whether they now want one")."""
    last = pending.then_nodes[-1] if pending is not None and pending.then_nodes else None
    if last is None or last.kind != "ask" or " whether " not in last.text.split(":")[0]:
        return None
    return last


def _handed_by_call(actions: list[Action], index: int) -> bool:
    """True when the escalation at `index` follows the call that hands the case to its team and
    nothing after it goes anywhere ("..., then go to step 8" would carry on)."""
    before = actions[index - 1] if index else None
    return (
        before is not None
        and before.kind == "tool_call"
        and before.target is not None
        and before.target == actions[index].target
        and all(a.kind in ("tool_call", "say") and a.goto is None for a in actions[index + 1 :])
    )


# the subject of a statement and its verb: "Cash settlement is permitted only where ...",
# "Level 1 agents do not ..."
_STATED = re.compile(
    r"^(?:[\w'-]+\s+){1,4}?(?:is|are|may|can|cannot|can't|must|shall|should|do|does|will)\b",
    re.IGNORECASE,
)


def _stated_rule(action: Action) -> Action:
    """ "Level 1 agents do not waive fees", "the agent does not set up any plan", "Cash
    settlement is permitted only where ...": what someone may (not) do, never a call of the tool
    it names. An instruction ("Refund it, never in cash") keeps its call."""
    text = action.text.strip()
    first = text.split(None, 1)[0].casefold() if text else ""
    if (
        action.kind != "tool_call"
        or first in INSTRUCTION_VERBS
        or rule_kind(text) not in ("never", "only_if")
        or not _STATED.match(text)
    ):
        return action
    return Action("say", action.text, action.quote)


def _prohibits(action: Action) -> bool:
    """ "Do not set it up yourself", "the agent does not set up any plan": a prohibition."""
    text = action.text.strip()
    return action.kind == "say" and (
        _FORBIDDEN_ACTION.match(text) is not None
        or _AGENT_DOES_NOT.match(text) is not None
        or rule_kind(text) == "never"
    )


# a test that only points back at the one before it: "if it is", "if so", "if they do"
_THIS_CASE = re.compile(r"\bin\s+(?:this|that|such\s+a|these|those|such)\s+cases?\b", re.I)
_ELLIPTIC = re.compile(r"^(?:it|they|this|that|he|she)\s+(?:is|are|does|do|has|have)$", re.I)
_NEGATIVE = re.compile(r"\b(?:not|no|never|cannot)\b|n't\b", re.IGNORECASE)


def _tells(action: Action) -> bool:
    """ "Tell the client we will contact them": words to the person, no order of the agent's."""
    words = action.text.split(None, 1)
    return (
        action.kind == "say"
        and action.proposed is None
        and bool(words)
        and words[0].casefold() in ("tell", "inform", "let", "advise", "explain", "reassure")
    )


_AGENT_DOES_NOT = re.compile(
    r"^(?:the\s+)?(?:agents?|you|we|staff|advisors?)\s+(?:does|do|must|may|should)\s+not\b", re.I
)


_ANYONE = frozenset({"anyone", "anybody", "anything", "someone", "somebody"})


def _write_tool(builder: Builder, action: str) -> str | None:
    """The catalog write tool that does `action` ("register the claim"), or None."""
    mention = builder.tools.find(action)
    tool = mention.tool if mention is not None else None
    # "do not book" under "Booking a smart meter installation": book the installation
    head = re.split(r"[,;]", action, maxsplit=1)[0]  # "book over capacity, even for one ..."
    # "do not add anyone" under "Adding an authorised collector": add the collector
    head = " ".join(word for word in head.split() if word.casefold() not in _ANYONE)
    # "don't cancel, pass it to me": the forbidden verb, before what is done instead
    whole = head.strip() if head.strip() != action.strip() else ""
    for said in (
        action,
        whole,
        f"{strip_end(head)} the {builder.subject}" if builder.subject else "",
    ):
        if tool is None and said:
            bound = bind(said, builder.tools.catalog).tool
            tool = builder.tools.catalog.get(bound) if bound else None
    offered = _OFFER.match(head)
    if tool is None and offered:
        # "do not offer forbearance" forbids `create_forbearance_plan`: what is offered is
        # the thing the one write tool of that name makes
        thing = set(canonical_words(offered["what"]))
        owners = [
            t
            for t in builder.tools.catalog.tools
            if t.access == "write" and thing & set(canonical_words(t.name.replace("_", " "))[1:])
        ]
        tool = owners[0] if len(owners) == 1 else None
    return tool.name if tool is not None and tool.access == "write" else None


_OFFER = re.compile(
    r"^(?:offer|give|grant|promise|agree\s+to|provide|arrange|set\s+up)\s+(?:an?\s+|any\s+|the\s+)?"
    r"(?P<what>[\w-]+(?:\s+[\w-]+)?)",
    re.IGNORECASE,
)


def _end_after_alternative(made: list[Node]) -> None:
    """ "Saver rates cannot be cancelled; offer to change the dates instead": after the
    alternative the case is over, never on into the action the SOP forbids for it."""
    for node in made:
        if node.kind == "condition" and node.then_nodes:
            last = node.then_nodes[-1]
            if last.kind not in TERMINAL_KINDS and last.goto is None:
                last.goto = END
            return


def _clause(
    builder: Builder,
    clause: Clause,
    block_id: str,
    level: int,
    pending: Node | None,
    before: list[Node],
    *,
    split: bool = False,
    branch: bool = False,
) -> tuple[list[Node], Node | None]:
    """The nodes of one clause; `branch` when the item's opening condition owns them."""
    question = _asked_last(pending)
    if (
        clause.is_else
        and clause.test is not None
        and pending is not None
        and not pending.else_nodes
        and pending.else_goto is None
    ):
        # "Otherwise, if B, Y": B's case is the other side of the test before it
        other, case = _clause(
            builder, replace(clause, is_else=False), block_id, level, None, before, branch=True
        )
        pending.else_nodes = other
        return other, case
    if clause.is_else and pending is not None and question is not None and not pending.else_nodes:
        # "If X, ask whether they want Y; if not, thank them": the "not" answers the question
        answer = builder.node(
            "condition",
            "Check whether the customer answered no in step {step}.",
            block_id=block_id,
            quote=quote(clause.sentence),
            level=level,
            test="the customer answered no in step {step}",
            text_ref=question,
            outer=pending,
        )
        answer.then_nodes = _actions(builder, clause.actions, block_id, level, None, branch=True)
        pending.then_nodes += [answer, *answer.then_nodes]
        return [answer, *answer.then_nodes], None
    if clause.is_else and pending is not None and not pending.else_nodes and not pending.else_goto:
        goto = only_goto(clause.actions)
        if goto is not None:
            pending.else_goto = goto
            return [], None
        otherwise = _actions(builder, clause.actions, block_id, level, None, branch=True)
        pending.else_nodes = otherwise
        return otherwise, None
    test = clause.test
    asked: Node | None = None
    if clause.is_yes:
        previous = before[-1] if before else (builder.nodes[-1] if builder.nodes else None)
        asked = previous if previous is not None and previous.kind == "ask" else None
        test = "the customer answered yes in step {step}" if asked else "the answer is yes"
    if test is None:
        return _actions(builder, clause.actions, block_id, level, None, branch=branch), None
    made: list[Node] = []
    if clause.test_tool is not None:
        made.append(
            _tool_node(
                builder,
                Action(
                    "tool_call",
                    f"Use `{clause.test_tool.tool.name}`.",
                    clause.sentence,
                    tool=clause.test_tool,
                ),
                block_id,
                level,
                test,
            )
        )
    cond = builder.node(
        "condition",
        f"Ask yourself: {test.strip()}"
        if test.strip().endswith("?")
        else f"Check whether {strip_end(test)}.",
        block_id=block_id,
        quote=quote(clause.sentence),
        level=level,
        test=strip_end(test),
        text_ref=asked,
    )
    made.append(cond)
    inner = _split_test(cond.test or "") if split else None
    if clause.inner_test is not None:  # "If X, refund it if Y": Y is tested inside X's branch
        inner = (cond.test or "", clause.inner_test)
    if inner is not None:
        # "If A and B, X. Otherwise, Y." as one of several cases: the otherwise answers B
        # within case A, so A stays the case's guard and B a condition inside it.
        cond.test, cond.text = inner[0], f"Check whether {inner[0]}."
        inside = builder.node(
            "condition",
            f"Check whether {inner[1]}.",
            block_id=block_id,
            quote=quote(clause.sentence),
            level=level,
            test=inner[1],
            outer=cond,
        )
        cond.then_nodes = [inside]
        made.append(inside)
        outer, cond = cond, inside
    else:
        outer = None
    goto = only_goto(clause.actions)
    if goto is not None:
        cond.then_goto = goto
    else:
        cond.then_nodes = _actions(builder, clause.actions, block_id, level, test)
        _end_when_done(builder, cond, level, pending)
        made += cond.then_nodes
        if outer is not None:
            outer.then_nodes += cond.then_nodes
    if outer is not None and clause.inner_test is not None and _ends(clause.sentence):
        return made, outer  # "If X, refund it if Y. Otherwise, B.": B is the other side of X
    return made, cond  # "..., take it to the school if it is open, otherwise to the depot"


# what the team a case is handed to does next: "..., who will write to the member"; what they
# are asked to decide: "put a message on the duty vet's list so they can call the owner and
# decide", "..., who decides"
_THEY_WILL = re.compile(
    r",\s+who\s+(?:will|then|now)\s+[a-z]+|,\s+who\s+decides?\b|"
    r"\bso\s+(?:that\s+)?(?:they|he|she)\s+can\b[^.;]{0,120}?\bdecide\b",
    re.IGNORECASE,
)


def _ends(sentence: str) -> bool:
    """True when the sentence ends where it was written to, not at a ", otherwise" cut."""
    return sentence.rstrip().endswith((".", "!", "?", ":"))


def _actions(
    builder: Builder,
    actions: list[Action],
    block_id: str,
    level: int,
    test: str | None,
    *,
    branch: bool = False,
) -> list[Node]:
    out: list[Node] = []
    actions = _escalations(builder, actions, branch=branch or test is not None)
    # "Transfer to X: ..." does the rest first; the handoff or escalation ends the routine.
    ending = [a for a in actions if a.kind in TERMINAL_KINDS]
    if any(a.kind in ("escalate", "handoff") for a in ending):
        # "end the call and pass it to the duty claims handler to call back": the hand-over
        # ends the case; the words that end the call are said before it
        for action in ending:
            if action.kind == "resolve":
                action.kind = "say"
        ending = [a for a in ending if a.kind != "say"]
    if ending:  # a "go to step N" beside an ending is moot: the ending ends the routine
        actions = [a for a in actions if a.kind not in (*TERMINAL_KINDS, "goto")] + ending
    team = next((a.target for a in ending if a.kind == "escalate"), None)
    for action in actions:
        if action.kind == "tool_call" and action.target is None and team:
            action.target = team
        if action.kind == "goto":
            if out and out[-1].kind in TERMINAL_KINDS:
                continue  # "escalate ... and go to step 6": the escalation already ends it
            if out and out[-1].goto is None:
                out[-1].goto = action.goto
                continue
            out.append(
                builder.node(
                    "say",
                    action.text,
                    block_id=block_id,
                    quote=quote(action.quote),
                    level=level,
                    goto=action.goto,
                )
            )
        elif action.kind == "tool_call" and _looked_up(builder, action) is None:
            out.append(_tool_node(builder, action, block_id, level, test))
        else:
            text = action.text
            source = _answered_by(builder, action) or _looked_up(builder, action)
            if source is not None and action.kind == "tool_call":
                action.kind, action.tool = "say", None
            if source is not None:
                # "check the email address on the account": `lookup_customer` returned it
                action.proposed, node_ref = None, builder.nodes[source.ref]
                returned = f"see what `{source.tool}` returned in step {{step}}"
                text = f"{text.rstrip('.')} ({returned})."
            else:
                node_ref = None
            if action.proposed is not None:
                name = action.proposed[0]
                text = f"{text}{PROPOSED_NOTE}: proposed tool `{name}`.)"
            node = builder.node(
                action.kind,
                text,
                block_id=block_id,
                quote=quote(action.quote),
                level=level,
                target=action.target,
                proposed=action.proposed,
                goto=action.goto,
                text_ref=node_ref,
            )
            if action.kind == "ask":
                builder.known.append(Known(node.uid, action.text.casefold(), "asked"))
            if action.kind == "escalate" and not action.target:
                builder.questions.append(
                    ("Step {step} says to escalate but does not name the team.", node)
                )
            if action.kind == "action" and (approver := APPROVER.search(action.text)):
                who = approver.group("who")
                builder.questions.append(
                    (
                        f"Step {{step}} needs {who}'s approval, and no catalog tool reaches "
                        f"{who}: say how the agent asks for it (or add the tool).",
                        node,
                    )
                )
            out.append(node)
    last = out[-1] if out else None
    if (
        (test is not None or branch)
        and last is not None
        and last.tool_call is not None
        and last.goto is None
        and _THEY_WILL.search(last.text)
    ):
        # "if the member insists, create a case for Membership Ops, who will write to the
        # member": the team has the case from here, so this side ends with it
        last.goto = END
    return out


def _escalations(builder: Builder, actions: list[Action], *, branch: bool) -> list[Action]:
    """Escalations the SOP goes on after become tickets; the others end the routine.

    "Escalate to X: open a ticket with `create_ticket` ..." is one ticket. "Escalate to X and
    go to step 8" or "escalate to X for approval before you reship" hands the team a ticket
    while this routine carries on, so it is no terminal escalation.
    """
    ticket = builder.tools.ticket_tool()
    out = list(actions)
    # "escalate to the fraud lead, then stop": the stop says the escalation ends the case
    while len(out) >= 2 and out[-2].kind == "escalate" and _STOP.match(out[-1].text):
        out.pop()
    # "send the order to Legal; do not set it up yourself", and in a branch "refer the file to
    # Compliance and tell the client we will contact them": what the SOP forbids or tells the
    # person after the escalation is no going on; said first, the escalation still ends the case
    last = max((n for n, a in enumerate(out) if a.kind == "escalate"), default=None)
    if last is not None and all(_prohibits(a) or (branch and _tells(a)) for a in out[last + 1 :]):
        out = [*out[:last], *out[last + 1 :], out[last]]
    elif last is not None and _handed_by_call(out, last):
        # "refer the site to Code Enforcement and note the permit" with the catalog's refer
        # tool: the call hands the case over; the note is made, then the routine ends
        out = [*out[:last], *out[last + 1 :], out[last]]
    last_call = out[-1] if out and out[-1].kind == "tool_call" else None
    handing = last_call.tool.tool if last_call and last_call.tool and last_call.target else None
    if branch and handing is not None and hands_over(handing) and handing is not ticket:
        # in a branch, "refer it to a senior assessor" with `refer_to_senior_assessor`: the
        # call hands the case over and the branch ends (unless it is done "as well")
        assert last_call is not None
        if not AS_WELL.search(last_call.text):
            out.append(
                handed_over(
                    Action("escalate", last_call.text, last_call.quote, target=last_call.target)
                )
            )
    for esc in [a for a in out if a.kind == "escalate"]:
        call = next(
            (
                a
                for a in out
                if a.kind == "tool_call" and a.tool is not None and a.tool.tool is ticket
            ),
            None,
        )
        if call is not None:
            call.target = call.target or esc.target
            call.text = f"{esc.text.rstrip('.')}: {call.text[0].lower()}{call.text[1:]}"
            out.remove(esc)
        elif out.index(esc) < len(out) - 1 or BEFORE.search(esc.text) or AS_WELL.search(esc.text):
            out[out.index(esc)] = (
                Action(
                    "tool_call",
                    esc.text,
                    esc.quote,
                    target=esc.target,
                    tool=ToolMention(ticket, 0, "name"),
                )
                if ticket is not None
                else Action("say", esc.text, esc.quote, target=esc.target)
            )
    return out


_STOP = re.compile(
    r"^(?:then\s+)?(?:stop|stop here|end here|do nothing else)\s*[.!]?$", re.IGNORECASE
)


def _answered_by(builder: Builder, action: Action) -> Known | None:
    """An earlier read tool whose result holds what a "check ..." action looks at."""
    if action.proposed is None or action.proposed[1] != "read":
        return None
    words = action.proposed[0].split("_")[1:]
    for item in reversed(builder.known):
        tool = builder.tools.catalog.get(item.tool or "") if item.source == "returned" else None
        if tool is None or tool.access != "read":
            continue
        described = set(re.findall(r"[a-z]+", tool.description.casefold()))
        if words and all(w in described for w in words):
            return item
    return None


def _looked_up(builder: Builder, action: Action) -> Known | None:
    """The earlier call whose result a "check the ..." lookup reads again, if any: the step
    looks at what it returned rather than calling it twice."""
    tool = action.tool.tool if action.tool is not None else None
    if tool is None or tool.access != "read" or action.kind != "tool_call":
        return None
    if action.text.split(None, 1)[0].casefold() not in ("check", "look", "review"):
        return None
    return next(
        (k for k in reversed(builder.known) if k.source == "returned" and k.tool == tool.name),
        None,
    )


def _as_ticket(builder: Builder, node: Node) -> None:
    """Turn an escalation the SOP goes on after into a ticket for the team (or a say step)."""
    ticket = builder.tools.ticket_tool()
    if ticket is None:
        node.kind = "say"
        return
    args, refs = bind_arguments(
        ticket, action=node.text, condition=None, known=builder.known, team=node.target
    )
    node.kind = "tool_call"
    node.tool_call = ToolCall(tool=ticket.name, arguments=args)
    node.arg_refs = {arg: builder.nodes[uid] for uid, arg in refs}
    builder.known.append(Known(node.uid, "", "returned", tool=ticket.name))


def _tool_node(
    builder: Builder, action: Action, block_id: str, level: int, test: str | None
) -> Node:
    assert action.tool is not None
    tool = action.tool.tool
    args, refs = bind_arguments(
        tool, action=action.text, condition=test, known=builder.known, team=action.target
    )
    text = (
        action.text if tool.name in action.text else f"{action.text.rstrip('.')} (`{tool.name}`)."
    )
    node = builder.node(
        "tool_call",
        text,
        block_id=block_id,
        quote=quote(action.quote),
        level=level,
        tool_call=ToolCall(tool=tool.name, arguments=args),
        arg_refs={arg: builder.nodes[uid] for uid, arg in refs},
        goto=action.goto,  # "open a ticket and stop there": the call ends its side
    )
    builder.known.append(Known(node.uid, "", "returned", tool=tool.name))
    builder.known += [Known(node.uid, arg.name, "argument") for arg in args]
    return node


def _has_otherwise(text: str) -> bool:
    return bool(_OTHERWISE.search(text))


def _split_test(test: str) -> tuple[str, str] | None:
    """`an amount is wrong and the difference is over $100` -> the case and the check inside it."""
    match = re.search(r"\s+and\s+(?=(?:the|a|an|it|they|there|this|that|its|their)\s)", test)
    if match is None:
        return None
    first, second = test[: match.start()].strip(), test[match.end() :].strip()
    return (first, second) if len(first.split()) >= 3 and len(second.split()) >= 3 else None
