"""One handler for SIGINT, SIGTERM and SIGHUP, so that every way of stopping skelact ends the same.

Ctrl-C (SIGINT) raises ``KeyboardInterrupt`` where the program is, and every writer already closes
its output on that path: an atomic write removes its temporary file, a live recording is closed
and kept, an extraction keeps its progress. SIGTERM (``kill``, ``timeout``, a job scheduler) and
SIGHUP (a closed terminal or SSH session) would instead end the process at once, leaving a hidden
temporary file. :func:`handle_signals` (installed by the CLI's ``run``) makes all three raise
:class:`Interrupted`, a ``KeyboardInterrupt`` that says which signal came.

A command that stops gracefully (``live``: finish the frame in hand, then close the recording)
registers its stop function with :func:`graceful`: the first signal calls it, a second one raises.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Interrupted", "SIGNALS", "Stop", "graceful", "handle_signals", "worker_exits_quietly", "signal_name"]

#: The signals handled: Ctrl-C, kill/timeout/schedulers, a closed terminal.
SIGNALS: tuple[int, ...] = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15, and so on."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Interrupted(KeyboardInterrupt):
    """A stop signal (SIGINT, SIGTERM or SIGHUP) arrived; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum


class _State:
    """What the handler does now: raise, or call a command's graceful stop first."""

    def __init__(self) -> None:
        self.stop: Callable[[], None] | None = None
        self.received: int | None = None  # the first signal while a graceful stop is registered
        self.record: Stop | None = None  # where the graceful block reads it


_state = _State()


def _handler(signum: int, frame: Any) -> None:
    if _state.stop is not None and _state.received is None:
        _state.received = signum
        if _state.record is not None:
            _state.record.signum = signum
        _state.stop()
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """Route SIGINT, SIGTERM and SIGHUP to :class:`Interrupted` for the block (main thread only;
    elsewhere a no-op). A signal the parent process ignores (``nohup``: SIGHUP; a background job:
    SIGINT) stays ignored; the previous handlers come back after the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    try:
        for signum in SIGNALS:
            current = signal.getsignal(signum)
            if current is signal.SIG_IGN:
                continue
            previous[signum] = current
            signal.signal(signum, _handler)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def worker_exits_quietly(worker_id: int = 0) -> None:
    """``worker_init_fn`` of every DataLoader: a stop signal ends a worker process with status 0.

    A signal sent to the whole process group (Ctrl-C in a terminal, ``kill -- -PGID``, a scheduler)
    reaches the workers too. Killed by it, a worker makes torch raise "DataLoader worker ... is killed
    by signal" with a traceback while the main process is closing its outputs; ending with status 0,
    it is not reported, and the main process takes its own path for the signal. (Ignoring the signal
    instead would hang the exit: DataLoader stops a worker that lingers with SIGTERM and waits for it.)
    A signal the main process ignores (``nohup``) stays ignored.
    """
    for signum in SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _exit_quietly)


def _exit_quietly(signum: int, frame: Any) -> None:
    os._exit(0)


class Stop:
    """What :func:`graceful` yields: ``signum`` is the stop signal received (None while none came)."""

    def __init__(self) -> None:
        self.signum: int | None = None


@contextlib.contextmanager
def graceful(stop: Callable[[], None]) -> Iterator[Stop]:
    """Within the block, the first stop signal calls ``stop()`` (from the main thread, between two
    bytecodes: it should only set a flag) instead of raising; a second one raises :class:`Interrupted`.

    Yields:
        A :class:`Stop` whose ``signum`` is the signal received, to re-raise as :class:`Interrupted`
        once the block's outputs are closed.
    """
    saved = _state.stop, _state.received, _state.record
    result = Stop()
    _state.stop, _state.received, _state.record = stop, None, result
    try:
        yield result
    finally:
        _state.stop, _state.received, _state.record = saved
