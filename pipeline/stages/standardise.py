"""Decode every recording of a shard to 16 kHz mono, checksum it, quarantine what is unusable.

Rows that arrive quarantined (the source listed them, but they cannot be used) pass through
with their reason. The encoded input a dataset held (`audio_in`) is not kept once decoded.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from manifests.schemas import RECORDINGS, SOURCE_FILES, with_versions
from pipeline.audio.decode import AudioError, decode_file, to_flac
from pipeline.stage import PLAN, ShardContext, Stage
from pipeline.validation import Seconds, Share

_ADDED = pa.schema([f for f in RECORDINGS if f.name not in SOURCE_FILES.names])


@dataclass(frozen=True)
class StandardiseConfig:
    min_duration_s: Seconds = 0.1  # shorter decoded audio is quarantined as empty
    # A recording that lost more than this share of its declared audio to corrupt data is
    # quarantined: what decoded around the gap is spliced, and its words no longer match.
    max_lost_share: Share = 0.001


class Standardise(Stage):
    name = "standardise"
    version = "3"  # 3: recordings that lost audio to corrupt data are quarantined
    inputs = (PLAN,)

    def run(self, context: ShardContext) -> pa.Table:
        files = context.read(PLAN)
        rows = files.drop_columns(["audio_in"]).to_pylist()
        results = [
            self._standardise_one(row, data)
            for row, data in zip(rows, files.column("audio_in").to_pylist())
        ]
        reasons = [row["quarantine_reason"] or reason for row, (_, reason) in zip(rows, results)]
        added = pa.Table.from_pylist([measured for measured, _ in results], schema=_ADDED)
        kept = files.drop_columns(["audio_in", "quarantine_reason"])
        table = kept.append_column("audio_in", pa.nulls(len(rows), pa.binary())).append_column(
            "quarantine_reason", pa.array(reasons, pa.string())
        )
        columns = [*table.select(SOURCE_FILES.names).columns, *added.columns]
        table = pa.Table.from_arrays(columns, schema=RECORDINGS)
        return with_versions(table, self.name, self.version_tag)

    def _standardise_one(self, row: dict, data: bytes | None) -> tuple[dict, str | None]:
        """(what decoding measured, the quarantine reason or None)."""
        if row["quarantine_reason"]:
            return {}, None
        window = row["declared_duration"] if row["offset"] is not None else None
        try:
            decoded = decode_file(data or row["path"], row["offset"], window)
        except AudioError as error:
            return {}, str(error)
        measured = {
            "sample_rate_in": decoded.sample_rate_in,
            "channels_in": decoded.channels_in,
            "duration": decoded.duration,
            "lost_share": decoded.lost_share,
            "sha256": decoded.sha256(),
        }
        if decoded.duration < self.config.min_duration_s:
            return measured, f"empty: {decoded.duration:.3f} s of audio"
        if decoded.lost_share > self.config.max_lost_share:
            return measured, f"corrupt: {decoded.lost_share:.1%} of the audio did not decode"
        return measured | {"audio": to_flac(decoded.samples)}, None
