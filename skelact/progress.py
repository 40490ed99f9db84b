"""Progress of a long loop: a live bar on a terminal, a plain line now and then in a log file or pipe.

Every loop that reports progress (training epochs, evaluation, video frames, folder extraction,
the pose model's download, overlay videos) goes through :func:`progress`, so the rule is one:

* stderr is a terminal: a ``tqdm`` bar, redrawn in place (``\\r``) at most every 0.1 s;
* otherwise (a log file, a pipe, CI): no bar and no ``\\r``; one line
  ``DESC: N/TOTAL UNIT (P %, R UNIT/s), POSTFIX`` once ``interval`` seconds (default 30, or
  ``$SKELACT_PROGRESS_INTERVAL``; 0 writes a line per step) have passed since the last, and a last
  line at the end if any line was written and the count moved since. A loop shorter than the
  interval writes nothing, so a log holds the lines a run prints itself, not an empty bar per epoch.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any, Generic, TypeVar

__all__ = ["Progress", "progress", "LOG_INTERVAL"]

#: Seconds between two progress lines when stderr is not a terminal.
LOG_INTERVAL = 30.0


def _log_interval() -> float:
    """``$SKELACT_PROGRESS_INTERVAL`` when it is a number >= 0, else :data:`LOG_INTERVAL`."""
    try:
        value = float(os.environ.get("SKELACT_PROGRESS_INTERVAL", LOG_INTERVAL))
    except ValueError:
        return LOG_INTERVAL
    return value if math.isfinite(value) and value >= 0 else LOG_INTERVAL

T = TypeVar("T")


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _count(value: float, scale: bool) -> str:
    """``1234`` → ``1234``; with ``scale`` (bytes) ``1234567`` → ``1.23M``."""
    if not scale:
        return f"{value:.0f}"
    for prefix in ("", "k", "M", "G", "T"):
        if abs(value) < 1000 or prefix == "T":
            return f"{value:.3g}{prefix}"
        value /= 1000
    return f"{value:.3g}"  # pragma: no cover - the loop always returns


class Progress(Generic[T]):
    """What :func:`progress` returns: iterate over it, or ``update()`` it; use as a context manager."""

    def __init__(self, iterable: Iterable[T] | None, total: float | None, desc: str, unit: str, enabled: bool,
                 initial: float, unit_scale: bool, leave: bool, stream: IO[str] | None, interval: float | None):
        self.stream = stream if stream is not None else sys.stderr
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.iterable, self.total, self.n = iterable, total, initial
        self.desc, self.unit, self.unit_scale, self.enabled = desc, unit, unit_scale, enabled
        self.interval = _log_interval() if interval is None else interval
        self.lines = 0  # plain lines written
        self._reported = initial  # the count the last line showed
        self._postfix = ""
        self._start = self._last = time.monotonic()
        self._start_n = initial
        self._closed = False
        self._bar: Any = None
        if enabled and _is_terminal(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc or None, unit=unit, unit_scale=unit_scale,
                             leave=leave, file=self.stream, dynamic_ncols=True, mininterval=0.1)

    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("this progress has no iterable; call update()")
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> Progress[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        """``n`` more steps done."""
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and time.monotonic() - self._last >= self.interval:
            self._line()

    def set_postfix(self, **values: object) -> None:
        """Figures shown after the count, e.g. ``loss=0.52``."""
        self.set_postfix_str(", ".join(f"{k}={v}" for k, v in values.items()))

    def set_postfix_str(self, text: str) -> None:
        self._postfix = text
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def write(self, message: str) -> None:
        """A message line that does not break the bar."""
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        """End the bar; in a log, a last line when earlier lines were written."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self.lines and self.n != self._reported:
            self._line()

    def _line(self) -> None:
        now = time.monotonic()
        count = _count(self.n, self.unit_scale)
        details = []
        if self.total:
            count += f"/{_count(self.total, self.unit_scale)}"
            details.append(f"{100 * self.n / self.total:.0f} %")
        rate = (self.n - self._start_n) / max(now - self._start, 1e-9)
        details.append(f"{_count(rate, True) if self.unit_scale else f'{rate:.1f}'} {self.unit}/s")
        text = f"{self.desc}: " if self.desc else ""
        text += f"{count} {self.unit} ({', '.join(details)})"
        if self._postfix:
            text += f", {self._postfix}"
        print(text, file=self.stream, flush=True)
        self.lines += 1
        self._last, self._reported = now, self.n


def progress(iterable: Iterable[T] | None = None, *, total: float | None = None, desc: str = "", unit: str = "it",
             enabled: bool = True, initial: float = 0, unit_scale: bool = False, leave: bool = False,
             stream: IO[str] | None = None, interval: float | None = None) -> Progress[T]:
    """Report the progress of a loop on ``stream`` (default: stderr), as the module says.

    Args:
        iterable: Loop over the returned object to step through it; or leave it out and call
            ``update()``.
        total: Steps expected (default ``len(iterable)`` when it has one); None: unknown.
        desc: What is being done, e.g. ``epoch 3/90``.
        unit: What a step is (``frame``, ``video``, ``B``).
        enabled: False: report nothing (e.g. on ranks other than 0, or when asked to be quiet).
        initial: Steps already done (a resumed run).
        unit_scale: Show counts with k/M/G (bytes).
        leave: Keep the finished bar on a terminal.
        stream: Where to write (default ``sys.stderr`` at the time of the call).
        interval: Seconds between lines when ``stream`` is not a terminal (default
            ``$SKELACT_PROGRESS_INTERVAL``, else :data:`LOG_INTERVAL`).
    """
    return Progress(iterable, total, desc, unit, enabled, initial, unit_scale, leave, stream, interval)
