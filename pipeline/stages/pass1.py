"""Pass 1: the language gate, then a timed first transcript of every chunk.

A recording's language comes from two witnesses (`pipeline.asr.language_gate`): Whisper's
language ID over its speech pooled into windows of up to 30 s, those with the most speech, and
fastText's reading of what those windows say when decoded in the language the audio put
first. A recording is dropped only on evidence of another language; one whose evidence is weak
is kept, transcribed in its source's declared language and flagged in `lang_doubt`.

A recording the audio is unsure of is also decoded in its most probable undeclared languages,
and dropped where one of them fits clearly better than the declared language and reads as
itself. When the language model is the transcribing model, windows are encoded once: a window
of one chunk is that chunk, and its decoding in the recording's language is also the chunk's
first transcript (up to `MAX_HELD_WINDOWS` encodings are kept at a time, so memory stays flat).

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
    AUDIO_UNDECLARED,
    AUDIO_UNSURE,
    Verdict,
    averaged,
    judge,
    most_probable,
    most_speech,
    pool_windows,
    reconsider,
    rivals,
)
from pipeline.asr.seek import SeekConfig, transcribe_to_speech_end
from pipeline.asr.shared import AsrModelConfig, loaded_backend
from pipeline.audio.cut import segment_samples
from pipeline.audio.decode import SAMPLE_RATE
from pipeline.stage import ShardContext, Stage
from pipeline.text.lid import TextLidConfig, identify_language
from pipeline.validation import Count, NonNegative, PositiveSeconds, Share

PASS1_MODEL = AsrModelConfig(beam_size=1, window_margin_s=2.0)
MAX_HELD_WINDOWS = 64  # encoded language windows kept at once (Whisper large: ~7 MB each)
RIVALS = 3  # undeclared languages a doubtful recording is also decoded in


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
    # A doubtful recording is another language's when that language's decode is this much more
    # probable, in nats per token (German espeak: 0.37-0.46 better in German than English;
    # real English: English best, or a rival within 0.05).
    min_fit_lead: NonNegative = 0.3


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


def _joined(pieces: list[np.ndarray]) -> np.ndarray:
    """One window's audio: a lone chunk as it is (no copy), several back to back."""
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


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
        for group in held_groups(windows, MAX_HELD_WINDOWS):
            audios = [_joined([chunks[i] for i in w.chunks]) for w in group]
            heard_by_window, decode = self._listener(audios)
            heard = self._pooled(group, heard_by_window)
            top = {rid: most_probable(d)[0] for rid, d in heard.items()}
            said = decode([top[w.recording_id] for w in group])
            fits = {rid: {top[rid]: self._fit(group, said, rid)} for rid in heard}
            for rid, distribution in heard.items():
                verdicts[rid] = judge(
                    distribution,
                    fits[rid][top[rid]][1],
                    declared[rid] or [],
                    self.config.min_lang_prob,
                    self.config.min_text_lang_prob,
                )
            self._settle_doubts(group, decode, heard, fits, verdicts, declared)
            for window, hypothesis in zip(group, said):
                verdict = verdicts[window.recording_id]
                if len(window.chunks) == 1 and verdict.lang == top[window.recording_id]:
                    first[window.chunks[0]] = hypothesis
        return verdicts, first

    def _settle_doubts(
        self,
        group: list[_Window],
        decode,
        heard: dict[str, dict[str, float]],
        fits: dict[str, dict[str, tuple[float, tuple[str, float] | None]]],
        verdicts: dict[str, Verdict],
        declared: dict[str, list[str]],
    ) -> None:
        """Decode each recording kept on doubt in the language it would be transcribed in and
        in its undeclared rivals, one language a round for the whole group, and reconsider its
        verdict on how well each fits (`fits` and `verdicts` are updated)."""
        doubtful = {
            rid: [verdicts[rid].lang, *rivals(heard[rid], declared[rid], RIVALS)]
            for rid in heard
            if verdicts[rid].doubt in (AUDIO_UNSURE, AUDIO_UNDECLARED) and declared[rid]
        }
        for round_ in range(1 + RIVALS):
            wanted = {
                rid: tried[round_]
                for rid, tried in doubtful.items()
                if round_ < len(tried) and tried[round_] not in fits[rid]
            }
            if wanted:
                again = decode([wanted.get(w.recording_id) for w in group])
                for rid, lang in wanted.items():
                    fits[rid][lang] = self._fit(group, again, rid)
        for rid in doubtful:
            verdicts[rid] = reconsider(
                verdicts[rid],
                heard[rid],
                fits[rid],
                declared[rid],
                self.config.min_fit_lead,
                self.config.min_text_lang_prob,
            )

    def _listener(self, audios: list[np.ndarray]):
        """The language distribution of each of `audios`, and a function that decodes them in
        a language each (None: not needed), timed. Where language ID and transcription share
        a model, `audios` are encoded once, for both."""
        lid, asr = loaded_backend(self.config.lid), loaded_backend(self.config.asr)
        if not (lid is asr and isinstance(asr, EncodingBackend)):

            def transcribe(languages: list[str | None]) -> list[Hypothesis | None]:
                wanted = [j for j, lang in enumerate(languages) if lang is not None]
                decoded = asr.transcribe(
                    [audios[j] for j in wanted], [languages[j] for j in wanted], timestamps=True
                )
                found = dict(zip(wanted, decoded))
                return [found.get(j) for j in range(len(audios))]

            return lid.language_probabilities(audios), transcribe
        encoded = list(asr.encode(audios))
        heard: dict[int, dict[str, float]] = {}
        for batch in encoded:
            heard.update(zip(batch.indices, asr.detect(batch)))

        def decode(languages: list[str | None]) -> list[Hypothesis | None]:
            found: dict[int, Hypothesis] = {}
            for batch in encoded:
                own = [languages[j] for j in batch.indices]
                if any(own):  # a batch is decoded whole; rows not asked for take any language
                    filler = next(lang for lang in own if lang)
                    decoded = asr.decode(batch, [lang or filler for lang in own], timestamps=True)
                    found.update((j, h) for j, h in zip(batch.indices, decoded) if languages[j])
            return [found.get(j) for j in range(len(audios))]

        return [heard[j] for j in range(len(audios))], decode

    def _fit(
        self, group: list[_Window], said: list[Hypothesis | None], recording_id: str
    ) -> tuple[float, tuple[str, float] | None]:
        """How well a recording's windows fit the language they were decoded in: their mean
        log-probability per token, and what text LID reads their transcript as."""
        own = [h for w, h in zip(group, said) if w.recording_id == recording_id and h]
        scores = [h.avg_logprob for h in own if h.avg_logprob is not None]
        text = " ".join(h.text for h in own)
        return float(np.mean(scores)) if scores else -np.inf, self._text_language(text)

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
