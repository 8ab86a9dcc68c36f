"""Whisper's sequential seek, done in batches: decode a chunk again after its last timestamp
while the VAD still hears speech there.

A Whisper decoder may stop early: on an 18 s chunk of read speech it can close two sentences
with timestamps and end, leaving the third unsaid. faster-whisper's own `transcribe` moves its
window to the last timestamp and decodes again; here every chunk that still has speech after
its last phrase gets a remainder (from that timestamp, or from just before the next speech
when the timestamp lies in a pause), and all remainders of a round go to the backend as one
batch. A round that adds no phrase ends a chunk's seek: the speech left over becomes an
utterance of its own in pass 2 (`pipeline.asr.utterances`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.asr.base import AsrBackend, Hypothesis, TimedText
from pipeline.audio.decode import SAMPLE_RATE
from pipeline.validation import Count, Seconds

Span = tuple[float, float]


@dataclass(frozen=True)
class SeekConfig:
    # Less speech than this after the last phrase ends the seek: Whisper's last timestamp is
    # often a few tenths early, and pass 2 widens an utterance to the end of its speech anyway.
    min_speech_left_s: Seconds = 0.5
    max_rounds: Count = 4  # decodes of one chunk at most, the first included
    lead_s: Seconds = 0.2  # a remainder that starts in a pause starts this long before speech


def speech_after(speech: list[Span], time: float) -> float:
    """Seconds of speech in `speech` that lie after `time`."""
    return sum(max(0.0, end - max(start, time)) for start, end in speech)


def resume_point(speech: list[Span], last_end: float, lead_s: float) -> float:
    """Where the next window starts: at `last_end`, unless that lies in a pause, then just
    before the next speech (never before `last_end`)."""
    if any(start <= last_end < end for start, end in speech):
        return last_end
    following = [start for start, _ in speech if start > last_end]
    return max(last_end, min(following) - lead_s) if following else last_end


def _shifted(items: tuple[TimedText, ...], by: float) -> tuple[TimedText, ...]:
    return tuple(TimedText(t.start + by, t.end + by, t.text) for t in items)


def _joined(parts: list[Hypothesis]) -> Hypothesis:
    """One hypothesis from the rounds of a chunk (times already relative to the chunk)."""
    scores = [p.avg_logprob for p in parts if p.segments and p.avg_logprob is not None]
    return Hypothesis(
        text=" ".join(p.text for p in parts if p.text),
        avg_logprob=float(np.mean(scores)) if scores else parts[0].avg_logprob,
        no_speech_prob=parts[0].no_speech_prob,
        segments=tuple(s for p in parts for s in p.segments),
        words=tuple(w for p in parts for w in p.words),
    )


def transcribe_to_speech_end(
    backend: AsrBackend,
    audios: list[np.ndarray],
    languages: list[str],
    speech: list[list[Span]],
    config: SeekConfig = SeekConfig(),
    first: list[Hypothesis | None] | None = None,
) -> list[Hypothesis]:
    """Timed hypotheses of `audios`, each decoded until no more than `min_speech_left_s` of its
    VAD speech (`speech`, seconds from the audio's start) lies after its last phrase. `first`
    holds first-round hypotheses already decoded (pass 1's language windows), None elsewhere."""
    rounds: list[list[Hypothesis]] = [[] for _ in audios]
    starts = [0.0] * len(audios)
    known = list(first) if first else [None] * len(audios)  # decoded, not yet taken up
    pending = list(range(len(audios)))
    for _ in range(config.max_rounds):
        if not pending:
            break
        todo = [i for i in pending if known[i] is None]
        if todo:
            pieces = [audios[i][round(starts[i] * SAMPLE_RATE) :] for i in todo]
            decoded = backend.transcribe(pieces, [languages[i] for i in todo], timestamps=True)
            for i, hypothesis in zip(todo, decoded):
                known[i] = hypothesis
        still = []
        for i in pending:
            hypothesis, known[i] = known[i], None
            hypothesis = Hypothesis(
                hypothesis.text,
                hypothesis.avg_logprob,
                hypothesis.no_speech_prob,
                _shifted(hypothesis.segments, starts[i]),
                _shifted(hypothesis.words, starts[i]),
            )
            rounds[i].append(hypothesis)
            if not hypothesis.segments:
                continue
            last_end = hypothesis.segments[-1].end
            if speech_after(speech[i], last_end) < config.min_speech_left_s:
                continue
            following = resume_point(speech[i], last_end, config.lead_s)
            if following > starts[i]:
                starts[i] = following
                still.append(i)
        pending = still
    return [_joined(parts) for parts in rounds]
