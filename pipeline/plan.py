"""Turn a catalog into work: judge each source's licence, list its files, cut them into shards.

Refused sources are reported with the reason and nothing of them is processed. A shard's
fingerprint covers its file list with sizes and modification times, so a changed or added file
re-runs only the shards it lands in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from licenses import LicenseVerdict, judge_license
from manifests.schemas import SOURCE_FILES
from pipeline.catalog import Source
from pipeline.runner import read_fingerprint, write_shard
from pipeline.stage import PLAN


@dataclass(frozen=True)
class SourcePlan:
    source: Source
    verdict: LicenseVerdict
    shard_ids: tuple[str, ...]
    n_files: int


def _shard_table(source: Source, spdx_id: str, files: list[Path]) -> pa.Table:
    relative = [f.relative_to(source.path).as_posix() for f in files]
    n = len(files)
    return pa.table(
        {
            "recording_id": [f"{source.name}/{r}" for r in relative],
            "source": [source.name] * n,
            "license": [spdx_id] * n,
            "license_text": [source.license] * n,
            "attribution": [source.attribution] * n,
            "path": [str(f) for f in files],
            "declared_languages": [list(source.languages)] * n,
        },
        schema=SOURCE_FILES,
    )


def _content_fingerprint(table: pa.Table, files: list[Path]) -> str:
    stats = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    blob = json.dumps([table.to_pydict(), stats], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def plan_sources(sources: list[Source], workdir: Path, files_per_shard: int) -> list[SourcePlan]:
    """Write `<workdir>/plan/<shard>.parquet` for every allowed source; return what was planned."""
    plans = []
    for source in sources:
        verdict = judge_license(source.license)
        if not verdict.allowed:
            plans.append(SourcePlan(source, verdict, (), 0))
            continue
        files = source.audio_files()
        shard_ids = []
        for index, start in enumerate(range(0, len(files), files_per_shard)):
            shard_id = f"{source.name}-{index:05d}"
            chunk = files[start : start + files_per_shard]
            table = _shard_table(source, verdict.spdx_id, chunk)
            fingerprint = _content_fingerprint(table, chunk)
            if read_fingerprint(workdir, PLAN, shard_id) != fingerprint:
                write_shard(workdir, PLAN, shard_id, table, fingerprint)
            shard_ids.append(shard_id)
        plans.append(SourcePlan(source, verdict, tuple(shard_ids), len(files)))
    return plans
