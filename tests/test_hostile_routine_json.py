"""A routine's JSON is written a step at a time (issue 17), byte for byte as one dump writes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sop_compiler.emit.routines import routine_json
from sop_compiler.models import Routine

SAMPLE = Path(__file__).parent / "data" / "emit" / "sample" / "routines.json"


def _one_dump(routine: Routine) -> bytes:
    """The JSON as sopc wrote it before: the whole routine dumped at once."""
    unset = {"source_flowchart"} if routine.source_flowchart is None else set()
    data = routine.model_dump(mode="json", exclude=unset)
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode(
        "utf-8", "backslashreplace"
    )


def _samples() -> list[Routine]:
    return [Routine.model_validate(item) for item in json.loads(SAMPLE.read_text())]


@pytest.mark.parametrize("index", range(3))
def test_step_by_step_json_is_the_one_dump(index: int) -> None:
    routine = _samples()[index]
    assert any(step.substeps for step in routine.walk()) or index  # nested steps are covered
    assert routine_json(routine) == _one_dump(routine)


def test_edge_shapes_write_the_same_bytes() -> None:
    routine = _samples()[0]
    first, second, *_ = routine.walk()
    deep = first.model_copy(
        update={"substeps": [second.model_copy(update={"substeps": [first, second]})]}
    )
    cases = [
        routine.model_copy(update={"steps": []}),
        routine.model_copy(update={"steps": [deep]}),
        # text that holds the marker the steps' place is kept with: one dump after all
        routine.model_copy(update={"title": "x\x00sopc:steps\x00y"}),
        routine.model_copy(update={"title": "lone \udcff surrogate, a \n newline, \u2028 and ü"}),
    ]
    for case in cases:
        assert routine_json(case) == _one_dump(case)
    for case in cases[:3]:  # (a lone surrogate is written escaped, as before: no round trip)
        assert Routine.model_validate_json(routine_json(case)) == case
