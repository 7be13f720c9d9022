"""`sopc compile --batch`: procedures that need the model go through the OpenAI Batch API.

One round per run: collect every pending batch recorded in sopc.lock (answers are validated and
written; those with errors get a repair request, up to `repair_attempts`; lines that failed or
expired are asked again), then submit one new batch with everything still needed, record it in
the lock at once, and exit with a note. A batch still running is left alone, so a repeated or
interrupted run never submits a procedure twice; a procedure whose input changed since it was
submitted is asked again (its old answer would be stale).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sop_compiler.generate import GenerationContext, GenerationResult
from sop_compiler.generate.llm import ChatRequest, LLMBackend
from sop_compiler.lock import BatchRequest, PendingBatch, PlannedProcedure
from sop_compiler.models import Issue, RoutineDraft

Finish = Callable[[PlannedProcedure, GenerationResult], None]
Validate = Callable[[PlannedProcedure], Callable[[RoutineDraft], list[Issue]]]


@dataclass
class BatchRound:
    """One collect-then-submit round over the procedures that need the model."""

    backend: LLMBackend
    context: GenerationContext
    batches: dict[str, PendingBatch]  # the lock's pending batches: updated in place
    finish: Finish
    validate: Validate
    save: Callable[[], None]
    notes: list[str] = field(default_factory=list)
    waiting: int = 0  # procedures left in a batch still running (or just submitted)

    async def run(self, procs: list[PlannedProcedure]) -> None:
        """Collect what finished, then submit what is still needed."""
        from sop_compiler.generate.batch import collect, submit

        wanted = {_cid(p): p for p in procs if p.procedure is not None}
        requests: dict[str, ChatRequest] = {}
        entries: dict[str, BatchRequest] = {}
        for batch_id in sorted(self.batches):
            pending = self.batches[batch_id]
            state = await collect(self.backend, batch_id)  # type: ignore[arg-type]
            if state.running:
                for cid, request in pending.requests.items():
                    proc = wanted.get(cid)
                    if proc is not None and request.input == proc.input:
                        del wanted[cid]
                        self._wait(proc, f"waiting in batch {batch_id} ({state.status})")
                continue
            if state.status != "completed":
                self.notes.append(f"batch {batch_id} ended {state.status}: asking again")
            for cid, request in sorted(pending.requests.items()):
                proc = wanted.get(cid)
                if proc is None or request.input != proc.input:
                    continue  # no longer needed, or its SOP changed since: asked afresh below
                answer = state.answers.get(cid)
                if answer is None:
                    continue  # a failed or expired line: asked again below
                assert proc.procedure is not None
                draft, issues, problems = self.backend.check_answer(
                    answer.content, proc.procedure, self.context, self.validate(proc)
                )
                last = request.attempt > self.backend.settings.repair_attempts
                if draft is not None and (not problems or last):
                    result = GenerationResult(
                        procedure_id=proc.id,
                        draft=draft,
                        issues=issues,
                        usage=answer.usage,
                        attempts=request.attempt,
                    )
                    self.finish(proc, result)
                    del wanted[cid]
                elif last:
                    proc.fail(f"no valid routine after {request.attempt} attempts in batches")
                    del wanted[cid]
                else:
                    requests[cid] = self.backend.batch_request(
                        proc.procedure, self.context, repair=(answer.content, problems)
                    )
                    entries[cid] = request.model_copy(update={"attempt": request.attempt + 1})
            del self.batches[batch_id]
            self.save()  # collected answers are on disk: never collected twice
        for cid, proc in sorted(wanted.items()):
            if cid not in requests:
                assert proc.procedure is not None
                requests[cid] = self.backend.batch_request(proc.procedure, self.context)
                entries[cid] = BatchRequest(
                    source=proc.sop.source, procedure=proc.id, input=proc.input
                )
        if not requests:
            return
        batch_id = await submit(self.backend, requests)  # type: ignore[arg-type]
        self.batches[batch_id] = PendingBatch(requests=entries)
        self.save()  # at once: a second run must find it and not submit these again
        for cid in entries:
            self._wait(wanted.get(cid) or _find(procs, cid), f"submitted in batch {batch_id}")
        self.notes.append(
            f"submitted batch {batch_id} with {len(requests)} request(s): "
            "run `sopc compile --batch` again to collect the answers"
        )

    def _wait(self, proc: PlannedProcedure | None, why: str) -> None:
        if proc is None:
            return
        proc.status, proc.why = "would_generate", why
        self.waiting += 1


def _cid(proc: PlannedProcedure) -> str:
    """The batch line's custom_id: routine ids are unique within an agent."""
    return f"{proc.agent}/{proc.id}"


def _find(procs: list[PlannedProcedure], cid: str) -> PlannedProcedure | None:
    return next((p for p in procs if _cid(p) == cid), None)
