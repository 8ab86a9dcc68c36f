"""One curation at a time per workdir: two runs would compute the same shards twice.

The lock is an OS file lock (`flock`) on `<workdir>/.vaglio.lock`, which also holds the pid
of its holder so that a refused run can say who holds it. The kernel releases the lock when
its process ends, however it ends, so a lock left by a dead run is simply taken over.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pipeline.run.runner import WorkdirError

LOCK_NAME = ".vaglio.lock"


class WorkdirBusy(RuntimeError):
    """Another live run holds the workdir."""


@contextlib.contextmanager
def workdir_lock(workdir: Path) -> Iterator[None]:
    """Hold the workdir for this process, or raise WorkdirBusy naming the holder's pid."""
    path = Path(workdir) / LOCK_NAME
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
