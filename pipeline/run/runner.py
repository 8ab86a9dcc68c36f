"""Run a stage on a shard: atomic writes, completion markers, and fingerprints for resume.

Each finished shard leaves `<workdir>/<stage>/<shard>.parquet` and a marker
`<shard>.done.json` holding a fingerprint of everything that determined it: the stage name,
version and config, and the fingerprints of its input shards. A re-run skips a shard whose
marker matches; anything else (a crash mid-write, a new config, a new stage version, changed
input) runs again. A crash loses at most the shards in flight.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.stage import ShardContext, Stage


@dataclass(frozen=True)
class ShardOutcome:
    stage: str
    shard_id: str
    skipped: bool
    rows: int
    seconds: float


def atomic_write_table(table: pa.Table, path: Path) -> None:
    """Write a Parquet file so that readers see either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def atomic_write_text(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def marker_path(workdir: Path, stage: str, shard_id: str) -> Path:
    return workdir / stage / f"{shard_id}.done.json"


def read_fingerprint(workdir: Path, stage: str, shard_id: str) -> str | None:
    """The fingerprint of a completed shard, or None when it is missing or incomplete."""
    marker = marker_path(workdir, stage, shard_id)
    output = workdir / stage / f"{shard_id}.parquet"
    if not (marker.exists() and output.exists()):
        return None
    return json.loads(marker.read_text())["fingerprint"]


def write_shard(
    workdir: Path,
    stage: str,
    shard_id: str,
    table: pa.Table,
    fingerprint: str,
    seconds: float = 0.0,
) -> None:
    """Write a stage's shard, then its marker: the marker is the commit point."""
    atomic_write_table(table, workdir / stage / f"{shard_id}.parquet")
    marker = {"fingerprint": fingerprint, "rows": table.num_rows, "seconds": round(seconds, 3)}
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
        """Run `stage` on `shard_id` unless an identical run already completed."""
        fingerprint = self.fingerprint(stage, shard_id)
        if read_fingerprint(self.workdir, stage.name, shard_id) == fingerprint:
            return ShardOutcome(stage.name, shard_id, True, 0, 0.0)
        started = time.perf_counter()
        table = stage.run(ShardContext(shard_id, self.workdir))
        seconds = time.perf_counter() - started
        write_shard(self.workdir, stage.name, shard_id, table, fingerprint, seconds)
        return ShardOutcome(stage.name, shard_id, False, table.num_rows, seconds)
