"""Pass 2: cut utterances at sentence ends and pauses, then decode each on its own audio.

Each utterance is transcribed again with the recording's language forced, on exactly its own
audio (no neighbouring speech to borrow words from). Both texts are kept, with their word
error rate (`pass_wer`, pass 1 against pass 2) so the filter can drop rows where the passes
disagree. Speech where pass 1 heard no words is an utterance of its own with empty pass-1 text
and no `pass_wer` (there is nothing to agree with): pass 2 alone transcribes it. Chunks of
recordings that failed the language gate carry through as rows of their own, so the manifest
accounts for all speech.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import jiwer
import pyarrow as pa

from manifests.schemas import UTTERANCES, with_versions
from pipeline.asr import require_backend
from pipeline.asr.base import TimedText
from pipeline.asr.shared import AsrModelConfig, loaded_backend
from pipeline.asr.utterances import UtteranceConfig, cut_utterances
from pipeline.audio.cut import segment_samples
from pipeline.stage import ShardContext, Stage, StageConfigError
from pipeline.text.normalise import normalise_text
from pipeline.text.numbers import with_digits

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
)


@dataclass(frozen=True)
class Pass2Config:
    asr: AsrModelConfig = field(default_factory=AsrModelConfig)
    utterances: UtteranceConfig = field(default_factory=UtteranceConfig)


def pass_disagreement(pass1: str, pass2: str, lang: str | None = None) -> float:
    """Word error rate of the pass-1 text against pass 2's, after normalisation, with number
    words as digits in `lang` ("Ten" and "10" agree)."""
    reference = normalise_text(with_digits(pass2, lang))
    hypothesis = normalise_text(with_digits(pass1, lang))
    if not reference:
        return 0.0 if not hypothesis else 1.0
    return float(jiwer.wer(reference, hypothesis)) if hypothesis else 1.0


class _Utterance(NamedTuple):
    start: float
    end: float
    text: str | None  # pass-1 text; None when the recording was not transcribed


def _recording_utterances(
    chunks: list[dict], duration: float, config: UtteranceConfig
) -> list[_Utterance]:
    """A recording's utterances in time order; the chunks of a recording that was not
    transcribed (it failed the language gate) are one row each, with null pass-1 text."""
    if chunks[0]["gate_reason"] is not None:
        return [_Utterance(c["offset"], c["offset"] + c["duration"], None) for c in chunks]
    phrases = [TimedText(p["start"], p["end"], p["text"]) for c in chunks for p in c["phrases"]]
    speech = [(r["start"], r["end"]) for c in chunks for r in c["speech_regions"]]
    return [
        _Utterance(u.start, u.end, u.text)
        for u in cut_utterances(phrases, speech, duration, config)
    ]


class Pass2(Stage):
    name = "pass2"
    version = "4"  # 4: a decode that loops is decoded again by sampling (3: numbers as digits)
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
        return f"{self.version}:{self.config.asr.tag}"

    def run(self, context: ShardContext) -> pa.Table:
        chunks = context.read("pass1")
        recordings = context.read("standardise", ["recording_id", "duration"])
        durations = dict(zip(*(recordings[c].to_pylist() for c in recordings.column_names)))
        rows = chunks.to_pylist()
        first_row: dict[str, int] = {}
        by_recording: dict[str, list[dict]] = {}
        for index, row in enumerate(rows):
            first_row.setdefault(row["recording_id"], index)
            by_recording.setdefault(row["recording_id"], []).append(row)
        take, ids, utterances = [], [], []
        for rid, recording_chunks in by_recording.items():
            found = _recording_utterances(recording_chunks, durations[rid], self.config.utterances)
            for number, utterance in enumerate(found):
                take.append(first_row[rid])
                ids.append(f"{rid}#{number:04d}")
                utterances.append(utterance)
        carried = chunks.select(list(_CARRIED)).take(pa.array(take, pa.int64()))
        offsets = [u.start for u in utterances]
        lengths = [round(max(0.0, u.end - u.start), 3) for u in utterances]
        texts = self._transcribe(context, carried, utterances, offsets, lengths)
        columns = {name: carried[name] for name in _CARRIED}
        columns |= {
            "segment_id": pa.array(ids, pa.string()),
            "offset": pa.array(offsets, pa.float64()),
            "duration": pa.array(lengths, pa.float64()),
            "text_pass1": pa.array([u.text for u in utterances], pa.string()),
            "versions": pa.nulls(len(ids), UTTERANCES.field("versions").type),
            **texts,
        }
        table = pa.table([columns[n] for n in UTTERANCES.names], schema=UTTERANCES)
        return with_versions(table, self.name, self.version_tag)

    def _transcribe(self, context, carried, utterances, offsets, lengths) -> dict[str, pa.Array]:
        """Pass-2 text, scores and agreement; every transcribed row long enough to hear."""
        todo = [
            i
            for i, u in enumerate(utterances)
            if u.text is not None and lengths[i] >= self.config.utterances.min_s
        ]
        wanted = pa.table(
            {
                "recording_id": carried["recording_id"].take(pa.array(todo, pa.int64())),
                "offset": pa.array([offsets[i] for i in todo], pa.float64()),
                "duration": pa.array([lengths[i] for i in todo], pa.float64()),
            }
        )
        languages = carried["lang"].to_pylist()
        decoded = (
            loaded_backend(self.config.asr).transcribe(
                segment_samples(context, wanted), [languages[i] for i in todo]
            )
            if todo
            else []
        )
        text = [None if u.text is None else "" for u in utterances]
        logprob: list[float | None] = [None] * len(utterances)
        no_speech: list[float | None] = [None] * len(utterances)
        for i, hypothesis in zip(todo, decoded):
            text[i] = hypothesis.text
            logprob[i] = hypothesis.avg_logprob
            no_speech[i] = hypothesis.no_speech_prob
        wer = [
            pass_disagreement(u.text, t or "", lang) if u.text else None
            for u, t, lang in zip(utterances, text, languages)
        ]
        return {
            "text": pa.array(text, pa.string()),
            "avg_logprob": pa.array(logprob, pa.float32()),
            "no_speech_prob": pa.array(no_speech, pa.float32()),
            "pass_wer": pa.array(wer, pa.float32()),
        }
