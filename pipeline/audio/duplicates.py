"""Exact-duplicate detection across all shards: same decoded audio, same sha256.

Standardise sees one shard at a time, so duplicates are found afterwards over every shard's
checksums (a few bytes per recording) and written to `<workdir>/duplicates.parquet`. The
recording that sorts first by id is the original; the others name it in `duplicate_of`.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from manifests.schemas import DUPLICATES
from pipeline.run.runner import atomic_write_table


def duplicates_path(workdir: Path) -> Path:
    return Path(workdir) / "duplicates.parquet"


def mark_duplicates(workdir: Path, recording_files: list[Path]) -> pa.Table:
    """Find recordings whose audio equals an earlier one; write and return the table."""
    table = DUPLICATES.empty_table()
    if recording_files:
        query = """
            SELECT recording_id,
                   first_value(recording_id) OVER (PARTITION BY sha256 ORDER BY recording_id)
                       AS duplicate_of
            FROM read_parquet(?)
            WHERE sha256 IS NOT NULL AND quarantine_reason IS NULL
            QUALIFY recording_id <> duplicate_of
            ORDER BY recording_id
        """
        with duckdb.connect() as con:
            found = con.sql(query, params=[[str(p) for p in recording_files]]).to_arrow_table()
        table = found.cast(DUPLICATES)
    atomic_write_table(table, duplicates_path(workdir))
    return table


def read_duplicates(workdir: Path) -> dict[str, str]:
    path = duplicates_path(workdir)
    if not path.exists():
        return {}
    table = pq.read_table(path)
    return dict(zip(table["recording_id"].to_pylist(), table["duplicate_of"].to_pylist()))
