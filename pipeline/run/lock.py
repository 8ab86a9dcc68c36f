"""One curation at a time per workdir: two runs would compute the same shards twice.

The lock is an OS file lock (`flock`) on `<workdir>/.vaglio.lock`, which also holds the pid
of its holder so that a refused run can say who holds it. The kernel releases the lock when
its process ends, however it ends, so a lock left by a dead run is simply taken over. The
lock belongs to the process: the CLI takes it before an engine starts (a refusal should not
wait for Prefect), and the run inside takes it again without waiting on itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from pipeline.run.runner import WorkdirError

LOCK_NAME = ".vaglio.lock"
_held: dict[Path, int] = {}  # workdirs this process holds, and how many times over
_held_guard = threading.Lock()


class WorkdirBusy(RuntimeError):
    """Another live run holds the workdir."""


@contextlib.contextmanager
def workdir_lock(workdir: Path) -> Iterator[None]:
    """Hold the workdir for this process, or raise WorkdirBusy naming the holder's pid."""
    key = Path(workdir).resolve()
    with _held_guard:
        if key in _held:
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    with _flock(key / LOCK_NAME, workdir):
        with _held_guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _held_guard:
                del _held[key]


@contextlib.contextmanager
def _flock(path: Path, workdir: Path) -> Iterator[None]:
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise WorkdirError(f"cannot write {path}: {error.strerror}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 32, 0).decode(errors="replace").strip() or "unknown"
            raise WorkdirBusy(
                f"another run (pid {holder}) is curating {workdir}: wait for it to finish, "
                "or stop it, then run this again"
            ) from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(handle)  # releases the flock
