"""Run a stage on a shard: atomic writes, completion markers that prove their output, resume.

Each finished shard leaves `<workdir>/<stage>/<shard>.parquet` and a marker
`<shard>.done.json` holding a fingerprint of everything that determined it (the stage name,
version and config, and the fingerprints of its input shards) and a proof of every file the
shard wrote: its size and a checksum of its Parquet footer. A re-run skips a shard whose
marker matches and whose files still match their proofs; anything else (a crash mid-write, a
truncated or replaced file, an unreadable marker, a new config, a new stage version, changed
input) runs again. A crash loses at most the shards in flight.

The proof reads a few kilobytes per file whatever its size (a whole-file checksum would read
every byte of every shard on each resume; see `bench/marker_proof.py`): any truncation changes
the size, and any rewrite changes the footer, which holds every column chunk's offsets and
statistics.

Writes go through one guard, so that an interrupted run can stop committing at once
(`close_writes`) and leave no half-written file behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.stage import ShardContext, Stage

_FOOTER_TAIL = 8  # a Parquet file ends with the footer's length (4 bytes) and b"PAR1"
_writes = threading.RLock()
_writes_closed = threading.Event()


class WorkdirError(OSError):
    """The workdir cannot be written (read-only, full, no permission); the message names the
    path. What was committed before stays as it was."""


class WritesClosed(RuntimeError):
    """The run is stopping: no further output is committed."""


@dataclass(frozen=True)
class ShardOutcome:
    stage: str
    shard_id: str
    skipped: bool
    rows: int
    seconds: float
    redone_because: str | None = None  # a damaged earlier output that this run replaced


def close_writes() -> None:
    """Commit nothing more from now on; returns once any write in flight has finished, and
    keeps every other writer waiting. Called when the run is interrupted."""
    _writes_closed.set()
    _writes.acquire()


def temporary_path(path: Path) -> Path:
    """Where `path` is written before it is renamed into place; the pid tells a dead run's."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _cannot_write(path: Path, error: OSError) -> WorkdirError:
    # pyarrow's says "Error writing bytes to file. Detail: [errno 28] …": keep the cause only
    found = re.search(r"\[errno (\d+)\]", str(error))
    number = error.errno or (int(found.group(1)) if found else None)
    reason = os.strerror(number) if number else str(error)
    return WorkdirError(f"cannot write {path}: {reason}")


def _atomic_write(path: Path, write) -> None:
    """Write with `write(tmp)` then rename, so readers see either nothing or the whole file."""
    with _writes:
        if _writes_closed.is_set():
            raise WritesClosed(f"not writing {path}: the run is stopping")
        tmp = temporary_path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(tmp)
            os.replace(tmp, path)
        except OSError as error:  # pyarrow's errors carry no path: name it here
            tmp.unlink(missing_ok=True)
            raise _cannot_write(path, error) from None
        except BaseException:  # Ctrl-C mid-write, say: leave nothing half-written
            tmp.unlink(missing_ok=True)
            raise


def atomic_write_table(table: pa.Table, path: Path) -> None:
    """Write a Parquet file so that readers see either nothing or the whole file."""
    _atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def atomic_write_text(text: str, path: Path) -> None:
    _atomic_write(path, lambda tmp: tmp.write_text(text))


