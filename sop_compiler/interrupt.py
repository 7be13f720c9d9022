"""Computations a signal may abandon at once, in any thread: a stop never waits for a long stage.

Reading, segmenting, compiling and validating one SOP are pure computations: stopping half-way
loses nothing that the next compile would not redo. A stage that runs one inside `abandonable()`
lets Ctrl-C and SIGTERM end it within moments, even when a 1 MB sentence keeps it busy for
seconds. Writing files is never inside: what was written stays consistent with the lock.

Worker threads cannot be cancelled, so `abandon()` raises `Interrupted` in each of them at its
next bytecode (CPython's `PyThreadState_SetAsyncExc`); the main thread raises it from the
signal handler itself. Outside `abandonable()` nothing is ever raised.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Iterator

# Reentrant: the signal handler runs in the main thread, maybe inside abandonable()'s own lock.
_lock = threading.RLock()
_running: dict[int, int] = {}  # thread ident -> nesting depth of abandonable()
_raised: set[int] = set()  # threads sent an Interrupted that may still be pending
_stopping = False


class Interrupted(KeyboardInterrupt):
    """A signal abandoned the computation (the CLI's clean "interrupted" exit)."""


@contextlib.contextmanager
def abandonable() -> Iterator[None]:
    """Run the block as a computation that `abandon()` may end with `Interrupted`."""
    ident = threading.get_ident()
    with _lock:
        if _stopping:
            raise Interrupted
        _running[ident] = _running.get(ident, 0) + 1
    completed = False
    try:
        yield
        completed = True
    finally:
        with _lock:
            depth = _running.pop(ident) - 1
            if depth:
                _running[ident] = depth
            pending = ident in _raised and not depth
            if pending:
                _raised.discard(ident)
                _async_raise(ident, None)  # not delivered yet: never let it fire later
        if pending and completed:
            raise Interrupted


def abandon() -> bool:
    """Stop every abandonable computation; True if the calling thread is in one (raise then).

    Called from a signal handler (in the main thread). Later `abandonable()` blocks raise at
    once, until `reset()`.
    """
    global _stopping
    me = threading.get_ident()
    with _lock:
        _stopping = True
        for ident in _running:
            if ident != me and ident not in _raised:
                _raised.add(ident)
                _async_raise(ident, Interrupted)
        return me in _running


def reset() -> None:
    """Forget a previous stop (a new run starts)."""
    global _stopping
    with _lock:
        _stopping = False
        _raised.clear()


def _async_raise(ident: int, exc: type[BaseException] | None) -> None:
    target = ctypes.py_object(exc) if exc is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), target)
