"""Decode every file of a shard to 16 kHz mono, checksum it, and quarantine what is unusable."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from manifests.schemas import RECORDINGS, SOURCE_FILES, with_versions
from pipeline.audio import AudioError, decode_file, to_flac
from pipeline.stage import PLAN, ShardContext, Stage

_ADDED = pa.schema([f for f in RECORDINGS if f.name not in SOURCE_FILES.names])


@dataclass(frozen=True)
class StandardiseConfig:
    min_duration_s: float = 0.1  # shorter decoded audio is quarantined as empty


class Standardise(Stage):
    name = "standardise"
    version = "1"
    inputs = (PLAN,)

    def run(self, context: ShardContext) -> pa.Table:
        files = context.read(PLAN)
        added = pa.Table.from_pylist(
            [self._standardise_one(path) for path in files.column("path").to_pylist()],
            schema=_ADDED,
        )
        table = pa.Table.from_arrays([*files.columns, *added.columns], schema=RECORDINGS)
        return with_versions(table, self.name, self.version_tag)

    def _standardise_one(self, path: str) -> dict:
        try:
            decoded = decode_file(path)
        except AudioError as error:
            return {"quarantine_reason": str(error)}
        row = {
            "sample_rate_in": decoded.sample_rate_in,
            "channels_in": decoded.channels_in,
            "duration": decoded.duration,
            "sha256": decoded.sha256(),
        }
        if decoded.duration < self.config.min_duration_s:
            return row | {"quarantine_reason": f"empty: {decoded.duration:.3f} s of audio"}
        return row | {"audio": to_flac(decoded.samples)}
