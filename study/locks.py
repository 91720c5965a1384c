"""One project, one process: a search's project folder, or a report's --output, is held by one command at a time.

Two identical commands started a second apart would otherwise both run to the end: twice the
compute, and two writers racing on the same state files. The lock is `fcntl.flock` on a file beside
the folder (`.<name>.lock`, ignored by git), so the folder's own contents are untouched (a search's
"not written by study.search" check, a report's swap of its whole folder). The kernel drops a flock
when its process dies, even by SIGKILL: a lock left behind is taken over without a word. The file
holds the holder's pid and command line, for the refusal's message.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from study.config import StudyError

# Set by a command for the processes it starts itself (a --parallel search's chief and workers):
# they run under their parent's lock, and take none of their own.
HELD_BY_PARENT = "STUDY_LOCK_HELD_BY"


def lock_path(folder: str | Path) -> Path:
    """The lock file of `folder`: beside it, hidden."""
    folder = Path(os.path.abspath(folder))
    return folder.with_name(f".{folder.name}.lock")


def held_by_parent() -> bool:
    """Whether this process was started by a command that holds the lock for it."""
    return os.environ.get(HELD_BY_PARENT) == str(os.getppid())


@contextlib.contextmanager
def hold(folder: str | Path, command: str, *, what: str = "project") -> Iterator[None]:
    """Hold `folder` for this process inside the block; StudyError at once if another process holds it.

    Creates the folder's parent if needed (a StudyError when it cannot); on leaving, removes the lock
    file, and the folders it created when they are left empty (bad input leaves no trace).
    """
    path = lock_path(folder)
    created = _make_parents(path.parent)
    fd = None
    try:
        fd = _acquire(path, folder, what)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "command": command}).encode())
        yield
    finally:
        if fd is not None:
            # Unlinked while still locked: a process that opened the old file meanwhile sees it is
            # no longer the lock file (_acquire checks) and starts over on the new one.
            with contextlib.suppress(OSError):
                path.unlink()
            os.close(fd)
        for parent in created:
            with contextlib.suppress(OSError):
                parent.rmdir()  # only when empty


def _make_parents(folder: Path) -> list[Path]:
    """mkdir -p `folder`; the folders it created, deepest first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StudyError(f"cannot write to {folder}: {e.strerror}") from None
    return missing


def _acquire(path: Path, folder: str | Path, what: str) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StudyError(f"cannot write to {path.parent}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise StudyError(f"{folder} is in use by {holder}: one {what}, one process; wait for it to end "
                             "or stop it, then rerun") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed this file as it ended: lock the one now in its place


def _holder(fd: int) -> str:
    try:
        record = json.loads(os.pread(fd, 65536, 0).decode())
        return f"process {int(record['pid'])} ({record['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"  # it has not written its name yet
