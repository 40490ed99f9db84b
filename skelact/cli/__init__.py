"""The ``skelact`` command: one entry point with sub-commands, grouped by what they work on.

    data.py    convert, merge, split, info, viz
    train.py   train, test, calibrate, fuse
    video.py   extract, predict, demo (analyze.py: predict --per-person / --window)
    live.py    live
    export.py  export
    bench.py   bench

Each sub-command imports what it needs when it runs, so ``skelact --help`` and light commands stay
fast. Errors print one line ``skelact: error: <file or option>: <what is wrong>``: status 2 for a
usage error (a bad option, caught before any work), 1 for everything else. An unexpected
exception is also one line, plus a pointer to ``SKELACT_DEBUG=1``, which shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from skelact import __version__
from skelact.cli.common import CLIError, UsageError
from skelact.errors import one_line

__all__ = ["CLIError", "UsageError", "build_parser", "main", "run", "MAX_MESSAGE"]

#: Longest error line printed; longer messages are cut.
MAX_MESSAGE = 300


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (argparse prints the whole usage first)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"skelact: error: {one_line(message, MAX_MESSAGE)} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    from skelact.cli import bench, data, export, live, train, video

    parser = _Parser(prog="skelact",
                     description="Skeleton-based action recognition: convert data, train, evaluate, predict.")
    parser.add_argument("--version", action="version", version=f"skelact {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (data, train, video, live, export, bench):
        group.add_parsers(sub)
    return parser


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Errors that carry a message meant for the user (imported lazily: they pull in numpy)."""
    from skelact.errors import SkelactError

    # OSError: an output that is a folder, no permission, a full disk; ImportError: a missing extra.
    return SkelactError, OSError, ImportError


def run(func: Callable[[], object]) -> int:
    """Call ``func`` and turn what it raises into one line on stderr and an exit status."""
    from skelact.signals import Interrupted, handle_signals, signal_name

    try:
        # SIGTERM and SIGHUP take Ctrl-C's path: every output is closed (or removed) as on Ctrl-C.
        with handle_signals():
            func()
    except BrokenPipeError:  # e.g. `skelact info x.pkl | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt as e:
        signum = e.signum if isinstance(e, Interrupted) else 2  # a plain KeyboardInterrupt is SIGINT's
        print(f"skelact: interrupted ({signal_name(signum)})", file=sys.stderr)
        return 128 + signum  # the shell's status for a process ended by that signal
    except Exception as e:
        if os.environ.get("SKELACT_DEBUG") == "1":
            raise
        if isinstance(e, UsageError):  # an option problem found before any work, as argparse's errors
            print(f"skelact: error: {one_line(e, MAX_MESSAGE)}", file=sys.stderr)
            return 2
        if isinstance(e, _expected_errors()):
            message = str(e) or type(e).__name__
            if isinstance(e, OSError) and e.filename is not None and e.strerror:
                # "out.pkl: no space left on device", not "[Errno 28] No space left on device: 'out.pkl'"
                message = f"{e.filename}: {e.strerror[:1].lower()}{e.strerror[1:]}"
            elif isinstance(e, OSError) and e.filename is not None and str(e.filename) not in message:
                message = f"{e.filename}: {message}"
            message = one_line(message, MAX_MESSAGE)
        elif isinstance(e, MemoryError):
            message = "out of memory (the input is larger than this machine can hold)"
        else:
            detail = f": {one_line(e)}" if str(e).strip() else ""
            message = f"unexpected {type(e).__name__}{detail} (run with SKELACT_DEBUG=1 for the traceback)"
        print(f"skelact: error: {message}", file=sys.stderr)
        return 1
    return 0


def _tolerant_streams() -> None:
    """Let stdout and stderr print any file name: one that is not valid UTF-8 (lone surrogates) is
    written with ``\\x`` escapes instead of raising ``UnicodeEncodeError`` in a ``print``."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)  # absent on replaced streams (e.g. pytest's capture)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a closed or detached stream
                pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    _tolerant_streams()
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], None] = args.func
    return run(lambda: func(args))
