"""Pass 1: the language gate, then a timed first transcript of every chunk.

A recording's language comes from two witnesses (`pipeline.asr.language_gate`): Whisper's
language ID over its speech pooled into windows of up to 30 s, those with the most speech, and
fastText's reading of what those windows say when decoded in the language the audio put
first. A recording is dropped only on evidence of another language; one whose evidence is weak
is kept, transcribed in its source's declared language and flagged in `lang_doubt`.

When the language model is the transcribing model, windows are encoded once: a window of one
chunk is that chunk, and its decoding in the recording's language is also the chunk's first
transcript (up to `MAX_HELD_WINDOWS` encodings are kept at a time, so memory stays flat).

The recordings that pass are decoded chunk by chunk with the language forced, with phrase
timestamps for pass 2 to cut at; a chunk whose decoder stopped while the VAD still hears
speech is decoded again from its last timestamp (`pipeline.asr.seek`), so no sentence is left
out because the model ended early.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from manifests.schemas import PASS1, TIMED_TEXT, with_versions
from pipeline.asr import require_backend
from pipeline.asr.base import EncodingBackend, Hypothesis
from pipeline.asr.language_gate import (
    Verdict,
    averaged,
    judge,
    most_probable,
    most_speech,
    pool_windows,
)
from pipeline.asr.seek import SeekConfig, transcribe_to_speech_end
from pipeline.asr.shared import AsrModelConfig, loaded_backend
from pipeline.audio.cut import segment_samples
from pipeline.audio.decode import SAMPLE_RATE
from pipeline.stage import ShardContext, Stage
from pipeline.text.lid import TextLidConfig, identify_language
from pipeline.validation import Count, PositiveSeconds, Share

PASS1_MODEL = AsrModelConfig(beam_size=1, window_margin_s=2.0)
MAX_HELD_WINDOWS = 64  # encoded language windows kept at once (Whisper large: ~7 MB each)


@dataclass(frozen=True)
class Pass1Config:
    # Pass 1 needs timestamps and the language, not the best words: greedy decoding and 2 s of
    # window margin (timestamps and the seek end its windows; pass 2 keeps 6 s) cut the same
    # utterances with the same kept WER on the demo and on real speech, 15-25 % cheaper
    # (bench/README.md). The language model is the same, so its windows are encoded once.
    asr: AsrModelConfig = PASS1_MODEL
    lid: AsrModelConfig = PASS1_MODEL
    seek: SeekConfig = field(default_factory=SeekConfig)
    lid_windows: Count = 3  # pooled windows of a recording that language ID hears
    lid_window_s: PositiveSeconds = 30.0  # chunks joined up to this long (Whisper's window)
    min_lang_prob: Share = 0.7  # the audio alone is sure; below: needs the text, or a flag
    text_lid: TextLidConfig = field(default_factory=TextLidConfig)
    min_text_lang_prob: Share = 0.9  # the transcript's text LID counts from this sureness


@dataclass(frozen=True)
class _Window:
    """Consecutive chunks of one recording, heard together by language ID."""

    recording_id: str
    chunks: tuple[int, ...]  # indices of the shard's chunks
    speech_s: float


def held_groups(windows: list[_Window], most: int) -> list[list[_Window]]:
    """Windows in groups of at most `most`, a recording's windows always in one group (a
    recording with more alone)."""
    by_recording: dict[str, list[_Window]] = defaultdict(list)
    for window in windows:
        by_recording[window.recording_id].append(window)
    groups: list[list[_Window]] = [[]]
    for own in by_recording.values():
        if groups[-1] and len(groups[-1]) + len(own) > most:
            groups.append([])
        groups[-1].extend(own)
    return groups


def _timed(items, offset: float) -> list[dict]:
    """Backend times (from the chunk's start) as recording times, in the row layout."""
    return [
        {"start": round(offset + t.start, 3), "end": round(offset + t.end, 3), "text": t.text}
        for t in items
    ]


class Pass1(Stage):
    name = "pass1"
    # 5: language ID on pooled windows of up to 30 s, the transcript's text LID as a second
    # witness; weak evidence keeps the rows (flagged) instead of dropping them
    version = "5"
    inputs = ("segment", "standardise")
    max_parallel_shards = 1

    def __init__(self, config: Pass1Config):
        super().__init__(config)
        require_backend(config.asr.backend)
        require_backend(config.lid.backend)

    @property
    def version_tag(self) -> str:
        return f"{self.version}:{self.config.asr.tag}:lid={self.config.lid.tag}"

    def run(self, context: ShardContext) -> pa.Table:
        segments = context.read("segment")
        chunks = segment_samples(context, segments)
        recording_ids = segments["recording_id"].to_pylist()
        speech_s = [s or 0.0 for s in segments["speech_duration"].to_pylist()]
        declared = dict(zip(recording_ids, segments["declared_languages"].to_pylist()))
        windows = self._windows(recording_ids, chunks, speech_s)
        verdicts, first = self._judged(windows, chunks, declared)
        passed = [i for i, rid in enumerate(recording_ids) if verdicts[rid].drop_reason is None]
        offsets = segments["offset"].to_pylist()
        speech = [
            [(r["start"] - offset, r["end"] - offset) for r in regions]
            for regions, offset in zip(segments["speech_regions"].to_pylist(), offsets)
        ]
        hypotheses: list[Hypothesis | None] = [None] * len(chunks)
        if passed:
            decoded = transcribe_to_speech_end(
                loaded_backend(self.config.asr),
                [chunks[i] for i in passed],
                [verdicts[recording_ids[i]].lang for i in passed],
                [speech[i] for i in passed],
                self.config.seek,
                first=[first.get(i) for i in passed],
            )
            for i, hypothesis in zip(passed, decoded):
                hypotheses[i] = hypothesis
        timed = pa.list_(TIMED_TEXT)
        rows = [verdicts[r] for r in recording_ids]
        added = {
            "lang": pa.array([v.lang for v in rows], pa.string()),
            "lang_prob": pa.array([v.prob for v in rows], pa.float32()),
            "gate_reason": pa.array([v.drop_reason for v in rows], pa.string()),
            "lang_doubt": pa.array([v.doubt for v in rows], pa.string()),
            "text": pa.array([h and h.text for h in hypotheses], pa.string()),
            "avg_logprob": pa.array([h and h.avg_logprob for h in hypotheses], pa.float32()),
            "no_speech_prob": pa.array([h and h.no_speech_prob for h in hypotheses], pa.float32()),
            "phrases": pa.array(
                [_timed(h.segments, o) if h else [] for h, o in zip(hypotheses, offsets)], timed
            ),
            "words": pa.array(
                [_timed(h.words, o) if h else [] for h, o in zip(hypotheses, offsets)], timed
            ),
        }
        table = pa.table([*segments.columns, *added.values()], schema=PASS1)
        return with_versions(table, self.name, self.version_tag)

    def _windows(
        self, recording_ids: list[str], chunks: list[np.ndarray], speech_s: list[float]
    ) -> list[_Window]:
        """Each recording's chunks pooled into windows, those with the most speech."""
        by_recording: dict[str, list[int]] = defaultdict(list)
        for index, rid in enumerate(recording_ids):
            by_recording[rid].append(index)
        windows = []
        for rid, rows in by_recording.items():
            lengths = [len(chunks[i]) / SAMPLE_RATE for i in rows]
            pooled = [[rows[j] for j in w] for w in pool_windows(lengths, self.config.lid_window_s)]
            for window in most_speech(pooled, speech_s, self.config.lid_windows):
                windows.append(_Window(rid, tuple(window), sum(speech_s[i] for i in window)))
        return windows

    def _judged(
        self, windows: list[_Window], chunks: list[np.ndarray], declared: dict[str, list[str]]
    ) -> tuple[dict[str, Verdict], dict[int, Hypothesis]]:
        """Each recording's verdict; and the first transcripts of the chunks that were windows
        on their own, decoded in the language the recording is transcribed in (by chunk)."""
        verdicts: dict[str, Verdict] = {}
        first: dict[int, Hypothesis] = {}
        lid, asr = loaded_backend(self.config.lid), loaded_backend(self.config.asr)
        shared = lid is asr and isinstance(asr, EncodingBackend)
        for group in held_groups(windows, MAX_HELD_WINDOWS):
            audios = [np.concatenate([chunks[i] for i in w.chunks]) for w in group]
            if shared:
                heard, said = self._heard_and_said_encoded(asr, group, audios)
            else:
                probabilities = lid.language_probabilities(audios)
                heard = self._pooled(group, probabilities)
                languages = [most_probable(heard[w.recording_id])[0] for w in group]
                said = asr.transcribe(audios, languages, timestamps=True)
            text: dict[str, list[str]] = defaultdict(list)
            for window, hypothesis in zip(group, said):
                text[window.recording_id].append(hypothesis.text)
            for rid, distribution in heard.items():
                verdicts[rid] = judge(
                    distribution,
                    self._text_language(" ".join(text[rid])),
                    declared[rid] or [],
                    self.config.min_lang_prob,
                    self.config.min_text_lang_prob,
                )
            for window, hypothesis in zip(group, said):
                own = most_probable(heard[window.recording_id])[0]
                if len(window.chunks) == 1 and verdicts[window.recording_id].lang == own:
                    first[window.chunks[0]] = hypothesis
        return verdicts, first

    def _heard_and_said_encoded(
        self, backend: EncodingBackend, group: list[_Window], audios: list[np.ndarray]
    ) -> tuple[dict[str, dict[str, float]], list[Hypothesis]]:
        """Language ID on the windows' encodings, then their decoding in each recording's most
        probable language, on the same encodings."""
        encoded = list(backend.encode(audios))
        probabilities: dict[int, dict[str, float]] = {}
        for batch in encoded:
            probabilities.update(zip(batch.indices, backend.detect(batch)))
        heard = self._pooled(group, [probabilities[j] for j in range(len(group))])
        said: dict[int, Hypothesis] = {}
        for batch in encoded:
            languages = [most_probable(heard[group[j].recording_id])[0] for j in batch.indices]
            said.update(zip(batch.indices, backend.decode(batch, languages, timestamps=True)))
        return heard, [said[j] for j in range(len(group))]

    @staticmethod
    def _pooled(
        group: list[_Window], probabilities: list[dict[str, float]]
    ) -> dict[str, dict[str, float]]:
        """Each recording's language distribution: its windows' mean, weighted by speech."""
        by_recording: dict[str, list[int]] = defaultdict(list)
        for j, window in enumerate(group):
            by_recording[window.recording_id].append(j)
        return {
            rid: averaged([probabilities[j] for j in js], [group[j].speech_s for j in js])
            for rid, js in by_recording.items()
        }

    def _text_language(self, text: str) -> tuple[str, float] | None:
        """What fastText (or the configured text LID) reads the windows' transcript as."""
        return identify_language(text, self.config.text_lid) if text.strip() else None