def remove_stale_temporaries(workdir: Path) -> list[Path]:
    """Delete the temporary files that runs which are no longer alive left in `workdir`."""
    removed = []
    for tmp in Path(workdir).rglob(".*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def file_proof(path: Path) -> dict:
    """Size and footer checksum of a Parquet file, read without reading its data."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if size < 2 * _FOOTER_TAIL:
            raise ValueError("too short to be Parquet")
        f.seek(size - _FOOTER_TAIL)
        tail = f.read(_FOOTER_TAIL)
        if tail[4:] != b"PAR1":
            raise ValueError("no Parquet footer (truncated?)")
        footer_length = int.from_bytes(tail[:4], "little") + _FOOTER_TAIL
        if footer_length > size:
            raise ValueError("footer longer than the file")
        f.seek(size - footer_length)
        footer = f.read(footer_length)
    return {"bytes": size, "footer_sha256": hashlib.sha256(footer).hexdigest()}


def marker_path(workdir: Path, stage: str, shard_id: str) -> Path:
    return workdir / stage / f"{shard_id}.done.json"


def check_marker(workdir: Path, stage: str, shard_id: str) -> tuple[str | None, str | None]:
    """(fingerprint of the completed shard, None), or (None, why its marked output cannot be
    trusted), or (None, None) when there is no marker: the shard simply never finished."""
    marker = marker_path(workdir, stage, shard_id)
    try:
        recorded = json.loads(marker.read_text())
        fingerprint, files = recorded["fingerprint"], recorded.get("files")
        if not isinstance(fingerprint, str):
            raise TypeError
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, f"{marker}: unreadable completion marker"
    if not isinstance(files, dict) or not files:
        return None, f"{marker}: written by an older vaglio, without a proof of its files"
    for relative, proof in files.items():
        path = workdir / relative
        try:
            found = file_proof(path)
        except FileNotFoundError:
            return None, f"{path}: missing"
        except (OSError, ValueError) as error:
            return None, f"{path}: {error}"
        if found != proof:
            return None, f"{path}: changed since it was written"
    return fingerprint, None


def read_fingerprint(workdir: Path, stage: str, shard_id: str) -> str | None:
    """The fingerprint of a completed shard, or None when it is missing, incomplete or its
    output no longer matches what the marker proves."""
    return check_marker(workdir, stage, shard_id)[0]


def write_shard(
    workdir: Path,
    stage: str,
    shard_id: str,
    table: pa.Table,
    fingerprint: str,
    seconds: float = 0.0,
    beside: tuple[Path, ...] = (),
) -> None:
    """Write a stage's shard, then its marker: the marker is the commit point. `beside` are
    files the stage wrote itself for this shard; the marker proves them too."""
    output = workdir / stage / f"{shard_id}.parquet"
    with _writes:
        atomic_write_table(table, output)
        files = {p.relative_to(workdir).as_posix(): file_proof(p) for p in (output, *beside)}
        marker = {
            "fingerprint": fingerprint,
            "rows": table.num_rows,
            "seconds": round(seconds, 3),
            "files": files,
        }
        atomic_write_text(json.dumps(marker), marker_path(workdir, stage, shard_id))


class StageRunner:
    """Runs stages over shards of one workdir."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)

    def fingerprint(self, stage: Stage, shard_id: str) -> str:
        context = ShardContext(shard_id, self.workdir)
        upstream = {}
        for name in stage.inputs:
            found = read_fingerprint(self.workdir, name, shard_id)
            if found is None:
                raise RuntimeError(f"stage '{stage.name}' needs '{name}' for shard {shard_id}")
            upstream[name] = found
        identity = {
            "stage": stage.name,
            "version": stage.version_tag,
            "config": stage.config_dict(),
            "inputs": upstream,
            "extra": stage.fingerprint_extra(context),
        }
        blob = json.dumps(identity, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    def run(self, stage: Stage, shard_id: str) -> ShardOutcome:
        """Run `stage` on `shard_id` unless an identical run already completed intact."""
        if _writes_closed.is_set():
            raise WritesClosed(f"not starting {stage.name}:{shard_id}: the run is stopping")
        fingerprint = self.fingerprint(stage, shard_id)
        done, damage = check_marker(self.workdir, stage.name, shard_id)
        if done == fingerprint:
            return ShardOutcome(stage.name, shard_id, True, 0, 0.0)
        started = time.perf_counter()
        context = ShardContext(shard_id, self.workdir)
        table = stage.run(context)
        seconds = time.perf_counter() - started
        beside = tuple(stage.files_beside(context, table))
        write_shard(self.workdir, stage.name, shard_id, table, fingerprint, seconds, beside)
        return ShardOutcome(stage.name, shard_id, False, table.num_rows, seconds, damage)
