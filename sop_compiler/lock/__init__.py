"""`sopc.lock`: what every output was built from, so staleness is decided from hashes, never by
regenerating; and the run lock that keeps two compiles off one output folder.

The lock file is versioned JSON with sorted keys and no timestamps, so it is byte-stable and its
diff in a pull request shows exactly which SOPs changed. Per procedure it records:

- `text`: the hash of the procedure's cleaned text and structure (`Procedure.text_sha256()`);
- `input`: the hash of everything that decides the routine: `text`, the backend fingerprint, the
  prompts, the routine schema and the output-relevant sopc version. A procedure whose `input`
  matches is never sent to a model again;
- `depends`: the catalog tools the routine names (each by its hash), the agents it hands off to,
  and the tools it proposed that no catalog tool covered;
- `render`: `input` plus `depends` as today's catalog and agents show them, and the templates and
  settings that decide validation and rendering; when only this differs the routine is
  re-validated and re-rendered from its JSON, without a model call;
- `outputs`: the hash of every file the routine produced, so hand edits and deletions are found;
- `issues` and `coverage`: the validation report, so a no-op run reports without re-reading SOPs.

Per SOP it also records `ocr`, the OCR engine and version its scanned pages or image were read
with (absent for SOPs that need no OCR); and `batches` lists Batch API jobs submitted by
`sopc compile --batch` and not yet collected.

The header keys (`backend`, `catalog`, ...) describe the last run and explain staleness to a
reader; every decision uses the per-entry keys, which stay correct when a run is interrupted.
The rules themselves (what a routine depends on, and why it is stale) are all in `staleness.py`.
"""

from sop_compiler.lock._fast import CleanRun, NoopRecord, NoopRunResult
from sop_compiler.lock._file import (
    LOCK_NAME,
    LOCK_VERSION,
    OUTPUT_VERSION,
    RUN_LOCK_NAME,
    BatchRequest,
    FileState,
    LockFile,
    PendingBatch,
    ProcedureEntry,
    SopEntry,
    dump_lock,
    read_lock,
    run_lock,
    sha256_bytes,
    sha256_json,
    write_atomic,
    write_lock,
)
from sop_compiler.lock._plan import Plan, start_plan, unchanged_sops
from sop_compiler.lock._planned import (
    ChosenBackend,
    PlannedProcedure,
    PlannedSop,
    agent_for,
    backend_for,
    routine_json_path,
)
from sop_compiler.lock._stat import FileStates
from sop_compiler.lock.staleness import Keys

__all__ = [
    "LOCK_NAME",
    "LOCK_VERSION",
    "OUTPUT_VERSION",
    "RUN_LOCK_NAME",
    "BatchRequest",
    "ChosenBackend",
    "CleanRun",
    "FileState",
    "FileStates",
    "Keys",
    "LockFile",
    "NoopRecord",
    "NoopRunResult",
    "PendingBatch",
    "Plan",
    "PlannedProcedure",
    "PlannedSop",
    "ProcedureEntry",
    "SopEntry",
    "agent_for",
    "backend_for",
    "dump_lock",
    "read_lock",
    "routine_json_path",
    "run_lock",
    "sha256_bytes",
    "sha256_json",
    "start_plan",
    "unchanged_sops",
    "write_atomic",
    "write_lock",
]
