"""SIGINT and SIGTERM during a compile: a clean, resumable stop, never a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Coroutine, Iterator
from typing import Any

from sop_compiler import interrupt


def _run_cancellable(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` in a new event loop where SIGTERM (and Ctrl-C) cancel it cleanly.

    Like `asyncio.run`, plus SIGTERM: the signal cancels the main task from the loop, also when
    SIGINT is ignored (a background job of a non-interactive shell), and the cancellation leaves
    as KeyboardInterrupt, the CLI's clean "interrupted" exit. A computation running in any thread
    (see `sop_compiler.interrupt`) is abandoned at once; worker threads writing files finish their
    file before the loop closes. A second signal stops waiting for them.
    """
    in_main = threading.current_thread() is threading.main_thread()
    signals = [signal.SIGTERM] if in_main else []
    if in_main and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signals.append(signal.SIGINT)  # an ignored Ctrl-C stays ignored
    previous = {signum: signal.getsignal(signum) for signum in signals}
    # Worker threads (reading SOPs, writing routines) hold the GIL for up to the switch interval
    # (5 ms) whenever the loop thread wakes for a response; a shorter one keeps requests going out.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, 0.0005))
    loop = asyncio.new_event_loop()
    task = loop.create_task(main)
    stopping = False
    interrupt.reset()

    def stop(signum: int, frame: Any) -> None:
        # A plain handler, not loop.add_signal_handler: that one runs only once the loop thread
        # is back in the loop, and a stage may keep it busy for seconds (an offline compile).
        nonlocal stopping
        if stopping:
            raise KeyboardInterrupt
        stopping = True
        loop.call_soon_threadsafe(task.cancel)
        if interrupt.abandon():  # this thread was computing: end that computation now
            raise interrupt.Interrupted

    try:
        for signum in signals:
            signal.signal(signum, stop)
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            if stopping:
                raise KeyboardInterrupt from None
            raise
        finally:
            pending = asyncio.all_tasks(loop)
            for other in pending:
                other.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
        sys.setswitchinterval(interval)
        interrupt.reset()
        # The caller's handlers apply again.
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C: a cancelled CI job keeps completed routines and a valid lock."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        # Run the Ctrl-C handler: inside asyncio.run it cancels the main task cleanly, where a
        # KeyboardInterrupt raised here would tear one task apart and print its traceback.
        on_ctrl_c = signal.getsignal(signal.SIGINT)
        if callable(on_ctrl_c) and on_ctrl_c is not signal.default_int_handler:
            on_ctrl_c(signal.SIGINT, frame)
            return
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
