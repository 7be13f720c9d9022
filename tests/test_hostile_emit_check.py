"""Emitted network code is compiled before it is written (issue 17): broken Python is one line."""

from __future__ import annotations

import pytest

from sop_compiler.errors import OutputError
from sop_compiler.pipeline._build import _check_python


def test_python_that_does_not_compile_is_one_clear_error() -> None:
    with pytest.raises(OutputError) as caught:
        _check_python({"agent_network/tools.py": b"def f(:\n", "REVIEW.md": b"(("})
    assert "agent_network/tools.py" in str(caught.value)
    assert "does not compile" in str(caught.value)


def test_valid_python_and_other_files_pass() -> None:
    _check_python({"agent_network/tools.py": b"X = '\\u00e9'\n", "REVIEW.md": b"def f(:\n"})
