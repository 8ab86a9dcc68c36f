"""Silero VAD over every recording of a shard at once, then cut-and-merge into ASR chunks."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import pyarrow as pa
import pyarrow.compute as pc

from manifests.schemas import SEGMENTS, with_versions
from pipeline.audio.decode import from_flac
from pipeline.audio.duplicates import read_duplicates
from pipeline.audio.vad import SileroVad, VadConfig, chunk_regions, speech_regions
from pipeline.stage import ShardContext, Stage
from pipeline.validation import PositiveSeconds, Seconds


@dataclass(frozen=True)
class SegmentConfig:
    vad: VadConfig = field(default_factory=VadConfig)
    max_chunk_s: PositiveSeconds = 30.0  # Whisper's window
    merge_gap_s: Seconds = 3.0  # a longer pause always starts a new chunk


def regions_within(regions: list[tuple[float, float]], start: float, end: float) -> list[dict]:
    """The speech regions of a recording that fall inside one chunk, clipped to it."""
    return [
        {"start": round(max(a, start), 3), "end": round(min(b, end), 3)}
        for a, b in regions
        if a < end and b > start
    ]


class Segment(Stage):
    name = "segment"
    version = "2"
    inputs = ("standardise",)

    @cached_property
    def vad(self) -> SileroVad:
        return SileroVad(self.config.vad)

    def fingerprint_extra(self, context: ShardContext) -> str:
        """Which recordings of this shard are duplicates decides what gets segmented."""
        ids = set(context.read("standardise", ["recording_id"])["recording_id"].to_pylist())
        duplicates = read_duplicates(context.workdir)
        return ",".join(sorted(r for r in duplicates if r in ids))

    def run(self, context: ShardContext) -> pa.Table:
        recordings = context.read("standardise")
        duplicates = read_duplicates(context.workdir)
        usable = pc.and_(
            pc.is_null(recordings["quarantine_reason"]),
            pc.invert(
                pc.is_in(recordings["recording_id"], pa.array(list(duplicates), pa.string()))
            ),
        )
        recordings = recordings.filter(usable)
        audios = [from_flac(b) for b in recordings["audio"].to_pylist()]
        probabilities = self.vad.probabilities(audios) if audios else []
        take, offsets, durations, speech, spans, ids = [], [], [], [], [], []
        for row, (audio, probs) in enumerate(zip(audios, probabilities)):
            regions = speech_regions(probs, self.config.vad, len(audio))
            chunks = chunk_regions(regions, self.config.max_chunk_s, self.config.merge_gap_s)
            recording_id = recordings["recording_id"][row].as_py()
            for index, (start, end, speech_s) in enumerate(chunks):
                take.append(row)
                offsets.append(round(start, 3))
                durations.append(round(end - start, 3))
                speech.append(round(speech_s, 3))
                spans.append(regions_within(regions, start, end))
                ids.append(f"{recording_id}#{index:04d}")
        rows = recordings.take(pa.array(take, pa.int64()))
        columns = {name: rows[name] for name in SEGMENTS.names if name in rows.column_names}
        columns |= {
            "segment_id": pa.array(ids, pa.string()),
            "offset": pa.array(offsets, pa.float64()),
            "duration": pa.array(durations, pa.float64()),
            "speech_duration": pa.array(speech, pa.float64()),
            "speech_regions": pa.array(spans, SEGMENTS.field("speech_regions").type),
        }
        table = pa.table([columns[n] for n in SEGMENTS.names], schema=SEGMENTS)
        return with_versions(table, self.name, self.version_tag)
