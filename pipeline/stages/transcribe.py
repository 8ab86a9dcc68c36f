"""Whisper language ID per recording, then batched transcription of every chunk of a shard.

The language of a recording is the average of Whisper's language probabilities over up to
`lid_windows` chunks spread through it (not only the first), and every chunk is then decoded
with that language forced, so one odd chunk cannot switch a recording's language.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa

from manifests.schemas import TRANSCRIBED, with_versions
from pipeline.asr import AsrBackend, load_backend
from pipeline.segment_audio import segment_samples
from pipeline.stage import ShardContext, Stage


@dataclass(frozen=True)
class TranscribeConfig:
    backend: str = "faster-whisper"
    model: str = "whisper-base"  # the offline copy; or a local path, or a hub id
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0  # 0: every core
    batch_size: int = 8
    beam_size: int = 5
    lid_windows: int = 3


def spread(items: list, count: int) -> list:
    """Up to `count` items evenly spaced from first to last."""
    if len(items) <= count:
        return items
    return [items[round(i)] for i in np.linspace(0, len(items) - 1, count)]


class Transcribe(Stage):
    name = "transcribe"
    version = "1"
    inputs = ("segment", "standardise")
    max_parallel_shards = 1

    @property
    def version_tag(self) -> str:
        return f"{self.version}:{self.config.backend}:{self.config.model}"

    @cached_property
    def backend(self) -> AsrBackend:
        c = self.config
        return load_backend(
            c.backend,
            model=c.model,
            device=c.device,
            compute_type=c.compute_type,
            cpu_threads=c.cpu_threads,
            batch_size=c.batch_size,
            beam_size=c.beam_size,
        )

    def run(self, context: ShardContext) -> pa.Table:
        segments = context.read("segment")
        chunks = segment_samples(context, segments)
        recording_ids = segments["recording_id"].to_pylist()
        languages = self._recording_languages(recording_ids, chunks)
        forced = [languages[r][0] for r in recording_ids]
        hypotheses = self.backend.transcribe(chunks, forced) if chunks else []
        added = {
            "lang": pa.array(forced, pa.string()),
            "lang_prob": pa.array([languages[r][1] for r in recording_ids], pa.float32()),
            "text": pa.array([h.text for h in hypotheses], pa.string()),
            "avg_logprob": pa.array([h.avg_logprob for h in hypotheses], pa.float32()),
            "no_speech_prob": pa.array([h.no_speech_prob for h in hypotheses], pa.float32()),
        }
        table = pa.table([*segments.columns, *added.values()], schema=TRANSCRIBED)
        return with_versions(table, self.name, self.version_tag)

    def _recording_languages(
        self, recording_ids: list[str], chunks: list[np.ndarray]
    ) -> dict[str, tuple[str, float]]:
        by_recording: dict[str, list[int]] = defaultdict(list)
        for index, rid in enumerate(recording_ids):
            by_recording[rid].append(index)
        windows = {rid: spread(rows, self.config.lid_windows) for rid, rows in by_recording.items()}
        flat = [i for rows in windows.values() for i in rows]
        probabilities = iter(self.backend.language_probabilities([chunks[i] for i in flat]))
        languages = {}
        for rid, rows in windows.items():
            total: dict[str, float] = defaultdict(float)
            for distribution in (next(probabilities) for _ in rows):
                for lang, p in distribution.items():
                    total[lang] += p / len(rows)
            lang, prob = max(total.items(), key=lambda kv: kv[1])
            languages[rid] = (lang, prob)
        return languages
