"""Who speaks in each kept segment: a voice embedding per segment, speakers per recording.

A kept row of `filter` may hold several voices: pass 2 joins sentences across pauses of up to
2 s, and a turn rarely waits longer. So the unit of speaker grouping is the speech run, a
stretch the Silero VAD heard without a pause, inside a kept row (speaker turns fall in pauses,
and only speech is embedded, as Resemblyzer trims silence first). Each run gets a voice; the
runs of a recording are grouped into speakers (`pipeline.speakers.clustering`); each row takes
the speaker holding most of its speech, with that share (`speaker_share`: below 1 where the row
holds more than one voice), and the duration-weighted mean of its runs' voices as its
embedding.

The output is a table of its own beside the main chain (`SPEAKERS`), so that a new speaker
model re-runs neither the LLM stages nor the audio shards; the `segments` view joins it by
`segment_id`. Beside each shard it writes one voice per recording and speaker, which
`pipeline.speakers.corpus` links across the corpus once every shard is done
(`speaker_cluster`, `split_group`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifests.schemas import SPEAKERS, VOICES, with_versions
from pipeline.audio.cut import segment_samples
from pipeline.audio.decode import SAMPLE_RATE
from pipeline.run.runner import atomic_write_table
from pipeline.speakers.clustering import RecordingSpeakers, normed_means, speakers_of_recording
from pipeline.speakers.corpus import voices_path
from pipeline.speakers.encoder import EMBEDDING_SIZE, ENCODER_MODEL, EncoderConfig, VoiceEncoder
from pipeline.stage import ShardContext, Stage
from pipeline.stages.segment import regions_within
from pipeline.validation import Count, OpenShare, Seconds

ACROSS_RECORDINGS = "same_speaker_across"


@dataclass(frozen=True)
class SpeakersConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    # Cosine similarities of Resemblyzer embeddings (see bench/speaker_counts.py for the
    # margins): two groups of a recording's segments are one speaker while their pairs are on
    # average at least this alike...
    same_speaker: OpenShare = 0.7
    # ...and two recordings' speakers are one while their mean voices are at least this alike.
    same_speaker_across: OpenShare = 0.8
    min_speech_s: Seconds = 1.0  # a shorter speech run joins a speaker, never starts one
    max_grouped_runs: Count = 400  # per recording, the longest; the rest join the nearest


class Speakers(Stage):
    name = "speakers"
    version = "1"
    inputs = ("filter", "segment", "standardise")
    max_parallel_shards = 1  # torch uses every core

    @property
    def version_tag(self) -> str:
        return f"{self.version}:{ENCODER_MODEL}"

    def config_dict(self) -> dict:
        """The cross-recording threshold is applied after every shard (`link_speakers`), so a
        change of it re-links speakers without embedding any segment again."""
        settings = super().config_dict()
        del settings[ACROSS_RECORDINGS]
        return settings

    @cached_property
    def encoder(self) -> VoiceEncoder:
        return VoiceEncoder(self.config.encoder)

    def run(self, context: ShardContext) -> pa.Table:
        table = context.read("filter", ["segment_id", "recording_id", "offset", "duration",
                                        "drop_reason", "versions"])  # fmt: skip
        kept = np.flatnonzero(pc.is_null(table["drop_reason"]).to_numpy(zero_copy_only=False))
        runs = speech_runs(context, table.take(kept))
        voices = self.encoder.embed(runs.samples)
        speaker = np.zeros(len(runs.owner), np.int32)
        counts: dict[str, int] = {}
        rows = [VOICES.empty_table()]
        for recording_id, members in _runs_by_recording(table, kept, runs.owner).items():
            found = speakers_of_recording(
                voices[members],
                runs.seconds[members],
                self.config.same_speaker,
                self.config.min_speech_s,
                self.config.max_grouped_runs,
            )
            speaker[members] = found.labels
            counts[recording_id] = found.count
            rows.append(_voices(recording_id, found, voices[members], runs.seconds[members]))
        atomic_write_table(pa.concat_tables(rows), self._voices_path(context))
        return self._output(table, kept, runs, voices, speaker, counts)

    def files_beside(self, context: ShardContext, output: pa.Table) -> list[Path]:
        return [self._voices_path(context)]

    def _voices_path(self, context: ShardContext) -> Path:
        return voices_path(context.workdir, self.name, context.shard_id)

    def _output(
        self,
        table: pa.Table,
        kept: np.ndarray,
        runs: SpeechRuns,
        voices: np.ndarray,
        speaker: np.ndarray,
        counts: dict[str, int],
    ) -> pa.Table:
        """One row per row of `table`: the kept ones with their voice, speaker and share (null
        where a kept row holds no audio)."""
        rows = len(table)
        weighted = np.zeros((len(kept), EMBEDDING_SIZE))
        np.add.at(weighted, runs.owner, voices * runs.seconds[:, None])
        speakers = int(speaker.max()) + 1 if len(speaker) else 0
        held = np.zeros((len(kept), max(speakers, 1)))
        np.add.at(held, (runs.owner, speaker), runs.seconds)
        seconds = held.sum(axis=1)
        heard = seconds > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_voice = weighted / np.linalg.norm(weighted, axis=1, keepdims=True)
            share_held = held.max(axis=1) / seconds
        embedding = np.zeros((rows, EMBEDDING_SIZE), np.float32)
        embedding[kept] = mean_voice
        by_row = np.zeros(rows, np.int32)
        by_row[kept] = np.argmax(held, axis=1)
        share = np.zeros(rows, np.float32)
        share[kept] = share_held
        speech = np.zeros(rows)
        speech[kept] = seconds
        dropped = np.ones(rows, bool)
        dropped[kept[heard]] = False
        recordings = table["recording_id"].to_pylist()
        output = pa.table(
            {
                "segment_id": table["segment_id"],
                "recording_id": table["recording_id"],
                "speech_s": pa.array(speech, pa.float64(), mask=dropped),
                "embedding": _voice_array(embedding, mask=dropped),
                "speaker": pa.array(by_row, pa.int32(), mask=dropped),
                "speaker_share": pa.array(share, pa.float32(), mask=dropped),
                "n_speakers": pa.array([counts.get(r, 0) for r in recordings], pa.int32()),
                "versions": table["versions"],
            },
            schema=SPEAKERS,
        )
        return with_versions(output, self.name, self.version_tag)


@dataclass(frozen=True)
class SpeechRuns:
    """The speech runs of a shard's kept rows: samples, seconds, and the kept row of each."""

    samples: list[np.ndarray]
    seconds: np.ndarray
    owner: np.ndarray


