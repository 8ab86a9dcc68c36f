"""Turn a catalog into work: read each source, judge every file's licence, cut shards.

Files under a refused licence are counted and reported, and nothing of them is processed.
Files the source lists but that cannot be used (a path outside the source folder, a broken
manifest line) become quarantined rows with the reason. A source that cannot be read at all
is reported and the run goes on with the others.

Shards are cut where the files themselves say, not by counting: a shard ends after a file
whose recording id hashes to a boundary (about one file in `files_per_shard`), or at twice
that many files. A shard is named by the file that ends it. So a file added or removed
changes only the shard it lands in (and the next forced cut, if a run of files without a
boundary is long), and every other shard keeps its name and rows; a shard's fingerprint
covers its rows and the sizes and modification times of its files, so only those shards run
again. Names are `<source>-<16 hex digits>`, a fixed-length suffix, so no source's shard name
can be another's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from licenses import LicenseVerdict, judge_license
from manifests.schemas import SOURCE_FILES
from pipeline.run.runner import read_fingerprint, write_shard
from pipeline.sources import SourceItem, SourceReadError, read_source
from pipeline.sources.catalog import Source
from pipeline.stage import PLAN


@dataclass(frozen=True)
class SourcePlan:
    """What the run will do with one source, and why."""

    source: Source
    verdicts: dict[str, LicenseVerdict]  # licence statement -> verdict, for every one stated
    files_by_licence: Counter  # licence statement -> how many files state it
    shard_ids: tuple[str, ...] = ()
    quarantined: int = 0  # files listed but unusable, kept as rows with the reason
    error: str | None = None  # the source could not be read at all

    @property
    def planned_files(self) -> int:
        """Files the run processes: those under an allowed licence."""
        return sum(n for text, n in self.files_by_licence.items() if self.verdicts[text].allowed)

    @property
    def refused_files(self) -> int:
        return sum(self.files_by_licence.values()) - self.planned_files


class _Licences:
    """Judge each distinct licence statement once, and count the files that state it."""

    def __init__(self, policy: Path | None):
        self.policy = policy
        self.verdicts: dict[str, LicenseVerdict] = {}
        self.counts: Counter = Counter()

    def judge(self, text: str) -> LicenseVerdict:
        if text not in self.verdicts:
            self.verdicts[text] = judge_license(text, self.policy)
        self.counts[text] += 1
        return self.verdicts[text]


def _row(source: Source, item: SourceItem, text: str, verdict: LicenseVerdict) -> dict:
    return {
        "recording_id": f"{source.name}/{item.key}",
        "source": source.name,
        "license": verdict.spdx_id or "unknown",
        "license_text": text,
        "attribution": source.attribution,
        "obligations": list(verdict.obligations),
        "path": None if item.path is None else str(item.path),
        "audio_in": item.audio,
        "offset": item.offset,
        "declared_duration": item.duration,
        "declared_languages": [item.language] if item.language else list(source.languages),
        "text_source": item.text,
        "quarantine_reason": item.problem,
    }


def _fingerprint(rows: list[dict]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        audio = row["audio_in"]
        described = row | {"audio_in": hashlib.sha256(audio).hexdigest() if audio else None}
        if row["path"]:
            with contextlib.suppress(OSError):  # gone since it was listed: standardise says so
                stat = os.stat(row["path"])
                described["file"] = (stat.st_size, stat.st_mtime_ns)
        digest.update(json.dumps(described, sort_keys=True).encode())
    return digest.hexdigest()


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def _shards(rows: Iterable[dict], target: int) -> Iterator[tuple[str, list[dict]]]:
    """(name suffix, rows) of each shard, cut at content-defined boundaries (module docstring).

    The last shard, which the end of the source closes, is named by no file: appending files
    to a source grows it under the same name."""
    shard: list[dict] = []
    for row in rows:
        shard.append(row)
        digest = _digest(row["recording_id"])
        if int.from_bytes(digest[:8], "big") % target == 0 or len(shard) == 2 * target:
            yield digest.hex()[:16], shard
            shard = []
    if shard:
        yield _digest("").hex()[:16], shard


def _plan_one(source: Source, workdir: Path, files_per_shard: int, policy: Path | None):
    licences = _Licences(policy)
    if source.kind == "metadata":
        licences.judge(source.license)
        return SourcePlan(source, licences.verdicts, Counter())

    def allowed_rows() -> Iterator[dict]:
        for item in read_source(source):
            text = source.license_for(item.key, item.license)
            verdict = licences.judge(text)
            if verdict.allowed:
                yield _row(source, item, text, verdict)

    shard_ids, quarantined = [], 0
    try:
        target = source.files_per_shard or files_per_shard
        for suffix, rows in _shards(allowed_rows(), target):
            shard_id = f"{source.name}-{suffix}"
            fingerprint = _fingerprint(rows)
            if read_fingerprint(workdir, PLAN, shard_id) != fingerprint:
                table = pa.Table.from_pylist(rows, schema=SOURCE_FILES)
                write_shard(workdir, PLAN, shard_id, table, fingerprint)
            shard_ids.append(shard_id)
            quarantined += sum(r["quarantine_reason"] is not None for r in rows)
    except SourceReadError as error:
        return SourcePlan(source, licences.verdicts, licences.counts, error=str(error))
    return SourcePlan(source, licences.verdicts, licences.counts, tuple(shard_ids), quarantined)


def plan_sources(
    sources: list[Source], workdir: Path, files_per_shard: int, policy: Path | None = None
) -> list[SourcePlan]:
    """Write `<workdir>/plan/<shard>.parquet` for the allowed files of every source."""
    return [_plan_one(source, workdir, files_per_shard, policy) for source in sources]
