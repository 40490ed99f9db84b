"""On-disk progress of a long extraction, so that a killed run resumes where it stopped.

Beside the output ``data.pkl`` lies ``.data.pkl.progress/`` (hidden, so a scan of a video folder
that holds the output never takes it for a class folder) with

    settings.json    what decides the results: pose model (sha256), input size, max persons, ...
    <hash>.pkl       one per finished video: {'key', 'annotation' (or None), 'reason' (or None)}

The folder is created with its settings already inside (under a temporary name, then renamed), and
an extraction holds ``.data.pkl.lock`` (:func:`lock_output`) from its first look at the folder to
its last write, so a second run on the same output refuses at once.

Each entry is written with :func:`skelact.data.io.atomic_write` (temporary file, fsync, rename), so
a run killed at any moment, even by SIGKILL, leaves whole entries only and loses at most the videos
being processed. Entries are read back with the restricted unpickler
(:func:`skelact.data.io.safe_unpickle`): a progress folder is a file like any other download.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import pickle
import re
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from skelact.data.io import AnnotationError, atomic_write, safe_unpickle
from skelact.errors import SkelactError, short_repr
from skelact.lockfile import hold_lock

__all__ = ["ResumeError", "ResumeStore", "progress_folder", "failures_path", "lock_output", "lock_path"]

SETTINGS = "settings.json"
_ENTRY = re.compile(r"^[0-9a-f]{24}\.pkl$")
_TMP = re.compile(r"^\..*\.[0-9a-f]{12}\.tmp$")  # atomic_path's temporaries: ".<name>.<12 hex>.tmp"


class ResumeError(SkelactError, RuntimeError):
    """A progress folder is in the way, belongs to other settings, or is damaged."""


def progress_folder(output: Path) -> Path:
    """Where the progress of the extraction into ``output`` is kept."""
    return output.parent / f".{output.name}.progress"


def failures_path(output: Path) -> Path:
    """The report of the videos that failed: ``<output>.failures.csv``."""
    return output.parent / f"{output.name}.failures.csv"


def lock_path(output: Path) -> Path:
    """The lock an extraction into ``output`` holds (see :func:`skelact.lockfile.hold_lock`)."""
    return output.parent / f".{output.name}.lock"


def lock_output(output: Path) -> contextlib.AbstractContextManager[None]:
    """Hold the lock of the extraction into ``output``: a second run on the same output refuses at once.

    Raises:
        ResumeError: Another live run holds it.
    """
    path = lock_path(output)

    def busy(pid: int, where: str) -> ResumeError:
        return ResumeError(f"{output}: another extraction (PID {pid}{where}) is writing this output; wait for "
                             f"it, or remove {path} if that run is gone")

    return hold_lock(path, busy, output)


def _new_folder_pattern(output: Path) -> re.Pattern[str]:
    # A progress folder being created: settings.json is written into it before it gets its name.
    return re.compile(rf"^{re.escape(progress_folder(output).name)}\.[0-9a-f]{{12}}\.tmp$")


def remove_stale_temporaries(output: Path) -> None:
    """Remove what a killed atomic write of ``output`` or its failures report, or a killed creation of
    its progress folder, left beside it (call it with the lock held)."""
    names = (output.name, failures_path(output).name)
    pattern = re.compile(rf"^\.({'|'.join(map(re.escape, names))})\.[0-9a-f]{{12}}\.tmp$")
    new_folder = _new_folder_pattern(output)
    if output.parent.is_dir():
        for p in output.parent.iterdir():
            if pattern.match(p.name) and p.is_file():
                p.unlink(missing_ok=True)
            elif new_folder.match(p.name) and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)


def _show(value: Any) -> str:
    """A settings value for a message (lists of paths joined, long values cut)."""
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    return str(value) if isinstance(value, int) else short_repr(value, limit=160)


class ResumeStore:
    """The progress folder of one output (see the module docstring).

    Args:
        output: The dataset file the extraction writes at the end.
    """

    def __init__(self, output: Path) -> None:
        self.output = output
        self.folder = progress_folder(output)

    @staticmethod
    def entry_name(key: str) -> str:
        """File name of a video's entry (a hash: keys are paths of any length and character)."""
        # surrogatepass: a file name that is not valid UTF-8 reaches here as lone surrogates
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:24] + ".pkl"

    def open(self, settings: Mapping[str, Any], resume: bool, labels: Mapping[str, str]) -> set[str]:
        """Start a new progress folder, or (``resume``) continue the one there.

        Args:
            settings: JSON-able values that decide the results; a resumed folder must hold the same.
            resume: Whether continuing an existing folder is allowed.
            labels: A readable name (an option) for each settings key, for messages.

        Returns:
            Entry file names already present.

        Raises:
            ResumeError: A folder exists without ``resume``, or with other settings, or is damaged.
        """
        remove_stale_temporaries(self.output)
        settings = dict(settings)
        if not self.folder.exists():
            self._create(settings)
            return set()
        if not resume:
            raise ResumeError(f"{self.folder}: an earlier extraction into {self.output} was interrupted; pass "
                                "--resume to continue it, or remove that folder to start over")
        if not self.folder.is_dir():
            raise ResumeError(f"{self.folder}: is not a folder; remove it")
        for p in self.folder.iterdir():  # killed atomic writes of entries
            if _TMP.match(p.name):
                p.unlink(missing_ok=True)
        present = {p.name for p in self.folder.iterdir() if _ENTRY.match(p.name)}
        stored = self._read_settings()
        if stored is None:
            if present:
                raise ResumeError(f"{self.folder}: holds results but no readable {SETTINGS}; remove the folder "
                                    "to start over")
            self._write_settings(settings)  # killed between creating the folder and writing the settings
            return present
        keys = [*settings, *(k for k in stored if k not in settings)]  # the first difference in the run's order
        changed = [k for k in keys if settings.get(k) != stored.get(k)]
        if changed:
            k = changed[0]
            raise ResumeError(
                f"{self.folder}: was started with {labels.get(k, k)} {_show(stored.get(k))}, this run has "
                f"{_show(settings.get(k))}; resume with the same settings, or remove the folder to start over")
        return present

    def _create(self, settings: dict[str, Any]) -> None:
        """Make the folder with its settings, atomically: a folder without ``settings.json`` would stop
        every later run (it could belong to any settings)."""
        self.output.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.folder.parent / f"{self.folder.name}.{secrets.token_hex(6)}.tmp"
        try:
            tmp.mkdir()
            text = json.dumps(settings, indent=1, sort_keys=True).encode()
            atomic_write(tmp / SETTINGS, lambda f: f.write(text))
            tmp.rename(self.folder)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, OSError) and e.strerror:  # a full disk: name the output, not the hidden folder
                raise OSError(e.errno, e.strerror, str(self.output)) from None
            raise

    def _write_settings(self, settings: dict[str, Any]) -> None:
        text = json.dumps(settings, indent=1, sort_keys=True).encode()
        atomic_write(self.folder / SETTINGS, lambda f: f.write(text))

    def _read_settings(self) -> dict[str, Any] | None:
        try:
            value = json.loads((self.folder / SETTINGS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def save(self, key: str, annotation: dict | None, reason: str | None) -> None:
        """Record a finished video: its annotation, or the reason it failed."""
        entry = {"key": key, "annotation": annotation, "reason": reason}
        try:
            atomic_write(self.folder / self.entry_name(key),
                         lambda f: pickle.dump(entry, f, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError as e:  # a full disk: name the output the user asked for, not the hidden entry
            if not e.strerror:
                raise
            raise OSError(e.errno, e.strerror, str(self.output)) from None

    def load(self, key: str) -> tuple[dict | None, str | None]:
        """A finished video's ``(annotation, None)`` or ``(None, reason)``.

        Raises:
            ResumeError: The entry is missing, unreadable or belongs to another video.
        """
        path = self.folder / self.entry_name(key)
        try:
            entry = safe_unpickle(path)
        except AnnotationError as e:
            raise ResumeError(f"{e}; remove that file and run again with --resume") from None
        if not (isinstance(entry, dict) and entry.get("key") == key
                and (isinstance(entry.get("annotation"), dict) or isinstance(entry.get("reason"), str))):
            raise ResumeError(f"{path}: not the progress entry of {short_repr(key)}; remove that file and run "
                                "again with --resume")
        return entry["annotation"], entry["reason"]

    def remove(self) -> None:
        """Delete the folder (the run is complete)."""
        shutil.rmtree(self.folder, ignore_errors=True)
