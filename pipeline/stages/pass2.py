"""Pass 2: cut utterances at sentence ends and pauses, then decode each on its own audio.

Each utterance is transcribed again with the recording's language forced, on exactly its own
audio (no neighbouring speech to borrow words from). Both texts are kept, with their word
error rate (`pass_wer`, pass 1 against pass 2) so the filter can drop rows where the passes
disagree. Both texts are compared in one normal form (`normal_words` of their written forms:
"Ten of clubs" and "10 of clubs", "twenty five dollars" and "$25" agree), which the filter's
rules read too; the written form of pass 2's text is kept beside it (`text_written`), with
`itn_status` saying whether NeMo's grammars read it. That is part of this stage, not a stage
after it, because the comparison decides which utterances are cut again and decoded anew.
Speech where pass 1 heard no words is an utterance of its own with empty pass-1 text
and no `pass_wer` (there is nothing to agree with): pass 2 alone transcribes it. Chunks of
recordings that failed the language gate carry through as rows of their own, so the manifest
accounts for all speech.

Joined sentences give the decoder context, but they share one verdict: where pass 2 skipped a
sentence of a joined utterance, or pass 1 looped in one, the filter would drop all of them.
So a joined utterance whose passes disagree by more than `split_above_pass_wer` is cut again
one sentence per row, and each sentence decoded on its own audio. (On real read speech, a
16.8 s row of five sentences whose pass 2 left out three was dropped whole; cut again, four
of its five sentences agreed.)

Each row's words are timed (`words`, seconds from the start of the recording) by the backend's
alignment of pass 2's own text, without decoding again (Whisper: cross-attention; NeMo: its
timestamps or a CTC forced alignment), then fitted to the VAD's speech inside the utterance
(`pipeline/asr/word_timings.py`). A backend that cannot align leaves the list empty and
says why in `words_missing`.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

import jiwer
import pyarrow as pa

from manifests.schemas import UTTERANCES, with_versions
from pipeline.asr import require_backend
from pipeline.asr.base import Hypothesis, TimedText
from pipeline.asr.shared import AsrModelConfig, loaded_backend
from pipeline.asr.utterances import UtteranceConfig, cut_utterances
from pipeline.asr.word_timings import NOT_ALIGNED, fit_to_speech
from pipeline.audio.cut import segment_samples
from pipeline.stage import ShardContext, Stage, StageConfigError
from pipeline.text.rules import normal_words
from pipeline.text.written import WrittenFormConfig, itn_tag, written_form
from pipeline.validation import NonNegative

WHISPER_WINDOW_S = 30.0
_CARRIED = (
    "recording_id",
    "source",
    "license",
    "license_text",
    "attribution",
    "obligations",
    "declared_languages",
    "lang",
    "lang_prob",
    "gate_reason",
    "lang_doubt",
)


@dataclass(frozen=True)
class Pass2Config:
    asr: AsrModelConfig = field(default_factory=AsrModelConfig)
    utterances: UtteranceConfig = field(default_factory=UtteranceConfig)
    # A joined utterance whose `pass_wer` is above this is decoded again one sentence per row
    # (the filter's `max_pass_wer` would drop all its sentences); 1 or more: never.
    split_above_pass_wer: NonNegative = 0.5
    # Time every word of pass 2's text (`words`), fitted to the VAD's speech (word_timings.py)
    word_timings: bool = True
    written: WrittenFormConfig = field(default_factory=WrittenFormConfig)


def pass_disagreement(
    pass1: str, pass2: str, lang: str | None = None, written: WrittenFormConfig | None = None
) -> float:
    """Word error rate of the pass-1 text against pass 2's, both in the normal form that the
    filter reads (`normal_words` of their written forms)."""
    written = written or WrittenFormConfig()
    reference = " ".join(normal_words(written_form(pass2, lang, written).text, lang))
    hypothesis = " ".join(normal_words(written_form(pass1, lang, written).text, lang))
    if not reference:
        return 0.0 if not hypothesis else 1.0
    return float(jiwer.wer(reference, hypothesis)) if hypothesis else 1.0


class _Utterance(NamedTuple):
    start: float
    end: float
    text: str | None  # pass-1 text; None when the recording was not transcribed


@dataclass(frozen=True)
class Pass1Recording:
    """What pass 1 found in one recording: enough to cut it into utterances, and again."""

    phrases: list[TimedText]
    speech: list[tuple[float, float]]
    duration: float
    transcribed: bool  # False: it failed the language gate, and its chunks are its rows
    chunks: list[_Utterance]

    @classmethod
    def of(cls, chunks: list[dict], duration: float) -> Pass1Recording:
        return cls(
            phrases=[
                TimedText(p["start"], p["end"], p["text"]) for c in chunks for p in c["phrases"]
            ],
            speech=[(r["start"], r["end"]) for c in chunks for r in c["speech_regions"]],
            duration=duration,
            transcribed=chunks[0]["gate_reason"] is None,
            chunks=[_Utterance(c["offset"], c["offset"] + c["duration"], None) for c in chunks],
        )

    def utterances(self, config: UtteranceConfig) -> list[_Utterance]:
        """The recording's utterances in time order; a recording that was not transcribed
        keeps its chunks as rows, with null pass-1 text."""
        if not self.transcribed:
            return self.chunks
        found = cut_utterances(self.phrases, self.speech, self.duration, config)
        return [_Utterance(u.start, u.end, u.text) for u in found]

    def sentences(self, utterance: _Utterance, config: UtteranceConfig) -> list[_Utterance]:
        """The utterance cut again one sentence each, within its own span."""
        start, end = utterance.start, utterance.end
        phrases = [p for p in self.phrases if start <= (p.start + p.end) / 2 <= end]
        speech = [(max(a, start), min(b, end)) for a, b in self.speech if a < end and b > start]
        alone = dataclasses.replace(config, join_s=0.0)
        return [
            _Utterance(max(u.start, start), min(u.end, end), u.text)
            for u in cut_utterances(phrases, speech, end, alone)
        ]


class Pass2(Stage):
    name = "pass2"
    # 6: word timings; 5: texts compared in their written forms (NeMo ITN), kept as
    # `text_written`; 4: a looping decode is sampled again; a joined utterance whose passes
    # disagree is decoded again one sentence per row (3: numbers compared as digits)
    version = "6"
    inputs = ("pass1", "standardise")
    max_parallel_shards = 1

    def __init__(self, config: Pass2Config):
        super().__init__(config)
        require_backend(config.asr.backend)
        whisper = config.asr.backend in ("faster-whisper", "vllm")
        if whisper and config.utterances.max_s > WHISPER_WINDOW_S:
            raise StageConfigError(
                f"pass2.utterances.max_s is {config.utterances.max_s} s, but Whisper "
                f"({config.asr.backend}) hears at most {WHISPER_WINDOW_S:.0f} s at once"
            )

    @property
    def version_tag(self) -> str:
        return f"{self.version}:{self.config.asr.tag}:{itn_tag()}"

    def run(self, context: ShardContext) -> pa.Table:
        chunks = context.read("pass1")
        recordings = context.read("standardise", ["recording_id", "duration"])
        durations = dict(zip(*(recordings[c].to_pylist() for c in recordings.column_names)))
        first_row: dict[str, int] = {}
        by_recording: dict[str, list[dict]] = {}
        for index, row in enumerate(chunks.to_pylist()):
            first_row.setdefault(row["recording_id"], index)
            by_recording.setdefault(row["recording_id"], []).append(row)
        found = {rid: Pass1Recording.of(rows, durations[rid]) for rid, rows in by_recording.items()}
        languages = {rid: rows[0]["lang"] for rid, rows in by_recording.items()}
        planned = [
            (rid, u) for rid, rec in found.items() for u in rec.utterances(self.config.utterances)
        ]
        decoded = self._decode(context, planned, languages)
        rows = self._split_disagreeing(context, found, planned, decoded, languages)
        numbers: dict[str, int] = defaultdict(int)
        ids = []
        for rid, _, _, _ in rows:
            ids.append(f"{rid}#{numbers[rid]:04d}")
            numbers[rid] += 1
        take = pa.array([first_row[rid] for rid, _, _, _ in rows], pa.int64())
        carried = chunks.select(list(_CARRIED)).take(take)
        utterances = [u for _, u, _, _ in rows]
        hypotheses = [h for _, _, h, _ in rows]
        words = [_recording_words(h, u, found[rid].speech) if h else [] for (rid, u, h, _) in rows]
        texts = [_text(u, h) for u, h in zip(utterances, hypotheses)]
        written = [
            None if text is None else written_form(text, lang, self.config.written)
            for text, lang in zip(texts, carried["lang"].to_pylist())
        ]
        columns = {name: carried[name] for name in _CARRIED}
        columns |= {
            "segment_id": pa.array(ids, pa.string()),
            "offset": pa.array([u.start for u in utterances], pa.float64()),
            "duration": pa.array([_length(u) for u in utterances], pa.float64()),
            "text_pass1": pa.array([u.text for u in utterances], pa.string()),
            "versions": pa.nulls(len(ids), UTTERANCES.field("versions").type),
            "text": pa.array(texts, pa.string()),
            "text_written": pa.array([w and w.text for w in written], pa.string()),
            "itn_status": pa.array([w and w.status for w in written], pa.string()),
            "avg_logprob": pa.array([h and h.avg_logprob for h in hypotheses], pa.float32()),
            "no_speech_prob": pa.array([h and h.no_speech_prob for h in hypotheses], pa.float32()),
            "pass_wer": pa.array([wer for _, _, _, wer in rows], pa.float32()),
            "words": pa.array(words, UTTERANCES.field("words").type),
            "words_missing": pa.array(
                [
                    _words_missing(h, timed) if self.config.word_timings else None
                    for h, timed in zip(hypotheses, words)
                ],
                pa.string(),
            ),
        }
        table = pa.table([columns[n] for n in UTTERANCES.names], schema=UTTERANCES)
        return with_versions(table, self.name, self.version_tag)

    def _decode(
        self,
        context: ShardContext,
        planned: list[tuple[str, _Utterance]],
        languages: dict[str, str],
    ) -> list[Hypothesis | None]:
        """Pass 2's hypothesis of every transcribed utterance long enough to hear (None for
        the others), each on exactly its own audio."""
        todo = [
            i
            for i, (_, u) in enumerate(planned)
            if u.text is not None and _length(u) >= self.config.utterances.min_s
        ]
        decoded: list[Hypothesis | None] = [None] * len(planned)
        if not todo:
            return decoded
        wanted = pa.table(
            {
                "recording_id": pa.array([planned[i][0] for i in todo], pa.string()),
                "offset": pa.array([planned[i][1].start for i in todo], pa.float64()),
                "duration": pa.array([_length(planned[i][1]) for i in todo], pa.float64()),
            }
        )
        hypotheses = loaded_backend(self.config.asr).transcribe(
            segment_samples(context, wanted),
            [languages[planned[i][0]] for i in todo],
            word_timings=self.config.word_timings,
        )
        for i, hypothesis in zip(todo, hypotheses):
            decoded[i] = hypothesis
        return decoded

    def _split_disagreeing(
        self,
        context: ShardContext,
        found: dict[str, Pass1Recording],
        planned: list[tuple[str, _Utterance]],
        decoded: list[Hypothesis | None],
        languages: dict[str, str],
    ) -> list[tuple[str, _Utterance, Hypothesis | None, float | None]]:
        """Every row in time order, with its `pass_wer`: a joined utterance whose passes
        disagree by more than `split_above_pass_wer` is replaced by its sentences, each decoded
        on its own audio, so the filter judges them one by one instead of dropping them all."""
        written = self.config.written
        agreements = [
            _agreement(u, h, languages[rid], written) for (rid, u), h in zip(planned, decoded)
        ]
        pieces: dict[int, list[tuple[str, _Utterance]]] = {}
        for i, (rid, utterance) in enumerate(planned):
            if (agreements[i] or 0.0) > self.config.split_above_pass_wer:
                sentences = found[rid].sentences(utterance, self.config.utterances)
                if len(sentences) > 1:
                    pieces[i] = [(rid, s) for s in sentences]
        split = [p for i in pieces for p in pieces[i]]
        again = iter(zip(split, self._decode(context, split, languages)))
        rows = []
        for i, ((rid, utterance), hypothesis) in enumerate(zip(planned, decoded)):
            if i not in pieces:
                rows.append((rid, utterance, hypothesis, agreements[i]))
                continue
            for (_, piece), piece_hypothesis in (next(again) for _ in pieces[i]):
                agreement = _agreement(piece, piece_hypothesis, languages[rid], written)
                rows.append((rid, piece, piece_hypothesis, agreement))
        return rows


def _length(utterance: _Utterance) -> float:
    return round(max(0.0, utterance.end - utterance.start), 3)


def _text(utterance: _Utterance, hypothesis: Hypothesis | None) -> str | None:
    """Pass 2's text: empty where a transcribed utterance was too short to hear."""
    if utterance.text is None:
        return None
    return hypothesis.text if hypothesis else ""


def _recording_words(
    hypothesis: Hypothesis, utterance: _Utterance, speech: list[tuple[float, float]]
) -> list[dict]:
    """The hypothesis's words fitted to the VAD's speech inside the utterance, in seconds from
    the start of the recording."""
    start = utterance.start
    inside = [(a - start, b - start) for a, b in speech if a < utterance.end and b > start]
    fitted = fit_to_speech(hypothesis.words, inside, _length(utterance))
    return [
        {"start": round(start + w.start, 3), "end": round(start + w.end, 3), "text": w.text}
        for w in fitted
    ]


def _words_missing(hypothesis: Hypothesis | None, words: list[dict]) -> str | None:
    """Why a text with words has none timed: the backend's reason, else `NOT_ALIGNED`."""
    if hypothesis is None or words or not any(c.isalnum() for c in hypothesis.text):
        return None
    return hypothesis.words_missing or NOT_ALIGNED


def _agreement(
    utterance: _Utterance, hypothesis: Hypothesis | None, lang: str, written: WrittenFormConfig
) -> float | None:
    """`pass_wer`, where pass 1 heard words to agree with."""
    if not utterance.text:
        return None
    return pass_disagreement(utterance.text, _text(utterance, hypothesis) or "", lang, written)
