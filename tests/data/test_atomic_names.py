"""``atomic_path`` names the user's file, never its hidden temporary, whatever failed inside it."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from skelact.data.io import atomic_path, atomic_write


def test_a_failure_on_the_temporary_names_the_output(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()  # the final rename onto a folder fails, naming the temporary and the folder
    with pytest.raises(IsADirectoryError) as info:
        atomic_write(target, lambda f: f.write(b"x"))
    assert info.value.filename == str(target) and info.value.filename2 is None
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_a_wrapped_write_failure_is_unwrapped(tmp_path: Path) -> None:
    """torch.save raises RuntimeError("[enforce fail at inline_container.cc] ...") with the OSError as context."""
    def write(f: object) -> None:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None

    def write_chained(f: object) -> None:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672]")  # noqa: B904 - as torch does

    with pytest.raises(RuntimeError):  # "from None" hides the cause: not a write failure we may assume
        atomic_write(tmp_path / "a.pt", write)
    with pytest.raises(OSError) as info:
        atomic_write(tmp_path / "b.pt", write_chained)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "b.pt")
    assert not list(tmp_path.iterdir())


def test_another_files_error_is_left_alone(tmp_path: Path) -> None:
    other = tmp_path / "input.bin"
    with pytest.raises(FileNotFoundError) as info, atomic_path(tmp_path / "out.bin"):
        open(other, "rb")
    assert info.value.filename == str(other)
    assert not list(tmp_path.iterdir())