def speech_runs(context: ShardContext, kept: pa.Table) -> SpeechRuns:
    """Every VAD speech region inside each kept row, clipped to it; a row that no region
    touches is one run of its own. A run outside the audio (no samples) is left out."""
    regions: dict[str, list[tuple[float, float]]] = defaultdict(list)
    chunks = context.read("segment", ["recording_id", "speech_regions"])
    for recording_id, spans in zip(
        chunks["recording_id"].to_pylist(), chunks["speech_regions"].to_pylist()
    ):
        regions[recording_id].extend((s["start"], s["end"]) for s in spans or [])
    owners, recording_ids, offsets, durations = [], [], [], []
    columns = (kept[c].to_pylist() for c in ("recording_id", "offset", "duration"))
    for row, (recording_id, offset, duration) in enumerate(zip(*columns)):
        spans = regions_within(regions[recording_id], offset, offset + duration)
        for span in spans or [{"start": offset, "end": offset + duration}]:
            owners.append(row)
            recording_ids.append(recording_id)
            offsets.append(span["start"])
            durations.append(span["end"] - span["start"])
    cut = pa.table(
        {
            "recording_id": pa.array(recording_ids, pa.string()),
            "offset": pa.array(offsets, pa.float64()),
            "duration": pa.array(durations, pa.float64()),
        }
    )
    samples = segment_samples(context, cut)
    heard = [index for index, piece in enumerate(samples) if len(piece)]
    seconds = np.array([len(samples[i]) / SAMPLE_RATE for i in heard], dtype=np.float64)
    owner = np.array([owners[i] for i in heard], dtype=np.int64)
    return SpeechRuns([samples[i] for i in heard], seconds, owner)


def _runs_by_recording(table: pa.Table, kept: np.ndarray, owner: np.ndarray) -> dict:
    """Indices of each recording's speech runs, in time order."""
    recordings = table["recording_id"].to_pylist()
    members: dict[str, list[int]] = defaultdict(list)
    for run, row in enumerate(owner):
        members[recordings[kept[row]]].append(run)
    return {recording_id: np.array(runs) for recording_id, runs in members.items()}


def _voice_array(matrix: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    values = pa.array(matrix.reshape(-1), pa.float32())
    return pa.FixedSizeListArray.from_arrays(
        values, EMBEDDING_SIZE, mask=None if mask is None else pa.array(mask)
    )


def _voices(
    recording_id: str, found: RecordingSpeakers, voices: np.ndarray, seconds: np.ndarray
) -> pa.Table:
    """One row per speaker of the recording: its mean voice, speech runs and speech."""
    means = normed_means(voices, found.labels, found.count)
    return pa.table(
        {
            "recording_id": [recording_id] * found.count,
            "speaker": np.arange(found.count, dtype=np.int32),
            "runs": np.bincount(found.labels, minlength=found.count).astype(np.int32),
            "speech_s": np.bincount(found.labels, seconds, minlength=found.count),
            "embedding": _voice_array(means.astype(np.float32)),
            "loosest_merge": [found.loosest_merge] * found.count,
            "closest_apart": [found.closest_apart] * found.count,
        },
        schema=VOICES,
    )
